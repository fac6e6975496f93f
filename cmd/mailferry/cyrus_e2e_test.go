package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// imapServer is what the cross-server tests need of a test server. Dovecot
// and Cyrus both have it, each answering from its own view (doveadm, or a
// plain go-imap session), never through mailferry's code.
type imapServer interface {
	Addr() string
	Mailboxes(tb testing.TB, user string) []string
	Messages(tb testing.TB, user, mailbox string) []imaptest.Message
	Seed(tb testing.TB, user, mailbox string, msgs []imaptest.SeedMessage)
}

var (
	_ imapServer = (*imaptest.Dovecot)(nil)
	_ imapServer = (*imaptest.Cyrus)(nil)
)

// crossCase is one direction between two kinds of server.
type crossCase struct {
	src, dst imapServer
	// mapping is where every source mailbox (native name) must land on the
	// destination (native name). It covers every mailbox the source lists.
	mapping map[string]string
	// dstOwn are the destination's own mailboxes, there before the run.
	dstOwn []string
	// filed is the destination's "Projects", where the user files mail
	// after the migration; created are the mailboxes mailferry makes, which
	// undo must delete once they are empty again.
	filed   string
	created []string
	// expunge removes a message on the destination behind mailferry's back.
	expunge func(t *testing.T, uid uint32)
}

// crossMessages are n varied messages for box: with and without
// Message-ID, flags and keywords, dates over years, 8-bit headers, one of
// 1 MB and, for a Dovecot source, one with bare LF line ends (Dovecot
// serves them as CRLF; Cyrus refuses to store a bare LF at all).
func crossMessages(box string, n int, seedVal uint64, bareLF bool) []imaptest.SeedMessage {
	rng := rand.New(rand.NewPCG(seedVal, 11))
	flagSets := [][]string{nil, {`\Seen`}, {`\Seen`, `\Answered`, "$Forwarded"}, {`\Flagged`, "Project-X"},
		{`\Draft`, "Custom1"}, {`\Seen`, "$Label1", "Project-X"}}
	base := time.Date(2019, 11, 3, 14, 15, 16, 0, time.UTC)
	var msgs []imaptest.SeedMessage
	for i := range n {
		raw := genMessage(rng, box, i, 600+rng.IntN(3000))
		switch {
		case i == 2: // no Message-ID
			raw = []byte(strings.Replace(string(raw), fmt.Sprintf("Message-ID: <%s.%d@example.org>\r\n", strings.ReplaceAll(box, "/", "."), i), "", 1))
		case i == 3:
			raw = append([]byte("X-Note: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln, 8-bit\r\n"), raw...)
		case i == 5 && n > 20:
			raw = genMessage(rng, box, i, 1<<20)
		case i == 6 && bareLF:
			raw = []byte(fmt.Sprintf("From: lf@example.org\nSubject: %s bare LF, no id\n\nline\nline\n", box))
		}
		msgs = append(msgs, imaptest.SeedMessage{Raw: raw, Flags: flagSets[i%len(flagSets)],
			InternalDate: base.Add(time.Duration(i*797) * time.Hour)})
	}
	return msgs
}

// seedCross fills the source's INBOX and the mailboxes in names (what the
// test calls them -> what the source calls them).
func seedCross(t *testing.T, src imapServer, names map[string]string, bareLF bool) {
	src.Seed(t, "alice", "INBOX", crossMessages("INBOX", 40, 1, bareLF))
	trash := crossMessages("Trash", 3, 3, bareLF)
	trash[0].Flags = []string{`\Seen`, `\Deleted`}
	for role, n := range map[string]int{"Sent": 4, "Trash": 3, "Projects/2026": 5, "Entwürfe": 3, "Team Notes": 3, "v1.2 release": 2} {
		name, ok := names[role]
		if !ok {
			continue
		}
		msgs := crossMessages(role, n, uint64(len(role)), bareLF)
		if role == "Trash" {
			msgs = trash
		}
		src.Seed(t, "alice", name, msgs)
	}
}

// serverState is every mailbox of the user with its messages, UIDs
// included: equal states mean nothing was appended or expunged.
func serverState(t *testing.T, s imapServer) map[string][]imaptest.Message {
	out := map[string][]imaptest.Message{}
	for _, mb := range s.Mailboxes(t, "alice") {
		out[mb] = s.Messages(t, "alice", mb)
	}
	return out
}

func sameState(a, b map[string][]imaptest.Message) bool {
	return maps.EqualFunc(a, b, func(x, y []imaptest.Message) bool {
		return slices.EqualFunc(x, y, func(m, n imaptest.Message) bool {
			return m.UID == n.UID && m.SHA256 == n.SHA256 && slices.Equal(m.Flags, n.Flags) && m.InternalDate.Equal(n.InternalDate)
		})
	})
}

