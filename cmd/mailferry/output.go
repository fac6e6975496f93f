package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/migrate"
)

// outputOptions say where progress and results go.
type outputOptions struct {
	output        string // auto, text, json
	json          bool
	report        string
	progressEvery time.Duration
}

func (o *outputOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.output, "output", "auto", "progress and summary: auto (live progress on a terminal, JSON lines otherwise), text (log lines and a table), json (JSON lines on stdout)")
	f.BoolVar(&o.json, "json", false, "same as --output json")
	f.StringVar(&o.report, "report", "", "write the per-account summary to this file: CSV if it ends in .csv, else JSON")
	f.DurationVar(&o.progressEvery, "progress-every", 30*time.Second, "with JSON output, a progress event this often (0: none but the last)")
}

// mode checks the output flags and says which output they ask for: auto,
// text or json. --json with another --output is a contradiction, not a
// choice to make silently.
func (o *outputOptions) mode() (string, error) {
	switch o.output {
	case "auto", "text", "json":
	default:
		return "", usagef("--output %q: want auto, text or json", o.output)
	}
	if o.json {
		if o.output != "auto" && o.output != "json" {
			return "", usagef("--json and --output %s contradict each other: give one", o.output)
		}
		return "json", nil
	}
	return o.output, nil
}

// output turns copier events into progress for a person (a live display
// or log lines) or for a program (one JSON object per line on stdout), and
// writes the summary and report at the end.
type output struct {
	a      *app
	mode   string // tty, text, json
	report string
	run    runInfo
	crash  func(migrate.Event)
	names  map[string]plannedAccount // account id -> pair
	live   *liveProgress             // tty mode only
	status *liveStatus               // nil for dry runs
	counts runCounts

	mu  sync.Mutex // serialises JSON lines
	enc *json.Encoder

	stopTicker chan struct{}
	ticker     sync.WaitGroup
}

// runInfo describes a run for reports and events: what ran, when, between
// which servers (as the checkpoint names them: no user, no secret).
type runInfo struct {
	command  string
	args     []string
	from, to string
	started  time.Time
	accounts int // that can run
}

// runCounts are the run's progress so far, for the live display and the
// progress events.
type runCounts struct {
	started, finished, failed atomic.Int64
	messages, bytes           atomic.Int64
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newOutput prepares the progress display of env's run; statusFile, if
// set, is the checkpoint next to which a live view for `mailferry status`
// is kept.
func (a *app) newOutput(o *outputOptions, env *runEnv, command, statusFile string) (*output, error) {
	crash, err := a.crashHook()
	if err != nil {
		return nil, err
	}
	mode, err := o.mode()
	if err != nil {
		return nil, err
	}
	accts := env.accts
	out := &output{a: a, report: o.report, crash: crash, names: map[string]plannedAccount{}, enc: json.NewEncoder(a.stdout),
		run: runInfo{command: command, args: a.args, from: env.src.id(), to: env.dst.id(), started: env.started}}
	for _, p := range accts {
		out.names[p.ID] = p
		if p.invalid == "" {
			out.run.accounts++
		}
	}
	out.mode = mode
	if mode == "auto" {
		out.mode = "json"
		if isTerminal(raw(a.stdout)) && isTerminal(raw(a.stderr)) {
			out.mode = "tty"
		}
	}
	// Before the live display takes the terminal.
	for _, p := range accts {
		if p.invalid != "" {
			out.badRow(p)
		}
	}
	if out.mode == "tty" {
		out.live = newLiveProgress(raw(a.stderr), out.run.accounts, &out.counts)
	}
	if statusFile != "" {
		out.status = startLiveStatus(statusFile, accts)
	}
	if out.mode == "json" && o.progressEvery > 0 {
		out.stopTicker = make(chan struct{})
		out.ticker.Add(1)
		go out.tick(o.progressEvery)
	}
	return out, nil
}

// badRow reports a batch row that cannot run: a JSON event, and a log
// line for the refusals the batch file parser did not log.
func (o *output) badRow(p plannedAccount) {
	if p.refused && o.mode != "json" {
		o.a.log.Error("account refused", "line", p.line, "source_user", p.SourceUser, "err", p.invalid)
	}
	kind := "bad_row"
	if p.refused {
		kind = "refused"
	}
	o.writeJSON(jsonEvent{Time: time.Now().UTC(), Event: kind, Source: p.SourceUser, Dest: p.DestUser, Line: p.line, Error: p.invalid})
}

// writeJSON writes one JSON line, in JSON mode only.
func (o *output) writeJSON(v any) {
	if o.mode != "json" {
		return
	}
	o.mu.Lock()
	o.enc.Encode(v)
	o.mu.Unlock()
}

// progressEvent is the periodic JSON line of a run's progress.
type progressEvent struct {
	Time     time.Time `json:"time"`
	Event    string    `json:"event"`
	Accounts int       `json:"accounts"`
	Started  int64     `json:"started"`
	Finished int64     `json:"finished"`
	Failed   int64     `json:"failed"`
	Messages int64     `json:"messages"`
	Bytes    int64     `json:"bytes"`
	Seconds  float64   `json:"elapsed_seconds"`
	Rate     float64   `json:"bytes_per_second"`
}

func (o *output) progress() progressEvent {
	el := time.Since(o.run.started).Seconds()
	e := progressEvent{Time: time.Now().UTC(), Event: "progress", Accounts: o.run.accounts, Started: o.counts.started.Load(),
		Finished: o.counts.finished.Load(), Failed: o.counts.failed.Load(), Messages: o.counts.messages.Load(), Bytes: o.counts.bytes.Load(), Seconds: el}
	if el > 0 {
		e.Rate = float64(e.Bytes) / el
	}
	return e
}

func (o *output) tick(every time.Duration) {
	defer o.ticker.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-o.stopTicker:
			return
		case <-t.C:
			o.writeJSON(o.progress())
		}
	}
}

