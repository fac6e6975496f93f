package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/checkpoint"
)

func (a *app) newStatusCommand() *cobra.Command {
	var path string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status --checkpoint FILE",
		Short: "Show what a checkpoint records: accounts, mailboxes, counts and failures",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" {
				return usagef("--checkpoint FILE is required")
			}
			s, err := checkpoint.Open(path, checkpoint.Options{ReadOnly: true, LockTimeout: time.Second})
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
			a.printStatus(st)
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "checkpoint", "", "checkpoint file to read")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
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
	checkpoint.Account
	// WayBack marks the ledger of reverse's copy back (destination to
	// source) of an account pair, not a pair of its own.
	WayBack   bool            `json:"way_back,omitempty"`
	Mailboxes []mailboxStatus `json:"mailboxes"`
}

type mailboxStatus struct {
	checkpoint.MailboxRecord
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
	err = s.Accounts(func(id string, acc checkpoint.Account) error {
		as := accountStatus{Account: acc, WayBack: checkpoint.IsReverseAccount(id)}
		err := s.Mailboxes(id, func(name string, rec checkpoint.MailboxRecord) error {
			ms := mailboxStatus{MailboxRecord: rec, Counts: map[string]int{}}
			err := s.Records(id, name, func(r checkpoint.Record) error {
				ms.Counts[r.Status.String()]++
				if r.Status == checkpoint.StatusFailed && len(ms.Failures) < 20 {
					ms.Failures = append(ms.Failures, fmt.Sprintf("uid %d %s: %s", r.SrcUID, r.MessageID, r.Reason))
				}
				if r.Status == checkpoint.StatusCopied && r.Reason != "" && len(ms.Altered) < 20 {
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

func (a *app) printStatus(v statusView) {
	fmt.Fprintf(a.stdout, "checkpoint for %s -> %s, %d run(s)\n", v.From, v.To, len(v.Runs))
	for _, r := range v.Runs {
		outcome := r.Outcome
		if r.Finished.IsZero() {
			outcome = "did not finish (killed, or still running)"
		}
		fmt.Fprintf(a.stdout, "  run %d: %s (%s) started %s: %s\n", r.ID, r.Command, r.Version, r.Started.Format(time.RFC3339), outcome)
	}
	for _, acc := range v.Accounts {
		what := "account"
		if acc.WayBack {
			what = "way back (reverse) of account"
		}
		fmt.Fprintf(a.stdout, "\n%s %s -> %s: %s", what, acc.Source, acc.Dest, acc.State)
		if !acc.Cutover.IsZero() {
			fmt.Fprintf(a.stdout, ", cutover at %s", acc.Cutover.Format(time.RFC3339))
		}
		if acc.Reason != "" {
			fmt.Fprintf(a.stdout, " (%s)", acc.Reason)
		}
		fmt.Fprintln(a.stdout)
		tw := newTable(a.stdout)
		fmt.Fprintln(tw, "MAILBOX\tDESTINATION\tCOPIED\tDUPLICATE\tFAILED\tPENDING\tREMOVED\t")
		for _, m := range acc.Mailboxes {
			c := m.Counts
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", m.Source, m.Dest,
				c[checkpoint.StatusCopied.String()], c[checkpoint.StatusDuplicate.String()], c[checkpoint.StatusFailed.String()],
				c[checkpoint.StatusPending.String()], c[checkpoint.StatusRemoved.String()])
		}
		tw.Flush()
		for _, m := range acc.Mailboxes {
			for _, f := range append(m.Failures, m.Altered...) {
				fmt.Fprintf(a.stdout, "  %s: %s\n", m.Source, f)
			}
		}
	}
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
