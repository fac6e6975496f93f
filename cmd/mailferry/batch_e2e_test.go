package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// batchEnv is a source and a destination Dovecot with many users, a master
// user on each side, and a per-user quota on the destination.
type batchEnv struct {
	src, dst *imaptest.Dovecot
	users    []string
	srcPw    map[string]string
	dstPw    map[string]string
}

const (
	quotaBytes  = 200 << 10
	srcAdminPw  = "Src-Master-pw-71"
	dstAdminPw  = "Dst-Master-pw-72"
	overQuotaID = "u07"
)

func newBatchEnv(t *testing.T, n int) *batchEnv {
	e := &batchEnv{srcPw: map[string]string{}, dstPw: map[string]string{}}
	for i := range n {
		u := fmt.Sprintf("u%02d", i)
		e.users = append(e.users, u)
		e.srcPw[u] = "src-" + u + "-pw"
		e.dstPw[u] = "dst-" + u + "-pw"
	}
	e.src = imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: e.srcPw, MasterUser: "srcadmin", MasterPassword: srcAdminPw, MaxUserIPConnections: 200})
	e.dst = imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: e.dstPw, MasterUser: "dstadmin", MasterPassword: dstAdminPw,
		QuotaBytes: quotaBytes, MaxUserIPConnections: 200})
	for i, u := range e.users {
		rng := rand.New(rand.NewPCG(uint64(i), 3))
		n, size := 6+i%5, 2<<10
		if u == overQuotaID {
			n, size = 40, 8<<10 // 320 KiB: more than the destination's quota
		}
		var inbox []imaptest.SeedMessage
		for j := range n {
			inbox = append(inbox, imaptest.SeedMessage{Raw: genMessage(rng, u, j, size), Flags: []string{`\Seen`}, InternalDate: time.Date(2024, 2, 1, 0, j, 0, 0, time.UTC)})
		}
		e.src.Seed(t, u, "INBOX", inbox)
		e.src.Seed(t, u, "Sent", []imaptest.SeedMessage{{Raw: genMessage(rng, u+"-sent", 0, 1000), Flags: []string{`\Seen`}, InternalDate: time.Date(2024, 2, 2, 0, 0, 0, 0, time.UTC)}})
	}
	return e
}

func (e *batchEnv) args(ckpt, csv string, extra ...string) []string {
	return append([]string{"migrate", "--batch", csv, "--from", "imap+plain://" + e.src.Addr(), "--to", "imap+plain://" + e.dst.Addr(),
		"--checkpoint", ckpt, "--concurrency", "6", "--max-connections-per-host", "16", "--output", "json", "--log-level", "warn"}, extra...)
}

// sameUser compares a user's mailboxes on both servers with doveadm.
func (e *batchEnv) sameUser(t *testing.T, u string) bool {
	t.Helper()
	ok := true
	for _, mb := range []string{"INBOX", "Sent"} {
		want := lineSet(e.src.Messages(t, u, mb))
		got := lineSet(e.dst.Messages(t, u, mb))
		if !slices.Equal(got, want) {
			missing, extra := diff(want, got)
			t.Errorf("user %s mailbox %s: %d missing, %d extra", u, mb, len(missing), len(extra))
			ok = false
		}
	}
	return ok
}

