package main

import (
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// reversePair migrates, records cutover, and then plays users working on
// the destination: new mail, changed flags, a moved message, a new folder.
func reversePair(t *testing.T) (p *pair, original []string, changed imaptest.Message) {
	p = newPair(t, imaptest.DovecotOptions{})
	seed(t, p.src, "INBOX", 40, 1<<10, 6<<10, 41)
	if r := p.migrate(t, nil); r.code != 0 {
		t.Fatalf("migrate exit %d\n%s", r.code, r.stderr)
	}
	for _, m := range p.src.Messages(t, "alice", "INBOX") {
		original = append(original, m.SHA256)
	}
	if r := runBinary(t, p.env, "cutover", "--checkpoint", p.ckpt, "--user", "alice", "--to", "imap+plain://alice@"+p.dst.Addr()); r.code != 0 || !strings.Contains(r.stdout, "UIDNEXT of") {
		t.Fatalf("cutover exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	var fresh []imaptest.SeedMessage
	for i := range 25 {
		fresh = append(fresh, imaptest.SeedMessage{Raw: genMessage(rng, "after-cutover", i, 2000), Flags: []string{"$Cloud"}, InternalDate: time.Date(2025, 6, 1, 0, i, 0, 0, time.UTC)})
	}
	p.dst.Seed(t, "alice", "INBOX", fresh)
	dmsgs := p.dst.Messages(t, "alice", "INBOX")
	changed = dmsgs[0]
	p.dst.Doveadm(t, "flags", "replace", "-u", "alice", `\Flagged $Important`, "mailbox", "INBOX", "uid", itoa(changed.UID))
	p.dst.Doveadm(t, "move", "-u", "alice", "Archive", "mailbox", "INBOX", "uid", itoa(dmsgs[1].UID))
	p.dst.Seed(t, "alice", "Cloud/Projects", []imaptest.SeedMessage{{Raw: genMessage(rng, "cloud-folder", 1, 3000), Flags: []string{`\Seen`}, InternalDate: time.Now()}})
	return p, original, changed
}

func (p *pair) reverse(t *testing.T, env []string, args ...string) result {
	t.Helper()
	base := []string{"reverse", "--from", "imap+plain://alice@" + p.src.Addr(), "--to", "imap+plain://alice@" + p.dst.Addr(), "--checkpoint", p.ckpt}
	return runBinary(t, append(slices.Clone(p.env), env...), append(base, args...)...)
}

// checkReversed: the source holds every original, unchanged, plus what
// was new on the destination, with the destination's flags, once.
func checkReversed(t *testing.T, p *pair, original []string, changed imaptest.Message) {
	t.Helper()
	inbox := p.src.Messages(t, "alice", "INBOX")
	have := map[string]int{}
	for _, m := range inbox {
		have[m.SHA256]++
	}
	for _, sha := range original {
		if have[sha] == 0 {
			t.Errorf("an original source message is gone")
		}
		have[sha]--
	}
	newCount := 0
	for _, m := range inbox {
		if slices.Contains(m.Flags, "$Cloud") {
			newCount++
		}
		if m.SHA256 == changed.SHA256 && !slices.Equal(m.Flags, []string{"$Important", `\Flagged`}) {
			t.Errorf("flags changed on the destination were not carried back: %v", m.Flags)
		}
	}
	if len(inbox) != len(original)+25 || newCount != 25 {
		t.Errorf("source INBOX has %d messages (%d new), want %d + 25: no duplicates, nothing missing", len(inbox), newCount, len(original))
	}
	if n := len(p.src.Messages(t, "alice", "Archive")); n != 1 {
		t.Errorf("source Archive has %d messages, want the 1 moved there on the destination", n)
	}
	if n := len(p.src.Messages(t, "alice", "Cloud/Projects")); n != 1 {
		t.Errorf("source Cloud/Projects has %d messages, want 1", n)
	}
}

func TestReverse(t *testing.T) {
	p, original, changed := reversePair(t)
	r := p.reverse(t, nil)
	if r.code != 0 {
		t.Fatalf("reverse exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "moved on the destination") || !strings.Contains(r.stdout, "originals stay on the source") {
		t.Errorf("reverse does not report the move:\n%s", r.stdout)
	}
	checkReversed(t, p, original, changed)
	state := func() []string {
		var out []string
		for _, mb := range p.src.Mailboxes(t, "alice") {
			out = append(out, mb+" "+strings.Join(lineSet(p.src.Messages(t, "alice", mb)), ","))
		}
		sort.Strings(out)
		return out
	}
	before := state()
	if r := p.reverse(t, nil); r.code != 0 || !strings.Contains(r.stdout, "copied back 0 new") {
		t.Errorf("second reverse: exit %d\n%s", r.code, r.stdout)
	}
	if !slices.Equal(state(), before) {
		t.Errorf("second reverse changed the source")
	}
	// Deletions only when asked, and shown first.
	r = p.reverse(t, nil, "--propagate-deletes")
	if !slices.Equal(state(), before) || !strings.Contains(r.stdout, "DRY RUN") {
		t.Errorf("--propagate-deletes without --yes changed the source or did not say so:\n%s", r.stdout)
	}
	r = p.reverse(t, nil, "--propagate-deletes", "--yes")
	if r.code != 0 || len(p.src.Messages(t, "alice", "INBOX")) != len(original)+25-1 {
		t.Errorf("--propagate-deletes --yes: exit %d, INBOX %d\n%s", r.code, len(p.src.Messages(t, "alice", "INBOX")), r.stdout)
	}
}

func TestReverseKilledAndResumed(t *testing.T) {
	p, original, changed := reversePair(t)
	r := p.reverse(t, []string{crashEnv + "=appended:10"})
	if !r.killed {
		t.Fatalf("reverse was not killed: exit %d\n%s", r.code, r.stderr)
	}
	if r := p.reverse(t, nil); r.code != 0 {
		t.Fatalf("resumed reverse exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	checkReversed(t, p, original, changed)
}
