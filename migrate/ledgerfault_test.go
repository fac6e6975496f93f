package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

// ledgerCounts counts an account's records by status, per mailbox.
func ledgerCounts(t *testing.T, l ledger.Ledger, account string) map[string]map[ledger.Status]int {
	t.Helper()
	out := map[string]map[ledger.Status]int{}
	err := l.Mailboxes(account, func(name string, _ ledger.MailboxRecord) error {
		out[name] = map[ledger.Status]int{}
		return l.Records(account, name, func(r ledger.Record) error { out[name][r.Status]++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCheckpointFailsMidRun: a checkpoint that stops taking writes part
// way through a run (disk full, file gone) stops that account with an
// error that says so; the summary never counts as copied a message whose
// record did not commit; and the next run, with the checkpoint writable
// again, finishes the copy exactly: every source message once on the
// destination, nothing twice, and the mailbox it created recorded as its
// own (the CREATE intent, when the fault hit the write after the CREATE). Tried with the fault at every write of the
// first run.
func TestCheckpointFailsMidRun(t *testing.T) {
	diskFull := errors.New("write run.db: no space left on device")
	const id = "alice\x00alice"
	seed := func() (src *mem.Store) {
		src = mem.New()
		for i := range 40 {
			src.Put("INBOX", msg(i, ""), []string{`\Seen`}, testDate)
		}
		for i := range 12 {
			src.Put("Work/Projects", msg(100+i, "work"), nil, testDate)
		}
		src.Put("INBOX", noID(1), nil, testDate)
		return src
	}
	opts := Options{BatchSize: 4, QuietWait: time.Millisecond}

	// How many writes an undisturbed run makes: the fault goes at each.
	probe := ledger.NewMemory()
	run(t, seed(), mem.New(), probe, opts)
	writes := probe.Writes()
	if writes < 10 {
		t.Fatalf("an undisturbed run makes %d writes; the test needs more", writes)
	}
	for n := range writes {
		t.Run(fmt.Sprintf("after%d", n), func(t *testing.T) {
			src, dst, l := seed(), mem.New(), ledger.NewMemory()
			l.FailAfter(n, diskFull)
			acct := Account{ID: id, SourceUser: "alice", DestUser: "alice", Source: src, Dest: dst}
			sum, err := Migrate(context.Background(), acct, l, opts)
			if err == nil {
				err = errors.New(sum.Error)
			}
			if !errors.Is(err, diskFull) && !strings.Contains(err.Error(), diskFull.Error()) {
				t.Fatalf("run with a failing checkpoint: %v (status %q), want the checkpoint's error", err, sum.Status)
			}
			if sum.Status == "ok" {
				t.Errorf("the account is %q after its checkpoint failed", sum.Status)
			}
			if !strings.Contains(err.Error(), "checkpoint") && !strings.Contains(err.Error(), "ledger") {
				t.Errorf("the error does not say the checkpoint failed: %v", err)
			}
			// Never a copy counted that the ledger does not hold.
			counts := ledgerCounts(t, l, id)
			for _, m := range sum.Mailboxes {
				if got := counts[m.Source][ledger.StatusCopied]; m.Copied > got || m.New > got {
					t.Errorf("%s: summary says %d copied (%d new), the ledger holds %d", m.Source, m.Copied, m.New, got)
				}
			}

			l.Heal()
			again := run(t, src, dst, l, opts)
			if !again.OK() {
				t.Fatalf("the resumed run: %+v", again)
			}
			for _, mb := range []string{"INBOX", "Work/Projects"} {
				if got, want := multiset(dst, mb), multiset(src, mb); !slices.Equal(got, want) {
					t.Errorf("%s after the resume: %d messages, want the source's %d exactly", mb, len(got), len(want))
				}
			}
			counts = ledgerCounts(t, l, id)
			if c := counts["INBOX"]; c[ledger.StatusCopied]+c[ledger.StatusDuplicate] != 41 || c[ledger.StatusPending] != 0 {
				t.Errorf("INBOX records after the resume %v, want 41 settled, none pending", c)
			}
			if rec, _, _ := l.Mailbox(id, "Work/Projects"); !rec.Created || len(rec.Creating) > 0 {
				t.Errorf("Work/Projects is not recorded as created by mailferry (its CREATE intent unsettled?): %+v", rec)
			}
			tot := again.Totals()
			if tot.Copied+tot.Duplicate != 53 {
				t.Errorf("resumed totals %+v, want 53 copied or duplicate", tot)
			}
			if again.Class == providers.ClassRun.String() {
				t.Errorf("the resumed run ended with a run error: %s", again.Error)
			}
		})
	}
}