func (e *batchEnv) destCount(t *testing.T, u string) int {
	return len(e.dst.Messages(t, u, "INBOX")) + len(e.dst.Messages(t, u, "Sent"))
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func byUser(sums []migrate.AccountSummary) map[string]migrate.AccountSummary {
	m := map[string]migrate.AccountSummary{}
	for _, s := range sums {
		m[s.Source] = s
	}
	return m
}

// TestBatch runs a batch of 55 users with mixed CSV rows: literal, env: and
// file: passwords, wrong passwords, a bad row, a user over the
// destination's quota; then kills a batch run and resumes it, then runs an
// overlapping batch file; then impersonates users through master users.
func TestBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	e := newBatchEnv(t, 60)
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "u02.pw", e.srcPw["u02"]+"\n")
	wrong := map[string]bool{"u03": true, "u11": true, "u29": true}
	var b strings.Builder
	b.WriteString("\ufeff# wave 1: first 50 users\r\nsource_user,source_password,dest_user,dest_password\r\n\r\n")
	for _, u := range e.users[:50] {
		sp := e.srcPw[u]
		switch {
		case wrong[u]:
			sp = "not-the-password"
		case u == "u01":
			sp = "env:U01_PW"
		case u == "u02":
			sp = "file:" + pwFile
		}
		fmt.Fprintf(&b, "%s,%q,%s,%s\r\n", u, sp, u, e.dstPw[u])
	}
	b.WriteString("u98,,,missing-dest-user\r\n")
	wave1 := writeFile(t, dir, "wave1.csv", b.String())
	ckpt := filepath.Join(dir, "batch.db")
	report := filepath.Join(dir, "wave1.json")
	env := []string{"U01_PW=" + e.srcPw["u01"]}

	// Kill the first run after ten accounts finished, then resume it.
	r := runBinary(t, append(env, crashEnv+"=account_done:10"), e.args(ckpt, wave1)...)
	if !r.killed {
		t.Fatalf("first run not killed: exit %d\n%s", r.code, r.stderr)
	}
	r = runBinary(t, env, e.args(ckpt, wave1, "--report", report)...)
	if r.code != exitPartial {
		t.Fatalf("batch exit %d, want %d (some users fail)\n%s", r.code, exitPartial, r.stderr)
	}
	if !strings.Contains(r.stderr, "line 54") {
		t.Errorf("bad row not reported with its line number:\n%s", r.stderr)
	}
	for _, secret := range []string{e.srcPw["u05"], e.dstPw["u05"], e.srcPw["u01"], e.srcPw["u02"]} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("output contains a password")
		}
	}
	rep := readReport(t, report)
	for host, peak := range rep.PeakConnections {
		if peak > 16 || peak < 2 {
			t.Errorf("peak connections to %s: %d, want 2..16 (--max-connections-per-host 16, 6 accounts at once)", host, peak)
		}
	}
	sums := byUser(rep.Accounts)
	for _, u := range e.users[:50] {
		s := sums[u]
		switch {
		case wrong[u]:
			// Failed in the killed run already, so skipped by the resumed one.
			if (s.Status != migrate.StatusFailed && s.Status != migrate.StatusSkipped) || !strings.Contains(strings.ToLower(s.Error), "auth") {
				t.Errorf("%s with a wrong password: status %s, error %q", u, s.Status, s.Error)
			}
			if n := e.destCount(t, u); n != 0 {
				t.Errorf("%s failed to log in yet has %d messages on the destination", u, n)
			}
		case u == overQuotaID:
			if (s.Status != migrate.StatusFailed && s.Status != migrate.StatusSkipped) || !strings.Contains(s.Error, "OVERQUOTA") {
				t.Errorf("%s over quota: status %s, error %q, mailboxes %+v", u, s.Status, s.Error, s.Mailboxes)
			}
		default:
			if s.Status != migrate.StatusOK {
				t.Errorf("%s: status %s, error %q", u, s.Status, s.Error)
				continue
			}
			e.sameUser(t, u)
			tot := s.Totals()
			if tot.Copied+tot.Duplicate+tot.Failed+tot.Pending != tot.Seen || tot.Seen != e.destCount(t, u) {
				t.Errorf("%s: counts %+v do not add up to the %d messages on the destination", u, tot, e.destCount(t, u))
			}
		}
	}

	// A second batch file overlapping the first: finished users are
	// no-ops, failed ones are skipped without --retry-failed, new users run.
	before := map[string]int{}
	for _, u := range e.users[:50] {
		before[u] = e.destCount(t, u)
	}
	var b2 strings.Builder
	b2.WriteString("source_user,dest_user,source_password,dest_password\n")
	for _, u := range e.users[40:60] {
		fmt.Fprintf(&b2, "%s,%s,%s,%s\n", u, u, e.srcPw[u], e.dstPw[u])
	}
	wave2 := writeFile(t, dir, "wave2.csv", b2.String())
	report2 := filepath.Join(dir, "wave2.csv.report.csv")
	r = runBinary(t, nil, e.args(ckpt, wave2, "--report", filepath.Join(dir, "wave2.json"))...)
	if r.code != exitOK {
		t.Errorf("wave 2 exit %d\n%s", r.code, r.stderr)
	}
	sums2 := byUser(readReport(t, filepath.Join(dir, "wave2.json")).Accounts)
	for _, u := range e.users[40:60] {
		s := sums2[u]
		if s.Status != migrate.StatusOK || !e.sameUser(t, u) {
			t.Errorf("wave 2 %s: status %s %q", u, s.Status, s.Error)
		}
		if i := slices.Index(e.users, u); i < 50 && s.Totals().New != 0 {
			t.Errorf("wave 2 %s finished in wave 1 but copied %d new messages", u, s.Totals().New)
		}
	}
	for _, u := range e.users[:40] {
		if n := e.destCount(t, u); n != before[u] {
			t.Errorf("%s was not in wave 2 but its destination changed from %d to %d messages", u, before[u], n)
		}
	}
	_ = report2

	// Retrying the failed users with their passwords fixed, through the
	// master users: no user password at all.
	var b3 strings.Builder
	b3.WriteString("EmailAddress,UserName,Password\n")
	for u := range wrong {
		fmt.Fprintf(&b3, "%s,%s,\n", u, u)
	}
	wave3 := writeFile(t, dir, "retry.csv", b3.String())
	adminEnv := []string{"MAILFERRY_FROM_ADMIN_PASSWORD=" + srcAdminPw, "MAILFERRY_TO_ADMIN_PASSWORD=" + dstAdminPw}
	r = runBinary(t, adminEnv, e.args(ckpt, wave3, "--from-admin", "srcadmin", "--to-admin", "dstadmin")...)
	if r.code != exitPartial || !strings.Contains(r.stdout, `"status":"skipped"`) {
		t.Errorf("failed users must be skipped without --retry-failed: exit %d\n%s", r.code, r.stdout)
	}
	r = runBinary(t, adminEnv, e.args(ckpt, wave3, "--from-admin", "srcadmin", "--to-admin", "dstadmin", "--retry-failed", "--report", filepath.Join(dir, "retry.csv.out.csv"))...)
	if r.code != exitOK {
		t.Errorf("retry through master users: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for u := range wrong {
		e.sameUser(t, u)
	}
	csvReport, err := os.ReadFile(filepath.Join(dir, "retry.csv.out.csv"))
	if err != nil || !strings.HasPrefix(string(csvReport), "source_user,dest_user,mailboxes,seen,copied") || strings.Count(string(csvReport), ",ok,") != len(wrong) {
		t.Errorf("CSV report:\n%s", csvReport)
	}

	// status reads the whole batch from the checkpoint.
	st := runBinary(t, nil, "status", "--checkpoint", ckpt)
	if st.code != 0 || !strings.Contains(st.stdout, "u07") || !strings.Contains(st.stdout, "OVERQUOTA") {
		t.Errorf("status exit %d:\n%s\n%s", st.code, st.stdout, st.stderr)
	}
}
