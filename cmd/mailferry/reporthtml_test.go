package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate/ledger"
)

// shardFixture writes a checkpoint as runs would have left it: accounts
// in every state, copied, duplicate, failed, pending and removed records,
// a cutover and a way back.
type fixtureAccount struct {
	source, state, reason string
	cutover               time.Time
	copied, dup, failed   int
	pending, removed      int
	size                  int64
	back                  int // messages reverse copied back
}

func writeShard(t *testing.T, path, from, to string, accts []fixtureAccount) {
	t.Helper()
	s, err := checkpoint.Open(path, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.BindEndpoints(from, to); err != nil {
		t.Fatal(err)
	}
	run, err := s.StartRun("migrate", "test")
	if err != nil {
		t.Fatal(err)
	}
	put := func(id string, a ledger.Account, mailbox string, statuses map[ledger.Status]int, size int64, reason string) {
		if err := s.PutAccount(id, a); err != nil {
			t.Fatal(err)
		}
		if err := s.PutMailbox(id, mailbox, ledger.MailboxRecord{Source: mailbox, Dest: mailbox, SrcValidity: 1, DstValidity: 2}); err != nil {
			t.Fatal(err)
		}
		var recs []ledger.Record
		uid := uint32(0)
		for _, st := range []ledger.Status{ledger.StatusCopied, ledger.StatusDuplicate, ledger.StatusFailed, ledger.StatusPending, ledger.StatusRemoved} {
			for range statuses[st] {
				uid++
				r := ledger.Record{RecordKey: ledger.RecordKey{SrcValidity: 1, SrcUID: uid}, Status: st, Size: size, Run: run,
					MessageID: fmt.Sprintf("<%d@%s>", uid, a.Source)}
				if st == ledger.StatusFailed {
					r.Reason = reason
				}
				recs = append(recs, r)
			}
		}
		if err := s.PutRecords(id, mailbox, recs); err != nil {
			t.Fatal(err)
		}
	}
	for _, fa := range accts {
		id := ledger.AccountID(fa.source, fa.source)
		put(id, ledger.Account{Source: fa.source, Dest: fa.source, State: fa.state, Reason: fa.reason, Run: run, Cutover: fa.cutover},
			"INBOX", map[ledger.Status]int{ledger.StatusCopied: fa.copied, ledger.StatusDuplicate: fa.dup,
				ledger.StatusFailed: fa.failed, ledger.StatusPending: fa.pending, ledger.StatusRemoved: fa.removed},
			fa.size, "NO [TOOBIG] message of "+fa.source+" too big")
		if fa.back > 0 {
			put(ledger.ReverseAccountID(id), ledger.Account{Source: fa.source, Dest: fa.source, State: ledger.AccountCopied, Run: run},
				"INBOX", map[ledger.Status]int{ledger.StatusCopied: fa.back}, 100, "")
		}
	}
	if err := s.FinishRun(run, "failed"); err != nil {
		t.Fatal(err)
	}
}

func TestReportHTML(t *testing.T) {
	dir := t.TempDir()
	from, to := "imaps://old.example.edu:993", "imaps://new.example.edu:993"
	cut := time.Date(2026, 11, 20, 18, 0, 0, 0, time.UTC)
	shard0 := filepath.Join(dir, "shard-0.db")
	shard1 := filepath.Join(dir, "shard-1.db")
	writeShard(t, shard0, from, to, []fixtureAccount{
		{source: "alice", state: ledger.AccountCutover, cutover: cut, copied: 10, dup: 2, size: 3000, back: 4},
		{source: "bob", state: ledger.AccountFailed, reason: "log in: NO [AUTHENTICATIONFAILED] Authentication failed.", copied: 0},
		{source: "<script>carol", state: ledger.AccountCopied, copied: 5, failed: 2, size: 200 << 10},
	})
	writeShard(t, shard1, from, to, []fixtureAccount{
		{source: "dave", state: ledger.AccountVerified, copied: 7, pending: 1, size: 5 << 20},
		{source: "erin", state: ledger.AccountUndone, removed: 3, size: 1000},
	})
	out := filepath.Join(dir, "wave.html")
	var stdout, stderr bytes.Buffer
	a := &app{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	if code := a.run(context.Background(), []string{"report", "html", "--checkpoint", shard0, shard1, "-o", out, "--title", "Wave 1 & co"}); code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	body, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	html := string(body)
	headline := "3 of 5 accounts arrived (copied, verified or cut over), 1 failed; 22 messages (" + humanBytes(10*3000+5*(200<<10)+7*(5<<20)) + ") copied, 2 failed."
	if !strings.Contains(stdout.String(), headline) {
		t.Errorf("stdout %q lacks the headline %q", stdout.String(), headline)
	}
	for _, want := range []string{
		"<title>Wave 1 &amp; co</title>", headline, "shard-0.db", "shard-1.db",
		"NO [TOOBIG] message of &lt;script&gt;carol too big", "AUTHENTICATIONFAILED",
		"2026-11-20 18:00:00 UTC", // alice's cutover
		"4 back",                  // alice's way back
		"3 removed",               // erin's undo
		"<td>pass</td>",           // dave verified
		"Messages by size", "Throughput of each run",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Contains(html, "<script") {
		t.Errorf("a user name got into the page as markup")
	}
	if n := strings.Count(html, "too big"); n != 2 {
		t.Errorf("%d message failures listed, want carol's 2", n)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("report mode %v (%v), want 0600 like the other reports", fi.Mode(), err)
	}

	// Shards of another move are refused.
	other := filepath.Join(dir, "other.db")
	writeShard(t, other, from, "imaps://elsewhere.example.edu:993", []fixtureAccount{{source: "zoe", state: ledger.AccountCopied, copied: 1}})
	if code := a.run(context.Background(), []string{"report", "html", "--checkpoint", shard0, other, "-o", filepath.Join(dir, "x.html")}); code != exitUsage {
		t.Errorf("checkpoints of two moves: exit %d, want %d", code, exitUsage)
	}
	if code := a.run(context.Background(), []string{"report", "html", "--checkpoint", shard0}); code != exitUsage {
		t.Errorf("no -o: exit %d, want %d", code, exitUsage)
	}

	// In the browser: the text a reader sees, and nothing fetched.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(body)
	}))
	defer srv.Close()
	shown := render(t, srv.URL+"/", "report-html-shards")
	fetchesNothingElse(t, shown, srv.URL+"/", html, false)
	for _, want := range []string{headline, "<script>carol", "Authentication failed."} {
		if !strings.Contains(shown.text, want) {
			t.Errorf("the browser shows no %q:\n%s", want, shown.text)
		}
	}
}
