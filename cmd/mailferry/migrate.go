package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/migrate"
)

type migrateOptions struct {
	endpointOptions
	outputOptions
	accountFlags
	selectionFlags
	metrics        metricsOptions
	checkpoint     string
	concurrency    int
	mailboxWorkers int
	streams        int
	batchSize      int
	dryRun         bool
	retryFailed    bool
	retries        int
}

func (a *app) newMigrateCommand() *cobra.Command {
	var o migrateOptions
	cmd := &cobra.Command{
		Use:   "migrate --from URL --to URL [--batch users.csv] --checkpoint FILE",
		Short: "Copy every mailbox of one account, or of a batch of accounts, to another server, resumably",
		Long: `migrate copies every selectable mailbox from --from to --to: the exact
message bytes, flags, keywords and internal dates. Special-use mailboxes
(Sent, Trash, ...) go to the destination mailbox with the same role whatever
it is called. Messages already on the destination are not copied again.
The source is only read (EXAMINE, BODY.PEEK): nothing on it changes.

Without --batch, the URLs name the user (imaps://alice@host). With --batch,
the URLs name only the servers and users.csv lists the account pairs:
  source_user,source_password,dest_user,dest_password
or Exchange Online's IMAP migration file:
  EmailAddress,UserName,Password
A password cell may be env:NAME, file:PATH or the password itself; it may
be empty when --from-admin / --to-admin log in for every user.

Every copied message is recorded in the checkpoint. Run the same command
again after a crash or Ctrl-C and it carries on with no duplicate and no
loss; run it again after it finished and it copies nothing. An account
that failed is skipped by later runs unless --retry-failed is given.

Passwords come from $MAILFERRY_FROM_PASSWORD and $MAILFERRY_TO_PASSWORD or
from --from-password-file / --to-password-file, never from a flag value.`,
		Example: `  MAILFERRY_FROM_PASSWORD=… MAILFERRY_TO_PASSWORD=… \
    mailferry migrate --from imaps://alice@old.example.com --to imaps://alice@new.example.com --checkpoint alice.db

  MAILFERRY_FROM_ADMIN_PASSWORD=… MAILFERRY_TO_ADMIN_PASSWORD=… \
    mailferry migrate --batch wave1.csv --from imaps://old.example.com --from-admin master \
      --to imaps://new.example.com --to-admin admin@example.com --checkpoint wave1.db --report wave1.csv.report.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runMigrate(cmd.Context(), &o)
		},
	}
	f := cmd.Flags()
	o.endpointOptions.addFlags(f)
	o.outputOptions.addFlags(f)
	f.StringVar(&o.checkpoint, "checkpoint", "", "checkpoint file recording the run (created with mode 0600 if missing)")
	f.StringVar(&o.batch, "batch", "", "CSV file of account pairs (see above)")
	addShardFlag(f, &o.shard)
	f.BoolVar(&o.strict, "strict", false, "with --batch: start nothing if any row is bad")
	f.IntVar(&o.concurrency, "concurrency", 4, "account pairs migrated at once")
	f.IntVar(&o.mailboxWorkers, "mailbox-workers", 4, "mailboxes copied at once per account (each uses one connection per side)")
	f.IntVar(&o.streams, "streams", 1, "connection pairs copying one mailbox with 1,000 or more messages to copy (1 keeps the source order of UIDs)")
	f.IntVar(&o.batchSize, "commit-every", 256, "messages committed to the checkpoint per transaction")
	// Its old name, beside --batch (the CSV file), said the wrong thing.
	f.IntVar(&o.batchSize, "batch-size", 256, "old name of --commit-every")
	f.MarkHidden("batch-size")
	f.BoolVar(&o.dryRun, "dry-run", false, "log in, list and count what would be copied; change and record nothing anywhere")
	f.BoolVar(&o.retryFailed, "retry-failed", false, "run again the accounts that failed in earlier runs and re-send the messages the destination refused")
	f.IntVar(&o.retries, "retries", 5, "retries per mailbox, and per login refused for load, with exponential backoff")
	o.selectionFlags.addFlags(f)
	addMetricsFlags(f, &o.metrics)
	return cmd
}

func (a *app) runMigrate(ctx context.Context, o *migrateOptions) error {
	fromPreset, err := lookupPreset(o.fromPreset)
	if err != nil {
		return err
	}
	o.warn = func(msg string) { a.log.Warn(msg) }
	sel, labels, err := o.selection(fromPreset)
	if err != nil {
		return err
	}
	env, err := a.setUp(ctx, runConfig{command: "migrate", need: bothSides, endpoint: &o.endpointOptions, accounts: &o.accountFlags,
		checkpoint: o.checkpoint, create: !o.dryRun, optional: o.dryRun, readOnly: o.dryRun,
		skipFailed: o.batch != "" && !o.retryFailed, dirsDryRun: o.dryRun})
	if err != nil {
		return err
	}
	defer env.close()
	src, dst, accts := env.src, env.dst, env.accts
	obs, err := a.startObservability(ctx, &o.metrics, "migrate", env.accts, env.src, env.dst)
	if err != nil {
		return err
	}
	defer obs.close()
	statusFile := o.checkpoint
	if o.dryRun {
		statusFile = ""
	}
	out, err := a.newOutput(&o.outputOptions, env, "migrate", statusFile)
	if err != nil {
		return err
	}
	opts := migrate.BatchOptions{
		Options: migrate.Options{
			MailboxWorkers: o.mailboxWorkers, Streams: o.streams, BatchSize: o.batchSize, DryRun: o.dryRun,
			RetryFailed: o.retryFailed, Run: env.runID, Logger: a.log, Events: obs.tee(out.event), Retries: o.retries,
			Select: sel, Labels: labels,
		},
		Concurrency:  o.concurrency,
		LoginRetries: o.retries,
		SkipFailed:   o.batch != "",
	}
	if o.retries == 0 {
		opts.Retries, opts.LoginRetries = -1, -1
	}
	a.limitMemory(o.concurrency)
	start := time.Now()
	sums := migrate.RunBatch(env.ctx, runnable(accts), env.ledger(o.dryRun), opts)
	out.close()
	sums = mergeInvalid(accts, sums)
	stopped := env.stopped()
	if stopped != nil {
		markStopped(sums)
	}

	outcome := "ok"
	failedN, warnN := 0, 0
	for _, s := range sums {
		switch s.Status {
		case migrate.StatusOK:
		case migrate.StatusWarn:
			warnN++
			if outcome == "ok" {
				outcome = "warn"
			}
		default:
			failedN++
			outcome = "failed"
		}
	}
	if ctx.Err() != nil {
		outcome = "interrupted"
	}
	out.summary(sums, o.batch != "", o.dryRun, time.Since(start))
	hosts := map[string]int{src.id(): src.host.Peak(), dst.id(): dst.host.Peak()}
	if err := out.writeReport(sums, hosts); err != nil {
		return err
	}
	if err := env.finish(outcome); err != nil {
		return err
	}
	switch {
	case stopped != nil:
		return stopped
	case ctx.Err() != nil:
		return ctx.Err()
	case migrate.RunError(sums) != nil:
		return migrate.RunError(sums)
	case failedN > 0:
		return &partialError{fmt.Sprintf("%d of %d account(s) did not finish cleanly; see the summary and `mailferry status --checkpoint %s`", failedN+warnN, len(sums), o.checkpoint)}
	case warnN > 0:
		// Everything read was copied, but what was read may not be what
		// the user has: that is not success.
		return &partialError{fmt.Sprintf("%d of %d account(s) end with a warning: a mailbox's message count is in doubt; see the summary and `mailferry status --checkpoint %s`", warnN, len(sums), o.checkpoint)}
	}
	return nil
}

// statusStopped is the status of an account a stopped run (see gate.go)
// did not finish: it stays as it was in the checkpoint.
const statusStopped = "stopped"

// markStopped marks the accounts the stopped run did not finish.
func markStopped(sums []migrate.AccountSummary) {
	for i := range sums {
		if s := &sums[i]; s.Status == migrate.StatusInterrupted {
			s.Status = statusStopped
			if strings.Contains(s.Error, context.Canceled.Error()) {
				s.Error = ""
			}
		}
	}
}
