package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers"
)

func TestMetricsAddr(t *testing.T) {
	for _, c := range []struct {
		addr   string
		public bool
		ok     bool
	}{
		{"127.0.0.1:9464", false, true},
		{"localhost:0", false, true},
		{"[::1]:9464", false, true},
		{"127.3.4.5:9464", false, true},
		{":9464", false, false},
		{"0.0.0.0:9464", false, false},
		{"192.0.2.10:9464", false, false},
		{"metrics.example.com:9464", false, false},
		{":9464", true, true},
		{"0.0.0.0:9464", true, true},
		{"127.0.0.1", false, false}, // no port
		{"127.0.0.1", true, false},
	} {
		o := metricsOptions{addr: c.addr, public: c.public}
		_, err := o.listenAddr()
		var ue *usageError
		switch {
		case c.ok && err != nil:
			t.Errorf("%q (public %v): %v", c.addr, c.public, err)
		case !c.ok && !errors.As(err, &ue):
			t.Errorf("%q (public %v): %v, want a usage error", c.addr, c.public, err)
		}
	}
}

// TestMetricsFlagOnLongRunningCommands: every command that runs for long
// takes the listener's flags.
func TestMetricsFlagOnLongRunningCommands(t *testing.T) {
	a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	root := a.newRootCommand()
	long := map[string]bool{"migrate": true, "verify": true, "undo": true, "reverse": true, "preflight": true}
	found := 0
	for _, cmd := range root.Commands() {
		if !long[cmd.Name()] {
			continue
		}
		found++
		for _, name := range []string{"metrics-addr", "metrics-public", "metrics-linger"} {
			if cmd.Flags().Lookup(name) == nil {
				t.Errorf("%s has no --%s", cmd.Name(), name)
			}
		}
	}
	if found < 4 {
		t.Errorf("found %d of the long-running commands", found)
	}
}

