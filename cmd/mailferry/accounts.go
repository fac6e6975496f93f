package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// accountFlags choose the account pairs a command works on.
type accountFlags struct {
	batch  string
	strict bool
	user   string // verify, undo, reverse: one account of the checkpoint
	shard  string // --shard i/N
}

// shardFlags reads --shard and applies its share of the per-host cap to o,
// before the servers are resolved.
//
// With shards, --max-connections-per-host is the budget of each server for
// the whole move, and this shard takes its share. It must be given: the
// shards run apart and cannot see each other's connections, so without a
// budget N shards would open N times what one run does.
func (f *accountFlags) shardFlags(o *endpointOptions) (shard, error) {
	sh, err := parseShard(f.shard)
	if err != nil || sh.count <= 1 {
		return sh, err
	}
	total := o.maxConnectionsPerHost
	switch {
	case total <= 0:
		return sh, usagef("--shard %s: give --max-connections-per-host, the connections each server allows the whole move (all %d shards together); each shard then takes 1/%d of it", f.shard, sh.count, sh.count)
	case total < sh.count:
		return sh, usagef("--shard %s: --max-connections-per-host %d is less than one connection per shard; allow at least %d", f.shard, total, sh.count)
	}
	o.maxConnectionsPerHost = sh.capShare(total)
	o.hostCapOf = fmt.Sprintf(" (this shard's share of --max-connections-per-host %d over %d shards)", total, sh.count)
	return sh, nil
}

// plannedAccount is an account pair ready to run, or a batch row that
// cannot run.
type plannedAccount struct {
	migrate.BatchAccount
	invalid string // why the row cannot run, "" if it can
	refused bool   // it could be read, but mailferry refuses it (see refuseSameAccount)
	line    int    // batch file line, 0 without --batch
}

// selectAccounts builds the account pairs: from the batch file; else from
// the users in the URLs; else, for commands working on what a checkpoint
// recorded, from the checkpoint (every account, or those of --user).
func (a *app) selectAccounts(f *accountFlags, src, dst *side, recorded *checkpoint.Store) ([]plannedAccount, error) {
	sh, err := parseShard(f.shard)
	if err != nil {
		return nil, err
	}
	all, err := a.allAccounts(f, src, dst, recorded)
	if err != nil || sh.count <= 1 {
		return all, err
	}
	var out []plannedAccount
	for _, p := range all {
		// A bad row without a user cannot be hashed: shard 0 reports it.
		if sh.owns(p.SourceUser) && (p.SourceUser != "" || sh.index == 0) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, usagef("shard %d/%d has no account (of %d)", sh.index, sh.count, len(all))
	}
	return out, nil
}

