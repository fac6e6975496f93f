package main

import (
	"cmp"
	"fmt"
	"html/template"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate/ledger"
)

func (a *app) newReportHTMLCommand() *cobra.Command {
	var paths []string
	var out, title string
	cmd := &cobra.Command{
		Use:   "html --checkpoint FILE [FILE...] -o OUT.html",
		Short: "One self-contained HTML page of a wave: totals, every account, every failure, charts",
		Long: `html reads the checkpoints of a wave (one, or one per shard, merged as
report merge does) and writes one HTML file to hand on: the totals, a table
of every account with its state, messages, bytes, failures, verify result,
cutover, reverse and undo, every failure with its reason, and charts of
message sizes, bytes per account and throughput per run.

The file is self-contained (inline CSS and SVG, no script): it opens
offline, fetches nothing and can be mailed. It names users and shows the
servers' replies, never a password. A checkpoint in use by a running
command is refused; the running command's --metrics-addr page shows it
live.`,
		Example: `  mailferry report html --checkpoint wave1.db -o wave1.html
  mailferry report html --checkpoint shard-*.db -o move.html --title "Wave 1, staff"`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			all := append(slices.Clone(paths), args...)
			if len(all) == 0 {
				return usagef("--checkpoint FILE is required")
			}
			if out == "" {
				return usagef("-o OUT.html is required")
			}
			return a.runReportHTML(all, out, title)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&paths, "checkpoint", nil, "checkpoint of the wave (repeat, or list more after it, for shards)")
	f.StringVarP(&out, "output", "o", "", "HTML file to write")
	f.StringVar(&title, "title", "", "title of the page (default: the servers of the move)")
	return cmd
}

// waveReport is the HTML report's data.
type waveReport struct {
	Title       string
	Generated   time.Time
	From, To    string
	Checkpoints []string
	Totals      waveTotals
	States      []stateCount
	Accounts    []waveAccount
	Failures    []waveFailure
	Runs        []waveRun
	Headline    string
	Charts      []template.HTML
}

type waveTotals struct {
	Accounts, Arrived, FailedAccounts           int
	Mailboxes, Copied, Duplicate, Failed        int
	Pending, Removed, CopiedBack, Verified, Cut int
	Bytes                                       int64
}

type waveAccount struct {
	Checkpoint, Source, Dest, State, Reason string
	Cutover                                 time.Time
	Mailboxes, Copied, Duplicate, Failed    int
	Pending, Removed, CopiedBack            int
	Bytes                                   int64
}

// Verify is what the checkpoint says of verify: it records a pass (the
// state verified), and a failing verify changes nothing in it.
func (w waveAccount) Verify() string {
	if w.State == ledger.AccountVerified {
		return "pass"
	}
	return ""
}

type waveFailure struct {
	Checkpoint, Source, Scope, Mailbox string
	UID                                uint32
	MessageID, Reason                  string
}

type waveRun struct {
	Checkpoint        string
	ID                uint32
	Command, Outcome  string
	Started, Finished time.Time
	Copied            int
	Bytes             int64
}

func (r waveRun) Seconds() float64 {
	if r.Finished.IsZero() {
		return 0
	}
	return r.Finished.Sub(r.Started).Seconds()
}

// sizeBuckets are the upper bounds of the message size chart.
var sizeBuckets = []int64{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20}

