package migrate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// BatchAccount is one account pair of a batch, not yet logged in.
type BatchAccount struct {
	ID         string // ledger key, see ledger.AccountID
	SourceUser string
	DestUser   string
	// OpenSource and OpenDest log in to each side. The caller closes what
	// they return.
	OpenSource func(ctx context.Context) (providers.Store, error)
	OpenDest   func(ctx context.Context) (providers.Store, error)
}

// openBoth logs in to both sides.
func (a BatchAccount) openBoth(ctx context.Context) (src, dst providers.Store, err error) {
	if src, err = a.OpenSource(ctx); err != nil {
		return nil, nil, fmt.Errorf("source: %w", err)
	}
	if dst, err = a.OpenDest(ctx); err != nil {
		src.Close()
		return nil, nil, fmt.Errorf("destination: %w", err)
	}
	return src, dst, nil
}

// BatchOptions tunes a batch run.
type BatchOptions struct {
	Options
	// Concurrency is how many account pairs run at once (default 4).
	Concurrency int
	// LoginRetries is how often a login refused for load (throttling, too
	// many connections, BYE) is retried before the account fails: 0 means
	// 5, negative means never; the backoff is Options.Backoff, doubled
	// each time.
	LoginRetries int
	// SkipFailed skips accounts that failed in an earlier run unless
	// RetryFailed is set, so a bad row in a nightly batch does not hammer
	// a server (or lock an account) night after night.
	SkipFailed bool
}

// Account outcomes in AccountSummary.Status.
const (
	StatusOK          = "ok"
	StatusWarn        = "warn" // every message settled, but a mailbox's message count is in doubt (MailboxSummary.Warn)
	StatusFailed      = "failed"
	StatusSkipped     = "skipped" // failed in an earlier run; --retry-failed runs it again
	StatusInterrupted = "interrupted"
)

// RunBatch migrates the accounts, Concurrency at a time. One account's
// failure never stops the others: each ends with a summary, in the order of
// accts.
func RunBatch(ctx context.Context, accts []BatchAccount, lg ledger.Ledger, opts BatchOptions) []AccountSummary {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.LoginRetries == 0 {
		opts.LoginRetries = 5
	}
	opts.Options = opts.Options.withDefaults()
	return forEachAccount(ctx, accts, opts.Concurrency, func(a BatchAccount) AccountSummary {
		return runAccount(ctx, a, lg, opts)
	}, func(a BatchAccount) AccountSummary {
		// Not started: nothing happened to it, and the next run starts it.
		return AccountSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser, Status: StatusInterrupted}
	})
}

// forEachPair logs in to both sides of each account, n at a time, and runs
// fn on them; failed gives the result of an account that could not log in.
// It reports each account's start and end, with its result, to the
// events of bopts, as migrate does.
func forEachPair[T any](ctx context.Context, accts []BatchAccount, n int, bopts BatchOptions,
	fn func(a BatchAccount, src, dst providers.Store) T, failed, notStarted func(a BatchAccount, err error) T) []T {
	return forEachAccount(ctx, accts, n, func(a BatchAccount) T {
		bopts.emit(Event{Kind: EventAccountStart, ID: a.ID})
		var src, dst providers.Store
		err := retryLogin(ctx, a, bopts, func() (err error) {
			src, dst, err = a.openBoth(ctx)
			return err
		})
		var res T
		if err != nil {
			res = failed(a, err)
		} else {
			res = fn(a, src, dst)
			src.Close()
			dst.Close()
		}
		bopts.emit(Event{Kind: EventAccountDone, ID: a.ID, Result: &res, Err: err})
		return res
	}, func(a BatchAccount) T { return notStarted(a, nil) })
}

// forEachAccount runs fn for each account, n at a time, and returns the
// results in the order of accts. Once ctx is done no account is started;
// those get notStarted's result.
func forEachAccount[T any](ctx context.Context, accts []BatchAccount, n int, fn, notStarted func(BatchAccount) T) []T {
	out := make([]T, len(accts))
	sem := make(chan struct{}, max(n, 1))
	var wg sync.WaitGroup
	for i, a := range accts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			out[i] = notStarted(a)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = fn(a)
		}()
	}
	wg.Wait()
	return out
}

