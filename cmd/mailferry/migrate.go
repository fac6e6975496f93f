package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
)

type migrateOptions struct {
	endpointOptions
	outputOptions
	checkpoint     string
	batch          string
	strict         bool
	concurrency    int
	mailboxWorkers int
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
	f.BoolVar(&o.strict, "strict", false, "with --batch: start nothing if any row is bad")
	f.IntVar(&o.concurrency, "concurrency", 4, "account pairs migrated at once")
	f.IntVar(&o.mailboxWorkers, "mailbox-workers", 4, "mailboxes copied at once per account (each uses one connection per side)")
	f.IntVar(&o.batchSize, "batch-size", 256, "messages committed to the checkpoint per transaction")
	f.BoolVar(&o.dryRun, "dry-run", false, "log in, list and count what would be copied; change and record nothing anywhere")
	f.BoolVar(&o.retryFailed, "retry-failed", false, "run again the accounts that failed in earlier runs and re-send the messages the destination refused")
	f.IntVar(&o.retries, "retries", 5, "retries per mailbox, and per login refused for load, with exponential backoff")
	return cmd
}

// plannedAccount is an account pair ready to run, or a batch row that
// cannot run.
type plannedAccount struct {
	migrate.BatchAccount
	invalid string // why the row cannot run, "" if it can
	line    int    // batch file line, 0 without --batch
}

func (a *app) runMigrate(ctx context.Context, o *migrateOptions) error {
	src, dst, err := a.resolveSides(&o.endpointOptions, o.batch == "")
	if err != nil {
		return err
	}
	accts, err := a.planAccounts(o, src, dst)
	if err != nil {
		return err
	}
	ledger, closeLedger, err := openLedger(o.checkpoint, o.dryRun)
	if err != nil {
		return err
	}
	defer closeLedger()
	runID := uint32(0)
	if store, ok := ledger.(*checkpoint.Store); ok {
		if err := store.BindEndpoints(src.endpoint.String(), dst.endpoint.String()); err != nil {
			return err
		}
		if runID, err = store.StartRun("migrate", version); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
	}
	statusFile := o.checkpoint
	if o.dryRun {
		statusFile = ""
	}
	out, err := a.newOutput(&o.outputOptions, accts, statusFile)
	if err != nil {
		return err
	}
	var runnable []migrate.BatchAccount
	for _, p := range accts {
		if p.invalid == "" {
			runnable = append(runnable, p.BatchAccount)
		}
	}
	opts := migrate.BatchOptions{
		Options: migrate.Options{
			MailboxWorkers: o.mailboxWorkers, BatchSize: o.batchSize, DryRun: o.dryRun,
			RetryFailed: o.retryFailed, Run: runID, Logger: a.log, Events: out.event, Retries: o.retries,
		},
		Concurrency:  o.concurrency,
		LoginRetries: o.retries,
		SkipFailed:   o.batch != "",
	}
	if o.retries == 0 {
		opts.Retries = -1
	}
	start := time.Now()
	sums := migrate.RunBatch(ctx, runnable, ledger, opts)
	out.close()
	sums = mergeInvalid(accts, sums)

	outcome := "ok"
	failedN := 0
	for _, s := range sums {
		if s.Status != migrate.StatusOK {
			failedN++
			outcome = "failed"
		}
	}
	if ctx.Err() != nil {
		outcome = "interrupted"
	}
	out.summary(sums, o.batch != "", o.dryRun, time.Since(start))
	hosts := map[string]int{src.endpoint.Addr(): src.host.Peak(), dst.endpoint.Addr(): dst.host.Peak()}
	if err := out.writeReport(sums, hosts); err != nil {
		return err
	}
	if store, ok := ledger.(*checkpoint.Store); ok {
		if err := store.FinishRun(runID, outcome); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case migrate.RunError(sums) != nil:
		return migrate.RunError(sums)
	case failedN > 0:
		return &partialError{fmt.Sprintf("%d of %d account(s) did not finish cleanly; see the summary and `mailferry status --checkpoint %s`", failedN, len(sums), o.checkpoint)}
	}
	return nil
}

