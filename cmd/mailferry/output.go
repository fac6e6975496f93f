package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/migrate"
)

// outputOptions say where progress and results go.
type outputOptions struct {
	output string // auto, text, json
	json   bool
	report string
}

func (o *outputOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.output, "output", "auto", "progress and summary: auto (live progress on a terminal, JSON lines otherwise), text (log lines and a table), json (JSON lines on stdout)")
	f.BoolVar(&o.json, "json", false, "same as --output json")
	f.StringVar(&o.report, "report", "", "write the per-account summary to this file: CSV if it ends in .csv, else JSON")
}

// output turns copier events into progress for a person (a live display
// or log lines) or for a program (one JSON object per line on stdout), and
// writes the summary and report at the end.
type output struct {
	a      *app
	mode   string // tty, text, json
	report string
	crash  func(migrate.Event)
	names  map[string]plannedAccount // account id -> pair
	live   *liveProgress             // tty mode only
	status *liveStatus               // nil for dry runs

	mu  sync.Mutex // serialises JSON lines
	enc *json.Encoder
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newOutput prepares the progress display; statusFile, if set, is the
// checkpoint next to which a live view for `mailferry status` is kept.
func (a *app) newOutput(o *outputOptions, accts []plannedAccount, statusFile string) (*output, error) {
	crash, err := a.crashHook()
	if err != nil {
		return nil, err
	}
	out := &output{a: a, report: o.report, crash: crash, names: map[string]plannedAccount{}, enc: json.NewEncoder(a.stdout)}
	for _, p := range accts {
		out.names[p.ID] = p
	}
	mode := o.output
	if o.json {
		mode = "json"
	}
	switch mode {
	case "auto":
		out.mode = "json"
		if isTerminal(a.stdout) && isTerminal(a.stderr) {
			out.mode = "tty"
		}
	case "text", "json":
		out.mode = mode
	default:
		return nil, usagef("--output %q: want auto, text or json", o.output)
	}
	if out.mode == "tty" {
		runnable := 0
		for _, p := range accts {
			if p.invalid == "" {
				runnable++
			}
		}
		out.live = newLiveProgress(a.stderr, runnable)
	}
	if statusFile != "" {
		out.status = startLiveStatus(statusFile, accts)
	}
	return out, nil
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
	src, dst := o.user(e.ID)
	switch o.mode {
	case "tty":
		o.live.event(e, src)
	case "text":
		switch e.Kind {
		case migrate.EventMailboxDone:
			s := e.Summary
			attrs := []any{"source_user", src, "mailbox", e.Mailbox, "seen", s.Seen,
				"copied", s.Copied, "new", s.New, "duplicate", s.Duplicate, "failed", s.Failed, "pending", s.Pending}
			if s.Warn != "" {
				attrs = append(attrs, "warn", s.Warn)
			}
			o.a.log.Info("mailbox done", attrs...)
		case migrate.EventAccountStart:
			o.a.log.Info("account started", "source_user", src, "dest_user", dst)
		case migrate.EventAccountDone:
			if e.Account == nil { // verify, undo, reverse
				status, errText := resultState(e.Result)
				o.a.log.Info("account done", "source_user", src, "dest_user", dst, "status", status, "error", errText)
				return
			}
			s := e.Account
			t := s.Totals()
			attrs := []any{"source_user", src, "dest_user", dst, "status", s.Status, "seen", t.Seen,
				"copied", t.Copied, "new", t.New, "failed", t.Failed, "took", s.Duration.Round(time.Millisecond), "error", s.Error}
			if n := max(s.WarningCount, len(s.Warnings)); n > 0 {
				attrs = append(attrs, "warnings", n)
			}
			o.a.log.Info("account done", attrs...)
		}
	case "json":
		je := jsonEvent{Time: time.Now().UTC(), Event: string(e.Kind), Source: src, Dest: dst, Mailbox: e.Mailbox}
		switch e.Kind {
		case migrate.EventMailboxDone:
			je.Mailboxes, je.Error = e.Summary, e.Summary.Error
		case migrate.EventAccountDone:
			if e.Account == nil { // verify, undo, reverse
				je.Result = e.Result
				je.Status, je.Error = resultState(e.Result)
				break
			}
			row := newAccountRow(*e.Account)
			je.Account, je.Status, je.Error = &row, e.Account.Status, e.Account.Error
		case migrate.EventVerifyMailbox, migrate.EventUndoMailbox:
			je.Count = e.Count
		case migrate.EventAccountStart, migrate.EventRetry:
			if e.Err != nil {
				je.Error = e.Err.Error()
			}
		default:
			return // per-message events would flood a log
		}
		o.mu.Lock()
		o.enc.Encode(je)
		o.mu.Unlock()
	}
}

func (o *output) close() {
	if o.live != nil {
		o.live.close()
	}
	if o.status != nil {
		o.status.close()
	}
}

// summary prints the end-of-run tables: per mailbox for one account pair,
// per account for a batch. In JSON mode a final run_done line goes to
// stdout and the table to stderr, where people read.
func (o *output) summary(sums []migrate.AccountSummary, batch, dryRun bool, took time.Duration) {
	w := o.a.stdout
	if o.mode == "json" {
		rows := make([]accountRow, len(sums))
		for i, s := range sums {
			rows[i] = newAccountRow(s)
		}
		o.enc.Encode(struct {
			Time     time.Time    `json:"time"`
			Event    string       `json:"event"`
			Duration string       `json:"duration"`
			Accounts []accountRow `json:"accounts"`
		}{time.Now().UTC(), "run_done", took.Round(time.Millisecond).String(), rows})
		w = o.a.stderr
	}
	if !batch {
		printSummary(w, sums, dryRun)
		return
	}
	printBatchSummary(w, sums, dryRun, took)
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
	for _, st := range []string{migrate.StatusOK, migrate.StatusWarn, migrate.StatusFailed, migrate.StatusSkipped, migrate.StatusInterrupted} {
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
		err = enc.Encode(report{Accounts: sums, PeakRSS: peakRSS(), PeakConnections: hosts})
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

// report is what --report writes as JSON.
type report struct {
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
