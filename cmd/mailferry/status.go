package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
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
			s, err := checkpoint.Open(path, checkpoint.Options{ReadOnly: true, LockTimeout: 5 * time.Second})
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := readStatus(s)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			a.printStatus(st)
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "checkpoint", "", "checkpoint file to read")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type statusView struct {
	From     string           `json:"from"`
	To       string           `json:"to"`
	Runs     []checkpoint.Run `json:"runs"`
	Accounts []accountStatus  `json:"accounts"`
}

type accountStatus struct {
	checkpoint.Account
	Mailboxes []mailboxStatus `json:"mailboxes"`
}

type mailboxStatus struct {
	checkpoint.MailboxRecord
	Counts   map[string]int `json:"counts"`
	Failures []string       `json:"failures,omitempty"`
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
		as := accountStatus{Account: acc}
		err := s.Mailboxes(id, func(name string, rec checkpoint.MailboxRecord) error {
			ms := mailboxStatus{MailboxRecord: rec, Counts: map[string]int{}}
			err := s.Records(id, name, func(r checkpoint.Record) error {
				ms.Counts[r.Status.String()]++
				if r.Status == checkpoint.StatusFailed && len(ms.Failures) < 20 {
					ms.Failures = append(ms.Failures, fmt.Sprintf("uid %d %s: %s", r.SrcUID, r.MessageID, r.Reason))
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
		fmt.Fprintf(a.stdout, "  run %d %s %s started %s outcome %q\n", r.ID, r.Command, r.Version, r.Started.Format(time.RFC3339), r.Outcome)
	}
	for _, acc := range v.Accounts {
		fmt.Fprintf(a.stdout, "\naccount %s -> %s: %s", acc.Source, acc.Dest, acc.State)
		if acc.Reason != "" {
			fmt.Fprintf(a.stdout, " (%s)", acc.Reason)
		}
		fmt.Fprintln(a.stdout)
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MAILBOX\tDESTINATION\tCOPIED\tDUPLICATE\tFAILED\tPENDING\tREMOVED\t")
		for _, m := range acc.Mailboxes {
			c := m.Counts
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", m.Source, m.Dest,
				c[checkpoint.StatusCopied.String()], c[checkpoint.StatusDuplicate.String()], c[checkpoint.StatusFailed.String()],
				c[checkpoint.StatusPending.String()], c[checkpoint.StatusRemoved.String()])
		}
		tw.Flush()
		for _, m := range acc.Mailboxes {
			for _, f := range m.Failures {
				fmt.Fprintf(a.stdout, "  %s: %s\n", m.Source, f)
			}
		}
	}
}
