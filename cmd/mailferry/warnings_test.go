package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mbox"
	"github.com/mailferry/mailferry/providers/mem"
)

// badMbox has junk before its first From_ line and a last message cut
// inside a line: both are reported, the three messages imported.
const badMbox = "junk\n\n" +
	"From a@example.org Mon Jan  1 00:00:00 2001\nSubject: one\n\nsecret one\n\n" +
	"From b@example.org Tue Jan  2 00:00:00 2001\nSubject: two\n\nsecret two\n\n" +
	"From c@example.org Wed Jan  3 00:00:00 2001\nSubject: three\n\nsecret th" // line 13, byte 146

func writeBadMbox(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "Archive.mbox")
	if err := os.WriteFile(path, []byte(badMbox), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func badMboxWarnings(path string) []string {
	return []string{
		"source: " + path + ":1 (byte 0): 6 bytes before the first From_ line skipped",
		"source: " + path + ":13 (byte 146): the file ends inside a line: the last message may be truncated",
	}
}

// TestSummaryPrintsMboxWarnings runs an import from a malformed mbox file
// and checks that the account summary, the batch summary and the CSV row
// show each problem with its file, line and offset.
func TestSummaryPrintsMboxWarnings(t *testing.T) {
	dir := t.TempDir()
	path := writeBadMbox(t, dir)
	store, err := checkpoint.Open(filepath.Join(t.TempDir(), "run.db"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dst := mem.New()
	acct := migrate.BatchAccount{ID: ledger.AccountID("alice", "alice"), SourceUser: "alice", DestUser: "alice",
		OpenSource: func(context.Context) (providers.Store, error) { return mbox.Open(dir, mbox.Options{ReadOnly: true}) },
		OpenDest:   func(context.Context) (providers.Store, error) { return dst, nil },
	}
	sums := migrate.RunBatch(context.Background(), []migrate.BatchAccount{acct}, store, migrate.BatchOptions{})
	if sums[0].Status != migrate.StatusOK || len(dst.Messages("Archive")) != 3 {
		t.Fatalf("status %s, %d messages copied; want ok and 3", sums[0].Status, len(dst.Messages("Archive")))
	}
	want := badMboxWarnings(path)

	var single bytes.Buffer
	printSummary(&single, sums, false)
	for _, w := range want {
		if !strings.Contains(single.String(), "\n  warning: "+w+"\n") {
			t.Errorf("account summary lacks %q:\n%s", w, single.String())
		}
	}
	var batch bytes.Buffer
	printBatchSummary(&batch, sums, false, time.Second)
	for _, w := range want {
		if !strings.Contains(batch.String(), "\n  alice warning: "+w+"\n") {
			t.Errorf("batch summary lacks %q:\n%s", w, batch.String())
		}
	}
	for _, out := range []string{single.String(), batch.String()} {
		if strings.Contains(out, "secret") {
			t.Errorf("a summary shows message text:\n%s", out)
		}
	}
	var csvOut bytes.Buffer
	if err := writeCSVReport(&csvOut, sums); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("CSV report: %v, %q", err, rows)
	}
	col := map[string]string{}
	for i, h := range rows[0] {
		col[h] = rows[1][i]
	}
	if col["warnings"] != "2" || col["warning_details"] != strings.Join(want, "; ") {
		t.Errorf("CSV warnings %q, details %q; want 2 and %q", col["warnings"], col["warning_details"], strings.Join(want, "; "))
	}
}

// TestSummaryWarningsBeyondTheList: warnings past those shown are counted.
func TestSummaryWarningsBeyondTheList(t *testing.T) {
	s := migrate.AccountSummary{Source: "alice", Dest: "alice", Status: migrate.StatusOK, WarningCount: 130}
	for i := range 100 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("source: /m/x.mbox:%d: From_ line without a blank line before it", i+1))
	}
	var single, batch bytes.Buffer
	printSummary(&single, []migrate.AccountSummary{s}, false)
	printBatchSummary(&batch, []migrate.AccountSummary{s}, false, time.Second)
	if n := strings.Count(single.String(), "warning: source:"); n != 100 || !strings.Contains(single.String(), "  warning: 30 more\n") {
		t.Errorf("account summary shows %d warnings, want 100 and 30 more:\n%s", n, single.String())
	}
	if n := strings.Count(batch.String(), "warning: source:"); n != batchWarnings ||
		!strings.Contains(batch.String(), fmt.Sprintf("  alice warning: %d more (the first %d of them in the JSON --report)\n", 130-batchWarnings, 100-batchWarnings)) {
		t.Errorf("batch summary shows %d warnings, want %d and a count of the rest:\n%s", n, batchWarnings, batch.String())
	}
}

// TestMboxProblemsReported runs the binary on a malformed mbox tree (mbox
// to mbox, no server needed): the problems are in the text summary, the
// account_done JSON event, the JSON report and the CSV report, and the
// run succeeds with every message exported.
func TestMboxProblemsReported(t *testing.T) {
	dir := t.TempDir()
	path := writeBadMbox(t, filepath.Join(dir, "src", "alice"))
	want := badMboxWarnings(path)
	users := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(users, []byte("source_user,dest_user\nalice,alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := func(run string, extra ...string) []string {
		return append([]string{"migrate", "--batch", users, "--from", "mbox:" + filepath.Join(dir, "src"),
			"--to", "mbox:" + filepath.Join(dir, run), "--checkpoint", filepath.Join(dir, run+".db")}, extra...)
	}
	csvReport := filepath.Join(dir, "report.csv")
	r := runBinary(t, nil, args("text", "--output", "text", "--report", csvReport)...)
	if r.code != 0 {
		t.Fatalf("exit %d: problems in the files must not fail the run\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, "  alice warning: "+w+"\n") {
			t.Errorf("text summary lacks %q:\n%s", w, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "warnings=2") {
		t.Errorf("the account done log line does not count the warnings:\n%s", r.stderr)
	}
	b, err := os.ReadFile(csvReport)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(rows) != 2 || rows[0][len(rows[0])-2] != "warnings" || rows[1][len(rows[1])-2] != "2" ||
		rows[1][len(rows[1])-1] != strings.Join(want, "; ") {
		t.Errorf("CSV report: %v\n%s", err, b)
	}

	jsonReport := filepath.Join(dir, "report.json")
	r = runBinary(t, nil, args("json", "--output", "json", "--report", jsonReport)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var done *accountRow
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var e jsonEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		if e.Event == "account_done" {
			done = e.Account
		}
	}
	if done == nil || done.WarningCount != 2 || strings.Join(done.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("account_done event: %+v, want warnings %q", done, want)
	}
	rep := readReport(t, jsonReport)
	if len(rep.Accounts) != 1 || strings.Join(rep.Accounts[0].Warnings, "\n") != strings.Join(want, "\n") || rep.Accounts[0].WarningCount != 2 {
		t.Errorf("JSON report accounts: %+v", rep.Accounts)
	}
	if n := rep.Accounts[0].Totals().New; n != 3 {
		t.Errorf("%d messages exported, want 3", n)
	}
	if strings.Contains(r.stdout+r.stderr, "secret") {
		t.Errorf("the output shows message text")
	}
}
