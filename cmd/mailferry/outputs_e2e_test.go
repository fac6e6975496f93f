package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// noControlBytes fails on any byte below 0x20 but the newline, or DEL, in
// what a command printed.
func noControlBytes(t *testing.T, what string, r result) {
	t.Helper()
	for name, out := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < 0x20 && c != '\n' || c == 0x7f {
				t.Errorf("%s: %s holds control byte %#x at %d: %q", what, name, c, i, out[max(i-30, 0):min(i+30, len(out))])
				break
			}
		}
		if strings.Contains(out, `\u0000`) || strings.Contains(out, `\x00`) {
			t.Errorf("%s: %s shows a NUL: %s", what, name, out)
		}
	}
}

// tableLines are the lines of a table printed by a command: its header
// (starting with first) to its TOTAL line.
func tableLines(out, first string) []string {
	var lines []string
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, first):
			in = true
		case !in:
			continue
		}
		lines = append(lines, l)
		if strings.HasPrefix(l, "TOTAL") {
			break
		}
	}
	return lines
}

// TestWaveOutputs runs a small wave the way an admin watches one: a dry
// run sizes it (bytes, in the report); the run emits JSON events (a bad
// row, a login retry, progress, each account, the totals), writes one
// log file per account and a report with the run's times, servers and
// totals; status prints one row per account with totals, fitting the
// terminal, and the mailboxes only with --mailboxes; undo prints one row
// per account; nothing prints a control byte or a NUL.
func TestWaveOutputs(t *testing.T) {
	e := newBatchEnv(t, 6)
	proxy := imaptest.StartFaultProxy(t, e.src.Addr())
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("source_user,source_password,dest_user,dest_password\n")
	for _, u := range e.users {
		pw := e.srcPw[u]
		if u == "u03" {
			pw = "wrong"
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s\n", u, pw, u, e.dstPw[u])
	}
	b.WriteString("u99,x\n")
	csv := writeFile(t, dir, "wave.csv", b.String())
	ckpt := filepath.Join(dir, "wave.db")
	base := []string{"--batch", csv, "--from", "imap+plain://" + proxy.Addr(), "--to", "imap+plain://" + e.dst.Addr(), "--checkpoint", ckpt}
	cols := []string{"COLUMNS=80"}

	dry := filepath.Join(dir, "dry.json")
	r := runBinary(t, cols, append([]string{"migrate", "--dry-run", "--report", dry, "--output", "text"}, base...)...)
	noControlBytes(t, "dry run", r)
	rep := readReport(t, dry)
	var total int64
	for _, s := range rep.Accounts {
		if s.Source == "u03" || strings.HasPrefix(s.Source, "(line") {
			continue
		}
		var want int64
		for _, mb := range []string{"INBOX", "Sent"} {
			for _, m := range e.src.Messages(t, s.Source, mb) {
				want += m.Size
			}
		}
		if got := s.Totals().Bytes; got != want {
			t.Errorf("dry run %s: %d bytes, doveadm says %d", s.Source, got, want)
		}
		total += want
	}
	if tot, ok := rep.Totals.(map[string]any); !ok || tot["bytes"] != float64(total) {
		t.Errorf("dry run report totals %v, want %d bytes", rep.Totals, total)
	}
	if _, err := os.Stat(ckpt); !os.IsNotExist(err) {
		t.Fatalf("the dry run made a checkpoint")
	}

	// The connection after the probe's is refused for load, and retried.
	proxy.RefuseConnections(imaptest.Nth(2), "Too many connections from your IP")
	logs := filepath.Join(dir, "logs")
	report := filepath.Join(dir, "run.json")
	r = runBinary(t, cols, append([]string{"migrate", "--output", "json", "--progress-every", "50ms", "--log-dir", logs, "--report", report}, base...)...)
	noControlBytes(t, "migrate", r)
	if r.code != exitPartial {
		t.Fatalf("migrate: exit %d, want %d (u03's password is wrong)\n%s", r.code, exitPartial, r.stderr)
	}
	evs := jsonEvents(t, r.stdout)
	if countEvents(evs, "bad_row") != 1 || countEvents(evs, "account_done") != 6 || countEvents(evs, "retry") < 1 || countEvents(evs, "progress") < 1 {
		t.Errorf("events: %d bad_row, %d account_done, %d retry, %d progress; want 1, 6, at least 1, at least 1",
			countEvents(evs, "bad_row"), countEvents(evs, "account_done"), countEvents(evs, "retry"), countEvents(evs, "progress"))
	}
	var last map[string]any
	for _, ev := range evs {
		if ev["event"] == "progress" {
			last = ev
		}
	}
	if last["finished"] != float64(6) || last["failed"] != float64(1) || last["accounts"] != float64(6) {
		t.Errorf("last progress event %v, want 6 of 6 finished, 1 failed", last)
	}
	b2, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b2, []byte(`\u0000`)) || bytes.Contains(b2, []byte(srcAdminPw)) || bytes.Contains(b2, []byte(e.srcPw["u01"])) {
		t.Errorf("the report holds a NUL or a password")
	}
	rep = readReport(t, report)
	if rep.Command != "migrate" || rep.Started.IsZero() || !rep.Finished.After(rep.Started) || rep.From != "imap+plain://"+proxy.Addr() ||
		rep.To != "imap+plain://"+e.dst.Addr() || len(rep.Args) == 0 {
		t.Errorf("report header %+v", rep.reportHeader)
	}
	if tot, _ := rep.Totals.(map[string]any); tot["accounts"] != float64(7) || tot["statuses"].(map[string]any)["failed"] != float64(2) {
		t.Errorf("report totals %v, want 7 accounts, 2 failed (u03, the bad row)", rep.Totals)
	}
	for _, u := range e.users {
		log, err := os.ReadFile(filepath.Join(logs, u+".log"))
		if err != nil {
			t.Errorf("no log of %s: %v", u, err)
			continue
		}
		if !bytes.Contains(log, []byte("account done")) || !bytes.Contains(log, []byte("source_user="+u)) {
			t.Errorf("%s.log lacks its account:\n%s", u, log)
		}
		for _, other := range e.users {
			if other != u && bytes.Contains(log, []byte("source_user="+other+" ")) {
				t.Errorf("%s.log holds lines of %s", u, other)
			}
		}
	}

	st := runBinary(t, cols, "status", "--checkpoint", ckpt)
	noControlBytes(t, "status", st)
	table := tableLines(st.stdout, "USER")
	if len(table) != 1+6+1 || !strings.HasPrefix(table[len(table)-1], "TOTAL") || strings.Contains(st.stdout, "MAILBOX ") {
		t.Errorf("status: want a header, one row per account and a TOTAL, no mailboxes:\n%s", st.stdout)
	}
	for _, l := range table {
		if utf8.RuneCountInString(l) > 80 {
			t.Errorf("status line of %d columns with COLUMNS=80: %q", utf8.RuneCountInString(l), l)
		}
	}
	if st := runBinary(t, cols, "status", "--checkpoint", ckpt, "--mailboxes"); !strings.Contains(st.stdout, "MAILBOX") || !strings.Contains(st.stdout, "Sent") {
		t.Errorf("status --mailboxes lacks the mailboxes:\n%s", st.stdout)
	}
	sj := runBinary(t, nil, "status", "--checkpoint", ckpt, "--json")
	noControlBytes(t, "status --json", sj)
	var view statusView
	if err := json.Unmarshal([]byte(sj.stdout), &view); err != nil || len(view.Accounts) != 6 {
		t.Errorf("status --json: %v, %d accounts", err, len(view.Accounts))
	}

	u := runBinary(t, cols, append([]string{"undo", "--output", "text"}, base...)...)
	noControlBytes(t, "undo", u)
	table = tableLines(u.stdout, "USER")
	if len(table) != 1+6+1 || strings.Contains(u.stdout, "DESTINATION MAILBOX") {
		t.Errorf("undo dry run: want one row per account and a TOTAL:\n%s", u.stdout)
	}
	for _, l := range table {
		if utf8.RuneCountInString(l) > 80 {
			t.Errorf("undo line of %d columns with COLUMNS=80: %q", utf8.RuneCountInString(l), l)
		}
	}
	if v := runBinary(t, cols, append([]string{"undo", "--output", "text", "-v"}, base...)...); !strings.Contains(v.stdout, "DESTINATION MAILBOX") {
		t.Errorf("undo -v lacks the mailboxes:\n%s", v.stdout)
	}
	if r := runBinary(t, nil, append([]string{"migrate", "--json", "--output", "text"}, base...)...); r.code != exitUsage || !strings.Contains(r.stderr, "contradict") {
		t.Errorf("--json --output text: exit %d\n%s", r.code, r.stderr)
	}
}