// openLedger opens the checkpoint. A dry run writes nothing: it reads an
// existing checkpoint read-only, or none at all.
func openLedger(path string, dryRun bool) (migrate.Ledger, func(), error) {
	if !dryRun {
		s, err := openCheckpoint(path)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	if path == "" {
		return migrate.DryRun(nil), func() {}, nil
	}
	s, err := checkpoint.Open(path, checkpoint.Options{ReadOnly: true})
	if errors.Is(err, fs.ErrNotExist) {
		return migrate.DryRun(nil), func() {}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return migrate.DryRun(s), func() { s.Close() }, nil
}

// planAccounts builds the account pairs from the URLs or the batch file.
func (a *app) planAccounts(o *migrateOptions, src, dst *side) ([]plannedAccount, error) {
	if o.batch == "" {
		if src.endpoint.User == "" || dst.endpoint.User == "" {
			return nil, usagef("--from and --to must name the user (imaps://user@host), or use --batch")
		}
		return []plannedAccount{{BatchAccount: a.batchAccount(src, dst, src.endpoint.User, dst.endpoint.User, src.password, dst.password)}}, nil
	}
	if src.endpoint.User != "" || dst.endpoint.User != "" {
		return nil, usagef("with --batch, --from and --to name only the servers (imaps://host); users come from %s", o.batch)
	}
	f, err := os.Open(o.batch)
	if err != nil {
		return nil, usagef("--batch: %v", err)
	}
	defer f.Close()
	rows, bad, err := parseBatch(o.batch, f, a.getenv, readPasswordFile)
	if err != nil {
		return nil, &usageError{err}
	}
	var out []plannedAccount
	for _, b := range bad {
		a.log.Error("bad batch row", "file", o.batch, "line", b.Line, "err", b.Error())
		out = append(out, plannedAccount{line: b.Line, invalid: b.Error()})
	}
	for _, r := range rows {
		p := plannedAccount{line: r.Line, BatchAccount: a.batchAccount(src, dst, r.SourceUser, r.DestUser, r.SourcePassword, r.DestPassword)}
		switch {
		case src.admin == "" && r.SourcePassword == "":
			p.invalid = fmt.Sprintf("%s line %d: no source password and no --from-admin", o.batch, r.Line)
		case dst.admin == "" && r.DestPassword == "":
			p.invalid = fmt.Sprintf("%s line %d: no destination password and no --to-admin", o.batch, r.Line)
		}
		if p.invalid != "" {
			a.log.Error("bad batch row", "file", o.batch, "line", r.Line, "err", p.invalid)
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(x, y plannedAccount) int { return x.line - y.line })
	if o.strict {
		for _, p := range out {
			if p.invalid != "" {
				return nil, usagef("--strict: %s has bad rows (see above); nothing was started", o.batch)
			}
		}
	}
	if len(out) == 0 {
		return nil, usagef("%s lists no account", o.batch)
	}
	return out, nil
}

// batchAccount binds one account pair to the servers. With an admin, the
// admin's password logs in for every user and the row's is not used.
func (a *app) batchAccount(src, dst *side, srcUser, dstUser string, srcPass, dstPass imap.Secret) migrate.BatchAccount {
	if src.admin != "" {
		srcPass = src.password
	}
	if dst.admin != "" {
		dstPass = dst.password
	}
	return migrate.BatchAccount{
		ID: checkpoint.AccountID(srcUser, dstUser), SourceUser: srcUser, DestUser: dstUser,
		Open: func(ctx context.Context) (providers.Store, providers.Store, error) {
			from, err := imap.Open(ctx, src.config(srcUser, srcPass))
			if err != nil {
				return nil, nil, fmt.Errorf("source: %w", err)
			}
			to, err := imap.Open(ctx, dst.config(dstUser, dstPass))
			if err != nil {
				from.Close()
				return nil, nil, fmt.Errorf("destination: %w", err)
			}
			return from, to, nil
		},
	}
}

// mergeInvalid puts the rows that could not run back among the summaries,
// in batch file order.
func mergeInvalid(accts []plannedAccount, sums []migrate.AccountSummary) []migrate.AccountSummary {
	out := make([]migrate.AccountSummary, 0, len(accts))
	i := 0
	for _, p := range accts {
		if p.invalid != "" {
			if p.SourceUser == "" {
				p.SourceUser = fmt.Sprintf("(line %d)", p.line)
			}
			out = append(out, migrate.AccountSummary{Account: p.ID, Source: p.SourceUser, Dest: p.DestUser,
				Status: migrate.StatusFailed, Error: p.invalid, Class: providers.ClassAccount.String()})
			continue
		}
		out = append(out, sums[i])
		i++
	}
	return out
}
