package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
)

type undoOptions struct {
	endpointOptions
	outputOptions
	accountFlags
	metrics             metricsOptions
	checkpoint          string
	yes                 bool
	discardCloudChanges bool
	verbose             bool
	concurrency         int
	chunk               int
}

func (a *app) newUndoCommand() *cobra.Command {
	var o undoOptions
	cmd := &cobra.Command{
		Use:   "undo --from URL --to URL --checkpoint FILE [--batch F | --user U] [--yes]",
		Short: "Remove from the destination exactly what mailferry copied there (dry run unless --yes)",
		Long: `undo removes from the destination exactly the messages the checkpoint
proves mailferry appended: a copy goes only if the message at its recorded
UID, under the recorded UIDVALIDITY, still has the fingerprint of what was
appended. Mail that was on the destination before the migration, mail that
arrived later and mail the user put there stay. Mailboxes mailferry created
are deleted, deepest first, once they are empty; a mailbox that holds
anything else is never deleted. The source is not touched.

Without --yes, undo only shows per account what it would remove and keep
(-v: per mailbox too). With --yes it removes (UID EXPUNGE of exactly those
messages) and records each removal, so an interrupted undo resumes.

An account cut over with no reverse since has users working on the
destination: undo --yes refuses it, before logging in, unless
--discard-cloud-changes is given (run reverse first, see
docs/rollback.md).

The accounts are those of --batch, or the user named in the URLs, or
--user, or every account the checkpoint records. Only the destination is
logged in to; --from must still name the source the checkpoint was made
for.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runUndo(cmd.Context(), &o)
		},
	}
	f := cmd.Flags()
	o.endpointOptions.addFlags(f)
	f.StringVar(&o.checkpoint, "checkpoint", "", "checkpoint file of the migration to undo")
	f.StringVar(&o.batch, "batch", "", "CSV file of the account pairs to undo")
	addShardFlag(f, &o.shard)
	f.StringVar(&o.user, "user", "", "undo only this account (source or destination user)")
	f.BoolVar(&o.yes, "yes", false, "remove; without it undo only shows what it would do")
	f.IntVar(&o.concurrency, "concurrency", 4, "accounts at once")
	f.IntVar(&o.chunk, "chunk", 500, "messages removed (and recorded) per UID EXPUNGE")
	f.BoolVar(&o.discardCloudChanges, "discard-cloud-changes", false, "undo accounts cut over with no reverse since: what users did on the destination after cutover is not carried back first")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "print every mailbox, not only the per-account summary")
	o.outputOptions.addFlags(f)
	addMetricsFlags(f, &o.metrics)
	return cmd
}

func (a *app) runUndo(ctx context.Context, o *undoOptions) error {
	env, err := a.setUp(ctx, runConfig{command: "undo", need: sides{dest: true}, endpoint: &o.endpointOptions, accounts: &o.accountFlags,
		checkpoint: o.checkpoint, readOnly: !o.yes,
		check: func(recorded *checkpoint.Store, accts []plannedAccount) error {
			return a.refuseCloudChanges(recorded, accts, o.yes, o.discardCloudChanges)
		}})
	if err != nil {
		return err
	}
	defer env.close()
	accts := env.accts
	out, err := a.newOutput(&o.outputOptions, env, "undo", "")
	if err != nil {
		return err
	}
	obs, err := a.startObservability(ctx, &o.metrics, "undo", env.accts, env.src, env.dst)
	if err != nil {
		return err
	}
	defer obs.close()
	opts := migrate.UndoOptions{Execute: o.yes, Run: env.runID, Logger: a.log, Events: obs.tee(out.event), Chunk: o.chunk}
	start := time.Now()
	sums := migrate.UndoBatch(env.ctx, runnable(accts), env.ledger(!o.yes), o.concurrency, opts)
	out.close()
	failed := a.invalidRows(accts)
	for _, s := range sums {
		if s.Status != migrate.StatusOK {
			failed++
		}
	}
	took := time.Since(start)
	if err := out.results(sums, took, func(w io.Writer) { printUndo(w, sums, o.yes, o.verbose, took) }, func() table { return undoTable(sums) }); err != nil {
		return err
	}
	outcome := "ok"
	if failed > 0 {
		outcome = "failed"
	}
	if ctx.Err() != nil {
		outcome = "interrupted"
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
		return &partialError{fmt.Sprintf("undo did not finish cleanly for %d account(s)", failed)}
	}
	return nil
}

// printUndo writes one row per account with totals, and the mailboxes
// only with -v (the JSON --report always has them); problems are always
// listed.
func printUndo(w io.Writer, sums []migrate.UndoSummary, executed, verbose bool, took time.Duration) {
	if !executed {
		fmt.Fprintln(w, "DRY RUN: nothing was changed. Run the same command with --yes to remove what is listed under REMOVE.")
	}
	col := "REMOVE"
	if executed {
		col = "REMOVED"
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "USER\tDESTINATION\tSTATUS\tMAILBOXES\t%s\tKEEP\tALREADY GONE\tMISMATCH\tUNSURE\tMAILBOXES DELETED\t\n", col)
	var all undoTotals
	for _, s := range sums {
		t := undoTotalsOf(s, executed)
		all.add(t)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.Source, s.Dest, s.Status, len(s.Mailboxes), t.remove, t.keep, t.gone, t.mismatch, t.unsure, t.deleted)
	}
	fmt.Fprintf(tw, "TOTAL\t\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", statusCounts(sums, func(s migrate.UndoSummary) string { return s.Status }),
		all.mailboxes, all.remove, all.keep, all.gone, all.mismatch, all.unsure, all.deleted)
	tw.Flush()
	for _, s := range sums {
		if s.Error != "" {
			fmt.Fprintf(w, "  %s: %s\n", s.Source, s.Error)
		}
		for _, m := range s.Mailboxes {
			if m.Error != "" {
				fmt.Fprintf(w, "  %s %s: %s\n", s.Source, m.Dest, m.Error)
			}
			if m.Mismatch > 0 {
				fmt.Fprintf(w, "  %s %s: %d recorded UID(s) now hold another message; those were kept\n", s.Source, m.Dest, m.Mismatch)
			}
			if m.Unsure > 0 {
				fmt.Fprintf(w, "  %s %s: %d copy(ies) may still be there but cannot be told from other mail; kept, and left in the checkpoint\n", s.Source, m.Dest, m.Unsure)
			}
		}
	}
	if verbose {
		for _, s := range sums {
			printUndoMailboxes(w, s, executed)
		}
	}
	fmt.Fprintf(w, "\n%d account(s) in %s", len(sums), took.Round(time.Millisecond))
	if !verbose {
		fmt.Fprint(w, "; -v lists every mailbox (so does the JSON --report)")
	}
	fmt.Fprintln(w)
}

// printUndoMailboxes is the -v detail of one account.
func printUndoMailboxes(w io.Writer, s migrate.UndoSummary, executed bool) {
	fmt.Fprintf(w, "\naccount %s -> %s: %s\n", s.Source, s.Dest, s.Status)
	if len(s.Mailboxes) == 0 {
		return
	}
	tw := newTable(w)
	col := "REMOVE"
	if executed {
		col = "REMOVED"
	}
	fmt.Fprintf(tw, "DESTINATION MAILBOX\t%s\tKEEP\tALREADY GONE\tMISMATCH\tUNSURE\tMAILBOX\t\n", col)
	for _, m := range s.Mailboxes {
		n := m.Remove
		if executed {
			n = m.Removed
		}
		action := "keep"
		switch {
		case m.MailboxDeleted:
			action = "deleted (created by mailferry, empty)"
		case m.DeleteMailbox && executed:
			action = "keep (not empty when checked again)"
		case m.DeleteMailbox:
			action = "delete (created by mailferry, empty after undo)"
		case m.NotFound:
			action = "not found"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", m.Dest, n, m.Keep, m.Gone, m.Mismatch, m.Unsure, action)
	}
	tw.Flush()
}

type undoTotals struct{ mailboxes, remove, keep, gone, mismatch, unsure, deleted int }

func (t *undoTotals) add(o undoTotals) {
	t.mailboxes, t.remove, t.keep, t.gone = t.mailboxes+o.mailboxes, t.remove+o.remove, t.keep+o.keep, t.gone+o.gone
	t.mismatch, t.unsure, t.deleted = t.mismatch+o.mismatch, t.unsure+o.unsure, t.deleted+o.deleted
}

// undoTotalsOf adds up an account's mailboxes; remove is what was removed
// once executed, and deleted the mailboxes deleted (or to delete).
func undoTotalsOf(s migrate.UndoSummary, executed bool) undoTotals {
	t := undoTotals{mailboxes: len(s.Mailboxes)}
	for _, m := range s.Mailboxes {
		if executed {
			t.remove += m.Removed
		} else {
			t.remove += m.Remove
		}
		t.keep, t.gone, t.mismatch, t.unsure = t.keep+m.Keep, t.gone+m.Gone, t.mismatch+m.Mismatch, t.unsure+m.Unsure
		if m.MailboxDeleted || !executed && m.DeleteMailbox {
			t.deleted++
		}
	}
	return t
}

// statusCounts is "3 ok, 1 failed": how many results have each status.
func statusCounts[T any](sums []T, status func(T) string) string {
	n := map[string]int{}
	var order []string
	for _, s := range sums {
		st := status(s)
		if n[st] == 0 {
			order = append(order, st)
		}
		n[st]++
	}
	slices.Sort(order)
	parts := make([]string, len(order))
	for i, st := range order {
		parts[i] = fmt.Sprintf("%d %s", n[st], st)
	}
	return strings.Join(parts, ", ")
}

func undoTable(sums []migrate.UndoSummary) table {
	t := table{header: []string{"source_user", "dest_user", "status", "executed", "mailboxes", "remove", "removed", "keep", "already_gone", "mismatch", "unsure", "error"}}
	for _, s := range sums {
		var remove, removed, keep, gone, mismatch, unsure int
		for _, m := range s.Mailboxes {
			remove, removed, keep, gone, mismatch, unsure = remove+m.Remove, removed+m.Removed, keep+m.Keep, gone+m.Gone, mismatch+m.Mismatch, unsure+m.Unsure
		}
		t.rows = append(t.rows, []string{s.Source, s.Dest, s.Status, strconv.FormatBool(s.Executed), strconv.Itoa(len(s.Mailboxes)),
			strconv.Itoa(remove), strconv.Itoa(removed), strconv.Itoa(keep), strconv.Itoa(gone), strconv.Itoa(mismatch), strconv.Itoa(unsure), s.Error})
	}
	return t
}
