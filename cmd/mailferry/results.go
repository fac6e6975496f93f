package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/migrate"
)

// resultState is the status and error of a verify, undo or reverse
// outcome, for log lines and JSON events.
func resultState(r any) (status, errText string) {
	switch v := r.(type) {
	case *migrate.VerifySummary:
		if v.Pass {
			return "pass", v.Error
		}
		return "fail", v.Error
	case *migrate.UndoSummary:
		return v.Status, v.Error
	case *migrate.ReverseSummary:
		return v.Status, v.Error
	case *preflightAccount:
		if v.Error == "" && len(v.Problems) > 0 {
			return v.Status, strings.Join(v.Problems, "; ")
		}
		return v.Status, v.Error
	}
	return "", ""
}

// invalidRows reports the batch rows that could not run, and counts them.
func (a *app) invalidRows(accts []plannedAccount) int {
	n := 0
	for _, p := range accts {
		if p.invalid != "" {
			n++
			fmt.Fprintf(a.stderr, "mailferry: %s\n", p.invalid)
		}
	}
	return n
}

// table is a result as CSV: a header and one row per account.
type table struct {
	header []string
	rows   [][]string
}

// results ends a verify, undo or reverse run as migrate ends its: the
// command's summary on stdout (on stderr after a run_done JSON line holding
// every result, with --output json), then --report: JSON, or one row per
// account for a file ending in .csv.
func (o *output) results(all any, took time.Duration, print func(io.Writer), csvTable func() table) error {
	w := o.a.stdout
	all = readableResult(all)
	totals := resultTotals(csvTable())
	if o.mode == "json" {
		o.writeJSON(o.progress())
		o.writeJSON(struct {
			Time     time.Time      `json:"time"`
			Event    string         `json:"event"`
			Duration string         `json:"duration"`
			Totals   map[string]any `json:"totals"`
			Results  any            `json:"results"`
		}{time.Now().UTC(), "run_done", took.Round(time.Millisecond).String(), totals, all})
		w = o.a.stderr
	}
	print(w)
	if o.report == "" {
		return nil
	}
	if !strings.EqualFold(filepath.Ext(o.report), ".csv") {
		return writeJSONFile(o.report, struct {
			reportHeader
			Accounts any `json:"accounts"`
		}{o.header(totals), all})
	}
	f, err := os.OpenFile(o.report, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	t := csvTable()
	cw := csv.NewWriter(f)
	cw.Write(t.header)
	cw.WriteAll(t.rows)
	if err := cw.Error(); err != nil {
		f.Close()
		return fmt.Errorf("write report: %w", err)
	}
	return f.Close()
}

// resultTotals adds up the numeric columns of a result table, and counts
// its accounts by status (or verdict).
func resultTotals(t table) map[string]any {
	out := map[string]any{"accounts": len(t.rows)}
	statuses := map[string]int{}
	for i, h := range t.header {
		if h == "status" || h == "verdict" {
			for _, r := range t.rows {
				statuses[r[i]]++
			}
			out[h+"es"] = statuses
			continue
		}
		sum, numeric := 0, len(t.rows) > 0
		for _, r := range t.rows {
			n, err := strconv.Atoi(r[i])
			if err != nil {
				numeric = false
				break
			}
			sum += n
		}
		if numeric {
			out[h] = sum
		}
	}
	return out
}

// readableResult copies verify, undo and reverse results with each
// account's ledger key shown as "alice -> bob".
func readableResult(all any) any {
	switch v := all.(type) {
	case []migrate.VerifySummary:
		out := slices.Clone(v)
		for i := range out {
			out[i].Account = accountLabel(out[i].Account)
		}
		return out
	case []migrate.UndoSummary:
		out := slices.Clone(v)
		for i := range out {
			out[i].Account = accountLabel(out[i].Account)
		}
		return out
	case []migrate.ReverseSummary:
		out := slices.Clone(v)
		for i := range out {
			out[i].Account = accountLabel(out[i].Account)
			out[i].Copied.Account = accountLabel(out[i].Copied.Account)
		}
		return out
	case *migrate.VerifySummary:
		c := *v
		c.Account = accountLabel(c.Account)
		return &c
	case *migrate.UndoSummary:
		c := *v
		c.Account = accountLabel(c.Account)
		return &c
	case *migrate.ReverseSummary:
		c := *v
		c.Account = accountLabel(c.Account)
		c.Copied.Account = accountLabel(c.Copied.Account)
		return &c
	}
	return all
}