func (o *output) user(id string) (string, string) {
	p := o.names[id]
	return p.SourceUser, p.DestUser
}

// jsonEvent is one line of --output json.
type jsonEvent struct {
	Time      time.Time               `json:"time"`
	Event     string                  `json:"event"`
	Source    string                  `json:"source_user,omitempty"`
	Dest      string                  `json:"dest_user,omitempty"`
	Mailbox   string                  `json:"mailbox,omitempty"`
	Status    string                  `json:"status,omitempty"`
	Error     string                  `json:"error,omitempty"`
	Mailboxes *migrate.MailboxSummary `json:"counts,omitempty"`
	Account   *accountRow             `json:"account,omitempty"`
	Count     int                     `json:"count,omitempty"`
	Line      int                     `json:"line,omitempty"` // of the batch file`
	// Result is the account's outcome in verify, undo and reverse.
	Result any `json:"result,omitempty"`
}

func (o *output) event(e migrate.Event) {
	if o.crash != nil {
		o.crash(e)
	}
	if o.status != nil {
		o.status.event(e)
	}
	o.count(e)
	src, dst := o.user(e.ID)
	switch o.mode {
	case "tty":
		o.live.event(e, src, accountError(e))
	case "text":
		if msg, attrs := eventLine(e, src, dst); msg != "" {
			o.a.log.Info(msg, attrs...)
		}
		return // the log lines reach --log-dir through the logger
	case "json":
		je := jsonEvent{Time: time.Now().UTC(), Event: string(e.Kind), Source: src, Dest: dst, Mailbox: e.Mailbox}
		switch e.Kind {
		case migrate.EventMailboxDone:
			je.Mailboxes, je.Error = e.Summary, e.Summary.Error
		case migrate.EventAccountDone:
			if e.Account == nil { // verify, undo, reverse
				je.Result = readableResult(e.Result)
				je.Status, je.Error = resultState(e.Result)
				break
			}
			row := newAccountRow(*e.Account)
			je.Account, je.Status, je.Error = &row, e.Account.Status, e.Account.Error
		case migrate.EventVerifyMailbox, migrate.EventUndoMailbox:
			je.Count = e.Count
		case migrate.EventAccountStart, migrate.EventRetry:
			je.Count = e.Count
			if e.Err != nil {
				je.Error = e.Err.Error()
			}
		default:
			je.Event = "" // per-message events would flood a log
		}
		if je.Event != "" {
			o.writeJSON(je)
		}
	}
	if o.a.logs != nil {
		if msg, attrs := eventLine(e, src, dst); msg != "" {
			if lg := o.a.logs.user(src); lg != nil {
				lg.Info(msg, attrs...)
			}
		}
	}
}

