package migrate

// Settling after a crash or a broken connection: what a pending record
// sent may have landed, and what the destination already holds, is found
// on the destination before anything is sent again.

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// settleLanding deals with pending records the destination did not show:
// an earlier run or attempt ended with their APPENDs on the wire, and a
// server keeps executing the commands it had received from a connection
// after the client is gone, so a MULTIAPPEND sent just before a crash can
// land seconds later. Sending those messages again now would double them.
// So when pending records are left unsettled (and only then: when every
// pending copy was found, there is nothing to wait for, and a resume
// killed again and again still gets on), it waits for the destination to
// stop growing and settles once more against what arrived. It returns the
// messages left to copy.
func (c *mailboxCopy) settleLanding(ctx context.Context, todo []providers.UID, infos map[providers.UID]providers.MessageInfo) ([]providers.UID, error) {
	from := uint32(0)
	for _, u := range todo {
		rec, ok := c.recs[c.key(u)]
		if ok && rec.Status == ledger.StatusPending && rec.DstValidity == c.dstInfo.UIDValidity && rec.DstUIDNext != 0 {
			if from == 0 || rec.DstUIDNext < from {
				from = rec.DstUIDNext
			}
		}
	}
	if from == 0 {
		return todo, nil
	}
	// Looking takes a connection: give this one back meanwhile (see
	// lookupMissingUIDs).
	c.releaseDst()
	if err := c.waitForQuiet(ctx); err != nil {
		return nil, err
	}
	dst, err := c.r.acct.Dest.Mailbox(ctx, c.plan.Dest)
	if err != nil {
		return nil, fmt.Errorf("reopen destination mailbox %q: %w", c.plan.Dest, err)
	}
	c.dst = dst
	if info := dst.Info(); info.UIDValidity != c.dstInfo.UIDValidity && c.mbrec.DstFresh {
		if err := c.followDestValidity(info.UIDValidity, info.Messages == 0); err != nil {
			return nil, err
		}
		from = 1
	}
	if dst.Info().UIDValidity != c.dstInfo.UIDValidity {
		return nil, providers.WithClass(providers.ClassTransient, fmt.Errorf("destination mailbox %q: %w", c.plan.Dest, providers.ErrUIDValidityChanged))
	}
	all, err := c.dst.UIDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list destination mailbox %q: %w", c.plan.Dest, err)
	}
	recent := slices.DeleteFunc(all, func(u providers.UID) bool { return uint32(u) < from })
	p := newPool()
	if len(recent) > 0 {
		if err := c.dst.List(ctx, recent, func(m providers.MessageInfo) error { p.add(m); return nil }); err != nil {
			return nil, fmt.Errorf("read destination mailbox %q: %w", c.plan.Dest, err)
		}
	}
	if err := c.claim(p); err != nil {
		return nil, err
	}
	return c.settleFromDestination(todo, infos, p)
}

// waitForQuiet waits until the destination mailbox stops growing (see
// settleLanding).
func (c *mailboxCopy) waitForQuiet(ctx context.Context) error {
	uidNext := func() (uint32, error) {
		mb, err := c.r.acct.Dest.Mailbox(ctx, c.plan.Dest)
		if err != nil {
			return 0, fmt.Errorf("open destination mailbox %q: %w", c.plan.Dest, err)
		}
		defer mb.Close()
		return mb.Info().UIDNext, nil
	}
	prev, err := uidNext()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(c.r.opts.QuietMax)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.r.opts.QuietWait):
		}
		now, err := uidNext()
		if err != nil {
			return err
		}
		if now == prev {
			return nil
		}
		if time.Now().After(deadline) {
			c.r.opts.Logger.Warn("destination mailbox keeps growing; settling pending messages anyway",
				"account", c.r.acct.ID, "mailbox", c.plan.Dest)
			return nil
		}
		prev = now
	}
}

