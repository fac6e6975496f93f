package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate/ledger"
)

func (a *app) newStatusCommand() *cobra.Command {
	var path string
	var asJSON, mailboxes bool
	cmd := &cobra.Command{
		Use:   "status --checkpoint FILE [--mailboxes]",
		Short: "Show what a checkpoint records: one row per account with totals, failures; --mailboxes for each mailbox",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" {
				return usagef("--checkpoint FILE is required")
			}
			s, err := openExistingCheckpoint(path, checkpoint.Options{ReadOnly: true, LockTimeout: time.Second})
			if errors.Is(err, checkpoint.ErrLocked) {
				// A run holds the checkpoint: show its live view instead of waiting.
				v, lerr := readLiveStatus(path)
				if lerr != nil {
					return fmt.Errorf("%w; no live view next to it (%v)", err, lerr)
				}
				if asJSON {
					return a.writeJSON(v)
				}
				a.printLiveStatus(v)
				return nil
			}
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := readStatus(s)
			if err != nil {
				return err
			}
			if asJSON {
				return a.writeJSON(st)
			}
			a.printStatus(st, mailboxes)
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "checkpoint", "", "checkpoint file to read")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (every account and mailbox)")
	cmd.Flags().BoolVar(&mailboxes, "mailboxes", false, "print every mailbox of every account, and the runs")
	return cmd
}

func (a *app) writeJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type statusView struct {
	From     string           `json:"from"`
	To       string           `json:"to"`
	Runs     []checkpoint.Run `json:"runs"`
	Accounts []accountStatus  `json:"accounts"`
}

type accountStatus struct {
	ledger.Account
	// WayBack marks the ledger of reverse's copy back (destination to
	// source) of an account pair, not a pair of its own.
	WayBack   bool            `json:"way_back,omitempty"`
	Mailboxes []mailboxStatus `json:"mailboxes"`
}

type mailboxStatus struct {
	ledger.MailboxRecord
	Counts   map[string]int `json:"counts"`
	Failures []string       `json:"failures,omitempty"`
	// Altered lists copies whose bytes differ from the source's, and how.
	Altered []string `json:"altered,omitempty"`
}

func readStatus(s *checkpoint.Store) (statusView, error) {
	var v statusView
	var err error
	if v.From, v.To, err = s.Endpoints(); err != nil {
		return v, err
	}
	if v.Runs, err = s.Runs(); err != nil {
		return v, err
	}
	err = s.Accounts(func(id string, acc ledger.Account) error {
		as := accountStatus{Account: acc, WayBack: ledger.IsReverseAccount(id)}
		err := s.Mailboxes(id, func(name string, rec ledger.MailboxRecord) error {
			ms := mailboxStatus{MailboxRecord: rec, Counts: map[string]int{}}
			err := s.Records(id, name, func(r ledger.Record) error {
				ms.Counts[r.Status.String()]++
				if r.Status == ledger.StatusFailed && len(ms.Failures) < 20 {
					ms.Failures = append(ms.Failures, fmt.Sprintf("uid %d %s: %s", r.SrcUID, r.MessageID, r.Reason))
				}
				if r.Status == ledger.StatusCopied && r.Reason != "" && len(ms.Altered) < 20 {
					ms.Altered = append(ms.Altered, fmt.Sprintf("uid %d %s: copied altered: %s", r.SrcUID, r.MessageID, r.Reason))
				}
				return nil
			})
			as.Mailboxes = append(as.Mailboxes, ms)
			return err
		})
		v.Accounts = append(v.Accounts, as)
		return err
	})
	return v, err
}

