package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// storyServer is a destination of the end-to-end story: a test server seen
// through its own tools (doveadm, or a plain IMAP session of Cyrus's).
type storyServer interface {
	imapServer
	AddFlags(tb testing.TB, user, mailbox string, flags []string, uids ...uint32)
}

// story is one run of the whole story against one kind of server.
type story struct {
	src      *imaptest.Dovecot
	dst      storyServer
	user     string
	from, to string // endpoints, through strict proxies or not
	// dstName is where a source mailbox lands on the destination.
	dstName func(string) string
	// exact says NUL bytes survive the way there: both ends offer BINARY.
	exact bool
	// refusesNUL: the destination refuses a message holding NUL.
	refusesNUL bool
	// modseq: the destination numbers changes (CONDSTORE).
	modseq  bool
	proxies []*imaptest.FaultProxy
}

// nulMessage is a message with NUL bytes in its body, as Outlook writes
// some (the shared corpus's mail_outlook_1.eml has 32,730).
var nulMessage = []byte("From: Outlook <o@example.org>\r\nTo: alice@example.org\r\nSubject: with NUL bytes\r\n" +
	"Message-ID: <nul.1@example.org>\r\nDate: Tue, 4 Feb 2020 10:00:00 +0100\r\n\r\nbefore\x00\x00after \x00 end\r\n")

// TestStrictServerStory runs the whole story (migrate killed with SIGKILL
// and resumed, re-run, verify, cutover, new mail and a flag change on the
// destination, reverse twice, undo dry run and --yes twice) against real
// Dovecot presented as a strict RFC 3501 server with no extension at all
// and with every extension but one (imaptest.Strict), on both sides, and
// from Dovecot into Cyrus. Everything is checked with the servers' own
// view (doveadm, a plain Cyrus session), and no command may use an
// extension the server did not offer.
func TestStrictServerStory(t *testing.T) {
	profiles := map[string]imaptest.Strict{"IMAP4rev1": imaptest.Rev1}
	for _, ext := range imaptest.Extensions {
		profiles["all-but-"+ext] = imaptest.AllBut(ext)
	}
	users := map[string]string{}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range profiles {
			if !yield(n) {
				return
			}
		}
	})
	for i := range names {
		users[fmt.Sprint("s", i)] = srcPass
	}
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users})
	dst := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users})
	for i, name := range names {
		prof := profiles[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sp, dp := imaptest.StartFaultProxy(t, src.Addr()), imaptest.StartFaultProxy(t, dst.Addr())
			sp.BeStrict(prof)
			dp.BeStrict(prof)
			user := fmt.Sprint("s", i)
			binary := slices.Contains(prof.Keep, "BINARY")
			s := &story{src: src, dst: dst, user: user, dstName: func(n string) string { return n },
				from: "imap+plain://" + user + "@" + sp.Addr(), to: "imap+plain://" + user + "@" + dp.Addr(),
				exact: binary, modseq: slices.Contains(prof.Keep, "CONDSTORE") || slices.Contains(prof.Keep, "QRESYNC"), proxies: []*imaptest.FaultProxy{sp, dp}}
			s.run(t)
		})
	}
	t.Run("Cyrus", func(t *testing.T) {
		t.Parallel()
		src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}})
		cy := imaptest.StartCyrus(t, imaptest.CyrusOptions{Users: map[string]string{"alice": srcPass}})
		s := &story{src: src, dst: cy, user: "alice", from: "imap+plain://alice@" + src.Addr(), to: "imap+plain://alice@" + cy.Addr(),
			dstName: func(n string) string {
				if n == "INBOX" {
					return n
				}
				return "INBOX." + strings.ReplaceAll(n, "/", ".")
			},
			exact: true, modseq: true}
		s.run(t)
	})
}

