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

type reverseOptions struct {
	endpointOptions
	outputOptions
	accountFlags
	metrics          metricsOptions
	checkpoint       string
	propagateDeletes bool
	yes              bool
	concurrency      int
	mailboxWorkers   int
}

func (a *app) newReverseCommand() *cobra.Command {
	var o reverseOptions
	cmd := &cobra.Command{
		Use:   "reverse --from URL --to URL --checkpoint FILE [--batch F | --user U] [--propagate-deletes [--yes]]",
		Short: "Carry back to the source what changed on the destination since the migration",
		Long: `reverse is the way back after a cutover. --from and --to keep the
orientation of the migration: reverse reads the destination (--to) and
writes to the original source (--from).

It copies to the source every destination message that is not a copy of
source mail and was not there before the migration: mail that arrived
after cutover, mail users created or filed, in new folders too. It sets
the flags and keywords of migrated messages on the source to what users
made of them on the destination. It never copies back a message that came
from the source, and, like migrate, it resumes after a crash and a second
run copies nothing.

Copies that users moved or deleted on the destination are listed. Their
originals stay on the source unless you ask: --propagate-deletes shows
which originals would be removed, and --propagate-deletes --yes removes
them (a moved message has then been copied to its new folder on the
source). Nothing is ever deleted on the destination.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runReverse(cmd.Context(), &o)
		},
	}
	f := cmd.Flags()
	o.endpointOptions.addFlags(f)
	f.StringVar(&o.checkpoint, "checkpoint", "", "checkpoint file of the migration")
	f.StringVar(&o.batch, "batch", "", "CSV file of the account pairs")
	addShardFlag(f, &o.shard)
	f.StringVar(&o.user, "user", "", "reverse only this account (source or destination user)")
	f.BoolVar(&o.propagateDeletes, "propagate-deletes", false, "also remove from the source the originals of copies deleted or moved away on the destination (shown only, unless --yes)")
	f.BoolVar(&o.yes, "yes", false, "with --propagate-deletes: remove them")
	f.IntVar(&o.concurrency, "concurrency", 4, "accounts at once")
	f.IntVar(&o.mailboxWorkers, "mailbox-workers", 4, "mailboxes copied back at once per account")
	o.outputOptions.addFlags(f)
	addMetricsFlags(f, &o.metrics)
	return cmd
}

func (a *app) runReverse(ctx context.Context, o *reverseOptions) error {
	if o.yes && !o.propagateDeletes {
		return usagef("--yes only makes sense with --propagate-deletes: reverse copies and sets flags without asking, and deletes nothing otherwise")
	}
	if _, err := o.shardFlags(&o.endpointOptions); err != nil {
		return err
	}
	src, dst, err := a.resolveSides(&o.endpointOptions, o.batch == "", bothSides)
	if err != nil {
		return err
	}
	store, err := openCheckpoint(o.checkpoint)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.BindEndpoints(src.id(), dst.id()); err != nil {
		return err
	}
	accts, err := a.selectAccounts(&o.accountFlags, src, dst, store)
	if err != nil {
		return err
	}
	for _, p := range accts {
		if acc, ok, _ := store.Account(p.ID); ok && acc.Cutover.IsZero() {
			a.log.Warn("no cutover recorded for this account: reverse carries back what changed on the destination all the same", "source_user", p.SourceUser)
		}
	}
	obs, err := a.startObservability(ctx, &o.metrics, "reverse", accts, src, dst)
	if err != nil {
		return err
	}
	defer obs.close()
	runID, err := store.StartRun("reverse", version)
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	out, err := a.newOutput(&o.outputOptions, accts, "")
	if err != nil {
		return err
	}
	opts := migrate.ReverseOptions{
		Options:          migrate.Options{MailboxWorkers: o.mailboxWorkers, Run: runID, Logger: a.log, Events: obs.tee(out.event)},
		PropagateDeletes: o.propagateDeletes, Execute: o.yes,
	}
	start := time.Now()
	sums := migrate.ReverseBatch(ctx, runnable(accts), store, o.concurrency, opts)
	out.close()
	failed := a.invalidRows(accts)
	for _, s := range sums {
		if s.Status != migrate.StatusOK {
			failed++
		}
	}
	took := time.Since(start)
	if err := out.results(sums, took, func(w io.Writer) { printReverse(w, sums, o.propagateDeletes, o.yes, took) }, func() table { return reverseTable(sums) }); err != nil {
		return err
	}
	outcome := "ok"
	switch {
	case ctx.Err() != nil:
		outcome = "interrupted"
	case failed > 0:
		outcome = "failed"
	}
	if err := store.FinishRun(runID, outcome); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case failed > 0:
		return &partialError{fmt.Sprintf("reverse did not finish cleanly for %d account(s)", failed)}
	}
	return nil
}

func printReverse(w io.Writer, sums []migrate.ReverseSummary, propagate, yes bool, took time.Duration) {
	for _, s := range sums {
		t := s.Copied.Totals()
		fmt.Fprintf(w, "\naccount %s <- %s: %s\n", s.Source, s.Dest, s.Status)
		if s.Error != "" {
			fmt.Fprintf(w, "  %s\n", s.Error)
		}
		fmt.Fprintf(w, "  copied back %d new message(s) (%d already on the source, %d failed, %d pending), flags carried back on %d\n",
			t.New, t.Duplicate, t.Failed, t.Pending, s.FlagsCarried)
		if len(s.Copied.Mailboxes) > 0 {
			tw := newTable(w)
			fmt.Fprintln(tw, "  DESTINATION MAILBOX\tTO SOURCE MAILBOX\tNOT FROM SOURCE\tCOPIED BACK\tNEW\tALREADY THERE\tFAILED\t")
			for _, m := range s.Copied.Mailboxes {
				dest := m.Dest
				if m.Created {
					dest += " (created)"
				}
				fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", m.Source, dest, m.Seen, m.Copied, m.New, m.Duplicate, m.Failed)
			}
			tw.Flush()
		}
		if len(s.Moved) > 0 {
			fmt.Fprintf(w, "  %d message(s) moved on the destination, %d moved likewise on the source:\n", len(s.Moved), s.MovesCarried)
		}
		for _, list := range [][]migrate.Problem{s.Moved, s.Archived, s.Deleted} {
			for _, p := range list {
				fmt.Fprintf(w, "  source %q uid %d %s: %s\n", p.Mailbox, p.UID, p.MessageID, p.What)
			}
		}
		if n := len(s.Deleted); n > 0 {
			switch {
			case propagate && yes:
				fmt.Fprintf(w, "  removed %d original(s) from the source\n", s.RemovedFromSource)
			case propagate:
				fmt.Fprintf(w, "  DRY RUN: --propagate-deletes --yes would remove these %d original(s) from the source\n", n)
			default:
				fmt.Fprintf(w, "  their originals stay on the source (--propagate-deletes to remove them)\n")
			}
		}
	}
	fmt.Fprintf(w, "\n%d account(s) in %s\n", len(sums), took.Round(time.Millisecond))
}

func reverseTable(sums []migrate.ReverseSummary) table {
	t := table{header: []string{"source_user", "dest_user", "status", "copied_back", "already_on_source", "failed", "pending",
		"flags_carried_back", "moved", "moves_carried_back", "archived", "deleted", "removed_from_source", "error"}}
	for _, s := range sums {
		c := s.Copied.Totals()
		t.rows = append(t.rows, []string{s.Source, s.Dest, s.Status, strconv.Itoa(c.New), strconv.Itoa(c.Duplicate), strconv.Itoa(c.Failed),
			strconv.Itoa(c.Pending), strconv.Itoa(s.FlagsCarried), strconv.Itoa(len(s.Moved)), strconv.Itoa(s.MovesCarried),
			strconv.Itoa(len(s.Archived)), strconv.Itoa(len(s.Deleted)), strconv.Itoa(s.RemovedFromSource), s.Error})
	}
	return t
}
