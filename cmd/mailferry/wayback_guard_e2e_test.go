package main

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// aliceState is every mailbox of alice on d with its messages' content
// and flags.
func aliceState(t *testing.T, d *imaptest.Dovecot) []string {
	var out []string
	for _, mb := range d.Mailboxes(t, "alice") {
		for _, m := range d.Messages(t, "alice", mb) {
			out = append(out, mb+" "+m.SHA256+" "+strings.Join(m.Flags, ","))
		}
		out = append(out, mb)
	}
	sort.Strings(out)
	return out
}

func fileSum(t *testing.T, path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// runDoneTotals are the totals of a run_done JSON line.
func runDoneTotals(t *testing.T, stdout string) map[string]any {
	t.Helper()
	for _, ev := range jsonEvents(t, stdout) {
		if ev["event"] == "run_done" {
			tot, _ := ev["totals"].(map[string]any)
			return tot
		}
	}
	t.Fatalf("no run_done line:\n%s", stdout)
	return nil
}

// TestReverseDryRunAndUndoGuard: after a cutover, undo --yes refuses while
// no reverse has carried back what users did on the destination;
// reverse --dry-run shows what the real reverse then does, to the message,
// and changes nothing on either server nor in the checkpoint; after the
// reverse, undo runs.
func TestReverseDryRunAndUndoGuard(t *testing.T) {
	p, _, _ := reversePair(t)
	srcBefore, dstBefore, ckptBefore := aliceState(t, p.src), aliceState(t, p.dst), fileSum(t, p.ckpt)

	r := p.undo(t, nil, "--yes")
	if r.code != exitUsage || !strings.Contains(r.stderr, "undo refused") || !strings.Contains(r.stderr, "mailferry reverse") {
		t.Fatalf("undo --yes after cutover, no reverse: exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
	if r := p.undo(t, nil); r.code != exitOK || !strings.Contains(r.stderr, "undo --yes will refuse") || !strings.Contains(r.stdout, "DRY RUN") {
		t.Errorf("undo dry run after cutover: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	dry := p.reverse(t, nil, "--dry-run", "--output", "json")
	if dry.code != exitOK || !strings.Contains(dry.stderr, "DRY RUN") {
		t.Fatalf("reverse --dry-run: exit %d\n%s", dry.code, dry.stderr)
	}
	if !slices.Equal(aliceState(t, p.src), srcBefore) || !slices.Equal(aliceState(t, p.dst), dstBefore) || fileSum(t, p.ckpt) != ckptBefore {
		t.Fatalf("reverse --dry-run changed a server or the checkpoint")
	}
	if v := p.reverse(t, nil, "--dry-run", "-v"); !strings.Contains(v.stdout, "would be moved likewise on the source") {
		t.Errorf("reverse --dry-run -v does not show the move it would make:\n%s", v.stdout)
	}
	real := p.reverse(t, nil, "--output", "json")
	if real.code != exitOK {
		t.Fatalf("reverse: exit %d\n%s", real.code, real.stderr)
	}
	want, got := runDoneTotals(t, real.stdout), runDoneTotals(t, dry.stdout)
	for _, k := range []string{"copied_back", "already_on_source", "flags_carried_back", "moved", "deleted"} {
		if got[k] != want[k] {
			t.Errorf("%s: the dry run said %v, the reverse did %v", k, got[k], want[k])
		}
	}
	if want["copied_back"] != float64(26) || want["moved"] != float64(1) || want["deleted"] != float64(1) {
		t.Errorf("reverse totals %v, want 26 copied back (25 new, 1 in a new folder), 1 moved, 1 deleted", want)
	}
	if r := p.undo(t, nil, "--yes"); r.code != exitOK {
		t.Errorf("undo --yes after reverse: exit %d\n%s", r.code, r.stderr)
	}
}

// TestUndoDiscardCloudChanges: --discard-cloud-changes undoes a cut-over
// account without a reverse.
func TestUndoDiscardCloudChanges(t *testing.T) {
	p := newPair(t, imaptest.DovecotOptions{})
	seed(t, p.src, "INBOX", 10, 1<<10, 2<<10, 43)
	if r := p.migrate(t, nil); r.code != exitOK {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	if r := runBinary(t, p.env, "cutover", "--checkpoint", p.ckpt, "--user", "alice"); r.code != exitOK {
		t.Fatalf("cutover: exit %d\n%s", r.code, r.stderr)
	}
	if r := p.undo(t, nil, "--yes"); r.code != exitUsage {
		t.Fatalf("undo --yes: exit %d, want %d", r.code, exitUsage)
	}
	if n := len(p.dst.Messages(t, "alice", "INBOX")); n != 11 {
		t.Fatalf("the refused undo removed mail: %d left", n)
	}
	r := p.undo(t, nil, "--yes", "--discard-cloud-changes", "--output", "json")
	if r.code != exitOK {
		t.Fatalf("undo --yes --discard-cloud-changes: exit %d\n%s", r.code, r.stderr)
	}
	if n := len(p.dst.Messages(t, "alice", "INBOX")); n != 0 {
		t.Errorf("%d copies left after undo", n)
	}
	var tot map[string]any
	if err := json.Unmarshal([]byte(mustLine(t, r.stdout, "run_done")), &struct {
		Totals *map[string]any `json:"totals"`
	}{&tot}); err != nil || tot["removed"] != float64(11) {
		t.Errorf("undo totals %v (%v), want 11 removed", tot, err)
	}
}

// mustLine returns the JSON line of an event.
func mustLine(t *testing.T, stdout, event string) string {
	t.Helper()
	for _, line := range strings.Split(stdout, "\n") {
		if strings.Contains(line, `"event":"`+event+`"`) {
			return line
		}
	}
	t.Fatalf("no %s line:\n%s", event, stdout)
	return ""
}
