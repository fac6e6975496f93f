package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// preflightReport is what preflight --report writes.
type preflightReport struct {
	reportHeader
	Accounts []preflightAccount `json:"accounts"`
}

// TestPreflight checks a wave of five users against two Dovecots, and
// every finding against what Dovecot's own tools say: ann has a message
// without a Message-ID, two messages in two folders (Gmail labels), two
// folders that differ only in case (one on a destination that folds case)
// and a folder holding the destination's separator; bob's mail does not
// fit the destination's quota; cyd has a message larger than the
// destination takes; dan has no destination account; eve is ready. The
// sizes come from STATUS=SIZE where the server offers it, else from each
// message's RFC822.SIZE (behind a proxy that hides STATUS=SIZE, which it
// must then not use), the same both ways. Nothing changes on either
// server.
func TestPreflight(t *testing.T) {
	users := []string{"ann", "bob", "cyd", "dan", "eve"}
	srcUsers, dstUsers := map[string]string{}, map[string]string{}
	for _, u := range users {
		srcUsers[u] = "src-" + u
		if u != "dan" {
			dstUsers[u] = "dst-" + u
		}
	}
	const quota = 64 << 10
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: srcUsers, MasterUser: "srcadmin", MasterPassword: srcAdminPw})
	dst := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: dstUsers, MasterUser: "dstadmin", MasterPassword: dstAdminPw,
		Separator: ".", QuotaBytes: quota})
	rng := rand.New(rand.NewPCG(5, 5))
	date := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)
	msgs := func(box string, n, size int) []imaptest.SeedMessage {
		var out []imaptest.SeedMessage
		for i := range n {
			out = append(out, imaptest.SeedMessage{Raw: genMessage(rng, box, i, size), Flags: []string{`\Seen`}, InternalDate: date})
		}
		return out
	}
	inbox := msgs("ann", 9, 1500) // the 8th has no Message-ID
	src.Seed(t, "ann", "INBOX", inbox)
	src.Seed(t, "ann", "Work", []imaptest.SeedMessage{inbox[2], inbox[3]})
	src.Seed(t, "ann", "Projects", msgs("Projects", 1, 500))
	src.Seed(t, "ann", "projects", msgs("projects", 1, 500))
	src.Seed(t, "ann", "v1.2 release", msgs("release", 1, 500))
	src.Seed(t, "bob", "INBOX", msgs("bob", 30, 4000))
	big := genMessage(rng, "cyd", 1, 25<<20+4096)
	src.Seed(t, "cyd", "INBOX", []imaptest.SeedMessage{{Raw: big, InternalDate: date}})
	src.Seed(t, "dan", "INBOX", msgs("dan", 2, 500))
	src.Seed(t, "eve", "INBOX", msgs("eve", 3, 800))

	state := func() []string {
		var out []string
		for _, u := range users {
			for _, mb := range src.Mailboxes(t, u) {
				for _, m := range src.Messages(t, u, mb) {
					out = append(out, u+" "+mb+" "+m.SHA256+" "+strings.Join(m.Flags, ","))
				}
			}
			if u != "dan" {
				for _, mb := range dst.Mailboxes(t, u) {
					out = append(out, u+" dst "+mb)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	before := state()
	dir := t.TempDir()
	csv := waveCSV(t, dir, "wave.csv", users)
	env := []string{"MAILFERRY_FROM_ADMIN_PASSWORD=" + srcAdminPw, "MAILFERRY_TO_ADMIN_PASSWORD=" + dstAdminPw}
	run := func(from, report string, extra ...string) (result, preflightReport) {
		t.Helper()
		r := runBinary(t, env, append([]string{"preflight", "--batch", csv, "--from", "imap+plain://" + from, "--from-admin", "srcadmin",
			"--to", "imap+plain://" + dst.Addr(), "--to-admin", "dstadmin", "--from-preset", "gmail", "--to-preset", "gmail",
			"--report", report, "--log-level", "warn"}, extra...)...)
		var rep preflightReport
		b, err := os.ReadFile(report)
		if err != nil {
			t.Fatalf("preflight exit %d, no report: %v\n%s", r.code, err, r.stderr)
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		return r, rep
	}
	r, rep := run(src.Addr(), filepath.Join(dir, "pf.json"), "--output", "text")
	if r.code != exitPartial {
		t.Fatalf("preflight exit %d, want %d\n%s\n%s", r.code, exitPartial, r.stdout, r.stderr)
	}
	for _, u := range []string{"ann", "bob", "cyd", "dan"} {
		if !strings.Contains(r.stderr, u) {
			t.Errorf("the exit message does not name %s: %s", u, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "eve") || !strings.Contains(r.stdout, "wave: 1 of 5 account(s) ready") || !strings.Contains(r.stdout, "estimated") {
		t.Errorf("summary:\n%s\n%s", r.stdout, r.stderr)
	}
	if rep.Command != "preflight" || rep.Started.IsZero() || rep.Finished.Before(rep.Started) ||
		rep.From != "imap+plain://"+src.Addr() || rep.To != "imap+plain://"+dst.Addr() || len(rep.Accounts) != 5 {
		t.Fatalf("report header: %+v", rep.reportHeader)
	}
	by := map[string]preflightAccount{}
	for _, a := range rep.Accounts {
		by[a.Source] = a
	}
	// Counts and sizes as Dovecot has them.
	for _, u := range []string{"ann", "bob", "cyd", "eve"} {
		var n int
		var size int64
		for _, mb := range src.Mailboxes(t, u) {
			for _, m := range src.Messages(t, u, mb) {
				n++
				size += m.Size
			}
		}
		if a := by[u]; a.Messages != n || a.Bytes != size {
			t.Errorf("%s: %d messages, %d bytes; doveadm says %d, %d", u, a.Messages, a.Bytes, n, size)
		}
		for _, m := range by[u].Mailboxes {
			if m.SizeFrom != "STATUS=SIZE" {
				t.Errorf("%s %s: sizes from %s, want STATUS=SIZE (Dovecot offers it)", u, m.Source, m.SizeFrom)
			}
		}
	}
	ann := by["ann"]
	if ann.NoMessageID != 1 || ann.MultiLabel != 2 || ann.Status != preflightProblems {
		t.Errorf("ann: %d without Message-ID (want 1), %d in several labels (want 2), status %s", ann.NoMessageID, ann.MultiLabel, ann.Status)
	}
	if !slices.ContainsFunc(ann.Problems, func(p string) bool { return strings.Contains(p, "differ only in case") }) {
		t.Errorf("ann: no case collision among %q", ann.Problems)
	}
	if !slices.ContainsFunc(ann.Notes, func(n string) bool {
		return strings.Contains(n, `"v1.2 release"`) && strings.Contains(n, "v1․2 release")
	}) {
		t.Errorf("ann: the separator in a name is not noted: %q", ann.Notes)
	}
	if bob := by["bob"]; !bob.HasQuota || bob.QuotaLimit != quota || bob.Status != preflightProblems ||
		!slices.ContainsFunc(bob.Problems, func(p string) bool { return strings.Contains(p, "quota") }) {
		t.Errorf("bob: quota %v %d, status %s, problems %q", bob.HasQuota, bob.QuotaLimit, bob.Status, bob.Problems)
	}
	if cyd := by["cyd"]; cyd.TooLarge != 1 || cyd.AppendLimit != 25<<20 || cyd.Status != preflightProblems {
		t.Errorf("cyd: %d too large for %d, status %s", cyd.TooLarge, cyd.AppendLimit, cyd.Status)
	}
	if dan := by["dan"]; dan.Status != "failed" || !strings.Contains(dan.Error, "destination") {
		t.Errorf("dan: status %s, error %q", dan.Status, dan.Error)
	}
	if eve := by["eve"]; eve.Status != preflightReady || len(eve.Problems) != 0 || eve.SampleBytes == 0 {
		t.Errorf("eve: %+v", eve)
	}

	// Without STATUS=SIZE: the same sizes, from RFC822.SIZE, and no
	// command of an extension the server did not offer.
	proxy := imaptest.StartFaultProxy(t, src.Addr())
	proxy.BeStrict(imaptest.AllBut("STATUS=SIZE"))
	_, rep2 := run(proxy.Addr(), filepath.Join(dir, "pf2.json"), "--output", "json")
	for _, a := range rep2.Accounts {
		if b := by[a.Source]; a.Messages != b.Messages || a.Bytes != b.Bytes {
			t.Errorf("%s without STATUS=SIZE: %d messages, %d bytes; with it %d, %d", a.Source, a.Messages, a.Bytes, b.Messages, b.Bytes)
		}
		for _, m := range a.Mailboxes {
			if m.SizeFrom != "RFC822.SIZE" {
				t.Errorf("%s %s: sizes from %s without STATUS=SIZE", a.Source, m.Source, m.SizeFrom)
			}
		}
	}
	if v := proxy.Stats().Violations; len(v) != 0 {
		t.Errorf("commands the server did not offer: %v", v)
	}
	if !slices.Equal(state(), before) {
		t.Errorf("preflight changed a server")
	}

	// Only eve: ready, exit 0.
	eveCSV := waveCSV(t, dir, "eve.csv", []string{"eve"})
	r = runBinary(t, env, "preflight", "--batch", eveCSV, "--from", "imap+plain://"+src.Addr(), "--from-admin", "srcadmin",
		"--to", "imap+plain://"+dst.Addr(), "--to-admin", "dstadmin", "--output", "json")
	if r.code != exitOK {
		t.Errorf("eve alone: exit %d\n%s", r.code, r.stderr)
	}
	evs := jsonEvents(t, r.stdout)
	if countEvents(evs, "account_done") != 1 || countEvents(evs, "run_done") != 1 || countEvents(evs, "progress") < 1 {
		t.Errorf("JSON events:\n%s", r.stdout)
	}
}
