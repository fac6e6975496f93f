package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// runConfig is what a command asks of the run set-up every command that
// logs in to servers shares: migrate, preflight, verify, undo, reverse.
type runConfig struct {
	command  string
	need     sides
	endpoint *endpointOptions
	accounts *accountFlags
	// checkpoint is the file; create lets migrate make a new one, and
	// optional lets a command run without any (a dry run, preflight).
	checkpoint       string
	create, optional bool
	// readOnly writes nothing to the checkpoint: no endpoints, no run.
	readOnly bool
	// skipFailed: accounts failed in earlier runs are not logged in to
	// (migrate's batches, unless --retry-failed).
	skipFailed bool
	// dirsDryRun makes mbox and maildir sides write nothing.
	dirsDryRun bool
	// check, if set, may refuse the run before any login, with what the
	// checkpoint records (nil when there is none yet).
	check func(recorded *checkpoint.Store, accts []plannedAccount) error
}

// runEnv is a command's run, set up: both sides resolved, the accounts
// chosen and checked, one login per side made, the checkpoint open and
// bound to the servers.
type runEnv struct {
	src, dst *side
	accts    []plannedAccount
	store    *checkpoint.Store // nil when there is no checkpoint (dry run)
	runID    uint32
	// ctx is the run's: cancelled, with an *endpointError as cause, when
	// a login fails for a reason that is the server's.
	ctx     context.Context
	cancel  context.CancelCauseFunc
	gate    *gate
	started time.Time
	// bound says the checkpoint is bound to the run's servers: once a
	// login succeeded on each side, in the probe or later in the run.
	bound bool
}

// setUp prepares a run. Nothing is written before a login succeeded on
// every side that needs one: a run with a wrong host, port, certificate
// or admin password leaves no checkpoint behind, and binds none to its
// servers.
func (a *app) setUp(ctx context.Context, rc runConfig) (*runEnv, error) {
	e := &runEnv{started: time.Now()}
	if _, err := rc.accounts.shardFlags(rc.endpoint); err != nil {
		return nil, err
	}
	var err error
	if e.src, e.dst, err = a.resolveSides(rc.endpoint, rc.accounts.batch == "", rc.need); err != nil {
		return nil, err
	}
	e.src.dryRun, e.dst.dryRun = rc.dirsDryRun, rc.dirsDryRun
	if rc.checkpoint == "" && !rc.optional {
		return nil, usagef("--checkpoint FILE is required: it records what was copied, so the run can resume and be undone")
	}
	exists, err := checkpointExists(rc.checkpoint, rc.create || rc.optional)
	if err != nil {
		return nil, err
	}
	// Read what the checkpoint knows before logging in: its servers, its
	// accounts, which of them failed before.
	var recorded *checkpoint.Store
	if exists {
		if recorded, err = checkpoint.Open(rc.checkpoint, checkpoint.Options{ReadOnly: true, LockTimeout: time.Second}); err != nil {
			return nil, err
		}
		defer func() {
			if recorded != nil {
				recorded.Close()
			}
		}()
		if err := sameEndpoints(recorded, e.src.id(), e.dst.id()); err != nil {
			return nil, err
		}
	}
	fromCheckpoint := recorded
	if rc.create {
		fromCheckpoint = nil // migrate's accounts are the batch's or the URLs'
	}
	if e.accts, err = a.selectAccounts(rc.accounts, e.src, e.dst, fromCheckpoint); err != nil {
		return nil, err
	}
	if err := refuseSameAccount(ctx, e.src, e.dst, e.accts); err != nil {
		return nil, err
	}
	if rc.check != nil {
		if err := rc.check(recorded, e.accts); err != nil {
			return nil, err
		}
	}
	candidates := runnablePlanned(e.accts)
	if rc.skipFailed && recorded != nil {
		candidates = slices.DeleteFunc(candidates, func(p plannedAccount) bool {
			acc, ok, _ := recorded.Account(p.ID)
			return ok && acc.State == ledger.AccountFailed
		})
	}
	// The probe: the first logins, alone, before anything is written.
	e.ctx, e.cancel = context.WithCancelCause(ctx)
	e.gate = newGate(e.cancel)
	// Both sides at once: a re-run with nothing new is little more than
	// its logins, and the two servers are apart.
	var dstErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, dstErr = e.gate.probe(ctx, e.dst, candidates, func(p plannedAccount) (providers.Store, error) { return p.OpenDest(ctx) })
	})
	_, err = e.gate.probe(ctx, e.src, candidates, func(p plannedAccount) (providers.Store, error) { return p.OpenSource(ctx) })
	wg.Wait()
	if err = cmp.Or(err, dstErr); err != nil {
		e.gate.close()
		e.cancel(nil)
		return nil, err
	}
	e.gate.wrap(e.accts, e.src, e.dst)
	if recorded != nil {
		recorded.Close()
		recorded = nil
	}
	switch {
	case rc.checkpoint == "" || rc.readOnly && !exists:
	case rc.readOnly:
		e.store, err = checkpoint.Open(rc.checkpoint, checkpoint.Options{ReadOnly: true, LockTimeout: time.Second})
	default:
		e.store, err = checkpoint.Open(rc.checkpoint, checkpoint.Options{})
	}
	if err != nil {
		e.close()
		return nil, err
	}
	if e.store != nil && !rc.readOnly {
		if err := e.bind(len(candidates) > 0); err != nil {
			e.close()
			return nil, err
		}
		if e.runID, err = e.store.StartRun(rc.command, version); err != nil {
			e.close()
			return nil, fmt.Errorf("write checkpoint: %w", err)
		}
	}
	return e, nil
}

