package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/mailferry/mailferry/migrate"
)

// statusModel is what the live status page and /status.json show: the
// run's totals, its throughput over time, every account's state and
// progress, and the failures with their reasons. It holds user names and
// server replies, never a password (none reaches the event stream).
type statusModel struct {
	mu       sync.Mutex
	command  string
	started  time.Time
	ended    time.Time
	hosts    []server
	accounts []*pageAccount // in batch order
	byID     map[string]*pageAccount
	samples  []throughputSample
	// failures holds the newest maxPageFailures; failureCount is exact.
	failures     []pageFailure
	failureCount int
}

// maxPageFailures bounds the failures the page keeps; the report and
// `mailferry status` have them all.
const maxPageFailures = 500

// maxSamples bounds the throughput history: when full, every other sample
// is dropped, so the chart always spans the whole run.
const maxSamples = 720

type pageAccount struct {
	Source    string    `json:"source_user"`
	Dest      string    `json:"dest_user"`
	State     string    `json:"state"`
	Mailboxes int       `json:"mailboxes_done"`
	Copied    int64     `json:"copied"`
	Bytes     int64     `json:"bytes"`
	Duplicate int64     `json:"skipped_duplicate"`
	Failed    int64     `json:"failed"`
	Removed   int64     `json:"removed,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Seconds   float64   `json:"seconds"`
	Error     string    `json:"error,omitempty"`
	ended     time.Time
}

type pageFailure struct {
	Time      time.Time `json:"time"`
	Source    string    `json:"source_user"`
	Scope     string    `json:"scope"` // message, mailbox, account, verify
	Mailbox   string    `json:"mailbox,omitempty"`
	UID       uint32    `json:"uid,omitempty"`
	MessageID string    `json:"message_id,omitempty"`
	Reason    string    `json:"reason"`
}

type throughputSample struct {
	Time   time.Time `json:"time"`
	Copied int64     `json:"copied"` // cumulative
	Bytes  int64     `json:"bytes"`
}

func newStatusModel(command string, accts []plannedAccount, hosts []server) *statusModel {
	sm := &statusModel{command: command, started: time.Now(), hosts: hosts, byID: map[string]*pageAccount{}}
	for _, p := range accts {
		pa := &pageAccount{Source: p.SourceUser, Dest: p.DestUser, State: stateWaiting}
		if p.invalid != "" {
			pa.State, pa.Error = migrate.StatusFailed, p.invalid
			if pa.Source == "" {
				pa.Source = fmt.Sprintf("(line %d)", p.line)
			}
			sm.addFailure(pageFailure{Time: sm.started, Source: pa.Source, Scope: "account", Reason: p.invalid})
		} else {
			sm.byID[p.ID] = pa
		}
		sm.accounts = append(sm.accounts, pa)
	}
	sm.samples = []throughputSample{{Time: sm.started}}
	return sm
}

func (sm *statusModel) addFailure(f pageFailure) {
	sm.failureCount++
	if len(sm.failures) == maxPageFailures {
		sm.failures = slices.Delete(sm.failures, 0, 1)
	}
	sm.failures = append(sm.failures, f)
}

// setState records an account's new state and returns its old one.
func (sm *statusModel) setState(id, state string) (string, bool) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	pa := sm.byID[id]
	if pa == nil {
		return "", false
	}
	old := pa.State
	pa.State = state
	now := time.Now()
	switch state {
	case stateRunning:
		pa.Started = now
	default:
		pa.ended = now
	}
	return old, true
}

func (sm *statusModel) appended(id string, n int, bytes int64) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if pa := sm.byID[id]; pa != nil {
		pa.Copied += int64(n)
		pa.Bytes += bytes
	}
}

func (sm *statusModel) removed(id string, n int) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if pa := sm.byID[id]; pa != nil {
		pa.Removed += int64(n)
	}
}

func (sm *statusModel) mailboxDone(id string, s *migrate.MailboxSummary) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	pa := sm.byID[id]
	if pa == nil {
		return
	}
	pa.Mailboxes++
	pa.Duplicate += int64(s.Duplicate)
	pa.Failed += int64(s.Failed)
	now := time.Now()
	for _, f := range s.Failures {
		sm.addFailure(pageFailure{Time: now, Source: pa.Source, Scope: "message", Mailbox: s.Source, UID: uint32(f.UID), MessageID: f.MessageID, Reason: f.Reason})
	}
	if n := s.Failed - len(s.Failures); n > 0 {
		// The engine lists the first failures of a mailbox; the count is exact.
		sm.addFailure(pageFailure{Time: now, Source: pa.Source, Scope: "message", Mailbox: s.Source,
			Reason: fmt.Sprintf("%d more message(s) refused; `mailferry status` lists them", n)})
		sm.failureCount += n - 1
	}
	if s.Error != "" {
		sm.addFailure(pageFailure{Time: now, Source: pa.Source, Scope: "mailbox", Mailbox: s.Source, Reason: s.Error})
	}
	if s.Warn != "" {
		sm.addFailure(pageFailure{Time: now, Source: pa.Source, Scope: "warning", Mailbox: s.Source, Reason: s.Warn})
	}
}

func (sm *statusModel) accountDone(e migrate.Event, state, errText string) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	pa := sm.byID[e.ID]
	if pa == nil {
		return
	}
	now := time.Now()
	pa.Error = errText
	if errText != "" && failedState(state) {
		sm.addFailure(pageFailure{Time: now, Source: pa.Source, Scope: "account", Reason: errText})
	}
	switch r := e.Result.(type) {
	case *migrate.VerifySummary:
		for _, mb := range r.Mailboxes {
			pa.Mailboxes++
			if mb.Error != "" {
				sm.addFailure(pageFailure{Time: now, Source: pa.Source, Scope: "mailbox", Mailbox: mb.Source, Reason: mb.Error})
			}
			for _, p := range mb.Details {
				sm.addFailure(pageFailure{Time: now, Source: pa.Source, Scope: "verify", Mailbox: mb.Source, UID: uint32(p.UID), MessageID: p.MessageID, Reason: p.What})
			}
			if n := mb.Problems - len(mb.Details); n > 0 {
				sm.addFailure(pageFailure{Time: now, Source: pa.Source, Scope: "verify", Mailbox: mb.Source, Reason: fmt.Sprintf("%d more message(s) with problems (in --report)", n)})
			}
		}
	case *migrate.UndoSummary:
		for _, mb := range r.Mailboxes {
			pa.Mailboxes++
			if mb.Error != "" {
				sm.addFailure(pageFailure{Time: now, Source: pa.Source, Scope: "mailbox", Mailbox: mb.Dest, Reason: mb.Error})
			}
		}
	}
}

func (sm *statusModel) sample(now time.Time) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	var s throughputSample
	s.Time = now
	for _, pa := range sm.accounts {
		s.Copied += pa.Copied
		s.Bytes += pa.Bytes
	}
	sm.samples = append(sm.samples, s)
	if len(sm.samples) > maxSamples {
		kept := sm.samples[:0]
		for i, s := range sm.samples {
			if i%2 == 0 || i == len(sm.samples)-1 {
				kept = append(kept, s)
			}
		}
		sm.samples = kept
	}
}

func (sm *statusModel) end(now time.Time) {
	sm.mu.Lock()
	sm.ended = now
	sm.mu.Unlock()
}

// statusPageView is /status.json, and what the page shows.
type statusPageView struct {
	Command      string             `json:"command"`
	Version      string             `json:"version"`
	Started      time.Time          `json:"started"`
	Ended        time.Time          `json:"ended,omitzero"`
	Updated      time.Time          `json:"updated"`
	Seconds      float64            `json:"seconds"`
	Totals       pageTotals         `json:"totals"`
	States       map[string]int     `json:"states"`
	Hosts        []hostView         `json:"hosts"`
	Throughput   []throughputSample `json:"throughput"`
	Accounts     []pageAccount      `json:"accounts"`
	Failures     []pageFailure      `json:"failures"` // newest first
	FailureCount int                `json:"failure_count"`
}

type pageTotals struct {
	Accounts  int   `json:"accounts"`
	Done      int   `json:"accounts_done"`
	Mailboxes int   `json:"mailboxes_done"`
	Copied    int64 `json:"copied"`
	Bytes     int64 `json:"bytes"`
	Duplicate int64 `json:"skipped_duplicate"`
	Failed    int64 `json:"failed"`
	Removed   int64 `json:"removed"`
}

func (sm *statusModel) view() statusPageView {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	now := time.Now()
	v := statusPageView{Command: sm.command, Version: version, Started: sm.started, Ended: sm.ended, Updated: now,
		States: map[string]int{}, Throughput: slices.Clone(sm.samples), FailureCount: sm.failureCount, Hosts: hostStats(sm.hosts)}
	end := now
	if !sm.ended.IsZero() {
		end = sm.ended
	}
	v.Seconds = end.Sub(sm.started).Seconds()
	for _, pa := range sm.accounts {
		a := *pa
		switch {
		case !a.Started.IsZero() && !a.ended.IsZero():
			a.Seconds = a.ended.Sub(a.Started).Seconds()
		case !a.Started.IsZero():
			a.Seconds = end.Sub(a.Started).Seconds()
		}
		v.Accounts = append(v.Accounts, a)
		v.States[a.State]++
		t := &v.Totals
		t.Accounts++
		if a.State != stateWaiting && a.State != stateRunning {
			t.Done++
		}
		t.Mailboxes += a.Mailboxes
		t.Copied += a.Copied
		t.Bytes += a.Bytes
		t.Duplicate += a.Duplicate
		t.Failed += a.Failed
		t.Removed += a.Removed
	}
	if sm.ended.IsZero() {
		// The current totals as the last point, so the chart ends now.
		v.Throughput = append(v.Throughput, throughputSample{Time: now, Copied: v.Totals.Copied, Bytes: v.Totals.Bytes})
	}
	for i := len(sm.failures) - 1; i >= 0; i-- {
		v.Failures = append(v.Failures, sm.failures[i])
	}
	return v
}

// The page and the JSON load nothing from anywhere: the policy says so to
// the browser too.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (sm *statusModel) serveJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(sm.view())
}

func (sm *statusModel) serveHTML(w http.ResponseWriter, r *http.Request) {
	v := sm.view()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := statusPageTemplate.Execute(w, newStatusPage(v)); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// statusPage is the template's data.
type statusPage struct {
	statusPageView
	Running  bool
	Rate     string // over the whole run
	Chart    template.HTML
	States   []stateCount
	Accounts []pageAccount // running and failed first
}

type stateCount struct {
	State string
	N     int
}

// stateOrder sorts the accounts on the page: what needs eyes first.
var stateOrder = map[string]int{stateRunning: 0, migrate.StatusFailed: 1, "fail": 1, migrate.StatusWarn: 2, migrate.StatusInterrupted: 3, stateWaiting: 4}

func newStatusPage(v statusPageView) statusPage {
	p := statusPage{statusPageView: v, Running: v.Ended.IsZero(), Rate: throughput(v.Totals.Copied, v.Totals.Bytes, time.Duration(v.Seconds*float64(time.Second)))}
	for st, n := range v.States {
		p.States = append(p.States, stateCount{st, n})
	}
	slices.SortFunc(p.States, func(x, y stateCount) int { return cmp.Compare(x.State, y.State) })
	p.Accounts = slices.Clone(v.Accounts)
	slices.SortStableFunc(p.Accounts, func(x, y pageAccount) int {
		return cmp.Compare(orderOf(x.State), orderOf(y.State))
	})
	p.Chart = throughputChart(v.Throughput)
	return p
}

func orderOf(state string) int {
	if n, ok := stateOrder[state]; ok {
		return n
	}
	return 5
}

// throughputChart draws bytes per second between samples.
func throughputChart(samples []throughputSample) template.HTML {
	var pts []point
	for i := 1; i < len(samples); i++ {
		dt := samples[i].Time.Sub(samples[i-1].Time).Seconds()
		if dt <= 0 {
			continue
		}
		x := samples[i].Time.Sub(samples[0].Time).Seconds()
		pts = append(pts, point{X: x, Y: float64(samples[i].Bytes-samples[i-1].Bytes) / dt})
	}
	return lineChart("bytes copied per second", pts, func(x float64) string { return (time.Duration(x) * time.Second).String() },
		func(y float64) string { return humanBytes(int64(y)) + "/s" })
}

var statusPageTemplate = template.Must(template.New("status").Funcs(pageFuncs).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Running}}<meta http-equiv="refresh" content="10">{{end}}
<link rel="icon" href="data:,">
<title>mailferry {{.Command}}: {{.Totals.Done}}/{{.Totals.Accounts}} accounts</title>
<style>` + pageCSS + `</style>
</head>
<body>
<header>
<h1>mailferry {{.Command}} {{if .Running}}<span class="state running">running</span>{{else}}<span class="state ok">ended</span>{{end}}</h1>
<p class="sub">started {{stamp .Started}}{{if not .Running}}, ended {{stamp .Ended}}{{end}} &middot; {{duration .Seconds}} &middot; version {{.Version}}{{if .Running}} &middot; refreshes every 10 s{{end}}</p>
</header>
<section class="cards" id="totals">
<div class="card"><b>{{.Totals.Done}} / {{.Totals.Accounts}}</b><span>accounts done</span></div>
<div class="card"><b>{{.Totals.Copied}}</b><span>messages copied</span></div>
<div class="card"><b>{{bytes .Totals.Bytes}}</b><span>copied</span></div>
<div class="card"><b>{{.Totals.Duplicate}}</b><span>already there</span></div>
<div class="card{{if .Totals.Failed}} bad{{end}}"><b>{{.Totals.Failed}}</b><span>messages failed</span></div>
{{if .Totals.Removed}}<div class="card"><b>{{.Totals.Removed}}</b><span>removed (undo)</span></div>{{end}}
<div class="card"><b>{{.Totals.Mailboxes}}</b><span>mailboxes done</span></div>
</section>
<p class="states">{{range .States}}<span class="state {{.State}}">{{.N}} {{.State}}</span> {{end}}</p>
<p>{{.Rate}}</p>
<section><h2>Throughput</h2>{{.Chart}}</section>
{{if .Hosts}}<section><h2>Servers</h2><div class="scroll"><table>
<tr><th>server</th><th class="n">open</th><th class="n">cap</th><th class="n">peak</th><th class="n">throttled</th><th class="n">backoff wait</th></tr>
{{range .Hosts}}<tr><td>{{.Host}}</td><td class="n">{{.Open}}</td><td class="n">{{if .Cap}}{{.Cap}}{{else}}none{{end}}</td><td class="n">{{.Peak}}</td><td class="n">{{.Throttled}}</td><td class="n">{{duration .ThrottleWait}}</td></tr>
{{end}}</table></div></section>{{end}}
<section id="failures"><h2>Failures ({{.FailureCount}})</h2>
{{if .Failures}}<div class="scroll"><table>
<tr><th>user</th><th>what</th><th>mailbox</th><th>reason</th></tr>
{{range .Failures}}<tr><td>{{.Source}}</td><td>{{.Scope}}{{if .UID}} uid {{.UID}}{{end}}</td><td>{{.Mailbox}}</td><td class="reason">{{.Reason}}{{if .MessageID}} <small>{{.MessageID}}</small>{{end}}</td></tr>
{{end}}</table></div>{{if gt .FailureCount (len .Failures)}}<p>The newest {{len .Failures}} are shown.</p>{{end}}
{{else}}<p>None.</p>{{end}}
</section>
<section id="accounts"><h2>Accounts</h2><div class="scroll"><table>
<tr><th>user</th><th>destination</th><th>state</th><th class="n">mailboxes</th><th class="n">copied</th><th class="n">bytes</th><th class="n">already there</th><th class="n">failed</th><th class="n">time</th></tr>
{{range .Accounts}}<tr><td>{{.Source}}</td><td>{{.Dest}}</td><td><span class="state {{.State}}">{{.State}}</span></td><td class="n">{{.Mailboxes}}</td><td class="n">{{.Copied}}</td><td class="n">{{bytes .Bytes}}</td><td class="n">{{.Duplicate}}</td><td class="n">{{.Failed}}</td><td class="n">{{duration .Seconds}}</td></tr>
{{if .Error}}<tr class="err"><td colspan="9">{{.Error}}</td></tr>{{end}}
{{end}}</table></div></section>
<footer><a href="status.json">status.json</a> &middot; <a href="metrics">metrics</a></footer>
</body>
</html>
`))