func runAccount(ctx context.Context, a BatchAccount, lg ledger.Ledger, opts BatchOptions) AccountSummary {
	start := time.Now()
	sum := AccountSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser}
	prev, known, err := lg.Account(a.ID)
	if err != nil {
		return failed(sum, providers.WithClass(providers.ClassRun, err), start)
	}
	if known && prev.State == ledger.AccountFailed && opts.SkipFailed && !opts.RetryFailed {
		sum.Status = StatusSkipped
		sum.Error = fmt.Sprintf("failed in run %d (%s); --retry-failed runs it again", prev.Run, prev.Reason)
		opts.emit(Event{Kind: EventAccountDone, ID: a.ID, Account: &sum})
		return sum
	}
	opts.emit(Event{Kind: EventAccountStart, ID: a.ID})
	var src, dst providers.Store
	err = retryLogin(ctx, a, opts, func() (err error) {
		src, dst, err = a.openBoth(ctx)
		return err
	})
	if err != nil {
		sum = failed(sum, err, start)
		if !opts.DryRun && ctx.Err() == nil {
			if perr := setAccountState(lg, a, ledger.AccountFailed, sum.Error, opts.Run); perr != nil {
				sum = failed(sum, perr, start)
			}
		}
		if ctx.Err() != nil {
			sum.Status = StatusInterrupted
		}
		opts.emit(Event{Kind: EventAccountDone, ID: a.ID, Account: &sum, Err: err})
		return sum
	}
	defer src.Close()
	defer dst.Close()
	sum, err = Migrate(ctx, Account{ID: a.ID, SourceUser: a.SourceUser, DestUser: a.DestUser, Source: src, Dest: dst}, lg, opts.Options)
	sum.Duration = time.Since(start) // the logins are part of the account's time
	sum.Warnings, sum.WarningCount = storeWarnings(src, dst)
	switch {
	case ctx.Err() != nil:
		sum.Status = StatusInterrupted
	case sum.OK(), opts.DryRun && !sum.hasErrors():
		sum.Status = okOrWarn(&sum)
	default:
		sum.Status = StatusFailed
	}
	opts.emit(Event{Kind: EventAccountDone, ID: a.ID, Account: &sum, Err: err})
	return sum
}

// storeWarnings collects what the stores of an account could not read as
// expected, once the account ran: the first maxWarnings, and how many.
func storeWarnings(src, dst providers.Store) (list []string, n int) {
	for _, side := range []struct {
		name string
		st   providers.Store
	}{{"source", src}, {"destination", dst}} {
		w, ok := providers.As[providers.Warner](side.st)
		if !ok {
			continue
		}
		for _, s := range w.Warnings() {
			if n++; len(list) < maxWarnings {
				list = append(list, side.name+": "+s)
			}
		}
	}
	return list, n
}

func failed(sum AccountSummary, err error, start time.Time) AccountSummary {
	sum.Status, sum.Error, sum.Class, sum.Duration = StatusFailed, err.Error(), classString(err), time.Since(start)
	return sum
}

// retryLogin runs login until it succeeds, fails for a reason other than
// load, or the retries are used up, paced by the one retry policy
// (providers.Pacer: the server's hint honoured, jitter).
func retryLogin(ctx context.Context, a BatchAccount, opts BatchOptions, login func() error) error {
	p := opts.pacer()
	p.Retries = opts.LoginRetries
	p.OnRetry = func(attempt int, wait time.Duration, err error) {
		opts.Logger.Warn("login refused for load; retrying", "account", a.SourceUser, "attempt", attempt, "wait", wait, "err", err)
		opts.emit(Event{Kind: EventRetry, ID: a.ID, Count: attempt, Err: err})
	}
	return p.Call(ctx, func() (bool, error) {
		err := login()
		// A server that cannot be reached is not busy: waiting does not help.
		return providers.ShouldRetry(ctx, err) && !errors.Is(err, providers.ErrUnreachable), err
	})
}

func setAccountState(lg ledger.Ledger, a BatchAccount, state, reason string, run uint32) error {
	acc, _, err := lg.Account(a.ID)
	if err != nil {
		return providers.WithClass(providers.ClassRun, err)
	}
	acc.Source, acc.Dest, acc.State, acc.Reason, acc.Run = a.SourceUser, a.DestUser, state, reason, run
	if err := lg.PutAccount(a.ID, acc); err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
	}
	return nil
}

// RunError returns the error that must stop the whole run, if any account
// ended with one (the checkpoint could not be written).
func RunError(sums []AccountSummary) error {
	for _, s := range sums {
		if s.Class == providers.ClassRun.String() {
			return errors.New(s.Error)
		}
	}
	return nil
}