func (a *app) runReportHTML(paths []string, out, title string) error {
	rep := waveReport{Title: title, Generated: time.Now()}
	sizes := make([]int, len(sizeBuckets)+1)
	seen := map[string]string{}
	for _, p := range paths {
		if err := rep.read(a, p, sizes, seen); err != nil {
			return err
		}
	}
	if rep.Title == "" {
		rep.Title = fmt.Sprintf("Move %s → %s", rep.From, rep.To)
	}
	slices.SortStableFunc(rep.Accounts, func(x, y waveAccount) int { return strings.Compare(x.Source, y.Source) })
	states := map[string]int{}
	t := &rep.Totals
	for _, acc := range rep.Accounts {
		states[acc.State]++
		t.Accounts++
		switch acc.State {
		case ledger.AccountCopied, ledger.AccountVerified, ledger.AccountCutover:
			t.Arrived++
		case ledger.AccountFailed:
			t.FailedAccounts++
		}
		if acc.State == ledger.AccountVerified {
			t.Verified++
		}
		if !acc.Cutover.IsZero() {
			t.Cut++
		}
		t.Mailboxes += acc.Mailboxes
		t.Copied += acc.Copied
		t.Duplicate += acc.Duplicate
		t.Failed += acc.Failed
		t.Pending += acc.Pending
		t.Removed += acc.Removed
		t.CopiedBack += acc.CopiedBack
		t.Bytes += acc.Bytes
	}
	for st, n := range states {
		rep.States = append(rep.States, stateCount{st, n})
	}
	slices.SortFunc(rep.States, func(x, y stateCount) int { return cmp.Compare(x.State, y.State) })
	rep.Headline = fmt.Sprintf("%d of %d accounts arrived (copied, verified or cut over), %d failed; %d messages (%s) copied, %d failed.",
		t.Arrived, t.Accounts, t.FailedAccounts, t.Copied, humanBytes(t.Bytes), t.Failed)
	rep.Charts = rep.charts(sizes)

	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	err = reportTemplate.Execute(f, rep)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Fprintf(a.stdout, "%s: %s\n", out, rep.Headline)
	return nil
}

