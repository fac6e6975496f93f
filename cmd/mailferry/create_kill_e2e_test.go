package main

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// TestKillNineBetweenCreateAndRecord kills migrate (a real SIGKILL, through
// MAILFERRY_TEST_CRASH_AT) right after the destination made a mailbox for
// mailferry's CREATE and before the ledger recorded it, at each of the
// CREATEs of a run, resumes with the same command, and undoes: undo must
// leave the destination's mailboxes as undo after an uninterrupted run
// does (before the CREATE intent, it left the mailbox killed at).
func TestKillNineBetweenCreateAndRecord(t *testing.T) {
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}})
	boxes := []string{"INBOX", "Archive/2023", "Projects/Alpha/Specs", "Work"}
	for i, mb := range boxes {
		seed(t, src, mb, 6, 1<<10, 4<<10, uint64(40+i))
	}
	undone := func(t *testing.T, p *pair) []string {
		t.Helper()
		if r := p.undo(t, nil, "--yes"); r.code != 0 {
			t.Fatalf("undo exit %d\n%s", r.code, r.stderr)
		}
		return p.dst.Mailboxes(t, "alice")
	}
	ref := newPairWith(t, src, imaptest.DovecotOptions{})
	if r := ref.migrate(t, nil); r.code != 0 {
		t.Fatalf("migrate exit %d\n%s", r.code, r.stderr)
	}
	want := undone(t, ref)
	for at := 1; at <= len(boxes)-1; at++ { // INBOX is there already: three CREATEs
		t.Run(fmt.Sprint("create", at), func(t *testing.T) {
			p := newPairWith(t, src, imaptest.DovecotOptions{})
			r := p.migrate(t, []string{fmt.Sprintf("%s=mailbox_created:%d", crashEnv, at)}, "--mailbox-workers", "1")
			if !r.killed {
				t.Fatalf("run was not killed at CREATE %d: exit %d\n%s", at, r.code, r.stderr)
			}
			if r := p.migrate(t, nil); r.code != 0 {
				t.Fatalf("resume exit %d\n%s", r.code, r.stderr)
			}
			checkSame(t, p, boxes...)
			if got := undone(t, p); !slices.Equal(got, want) {
				t.Errorf("after a kill at CREATE %d, resume and undo, the destination has %v; after an uninterrupted run and undo %v", at, got, want)
			}
		})
	}
	t.Run("undo-straight-after-the-kill", func(t *testing.T) {
		p := newPairWith(t, src, imaptest.DovecotOptions{})
		if r := p.migrate(t, []string{crashEnv + "=mailbox_created:2"}, "--mailbox-workers", "1"); !r.killed {
			t.Fatalf("run was not killed: exit %d\n%s", r.code, r.stderr)
		}
		if got := undone(t, p); !slices.Equal(got, want) {
			t.Errorf("undo straight after a kill at a CREATE leaves %v, want %v", got, want)
		}
	})
}