// pageFuncs are the template functions of the status page and the report.
var pageFuncs = template.FuncMap{
	"bytes":    humanBytes,
	"version":  func() string { return version },
	"stamp":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"duration": func(s float64) string { return (time.Duration(s*10) * time.Second / 10).String() },
}

// pageCSS is shared by the status page and the HTML report: readable on a
// phone, no web fonts, no images.
const pageCSS = `
:root{--fg:#1b1f24;--mute:#5b6470;--line:#d8dde3;--ok:#1a7f37;--bad:#c62828;--warn:#9a6700;--run:#0969da;--bg:#fff}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;padding:12px;max-width:1100px}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}
.sub,footer,small{color:var(--mute)}
.cards{display:flex;flex-wrap:wrap;gap:8px}
.card{flex:1 1 140px;border:1px solid var(--line);border-radius:6px;padding:8px 10px}
.card b{display:block;font-size:1.35em}.card span{color:var(--mute);font-size:.9em}
.card.bad{border-color:var(--bad)}.card.bad b{color:var(--bad)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#f3f5f7;white-space:nowrap}
td.n,th.n{text-align:right;white-space:nowrap}
td.reason{min-width:16em}
tr.err td{color:var(--bad);border-bottom:1px solid var(--line);padding-top:0}
.state{display:inline-block;padding:0 6px;border-radius:9px;font-size:.85em;background:#eef1f4;white-space:nowrap}
.state.ok,.state.pass,.state.copied,.state.verified,.state.cutover{background:#dafbe1;color:var(--ok)}
.state.failed,.state.fail{background:#ffebe9;color:var(--bad)}
.state.warn,.state.interrupted,.state.skipped{background:#fff8c5;color:var(--warn)}
.state.running,.state.copying{background:#ddf4ff;color:var(--run)}
svg{width:100%;height:auto;max-height:260px}
svg text{font:13px system-ui,sans-serif;fill:var(--mute)}
svg .bar{fill:var(--run)}svg .bar.bad{fill:var(--bad)}svg .line{fill:none;stroke:var(--run);stroke-width:2}
svg .area{fill:#ddf4ff}svg .grid{stroke:var(--line)}
`
