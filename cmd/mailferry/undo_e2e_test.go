package main

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// undoPair migrates a source with two mailboxes into a destination that
// already had mail, then delivers new mail to the destination.
func undoPair(t *testing.T) (p *pair, before map[string][]string) {
	p = newPair(t, imaptest.DovecotOptions{})
	inbox, _ := seed(t, p.src, "INBOX", 120, 1<<10, 8<<10, 21)
	seed(t, p.src, "Projects/Alpha", 30, 1<<10, 4<<10, 22)
	rng := rand.New(rand.NewPCG(9, 9))
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// On the destination before the migration: one message the source
	// also has (a duplicate, not a copy) and one it does not.
	p.dst.Seed(t, "alice", "INBOX", []imaptest.SeedMessage{inbox[4], {Raw: genMessage(rng, "cloud", 1, 3000), InternalDate: now}})
	if r := p.migrate(t, nil); r.code != 0 {
		t.Fatalf("migrate exit %d\n%s", r.code, r.stderr)
	}
	// After the migration: new mail arrives, and the user files a message
	// into a folder mailferry created.
	p.dst.Seed(t, "alice", "INBOX", []imaptest.SeedMessage{{Raw: genMessage(rng, "cloud", 2, 4000), Flags: []string{`\Seen`}, InternalDate: now}})
	p.dst.Seed(t, "alice", "Projects", []imaptest.SeedMessage{{Raw: genMessage(rng, "cloud", 3, 2000), InternalDate: now}})
	return p, p.dstState(t)
}

// dstState is what doveadm shows of every destination mailbox.
func (p *pair) dstState(t *testing.T) map[string][]string {
	out := map[string][]string{}
	for _, mb := range p.dst.Mailboxes(t, "alice") {
		out[mb] = lineSet(p.dst.Messages(t, "alice", mb))
	}
	return out
}

func (p *pair) undo(t *testing.T, env []string, args ...string) result {
	t.Helper()
	base := []string{"undo", "--from", "imap+plain://alice@" + p.src.Addr(), "--to", "imap+plain://alice@" + p.dst.Addr(), "--checkpoint", p.ckpt, "--output", "text"}
	return runBinary(t, append(slices.Clone(p.env), env...), append(base, args...)...)
}

// wantAfterUndo checks that exactly the mail mailferry did not put there is
// left: the two messages that were there before, the one that arrived
// later, and the one the user filed (in a mailbox mailferry created, which
// must therefore stay), while the empty created mailbox is gone.
func wantAfterUndo(t *testing.T, p *pair, before map[string][]string) {
	t.Helper()
	after := p.dstState(t)
	if n := len(after["INBOX"]); n != 3 {
		t.Errorf("INBOX holds %d messages after undo, want 3 (2 from before, 1 that arrived later)", n)
	}
	for _, m := range after["INBOX"] {
		if !slices.Contains(before["INBOX"], m) {
			t.Errorf("INBOX holds a message it did not hold before undo")
		}
	}
	if !slices.Equal(after["Projects"], before["Projects"]) || len(after["Projects"]) != 1 {
		t.Errorf("Projects (the user filed mail there) changed: %d messages", len(after["Projects"]))
	}
	if _, ok := after["Projects/Alpha"]; ok {
		t.Errorf("Projects/Alpha (created by mailferry, empty after undo) still exists")
	}
	// The source is never touched.
	if n := len(p.src.Messages(t, "alice", "INBOX")); n != 121 {
		t.Errorf("source INBOX has %d messages, want 121", n)
	}
}

func TestUndo(t *testing.T) {
	p, before := undoPair(t)
	r := p.undo(t, nil, "-v")
	if r.code != 0 || !strings.Contains(r.stdout, "DRY RUN") {
		t.Fatalf("dry run exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "INBOX") || !strings.Contains(r.stdout, "delete (created by mailferry") {
		t.Errorf("dry run does not show its plan:\n%s", r.stdout)
	}
	after := p.dstState(t)
	for mb, msgs := range before {
		if !slices.Equal(after[mb], msgs) {
			t.Errorf("the dry run changed %s", mb)
		}
	}
	r = p.undo(t, nil, "--yes")
	if r.code != 0 {
		t.Fatalf("undo exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	wantAfterUndo(t, p, before)
	// Again: nothing more to do.
	r = p.undo(t, nil, "--yes", "--output", "json")
	if r.code != 0 || strings.Contains(r.stdout, `"removed": 1`) {
		t.Errorf("second undo: exit %d\n%s", r.code, r.stdout)
	}
	wantAfterUndo(t, p, before)
}

func TestUndoKilledAndResumed(t *testing.T) {
	for _, at := range []string{"removed:1", "removed:3", "undo_mailbox:1"} {
		t.Run(at, func(t *testing.T) {
			p, before := undoPair(t)
			r := p.undo(t, []string{crashEnv + "=" + at}, "--yes", "--chunk", "10")
			if !r.killed {
				t.Fatalf("undo was not killed at %s: exit %d\n%s", at, r.code, r.stderr)
			}
			r = p.undo(t, nil, "--yes")
			if r.code != 0 {
				t.Fatalf("resumed undo exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			wantAfterUndo(t, p, before)
		})
	}
}
