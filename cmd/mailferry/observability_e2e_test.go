package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// TestMetricsDuringBatch runs a real batch against two Dovecots, the
// destination behind a proxy that first freezes every connection, refuses
// two connections as overloaded and refuses one APPEND. It scrapes
// /metrics while the run is held up and after it ended, parses it with the
// Prometheus text parser and checks that the counters are the run's
// summary; the status page and the HTML report are rendered in chromium.
func TestMetricsDuringBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	e := newBatchEnv(t, 12)
	proxy := imaptest.StartFaultProxy(t, e.dst.Addr())
	proxy.Stall(0) // until Resume: the run cannot end before we looked
	throttle := proxy.RefuseConnections(imaptest.When{Times: 2}, "Too many connections from this IP")
	// One account at a time, one mailbox at a time, so that the refusal
	// is the first APPEND of the first account that copies: with
	// MULTIAPPEND the first spoils a group, which is sent again one by one,
	// and the second refuses a message for good.
	refused := proxy.RefuseCommand(imaptest.When{Nth: 1, Times: 2}, "APPEND", "NO", "TOOBIG", "Message too large for this test")

	dir := t.TempDir()
	const wrongUser = "u00" // first, so it fails while the destination is frozen
	var csv strings.Builder
	csv.WriteString("source_user,source_password,dest_user,dest_password\n")
	for _, u := range e.users {
		sp := e.srcPw[u]
		if u == wrongUser {
			sp = "not-the-password"
		}
		fmt.Fprintf(&csv, "%s,%s,%s,%s\n", u, sp, u, e.dstPw[u])
	}
	csv.WriteString("u99,,u99,\n") // a row that cannot run: counted as a failed account
	batch := writeFile(t, dir, "wave.csv", csv.String())
	ckpt := filepath.Join(dir, "wave.db")
	report := filepath.Join(dir, "wave.json")
	args := e.args(ckpt, batch, "--to", "imap+plain://"+proxy.Addr(), "--report", report,
		"--metrics-addr", "127.0.0.1:0", "--metrics-linger", "3m", "--log-level", "info", "--concurrency", "1", "--mailbox-workers", "1")

	run := startServed(t, nil, args...)
	base, logs := run.base, run.logs

	// While the destination is frozen: the wrong password fails at the
	// source, the rest wait for the destination.
	view := waitStatus(t, base, logs, "the account with a wrong password failed", func(v statusPageView) bool {
		return accountIn(v, wrongUser).State == migrate.StatusFailed
	})
	if !view.Ended.IsZero() {
		t.Fatalf("the run ended while the destination was frozen")
	}
	during := scrape(t, base)
	if v := value(t, during, "mailferry_run_end_timestamp_seconds", nil); v != 0 {
		t.Errorf("during the run: run end %v, want 0", v)
	}
	if v := value(t, during, "mailferry_run_start_timestamp_seconds", nil); v <= 0 {
		t.Errorf("during the run: run start %v", v)
	}
	if v := value(t, during, "mailferry_accounts", map[string]string{"state": "running"}); v < 1 {
		t.Errorf("during the run: %v accounts running, want some waiting on the frozen destination", v)
	}
	if v := value(t, during, "mailferry_accounts", map[string]string{"state": "failed"}); v < 2 {
		t.Errorf("during the run: %v accounts failed, want the bad row and %s", v, wrongUser)
	}
	if v := value(t, during, "mailferry_messages_total", map[string]string{"result": "copied"}); v != 0 {
		t.Errorf("during the run: %v messages copied through a frozen destination", v)
	}
	dstHost := "imap+plain://" + proxy.Addr()
	srcHost := "imap+plain://" + e.src.Addr()
	for _, h := range []string{srcHost, dstHost} {
		// Whether a connection is open at this moment depends on the
		// backoff of the refused logins; the cap holds at every moment.
		if v := value(t, during, "mailferry_host_connections", map[string]string{"host": h}); v < 0 || v > 16 {
			t.Errorf("during the run: %v connections open to %s, cap 16", v, h)
		}
	}
	if v := value(t, during, "mailferry_host_connection_cap", map[string]string{"host": dstHost}); v != 16 {
		t.Errorf("connection cap of %s: %v, want 16", dstHost, v)
	}
	proxy.Resume()

	final := waitStatus(t, base, logs, "the run ended", func(v statusPageView) bool { return !v.Ended.IsZero() })
	rep := readReport(t, report) // written before the end is marked

	// The status page, ended, still served for the final scrape.
	page := render(t, base, "status-page")
	src := get(t, base)
	fetchesNothingElse(t, page, base, src, true)
	var want struct {
		copied, duplicate, failed int
		bytes                     int64
		states                    map[string]int
		accountErrors             int
	}
	want.states = map[string]int{}
	mailboxes, started := 0, 0
	for _, s := range rep.Accounts {
		tot := s.Totals()
		want.copied += tot.New
		want.duplicate += tot.Duplicate
		want.failed += tot.Failed
		want.bytes += tot.Bytes
		want.states[s.Status]++
		mailboxes += len(s.Mailboxes)
		if s.Error != "" && s.Status == migrate.StatusFailed {
			want.accountErrors++
		}
		if s.Status != migrate.StatusSkipped && s.Source != "u99" {
			started++
		}
	}
	if want.copied == 0 || want.failed == 0 || want.states[migrate.StatusOK] == 0 || want.states[migrate.StatusFailed] < 2 {
		t.Fatalf("the run should copy, refuse a message and fail accounts: %+v", want)
	}
	wrongErr := byUser(rep.Accounts)[wrongUser].Error
	for _, s := range []string{
		fmt.Sprintf("%d / %d", len(rep.Accounts), len(rep.Accounts)), // every account done
		fmt.Sprint(want.copied), humanBytes(want.bytes), wrongUser, wrongErr, "Message too large for this test",
	} {
		if !strings.Contains(page.text, s) {
			t.Errorf("the status page in the browser does not show %q:\n%s", s, page.text)
		}
	}
	if final.Totals.Copied != int64(want.copied) || final.Totals.Failed != int64(want.failed) || final.Totals.Bytes != want.bytes ||
		final.Totals.Duplicate != int64(want.duplicate) || final.Totals.Accounts != len(rep.Accounts) {
		t.Errorf("status.json totals %+v, the report's %+v", final.Totals, want)
	}

	// The final scrape, which lets the process exit.
	afterRaw := rawScrape(t, base)
	after := parseMetrics(t, afterRaw)
	if code := run.wait(t); code != exitPartial {
		t.Errorf("exit %d, want %d (some accounts failed)\n%s", code, exitPartial, logs())
	}
	loginRetries, mailboxRetries := countRetries(run.stdout.String())
	if loginRetries == 0 {
		t.Errorf("no login retried after %d refused connections", throttle.Fired())
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"mailferry_messages_total", map[string]string{"result": "copied"}, float64(want.copied)},
		{"mailferry_bytes_total", map[string]string{"result": "copied"}, float64(want.bytes)},
		{"mailferry_messages_total", map[string]string{"result": "skipped_duplicate"}, float64(want.duplicate)},
		{"mailferry_messages_total", map[string]string{"result": "failed"}, float64(want.failed)},
		{"mailferry_failures_total", map[string]string{"scope": "message", "class": "message"}, float64(want.failed)},
		{"mailferry_accounts", map[string]string{"state": "ok"}, float64(want.states[migrate.StatusOK])},
		{"mailferry_accounts", map[string]string{"state": "failed"}, float64(want.states[migrate.StatusFailed])},
		{"mailferry_accounts", map[string]string{"state": "running"}, 0},
		{"mailferry_accounts", map[string]string{"state": "waiting"}, 0},
		{"mailferry_host_connections", map[string]string{"host": dstHost}, 0},
		{"mailferry_host_connections_peak", map[string]string{"host": dstHost}, float64(rep.PeakConnections[dstHost])},
		{"mailferry_host_throttled_total", map[string]string{"host": dstHost}, float64(throttle.Fired())},
		{"mailferry_retries_total", map[string]string{"op": "login"}, float64(loginRetries)},
		{"mailferry_retries_total", map[string]string{"op": "mailbox"}, float64(mailboxRetries)},
	} {
		if got := value(t, after, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, the run's summary says %v", c.name, c.labels, got, c.want)
		}
	}
	if got := sumValues(after, "mailferry_failures_total", map[string]string{"scope": "account"}); got != float64(want.accountErrors) {
		t.Errorf("account failures %v, the summary has %d failed accounts with an error", got, want.accountErrors)
	}
	if throttle.Fired() != 2 || refused.Fired() != 2 {
		t.Errorf("the proxy refused %d connections and %d APPENDs, want 2 and 2", throttle.Fired(), refused.Fired())
	}
	if v := value(t, after, "mailferry_host_throttle_wait_seconds_total", map[string]string{"host": dstHost}); v <= 0 {
		t.Errorf("no backoff wait counted after %d throttled connections", throttle.Fired())
	}
	if v := value(t, after, "mailferry_run_end_timestamp_seconds", nil); v < value(t, after, "mailferry_run_start_timestamp_seconds", nil) {
		t.Errorf("run end %v before its start", v)
	}
	if h := histogram(t, after, "mailferry_mailbox_duration_seconds"); int(h.GetSampleCount()) != mailboxes {
		t.Errorf("mailbox durations observed %d, the summary lists %d mailboxes", h.GetSampleCount(), mailboxes)
	}
	if h := histogram(t, after, "mailferry_account_duration_seconds"); int(h.GetSampleCount()) != started {
		t.Errorf("account durations observed %d, %d accounts ran", h.GetSampleCount(), started)
	}
	if v := value(t, after, "mailferry_build_info", map[string]string{"version": "dev"}); v != 1 {
		t.Errorf("build info %v", v)
	}
	for _, secret := range []string{e.srcPw["u05"], e.dstPw["u05"], srcAdminPw, dstAdminPw} {
		for what, s := range map[string]string{"metrics": afterRaw, "status page": src, "status.json": mustJSON(t, final)} {
			if strings.Contains(s, secret) {
				t.Errorf("the %s shows a password", what)
			}
		}
	}

	// The HTML report of the wave, from the checkpoint, in the browser.
	html := filepath.Join(dir, "wave.html")
	r := runBinary(t, nil, "report", "html", "--checkpoint", ckpt, "-o", html)
	if r.code != 0 {
		t.Fatalf("report html: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	body, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(body)
	}))
	defer srv.Close()
	shown := render(t, srv.URL+"/", "report-html")
	fetchesNothingElse(t, shown, srv.URL+"/", string(body), false)
	// The bad row is in no checkpoint; the others' numbers are the summary's.
	headline := fmt.Sprintf("%d of %d accounts arrived (copied, verified or cut over), %d failed; %d messages (%s) copied, %d failed.",
		want.states[migrate.StatusOK], len(rep.Accounts)-1, want.states[migrate.StatusFailed]-1, want.copied, humanBytes(want.bytes), want.failed)
	for _, s := range []string{headline, wrongErr, "Message too large for this test", "Messages by size", "Throughput of each run"} {
		if !strings.Contains(shown.text, s) {
			t.Errorf("the HTML report in the browser does not show %q:\n%s", s, shown.text)
		}
	}

	// verify and undo of the same wave, with their own metrics.
	args = e.args(ckpt, batch, "--to", "imap+plain://"+proxy.Addr(), "--metrics-addr", "127.0.0.1:0", "--metrics-linger", "3m", "--log-level", "info")
	args[0] = "verify"
	vreport := filepath.Join(dir, "verify.json")
	vargs := append(slices.Clone(args), "--report", vreport)
	vrun := startServed(t, nil, vargs...)
	waitStatus(t, vrun.base, vrun.logs, "verify ended", func(v statusPageView) bool { return !v.Ended.IsZero() })
	vm := scrape(t, vrun.base)
	if code := vrun.wait(t); code != exitPartial {
		t.Errorf("verify exit %d, want %d\n%s", code, exitPartial, vrun.logs())
	}
	var vrep struct {
		Accounts []migrate.VerifySummary `json:"accounts"`
	}
	readJSON(t, vreport, &vrep)
	vsums := vrep.Accounts
	pass, verified, problems := 0, 0, 0
	for _, s := range vsums {
		if s.Pass {
			pass++
		}
		for _, m := range s.Mailboxes {
			verified += m.Verified
			problems += m.Problems
		}
	}
	if pass == 0 || pass == len(vsums) {
		t.Errorf("verify: %d of %d pass; the wave has accounts of both kinds", pass, len(vsums))
	}
	for _, c := range []struct {
		labels map[string]string
		want   int
	}{
		{map[string]string{"state": "pass"}, pass},
		{map[string]string{"state": "fail"}, len(vsums) - pass},
		{map[string]string{"state": "failed"}, 1}, // the bad row
	} {
		if got := value(t, vm, "mailferry_accounts", c.labels); got != float64(c.want) {
			t.Errorf("verify: accounts%v = %v, its report says %d", c.labels, got, c.want)
		}
	}
	if got := value(t, vm, "mailferry_messages_total", map[string]string{"result": "verified"}); got != float64(verified) {
		t.Errorf("verify: %v messages verified, its report says %d", got, verified)
	}
	if got := sumValues(vm, "mailferry_messages_total", map[string]string{"result": "verify_problem"}); got != float64(problems) {
		t.Errorf("verify: %v problems, its report says %d", got, problems)
	}
	if v := value(t, vm, "mailferry_run_info", map[string]string{"command": "verify"}); v != 1 {
		t.Errorf("verify: run info %v", v)
	}

	args[0] = "undo"
	ureport := filepath.Join(dir, "undo.json")
	urun := startServed(t, nil, append(slices.Clone(args), "--yes", "--report", ureport)...)
	waitStatus(t, urun.base, urun.logs, "undo ended", func(v statusPageView) bool { return !v.Ended.IsZero() })
	um := scrape(t, urun.base)
	urun.wait(t)
	var urep struct {
		Accounts []migrate.UndoSummary `json:"accounts"`
	}
	readJSON(t, ureport, &urep)
	usums := urep.Accounts
	removed := 0
	for _, s := range usums {
		for _, m := range s.Mailboxes {
			removed += m.Removed
		}
	}
	if removed == 0 {
		t.Errorf("undo removed nothing")
	}
	if got := value(t, um, "mailferry_messages_total", map[string]string{"result": "removed"}); got != float64(removed) {
		t.Errorf("undo: %v messages removed, its report says %d", got, removed)
	}
}

