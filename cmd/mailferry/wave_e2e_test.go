package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// waveCSV is a batch file of users, admins logging in for them.
func waveCSV(t *testing.T, dir, name string, users []string) string {
	var b strings.Builder
	b.WriteString("source_user,dest_user\n")
	for _, u := range users {
		fmt.Fprintf(&b, "%s,%s\n", u, u)
	}
	return writeFile(t, dir, name, b.String())
}

// jsonEvents parses stdout's JSON lines, failing on any other line.
func jsonEvents(t *testing.T, stdout string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if line == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("stdout line is not JSON: %q", line)
		}
		out = append(out, ev)
	}
	return out
}

func countEvents(evs []map[string]any, kind string) int {
	n := 0
	for _, ev := range evs {
		if ev["event"] == kind {
			n++
		}
	}
	return n
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestWaveFailFast: a wrong admin password fails a wave of users at once,
// with one message, after at most three admin logins, and no account is
// marked failed, so that the same command with the right password copies
// every user without --retry-failed; a wrong port or host name stops a run
// without a single retry; a run that never logged in leaves no checkpoint
// behind and binds none to its servers.
func TestWaveFailFast(t *testing.T) {
	e := newBatchEnv(t, 7) // u00..u06, none over quota
	proxy := imaptest.StartFaultProxy(t, e.dst.Addr())
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "wave.db")
	first := waveCSV(t, dir, "first.csv", e.users[:2])
	all := waveCSV(t, dir, "all.csv", e.users)
	args := func(csv, to string, extra ...string) []string {
		return append([]string{"migrate", "--batch", csv, "--from", "imap+plain://" + e.src.Addr(), "--from-admin", "srcadmin",
			"--to", to, "--to-admin", "dstadmin", "--checkpoint", ckpt, "--output", "json", "--log-level", "warn"}, extra...)
	}
	good := []string{"MAILFERRY_FROM_ADMIN_PASSWORD=" + srcAdminPw, "MAILFERRY_TO_ADMIN_PASSWORD=" + dstAdminPw}
	bad := []string{"MAILFERRY_FROM_ADMIN_PASSWORD=" + srcAdminPw, "MAILFERRY_TO_ADMIN_PASSWORD=not-the-admin-password"}
	to := "imap+plain://" + proxy.Addr()

	// A fresh checkpoint and a wrong admin password: nothing starts,
	// nothing is created.
	r := runBinary(t, bad, args(all, to)...)
	if r.code != exitUsage {
		t.Fatalf("wrong admin password: exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
	if !strings.Contains(r.stderr, "refused the admin login of dstadmin") || strings.Count(r.stderr, "mailferry: ") != 1 {
		t.Errorf("want one message naming the admin:\n%s", r.stderr)
	}
	if n := len(proxy.Accepts()); n > probeAdminTries {
		t.Errorf("%d connections to the destination for a wrong admin password, want at most %d", n, probeAdminTries)
	}
	if evs := jsonEvents(t, r.stdout); countEvents(evs, "error") != 1 {
		t.Errorf("no error event on stdout:\n%s", r.stdout)
	}
	if _, err := os.Stat(ckpt); !os.IsNotExist(err) {
		t.Errorf("a run that never logged in left a checkpoint: %v", err)
	}

	// Two users first, then the whole wave with the wrong password: the
	// others are not marked failed.
	if r := runBinary(t, good, args(first, to)...); r.code != exitOK {
		t.Fatalf("first two: exit %d\n%s", r.code, r.stderr)
	}
	accepted := len(proxy.Accepts())
	r = runBinary(t, bad, args(all, to)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "no account was marked failed") {
		t.Fatalf("wave with a wrong admin password: exit %d\n%s", r.code, r.stderr)
	}
	if n := len(proxy.Accepts()) - accepted; n > probeAdminTries {
		t.Errorf("%d admin logins for the wave, want at most %d", n, probeAdminTries)
	}
	st := runBinary(t, nil, "status", "--checkpoint", ckpt, "--json")
	var view statusView
	if err := json.Unmarshal([]byte(st.stdout), &view); err != nil {
		t.Fatalf("status --json: %v\n%s", err, st.stdout)
	}
	for _, acc := range view.Accounts {
		if acc.State == ledger.AccountFailed {
			t.Errorf("%s marked failed by a run that stopped for the admin's password", acc.Source)
		}
	}
	// The right password: every user, without --retry-failed.
	if r := runBinary(t, good, args(all, to)...); r.code != exitOK {
		t.Fatalf("wave with the right password: exit %d\n%s", r.code, r.stderr)
	}
	for _, u := range e.users {
		e.sameUser(t, u)
	}

	// A wrong port: refused at once, no retry, checkpoint untouched.
	other := filepath.Join(dir, "other.db")
	r = runBinary(t, good, append(args(all, "imap+plain://"+closedPort(t)), "--checkpoint", other)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "refused the connection") || !strings.Contains(r.stderr, "check the port in --to") {
		t.Errorf("wrong port: exit %d\n%s", r.code, r.stderr)
	}
	if evs := jsonEvents(t, r.stdout); countEvents(evs, "retry") != 0 {
		t.Errorf("a refused connection was retried:\n%s", r.stdout)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("wrong port: a checkpoint was created: %v", err)
	}
	// The right port then works with that same checkpoint: it was bound
	// to nothing.
	if r := runBinary(t, good, append(args(first, to), "--checkpoint", other)...); r.code != exitOK {
		t.Errorf("after the wrong port, the right one: exit %d\n%s", r.code, r.stderr)
	}

	// A host name that does not resolve.
	r = runBinary(t, good, append(args(all, "imap://no-such-host.invalid"), "--checkpoint", filepath.Join(dir, "dns.db"))...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "no-such-host.invalid") {
		t.Errorf("unknown host: exit %d\n%s", r.code, r.stderr)
	}
}

// TestSameAccountRefused: the same account on both sides, under two names
// for one address, is refused before any login; in a batch between the
// same servers, only the rows that are the same account are.
func TestSameAccountRefused(t *testing.T) {
	d := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass, "bob": dstPass}})
	proxy := imaptest.StartFaultProxy(t, d.Addr())
	_, port, _ := net.SplitHostPort(proxy.Addr())
	env := []string{"MAILFERRY_FROM_PASSWORD=" + srcPass, "MAILFERRY_TO_PASSWORD=" + srcPass}
	dir := t.TempDir()
	for _, cmd := range []string{"migrate", "preflight"} {
		r := runBinary(t, env, cmd, "--from", "imap+plain://alice@127.0.0.1:"+port, "--to", "imap+plain://ALICE@localhost:"+port,
			"--checkpoint", filepath.Join(dir, cmd+".db"), "--output", "text")
		if r.code != exitUsage || !strings.Contains(r.stderr, "same account on both sides") {
			t.Errorf("%s: exit %d, want %d with a refusal\n%s", cmd, r.code, exitUsage, r.stderr)
		}
	}
	if n := len(proxy.Accepts()); n != 0 {
		t.Errorf("%d connections before the refusal", n)
	}
	csv := writeFile(t, dir, "wave.csv", "source_user,source_password,dest_user,dest_password\nalice,"+srcPass+",alice,"+srcPass+"\nalice,"+srcPass+",bob,"+dstPass+"\n")
	d.Seed(t, "alice", "INBOX", []imaptest.SeedMessage{{Raw: []byte("Message-ID: <1@x>\r\nSubject: hi\r\n\r\nhello\r\n")}})
	r := runBinary(t, nil, "migrate", "--batch", csv, "--from", "imap+plain://127.0.0.1:"+port, "--to", "imap+plain://localhost:"+port,
		"--checkpoint", filepath.Join(dir, "wave.db"), "--output", "json", "--log-level", "warn")
	if r.code != exitPartial {
		t.Fatalf("batch: exit %d, want %d\n%s", r.code, exitPartial, r.stderr)
	}
	evs := jsonEvents(t, r.stdout)
	if countEvents(evs, "refused") != 1 {
		t.Errorf("want one refused event:\n%s", r.stdout)
	}
	if n := len(d.Messages(t, "bob", "INBOX")); n != 1 {
		t.Errorf("bob has %d messages, want alice's one", n)
	}
}

// TestCommandsRefuseMissingCheckpoint: every command that reads a
// checkpoint refuses a path that does not exist, and creates nothing;
// only migrate creates one.
func TestCommandsRefuseMissingCheckpoint(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "wave1.db")
	env := []string{"MAILFERRY_FROM_PASSWORD=x", "MAILFERRY_TO_PASSWORD=y"}
	ends := []string{"--from", "imap+plain://alice@127.0.0.1:1", "--to", "imap+plain://alice@127.0.0.1:2"}
	for _, args := range [][]string{
		append([]string{"verify", "--checkpoint", missing}, ends...),
		append([]string{"undo", "--checkpoint", missing, "--yes"}, ends...),
		append([]string{"reverse", "--checkpoint", missing}, ends...),
		append([]string{"reverse", "--dry-run", "--checkpoint", missing}, ends...),
		{"cutover", "--checkpoint", missing},
		{"status", "--checkpoint", missing},
	} {
		r := runBinary(t, env, args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "does not exist") {
			t.Errorf("%s: exit %d, want %d\n%s", strings.Join(args[:2], " "), r.code, exitUsage, r.stderr)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("%s created %v", args[0], entries)
		}
	}
}
