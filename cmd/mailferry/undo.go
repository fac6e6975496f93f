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

type undoOptions struct {
	endpointOptions
	outputOptions
	accountFlags
	metrics     metricsOptions
	checkpoint  string
	yes         bool
	concurrency int
	chunk       int
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

Without --yes, undo only shows per account and mailbox what it would
remove and keep. With --yes it removes (UID EXPUNGE of exactly those
messages) and records each removal, so an interrupted undo resumes.

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
	o.outputOptions.addFlags(f)
	addMetricsFlags(f, &o.metrics)
	return cmd
}

func (a *app) runUndo(ctx context.Context, o *undoOptions) error {
	if _, err := o.shardFlags(&o.endpointOptions); err != nil {
		return err
	}
	src, dst, err := a.resolveSides(&o.endpointOptions, o.batch == "", sides{dest: true})
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
	obs, err := a.startObservability(ctx, &o.metrics, "undo", accts, src, dst)
	if err != nil {
		return err
	}
	defer obs.close()
	runID := uint32(0)
	if o.yes {
		if runID, err = store.StartRun("undo", version); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
	}
	out, err := a.newOutput(&o.outputOptions, accts, "")
	if err != nil {
		return err
	}
	opts := migrate.UndoOptions{Execute: o.yes, Run: runID, Logger: a.log, Events: obs.tee(out.event), Chunk: o.chunk}
	start := time.Now()
	sums := migrate.UndoBatch(ctx, runnable(accts), store, o.concurrency, opts)
	out.close()
	failed := a.invalidRows(accts)
	for _, s := range sums {
		if s.Status != migrate.StatusOK {
			failed++
		}
	}
	took := time.Since(start)
	if err := out.results(sums, took, func(w io.Writer) { printUndo(w, sums, o.yes, took) }, func() table { return undoTable(sums) }); err != nil {
		return err
	}
	if o.yes {
		outcome := "ok"
		if failed > 0 {
			outcome = "failed"
		}
		if ctx.Err() != nil {
			outcome = "interrupted"
		}
		if err := store.FinishRun(runID, outcome); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case failed > 0:
		return &partialError{fmt.Sprintf("undo did not finish cleanly for %d account(s)", failed)}
	}
	return nil
}

func printUndo(w io.Writer, sums []migrate.UndoSummary, executed bool, took time.Duration) {
	if !executed {
		fmt.Fprintln(w, "DRY RUN: nothing was changed. Run the same command with --yes to remove what is listed under REMOVE.")
	}
	for _, s := range sums {
		fmt.Fprintf(w, "\naccount %s -> %s: %s\n", s.Source, s.Dest, s.Status)
		if s.Error != "" {
			fmt.Fprintf(w, "  %s\n", s.Error)
		}
		if len(s.Mailboxes) == 0 {
			continue
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
		for _, m := range s.Mailboxes {
			if m.Error != "" {
				fmt.Fprintf(w, "  %s: %s\n", m.Dest, m.Error)
			}
			if m.Mismatch > 0 {
				fmt.Fprintf(w, "  %s: %d recorded UID(s) now hold another message; those were kept\n", m.Dest, m.Mismatch)
			}
			if m.Unsure > 0 {
				fmt.Fprintf(w, "  %s: %d copy(ies) may still be there but cannot be told from other mail; kept, and left in the checkpoint\n", m.Dest, m.Unsure)
			}
		}
	}
	fmt.Fprintf(w, "\n%d account(s) in %s\n", len(sums), took.Round(time.Millisecond))
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
