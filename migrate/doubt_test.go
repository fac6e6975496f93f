package migrate

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers/mem"
)

// doubtfulMbox holds two messages and, in the first one's body, an
// unquoted "From " line after a blank line: mailferry keeps it as text, but
// another reader may start a message there.
const doubtfulMbox = "From a@example.org Mon Jan  1 00:00:00 2001\nSubject: one\n\nFavourite film:\n\n" +
	"From Russia with love\n\nthe end\n\n" + // line 6
	"From b@example.org Tue Jan  2 00:00:00 2001\nSubject: two\n\nbody two\n\n"

// TestDoubtfulCountIsWarn: a mailbox whose message count is in doubt ends
// as "warn" with the reason, in the summary, the account_done event and
// the checkpoint, in a dry run too; its messages are copied all the same,
// and the other mailboxes stay clean.
func TestDoubtfulCountIsWarn(t *testing.T) {
	dir := t.TempDir()
	writeMbox(t, filepath.Join(dir, "Films.mbox"), doubtfulMbox)
	writeMbox(t, filepath.Join(dir, "INBOX"), "From x@example.org Mon Jan  1 00:00:00 2001\nSubject: fine\n\nfine\n\n")
	for _, dry := range []bool{true, false} {
		dst := mem.New()
		lg := openLedger(t)
		var mu sync.Mutex
		var done *AccountSummary
		opts := BatchOptions{Options: Options{DryRun: dry, QuietWait: time.Millisecond, Backoff: time.Millisecond, Events: func(e Event) {
			if e.Kind == EventAccountDone {
				mu.Lock()
				done = e.Account
				mu.Unlock()
			}
		}}}
		var l ledger.Ledger = lg
		if dry {
			l = DryRun(lg)
		}
		acct := mboxAccount(t, dir, dst)
		s := RunBatch(context.Background(), []BatchAccount{acct}, l, opts)[0]
		if s.Status != StatusWarn || s.Error != "" {
			t.Errorf("dry run %v: status %q, error %q; want warn", dry, s.Status, s.Error)
		}
		checkAddsUp(t, s)
		for _, m := range s.Mailboxes {
			switch m.Source {
			case "Films":
				want := filepath.Join(dir, "Films.mbox") + ":6 (byte 75): line starting \"From \" after a blank line"
				if !strings.HasPrefix(m.Warn, "message count in doubt: source: "+want) || !strings.Contains(m.Warn, "the message count is in doubt") {
					t.Errorf("Films: warn %q, want the reason with the file, line and offset", m.Warn)
				}
				if strings.Contains(m.Warn, "Favourite") {
					t.Errorf("warn %q holds message text", m.Warn)
				}
			default:
				if m.Warn != "" {
					t.Errorf("%s: warn %q, want none", m.Source, m.Warn)
				}
			}
		}
		mu.Lock()
		if done == nil || done.Status != StatusWarn {
			t.Errorf("account_done event %+v, want status warn", done)
		}
		mu.Unlock()
		if dry {
			continue
		}
		if n := len(dst.Messages("Films")); n != 2 {
			t.Errorf("Films: %d messages copied, want 2", n)
		}
		acc, _, err := lg.Account(acct.ID)
		if err != nil {
			t.Fatal(err)
		}
		if acc.State != ledger.AccountWarn || !strings.Contains(acc.Reason, `mailbox "Films": message count in doubt`) {
			t.Errorf("checkpoint: state %q, reason %q; want warn with the reason", acc.State, acc.Reason)
		}
		// A re-run copies nothing and still warns: the file is the same.
		again := RunBatch(context.Background(), []BatchAccount{acct}, lg, opts)[0]
		if again.Status != StatusWarn || again.Totals().New != 0 {
			t.Errorf("re-run: status %q, %d new", again.Status, again.Totals().New)
		}
	}
}

// TestCleanMboxIsOK: without a doubt the same import is ok.
func TestCleanMboxIsOK(t *testing.T) {
	dir := t.TempDir()
	writeMbox(t, filepath.Join(dir, "Films.mbox"), strings.Replace(doubtfulMbox, "\nFrom Russia", "\n>From Russia", 1))
	s := RunBatch(context.Background(), []BatchAccount{mboxAccount(t, dir, mem.New())}, openLedger(t),
		BatchOptions{Options: Options{QuietWait: time.Millisecond, Backoff: time.Millisecond}})[0]
	if s.Status != StatusOK || s.Mailboxes[0].Warn != "" {
		t.Errorf("status %q, warn %q; want ok", s.Status, s.Mailboxes[0].Warn)
	}
}