// bind binds the checkpoint to the run's servers once a login succeeded
// on each side; a run that never logged in binds it to nothing, so that
// a mistyped server does not stay in the checkpoint.
func (e *runEnv) bind(tried bool) error {
	if e.bound || e.store == nil || !tried || !e.gate.succeeded(e.src) || !e.gate.succeeded(e.dst) {
		return nil
	}
	if err := e.store.BindEndpoints(e.src.id(), e.dst.id()); err != nil {
		return err
	}
	e.bound = true
	return nil
}

// ledger is the run's ledger; a dry run's drops every write.
func (e *runEnv) ledger(dryRun bool) ledger.Ledger {
	switch {
	case !dryRun:
		return e.store
	case e.store == nil:
		return migrate.DryRun(nil)
	}
	return migrate.DryRun(e.store)
}

// stopped is what stopped the run, as the command's error, if anything did.
func (e *runEnv) stopped() error {
	if s := e.gate.stoppedBy(); s != nil {
		return s
	}
	return nil
}

// finish records how the run ended, unless it wrote nothing.
func (e *runEnv) finish(outcome string) error {
	if e.store == nil || e.runID == 0 {
		return nil
	}
	if e.gate.stoppedBy() != nil {
		outcome = "stopped"
	}
	// The probe may not have logged in (a busy server) where the run did.
	if err := e.bind(true); err != nil {
		return err
	}
	if err := e.store.FinishRun(e.runID, outcome); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

func (e *runEnv) close() {
	e.gate.close()
	e.cancel(nil)
	if e.store != nil {
		e.store.Close()
	}
}

// checkpointExists checks the --checkpoint file. Only migrate creates one:
// for every other command a missing file is a mistyped path, and creating
// it would report an empty checkpoint instead.
func checkpointExists(path string, mayCreate bool) (bool, error) {
	if path == "" {
		if mayCreate {
			return false, nil
		}
		return false, usagef("--checkpoint FILE is required: it records what was copied")
	}
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist) && mayCreate:
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, usagef("checkpoint %s does not exist (is the path right?); only migrate creates one, and nothing was created", path)
	}
	return false, usagef("checkpoint %s: %v", path, err)
}

// openExistingCheckpoint opens a checkpoint a command reads or updates but
// must not create.
func openExistingCheckpoint(path string, opts checkpoint.Options) (*checkpoint.Store, error) {
	if _, err := checkpointExists(path, false); err != nil {
		return nil, err
	}
	return checkpoint.Open(path, opts)
}

// sameEndpoints refuses, before any login, a run whose servers are not the
// checkpoint's.
func sameEndpoints(s *checkpoint.Store, from, to string) error {
	oldFrom, oldTo, err := s.Endpoints()
	if err != nil || oldFrom == "" && oldTo == "" {
		return err
	}
	if oldFrom != from || oldTo != to {
		return fmt.Errorf("%w: checkpoint is for %s -> %s, this run is %s -> %s", checkpoint.ErrEndpointsDiffer, oldFrom, oldTo, from, to)
	}
	return nil
}

// runnablePlanned returns the planned accounts that can run.
func runnablePlanned(accts []plannedAccount) []plannedAccount {
	var out []plannedAccount
	for _, p := range accts {
		if p.invalid == "" {
			out = append(out, p)
		}
	}
	return out
}

// refuseSameAccount refuses to move an account onto itself: the same
// server (a host resolving to a shared address, the same port) and the
// same user on both sides. One account pair so named is a usage error; in
// a batch such rows cannot run, and if every row is one, nothing can.
func refuseSameAccount(ctx context.Context, src, dst *side, accts []plannedAccount) error {
	same, how := sameServer(ctx, src, dst)
	if !same {
		return nil
	}
	n, bad := 0, 0
	for i := range accts {
		p := &accts[i]
		if p.invalid != "" {
			continue
		}
		n++
		if strings.EqualFold(p.SourceUser, p.DestUser) {
			bad++
			p.refused = true
			p.invalid = fmt.Sprintf("%s is the same account on both sides (%s): moving it onto itself would find every message a duplicate", p.SourceUser, how)
			if p.line > 0 {
				p.invalid = fmt.Sprintf("line %d: %s", p.line, p.invalid)
			}
		}
	}
	switch {
	case bad == 0:
		return nil
	case n == 1 && len(accts) == 1:
		return usagef("%s", accts[0].invalid)
	case bad == n:
		return usagef("every account pair is the same account on both sides (%s): --from and --to name the same server", how)
	}
	return nil
}

// sameServer reports whether both sides are the same server: the same
// directory, or the same port on hosts that share an address.
func sameServer(ctx context.Context, src, dst *side) (bool, string) {
	if src.local() || dst.local() {
		a, aok := src.ep.(providers.Local)
		b, bok := dst.ep.(providers.Local)
		if !aok || !bok || a.Root() != b.Root() || src.reg.Name != dst.reg.Name {
			return false, ""
		}
		return true, src.reg.Name + ":" + a.Root()
	}
	a, aok := src.ep.(providers.Server)
	b, bok := dst.ep.(providers.Server)
	if !aok || !bok || a.Port() != b.Port() {
		return false, ""
	}
	if strings.EqualFold(a.Host(), b.Host()) {
		return true, a.Addr()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A name that does not resolve is the probe's to report.
	ipsA, errA := net.DefaultResolver.LookupHost(ctx, a.Host())
	ipsB, errB := net.DefaultResolver.LookupHost(ctx, b.Host())
	if errA != nil || errB != nil {
		return false, ""
	}
	for _, x := range ipsA {
		if slices.Contains(ipsB, x) {
			return true, fmt.Sprintf("%s and %s are both %s", a.Addr(), b.Addr(), net.JoinHostPort(x, fmt.Sprint(a.Port())))
		}
	}
	return false, ""
}
