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
	dryRun           bool
	verbose          bool
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
source). Nothing is ever deleted on the destination.

--dry-run logs in to both sides and shows what reverse would copy back,
which flags it would set and which originals it would move, and changes
nothing anywhere, the checkpoint included.`,
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
	f.BoolVar(&o.dryRun, "dry-run", false, "show what reverse would copy back, set and move; change nothing anywhere")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "print every mailbox and every moved or deleted copy, not only the per-account summary")
	f.IntVar(&o.concurrency, "concurrency", 4, "accounts at once")
	f.IntVar(&o.mailboxWorkers, "mailbox-workers", 4, "mailboxes copied back at once per account")
	o.outputOptions.addFlags(f)
	addMetricsFlags(f, &o.metrics)
	return cmd
}

func (a *app) runReverse(ctx context.Context, o *reverseOptions) error {
	switch {
	case o.yes && !o.propagateDeletes:
		return usagef("--yes only makes sense with --propagate-deletes: reverse copies and sets flags without asking, and deletes nothing otherwise")
	case o.yes && o.dryRun:
		return usagef("--dry-run and --yes: give one (--dry-run changes nothing, --yes removes originals)")
	}
	env, err := a.setUp(ctx, runConfig{command: "reverse", need: bothSides, endpoint: &o.endpointOptions, accounts: &o.accountFlags,
		checkpoint: o.checkpoint, readOnly: o.dryRun, dirsDryRun: o.dryRun})
	if err != nil {
		return err
	}
	defer env.close()
	accts := env.accts
	for _, p := range accts {
		if acc, ok, _ := env.store.Account(p.ID); ok && acc.Cutover.IsZero() {
			a.log.Warn("no cutover recorded for this account: reverse carries back what changed on the destination all the same", "source_user", p.SourceUser)
		}
	}
	obs, err := a.startObservability(ctx, &o.metrics, "reverse", env.accts, env.src, env.dst)
	if err != nil {
		return err
	}
	defer obs.close()
	out, err := a.newOutput(&o.outputOptions, env, "reverse", "")
	if err != nil {
		return err
	}
	opts := migrate.ReverseOptions{
		Options:          migrate.Options{MailboxWorkers: o.mailboxWorkers, Run: env.runID, Logger: a.log, Events: obs.tee(out.event), DryRun: o.dryRun},
		PropagateDeletes: o.propagateDeletes, Execute: o.yes,
	}
	start := time.Now()
	sums := migrate.ReverseBatch(env.ctx, runnable(accts), env.ledger(o.dryRun), o.concurrency, opts)
	out.close()
	failed := a.invalidRows(accts)
	for _, s := range sums {
		if s.Status != migrate.StatusOK {
			failed++
		}
	}
	took := time.Since(start)
	printFn := func(w io.Writer) {
		printReverse(w, sums, reverseView{o.propagateDeletes, o.yes, o.dryRun, o.verbose}, took)
	}
	if err := out.results(sums, took, printFn, func() table { return reverseTable(sums) }); err != nil {
		return err
	}
	outcome := "ok"
	switch {
	case ctx.Err() != nil:
		outcome = "interrupted"
	case failed > 0:
		outcome = "failed"
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
		return &partialError{fmt.Sprintf("reverse did not finish cleanly for %d account(s)", failed)}
	}
	return nil
}

// reverseView is how the reverse summary is printed.
type reverseView struct{ propagate, yes, dryRun, verbose bool }

// printReverse writes one row per account with totals; every mailbox and
// every moved or deleted copy only with -v (the JSON --report has them).
func printReverse(w io.Writer, sums []migrate.ReverseSummary, v reverseView, took time.Duration) {
	if v.dryRun {
		fmt.Fprintln(w, "DRY RUN: nothing was changed. COPY BACK, FLAGS and MOVED say what reverse would do.")
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "USER\tDESTINATION\tSTATUS\tCOPY BACK\tALREADY ON SOURCE\tFAILED\tPENDING\tFLAGS\tMOVED\tARCHIVED\tDELETED\t")
	var tot struct{ copied, dup, failed, pending, flags, moved, archived, deleted int }
	for _, s := range sums {
		t := s.Copied.Totals()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.Source, s.Dest, s.Status, t.New, t.Duplicate, t.Failed, t.Pending,
			s.FlagsCarried, len(s.Moved), len(s.Archived), len(s.Deleted))
		tot.copied, tot.dup, tot.failed, tot.pending = tot.copied+t.New, tot.dup+t.Duplicate, tot.failed+t.Failed, tot.pending+t.Pending
		tot.flags, tot.moved, tot.archived, tot.deleted = tot.flags+s.FlagsCarried, tot.moved+len(s.Moved), tot.archived+len(s.Archived), tot.deleted+len(s.Deleted)
	}
	fmt.Fprintf(tw, "TOTAL\t\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", statusCounts(sums, func(s migrate.ReverseSummary) string { return s.Status }),
		tot.copied, tot.dup, tot.failed, tot.pending, tot.flags, tot.moved, tot.archived, tot.deleted)
	tw.Flush()
	for _, s := range sums {
		if s.Error != "" {
			fmt.Fprintf(w, "  %s: %s\n", s.Source, s.Error)
		}
	}
	if tot.deleted > 0 {
		switch {
		case v.propagate && v.yes:
			removed := 0
			for _, s := range sums {
				removed += s.RemovedFromSource
			}
			fmt.Fprintf(w, "  removed %d original(s) of copies deleted on the destination from the source\n", removed)
		case v.propagate:
			fmt.Fprintf(w, "  DRY RUN: --propagate-deletes --yes would remove the %d original(s) of copies deleted on the destination from the source\n", tot.deleted)
		default:
			fmt.Fprintf(w, "  the %d original(s) of copies deleted on the destination stay on the source (--propagate-deletes to remove them)\n", tot.deleted)
		}
	}
	if v.verbose {
		for _, s := range sums {
			printReverseAccount(w, s)
		}
	}
	fmt.Fprintf(w, "\n%d account(s) in %s", len(sums), took.Round(time.Millisecond))
	if !v.verbose {
		fmt.Fprint(w, "; -v lists every mailbox and every moved or deleted copy (so does the JSON --report)")
	}
	fmt.Fprintln(w)
}

// printReverseAccount is the -v detail of one account.
func printReverseAccount(w io.Writer, s migrate.ReverseSummary) {
	t := s.Copied.Totals()
	fmt.Fprintf(w, "\naccount %s <- %s: %s\n", s.Source, s.Dest, s.Status)
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
