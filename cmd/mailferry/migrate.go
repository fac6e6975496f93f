package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
)

type migrateOptions struct {
	endpointOptions
	checkpoint     string
	mailboxWorkers int
	batchSize      int
	dryRun         bool
	retryFailed    bool
	report         string
	retries        int
}

func (a *app) newMigrateCommand() *cobra.Command {
	var o migrateOptions
	cmd := &cobra.Command{
		Use:   "migrate --from URL --to URL --checkpoint FILE",
		Short: "Copy every mailbox of an account to another server, resumably",
		Long: `migrate copies every selectable mailbox from --from to --to: the exact
message bytes, flags, keywords and internal dates. Special-use mailboxes
(Sent, Trash, ...) go to the destination mailbox with the same role whatever
it is called. Messages already on the destination are not copied again.
The source is only read (EXAMINE, BODY.PEEK): nothing on it changes.

Every copied message is recorded in the checkpoint. Run the same command
again after a crash or Ctrl-C and it carries on with no duplicate and no
loss; run it again after it finished and it copies nothing.

Passwords come from $MAILFERRY_FROM_PASSWORD and $MAILFERRY_TO_PASSWORD or
from --from-password-file / --to-password-file, never from a flag value.`,
		Example: `  MAILFERRY_FROM_PASSWORD=… MAILFERRY_TO_PASSWORD=… \
    mailferry migrate --from imaps://alice@old.example.com --to imaps://alice@new.example.com --checkpoint wave1.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runMigrate(cmd.Context(), &o)
		},
	}
	f := cmd.Flags()
	o.addFlags(f)
	f.StringVar(&o.checkpoint, "checkpoint", "", "checkpoint file recording the run (created with mode 0600 if missing)")
	f.IntVar(&o.mailboxWorkers, "mailbox-workers", 4, "mailboxes copied at once per account (each uses one connection per side)")
	f.IntVar(&o.batchSize, "batch-size", 256, "messages committed to the checkpoint per transaction")
	f.BoolVar(&o.dryRun, "dry-run", false, "connect and count what would be copied; change nothing anywhere")
	f.BoolVar(&o.retryFailed, "retry-failed", false, "send again the messages the destination refused in earlier runs")
	f.StringVar(&o.report, "report", "", "write the summary as JSON to this file")
	f.IntVar(&o.retries, "retries", 5, "retries per mailbox after a dropped connection or throttling")
	return cmd
}

func (a *app) runMigrate(ctx context.Context, o *migrateOptions) error {
	src, dst, err := a.resolveSides(&o.endpointOptions)
	if err != nil {
		return err
	}
	if src.endpoint.User == "" || dst.endpoint.User == "" {
		return usagef("--from and --to must name the user (imaps://user@host)")
	}
	store, err := openCheckpoint(o.checkpoint)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.BindEndpoints(src.endpoint.String(), dst.endpoint.String()); err != nil {
		return err
	}
	runID := uint32(0)
	if !o.dryRun {
		if runID, err = store.StartRun("migrate", version); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
	}
	events, err := a.eventHandler()
	if err != nil {
		return err
	}
	opts := migrate.Options{
		MailboxWorkers: o.mailboxWorkers, BatchSize: o.batchSize, DryRun: o.dryRun,
		RetryFailed: o.retryFailed, Run: runID, Logger: a.log, Events: events, Retries: o.retries,
	}
	if o.retries == 0 {
		opts.Retries = -1
	}
	sum := a.migrateAccount(ctx, store, src, dst, src.endpoint.User, dst.endpoint.User, opts)
	sums := []migrate.AccountSummary{sum}
	printSummary(a.stdout, sums, o.dryRun)
	if o.report != "" {
		if err := writeReport(o.report, sums); err != nil {
			return err
		}
	}
	outcome := "ok"
	switch {
	case ctx.Err() != nil:
		outcome = "interrupted"
	case !sum.OK():
		outcome = "failed"
	}
	if !o.dryRun {
		if err := store.FinishRun(runID, outcome); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case sum.Class == providers.ClassRun.String():
		return errors.New(sum.Error)
	case !sum.OK():
		return &partialError{fmt.Sprintf("account %s: %s", sum.Source, firstError(sum))}
	}
	return nil
}

// migrateAccount logs in to both sides and migrates one account pair. A
// login failure is recorded in the checkpoint like any other account
// failure.
func (a *app) migrateAccount(ctx context.Context, store *checkpoint.Store, src, dst *side, srcUser, dstUser string, opts migrate.Options) migrate.AccountSummary {
	id := checkpoint.AccountID(srcUser, dstUser)
	fail := func(err error) migrate.AccountSummary {
		a.log.Error("account failed", "source_user", srcUser, "dest_user", dstUser, "err", err)
		if !opts.DryRun && ctx.Err() == nil {
			acc, _, _ := store.Account(id)
			acc.Source, acc.Dest, acc.State, acc.Reason, acc.Run = srcUser, dstUser, checkpoint.AccountFailed, err.Error(), opts.Run
			if perr := store.PutAccount(id, acc); perr != nil {
				err = providers.WithClass(providers.ClassRun, perr)
			}
		}
		return migrate.AccountSummary{Account: id, Source: srcUser, Dest: dstUser, Error: err.Error(), Class: providers.ClassOf(err).String()}
	}
	from, err := imap.Open(ctx, src.config(srcUser))
	if err != nil {
		return fail(fmt.Errorf("source: %w", err))
	}
	defer from.Close()
	to, err := imap.Open(ctx, dst.config(dstUser))
	if err != nil {
		return fail(fmt.Errorf("destination: %w", err))
	}
	defer to.Close()
	start := time.Now()
	sum, err := migrate.Migrate(ctx, migrate.Account{ID: id, SourceUser: srcUser, DestUser: dstUser, Source: from, Dest: to}, store, opts)
	if err != nil {
		a.log.Error("account stopped", "source_user", srcUser, "err", err)
	}
	a.log.Info("account done", "source_user", srcUser, "dest_user", dstUser, "ok", sum.OK(), "took", time.Since(start).Round(time.Millisecond))
	return sum
}

func firstError(s migrate.AccountSummary) string {
	if s.Error != "" {
		return s.Error
	}
	t := s.Totals()
	return fmt.Sprintf("%d message(s) failed, %d not settled", t.Failed, t.Pending)
}

// report is what --report writes.
type report struct {
	Accounts []migrate.AccountSummary `json:"accounts"`
	// PeakRSS is the process's peak resident memory when the report was
	// written, in bytes (Linux only, else 0).
	PeakRSS int64 `json:"peak_rss_bytes"`
}

func writeReport(path string, sums []migrate.AccountSummary) error {
	b, err := json.MarshalIndent(report{Accounts: sums, PeakRSS: peakRSS()}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