// testObserver starts a real listener on loopback for a run of accts.
func testObserver(t *testing.T, linger time.Duration, accts []plannedAccount, servers ...*side) (*app, *observer, string) {
	t.Helper()
	var logs bytes.Buffer
	a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" },
		log: slog.New(slog.NewTextHandler(&logs, nil))}
	ob, err := a.startObservability(context.Background(), &metricsOptions{addr: "127.0.0.1:0", linger: linger}, "migrate", accts, servers...)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`url=(http://\S+/)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no URL logged: %s", logs.String())
	}
	return a, ob, m[1]
}

func planned(users ...string) []plannedAccount {
	var out []plannedAccount
	for i, u := range users {
		p := plannedAccount{BatchAccount: migrate.BatchAccount{ID: u + "\x00" + u, SourceUser: u, DestUser: u}, line: i + 2}
		if strings.HasPrefix(u, "bad") {
			p.invalid = "users.csv line 4: no source password"
		}
		out = append(out, p)
	}
	return out
}

// TestObserverCountsEvents feeds a run's events and reads them back from
// /metrics and /status.json.
func TestObserverCountsEvents(t *testing.T) {
	ep := testEndpoint(t, "imaps://imap.example.net")
	host := providers.NewHostLimiter(6)
	srv := &side{ep: ep, host: host}
	accts := planned("ann", "bob", "bad1", "cat")
	a, ob, base := testObserver(t, 0, accts, srv, srv)
	emit := ob.tee(func(migrate.Event) {})
	ann, bob, cat := accts[0].ID, accts[1].ID, accts[3].ID

	if err := host.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	emit(migrate.Event{Kind: migrate.EventAccountStart, ID: ann})
	emit(migrate.Event{Kind: migrate.EventMailboxStart, ID: ann, Mailbox: "INBOX"})
	emit(migrate.Event{Kind: migrate.EventRetry, ID: ann, Mailbox: "INBOX", Err: errors.New("connection reset")})
	emit(migrate.Event{Kind: migrate.EventMailboxStart, ID: ann, Mailbox: "INBOX"}) // the retry
	for range 3 {
		emit(migrate.Event{Kind: migrate.EventAppended, ID: ann, Mailbox: "INBOX", Count: 1, Bytes: 1000})
	}
	emit(migrate.Event{Kind: migrate.EventRetry, ID: bob, Err: errors.New("too many connections")})
	emit(migrate.Event{Kind: migrate.EventAccountStart, ID: bob})

	during := scrape(t, base)
	for name, want := range map[string]float64{
		"copied": 3,
	} {
		if got := value(t, during, "mailferry_messages_total", map[string]string{"result": name}); got != want {
			t.Errorf("during: messages %s %v, want %v", name, got, want)
		}
	}
	for state, want := range map[string]float64{"running": 2, "waiting": 1, "failed": 1, "ok": 0} {
		if got := value(t, during, "mailferry_accounts", map[string]string{"state": state}); got != want {
			t.Errorf("during: accounts %s %v, want %v", state, got, want)
		}
	}
	if got := value(t, during, "mailferry_host_connections", map[string]string{"host": "imaps://imap.example.net:993"}); got != 1 {
		t.Errorf("connections %v, want the 1 acquired", got)
	}
	if got := value(t, during, "mailferry_host_connection_cap", map[string]string{"host": "imaps://imap.example.net:993"}); got != 6 {
		t.Errorf("cap %v, want 6 (one server for both sides, counted once)", got)
	}
	host.Release()

	emit(migrate.Event{Kind: migrate.EventMailboxDone, ID: ann, Mailbox: "INBOX", Summary: &migrate.MailboxSummary{
		Source: "INBOX", Seen: 6, Copied: 3, New: 3, Duplicate: 2, Failed: 1, Bytes: 3000,
		Failures: []migrate.Failure{{UID: 7, MessageID: "<m7@x>", Reason: "NO [TOOBIG] too big"}}}})
	emit(migrate.Event{Kind: migrate.EventMailboxStart, ID: ann, Mailbox: "Sent"})
	emit(migrate.Event{Kind: migrate.EventMailboxDone, ID: ann, Mailbox: "Sent", Summary: &migrate.MailboxSummary{
		Source: "Sent", Seen: 4, Pending: 4, Error: "select Sent: BYE", Class: providers.ClassTransient.String()}})
	emit(migrate.Event{Kind: migrate.EventAccountDone, ID: ann, Account: &migrate.AccountSummary{Source: "ann", Status: migrate.StatusFailed,
		Error: "mailbox \"Sent\": select Sent: BYE", Class: providers.ClassTransient.String()}})
	emit(migrate.Event{Kind: migrate.EventAccountDone, ID: bob, Account: &migrate.AccountSummary{Source: "bob", Status: migrate.StatusOK}})
	// Skipped for an earlier failure: its reason is no failure of this run.
	emit(migrate.Event{Kind: migrate.EventAccountDone, ID: cat, Account: &migrate.AccountSummary{Source: "cat", Status: migrate.StatusSkipped,
		Error: "failed in run 1 (log in: NO); --retry-failed runs it again", Class: providers.ClassAccount.String()}})
	ob.close()

	after := scrape(t, base)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"mailferry_messages_total", map[string]string{"result": "copied"}, 3},
		{"mailferry_bytes_total", map[string]string{"result": "copied"}, 3000},
		{"mailferry_messages_total", map[string]string{"result": "skipped_duplicate"}, 2},
		{"mailferry_messages_total", map[string]string{"result": "failed"}, 1},
		{"mailferry_failures_total", map[string]string{"scope": "message", "class": "message"}, 1},
		{"mailferry_failures_total", map[string]string{"scope": "mailbox", "class": "transient"}, 1},
		{"mailferry_failures_total", map[string]string{"scope": "account", "class": "transient"}, 1},
		{"mailferry_failures_total", map[string]string{"scope": "account", "class": "account"}, 1}, // the bad row
		{"mailferry_retries_total", map[string]string{"op": "mailbox"}, 1},
		{"mailferry_retries_total", map[string]string{"op": "login"}, 1},
		{"mailferry_accounts", map[string]string{"state": "ok"}, 1},
		{"mailferry_accounts", map[string]string{"state": "failed"}, 2},
		{"mailferry_accounts", map[string]string{"state": "running"}, 0},
		{"mailferry_accounts", map[string]string{"state": "skipped"}, 1},
		{"mailferry_accounts", map[string]string{"state": "waiting"}, 0},
		{"mailferry_host_connections", map[string]string{"host": "imaps://imap.example.net:993"}, 0},
		{"mailferry_host_connections_peak", map[string]string{"host": "imaps://imap.example.net:993"}, 1},
		{"mailferry_run_info", map[string]string{"command": "migrate"}, 1},
	} {
		if got := value(t, after, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if h := histogram(t, after, "mailferry_mailbox_duration_seconds"); h.GetSampleCount() != 2 {
		t.Errorf("mailbox durations: %d observed, want 2 (a retried mailbox is one)", h.GetSampleCount())
	}
	if h := histogram(t, after, "mailferry_account_duration_seconds"); h.GetSampleCount() != 2 {
		t.Errorf("account durations: %d observed, want 2", h.GetSampleCount())
	}
	if v := value(t, after, "mailferry_run_end_timestamp_seconds", nil); v < value(t, after, "mailferry_run_start_timestamp_seconds", nil) {
		t.Errorf("run end %v", v)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if after[name] == nil {
			t.Errorf("no %s: the Go and process collectors are registered on the run's registry", name)
		}
	}

	var v statusPageView
	if err := json.Unmarshal([]byte(get(t, base+"status.json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Totals.Copied != 3 || v.Totals.Bytes != 3000 || v.Totals.Failed != 1 || v.Totals.Duplicate != 2 || v.Totals.Accounts != 4 || v.Totals.Done != 4 || v.Ended.IsZero() {
		t.Errorf("status.json totals %+v ended %v", v.Totals, v.Ended)
	}
	if v.FailureCount != 4 { // the bad row, the message, the mailbox, the account
		t.Errorf("%d failures, want 4: %+v", v.FailureCount, v.Failures)
	}
	reasons := ""
	for _, f := range v.Failures {
		reasons += f.Reason + "\n"
	}
	for _, want := range []string{"TOOBIG", "select Sent: BYE", "no source password"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("status.json failures lack %q:\n%s", want, reasons)
		}
	}
	page := get(t, base)
	for _, want := range []string{"ann", "bob", "bad1", "cat", "no source password", "NO [TOOBIG] too big", "4 / 4"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, `http-equiv="refresh"`) {
		t.Errorf("the page of an ended run still refreshes itself")
	}
	resp, err := http.Get(base + "nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing-here: %s", resp.Status)
	}

	// The command has returned: the listener stops.
	for _, f := range a.afterRun {
		f()
	}
	if _, err := http.Get(base + "metrics"); err == nil {
		t.Errorf("the listener still answers after the run")
	}
}

// TestObserverLingersForTheFinalScrape: with --metrics-linger the process
// waits after the run until /metrics has been read once more.
func TestObserverLingersForTheFinalScrape(t *testing.T) {
	a, ob, base := testObserver(t, 10*time.Minute, planned("ann"))
	ob.tee(func(migrate.Event) {})(migrate.Event{Kind: migrate.EventAccountStart, ID: planned("ann")[0].ID})
	// A scrape before the end does not count.
	scrape(t, base)
	ob.close()
	done := make(chan struct{})
	go func() {
		for _, f := range a.afterRun {
			f()
		}
		close(done)
	}()
	final := scrape(t, base)
	if v := value(t, final, "mailferry_run_end_timestamp_seconds", nil); v <= 0 {
		t.Errorf("the final scrape has no run end")
	}
	select {
	case <-done:
	case <-time.After(time.Minute): // the linger is 10 minutes: only the scrape ends it
		t.Fatal("still lingering after the final scrape")
	}
}

// TestObserverNil: without --metrics-addr nothing listens and the events
// go where they went.
func TestObserverNil(t *testing.T) {
	a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }, log: slog.New(slog.DiscardHandler)}
	ob, err := a.startObservability(context.Background(), &metricsOptions{}, "migrate", planned("ann"))
	if err != nil || ob != nil {
		t.Fatalf("no address: %v, %v", ob, err)
	}
	n := 0
	ob.tee(func(migrate.Event) { n++ })(migrate.Event{Kind: migrate.EventAccountStart})
	ob.close()
	if n != 1 || len(a.afterRun) != 0 {
		t.Errorf("nil observer: %d events passed, %d after-run hooks", n, len(a.afterRun))
	}
}

// BenchmarkObserverAppended is the observer's cost per confirmed APPEND,
// the most frequent event: a counter pair and the status page's account.
func BenchmarkObserverAppended(b *testing.B) {
	a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }, log: slog.New(slog.DiscardHandler)}
	accts := planned("ann")
	ob, err := a.startObservability(context.Background(), &metricsOptions{addr: "127.0.0.1:0"}, "migrate", accts)
	if err != nil {
		b.Fatal(err)
	}
	emit := ob.tee(func(migrate.Event) {})
	e := migrate.Event{Kind: migrate.EventAppended, ID: accts[0].ID, Mailbox: "INBOX", Count: 1, Bytes: 50 << 10}
	b.ReportAllocs()
	for b.Loop() {
		emit(e)
	}
	b.StopTimer()
	ob.close()
	for _, f := range a.afterRun {
		f()
	}
}
