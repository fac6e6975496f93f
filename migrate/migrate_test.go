package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

// openLedger is a fresh in-memory ledger: the engine's tests are about
// the engine, the bbolt file has its own (checkpoint, and the suite in
// migrate/ledger/ledgertest that both pass).
func openLedger(t *testing.T) *ledger.Memory {
	t.Helper()
	return ledger.NewMemory()
}

func msg(i int, extra string) []byte {
	return fmt.Appendf(nil, "From: a%d@example.org\r\nTo: b@example.org\r\nSubject: test %d\r\nMessage-ID: <m%d@example.org>\r\nDate: Mon, 2 Jan 2006 15:04:%02d +0000\r\n\r\nbody %d %s\r\n", i, i, i, i%60, i, extra)
}

func noID(i int) []byte {
	return fmt.Appendf(nil, "From: a@example.org\r\nSubject: no id %d\r\n\r\nbody without id %d\r\n", i, i)
}

var testDate = time.Date(2021, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))

func run(t *testing.T, src, dst providers.Store, l ledger.Ledger, opts Options) AccountSummary {
	t.Helper()
	sum, err := Migrate(context.Background(), Account{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice", Source: src, Dest: dst}, l, opts)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	checkAddsUp(t, sum)
	return sum
}

func checkAddsUp(t *testing.T, sum AccountSummary) {
	t.Helper()
	for _, m := range sum.Mailboxes {
		if m.Copied+m.Duplicate+m.Failed+m.Pending != m.Seen {
			t.Errorf("mailbox %s: copied %d + duplicate %d + failed %d + pending %d != seen %d",
				m.Source, m.Copied, m.Duplicate, m.Failed, m.Pending, m.Seen)
		}
	}
}

// multiset returns the sorted sha256s of a mailbox's messages with flags and date.
func multiset(s *mem.Store, name string) []string {
	var out []string
	for _, m := range s.Messages(name) {
		flags := slices.Clone(m.Flags)
		sort.Strings(flags)
		out = append(out, fmt.Sprintf("%x %v %s", sha256.Sum256(m.Raw), flags, m.InternalDate.Format(time.RFC3339)))
	}
	sort.Strings(out)
	return out
}

func TestMigrateCopiesExactlyAndMapsRoles(t *testing.T) {
	src, dst := mem.New(), mem.New()
	for i := range 5 {
		src.Put("INBOX", msg(i, ""), []string{`\Seen`, "$Forwarded", "Custom1"}, testDate.Add(time.Duration(i)*time.Hour))
	}
	src.SetRole("Sent", providers.RoleSent)
	src.Put("Sent", msg(10, "sent"), []string{`\Seen`, `\Answered`}, testDate)
	src.Put("Work/Projects/2024", msg(20, "nested"), nil, testDate)
	src.SetSubscribed("Work/Projects/2024")
	src.SetRole("All Mail", providers.RoleAll)
	src.Put("All Mail", msg(0, ""), nil, testDate)
	dst.SetRole("Sent Items", providers.RoleSent)

	l := openLedger(t)
	sum := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	if !sum.OK() {
		t.Fatalf("summary not OK: %+v", sum)
	}
	for _, c := range []struct{ from, to string }{{"INBOX", "INBOX"}, {"Sent", "Sent Items"}, {"Work/Projects/2024", "Work/Projects/2024"}} {
		if got, want := multiset(dst, c.to), multiset(src, c.from); !slices.Equal(got, want) {
			t.Errorf("%s -> %s:\n got %v\nwant %v", c.from, c.to, got, want)
		}
	}
	if slices.Contains(dst.Names(), "Sent") || slices.Contains(dst.Names(), "All Mail") {
		t.Errorf("destination mailboxes %v: Sent must map by role, All Mail must be skipped", dst.Names())
	}
	if !dst.Subscribed("Work/Projects/2024") {
		t.Errorf("subscription not carried over")
	}
	if len(sum.Skipped) != 1 || sum.Skipped[0].Mailbox != "All Mail" {
		t.Errorf("skipped = %v, want All Mail", sum.Skipped)
	}
	tot := sum.Totals()
	if tot.Seen != 7 || tot.Copied != 7 || tot.New != 7 {
		t.Errorf("totals %+v, want 7 seen, 7 copied, 7 new", tot)
	}
	rec, ok, _ := l.Mailbox("alice\x00alice", "Work/Projects/2024")
	if !ok || !rec.Created || rec.SrcValidity == 0 || rec.DstValidity == 0 {
		t.Errorf("mailbox record %+v, want created with both UIDVALIDITYs", rec)
	}
}

func TestRerunIsNoop(t *testing.T) {
	src, dst := mem.New(), mem.New()
	for i := range 50 {
		src.Put("INBOX", msg(i, ""), nil, testDate)
	}
	l := openLedger(t)
	run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	n := dst.Appends()
	sum := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	if dst.Appends() != n {
		t.Errorf("re-run appended %d messages", dst.Appends()-n)
	}
	tot := sum.Totals()
	if tot.New != 0 || tot.Copied != 50 || tot.Seen != 50 {
		t.Errorf("re-run totals %+v, want seen 50 copied 50 new 0", tot)
	}
}

func TestDedupAgainstDestination(t *testing.T) {
	src, dst := mem.New(), mem.New()
	// Already on the destination: one with an ID, one without.
	src.Put("INBOX", msg(1, ""), nil, testDate)
	src.Put("INBOX", noID(2), nil, testDate)
	dst.Put("INBOX", msg(1, ""), nil, testDate)
	dst.Put("INBOX", noID(2), nil, testDate)
	// Two byte-identical copies in the source: both must arrive.
	src.Put("INBOX", msg(3, ""), nil, testDate)
	src.Put("INBOX", msg(3, ""), nil, testDate)
	// A re-used Message-ID with other content than the destination's copy.
	src.Put("INBOX", msg(4, "version A"), nil, testDate)
	dst.Put("INBOX", msg(4, "version B"), nil, testDate)
	// Three headerless, ID-less messages that differ only in body; one is there.
	for i := range 3 {
		src.Put("INBOX", fmt.Appendf(nil, "\r\nbare body %d\r\n", i), nil, testDate)
	}
	dst.Put("INBOX", []byte("\r\nbare body 1\r\n"), nil, testDate)

	l := openLedger(t)
	sum := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	tot := sum.Totals()
	if tot.Duplicate != 3 || tot.Copied != 5 {
		t.Errorf("totals %+v, want 3 duplicates and 5 copied", tot)
	}
	// The destination must now hold the union: every source message at least
	// as often as in the source, plus version B.
	want := append(multiset(src, "INBOX"), hashLine(msg(4, "version B")))
	got := multiset(dst, "INBOX")
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("destination:\n got %v\nwant %v", got, want)
	}
}

func hashLine(raw []byte) string {
	return fmt.Sprintf("%x [] %s", sha256.Sum256(raw), testDate.Format(time.RFC3339))
}

func TestRefusedMessageIsRecordedAndOthersGoOn(t *testing.T) {
	src, dst := mem.New(), mem.New()
	for i := range 10 {
		src.Put("INBOX", msg(i, ""), nil, testDate)
	}
	refuse := msg(4, "")
	dst.AppendHook = func(_ string, raw []byte) error {
		if string(raw) == string(refuse) {
			return providers.WithClass(providers.ClassMessage, errors.New("imap: NO [TOOBIG] message too large"))
		}
		return nil
	}
	l := openLedger(t)
	sum := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	m := sum.Mailboxes[0]
	if m.Failed != 1 || m.Copied != 9 || len(m.Failures) != 1 || !strings.Contains(m.Failures[0].Reason, "TOOBIG") || m.Failures[0].MessageID != "<m4@example.org>" {
		t.Fatalf("summary %+v, want 1 failure naming <m4@example.org> and TOOBIG", m)
	}
	if sum.OK() {
		t.Errorf("summary OK despite a failure")
	}
	n := dst.Appends()
	run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	if dst.Appends() != n {
		t.Errorf("failed message retried without RetryFailed")
	}
	dst.AppendHook = nil
	sum = run(t, src, dst, l, Options{QuietWait: time.Millisecond, RetryFailed: true})
	if m := sum.Mailboxes[0]; m.Failed != 0 || m.Copied != 10 {
		t.Errorf("after RetryFailed: %+v", m)
	}
}

// TestCrashAtEveryAppend stops a run after each possible number of appends,
// both by a lost server reply and by cancellation, then resumes; the
// destination must end up equal to the source every time.
func TestCrashAtEveryAppend(t *testing.T) {
	const total = 12
	newSource := func() *mem.Store {
		src := mem.New()
		for i := range total {
			raw := msg(i, "")
			if i%4 == 3 {
				raw = noID(i)
			}
			if i == 7 {
				raw = msg(5, "") // identical copy of message 5
			}
			src.Put("INBOX", raw, []string{fmt.Sprintf("k%d", i)}, testDate)
		}
		return src
	}
	for _, mode := range []string{"lost-reply", "cancel"} {
		for n := 0; n <= total; n++ {
			t.Run(fmt.Sprintf("%s-%d", mode, n), func(t *testing.T) {
				src, dst := newSource(), mem.New()
				dst.Put("INBOX", msg(2, ""), []string{"k2"}, testDate) // pre-existing
				l := openLedger(t)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				count := 0
				dst.StoredHook = func(string, providers.UID) error {
					count++
					if count == n {
						if mode == "cancel" {
							cancel()
							return context.Canceled
						}
						return providers.WithClass(providers.ClassRun, errors.New("connection lost after APPEND"))
					}
					return nil
				}
				acct := Account{ID: "a", Source: src, Dest: dst}
				Migrate(ctx, acct, l, Options{QuietWait: time.Millisecond, BatchSize: 5, Retries: -1})
				dst.StoredHook = nil
				sum, err := Migrate(context.Background(), acct, l, Options{QuietWait: time.Millisecond, BatchSize: 5})
				if err != nil {
					t.Fatalf("resume: %v", err)
				}
				checkAddsUp(t, sum)
				if !sum.OK() {
					t.Fatalf("resume not OK: %+v", sum)
				}
				if got, want := multiset(dst, "INBOX"), multiset(src, "INBOX"); !slices.Equal(got, want) {
					t.Fatalf("after resume:\n got %v\nwant %v", got, want)
				}
				if m := sum.Mailboxes[0]; m.Duplicate != 1 || m.Copied != total-1 {
					t.Errorf("summary %+v, want 1 duplicate (pre-existing) and %d copied", m, total-1)
				}
			})
		}
	}
}

func TestUIDValidityChangeIsHandled(t *testing.T) {
	for _, side := range []string{"source", "destination"} {
		t.Run(side, func(t *testing.T) {
			src, dst := mem.New(), mem.New()
			for i := range 20 {
				src.Put("INBOX", msg(i, ""), nil, testDate)
			}
			l := openLedger(t)
			run(t, src, dst, l, Options{QuietWait: time.Millisecond})
			if side == "source" {
				src.Recreate("INBOX")
			} else {
				dst.Recreate("INBOX")
			}
			src.Put("INBOX", msg(100, "new"), nil, testDate)
			n := dst.Appends()
			sum := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
			if got := dst.Appends() - n; got != 1 {
				t.Errorf("after %s UIDVALIDITY change: %d appends, want 1 (the new message)", side, got)
			}
			if got, want := multiset(dst, "INBOX"), multiset(src, "INBOX"); !slices.Equal(got, want) {
				t.Errorf("destination differs from source")
			}
			if m := sum.Mailboxes[0]; m.Copied != 21 || m.Seen != 21 {
				t.Errorf("summary %+v, want 21 seen and copied", m)
			}
		})
	}
}

func TestLedgerWritesOnlyConfirmedCopies(t *testing.T) {
	src, dst := mem.New(), mem.New()
	for i := range 5 {
		src.Put("INBOX", msg(i, ""), nil, testDate)
	}
	l := openLedger(t)
	dst.AppendHook = func(string, []byte) error {
		return providers.WithClass(providers.ClassTransient, errors.New("connection reset"))
	}
	sum, _ := Migrate(context.Background(), Account{ID: "a", Source: src, Dest: dst}, l, Options{QuietWait: time.Millisecond, Retries: -1})
	if m := sum.Mailboxes[0]; m.Copied != 0 || m.Pending != 5 {
		t.Fatalf("summary %+v, want nothing copied and 5 pending", m)
	}
	l.Records("a", "INBOX", func(r ledger.Record) error {
		if r.Status != ledger.StatusPending {
			t.Errorf("record %+v claims a status the server never confirmed", r)
		}
		return nil
	})
}

func TestFlagChangesFollowUntilCutover(t *testing.T) {
	src, dst := mem.New(), mem.New()
	for i := range 3 {
		src.Put("INBOX", msg(i, ""), nil, testDate)
	}
	l := openLedger(t)
	run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	first := src.Messages("INBOX")[0]
	src.SetMessageFlags("INBOX", first.UID, []string{`\Seen`, "$Label1"})
	sum := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	if got := flagsOfMsg(dst, "INBOX", first.Raw); !slices.Equal(got, []string{"$Label1", `\Seen`}) {
		t.Errorf("destination flags %v after a re-run, want the source's new flags", got)
	}
	if sum.Mailboxes[0].FlagsUpdated != 1 {
		t.Errorf("FlagsUpdated = %d, want 1", sum.Mailboxes[0].FlagsUpdated)
	}
	// After cutover users work on the destination: its flags are theirs.
	acc, _, _ := l.Account("alice\x00alice")
	acc.Cutover = testDate
	l.PutAccount("alice\x00alice", acc)
	src.SetMessageFlags("INBOX", first.UID, nil)
	run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	if got := flagsOfMsg(dst, "INBOX", first.Raw); !slices.Equal(got, []string{"$Label1", `\Seen`}) {
		t.Errorf("destination flags %v changed after cutover", got)
	}
}

// A server keeps executing commands it received from a connection that is
// gone: an APPEND whose reply was lost may land only after the next run
// has started. That run must wait for the destination to settle before it
// decides the message is missing, or it sends it twice.
func TestLateLandingAppendIsNotDuplicated(t *testing.T) {
	src, dst := mem.New(), mem.New()
	for i := range 5 {
		src.Put("INBOX", msg(i, ""), nil, testDate)
	}
	l := openLedger(t)
	var landed sync.WaitGroup
	dst.AppendHook = func(name string, raw []byte) error {
		landed.Add(1)
		go func() {
			defer landed.Done()
			time.Sleep(150 * time.Millisecond) // still being saved after the client died
			dst.Put(name, raw, nil, testDate)
		}()
		return providers.WithClass(providers.ClassRun, errors.New("connection lost"))
	}
	acct := Account{ID: "a", Source: src, Dest: dst}
	Migrate(context.Background(), acct, l, Options{QuietWait: time.Millisecond, Retries: -1, BatchSize: 1})
	dst.AppendHook = nil
	sum, err := Migrate(context.Background(), acct, l, Options{QuietWait: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	landed.Wait()
	if got, want := len(dst.Messages("INBOX")), 5; got != want {
		t.Errorf("destination holds %d messages, want %d: a late landing was sent again", got, want)
	}
	if m := sum.Mailboxes[0]; m.Copied != 5 {
		t.Errorf("summary %+v, want 5 copied", m)
	}
}

// TestCopiesWithoutUIDAreClaimed: on a destination without UIDPLUS, a run
// stopped after a copy was confirmed but before its UID was looked up
// leaves a copied record without a UID. The next run must count that copy
// as taken, or the copy's byte-identical twin would be taken for already
// there, and only one of the two would arrive.
func TestCopiesWithoutUIDAreClaimed(t *testing.T) {
	src, dst := mem.New(), mem.New()
	dst.NoAppendUID = true
	// The first copy is a twin.
	src.Put("INBOX", msg(1, "twin"), nil, testDate)
	src.Put("INBOX", msg(1, "twin"), nil, testDate)
	for i := range 6 {
		src.Put("INBOX", msg(10+i, ""), nil, testDate)
	}
	l := openLedger(t)
	acct := Account{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice", Source: src, Dest: dst}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dst.StoredHook = func(string, providers.UID) error {
		cancel() // stop after the first copy: its UID is never looked up
		return nil
	}
	if _, err := Migrate(ctx, acct, l, Options{BatchSize: 1, QuietWait: time.Millisecond}); err == nil {
		t.Fatal("the interrupted run reported no error")
	}
	dst.StoredHook = nil
	var zero int
	l.Records(acct.ID, "INBOX", func(r ledger.Record) error {
		if r.Status == ledger.StatusCopied && r.DstUID == 0 {
			zero++
		}
		return nil
	})
	if zero != 1 {
		t.Fatalf("after the interrupted run %d copied record(s) lack a UID, want 1 (the test sets nothing up)", zero)
	}
	sum := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	if !sum.OK() {
		t.Fatalf("second run: %+v", sum)
	}
	if got, want := multiset(dst, "INBOX"), multiset(src, "INBOX"); !slices.Equal(got, want) {
		t.Errorf("destination holds %d messages, source %d: a twin was taken for already there", len(got), len(want))
	}
	l.Records(acct.ID, "INBOX", func(r ledger.Record) error {
		if r.DstUID == 0 {
			t.Errorf("record %+v still lacks its destination UID", r.RecordKey)
		}
		return nil
	})
}

// TestDedupByMessageIDWhenSizeDiffers: mail already on the destination
// whose size another tool changed (mbsync adds X-TUID) or the server
// changed (line ends) is found by Message-ID and content, not copied
// again; a re-used Message-ID with another body is still copied, and an
// ambiguous match (two destination candidates) is not guessed.
func TestDedupByMessageIDWhenSizeDiffers(t *testing.T) {
	src, dst := mem.New(), mem.New()
	tuid := msg(1, "")
	src.Put("INBOX", tuid, nil, testDate)
	dst.Put("INBOX", append([]byte("X-TUID: q1w2e3r4t5y6\r\n"), tuid...), []string{`\Seen`}, testDate)
	lf := bytes.ReplaceAll(msg(2, ""), []byte("\r\n"), []byte("\n"))
	src.Put("INBOX", lf, nil, testDate)
	dst.Put("INBOX", msg(2, ""), nil, testDate)
	src.Put("INBOX", msg(3, "version A"), nil, testDate) // same ID, other body: copied
	dst.Put("INBOX", msg(3, "version B"), nil, testDate)
	amb := msg(4, "")
	src.Put("INBOX", amb, nil, testDate) // two candidates: copied, not guessed
	dst.Put("INBOX", append([]byte("X-TUID: a\r\n"), amb...), nil, testDate)
	dst.Put("INBOX", append([]byte("X-TUID: b\r\n"), amb...), nil, testDate)

	l := openLedger(t)
	sum := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	if tot := sum.Totals(); tot.Duplicate != 2 || tot.Copied != 2 {
		t.Errorf("totals %+v, want 2 duplicates (X-TUID, line ends) and 2 copied (other body, ambiguous)", tot)
	}
	if n := len(dst.Messages("INBOX")); n != 7 {
		t.Errorf("destination holds %d messages, want 7 (5 before, 2 copied)", n)
	}
	a := BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}
	if v, err := Verify(context.Background(), a, src, dst, l, VerifyOptions{}); err != nil || !v.Pass {
		t.Errorf("verify: pass %v, err %v, %+v", v.Pass, err, v.Mailboxes)
	}
}

// TestLostReplyOnNormalisingServer: a destination that rewrites line ends
// on APPEND, and a reply lost on the way back. The pending message is
// found on the destination by Message-ID and content, not sent again.
func TestLostReplyOnNormalisingServer(t *testing.T) {
	src, dst := mem.New(), mem.New()
	dst.Normalize = func(raw []byte) []byte {
		return bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	}
	for i := range 12 {
		src.Put("INBOX", bytes.ReplaceAll(msg(i, "lf"), []byte("\r\n"), []byte("\n")), nil, testDate)
	}
	var n atomic.Int32
	dst.StoredHook = func(string, providers.UID) error {
		if n.Add(1) == 5 {
			return errors.New("connection reset by peer") // stored, reply lost
		}
		return nil
	}
	l := openLedger(t)
	acct := Account{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice", Source: src, Dest: dst}
	sum, _ := Migrate(context.Background(), acct, l, Options{BatchSize: 3, QuietWait: time.Millisecond, Backoff: time.Millisecond})
	dst.StoredHook = nil
	if !sum.OK() {
		sum = run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	}
	if got := len(dst.Messages("INBOX")); got != 12 {
		t.Errorf("destination holds %d messages for 12 sent, once the lost reply was settled", got)
	}
	if tot := sum.Totals(); tot.Copied != 12 {
		t.Errorf("totals %+v, want 12 copied", tot)
	}
}

// TestDryRunCountsWhatARunCopies: a dry run lists both sides, so its NEW
// leaves out what is already on the destination, and it changes nothing.
func TestDryRunCountsWhatARunCopies(t *testing.T) {
	src, dst := mem.New(), mem.New()
	for i := range 10 {
		src.Put("INBOX", msg(i, ""), nil, testDate)
	}
	for i := range 4 {
		dst.Put("INBOX", msg(i, ""), nil, testDate)
	}
	src.Put("Work", msg(50, ""), nil, testDate) // no such mailbox on the destination yet
	l := openLedger(t)
	dry := run(t, src, dst, DryRun(l), Options{DryRun: true})
	if dst.Appends() != 0 || len(dst.Names()) != 1 {
		t.Fatalf("the dry run changed the destination: %d appends, mailboxes %v", dst.Appends(), dst.Names())
	}
	real := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	if d, r := dry.Totals(), real.Totals(); d.New != r.New || d.Duplicate != r.Duplicate || d.Seen != r.Seen {
		t.Errorf("dry run said new %d, duplicate %d, seen %d; the run copied %d, found %d, saw %d",
			d.New, d.Duplicate, d.Seen, r.New, r.Duplicate, r.Seen)
	}
	if r := real.Totals(); r.New != 7 || r.Duplicate != 4 {
		t.Errorf("run totals %+v, want 7 new and 4 duplicates", r)
	}
}

// TestLateCopiesAreRemoved: APPENDs whose connection broke unanswered are
// sent again; when the server stores the first sends too, late, the next
// run finds the extra copies above the window it noted and removes them.
func TestLateCopiesAreRemoved(t *testing.T) {
	src, dst := mem.New(), mem.New()
	for i := range 6 {
		src.Put("INBOX", msg(i, "late"), []string{`\Seen`}, testDate)
	}
	var held [][]byte
	var n atomic.Int32
	dst.AppendHook = func(_ string, raw []byte) error {
		if n.Add(1) <= 3 {
			held = append(held, raw) // the server still has it, and will store it later
			return providers.WithClass(providers.ClassTransient, errors.New("connection reset by peer"))
		}
		return nil
	}
	l := openLedger(t)
	first := run(t, src, dst, l, Options{BatchSize: 3, QuietWait: time.Millisecond, Backoff: time.Millisecond})
	if !first.OK() || len(dst.Messages("INBOX")) != 6 {
		t.Fatalf("first run: %+v, destination %d", first.Totals(), len(dst.Messages("INBOX")))
	}
	dst.AppendHook = nil
	for _, raw := range held {
		dst.Put("INBOX", raw, []string{`\Seen`}, testDate) // the late landing
	}
	if len(held) == 0 {
		t.Fatal("no APPEND was held: the test sets nothing up")
	}
	// A dry run counts the late copies a real run would remove, and
	// removes none: its store turns the removal away.
	before := len(dst.Messages("INBOX"))
	dry := run(t, src, dst, l, Options{QuietWait: time.Millisecond, DryRun: true})
	if got := dry.Mailboxes[0].LateCopies; got != len(held) || len(dst.Messages("INBOX")) != before {
		t.Errorf("dry run: %d late copies counted, want %d; destination %d messages, was %d", got, len(held), len(dst.Messages("INBOX")), before)
	}
	again := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	if got := again.Mailboxes[0].LateCopies; got != len(held) {
		t.Errorf("re-run removed %d late copies, want %d", got, len(held))
	}
	if got, want := multiset(dst, "INBOX"), multiset(src, "INBOX"); !slices.Equal(got, want) {
		t.Errorf("destination holds %d messages, source %d", len(got), len(want))
	}
}

// A resume whose pending APPENDs have all landed on the destination does
// not wait for the destination to stop growing: a run killed again and
// again soon after starting still gets somewhere. The wait here would be
// ten minutes, far beyond the test's context.
func TestResumeDoesNotWaitForWhatLanded(t *testing.T) {
	src, dst := mem.New(), mem.New()
	for i := range 5 {
		src.Put("INBOX", msg(i, ""), nil, testDate)
	}
	l := openLedger(t)
	stored := 0
	dst.StoredHook = func(string, providers.UID) error {
		if stored++; stored == 5 {
			return providers.WithClass(providers.ClassRun, errors.New("connection lost after APPEND"))
		}
		return nil
	}
	acct := Account{ID: "a", Source: src, Dest: dst}
	if sum, _ := Migrate(context.Background(), acct, l, Options{QuietWait: time.Millisecond, Retries: -1}); sum.Mailboxes[0].Pending != 1 {
		t.Fatalf("first run %+v: want the last message pending", sum.Mailboxes[0])
	}
	dst.StoredHook = nil
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sum, err := Migrate(ctx, acct, l, Options{QuietWait: 10 * time.Minute, QuietMax: 10 * time.Minute})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	checkAddsUp(t, sum)
	if m := sum.Mailboxes[0]; m.Copied != 5 || m.Pending != 0 {
		t.Errorf("resume %+v: want all 5 copied", m)
	}
	if got, want := multiset(dst, "INBOX"), multiset(src, "INBOX"); !slices.Equal(got, want) {
		t.Errorf("after resume:\n got %v\nwant %v", got, want)
	}
}

// TestLateCopiesKept: with LateCopies set to keep, the run that finds the
// late copies leaves them on the destination, reports them as kept (and
// the account as warn), and removes nothing.
func TestLateCopiesKept(t *testing.T) {
	src, dst := mem.New(), mem.New()
	for i := range 6 {
		src.Put("INBOX", msg(i, "late"), []string{`\Seen`}, testDate)
	}
	var held [][]byte
	var n atomic.Int32
	dst.AppendHook = func(_ string, raw []byte) error {
		if n.Add(1) <= 3 {
			held = append(held, raw)
			return providers.WithClass(providers.ClassTransient, errors.New("connection reset by peer"))
		}
		return nil
	}
	l := openLedger(t)
	opts := Options{BatchSize: 3, QuietWait: time.Millisecond, Backoff: time.Millisecond, LateCopies: LateCopiesKeep}
	if first := run(t, src, dst, l, opts); !first.OK() {
		t.Fatalf("first run: %+v", first.Totals())
	}
	dst.AppendHook = nil
	for _, raw := range held {
		dst.Put("INBOX", raw, []string{`\Seen`}, testDate)
	}
	if len(held) == 0 {
		t.Fatal("no APPEND was held: the test sets nothing up")
	}
	again := run(t, src, dst, l, Options{QuietWait: time.Millisecond, LateCopies: LateCopiesKeep})
	m := again.Mailboxes[0]
	if m.LateCopiesKept != len(held) || m.LateCopies != 0 || m.Warn == "" || again.Status != StatusWarn {
		t.Errorf("re-run: kept %d, removed %d, warn %q, status %q; want %d kept, none removed, a warning",
			m.LateCopiesKept, m.LateCopies, m.Warn, again.Status, len(held))
	}
	if got := len(dst.Messages("INBOX")); got != 6+len(held) {
		t.Errorf("the destination holds %d messages; want %d, none removed", got, 6+len(held))
	}
}
