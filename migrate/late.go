package migrate

// Late copies: APPENDs a stuck destination stored after their connection
// was given up, and that were sent again (see Options.LateCopies).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// lateWindow is how long after an unanswered batch the destination is
// watched for its APPENDs landing late.
const lateWindow = 24 * time.Hour

// noteUnsettled records, when an attempt ends with APPENDs unanswered, the
// destination UIDNEXT before them: the next attempt sends them again if it
// does not find them, and a stuck server may still store the first ones
// afterwards.
func (c *mailboxCopy) noteUnsettled() error {
	if c.dstInfo.UIDValidity == 0 || c.r.opts.DryRun {
		return nil
	}
	c.mu.Lock()
	from := uint32(0)
	for _, rec := range c.recs {
		if rec.Status == ledger.StatusPending && rec.DstValidity == c.dstInfo.UIDValidity && rec.DstUIDNext != 0 && c.sent[rec.RecordKey] {
			if from == 0 || rec.DstUIDNext < from {
				from = rec.DstUIDNext
			}
		}
	}
	c.mu.Unlock()
	if from == 0 {
		return nil
	}
	for _, w := range c.mbrec.Unsettled {
		if w.UIDValidity == c.dstInfo.UIDValidity && w.UIDNext <= from {
			return nil // an earlier window covers it
		}
	}
	c.mbrec.Unsettled = append(c.mbrec.Unsettled, ledger.Unsettled{UIDValidity: c.dstInfo.UIDValidity, UIDNext: from, Since: time.Now().UTC()})
	return c.putMailboxRecord()
}

// removeLateCopies removes the copies a stuck destination stored late: in
// a window of unanswered APPENDs (see noteUnsettled), a message no record
// claims with the content of one of this mailbox's copies is the first
// send of a message that was sent again; both came from mailferry, and
// one is kept. p is the destination's pool, already claimed, or nil to
// list the windows here (a re-run that would read nothing otherwise).
// Windows older than lateWindow are dropped. What is done with the copies
// found is Options.LateCopies: removed (the default), or left and
// reported.
func (c *mailboxCopy) removeLateCopies(ctx context.Context, p *pool) error {
	from, keep := uint32(0), c.mbrec.Unsettled[:0:0]
	for _, w := range c.mbrec.Unsettled {
		if w.UIDValidity != c.dstInfo.UIDValidity {
			continue // the mailbox was recreated: nothing of ours is in it
		}
		if from == 0 || w.UIDNext < from {
			from = w.UIDNext
		}
		if time.Since(w.Since) < lateWindow {
			keep = append(keep, w)
		}
	}
	if from == 0 {
		if len(c.mbrec.Unsettled) > 0 && !c.r.opts.DryRun {
			c.mbrec.Unsettled = nil
			return c.putMailboxRecord()
		}
		return nil
	}
	if p == nil {
		all, err := c.dst.UIDs(ctx)
		if err != nil {
			return fmt.Errorf("list destination mailbox %q: %w", c.plan.Dest, err)
		}
		p = newPool()
		above := slices.DeleteFunc(all, func(u providers.UID) bool { return uint32(u) < from })
		if len(above) > 0 {
			if err := c.dst.List(ctx, above, func(m providers.MessageInfo) error { p.add(m); return nil }); err != nil {
				return fmt.Errorf("read destination mailbox %q: %w", c.plan.Dest, err)
			}
		}
		if err := c.claim(p); err != nil {
			return err
		}
	}
	var late []providers.UID
	for _, rec := range c.recs {
		if rec.Status != ledger.StatusCopied || rec.DstValidity != c.dstInfo.UIDValidity {
			continue
		}
		for {
			uid, ok := p.takeFingerprint(rec.Fingerprint, from)
			if !ok {
				break
			}
			late = append(late, uid)
		}
	}
	c.late = len(late)
	keepThem := c.r.opts.LateCopies == LateCopiesKeep
	switch {
	case len(late) > 0 && keepThem:
		c.r.opts.Logger.Warn("the destination stored APPENDs late that were sent again; leaving the extra copies (LateCopies: keep)",
			"account", c.r.acct.ID, "mailbox", c.plan.Dest, "copies", len(late))
	case len(late) > 0:
		c.r.opts.Logger.Warn("the destination stored APPENDs late that were sent again; removing the extra copies",
			"account", c.r.acct.ID, "mailbox", c.plan.Dest, "copies", len(late))
	}
	if keepThem {
		late = nil // the windows still expire as below
	}
	if len(late) > 0 {
		rm, ok := providers.As[providers.Remover](c.r.acct.Dest)
		if !ok {
			return providers.WithClass(providers.ClassMailbox, fmt.Errorf("destination mailbox %q holds %d late copies and the store cannot remove them", c.plan.Dest, len(late)))
		}
		slices.Sort(late)
		// A dry run's store turns the removal away (providers.DryRun):
		// counted in c.late as what a real run would remove.
		if err := rm.Remove(ctx, c.plan.Dest, c.dstInfo.UIDValidity, late); err != nil && !errors.Is(err, providers.ErrDryRun) {
			return fmt.Errorf("remove late copies from %q: %w", c.plan.Dest, err)
		}
	}
	if len(keep) != len(c.mbrec.Unsettled) {
		c.mbrec.Unsettled = keep
		return c.putMailboxRecord()
	}
	return nil
}