// claim removes from the pool every destination message a ledger record of
// this destination already accounts for, including records of other source
// mailboxes that merge into the same destination. A copy the server
// confirmed without a UID (no UIDPLUS, and the lookup at the end of its run
// did not finish) is found here by content among the messages that arrived
// after its batch was sent, before dedup could take its copy for another
// message: two identical source messages need two copies.
func (c *mailboxCopy) claim(p *pool) error {
	var unknown []ledger.Record // copies of this mailbox without a UID
	claimRec := func(rec ledger.Record, own bool) {
		if !rec.Status.Settled() || rec.DstValidity != c.dstInfo.UIDValidity {
			return
		}
		switch {
		case rec.DstUID != 0:
			p.claim(providers.UID(rec.DstUID))
		case rec.Status == ledger.StatusCopied && own:
			unknown = append(unknown, rec)
		case rec.Status == ledger.StatusCopied:
			c.findCopy(p, rec) // claimed, recorded when that mailbox runs
		}
	}
	for _, rec := range c.recs {
		claimRec(rec, true)
	}
	for _, other := range c.group {
		if other.Source.Name == c.plan.Source.Name {
			continue
		}
		err := c.r.ledger.Records(c.r.acct.ID, other.Source.Name, func(rec ledger.Record) error {
			claimRec(rec, false)
			return nil
		})
		if err != nil {
			return providers.WithClass(providers.ClassRun, err)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.SortFunc(unknown, func(a, b ledger.Record) int { return compareKeys(a.RecordKey, b.RecordKey) })
	var found []ledger.Record
	for _, rec := range unknown {
		if uid, ok := c.findCopy(p, rec); ok {
			rec.DstUID = uint32(uid)
			found = append(found, rec)
		}
	}
	return c.record(found)
}

// findCopy takes from the pool the copy a record made but has no UID for:
// by content, at or above the UIDNEXT recorded before its batch was sent
// (else the mailbox's baseline, below which everything was there before).
func (c *mailboxCopy) findCopy(p *pool, rec ledger.Record) (providers.UID, bool) {
	min := max(rec.DstUIDNext, c.mbrec.DstBaseline)
	if uid, ok := p.takeFingerprint(rec.Fingerprint, min); ok {
		return uid, true
	}
	return 0, false
}

// settleFromDestination settles what the destination already shows: copies
// a crashed run made (pending records) and messages that were there before.
// It returns the messages left to copy.
//
// A message matches by fingerprint first. One that does not is matched by
// its Message-ID and loose fingerprint (no size), but only when the match
// is unambiguous: its Message-ID is used by no other message to do, and
// exactly one unclaimed destination message has that identity. That finds
// copies whose size the destination server changed (line ends) or an
// earlier tool changed (an added header), without letting a re-used
// Message-ID hide a different message.
func (c *mailboxCopy) settleFromDestination(todo []providers.UID, infos map[providers.UID]providers.MessageInfo, p *pool) ([]providers.UID, error) {
	var settled []ledger.Record
	done := map[providers.UID]bool{}
	var ours int
	var ourBytes int64
	reused := map[string]int{}
	for _, uid := range todo {
		if id := infos[uid].Key.MessageID; id != "" {
			reused[id]++
		}
	}
	unique := func(uid providers.UID) bool { return reused[infos[uid].Key.MessageID] == 1 }
	// First the pending ones, so that a copy a crashed run made is not
	// taken as the pre-existing duplicate of some other source message.
	var terr error // the first status change refused (see transitions)
	settlePending := func(match func(providers.UID, uint32) (providers.UID, bool)) {
		for _, uid := range todo {
			rec, ok := c.recs[c.key(uid)]
			if done[uid] || !ok || rec.Status != ledger.StatusPending {
				continue
			}
			if rec.DstValidity != c.dstInfo.UIDValidity || rec.DstUIDNext == 0 {
				continue // no bound to tell our copy from older mail
			}
			if dst, ok := match(uid, rec.DstUIDNext); ok {
				if err := setStatus(&rec, ledger.StatusCopied); err != nil {
					terr = cmp.Or(terr, err)
					continue
				}
				rec.DstUID, rec.Reason = uint32(dst), ""
				settled = append(settled, rec)
				done[uid] = true
				if c.sent[rec.RecordKey] {
					ours++
					ourBytes += rec.Size
				}
			}
		}
	}
	settleOthers := func(match func(providers.UID, uint32) (providers.UID, bool)) {
		for _, uid := range todo {
			if done[uid] {
				continue
			}
			if dst, ok := match(uid, 0); ok {
				rec, err := c.newRecord(infos[uid], ledger.StatusDuplicate, uint32(dst))
				if err != nil {
					terr = cmp.Or(terr, err)
					continue
				}
				settled = append(settled, rec)
				done[uid] = true
			}
		}
	}
	byFingerprint := func(uid providers.UID, min uint32) (providers.UID, bool) {
		return p.takeFingerprint(infos[uid].Key.Fingerprint, min)
	}
	byIdentity := func(uid providers.UID, min uint32) (providers.UID, bool) {
		if !unique(uid) {
			return 0, false
		}
		return p.takeIdentity(infos[uid].Key, min)
	}
	settlePending(byFingerprint)
	settlePending(byIdentity)
	settleOthers(byFingerprint)
	settleOthers(byIdentity)
	if terr != nil {
		return nil, terr
	}
	left := make([]providers.UID, 0, len(todo))
	for _, uid := range todo {
		if !done[uid] {
			left = append(left, uid)
		}
	}
	if err := c.record(settled); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.settled += len(settled)
	c.newN += ours
	c.bytes += ourBytes
	c.mu.Unlock()
	if len(settled) > 0 {
		c.r.opts.emit(Event{Kind: EventCommitted, ID: c.r.acct.ID, Mailbox: c.plan.Source.Name, Count: len(settled)})
	}
	return left, nil
}

// lookupMissingUIDs finds the destination UIDs of copies the server
// confirmed without APPENDUID, by fingerprint among the messages that
// arrived since their batches were sent (see claim).
func (c *mailboxCopy) lookupMissingUIDs(ctx context.Context) error {
	from := uint32(0)
	for _, rec := range c.recs {
		if rec.Status == ledger.StatusCopied && rec.DstUID == 0 && rec.DstValidity == c.dstInfo.UIDValidity {
			if b := max(rec.DstUIDNext, c.mbrec.DstBaseline); from == 0 || b < from {
				from = b
			}
		}
	}
	if from == 0 {
		return nil
	}
	// A fresh view, to see what arrived through other connections; it
	// replaces the mailbox's connection rather than adding one, so that the
	// copy never waits for a second connection while holding one.
	c.releaseDst()
	dst, err := c.r.acct.Dest.Mailbox(ctx, c.plan.Dest)
	if err != nil {
		return fmt.Errorf("reopen destination mailbox %q: %w", c.plan.Dest, err)
	}
	c.dst = dst
	if v := dst.Info().UIDValidity; v != c.dstInfo.UIDValidity && c.mbrec.DstFresh {
		if err := c.followDestValidity(v, false); err != nil {
			return err
		}
		from = 1
	}
	if dst.Info().UIDValidity != c.dstInfo.UIDValidity {
		return fmt.Errorf("destination mailbox %q: %w", c.plan.Dest, providers.ErrUIDValidityChanged)
	}
	all, err := dst.UIDs(ctx)
	if err != nil {
		return err
	}
	recent := slices.DeleteFunc(all, func(u providers.UID) bool { return uint32(u) < from })
	if len(recent) == 0 {
		return nil
	}
	p := newPool()
	if err := dst.List(ctx, recent, func(m providers.MessageInfo) error { p.add(m); return nil }); err != nil {
		return err
	}
	return c.claim(p)
}