func testCross(t *testing.T, c crossCase) {
	start := time.Now()
	ckpt := filepath.Join(t.TempDir(), "run.db")
	env := []string{"MAILFERRY_FROM_PASSWORD=" + srcPass, "MAILFERRY_TO_PASSWORD=" + dstPass}
	endpoints := []string{"--from", "imap+plain://alice@" + c.src.Addr(), "--to", "imap+plain://alice@" + c.dst.Addr(), "--checkpoint", ckpt}
	run := func(cmd string, args ...string) result {
		t.Helper()
		return runBinary(t, env, append(append([]string{cmd}, endpoints...), args...)...)
	}

	// On the destination before the run: a message the source also has (a
	// duplicate, not a copy) and one it does not.
	foreign := imaptest.SeedMessage{Raw: genMessage(rand.New(rand.NewPCG(5, 5)), "cloud", 1, 3000), InternalDate: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	dup := crossMessages("INBOX", 40, 1, false)[4]
	c.dst.Seed(t, "alice", "INBOX", []imaptest.SeedMessage{dup, foreign})
	foreignLine := lineSet(c.dst.Messages(t, "alice", "INBOX")[1:])[0]
	srcBefore := serverState(t, c.src)
	for _, mb := range c.src.Mailboxes(t, "alice") {
		if _, ok := c.mapping[mb]; !ok {
			t.Fatalf("the test does not say where source mailbox %q goes", mb)
		}
	}

	report := filepath.Join(t.TempDir(), "report.json")
	if r := run("migrate", "--report", report); r.code != 0 {
		t.Fatalf("migrate exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	total := 0
	for _, msgs := range srcBefore {
		total += len(msgs)
	}
	if tot := readReport(t, report).Accounts[0].Totals(); tot.Seen != total || tot.Duplicate != 1 || tot.Copied != total-1 || tot.Failed != 0 {
		t.Errorf("totals %+v: want %d seen, 1 duplicate, the rest copied", tot, total)
	}

	// Every message where the mapping says, byte for byte with its flags,
	// keywords and date; the duplicate stands for its source copy.
	for from, to := range c.mapping {
		want := lineSet(srcBefore[from])
		if from == "INBOX" {
			want = slices.Sorted(slices.Values(append(want, foreignLine)))
		}
		if got := lineSet(c.dst.Messages(t, "alice", to)); !slices.Equal(got, want) {
			missing, extra := diff(want, got)
			t.Errorf("%s -> %s: %d messages, want %d; missing %q, extra %q", from, to, len(got), len(want), missing, extra)
		}
	}
	// The folder set: the mapped mailboxes and the destination's own, and
	// nothing else (no second Sent beside the destination's).
	want := slices.Sorted(maps.Values(c.mapping))
	want = slices.Compact(slices.Sorted(slices.Values(append(want, c.dstOwn...))))
	if got := c.dst.Mailboxes(t, "alice"); !slices.Equal(got, want) {
		t.Errorf("destination mailboxes\n got %q\nwant %q", got, want)
	}
	if cy, ok := c.dst.(*imaptest.Cyrus); ok {
		if su := cy.SpecialUse(t, "alice"); su[c.mapping[sentOf(c.mapping)]] != `\Sent` {
			t.Errorf("destination special use %v: the Sent mailbox lost its role", su)
		}
	}

	// A re-run copies nothing: every mailbox, UIDs included, stays as it is.
	dstAfter := serverState(t, c.dst)
	if r := run("migrate", "--report", report); r.code != 0 {
		t.Fatalf("re-run exit %d\n%s", r.code, r.stderr)
	}
	if tot := readReport(t, report).Accounts[0].Totals(); tot.New != 0 || tot.Copied != total-1 {
		t.Errorf("re-run totals %+v, want 0 new", tot)
	}
	if !sameState(serverState(t, c.dst), dstAfter) {
		t.Errorf("the re-run changed the destination")
	}

	if r := run("verify", "--deep", "--output", "text"); r.code != 0 || !strings.Contains(r.stdout, "PASS alice -> alice") {
		t.Fatalf("verify after migrate: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// A copy deleted behind mailferry's back is found.
	var victim uint32
	for _, m := range c.dst.Messages(t, "alice", "INBOX") {
		if m.SHA256 == srcBefore["INBOX"][10].SHA256 {
			victim = m.UID
		}
	}
	if victim == 0 {
		t.Fatal("the copy to delete is not on the destination")
	}
	c.expunge(t, victim)
	if r := run("verify", "--output", "text"); r.code != exitPartial || !strings.Contains(r.stdout, "missing on the destination") {
		t.Errorf("verify after a copy was deleted: exit %d\n%s", r.code, r.stdout)
	}

	// After the migration new mail arrives, and the user files a message
	// into a mailbox that holds copies.
	c.dst.Seed(t, "alice", "INBOX", []imaptest.SeedMessage{{Raw: genMessage(rand.New(rand.NewPCG(6, 6)), "cloud", 2, 4000), Flags: []string{`\Seen`}, InternalDate: time.Now()}})
	c.dst.Seed(t, "alice", c.filed, []imaptest.SeedMessage{{Raw: genMessage(rand.New(rand.NewPCG(7, 7)), "cloud", 3, 2000), InternalDate: time.Now()}})
	before := serverState(t, c.dst)

	r := run("undo", "--output", "text")
	if r.code != 0 || !strings.Contains(r.stdout, "DRY RUN") {
		t.Fatalf("undo dry run exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !sameState(serverState(t, c.dst), before) {
		t.Errorf("the dry run changed the destination")
	}
	if r := run("undo", "--yes", "--output", "text"); r.code != 0 {
		t.Fatalf("undo exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	checkUndone(t, c, before, srcBefore)
	if r := run("undo", "--yes", "--json"); r.code != 0 || strings.Contains(r.stdout, `"removed": 1`) {
		t.Errorf("second undo: exit %d\n%s", r.code, r.stdout)
	}
	checkUndone(t, c, before, srcBefore)
	t.Logf("%d messages there and back in %v", total, time.Since(start))
}

// checkUndone: exactly the mail mailferry did not put there is left (the
// two messages there before, the one that arrived later, the one the user
// filed), the mailboxes mailferry created are gone unless the user filed
// mail there, and the source is untouched.
func checkUndone(t *testing.T, c crossCase, before, srcBefore map[string][]imaptest.Message) {
	t.Helper()
	after := serverState(t, c.dst)
	for mb, msgs := range after {
		switch mb {
		case "INBOX":
			if len(msgs) != 3 {
				t.Errorf("INBOX holds %d messages after undo, want 3 (2 from before, 1 that arrived later)", len(msgs))
			}
		case c.filed: // it held no copies, only what the user filed
			if len(msgs) != 1 || !slices.Equal(lineSet(msgs), lineSet(before[mb])) {
				t.Errorf("%s holds %d messages after undo, want only the one the user filed", mb, len(msgs))
			}
		default:
			if len(msgs) != 0 {
				t.Errorf("%s holds %d messages after undo, want none", mb, len(msgs))
			}
		}
		for _, l := range lineSet(msgs) {
			if !slices.Contains(lineSet(before[mb]), l) {
				t.Errorf("%s holds a message it did not hold before undo", mb)
			}
		}
	}
	for _, mb := range c.created {
		if _, ok := after[mb]; ok {
			t.Errorf("%s (created by mailferry, empty after undo) still exists", mb)
		}
	}
	for _, mb := range append([]string{c.filed}, c.dstOwn...) {
		if _, ok := after[mb]; !ok {
			t.Errorf("%s is gone after undo; it was not mailferry's to delete", mb)
		}
	}
	if !sameState(serverState(t, c.src), srcBefore) {
		t.Errorf("the source changed")
	}
}

// sentOf returns the source name of the Sent mailbox in mapping.
func sentOf(mapping map[string]string) string {
	for from := range mapping {
		if from == "Sent" || from == "INBOX.Sent" {
			return from
		}
	}
	return ""
}

// TestDovecotToCyrus migrates from Dovecot ("/", no prefix) to Cyrus (".",
// "INBOX."), whose Sent and Trash have other names, and checks both sides
// with their own tools.
func TestDovecotToCyrus(t *testing.T) {
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}})
	dst := imaptest.StartCyrus(t, imaptest.CyrusOptions{Users: map[string]string{"alice": dstPass}, SpecialUse: map[string]string{
		"Sent Items": `\Sent`, "Deleted Items": `\Trash`, "Drafts": `\Drafts`, "Junk": `\Junk`, "Archive": `\Archive`}})
	names := map[string]string{"Sent": "Sent", "Trash": "Trash", "Projects/2026": "Projects/2026", "Entwürfe": "Entwürfe", "Team Notes": "Team Notes", "v1.2 release": "v1.2 release"}
	seedCross(t, src, names, true)
	c := crossCase{src: src, dst: dst,
		mapping: map[string]string{"INBOX": "INBOX", "Sent": "INBOX.Sent Items", "Trash": "INBOX.Deleted Items",
			"Drafts": "INBOX.Drafts", "Junk": "INBOX.Junk", "Archive": "INBOX.Archive",
			// Dovecot's "Projects" is a \Noselect parent; Cyrus makes the
			// parent of INBOX.Projects.2026 a real mailbox.
			"Projects": "INBOX.Projects", "Projects/2026": "INBOX.Projects.2026",
			"Entwürfe": "INBOX.Entwürfe", "Team Notes": "INBOX.Team Notes",
			// '.' is Cyrus's separator: the name keeps a look-alike.
			"v1.2 release": "INBOX.v1․2 release"},
		dstOwn:  []string{"INBOX", "INBOX.Sent Items", "INBOX.Deleted Items", "INBOX.Drafts", "INBOX.Junk", "INBOX.Archive"},
		filed:   "INBOX.Projects",
		created: []string{"INBOX.Projects.2026", "INBOX.Entwürfe", "INBOX.Team Notes", "INBOX.v1․2 release"},
		expunge: func(t *testing.T, uid uint32) { dst.Expunge(t, "alice", "INBOX", uid) },
	}
	testCross(t, c)
}

// TestCyrusToDovecot migrates the other way, into a Dovecot whose Sent and
// Trash have other names.
func TestCyrusToDovecot(t *testing.T) {
	src := imaptest.StartCyrus(t, imaptest.CyrusOptions{Users: map[string]string{"alice": srcPass}})
	dst := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": dstPass}, SpecialUse: map[string]string{
		"Sent Messages": `\Sent`, "Deleted Messages": `\Trash`, "Drafts": `\Drafts`, "Junk": `\Junk`, "Archive": `\Archive`}})
	names := map[string]string{"Sent": "INBOX.Sent", "Trash": "INBOX.Trash", "Projects/2026": "INBOX.Projects.2026", "Entwürfe": "INBOX.Entwürfe", "Team Notes": "INBOX.Team Notes"}
	seedCross(t, src, names, false)
	c := crossCase{src: src, dst: dst,
		mapping: map[string]string{"INBOX": "INBOX", "INBOX.Sent": "Sent Messages", "INBOX.Trash": "Deleted Messages",
			"INBOX.Drafts": "Drafts", "INBOX.Junk": "Junk", "INBOX.Archive": "Archive",
			// A real (empty) mailbox on Cyrus, so mailferry creates it.
			"INBOX.Projects": "Projects", "INBOX.Projects.2026": "Projects/2026",
			"INBOX.Entwürfe": "Entwürfe", "INBOX.Team Notes": "Team Notes"},
		dstOwn:  []string{"INBOX", "Sent Messages", "Deleted Messages", "Drafts", "Junk", "Archive"},
		filed:   "Projects",
		created: []string{"Projects/2026", "Entwürfe", "Team Notes"},
		expunge: func(t *testing.T, uid uint32) {
			dst.Doveadm(t, "expunge", "-u", "alice", "mailbox", "INBOX", "uid", itoa(uid))
		},
	}
	testCross(t, c)
}

// TestUndoRemovesParentsTheServerMade: asked for Projects/Alpha/Specs,
// Cyrus makes INBOX.Projects and INBOX.Projects.Alpha real mailboxes (the
// source has them only as \Noselect parents). They are mailferry's doing,
// recorded as such, and undo removes them with the mailbox it asked for
// once they are empty.
func TestUndoRemovesParentsTheServerMade(t *testing.T) {
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}})
	dst := imaptest.StartCyrus(t, imaptest.CyrusOptions{Users: map[string]string{"alice": dstPass}})
	seed(t, src, "Projects/Alpha/Specs", 3, 1<<10, 2<<10, 61)
	ckpt := filepath.Join(t.TempDir(), "run.db")
	env := []string{"MAILFERRY_FROM_PASSWORD=" + srcPass, "MAILFERRY_TO_PASSWORD=" + dstPass}
	ends := []string{"--from", "imap+plain://alice@" + src.Addr(), "--to", "imap+plain://alice@" + dst.Addr(), "--checkpoint", ckpt, "--output", "text"}
	before := dst.Mailboxes(t, "alice")
	if r := runBinary(t, env, append([]string{"migrate"}, ends...)...); r.code != exitOK {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	made := []string{"INBOX.Projects", "INBOX.Projects.Alpha", "INBOX.Projects.Alpha.Specs"}
	for _, mb := range made {
		if !slices.Contains(dst.Mailboxes(t, "alice"), mb) {
			t.Fatalf("Cyrus has no %s after the migration: %q", mb, dst.Mailboxes(t, "alice"))
		}
	}
	r := runBinary(t, env, append([]string{"undo", "-v"}, ends...)...)
	if n := strings.Count(r.stdout, "delete (created by mailferry"); r.code != exitOK || n != 3 {
		t.Errorf("undo dry run: exit %d, %d mailboxes to delete, want 3\n%s", r.code, n, r.stdout)
	}
	if r := runBinary(t, env, append([]string{"undo", "--yes"}, ends...)...); r.code != exitOK {
		t.Fatalf("undo: exit %d\n%s", r.code, r.stderr)
	}
	if got := dst.Mailboxes(t, "alice"); !slices.Equal(got, before) {
		t.Errorf("after undo Cyrus has %q, want what it had before: %q", got, before)
	}
}
