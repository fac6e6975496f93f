package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
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
	// A flag that differs on the destination before cutover is not a
	// user's change after it: reverse must leave the original's flags.
	before := p.dst.Messages(t, "alice", "INBOX")
	p.dst.Doveadm(t, "flags", "add", "-u", "alice", "$BeforeCutover", "mailbox", "INBOX", "uid", itoa(before[len(before)-1].UID))
	if r := runBinary(t, p.env, "cutover", "--checkpoint", p.ckpt, "--user", "alice"); r.code != 0 || !cutoverRecordedAll(r.stdout, 1) {
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
	p.dst.Doveadm(t, "expunge", "-u", "alice", "mailbox", "INBOX", "uid", itoa(dmsgs[2].UID))
	p.dst.Seed(t, "alice", "Cloud/Projects", []imaptest.SeedMessage{{Raw: genMessage(rng, "cloud-folder", 1, 3000), Flags: []string{`\Seen`}, InternalDate: time.Now()}})
	return p, original, changed
}

func (p *pair) reverse(t *testing.T, env []string, args ...string) result {
	t.Helper()
	base := []string{"reverse", "--from", "imap+plain://alice@" + p.src.Addr(), "--to", "imap+plain://alice@" + p.dst.Addr(), "--checkpoint", p.ckpt, "--output", "text"}
	return runBinary(t, append(slices.Clone(p.env), env...), append(base, args...)...)
}

