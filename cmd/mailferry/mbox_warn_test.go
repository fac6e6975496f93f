package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mbox"
	"github.com/mailferry/mailferry/providers/mem"
)

// filmsMbox has an unquoted "From " line after a blank line in its first
// message's body (line 6, byte 75): kept as text, but another reader may
// split there.
const filmsMbox = "From a@example.org Mon Jan  1 00:00:00 2001\nSubject: one\n\nFavourite film:\n\n" +
	"From Russia with love\n\nthe end\n\n" +
	"From b@example.org Tue Jan  2 00:00:00 2001\nSubject: two\n\nbody two\n\n"

func writeFilms(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "Films.mbox")
	if err := os.WriteFile(path, []byte(filmsMbox), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSummaryShowsWarn: the account summary names the mailbox whose
// count is in doubt and why.
func TestSummaryShowsWarn(t *testing.T) {
	dir := t.TempDir()
	path := writeFilms(t, dir)
	store, err := checkpoint.Open(filepath.Join(t.TempDir(), "run.db"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	acct := migrate.BatchAccount{ID: ledger.AccountID("alice", "alice"), SourceUser: "alice", DestUser: "alice",
		OpenSource: func(context.Context) (providers.Store, error) { return mbox.Open(dir, mbox.Options{ReadOnly: true}) },
		OpenDest:   func(context.Context) (providers.Store, error) { return mem.New(), nil },
	}
	sums := migrate.RunBatch(context.Background(), []migrate.BatchAccount{acct}, store, migrate.BatchOptions{})
	var out bytes.Buffer
	printSummary(&out, sums, false)
	want := `  mailbox "Films" WARN: message count in doubt: source: ` + path + `:6 (byte 75): line starting "From " after a blank line`
	if sums[0].Status != migrate.StatusWarn || !strings.Contains(out.String(), want) {
		t.Errorf("status %q; summary lacks %q:\n%s", sums[0].Status, want, out.String())
	}
}

// TestMboxDoubtWarns runs the binary on an mbox tree with a doubtful file
// (mbox to mbox, no server needed): the batch summary says warn and why,
// the CSV report's status is warn, `status` shows it, and the run exits 1.
func TestMboxDoubtWarns(t *testing.T) {
	dir := t.TempDir()
	path := writeFilms(t, filepath.Join(dir, "src", "alice"))
	users := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(users, []byte("source_user,dest_user\nalice,alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "run.db")
	report := filepath.Join(dir, "report.csv")
	r := runBinary(t, nil, "migrate", "--batch", users, "--from", "mbox:"+filepath.Join(dir, "src"), "--to", "mbox:"+filepath.Join(dir, "out"),
		"--checkpoint", ckpt, "--output", "text", "--report", report)
	if r.code != exitPartial {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		`  alice mailbox "Films" WARN: message count in doubt: source: ` + path + `:6 (byte 75)`,
		"1 warn",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("batch summary lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, `warn="message count in doubt: source: `) || !strings.Contains(r.stderr, "status=warn") {
		t.Errorf("the mailbox and account done log lines do not say warn:\n%s", r.stderr)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("CSV report: %v\n%s", err, b)
	}
	col := map[string]string{}
	for i, h := range rows[0] {
		col[h] = rows[1][i]
	}
	if col["status"] != "warn" || col["copied"] != "2" {
		t.Errorf("CSV report: status %q, copied %q; want warn and 2", col["status"], col["copied"])
	}
	st := runBinary(t, nil, "status", "--checkpoint", ckpt)
	if !strings.Contains(st.stdout, `  alice -> alice: warn (mailbox "Films": message count in doubt: source: `+path+`:6 (byte 75)`) {
		t.Errorf("status:\n%s", st.stdout)
	}
}