// countRetries counts the retry events of --output json.
func countRetries(stdout string) (login, mailbox int) {
	for line := range strings.Lines(stdout) {
		var je jsonEvent
		if json.Unmarshal([]byte(line), &je) != nil || je.Event != "retry" {
			continue
		}
		if je.Mailbox == "" {
			login++
		} else {
			mailbox++
		}
	}
	return login, mailbox
}

// served is a run of the binary with --metrics-addr, whose stderr is
// watched for the listener's URL.
type served struct {
	base   string
	stdout *lockedBuffer
	stderr *lockedBuffer
	waited chan error
}

func (r *served) logs() string { return r.stderr.String() }

// wait waits for the process to exit (after the final scrape ended its
// linger) and returns its exit code.
func (r *served) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-r.waited:
		return exitCodeOf(err)
	case <-time.After(time.Minute):
		t.Fatalf("mailferry still lingers a minute after the final scrape:\n%s", r.logs())
	}
	return -1
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var urlLine = regexp.MustCompile(`url=(http://\S+/)`)

func startServed(t *testing.T, env []string, args ...string) *served {
	t.Helper()
	r := &served{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, waited: make(chan error, 1)}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		r.waited <- cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(time.Minute)
	for {
		if m := urlLine.FindStringSubmatch(r.logs()); m != nil {
			r.base = m[1]
			return r
		}
		select {
		case err := <-r.waited:
			t.Fatalf("mailferry %s ended before serving metrics: %v\n%s", args[0], err, r.logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics URL logged:\n%s", r.logs())
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func exitCodeOf(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitStatus polls /status.json until ok says so. It waits for a state
// the run reaches by itself; the bound only turns a hang into a failure.
func waitStatus(t *testing.T, base string, logs func() string, what string, ok func(statusPageView) bool) statusPageView {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var v statusPageView
		if err := json.Unmarshal([]byte(get(t, base+"status.json")), &v); err != nil {
			t.Fatalf("status.json: %v", err)
		}
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: status %+v\n%s", what, v.Totals, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func accountIn(v statusPageView, source string) pageAccount {
	for _, a := range v.Accounts {
		if a.Source == source {
			return a
		}
	}
	return pageAccount{}
}

func rawScrape(t *testing.T, base string) string { return get(t, base+"metrics") }

// scrape reads /metrics with the Prometheus text parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	return parseMetrics(t, rawScrape(t, base))
}

func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// value is the one series of name with labels (among others); the test
// fails if there is none or several.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	var found []float64
	for _, m := range fams[name].GetMetric() {
		if matches(m, labels) {
			found = append(found, metricValue(m))
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series", name, labels, len(found))
	}
	return found[0]
}

func sumValues(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	sum := 0.0
	for _, m := range fams[name].GetMetric() {
		if matches(m, labels) {
			sum += metricValue(m)
		}
	}
	return sum
}

func histogram(t *testing.T, fams map[string]*dto.MetricFamily, name string) *dto.Histogram {
	t.Helper()
	f := fams[name]
	if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].Histogram == nil {
		t.Fatalf("%s: no histogram", name)
	}
	return f.GetMetric()[0].Histogram
}