// count keeps the run's totals for the live display and progress events.
func (o *output) count(e migrate.Event) {
	switch e.Kind {
	case migrate.EventAccountStart:
		o.counts.started.Add(1)
	case migrate.EventAppended:
		o.counts.messages.Add(int64(e.Count))
		o.counts.bytes.Add(e.Bytes)
	case migrate.EventAccountDone:
		o.counts.finished.Add(1)
		if accountError(e) != "" {
			o.counts.failed.Add(1)
		}
	}
}

// accountError is why an account ended badly, "" if it did not.
func accountError(e migrate.Event) string {
	if e.Kind != migrate.EventAccountDone {
		return ""
	}
	if s := e.Account; s != nil {
		switch {
		case s.Status == migrate.StatusFailed && s.Error != "":
			return s.Error
		case s.Status == migrate.StatusFailed:
			return firstMailboxProblem(*s)
		}
		return ""
	}
	status, errText := resultState(e.Result)
	switch {
	case status == "fail" || status == migrate.StatusFailed || status == preflightProblems:
		if errText == "" {
			errText = status
		}
		return errText
	}
	return ""
}

// firstMailboxProblem names a failed account's first failed mailbox.
func firstMailboxProblem(s migrate.AccountSummary) string {
	for _, m := range s.Mailboxes {
		switch {
		case m.Error != "":
			return fmt.Sprintf("mailbox %q: %s", m.Source, m.Error)
		case m.Failed > 0:
			return fmt.Sprintf("mailbox %q: %d message(s) refused", m.Source, m.Failed)
		}
	}
	return "failed"
}

// eventLine is the log line of an event, "" for events without one.
func eventLine(e migrate.Event, src, dst string) (string, []any) {
	switch e.Kind {
	case migrate.EventMailboxDone:
		s := e.Summary
		attrs := []any{"source_user", src, "mailbox", e.Mailbox, "seen", s.Seen,
			"copied", s.Copied, "new", s.New, "duplicate", s.Duplicate, "failed", s.Failed, "pending", s.Pending}
		if s.Warn != "" {
			attrs = append(attrs, "warn", s.Warn)
		}
		if s.Error != "" {
			attrs = append(attrs, "error", s.Error)
		}
		return "mailbox done", attrs
	case migrate.EventAccountStart:
		return "account started", []any{"source_user", src, "dest_user", dst}
	case migrate.EventAccountDone:
		if e.Account == nil { // verify, undo, reverse
			status, errText := resultState(e.Result)
			return "account done", []any{"source_user", src, "dest_user", dst, "status", status, "error", errText}
		}
		s := e.Account
		t := s.Totals()
		attrs := []any{"source_user", src, "dest_user", dst, "status", s.Status, "seen", t.Seen,
			"copied", t.Copied, "new", t.New, "failed", t.Failed, "bytes", t.Bytes, "took", s.Duration.Round(time.Millisecond), "error", s.Error}
		if n := max(s.WarningCount, len(s.Warnings)); n > 0 {
			attrs = append(attrs, "warnings", n)
		}
		return "account done", attrs
	}
	return "", nil
}

func (o *output) close() {
	if o.stopTicker != nil {
		close(o.stopTicker)
		o.ticker.Wait()
		o.stopTicker = nil
	}
	if o.live != nil {
		o.live.close()
	}
	if o.status != nil {
		o.status.close()
	}
}

// summary prints the end-of-run tables: per mailbox for one account pair,
// per account for a batch. In JSON mode a last progress line and a final
// run_done line (with the totals) go to stdout and the table to stderr,
// where people read.
func (o *output) summary(sums []migrate.AccountSummary, batch, dryRun bool, took time.Duration) {
	w := o.a.stdout
	if o.mode == "json" {
		rows := make([]accountRow, len(sums))
		for i, s := range sums {
			rows[i] = newAccountRow(s)
		}
		o.writeJSON(o.progress())
		o.writeJSON(struct {
			Time     time.Time    `json:"time"`
			Event    string       `json:"event"`
			Duration string       `json:"duration"`
			Totals   migrateTotal `json:"totals"`
			Accounts []accountRow `json:"accounts"`
		}{time.Now().UTC(), "run_done", took.Round(time.Millisecond).String(), migrateTotals(sums), rows})
		w = o.a.stderr
	}
	if !batch {
		printSummary(w, sums, dryRun)
		return
	}
	printBatchSummary(w, sums, dryRun, took)
}