// printStatus writes one row per account with its totals and a TOTAL
// row, then why accounts failed; --mailboxes adds the runs and each
// account's mailboxes.
func (a *app) printStatus(v statusView, mailboxes bool) {
	w := a.stdout
	fmt.Fprintf(w, "checkpoint for %s -> %s, %d run(s)", v.From, v.To, len(v.Runs))
	if n := len(v.Runs); n > 0 {
		last := v.Runs[n-1]
		outcome := last.Outcome
		if last.Finished.IsZero() {
			outcome = "did not finish (killed, or still running)"
		}
		fmt.Fprintf(w, "; last: %s started %s, %s", last.Command, last.Started.Local().Format(time.DateTime), outcome)
	}
	fmt.Fprintln(w)
	tw := newTable(w)
	fmt.Fprintln(tw, "USER\tDESTINATION\tSTATE\tMAILBOXES\tCOPIED\tDUPLICATE\tFAILED\tPENDING\tREMOVED\tCUTOVER\t")
	var tot accountCounts
	states := map[string]int{}
	for _, acc := range v.Accounts {
		if acc.WayBack {
			continue // its counts are the way back's, listed with --mailboxes
		}
		c := acc.counts()
		tot.add(c)
		states[acc.State]++
		cut := "-"
		if !acc.Cutover.IsZero() {
			cut = acc.Cutover.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", acc.Source, acc.Dest, acc.State, len(acc.Mailboxes), c.copied, c.duplicate, c.failed, c.pending, c.removed, cut)
		tot.mailboxes += len(acc.Mailboxes)
	}
	var parts []string
	for st, n := range states {
		parts = append(parts, fmt.Sprintf("%d %s", n, st))
	}
	sort.Strings(parts)
	fmt.Fprintf(tw, "TOTAL\t\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\t\n", strings.Join(parts, ", "), tot.mailboxes, tot.copied, tot.duplicate, tot.failed, tot.pending, tot.removed)
	tw.Flush()
	for _, acc := range v.Accounts {
		if acc.Reason != "" && !acc.WayBack {
			fmt.Fprintf(w, "  %s -> %s: %s (%s)\n", acc.Source, acc.Dest, acc.State, acc.Reason)
		}
	}
	if !mailboxes {
		fmt.Fprintln(w, "(--mailboxes lists every mailbox and run; --json has everything)")
		return
	}
	fmt.Fprintln(w)
	for _, r := range v.Runs {
		outcome := r.Outcome
		if r.Finished.IsZero() {
			outcome = "did not finish (killed, or still running)"
		}
		fmt.Fprintf(w, "  run %d: %s (%s) started %s: %s\n", r.ID, r.Command, r.Version, r.Started.Format(time.RFC3339), outcome)
	}
	for _, acc := range v.Accounts {
		what := "account"
		if acc.WayBack {
			what = "way back (reverse) of account"
		}
		fmt.Fprintf(w, "\n%s %s -> %s: %s", what, acc.Source, acc.Dest, acc.State)
		if !acc.Cutover.IsZero() {
			fmt.Fprintf(w, ", cutover at %s", acc.Cutover.Format(time.RFC3339))
		}
		if acc.Reason != "" {
			fmt.Fprintf(w, " (%s)", acc.Reason)
		}
		fmt.Fprintln(w)
		tw := newTable(w)
		fmt.Fprintln(tw, "MAILBOX\tDESTINATION\tCOPIED\tDUPLICATE\tFAILED\tPENDING\tREMOVED\t")
		for _, m := range acc.Mailboxes {
			c := m.Counts
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", m.Source, m.Dest,
				c[ledger.StatusCopied.String()], c[ledger.StatusDuplicate.String()], c[ledger.StatusFailed.String()],
				c[ledger.StatusPending.String()], c[ledger.StatusRemoved.String()])
		}
		tw.Flush()
		for _, m := range acc.Mailboxes {
			for _, f := range append(m.Failures, m.Altered...) {
				fmt.Fprintf(w, "  %s: %s\n", m.Source, f)
			}
		}
	}
}

// accountCounts are an account's message counts by ledger status.
type accountCounts struct{ mailboxes, copied, duplicate, failed, pending, removed int }

func (c *accountCounts) add(o accountCounts) {
	c.copied, c.duplicate, c.failed, c.pending, c.removed = c.copied+o.copied, c.duplicate+o.duplicate, c.failed+o.failed, c.pending+o.pending, c.removed+o.removed
}

func (acc accountStatus) counts() accountCounts {
	var c accountCounts
	for _, m := range acc.Mailboxes {
		c.copied += m.Counts[ledger.StatusCopied.String()]
		c.duplicate += m.Counts[ledger.StatusDuplicate.String()]
		c.failed += m.Counts[ledger.StatusFailed.String()]
		c.pending += m.Counts[ledger.StatusPending.String()]
		c.removed += m.Counts[ledger.StatusRemoved.String()]
	}
	return c
}

func (a *app) printLiveStatus(v liveView) {
	fmt.Fprintf(a.stdout, "a migration is running (pid %d, started %s); live view as of %s\n",
		v.PID, v.Started.Format(time.RFC3339), v.Updated.Format(time.RFC3339))
	accts := make([]*liveAccount, 0, len(v.Accounts))
	for _, acc := range v.Accounts {
		accts = append(accts, acc)
	}
	sort.Slice(accts, func(i, j int) bool { return accts[i].Source < accts[j].Source })
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "USER\tDESTINATION\tSTATE\tMAILBOXES DONE\tAPPENDED\tBYTES\tFAILED\t")
	for _, acc := range accts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%d\t\n", acc.Source, acc.Dest, acc.State, acc.Mailboxes, acc.Appended, humanBytes(acc.Bytes), acc.Failed)
	}
	tw.Flush()
	for _, acc := range accts {
		if acc.Error != "" {
			fmt.Fprintf(a.stdout, "  %s: %s\n", acc.Source, acc.Error)
		}
	}
}
