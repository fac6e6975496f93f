package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/migrate"
)

type verifyOptions struct {
	endpointOptions
	outputOptions
	accountFlags
	selectionFlags
	metrics     metricsOptions
	checkpoint  string
	deep        bool
	concurrency int
}

func (a *app) newVerifyCommand() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify --from URL --to URL --checkpoint FILE [--batch F | --user U] [--deep] [--json]",
		Short: "Compare source and destination with the checkpoint: PASS or FAIL per account",
		Long: `verify compares, per account and mailbox, every source message with its
copy: present at the UID the checkpoint recorded, same content fingerprint,
size, flags, keywords and internal date. Independently of the checkpoint it
also checks by content that every source message has a copy on the
destination. --deep fetches both copies and compares their bytes.

It prints PASS or FAIL per account with the exact missing or differing
messages, changes nothing on either server, and exits 1 if any account
fails. Give it the folder rules and filters the migration was given
(--include, --exclude, --map-folder, --since, --before,
--max-size): what they leave out is then not expected on the destination.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runVerify(cmd.Context(), &o)
		},
	}
	f := cmd.Flags()
	o.endpointOptions.addFlags(f)
	f.StringVar(&o.checkpoint, "checkpoint", "", "checkpoint file of the migration")
	f.StringVar(&o.batch, "batch", "", "CSV file of the account pairs to verify")
	addShardFlag(f, &o.shard)
	f.StringVar(&o.user, "user", "", "verify only this account (source or destination user)")
	f.BoolVar(&o.deep, "deep", false, "fetch and hash both copies of every message")
	o.selectionFlags.addFlags(f)
	f.IntVar(&o.concurrency, "concurrency", 4, "accounts at once")
	o.outputOptions.addFlags(f)
	addMetricsFlags(f, &o.metrics)
	return cmd
}

func (a *app) runVerify(ctx context.Context, o *verifyOptions) error {
	fromPreset, err := lookupPreset(o.fromPreset)
	if err != nil {
		return err
	}
	o.warn = func(msg string) { a.log.Warn(msg) }
	sel, labels, err := o.selection(fromPreset)
	if err != nil {
		return err
	}
	env, err := a.setUp(ctx, runConfig{command: "verify", need: bothSides, endpoint: &o.endpointOptions, accounts: &o.accountFlags, checkpoint: o.checkpoint})
	if err != nil {
		return err
	}
	defer env.close()
	accts := env.accts
	obs, err := a.startObservability(ctx, &o.metrics, "verify", env.accts, env.src, env.dst)
	if err != nil {
		return err
	}
	defer obs.close()
	out, err := a.newOutput(&o.outputOptions, env, "verify", "")
	if err != nil {
		return err
	}
	start := time.Now()
	sums := migrate.VerifyBatch(env.ctx, runnable(accts), env.store, o.concurrency,
		// A pass over some dates or sizes only is not the account verified.
		migrate.VerifyOptions{Deep: o.deep, Record: sel.Filter.IsZero(), Select: sel, Labels: labels, Run: env.runID, Logger: a.log, Events: obs.tee(out.event)})
	out.close()
	failed := a.invalidRows(accts)
	for _, s := range sums {
		if !s.Pass {
			failed++
		}
	}
	if err := out.results(sums, time.Since(start), func(w io.Writer) { printVerify(w, sums) }, func() table { return verifyTable(sums) }); err != nil {
		return err
	}
	outcome := "pass"
	if failed > 0 {
		outcome = "fail"
	}
	if err := env.finish(outcome); err != nil {
		return err
	}
	switch {
	case env.stopped() != nil:
		return env.stopped()
	case ctx.Err() != nil:
		return ctx.Err()
	case failed > 0:
		return &partialError{fmt.Sprintf("verify: %d account(s) FAIL", failed)}
	}
	return nil
}

func printVerify(w io.Writer, sums []migrate.VerifySummary) {
	pass := 0
	for _, s := range sums {
		verdict := "FAIL"
		if s.Pass {
			verdict = "PASS"
			pass++
		}
		fmt.Fprintf(w, "%s %s -> %s (%d mailboxes)\n", verdict, s.Source, s.Dest, len(s.Mailboxes))
		if s.Error != "" {
			fmt.Fprintf(w, "  %s\n", s.Error)
		}
		for _, m := range s.Mailboxes {
			if m.Problems == 0 && m.Unmatched == 0 && m.Error == "" {
				continue
			}
			fmt.Fprintf(w, "  %s -> %s: %d of %d verified, %d with problems, %d without a copy by content\n",
				m.Source, m.Dest, m.Verified, m.Seen, m.Problems, m.Unmatched)
			if m.Error != "" {
				fmt.Fprintf(w, "    %s\n", m.Error)
			}
			for _, p := range m.Details {
				fmt.Fprintf(w, "    uid %d", p.UID)
				if p.DstUID != 0 {
					fmt.Fprintf(w, " (destination uid %d)", p.DstUID)
				}
				if p.MessageID != "" {
					fmt.Fprintf(w, " %s", p.MessageID)
				}
				fmt.Fprintf(w, ": %s\n", p.What)
			}
			if n := m.Problems - len(m.Details); n > 0 {
				fmt.Fprintf(w, "    … and %d more (the first %d are in --report)\n", n, len(m.Details))
			}
		}
	}
	fmt.Fprintf(w, "%d of %d account(s) PASS\n", pass, len(sums))
}

func verifyTable(sums []migrate.VerifySummary) table {
	t := table{header: []string{"source_user", "dest_user", "verdict", "mailboxes", "seen", "verified", "problems", "unmatched_by_content", "error"}}
	for _, s := range sums {
		verdict := "FAIL"
		if s.Pass {
			verdict = "PASS"
		}
		var seen, verified, problems, unmatched int
		for _, m := range s.Mailboxes {
			seen, verified, problems, unmatched = seen+m.Seen, verified+m.Verified, problems+m.Problems, unmatched+m.Unmatched
		}
		t.rows = append(t.rows, []string{s.Source, s.Dest, verdict, strconv.Itoa(len(s.Mailboxes)), strconv.Itoa(seen),
			strconv.Itoa(verified), strconv.Itoa(problems), strconv.Itoa(unmatched), s.Error})
	}
	return t
}
