package migrate

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/providers"
)

// ReverseOptions tunes Reverse. Options tune the copy back.
type ReverseOptions struct {
	Options
	// PropagateDeletes removes from the source the originals of copies the
	// user deleted or moved away on the destination. Without Execute it
	// only reports them.
	PropagateDeletes bool
	Execute          bool
}

// ReverseSummary is the outcome of reverse for one account pair.
type ReverseSummary struct {
	Account string `json:"account"`
	Source  string `json:"source_user"`
	Dest    string `json:"dest_user"`
	// Copied is the copy back: per destination mailbox, the messages that
	// were not copies of source mail, carried to the source.
	Copied AccountSummary `json:"copied_back"`
	// FlagsCarried counts source messages whose flags were set to those of
	// their copy on the destination.
	FlagsCarried int `json:"flags_carried_back"`
	// Moved and Deleted count copies gone from where migrate put them:
	// found in another destination mailbox (moved), or nowhere (deleted).
	Moved   []Problem `json:"moved,omitempty"`
	Deleted []Problem `json:"deleted,omitempty"`
	// RemovedFromSource counts originals removed from the source because
	// of those (only with PropagateDeletes and Execute).
	RemovedFromSource int           `json:"removed_from_source"`
	Duration          time.Duration `json:"duration_ns"`
	Status            string        `json:"status"`
	Error             string        `json:"error,omitempty"`
}

// ReverseID is the ledger key of the way back of an account pair: a run of
// its own, so it resumes, deduplicates and can be undone like migrate.
func ReverseID(account string) string { return "reverse\x00" + account }

// Reverse carries back to the source what changed on the destination since
// the migration: messages that are not copies of source mail (new mail, mail
// the user created or filed, new folders) are copied to the source, with
// the same ledger machinery as migrate, so reverse resumes and never
// duplicates; flag and keyword changes on migrated messages are set on
// their originals; copies moved or deleted on the destination are reported,
// and their originals removed from the source only with PropagateDeletes
// and Execute. Mail that was on the destination before the migration stays
// there. The orientation stays that of the migration: src is the original
// source, dst the destination.
func Reverse(ctx context.Context, a BatchAccount, src, dst providers.Store, ledger Ledger, opts ReverseOptions) (ReverseSummary, error) {
	start := time.Now()
	sum := ReverseSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser}
	finish := func(err error) (ReverseSummary, error) {
		sum.Duration = time.Since(start)
		sum.Status = StatusOK
		if err != nil {
			sum.Error = err.Error()
		}
		if err != nil || sum.Copied.Status != StatusOK {
			sum.Status = StatusFailed
		}
		if ctx.Err() != nil {
			sum.Status = StatusInterrupted
		}
		return sum, err
	}
	fwd, err := readForward(ledger, a.ID)
	if err != nil {
		return finish(err)
	}
	// Where each destination mailbox's mail goes back to.
	names := map[string]string{}
	for _, m := range fwd {
		if _, seen := names[m.rec.Dest]; !seen {
			names[m.rec.Dest] = m.rec.Source
		}
	}
	back := opts.Options
	back.Names = names
	back.Exclude = func(mailbox string, validity uint32) (func(providers.UID) bool, error) {
		return forwardClaims(fwd, mailbox, validity), nil
	}
	// Flags of what is copied back follow the destination on re-runs too.
	back.NoFlagSync = false
	sum.Copied, err = Migrate(ctx, Account{ID: ReverseID(a.ID), SourceUser: a.DestUser, DestUser: a.SourceUser, Source: dst, Dest: src}, ledger, back)
	if err != nil {
		return finish(err)
	}
	if err := carryFlags(ctx, src, dst, fwd, &sum, opts); err != nil {
		return finish(err)
	}
	if err := findGone(ctx, dst, fwd, &sum); err != nil {
		return finish(err)
	}
	if opts.PropagateDeletes && opts.Execute {
		if err := removeOriginals(ctx, src, fwd, &sum); err != nil {
			return finish(err)
		}
	}
	return finish(nil)
}

// forwardMailbox is one mailbox of the migration with its records.
type forwardMailbox struct {
	rec  checkpoint.MailboxRecord
	recs []checkpoint.Record
}