// read adds one checkpoint to the report; seen maps account ids to the
// checkpoint that holds them, as report merge warns of an account in two.
func (rep *waveReport) read(a *app, path string, sizes []int, seen map[string]string) error {
	s, err := checkpoint.Open(path, checkpoint.Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		return err
	}
	defer s.Close()
	from, to, err := s.Endpoints()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case rep.From == "" && rep.To == "":
		rep.From, rep.To = from, to
	case from != rep.From || to != rep.To:
		return usagef("%s is for %s -> %s, the others for %s -> %s: not the same move", path, from, to, rep.From, rep.To)
	}
	name := baseName(path)
	rep.Checkpoints = append(rep.Checkpoints, name)
	runs, err := s.Runs()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	byRun := map[uint32]*waveRun{}
	first := len(rep.Runs)
	for _, r := range runs {
		rep.Runs = append(rep.Runs, waveRun{Checkpoint: name, ID: r.ID, Command: r.Command, Outcome: r.Outcome, Started: r.Started, Finished: r.Finished})
	}
	for i := first; i < len(rep.Runs); i++ {
		byRun[rep.Runs[i].ID] = &rep.Runs[i]
	}
	back := map[string]int{} // account id -> messages reverse copied back
	var accts []waveAccount
	var ids []string
	err = s.Accounts(func(id string, acc ledger.Account) error {
		wayBack := ledger.IsReverseAccount(id)
		wa := waveAccount{Checkpoint: name, Source: acc.Source, Dest: acc.Dest, State: acc.State, Reason: acc.Reason, Cutover: acc.Cutover}
		err := s.Mailboxes(id, func(mb string, _ ledger.MailboxRecord) error {
			wa.Mailboxes++
			return s.Records(id, mb, func(r ledger.Record) error {
				switch r.Status {
				case ledger.StatusCopied:
					wa.Copied++
					wa.Bytes += r.Size
					if run := byRun[r.Run]; run != nil {
						run.Copied++
						run.Bytes += r.Size
					}
				case ledger.StatusDuplicate:
					wa.Duplicate++
				case ledger.StatusFailed:
					wa.Failed++
					if !wayBack {
						rep.Failures = append(rep.Failures, waveFailure{Checkpoint: name, Source: acc.Source, Scope: "message", Mailbox: mb,
							UID: uint32(r.SrcUID), MessageID: r.MessageID, Reason: r.Reason})
					}
				case ledger.StatusPending:
					wa.Pending++
				case ledger.StatusRemoved:
					wa.Removed++
				}
				if !wayBack && r.Size > 0 {
					sizes[sizeBucket(r.Size)]++
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
		if wayBack {
			back[id] = wa.Copied
			return nil
		}
		if acc.State == ledger.AccountFailed && acc.Reason != "" {
			rep.Failures = append(rep.Failures, waveFailure{Checkpoint: name, Source: acc.Source, Scope: "account", Reason: acc.Reason})
		}
		accts = append(accts, wa)
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for i, id := range ids {
		accts[i].CopiedBack = back[ledger.ReverseAccountID(id)]
		if other, dup := seen[id]; dup {
			a.log.Warn("account in two checkpoints; counted in both", "source_user", accts[i].Source, "first", other, "second", path)
		}
		seen[id] = path
	}
	rep.Accounts = append(rep.Accounts, accts...)
	return nil
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// shortBytes names a power-of-two size briefly: 4K, 256K, 16M.
func shortBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func sizeBucket(n int64) int {
	for i, b := range sizeBuckets {
		if n <= b {
			return i
		}
	}
	return len(sizeBuckets)
}

func (rep *waveReport) charts(sizes []int) []template.HTML {
	count := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	var states []bar
	for _, st := range rep.States {
		states = append(states, bar{Label: st.State, Value: float64(st.N), Bad: st.State == ledger.AccountFailed})
	}
	var sz []bar
	for i, n := range sizes {
		label := "> " + shortBytes(sizeBuckets[len(sizeBuckets)-1])
		if i < len(sizeBuckets) {
			label = "≤ " + shortBytes(sizeBuckets[i])
		}
		sz = append(sz, bar{Label: label, Value: float64(n)})
	}
	top := slices.Clone(rep.Accounts)
	slices.SortStableFunc(top, func(x, y waveAccount) int { return cmp.Compare(y.Bytes, x.Bytes) })
	title := "Bytes copied per account"
	if len(top) > 30 {
		top = top[:30]
		title = "Bytes copied, the 30 largest accounts"
	}
	var accts []bar
	for _, acc := range top {
		accts = append(accts, bar{Label: acc.Source, Value: float64(acc.Bytes), Bad: acc.State == ledger.AccountFailed})
	}
	var runs []bar
	for _, r := range rep.Runs {
		if r.Copied == 0 || r.Seconds() <= 0 {
			continue
		}
		label := fmt.Sprintf("#%d %s", r.ID, r.Command)
		if len(rep.Checkpoints) > 1 {
			label = r.Checkpoint + " " + label
		}
		runs = append(runs, bar{Label: label, Value: float64(r.Bytes) / r.Seconds()})
	}
	perSec := func(v float64) string { return humanBytes(int64(v)) + "/s" }
	return []template.HTML{
		barChart("Accounts by state", states, count),
		barChart("Messages by size", sz, count),
		barChart(title, accts, func(v float64) string { return humanBytes(int64(v)) }),
		barChart("Throughput of each run that copied (bytes copied ÷ run time)", runs, perSec),
	}
}

var reportTemplate = template.Must(template.New("report").Funcs(pageFuncs).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="` + pageCSP + `">
<link rel="icon" href="data:,">
<title>{{.Title}}</title>
<style>` + pageCSS + `
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));gap:12px}
td.t{white-space:nowrap}
@media print{.scroll{overflow:visible}body{max-width:none}}
</style>
</head>
<body>
<header>
<h1>{{.Title}}</h1>
<p class="sub">{{.From}} → {{.To}} &middot; {{len .Checkpoints}} checkpoint(s): {{range $i, $c := .Checkpoints}}{{if $i}}, {{end}}{{$c}}{{end}} &middot; written {{stamp .Generated}} by mailferry {{version}}</p>
</header>
<p id="headline"><b>{{.Headline}}</b></p>
<section class="cards" id="totals">
<div class="card"><b>{{.Totals.Arrived}} / {{.Totals.Accounts}}</b><span>accounts arrived</span></div>
<div class="card{{if .Totals.FailedAccounts}} bad{{end}}"><b>{{.Totals.FailedAccounts}}</b><span>accounts failed</span></div>
<div class="card"><b>{{.Totals.Copied}}</b><span>messages copied</span></div>
<div class="card"><b>{{bytes .Totals.Bytes}}</b><span>copied</span></div>
<div class="card"><b>{{.Totals.Duplicate}}</b><span>already there</span></div>
<div class="card{{if .Totals.Failed}} bad{{end}}"><b>{{.Totals.Failed}}</b><span>messages failed</span></div>
<div class="card"><b>{{.Totals.Verified}}</b><span>verified</span></div>
<div class="card"><b>{{.Totals.Cut}}</b><span>cut over</span></div>
{{if .Totals.CopiedBack}}<div class="card"><b>{{.Totals.CopiedBack}}</b><span>copied back (reverse)</span></div>{{end}}
{{if .Totals.Removed}}<div class="card"><b>{{.Totals.Removed}}</b><span>removed (undo)</span></div>{{end}}
{{if .Totals.Pending}}<div class="card bad"><b>{{.Totals.Pending}}</b><span>pending: not settled, the next run settles them</span></div>{{end}}
</section>
<p class="states">{{range .States}}<span class="state {{.State}}">{{.N}} {{.State}}</span> {{end}}</p>
<section class="charts">{{range .Charts}}<div>{{.}}</div>{{end}}</section>
<section id="failures"><h2>Failures ({{len .Failures}})</h2>
{{if .Failures}}<div class="scroll"><table>
<tr><th>user</th><th>what</th><th>mailbox</th><th>reason</th>{{if gt (len .Checkpoints) 1}}<th>checkpoint</th>{{end}}</tr>
{{$multi := gt (len .Checkpoints) 1}}{{range .Failures}}<tr><td>{{.Source}}</td><td>{{.Scope}}{{if .UID}} uid {{.UID}}{{end}}</td><td>{{.Mailbox}}</td><td class="reason">{{.Reason}}{{if .MessageID}} <small>{{.MessageID}}</small>{{end}}</td>{{if $multi}}<td>{{.Checkpoint}}</td>{{end}}</tr>
{{end}}</table></div>{{else}}<p>None: every message the source had was copied or was already there.</p>{{end}}
</section>
<section id="accounts"><h2>Accounts ({{len .Accounts}})</h2><div class="scroll"><table>
<tr><th>user</th><th>destination</th><th>state</th><th class="n">mailboxes</th><th class="n">copied</th><th class="n">bytes</th><th class="n">already there</th><th class="n">failed</th><th class="n">pending</th><th>verify</th><th>cutover</th><th class="n">reverse</th><th class="n">undo</th>{{if gt (len .Checkpoints) 1}}<th>checkpoint</th>{{end}}</tr>
{{$multi := gt (len .Checkpoints) 1}}{{range .Accounts}}<tr><td>{{.Source}}</td><td>{{.Dest}}</td><td><span class="state {{.State}}">{{.State}}</span></td><td class="n">{{.Mailboxes}}</td><td class="n">{{.Copied}}</td><td class="n">{{bytes .Bytes}}</td><td class="n">{{.Duplicate}}</td><td class="n">{{.Failed}}</td><td class="n">{{.Pending}}</td><td>{{.Verify}}</td><td class="t">{{if not .Cutover.IsZero}}{{stamp .Cutover}}{{end}}</td><td class="n">{{if .CopiedBack}}{{.CopiedBack}} back{{end}}</td><td class="n">{{if .Removed}}{{.Removed}} removed{{end}}</td>{{if $multi}}<td>{{.Checkpoint}}</td>{{end}}</tr>
{{if .Reason}}<tr class="err"><td colspan="{{if $multi}}14{{else}}13{{end}}">{{.Reason}}</td></tr>{{end}}
{{end}}</table></div></section>
<section id="runs"><h2>Runs</h2><div class="scroll"><table>
<tr>{{if gt (len .Checkpoints) 1}}<th>checkpoint</th>{{end}}<th class="n">run</th><th>command</th><th>started</th><th>time</th><th>outcome</th><th class="n">copied</th><th class="n">bytes</th></tr>
{{$multi := gt (len .Checkpoints) 1}}{{range .Runs}}<tr>{{if $multi}}<td>{{.Checkpoint}}</td>{{end}}<td class="n">{{.ID}}</td><td>{{.Command}}</td><td>{{stamp .Started}}</td><td>{{if .Seconds}}{{duration .Seconds}}{{end}}</td><td>{{if .Finished.IsZero}}did not finish{{else}}{{.Outcome}}{{end}}</td><td class="n">{{.Copied}}</td><td class="n">{{bytes .Bytes}}</td></tr>
{{end}}</table></div>
<p class="sub">Verify: "pass" when the last state recorded is verified; the checkpoint does not record a failing verify, and a later cutover replaces the state. A run's copied messages are those whose record it wrote last.</p>
</section>
</body>
</html>
`))