func (s *story) run(t *testing.T) {
	start := time.Now()
	ckpt := filepath.Join(t.TempDir(), "story.db")
	env := []string{"MAILFERRY_FROM_PASSWORD=" + srcPass, "MAILFERRY_TO_PASSWORD=" + srcPass}
	run := func(extraEnv []string, cmd string, args ...string) result {
		t.Helper()
		full := append([]string{cmd, "--from", s.from, "--to", s.to, "--checkpoint", ckpt}, args...)
		if cmd == "cutover" {
			full = append([]string{cmd, "--checkpoint", ckpt, "--user", s.user}, args...)
		}
		return runBinary(t, append(slices.Clone(env), extraEnv...), full...)
	}

	// The source: varied messages (no Message-ID, 8-bit headers, 1 MB,
	// identical twins, NUL bytes) in a hierarchy.
	inbox := crossMessages("INBOX", 30, 11, false)
	inbox = append(inbox, inbox[1], imaptest.SeedMessage{Raw: nulMessage, Flags: []string{`\Seen`}, InternalDate: time.Date(2020, 2, 4, 9, 0, 0, 0, time.UTC)})
	boxes := map[string][]imaptest.SeedMessage{"INBOX": inbox, "Sent": crossMessages("Sent", 3, 12, false), "Projects/2026": crossMessages("Projects/2026", 4, 13, false)}
	for name, msgs := range boxes {
		s.src.Seed(t, s.user, name, msgs)
	}
	// The destination before the migration: a copy of a source message
	// (a duplicate, not mailferry's), a message of its own, and a mailbox
	// with mail of its own that reverse must leave in the cloud.
	foreignMsg := imaptest.SeedMessage{Raw: genMessage(rand.New(rand.NewPCG(21, 21)), "cloud", 1, 2500), InternalDate: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.dst.Seed(t, s.user, "INBOX", []imaptest.SeedMessage{inbox[4], foreignMsg})
	s.dst.Seed(t, s.user, s.dstName("Archive"), []imaptest.SeedMessage{{Raw: genMessage(rand.New(rand.NewPCG(22, 22)), "archive", 2, 1800), InternalDate: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)}})
	srcBefore := s.state(t, s.src)
	dstBefore := s.state(t, s.dst)
	total := 0
	for _, msgs := range boxes {
		total += len(msgs)
	}

	// Killed mid-run, then resumed.
	if r := run([]string{crashEnv + "=appended:12"}, "migrate", "--batch-size", "8"); !r.killed {
		t.Fatalf("migrate was not killed: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	r := run(nil, "migrate", "--report", report)
	wantFailed := 0
	if s.refusesNUL {
		wantFailed = 1
	}
	if (wantFailed == 0 && r.code != 0) || (wantFailed > 0 && r.code != exitPartial) {
		t.Fatalf("resume exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	tot := readReport(t, report).Accounts[0].Totals()
	if tot.Seen != total || tot.Duplicate != 1 || tot.Failed != wantFailed || tot.Copied != total-1-wantFailed || tot.Pending != 0 {
		t.Errorf("totals %+v: want %d seen, 1 duplicate, %d failed, the rest copied", tot, total, wantFailed)
	}
	for name := range boxes {
		want := s.lines(srcBefore[name], wantFailed > 0)
		if name == "INBOX" {
			want = slices.Sorted(slices.Values(append(want, s.lines(dstBefore["INBOX"][1:], false)...)))
		}
		if got := s.lines(s.dst.Messages(t, s.user, s.dstName(name)), false); !slices.Equal(got, want) {
			missing, extra := diff(want, got)
			t.Errorf("%s: missing %q, extra %q", name, missing, extra)
		}
	}

	// A re-run copies nothing and changes nothing.
	dstMigrated := s.state(t, s.dst)
	if r := run(nil, "migrate", "--report", report); r.code != exitCodeFor(wantFailed) || readReport(t, report).Accounts[0].Totals().New != 0 {
		t.Fatalf("re-run exit %d, new %d\n%s", r.code, readReport(t, report).Accounts[0].Totals().New, r.stderr)
	}
	if !sameState(s.state(t, s.dst), dstMigrated) {
		t.Errorf("the re-run changed the destination")
	}
	if r := run(nil, "verify", "--deep", "--output", "text"); r.code != exitCodeFor(wantFailed) || (wantFailed == 0 && !strings.Contains(r.stdout, "PASS")) {
		t.Errorf("verify --deep: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// Cutover says what it recorded, and what it could not.
	r = run(nil, "cutover")
	if r.code != 0 {
		t.Fatalf("cutover exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	counts := regexp.MustCompile(`of (\d+) destination mailbox\(es\): UIDNEXT recorded for (\d+), HIGHESTMODSEQ for (\d+)(?:, (\d+) empty and not numbered)?`).FindStringSubmatch(r.stdout)
	num := func(i int) int { n, _ := strconv.Atoi(counts[i]); return n }
	switch {
	case counts == nil || num(1) == 0 || num(1) != num(2)+num(4):
		t.Errorf("cutover did not record every UIDNEXT:\n%s\n%s", r.stdout, r.stderr)
	case s.modseq && num(3)+num(4) != num(1):
		t.Errorf("cutover did not record every HIGHESTMODSEQ of a CONDSTORE server:\n%s\n%s", r.stdout, r.stderr)
	case !s.modseq && (counts[3] != "0" || !strings.Contains(r.stdout, "HIGHESTMODSEQ not recorded")):
		t.Errorf("cutover claims HIGHESTMODSEQ of a server without CONDSTORE:\n%s", r.stdout)
	}

	// In the cloud: new mail, and the user flags a migrated message.
	cloud := imaptest.SeedMessage{Raw: genMessage(rand.New(rand.NewPCG(23, 23)), "cloud", 3, 3000), Flags: []string{"$Cloud"}, InternalDate: time.Now().UTC().Truncate(time.Second)}
	s.dst.Seed(t, s.user, "INBOX", []imaptest.SeedMessage{cloud})
	flagged := srcBefore["INBOX"][10]
	for _, m := range s.dst.Messages(t, s.user, "INBOX") {
		if m.SHA256 == flagged.SHA256 {
			s.dst.AddFlags(t, s.user, "INBOX", []string{`\Flagged`, "$Important"}, m.UID)
		}
	}

	// The way back, twice: new mail comes home once, the flag change comes
	// home, and what was in the cloud before the migration stays there.
	if r := run(nil, "reverse"); r.code != 0 {
		t.Fatalf("reverse exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	srcBack := s.state(t, s.src)
	s.checkReversed(t, srcBefore, srcBack, flagged, dstBefore["INBOX"][1])
	if r := run(nil, "reverse"); r.code != 0 {
		t.Fatalf("second reverse exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !sameState(s.state(t, s.src), srcBack) {
		t.Errorf("the second reverse changed the source")
	}

	// Undo: a dry run changes nothing; then exactly mailferry's copies go,
	// twice over nothing more goes.
	dstCloud := s.state(t, s.dst)
	if r := run(nil, "undo", "--output", "text"); r.code != 0 || !strings.Contains(r.stdout, "DRY RUN") {
		t.Fatalf("undo dry run exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !sameState(s.state(t, s.dst), dstCloud) {
		t.Errorf("the undo dry run changed the destination")
	}
	for i := range 2 {
		if r := run(nil, "undo", "--yes", "--output", "text"); r.code != 0 {
			t.Fatalf("undo %d exit %d\n%s\n%s", i+1, r.code, r.stdout, r.stderr)
		}
		s.checkUndone(t, dstBefore)
	}
	if !sameState(s.state(t, s.src), srcBack) {
		t.Errorf("undo changed the source")
	}
	for _, p := range s.proxies {
		if v := p.Stats().Violations; len(v) > 0 {
			t.Errorf("commands that used an extension the server did not offer: %q", v)
		}
	}
	t.Logf("the story with %d messages in %v", total, time.Since(start))
}

func exitCodeFor(failed int) int {
	if failed > 0 {
		return exitPartial
	}
	return 0
}

// state is every mailbox of the user with its messages.
func (s *story) state(t *testing.T, d imapServer) map[string][]imaptest.Message {
	out := map[string][]imaptest.Message{}
	for _, mb := range d.Mailboxes(t, s.user) {
		out[mb] = d.Messages(t, s.user, mb)
	}
	return out
}

// lines is lineSet by the bytes that must survive: the stored bytes where
// NUL can travel, else those BODY[] serves. Without the message with NUL
// bytes if the destination refuses it.
func (s *story) lines(msgs []imaptest.Message, dropNUL bool) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if dropNUL && m.MessageID == "<nul.1@example.org>" {
			continue
		}
		sum := m.SHA256
		if s.exact {
			sum = m.ExactSHA256
		}
		out = append(out, fmt.Sprintf("%s %d %v %d", sum, m.Size, m.Flags, m.InternalDate.Unix()))
	}
	slices.Sort(out)
	return out
}

// checkReversed: the source holds what it held, the cloud's new message
// once, and the cloud's flag change on the original; nothing that was in
// the cloud before the migration came over.
func (s *story) checkReversed(t *testing.T, before, after map[string][]imaptest.Message, flagged, foreign imaptest.Message) {
	t.Helper()
	var cloudCopies, foreignCopies int
	for name, msgs := range after {
		for _, m := range msgs {
			if slices.Contains(m.Flags, "$Cloud") {
				cloudCopies++
			}
			if m.SHA256 == foreign.SHA256 {
				foreignCopies++
			}
			if m.SHA256 == flagged.SHA256 && name == "INBOX" && !slices.Contains(m.Flags, `\Flagged`) {
				t.Errorf("the flag set in the cloud did not come home: %v", m.Flags)
			}
		}
	}
	if cloudCopies != 1 {
		t.Errorf("the cloud's new message is on the source %d times, want once", cloudCopies)
	}
	if foreignCopies != 0 {
		t.Errorf("mail that was in the cloud before the migration was carried back")
	}
	if _, ok := after["Archive"]; ok {
		if _, was := before["Archive"]; !was {
			t.Errorf("reverse made the cloud's own Archive on the source")
		}
	}
	for name, msgs := range before {
		if got := len(after[name]); got < len(msgs) {
			t.Errorf("source %s lost messages: %d, had %d", name, got, len(msgs))
		}
	}
}

// checkUndone: the destination holds exactly what it held before the
// migration plus the cloud's new message, and the mailboxes mailferry made
// are gone.
func (s *story) checkUndone(t *testing.T, before map[string][]imaptest.Message) {
	t.Helper()
	after := s.state(t, s.dst)
	for name, msgs := range after {
		if name == "INBOX" {
			// What was there before, and the new message, which came later.
			msgs = slices.DeleteFunc(slices.Clone(msgs), func(m imaptest.Message) bool { return slices.Contains(m.Flags, "$Cloud") })
			if len(msgs) != len(after[name])-1 {
				t.Errorf("INBOX after undo: the cloud's new message is gone or doubled")
			}
		}
		want := s.lines(before[name], false)
		got := s.lines(msgs, false)
		if !slices.Equal(got, want) {
			missing, extra := diff(want, got)
			t.Errorf("%s after undo: missing %q, extra %q", name, missing, extra)
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			t.Errorf("%s is gone after undo; it was not mailferry's", name)
		}
	}
	if _, ok := after[s.dstName("Projects/2026")]; ok {
		t.Errorf("%s, which mailferry created, is still there after undo", s.dstName("Projects/2026"))
	}
}

// TestNULIntoServerWithoutBINARY: a message holding NUL bytes goes to a
// destination that does not offer BINARY, so it cannot be stored exactly.
// It is carried as the source serves BODY[] (0x80 for NUL), and recorded
// and reported as altered: in the summary, the report and status.
func TestNULIntoServerWithoutBINARY(t *testing.T) {
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}})
	dst := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}})
	p := imaptest.StartFaultProxy(t, dst.Addr())
	p.BeStrict(imaptest.AllBut("BINARY"))
	plain := imaptest.SeedMessage{Raw: genMessage(rand.New(rand.NewPCG(31, 31)), "INBOX", 1, 1500), InternalDate: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
	src.Seed(t, "alice", "INBOX", []imaptest.SeedMessage{plain, {Raw: nulMessage, InternalDate: time.Date(2020, 2, 4, 9, 0, 0, 0, time.UTC)}})
	ckpt, report := filepath.Join(t.TempDir(), "run.db"), filepath.Join(t.TempDir(), "report.json")
	env := []string{"MAILFERRY_FROM_PASSWORD=" + srcPass, "MAILFERRY_TO_PASSWORD=" + srcPass}
	r := runBinary(t, env, "migrate", "--from", "imap+plain://alice@"+src.Addr(), "--to", "imap+plain://alice@"+p.Addr(),
		"--checkpoint", ckpt, "--report", report, "--output", "text")
	if r.code != 0 {
		t.Fatalf("migrate exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "copied ALTERED") || !strings.Contains(r.stdout, "NUL byte(s) sent as 0x80") {
		t.Errorf("the summary does not name the altered copy:\n%s", r.stdout)
	}
	inbox := readReport(t, report).Accounts[0].Mailboxes[0]
	if inbox.Copied != 2 || inbox.Altered != 1 || len(inbox.Alterations) != 1 || !strings.Contains(inbox.Alterations[0].Reason, "does not offer BINARY") {
		t.Errorf("report %+v: want 2 copied, the one with NUL bytes altered and why", inbox)
	}
	if r := runBinary(t, nil, "status", "--checkpoint", ckpt, "--mailboxes"); !strings.Contains(r.stdout, "copied altered") {
		t.Errorf("status does not list the altered copy:\n%s", r.stdout)
	}
	got := dst.Messages(t, "alice", "INBOX")
	want := src.Messages(t, "alice", "INBOX")
	if len(got) != 2 || got[1].SHA256 != want[1].SHA256 || got[1].ExactSHA256 == want[1].ExactSHA256 || got[0].ExactSHA256 != want[0].ExactSHA256 {
		t.Errorf("destination: the plain message must be exact, the one with NUL as BODY[] serves it (0x80), not exact")
	}
}