func readForward(ledger Ledger, account string) ([]forwardMailbox, error) {
	var out []forwardMailbox
	err := ledger.Mailboxes(account, func(name string, rec checkpoint.MailboxRecord) error {
		if rec.Source == "" {
			rec.Source = name
		}
		m := forwardMailbox{rec: rec}
		err := ledger.Records(account, name, func(r checkpoint.Record) error {
			m.recs = append(m.recs, r)
			return nil
		})
		out = append(out, m)
		return err
	})
	if err != nil {
		return nil, providers.WithClass(providers.ClassRun, err)
	}
	return out, nil
}

// forwardClaims tells what reverse must not copy back from a destination
// mailbox: the copies of source mail, the messages matched to source mail,
// and everything that was there before the migration.
func forwardClaims(fwd []forwardMailbox, mailbox string, validity uint32) func(providers.UID) bool {
	claimed := map[providers.UID]bool{}
	baseline := uint32(0)
	for _, m := range fwd {
		if m.rec.Dest != mailbox || m.rec.DstValidity != validity {
			continue
		}
		baseline = max(baseline, m.rec.DstBaseline)
		for _, r := range m.recs {
			if r.Status.Settled() && r.DstValidity == validity && r.DstUID != 0 {
				claimed[providers.UID(r.DstUID)] = true
			}
		}
	}
	return func(u providers.UID) bool { return uint32(u) < baseline || claimed[u] }
}

// carryFlags sets the flags of migrated messages on the source to those
// their copies have on the destination now.
func carryFlags(ctx context.Context, src, dst providers.Store, fwd []forwardMailbox, sum *ReverseSummary, opts ReverseOptions) error {
	setter, ok := src.(providers.FlagSetter)
	if !ok || opts.DryRun {
		return nil
	}
	for _, m := range fwd {
		sm, err := src.Mailbox(ctx, m.rec.Source)
		if err != nil {
			return fmt.Errorf("open source mailbox %q: %w", m.rec.Source, err)
		}
		dm, err := dst.Mailbox(ctx, m.rec.Dest)
		if err != nil {
			sm.Close()
			return fmt.Errorf("open destination mailbox %q: %w", m.rec.Dest, err)
		}
		changes, err := flagChanges(ctx, sm, dm, m)
		srcValidity := sm.Info().UIDValidity
		sm.Close()
		dm.Close()
		if err != nil {
			return err
		}
		if len(changes) == 0 {
			continue
		}
		if err := setter.SetFlags(ctx, m.rec.Source, srcValidity, changes); err != nil {
			return err
		}
		sum.FlagsCarried += len(changes)
	}
	return nil
}