func (a *app) allAccounts(f *accountFlags, src, dst *side, recorded *checkpoint.Store) ([]plannedAccount, error) {
	switch {
	case f.batch != "":
		if src.user() != "" || dst.user() != "" {
			return nil, usagef("with --batch, --from and --to name only the servers (imaps://host); users come from %s", f.batch)
		}
		return a.batchAccounts(f, src, dst)
	case singleAccount(src, dst):
		su, du := accountUsers(src, dst)
		return []plannedAccount{{BatchAccount: a.batchAccount(src, dst, su, du, src.password, dst.password)}}, nil
	case recorded == nil:
		return nil, usagef("--from and --to must name the user (imaps://user@host), or use --batch")
	}
	var out []plannedAccount
	err := recorded.Accounts(func(id string, acc ledger.Account) error {
		if ledger.IsReverseAccount(id) {
			return nil // the way back of a pair, not a pair of its own
		}
		if f.user != "" && !strings.EqualFold(f.user, acc.Source) && !strings.EqualFold(f.user, acc.Dest) {
			return nil
		}
		out = append(out, plannedAccount{BatchAccount: a.batchAccount(src, dst, acc.Source, acc.Dest, src.password, dst.password)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case len(out) == 0 && f.user != "":
		return nil, usagef("the checkpoint records no account of user %q", f.user)
	case len(out) == 0:
		return nil, usagef("the checkpoint records no account")
	case len(out) > 1 && (src.admin == "" && src.password != "" || dst.admin == "" && dst.password != ""):
		return nil, usagef("the checkpoint records %d accounts: name one with --user, give --batch with their passwords, or log in with --from-admin/--to-admin", len(out))
	}
	return out, nil
}

// singleAccount reports whether the URLs name one account pair: both name
// a user, or one does and the other is a directory (mbox, maildir).
func singleAccount(src, dst *side) bool {
	return (src.user() != "" || src.local()) && (dst.user() != "" || dst.local()) && (src.user() != "" || dst.user() != "")
}

// accountUsers names the single account pair; a directory side (mbox,
// maildir) takes the other side's user.
func accountUsers(src, dst *side) (string, string) {
	su, du := src.user(), dst.user()
	if su == "" {
		su = du
	}
	if du == "" {
		du = su
	}
	return su, du
}

// batchAccounts reads the batch file. Bad rows come back as accounts that
// cannot run, so that they show in the summary with their line numbers.
func (a *app) batchAccounts(f *accountFlags, src, dst *side) ([]plannedAccount, error) {
	file, err := os.Open(f.batch)
	if err != nil {
		return nil, usagef("--batch: %v", err)
	}
	defer file.Close()
	rows, bad, err := parseBatch(f.batch, file, a.getenv, readPasswordFile)
	if err != nil {
		return nil, err
	}
	var out []plannedAccount
	for _, b := range bad {
		a.log.Error("bad batch row", "file", f.batch, "line", b.Line, "err", b.Error())
		out = append(out, plannedAccount{line: b.Line, invalid: b.Error()})
	}
	for _, r := range rows {
		p := plannedAccount{line: r.Line, BatchAccount: a.batchAccount(src, dst, r.SourceUser, r.DestUser, r.SourcePassword, r.DestPassword)}
		switch {
		case src.needed && !src.hasLogin() && r.SourcePassword == "":
			p.invalid = fmt.Sprintf("%s line %d: no source password, no --from-admin and no OAuth token", f.batch, r.Line)
		case dst.needed && !dst.hasLogin() && r.DestPassword == "":
			p.invalid = fmt.Sprintf("%s line %d: no destination password, no --to-admin and no OAuth token", f.batch, r.Line)
		}
		if p.invalid != "" {
			a.log.Error("bad batch row", "file", f.batch, "line", r.Line, "err", p.invalid)
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(x, y plannedAccount) int { return x.line - y.line })
	if f.strict {
		for _, p := range out {
			if p.invalid != "" {
				return nil, usagef("--strict: %s has bad rows (see above); nothing was started", f.batch)
			}
		}
	}
	if len(out) == 0 {
		return nil, usagef("%s lists no account", f.batch)
	}
	return out, nil
}

// batchAccount binds one account pair to the servers. With an admin, the
// admin's password logs in for every user and the row's is not used.
func (a *app) batchAccount(src, dst *side, srcUser, dstUser string, srcPass, dstPass providers.Secret) migrate.BatchAccount {
	if src.admin != "" {
		srcPass = src.password
	}
	if dst.admin != "" {
		dstPass = dst.password
	}
	return migrate.BatchAccount{
		ID: ledger.AccountID(srcUser, dstUser), SourceUser: srcUser, DestUser: dstUser,
		OpenSource: func(ctx context.Context) (providers.Store, error) { return src.open(ctx, srcUser, srcPass) },
		OpenDest:   func(ctx context.Context) (providers.Store, error) { return dst.open(ctx, dstUser, dstPass) },
	}
}

// runnable returns the accounts that can run.
func runnable(accts []plannedAccount) []migrate.BatchAccount {
	var out []migrate.BatchAccount
	for _, p := range accts {
		if p.invalid == "" {
			out = append(out, p.BatchAccount)
		}
	}
	return out
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