// checkReversed: the source holds every original, unchanged, in INBOX or,
// for the one moved on the destination, in Archive, plus what was new on
// the destination, with the destination's flags, once.
func checkReversed(t *testing.T, p *pair, original []string, changed imaptest.Message) {
	t.Helper()
	inbox := p.src.Messages(t, "alice", "INBOX")
	archive := p.src.Messages(t, "alice", "Archive")
	have := map[string]int{}
	for _, m := range append(slices.Clone(inbox), archive...) {
		have[m.SHA256]++
	}
	for _, sha := range original {
		if have[sha] == 0 {
			t.Errorf("an original source message is gone")
		}
		have[sha]--
	}
	newCount := 0
	for _, m := range append(slices.Clone(inbox), archive...) {
		if slices.Contains(m.Flags, "$BeforeCutover") {
			t.Errorf("a flag set on the destination before cutover was carried back")
		}
	}
	for _, m := range inbox {
		if slices.Contains(m.Flags, "$Cloud") {
			newCount++
		}
		// On the destination the flags were replaced by \Flagged
		// $Important: the read state and flag come back, the new keyword
		// is added, and the original's keywords stay (reverse never strips
		// a keyword, see docs/rollback.md).
		want := []string{"$Important", `\Flagged`}
		for _, f := range changed.Flags {
			if !strings.HasPrefix(f, `\`) && !slices.Contains(want, f) {
				want = append(want, f)
			}
		}
		slices.Sort(want)
		if m.SHA256 == changed.SHA256 && !slices.Equal(m.Flags, want) {
			t.Errorf("flags changed on the destination were not carried back: %v, want %v", m.Flags, want)
		}
	}
	if len(inbox) != len(original)-1+25 || newCount != 25 {
		t.Errorf("source INBOX has %d messages (%d new), want %d - 1 moved + 25: no duplicates, nothing missing", len(inbox), newCount, len(original))
	}
	if len(archive) != 1 || !slices.Contains(original, archive[0].SHA256) {
		t.Errorf("source Archive has %d messages, want the original moved there as on the destination", len(archive))
	}
	if n := len(p.src.Messages(t, "alice", "Cloud/Projects")); n != 1 {
		t.Errorf("source Cloud/Projects has %d messages, want 1", n)
	}
}

func TestReverse(t *testing.T) {
	p, original, changed := reversePair(t)
	r := p.reverse(t, nil, "-v")
	if r.code != 0 {
		t.Fatalf("reverse exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "moved on the source to \"Archive\" too") || !strings.Contains(r.stdout, "deleted on the destination stay on the source") {
		t.Errorf("reverse does not report the move and the deletion:\n%s", r.stdout)
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
	if r := p.reverse(t, nil, "-v"); r.code != 0 || !strings.Contains(r.stdout, "copied back 0 new") {
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
	if r.code != 0 || len(p.src.Messages(t, "alice", "INBOX")) != len(original)-2+25 {
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

// TestReverseEveryAccountWithAdmins: reverse, undo and verify without
// --batch and without users in the URLs work on every account pair the
// checkpoint records, never on the ledger reverse keeps of its own copy
// back (it used to come back as a second pair: run twice, the new mail
// was copied back twice).
func TestReverseEveryAccountWithAdmins(t *testing.T) {
	admin := imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}, MasterUser: "master", MasterPassword: "M4ster-pw"}
	src := imaptest.StartDovecot(t, admin)
	admin.Users = map[string]string{"alice": dstPass}
	p := newPairWith(t, src, admin)
	seed(t, p.src, "INBOX", 12, 1<<10, 3<<10, 77)
	n0 := len(p.src.Messages(t, "alice", "INBOX"))
	if r := p.migrate(t, nil); r.code != 0 {
		t.Fatalf("migrate exit %d\n%s", r.code, r.stderr)
	}
	rng := rand.New(rand.NewPCG(8, 8))
	var fresh []imaptest.SeedMessage
	for i := range 5 {
		fresh = append(fresh, imaptest.SeedMessage{Raw: genMessage(rng, "arrived", i, 1500), InternalDate: time.Now()})
	}
	p.dst.Seed(t, "alice", "INBOX", fresh)
	env := []string{"MAILFERRY_FROM_ADMIN_PASSWORD=M4ster-pw", "MAILFERRY_TO_ADMIN_PASSWORD=M4ster-pw"}
	args := []string{"--from", "imap+plain://" + p.src.Addr(), "--from-admin", "master", "--to", "imap+plain://" + p.dst.Addr(), "--to-admin", "master", "--checkpoint", p.ckpt}
	for i := range 2 {
		if r := runBinary(t, env, append([]string{"reverse"}, args...)...); r.code != 0 {
			t.Fatalf("reverse %d: exit %d\n%s\n%s", i+1, r.code, r.stdout, r.stderr)
		}
		if n := len(p.src.Messages(t, "alice", "INBOX")); n != n0+5 {
			t.Fatalf("after reverse %d the source INBOX holds %d messages, want %d + 5", i+1, n, n0)
		}
	}
	// Verify goes over the one pair, and what reverse copied to the source
	// is not mail left to migrate.
	r := runBinary(t, env, append([]string{"verify", "--output", "text"}, args...)...)
	if n := len(regexp.MustCompile(`(?m)^(PASS|FAIL) `).FindAllString(r.stdout, -1)); n != 1 || r.code != 0 {
		t.Errorf("verify of every account: exit %d, %d account(s), want 0 and 1:\n%s", r.code, n, r.stdout)
	}
}

// TestWayBackOutputs: verify, reverse and undo report like migrate: one
// JSON object per event on stdout (account_start, account_done with the
// account's result, run_done with all of them), the summary on stderr, and
// --report as CSV.
func TestWayBackOutputs(t *testing.T) {
	p, _, _ := reversePair(t)
	base := []string{"--from", "imap+plain://alice@" + p.src.Addr(), "--to", "imap+plain://alice@" + p.dst.Addr(), "--checkpoint", p.ckpt, "--output", "json"}
	for _, c := range []struct {
		cmd    string
		column string // a column of its CSV report
		extra  []string
	}{
		{"reverse", "moves_carried_back", nil},
		{"verify", "verdict", nil},
		{"undo", "already_gone", nil},
	} {
		report := filepath.Join(t.TempDir(), c.cmd+".csv")
		r := runBinary(t, p.env, append(append([]string{c.cmd, "--report", report}, base...), c.extra...)...)
		if r.code != 0 && r.code != 1 {
			t.Fatalf("%s exit %d\n%s", c.cmd, r.code, r.stderr)
		}
		kinds := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var ev struct {
				Event  string          `json:"event"`
				Source string          `json:"source_user"`
				Status string          `json:"status"`
				Result json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("%s: stdout line is not JSON: %q", c.cmd, line)
			}
			kinds[ev.Event]++
			if ev.Event == "account_done" && (ev.Source != "alice" || ev.Status == "" || len(ev.Result) == 0) {
				t.Errorf("%s: account_done %s", c.cmd, line)
			}
		}
		if kinds["account_start"] != 1 || kinds["account_done"] != 1 || kinds["run_done"] != 1 {
			t.Errorf("%s: events %v, want one account_start, account_done and run_done", c.cmd, kinds)
		}
		if !strings.Contains(r.stderr, "alice") {
			t.Errorf("%s: no summary on stderr:\n%s", c.cmd, r.stderr)
		}
		b, err := os.ReadFile(report)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil || len(rows) != 2 || !slices.Contains(rows[0], c.column) || rows[1][0] != "alice" {
			t.Errorf("%s: CSV report %q, %v", c.cmd, b, err)
		}
	}
}

// cutoverRecordedAll reports whether cutover's output says, for each of
// accounts accounts, that it recorded UIDNEXT and HIGHESTMODSEQ for every
// destination mailbox, and names none it could not read.
func cutoverRecordedAll(out string, accounts int) bool {
	re := regexp.MustCompile(`of (\d+) destination mailbox\(es\): UIDNEXT recorded for (\d+), HIGHESTMODSEQ for (\d+)(?:, (\d+) empty and not numbered)?`)
	m := re.FindAllStringSubmatch(out, -1)
	if len(m) != accounts || strings.Contains(out, "not recorded") {
		return false
	}
	for _, g := range m {
		n := make([]int, 5)
		for i := 1; i < 5; i++ {
			n[i], _ = strconv.Atoi(g[i])
		}
		// Empty mailboxes never copied into have nothing to record.
		if n[1] == 0 || n[1] != n[2]+n[4] || n[1] != n[3]+n[4] {
			return false
		}
	}
	return true
}
