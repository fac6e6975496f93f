package migrate

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

// statuses counts a source mailbox's ledger records by status.
func statuses(t *testing.T, l ledger.Ledger, account, mailbox string) map[ledger.Status]int {
	t.Helper()
	out := map[ledger.Status]int{}
	if err := l.Records(account, mailbox, func(r ledger.Record) error {
		out[r.Status]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func undoMailboxes(sum UndoSummary) map[string]UndoMailbox {
	out := map[string]UndoMailbox{}
	for _, m := range sum.Mailboxes {
		out[m.Dest] = m
	}
	return out
}

func undoYes(t *testing.T, f *undoFixture) UndoSummary {
	t.Helper()
	sum, err := Undo(context.Background(), f.acct, f.dst, f.l, UndoOptions{Execute: true})
	if err != nil {
		t.Fatalf("Undo: %v", err)
	}
	return sum
}

// moveAll puts every message of one mailbox into another and deletes the
// first: what a rename looks like from outside (the mem store has no
// RENAME; the new mailbox gets a new UIDVALIDITY).
func moveAll(t *testing.T, s *mem.Store, from, to string) {
	t.Helper()
	for _, m := range s.Messages(from) {
		s.Put(to, m.Raw, m.Flags, m.InternalDate)
	}
	if err := s.DeleteMailbox(context.Background(), from); err != nil {
		t.Fatal(err)
	}
}

func lf(raw []byte) []byte { return bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")) }

func crlf(raw []byte) []byte { return bytes.ReplaceAll(lf(raw), []byte("\n"), []byte("\r\n")) }

// longMsg has a body of several KiB, longer than the fingerprint's body
// prefix.
func longMsg(i int) []byte {
	return msg(i, strings.Repeat(fmt.Sprintf("long body line %d\r\n", i), 200))
}

// A mailbox renamed by the user is not a mailbox whose copies are gone:
// undo reports it, records nothing, and removes the copies once the
// mailbox is back under its name.
func TestUndoLeavesRecordsOfAMissingMailbox(t *testing.T) {
	f := newUndoFixture(t)
	moveAll(t, f.dst, "Work/2024", "Projects/2024")
	sum := undoYes(t, f)
	if sum.Status != StatusFailed {
		t.Errorf("undo status %q with a mailbox of copies not found, want failed", sum.Status)
	}
	m := undoMailboxes(sum)["Work/2024"]
	if !m.NotFound || m.Error == "" || m.Gone != 0 || m.Removed != 0 {
		t.Errorf("Work/2024: %+v, want not found, an error, nothing gone or removed", m)
	}
	if got := statuses(t, f.l, f.acct.ID, "Work/2024"); got[ledger.StatusCopied] != 3 || got[ledger.StatusRemoved] != 0 {
		t.Errorf("Work/2024 records %v, want the 3 copies still recorded as copied", got)
	}
	if n := len(f.dst.Messages("Projects/2024")); n != 3 {
		t.Errorf("the renamed mailbox holds %d messages, want its 3 untouched", n)
	}
	if m := undoMailboxes(sum)["INBOX"]; m.Removed != 9 {
		t.Errorf("INBOX: %+v, want the other mailboxes undone all the same", m)
	}
	if acc, _, _ := f.l.Account(f.acct.ID); acc.State != ledger.AccountFailed {
		t.Errorf("account state %q, want failed", acc.State)
	}

	// The admin renames it back: undo now finds the copies by content.
	moveAll(t, f.dst, "Projects/2024", "Work/2024")
	sum = undoYes(t, f)
	if sum.Status != StatusOK {
		t.Fatalf("undo after the rename back: %+v", sum)
	}
	if m := undoMailboxes(sum)["Work/2024"]; m.Removed != 3 || !m.MailboxDeleted {
		t.Errorf("Work/2024 after the rename back: %+v, want 3 removed and the mailbox deleted", m)
	}
	// And once undo itself deleted the mailbox, its absence is no problem.
	if sum := undoYes(t, f); sum.Status != StatusOK {
		t.Errorf("undo after undo deleted the mailbox: %+v", sum)
	}
}

// A renumbered destination mailbox (new UIDVALIDITY, same messages): the
// copies are found again by content and removed; mail that was there
// before, including the duplicate of a source message, stays.
func TestUndoAfterDestinationRenumbered(t *testing.T) {
	f := newUndoFixture(t)
	f.dst.Recreate("INBOX")
	sum := undoYes(t, f)
	if sum.Status != StatusOK {
		t.Fatalf("undo: %+v", sum)
	}
	want := []string{hashLine(f.preexisting), hashLine(msg(99, "cloud only")), hashLine(f.arrived)}
	sort.Strings(want)
	if got := multiset(f.dst, "INBOX"); !slices.Equal(got, want) {
		t.Errorf("INBOX after undo:\n got %v\nwant %v", got, want)
	}
	if m := undoMailboxes(sum)["INBOX"]; m.Removed != 9 || m.Gone != 0 || m.Keep != 3 {
		t.Errorf("INBOX: %+v, want 9 removed, none gone, 3 kept", m)
	}
	if got := statuses(t, f.l, f.acct.ID, "INBOX"); got[ledger.StatusRemoved] != 9 || got[ledger.StatusDuplicate] != 1 {
		t.Errorf("INBOX records %v, want 9 removed and the duplicate", got)
	}
	if again := undoYes(t, f); again.Status != StatusOK || undoMailboxes(again)["INBOX"].Remove != 0 {
		t.Errorf("second undo: %+v", again)
	}
}

// After a renumbering, a message identical to a copy that no record
// accounts for (the user filed it again) makes that copy a guess: both are
// kept and reported, the other copies are removed.
func TestUndoAfterRenumberingKeepsWhatItCannotTellApart(t *testing.T) {
	f := newUndoFixture(t)
	f.dst.Recreate("INBOX")
	f.dst.Put("INBOX", msg(5, ""), nil, testDate)
	sum := undoYes(t, f)
	if sum.Status != StatusFailed {
		t.Errorf("undo status %q with a copy kept in doubt, want failed", sum.Status)
	}
	if m := undoMailboxes(sum)["INBOX"]; m.Removed != 8 || m.Unsure != 1 || m.Gone != 0 {
		t.Errorf("INBOX: %+v, want 8 removed and 1 unsure", m)
	}
	n := 0
	for _, m := range f.dst.Messages("INBOX") {
		if bytes.Equal(m.Raw, msg(5, "")) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d copies of the message in doubt left, want both", n)
	}
	if got := statuses(t, f.l, f.acct.ID, "INBOX"); got[ledger.StatusCopied] != 1 || got[ledger.StatusRemoved] != 8 {
		t.Errorf("INBOX records %v, want the copy in doubt still recorded as copied", got)
	}
}

// A mailbox deleted and created again by the user: the copies went with
// the old one and are recorded as gone, except one whose Message-ID a
// message in the new mailbox carries (it could be the copy, changed): that
// one is kept in the checkpoint and reported. The user's mail stays.
func TestUndoRecreatedMailbox(t *testing.T) {
	f := newUndoFixture(t)
	if err := f.dst.DeleteMailbox(context.Background(), "Work/2024"); err != nil {
		t.Fatal(err)
	}
	users := []byte("Message-ID: <m21@example.org>\r\nSubject: another message, same id\r\n\r\nnot the copy\r\n")
	f.dst.Put("Work/2024", msg(200, "the user's"), nil, testDate)
	f.dst.Put("Work/2024", users, nil, testDate)
	sum := undoYes(t, f)
	m := undoMailboxes(sum)["Work/2024"]
	if m.Removed != 0 || m.Gone != 2 || m.Unsure != 1 || m.Keep != 2 || m.MailboxDeleted {
		t.Errorf("Work/2024: %+v, want 2 gone, 1 unsure, 2 kept, the mailbox kept", m)
	}
	if n := len(f.dst.Messages("Work/2024")); n != 2 {
		t.Errorf("Work/2024 holds %d messages, want the user's 2", n)
	}
	if got := statuses(t, f.l, f.acct.ID, "Work/2024"); got[ledger.StatusRemoved] != 2 || got[ledger.StatusCopied] != 1 {
		t.Errorf("Work/2024 records %v, want 2 removed and 1 still copied", got)
	}
}

// normalisingFixture migrates bare-LF messages to a destination that
// stores them with CRLF (as Dovecot serves such mail), so every copy's
// size, and so its fingerprint, differs from its source's.
func normalisingFixture(t *testing.T) *undoFixture {
	f := &undoFixture{src: mem.New(), dst: mem.New(), l: openLedger(t)}
	f.acct = BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}
	f.dst.Normalize = crlf
	for i := range 6 {
		f.src.Put("INBOX", lf(msg(i, "")), nil, testDate)
	}
	for i := range 3 {
		f.src.Put("INBOX", lf(longMsg(10+i)), nil, testDate)
	}
	f.src.Put("INBOX", lf(noID(1)), nil, testDate)
	f.src.Put("Work", lf(msg(30, "work")), nil, testDate)
	f.preexisting = msg(2, "") // the CRLF form of a source message: a duplicate
	f.dst.Put("INBOX", f.preexisting, nil, testDate)
	f.dst.Put("INBOX", msg(99, "cloud only"), nil, testDate)
	sum := run(t, f.src, f.dst, f.l, Options{QuietWait: time.Millisecond})
	if tot := sum.Totals(); tot.Copied != 10 || tot.Duplicate != 1 {
		t.Fatalf("setup: totals %+v, want 10 copied and 1 duplicate", tot)
	}
	return f
}

// A destination that changed the copies' line ends: undo removes every
// copy at its APPENDUID (by Message-ID, or by content for the one
// without), and keeps what was there.
func TestUndoOnNormalisingServer(t *testing.T) {
	f := normalisingFixture(t)
	sum := undoYes(t, f)
	if sum.Status != StatusOK {
		t.Fatalf("undo: %+v", sum)
	}
	if m := undoMailboxes(sum)["INBOX"]; m.Removed != 9 || m.Mismatch != 0 || m.Keep != 2 {
		t.Errorf("INBOX: %+v, want 9 removed, no mismatch, 2 kept", m)
	}
	want := []string{hashLine(f.preexisting), hashLine(msg(99, "cloud only"))}
	sort.Strings(want)
	if got := multiset(f.dst, "INBOX"); !slices.Equal(got, want) {
		t.Errorf("INBOX after undo:\n got %v\nwant %v", got, want)
	}
	if slices.Contains(f.dst.Names(), "Work") {
		t.Errorf("Work (created by mailferry, now empty) still exists")
	}
}

// The same destination, renumbered as well: the copies with a Message-ID
// are found by it and their content; the one without cannot be told from
// other mail without a Message-ID, so it is kept and reported.
func TestUndoOnNormalisingServerAfterRenumbering(t *testing.T) {
	f := normalisingFixture(t)
	f.dst.Recreate("INBOX")
	sum := undoYes(t, f)
	if m := undoMailboxes(sum)["INBOX"]; m.Removed != 8 || m.Unsure != 1 || m.Keep != 3 {
		t.Errorf("INBOX: %+v, want 8 removed, the one without Message-ID unsure, 3 kept", m)
	}
	want := []string{hashLine(f.preexisting), hashLine(msg(99, "cloud only")), hashLine(crlf(noID(1)))}
	sort.Strings(want)
	if got := multiset(f.dst, "INBOX"); !slices.Equal(got, want) {
		t.Errorf("INBOX after undo:\n got %v\nwant %v", got, want)
	}
}

// A message at a recorded UID that is another message (a server that
// broke the UID rules) is kept and reported.
func TestUndoKeepsAnotherMessageAtARecordedUID(t *testing.T) {
	f := newUndoFixture(t)
	var uid providers.UID
	for _, m := range f.dst.Messages("INBOX") {
		if bytes.Equal(m.Raw, msg(7, "")) {
			uid = m.UID
		}
	}
	f.dst.Replace("INBOX", uid, msg(77, "someone else's"))
	sum := undoYes(t, f)
	if m := undoMailboxes(sum)["INBOX"]; m.Mismatch != 1 || m.Removed != 8 {
		t.Errorf("INBOX: %+v, want 1 mismatch and 8 removed", m)
	}
	if sum.Status != StatusFailed {
		t.Errorf("undo status %q, want failed", sum.Status)
	}
}

// mergedLedger is a ledger for two source mailboxes, A and B, copied into
// one destination INBOX, with records written as a crash or a server
// without UIDPLUS leaves them.
func mergedLedger(t *testing.T, dst *mem.Store, a, b []ledger.Record) *ledger.Memory {
	t.Helper()
	l := openLedger(t)
	mb, err := dst.Mailbox(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	v := mb.Info().UIDValidity
	for name, recs := range map[string][]ledger.Record{"A": a, "B": b} {
		if err := l.PutMailbox("acct", name, ledger.MailboxRecord{Source: name, Dest: "INBOX", SrcValidity: 1, DstValidity: v, DstBaseline: 2}); err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			recs[i].DstValidity = v
		}
		if err := l.PutRecords("acct", name, recs); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func recordOf(key uint32, raw []byte, st ledger.Status, dstUID, uidNext uint32) ledger.Record {
	k := providers.KeyOf(raw)
	return ledger.Record{RecordKey: ledger.RecordKey{SrcValidity: 1, SrcUID: key}, Status: st,
		DstUID: dstUID, DstUIDNext: uidNext, Size: int64(len(raw)), Fingerprint: k.Fingerprint, MessageID: k.MessageID}
}

// A copy the server confirmed without a UID is found before a pending
// record of another source mailbox (same destination, same content, an
// APPEND that never happened) can take it: the ledger then says which
// copy was removed, and the pending one stays pending.
func TestUndoFindsConfirmedCopiesBeforePendingOnes(t *testing.T) {
	dst := mem.New()
	x := msg(1, "")
	dst.Put("INBOX", msg(50, "older"), nil, testDate)
	dst.Put("INBOX", x, nil, testDate) // B's copy, UID 2
	l := mergedLedger(t, dst,
		[]ledger.Record{recordOf(1, x, ledger.StatusPending, 0, 2)},
		[]ledger.Record{recordOf(5, x, ledger.StatusCopied, 0, 2)})
	sum, err := Undo(context.Background(), BatchAccount{ID: "acct"}, dst, l, UndoOptions{Execute: true})
	if err != nil || sum.Status != StatusOK {
		t.Fatalf("undo: %v %+v", err, sum)
	}
	if got := multiset(dst, "INBOX"); !slices.Equal(got, []string{hashLine(msg(50, "older"))}) {
		t.Errorf("INBOX after undo: %v, want only the older message", got)
	}
	if got := statuses(t, l, "acct", "B"); got[ledger.StatusRemoved] != 1 {
		t.Errorf("B's records %v, want its copy recorded as removed", got)
	}
	if got := statuses(t, l, "acct", "A"); got[ledger.StatusPending] != 1 {
		t.Errorf("A's records %v, want the pending one left pending", got)
	}
}

// A pending record never takes a message another source mailbox's record
// holds, even one with its content that arrived after its UIDNEXT.
func TestUndoPendingNeverTakesAClaimedMessage(t *testing.T) {
	dst := mem.New()
	x := msg(1, "")
	dst.Put("INBOX", msg(50, "older"), nil, testDate)
	dst.Put("INBOX", x, nil, testDate) // UID 2: B's duplicate
	l := mergedLedger(t, dst,
		[]ledger.Record{recordOf(1, x, ledger.StatusPending, 0, 2)},
		[]ledger.Record{recordOf(5, x, ledger.StatusDuplicate, 2, 0)})
	sum, err := Undo(context.Background(), BatchAccount{ID: "acct"}, dst, l, UndoOptions{Execute: true})
	if err != nil || sum.Status != StatusOK {
		t.Fatalf("undo: %v %+v", err, sum)
	}
	if n := len(dst.Messages("INBOX")); n != 2 {
		t.Errorf("INBOX holds %d messages after undo, want both kept", n)
	}
}

// After a renumbering, a message that was there before and is identical
// to a copy (two identical source messages: one found there, one copied)
// is the duplicate's: one of the two is removed, one stays.
func TestUndoAfterRenumberingKeepsThePreexistingTwin(t *testing.T) {
	src, dst, l := mem.New(), mem.New(), openLedger(t)
	for _, i := range []int{1, 1, 2, 3} {
		src.Put("INBOX", msg(i, ""), nil, testDate)
	}
	dst.Put("INBOX", msg(1, ""), nil, testDate)
	setup := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	if tot := setup.Totals(); tot.Copied != 3 || tot.Duplicate != 1 {
		t.Fatalf("setup: totals %+v, want 3 copied and 1 duplicate", tot)
	}
	dst.Recreate("INBOX")
	acct := BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}
	sum, err := Undo(context.Background(), acct, dst, l, UndoOptions{Execute: true})
	if err != nil || sum.Status != StatusOK {
		t.Fatalf("undo: %v %+v", err, sum)
	}
	if got := multiset(dst, "INBOX"); !slices.Equal(got, []string{hashLine(msg(1, ""))}) {
		t.Errorf("INBOX after undo: %v, want the one message that was there before", got)
	}
}

// A mailbox undo deleted itself (created by mailferry, empty) is done,
// even if a record whose APPEND never happened is left pending in it.
func TestUndoMailboxItDeletedIsDone(t *testing.T) {
	dst, l := mem.New(), openLedger(t)
	if err := dst.CreateMailbox(context.Background(), "Work", ""); err != nil {
		t.Fatal(err)
	}
	mb, err := dst.Mailbox(context.Background(), "Work")
	if err != nil {
		t.Fatal(err)
	}
	v := mb.Info().UIDValidity
	if err := l.PutMailbox("acct", "Work", ledger.MailboxRecord{Source: "Work", Dest: "Work", SrcValidity: 1, DstValidity: v, DstBaseline: 1, Created: true}); err != nil {
		t.Fatal(err)
	}
	rec := recordOf(1, msg(1, ""), ledger.StatusPending, 0, 1)
	rec.DstValidity = v
	if err := l.PutRecords("acct", "Work", []ledger.Record{rec}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		sum, err := Undo(context.Background(), BatchAccount{ID: "acct"}, dst, l, UndoOptions{Execute: true})
		if err != nil || sum.Status != StatusOK {
			t.Fatalf("undo %d: %v %+v", i+1, err, sum)
		}
		if m := undoMailboxes(sum)["Work"]; i == 0 && !m.MailboxDeleted {
			t.Errorf("first undo: %+v, want the empty mailbox deleted", m)
		}
	}
	if got := statuses(t, l, "acct", "Work"); got[ledger.StatusPending] != 1 {
		t.Errorf("records %v, want the pending one left as it was", got)
	}
}

// A copy the server confirmed without a UID that is not found where it
// must be is recorded as gone only when no message there carries its
// Message-ID; one that may be there, changed, is kept and reported.
func TestUndoConfirmedCopyWithoutUIDNotFound(t *testing.T) {
	dst := mem.New()
	dst.Put("INBOX", msg(50, "older"), nil, testDate)
	changed := []byte("Message-ID: <m2@example.org>\r\nSubject: rewritten by the server\r\n\r\nother bytes\r\n")
	dst.Put("INBOX", changed, nil, testDate) // UID 2
	l := mergedLedger(t, dst, nil, []ledger.Record{
		recordOf(1, msg(1, ""), ledger.StatusCopied, 0, 2), // nothing carries <m1@example.org>
		recordOf(2, msg(2, ""), ledger.StatusCopied, 0, 2),
	})
	sum, err := Undo(context.Background(), BatchAccount{ID: "acct"}, dst, l, UndoOptions{Execute: true})
	if err != nil {
		t.Fatal(err)
	}
	if m := undoMailboxes(sum)["INBOX"]; m.Gone != 1 || m.Unsure != 1 || m.Removed != 0 || sum.Status != StatusFailed {
		t.Errorf("undo: %+v, want 1 gone, 1 unsure, nothing removed, status failed", sum)
	}
	if got := statuses(t, l, "acct", "B"); got[ledger.StatusRemoved] != 1 || got[ledger.StatusCopied] != 1 {
		t.Errorf("records %v, want the gone copy recorded removed and the other left copied", got)
	}
	if n := len(dst.Messages("INBOX")); n != 2 {
		t.Errorf("INBOX holds %d messages, want both kept", n)
	}
}
