package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	if o.mode == "json" {
		o.mu.Lock()
		o.enc.Encode(struct {
			Time     time.Time `json:"time"`
			Event    string    `json:"event"`
			Duration string    `json:"duration"`
			Results  any       `json:"results"`
		}{time.Now().UTC(), "run_done", took.Round(time.Millisecond).String(), all})
		o.mu.Unlock()
		w = o.a.stderr
	}
	print(w)
	if o.report == "" {
		return nil
	}
	if !strings.EqualFold(filepath.Ext(o.report), ".csv") {
		return writeJSONFile(o.report, all)
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