func flagChanges(ctx context.Context, sm, dm providers.Mailbox, m forwardMailbox) (map[providers.UID][]string, error) {
	sv, dv := sm.Info().UIDValidity, dm.Info().UIDValidity
	pairs := map[providers.UID]providers.UID{}
	for _, r := range m.recs {
		if r.Status.Settled() && r.SrcValidity == sv && r.DstValidity == dv && r.DstUID != 0 {
			pairs[providers.UID(r.SrcUID)] = providers.UID(r.DstUID)
		}
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	srcFlags, err := flagsOf(ctx, sm, nil)
	if err != nil {
		return nil, fmt.Errorf("read source flags of %q: %w", m.rec.Source, err)
	}
	dstFlags, err := flagsOf(ctx, dm, nil)
	if err != nil {
		return nil, fmt.Errorf("read destination flags of %q: %w", m.rec.Dest, err)
	}
	changes := map[providers.UID][]string{}
	for s, d := range pairs {
		sf, okS := srcFlags[s]
		df, okD := dstFlags[d]
		if okS && okD && !sameFlags(sf, df) {
			changes[s] = appendFlags(df)
		}
	}
	return changes, nil
}

// findGone lists the copies migrate made that are no longer where it put
// them, and tells moves (the same content unclaimed in another destination
// mailbox) from deletions.
func findGone(ctx context.Context, dst providers.Store, fwd []forwardMailbox, sum *ReverseSummary) error {
	type gone struct {
		m forwardMailbox
		r checkpoint.Record
	}
	var all []gone
	unclaimed := map[providers.Fingerprint][]string{} // fingerprint -> destination mailboxes
	byDest := map[string][]forwardMailbox{}
	for _, m := range fwd {
		byDest[m.rec.Dest] = append(byDest[m.rec.Dest], m)
	}
	boxes, err := dst.Mailboxes(ctx)
	if err != nil {
		return fmt.Errorf("list destination mailboxes: %w", err)
	}
	for _, b := range boxes {
		dm, err := dst.Mailbox(ctx, b.Name)
		if err != nil {
			return fmt.Errorf("open destination mailbox %q: %w", b.Name, err)
		}
		validity := dm.Info().UIDValidity
		uids, err := dm.UIDs(ctx)
		if err != nil {
			dm.Close()
			return fmt.Errorf("list %q: %w", b.Name, err)
		}
		present := map[providers.UID]bool{}
		for _, u := range uids {
			present[u] = true
		}
		claimed := forwardClaims(byDest[b.Name], b.Name, validity)
		for _, m := range byDest[b.Name] {
			for _, r := range m.recs {
				if r.Status == checkpoint.StatusCopied && r.DstValidity == validity && r.DstUID != 0 && !present[providers.UID(r.DstUID)] {
					all = append(all, gone{m, r})
				}
			}
		}
		rest := slices.DeleteFunc(slices.Clone(uids), claimed)
		if len(rest) == 0 {
			dm.Close()
			continue
		}
		err = dm.List(ctx, rest, func(mi providers.MessageInfo) error {
			unclaimed[mi.Key.Fingerprint] = append(unclaimed[mi.Key.Fingerprint], b.Name)
			return nil
		})
		dm.Close()
		if err != nil {
			return fmt.Errorf("read %q: %w", b.Name, err)
		}
	}
	for _, g := range all {
		p := Problem{Mailbox: g.m.rec.Source, UID: providers.UID(g.r.SrcUID), DstUID: providers.UID(g.r.DstUID), MessageID: g.r.MessageID}
		if where := unclaimed[g.r.Fingerprint]; len(where) > 0 {
			p.What = fmt.Sprintf("moved on the destination from %q to %q", g.m.rec.Dest, where[0])
			unclaimed[g.r.Fingerprint] = where[1:]
			sum.Moved = append(sum.Moved, p)
			continue
		}
		p.What = fmt.Sprintf("deleted on the destination (was uid %d in %q)", g.r.DstUID, g.m.rec.Dest)
		sum.Deleted = append(sum.Deleted, p)
	}
	return nil
}

// removeOriginals removes from the source the originals of copies moved
// away or deleted on the destination: the way back mirrors what users did.
// A moved message has been copied back to its new folder by then.
func removeOriginals(ctx context.Context, src providers.Store, fwd []forwardMailbox, sum *ReverseSummary) error {
	remover, ok := src.(providers.Remover)
	if !ok {
		return providers.WithClass(providers.ClassAccount, fmt.Errorf("the source cannot remove messages"))
	}
	byMailbox := map[string][]providers.UID{}
	for _, p := range slices.Concat(sum.Moved, sum.Deleted) {
		byMailbox[p.Mailbox] = append(byMailbox[p.Mailbox], p.UID)
	}
	for _, m := range fwd {
		uids := byMailbox[m.rec.Source]
		if len(uids) == 0 {
			continue
		}
		sm, err := src.Mailbox(ctx, m.rec.Source)
		if err != nil {
			return fmt.Errorf("open source mailbox %q: %w", m.rec.Source, err)
		}
		validity := sm.Info().UIDValidity
		sm.Close()
		if validity != m.rec.SrcValidity {
			return fmt.Errorf("source mailbox %q: %w", m.rec.Source, providers.ErrUIDValidityChanged)
		}
		if err := remover.Remove(ctx, m.rec.Source, validity, uids); err != nil {
			return err
		}
		sum.RemovedFromSource += len(uids)
		delete(byMailbox, m.rec.Source)
	}
	return nil
}

// ReverseBatch runs Reverse for each account, Concurrency at a time.
func ReverseBatch(ctx context.Context, accts []BatchAccount, ledger Ledger, concurrency int, opts ReverseOptions) []ReverseSummary {
	opts.Options = opts.Options.withDefaults()
	bopts := BatchOptions{Options: opts.Options, LoginRetries: 5}
	return forEachAccount(ctx, accts, concurrency, func(a BatchAccount) ReverseSummary {
		var src, dst providers.Store
		err := retryLogin(ctx, a, bopts, func() (err error) {
			src, dst, err = a.openBoth(ctx)
			return err
		})
		if err != nil {
			return ReverseSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser, Status: StatusFailed, Error: err.Error()}
		}
		defer src.Close()
		defer dst.Close()
		sum, _ := Reverse(ctx, a, src, dst, ledger, opts)
		return sum
	}, func(a BatchAccount) ReverseSummary {
		return ReverseSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser, Status: StatusInterrupted}
	})
}
