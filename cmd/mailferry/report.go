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

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate/ledger"
)

func (a *app) newReportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Reports over several checkpoints",
	}
	var asJSON bool
	var out string
	merge := &cobra.Command{
		Use:   "merge CHECKPOINT...",
		Short: "One status for a move split into shards: every account of every checkpoint, and totals",
		Long: `merge reads the checkpoints of a sharded move (one per --shard) and prints
one table: every account with its shard, state and message counts, and the
totals of the whole move. The checkpoints must all be of the same move (the
same servers). A checkpoint in use by a running shard is refused; run
merge when the shards have finished, or read a running one with status.`,
		Example: `  mailferry report merge shard-*.db --report move.csv`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runMerge(args, asJSON, out)
		},
	}
	merge.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	merge.Flags().StringVar(&out, "report", "", "write the merged rows to this file: CSV if it ends in .csv, else JSON")
	cmd.AddCommand(merge, a.newReportHTMLCommand())
	return cmd
}

// mergedRow is one account of a sharded move.
type mergedRow struct {
	Checkpoint string    `json:"checkpoint"`
	Source     string    `json:"source_user"`
	Dest       string    `json:"dest_user"`
	State      string    `json:"state"`
	Reason     string    `json:"reason,omitempty"`
	Cutover    time.Time `json:"cutover,omitzero"`
	Mailboxes  int       `json:"mailboxes"`
	Copied     int       `json:"copied"`
	Duplicate  int       `json:"skipped_duplicate"`
	Failed     int       `json:"failed"`
	Pending    int       `json:"pending"`
	Removed    int       `json:"removed"`
}

type merged struct {
	From     string         `json:"from"`
	To       string         `json:"to"`
	Accounts []mergedRow    `json:"accounts"`
	Total    mergedRow      `json:"total"`
	States   map[string]int `json:"states"`
}

func (a *app) runMerge(paths []string, asJSON bool, out string) error {
	m := merged{States: map[string]int{}}
	seen := map[string]string{} // account -> checkpoint holding it
	for _, p := range paths {
		s, err := checkpoint.Open(p, checkpoint.Options{ReadOnly: true, LockTimeout: time.Second})
		if err != nil {
			return err
		}
		v, err := readStatus(s)
		s.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		switch {
		case m.From == "" && m.To == "":
			m.From, m.To = v.From, v.To
		case v.From != m.From || v.To != m.To:
			return usagef("%s is for %s -> %s, the others for %s -> %s: not the same move", p, v.From, v.To, m.From, m.To)
		}
		for _, acc := range v.Accounts {
			if acc.WayBack {
				continue // counted with reverse's own reports, not as a pair of the move
			}
			id := ledger.AccountID(acc.Source, acc.Dest)
			if other, dup := seen[id]; dup {
				a.log.Warn("account in two checkpoints; counted in both", "source_user", acc.Source, "first", other, "second", p)
			}
			seen[id] = p
			r := mergedRow{Checkpoint: filepath.Base(p), Source: acc.Source, Dest: acc.Dest, State: acc.State, Reason: acc.Reason,
				Cutover: acc.Cutover, Mailboxes: len(acc.Mailboxes)}
			for _, mb := range acc.Mailboxes {
				c := mb.Counts
				r.Copied += c[ledger.StatusCopied.String()]
				r.Duplicate += c[ledger.StatusDuplicate.String()]
				r.Failed += c[ledger.StatusFailed.String()]
				r.Pending += c[ledger.StatusPending.String()]
				r.Removed += c[ledger.StatusRemoved.String()]
			}
			m.Accounts = append(m.Accounts, r)
			m.States[r.State]++
			m.Total.Mailboxes += r.Mailboxes
			m.Total.Copied += r.Copied
			m.Total.Duplicate += r.Duplicate
			m.Total.Failed += r.Failed
			m.Total.Pending += r.Pending
			m.Total.Removed += r.Removed
		}
	}
	slices.SortFunc(m.Accounts, func(x, y mergedRow) int { return strings.Compare(x.Source, y.Source) })
	m.Total.Source = fmt.Sprintf("%d accounts", len(m.Accounts))
	if out != "" {
		if err := writeMerged(out, m); err != nil {
			return err
		}
	}
	if asJSON {
		return a.writeJSON(m)
	}
	printMerged(a.stdout, m, len(paths))
	return nil
}

func printMerged(w io.Writer, m merged, files int) {
	fmt.Fprintf(w, "move %s -> %s: %d account(s) in %d checkpoint(s)\n", m.From, m.To, len(m.Accounts), files)
	tw := newTable(w)
	fmt.Fprintln(tw, "USER\tDESTINATION\tCHECKPOINT\tSTATE\tMAILBOXES\tCOPIED\tDUPLICATE\tFAILED\tPENDING\tREMOVED\t")
	for _, r := range m.Accounts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", r.Source, r.Dest, r.Checkpoint, r.State, r.Mailboxes, r.Copied, r.Duplicate, r.Failed, r.Pending, r.Removed)
	}
	var states []string
	for st, n := range m.States {
		states = append(states, fmt.Sprintf("%d %s", n, st))
	}
	slices.Sort(states)
	t := m.Total
	fmt.Fprintf(tw, "TOTAL\t\t\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", strings.Join(states, ", "), t.Mailboxes, t.Copied, t.Duplicate, t.Failed, t.Pending, t.Removed)
	tw.Flush()
	for _, r := range m.Accounts {
		if r.Reason != "" {
			fmt.Fprintf(w, "  %s (%s): %s\n", r.Source, r.Checkpoint, r.Reason)
		}
	}
}

func writeMerged(path string, m merged) error {
	if !strings.EqualFold(filepath.Ext(path), ".csv") {
		return writeJSONFile(path, m)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	cw := csv.NewWriter(f)
	cw.Write([]string{"source_user", "dest_user", "checkpoint", "state", "mailboxes", "copied", "skipped_duplicate", "failed", "pending", "removed", "reason"})
	for _, r := range m.Accounts {
		cw.Write([]string{r.Source, r.Dest, r.Checkpoint, r.State, strconv.Itoa(r.Mailboxes), strconv.Itoa(r.Copied),
			strconv.Itoa(r.Duplicate), strconv.Itoa(r.Failed), strconv.Itoa(r.Pending), strconv.Itoa(r.Removed), r.Reason})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		f.Close()
		return fmt.Errorf("write report: %w", err)
	}
	return f.Close()
}