// stopped reports a run stopped for an endpoint-wide cause (gate.go) as a
// JSON event; the error itself ends the command as usual.
func (o *output) stopped(err error) {
	if err != nil {
		o.writeJSON(jsonEvent{Time: time.Now().UTC(), Event: "run_stopped", Error: err.Error()})
	}
}

// migrateTotal adds up a migrate run: messages and bytes, and accounts by
// status.
type migrateTotal struct {
	migrate.MailboxSummary
	Mailboxes int            `json:"mailboxes"`
	Accounts  int            `json:"accounts"`
	Statuses  map[string]int `json:"statuses"`
}

func migrateTotals(sums []migrate.AccountSummary) migrateTotal {
	var all migrate.AccountSummary
	t := migrateTotal{Accounts: len(sums), Statuses: map[string]int{}}
	for _, s := range sums {
		all.Mailboxes = append(all.Mailboxes, s.Mailboxes...)
		t.Statuses[s.Status]++
	}
	t.MailboxSummary = all.Totals()
	t.Mailboxes = len(all.Mailboxes)
	return t
}

// accountRow is one line of the batch summary and of the CSV report.
type accountRow struct {
	Source     string  `json:"source_user"`
	Dest       string  `json:"dest_user"`
	Mailboxes  int     `json:"mailboxes"`
	Seen       int     `json:"seen"`
	Copied     int     `json:"copied"`
	New        int     `json:"new"`
	Duplicate  int     `json:"skipped_duplicate"`
	Failed     int     `json:"failed"`
	Pending    int     `json:"pending"`
	Filtered   int     `json:"filtered,omitempty"`
	OtherLabel int     `json:"in_other_label,omitempty"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	Status     string  `json:"status"`
	Error      string  `json:"error,omitempty"`
	Class      string  `json:"error_class,omitempty"`
	// Warnings and WarningCount are migrate.AccountSummary's: what could
	// not be read as expected (malformed mbox files), the rest copied.
	Warnings     []string `json:"warnings,omitempty"`
	WarningCount int      `json:"warning_count,omitempty"`
}

func newAccountRow(s migrate.AccountSummary) accountRow {
	t := s.Totals()
	return accountRow{Source: s.Source, Dest: s.Dest, Mailboxes: len(s.Mailboxes), Seen: t.Seen, Copied: t.Copied,
		New: t.New, Duplicate: t.Duplicate, Failed: t.Failed, Pending: t.Pending, Filtered: t.Filtered, OtherLabel: t.OtherLabel, Bytes: t.Bytes,
		Seconds: s.Duration.Seconds(), Status: s.Status, Error: s.Error, Class: s.Class,
		Warnings: s.Warnings, WarningCount: max(s.WarningCount, len(s.Warnings))}
}

func printBatchSummary(w io.Writer, sums []migrate.AccountSummary, dryRun bool, took time.Duration) {
	title := "\nbatch of %d account(s) in %s"
	if dryRun {
		title += " [dry run: NEW is what would be copied]"
	}
	fmt.Fprintf(w, title+"\n", len(sums), took.Round(time.Millisecond))
	tw := newTable(w)
	fmt.Fprintln(tw, "USER\tDESTINATION\tMAILBOXES\tSEEN\tCOPIED\tNEW\tDUPLICATE\tFAILED\tPENDING\tBYTES\tTIME\tSTATUS\t")
	var all migrate.AccountSummary
	status := map[string]int{}
	for _, s := range sums {
		r := newAccountRow(s)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n", r.Source, r.Dest, r.Mailboxes, r.Seen, r.Copied,
			r.New, r.Duplicate, r.Failed, r.Pending, humanBytes(r.Bytes), s.Duration.Round(100*time.Millisecond), r.Status)
		all.Mailboxes = append(all.Mailboxes, s.Mailboxes...)
		status[r.Status]++
	}
	tot := newAccountRow(all)
	var parts []string
	for _, st := range []string{migrate.StatusOK, migrate.StatusWarn, migrate.StatusFailed, migrate.StatusSkipped, migrate.StatusInterrupted, statusStopped} {
		if status[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", status[st], st))
		}
	}
	fmt.Fprintf(tw, "TOTAL\t\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n", tot.Mailboxes, tot.Seen, tot.Copied, tot.New,
		tot.Duplicate, tot.Failed, tot.Pending, humanBytes(tot.Bytes), took.Round(100*time.Millisecond), strings.Join(parts, ", "))
	tw.Flush()
	for _, s := range sums {
		if s.Error != "" {
			fmt.Fprintf(w, "  %s -> %s %s: %s\n", s.Source, s.Dest, s.Status, s.Error)
		}
		for _, m := range s.Mailboxes {
			if m.Error != "" {
				fmt.Fprintf(w, "  %s mailbox %q: %s\n", s.Source, m.Source, m.Error)
			}
			if m.Warn != "" {
				fmt.Fprintf(w, "  %s mailbox %q WARN: %s\n", s.Source, m.Source, m.Warn)
			}
			for _, f := range m.Failures {
				fmt.Fprintf(w, "  %s mailbox %q uid %d %s refused: %s\n", s.Source, m.Source, f.UID, f.MessageID, f.Reason)
			}
			for _, f := range m.Alterations {
				fmt.Fprintf(w, "  %s mailbox %q uid %d %s copied ALTERED: %s\n", s.Source, m.Source, f.UID, f.MessageID, f.Reason)
			}
		}
		printWarnings(w, "  "+s.Source+" ", s, batchWarnings)
	}
}

// batchWarnings is how many warnings the batch summary shows per account.
const batchWarnings = 10

// writeReport writes --report: CSV (one row per account, with the number
// of warnings and the listed ones joined by "; ") or JSON (the full
// summaries with per-mailbox counts, failures and warnings, the peak
// number of connections held to each server and the process's peak
// memory).
func (o *output) writeReport(sums []migrate.AccountSummary, hosts map[string]int) error {
	if o.report == "" {
		return nil
	}
	f, err := os.OpenFile(o.report, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if strings.EqualFold(filepath.Ext(o.report), ".csv") {
		err = writeCSVReport(f, sums)
	} else {
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		err = enc.Encode(report{reportHeader: o.header(migrateTotals(sums)), Accounts: readableSummaries(sums), PeakRSS: peakRSS(), PeakConnections: hosts})
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func writeCSVReport(w io.Writer, sums []migrate.AccountSummary) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"source_user", "dest_user", "mailboxes", "seen", "copied", "new", "skipped_duplicate", "failed", "pending", "bytes", "seconds", "status", "error", "error_class", "warnings", "warning_details"})
	for _, s := range sums {
		r := newAccountRow(s)
		cw.Write([]string{r.Source, r.Dest, strconv.Itoa(r.Mailboxes), strconv.Itoa(r.Seen), strconv.Itoa(r.Copied),
			strconv.Itoa(r.New), strconv.Itoa(r.Duplicate), strconv.Itoa(r.Failed), strconv.Itoa(r.Pending),
			strconv.FormatInt(r.Bytes, 10), strconv.FormatFloat(r.Seconds, 'f', 1, 64), r.Status, r.Error, r.Class,
			strconv.Itoa(r.WarningCount), strings.Join(r.Warnings, "; ")})
	}
	cw.Flush()
	return cw.Error()
}

// reportHeader opens every JSON report: what ran, when, between which
// servers (no user, no secret), and the run's totals.
type reportHeader struct {
	Command  string    `json:"command"`
	Args     []string  `json:"args"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Totals   any       `json:"totals"`
}

func (o *output) header(totals any) reportHeader {
	return reportHeader{Command: o.run.command, Args: o.run.args, Version: version, Started: o.run.started.UTC(),
		Finished: time.Now().UTC(), From: o.run.from, To: o.run.to, Totals: totals}
}

// readableSummaries shows each account's ledger key as "alice -> bob":
// the key's NUL has no place in a report.
func readableSummaries(sums []migrate.AccountSummary) []migrate.AccountSummary {
	out := slices.Clone(sums)
	for i := range out {
		out[i].Account = accountLabel(out[i].Account)
	}
	return out
}

// report is what --report writes as JSON.
type report struct {
	reportHeader
	Accounts []migrate.AccountSummary `json:"accounts"`
	// PeakRSS is the process's peak resident memory when the report was
	// written, in bytes (Linux only, else 0).
	PeakRSS int64 `json:"peak_rss_bytes"`
	// PeakConnections is the most connections held at once to each server.
	PeakConnections map[string]int `json:"peak_connections,omitempty"`
}

// writeJSONFile writes v as indented JSON to a private file.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		err = os.WriteFile(path, append(b, '\n'), 0o600)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
