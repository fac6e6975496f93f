package migrate

// A mailbox renumbered (a changed UIDVALIDITY) on either side: records
// are re-paired by content, never by stale UIDs.

import (
	"fmt"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

func (c *mailboxCopy) saveValidity() error {
	if c.mbrec.SrcValidity == c.srcInfo.UIDValidity && c.mbrec.DstValidity == c.dstInfo.UIDValidity {
		return nil
	}
	c.mbrec.Source, c.mbrec.Dest = c.plan.Source.Name, c.plan.Dest
	if c.mbrec.DstValidity != c.dstInfo.UIDValidity {
		switch {
		case c.mbrec.DstValidity != 0 && c.mbrec.DstFresh:
			// The server numbered a mailbox that was empty when first
			// seen: all it holds came after.
			c.mbrec.DstBaseline = 1
		default:
			// First contact with this destination mailbox (or it was
			// recreated): everything below its UIDNEXT was there before us.
			c.mbrec.DstBaseline = c.dstInfo.UIDNext
		}
		c.mbrec.DstFresh = c.dstInfo.Messages == 0
	}
	c.mbrec.SrcValidity, c.mbrec.DstValidity = c.srcInfo.UIDValidity, c.dstInfo.UIDValidity
	if err := c.r.ledger.PutMailbox(c.r.acct.ID, c.plan.Source.Name, c.mbrec); err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
	}
	return nil
}

// repairSource re-pairs the records of a renumbered source mailbox with its
// current messages by fingerprint, as mbsync re-approves by Message-ID:
// stale UIDs are never trusted. Records that find no message stay under
// their old key, still claiming their destination copies for undo.
func (c *mailboxCopy) repairSource(infos map[providers.UID]providers.MessageInfo) error {
	byFP := map[providers.Fingerprint][]providers.UID{}
	for _, uid := range sortedUIDs(infos) {
		if _, ok := c.recs[c.key(uid)]; !ok {
			fp := infos[uid].Key.Fingerprint
			byFP[fp] = append(byFP[fp], uid)
		}
	}
	var moved []ledger.Record
	var stale []ledger.RecordKey
	for _, k := range sortedKeys(c.recs) {
		rec := c.recs[k]
		if k.SrcValidity == c.srcInfo.UIDValidity || !rec.Status.Settled() {
			continue
		}
		cands := byFP[rec.Fingerprint]
		if len(cands) == 0 {
			continue
		}
		byFP[rec.Fingerprint] = cands[1:]
		stale = append(stale, k)
		rec.RecordKey = c.key(cands[0])
		moved = append(moved, rec)
	}
	c.r.opts.Logger.Warn("source UIDVALIDITY changed; re-paired records by content",
		"account", c.r.acct.ID, "mailbox", c.plan.Source.Name,
		"old", c.mbrec.SrcValidity, "new", c.srcInfo.UIDValidity, "repaired", len(moved))
	if err := c.r.ledger.PutRecords(c.r.acct.ID, c.plan.Source.Name, moved); err != nil {
		return providers.WithClass(providers.ClassRun, err)
	}
	if err := c.r.ledger.DeleteRecords(c.r.acct.ID, c.plan.Source.Name, stale); err != nil {
		return providers.WithClass(providers.ClassRun, err)
	}
	for _, k := range stale {
		delete(c.recs, k)
	}
	for _, rec := range moved {
		c.recs[rec.RecordKey] = rec
	}
	return nil
}

// repairDest finds, after the destination mailbox was renumbered, the new
// UIDs of the copies the ledger knows by fingerprint. A copy that is gone
// went with the old mailbox, so its source message is copied again.
func (c *mailboxCopy) repairDest(dstMsgs []providers.MessageInfo) error {
	old := c.mbrec.DstValidity
	p := newPool()
	for _, m := range dstMsgs {
		p.add(m)
	}
	var changed []ledger.Record
	lost := 0
	for _, k := range sortedKeys(c.recs) {
		rec := c.recs[k]
		if rec.DstValidity != old {
			continue
		}
		if rec.Status.Settled() {
			if uid, ok := p.takeFingerprint(rec.Fingerprint, 0); ok {
				rec.DstUID, rec.DstValidity = uint32(uid), c.dstInfo.UIDValidity
			} else {
				if err := setStatus(&rec, ledger.StatusRemoved); err != nil {
					return err
				}
				rec.DstUID, rec.DstValidity = 0, c.dstInfo.UIDValidity
				rec.Reason = "copy lost when the destination mailbox was renumbered"
				lost++
			}
		} else {
			// A pending copy's bound is gone with the old numbering, but
			// in a mailbox that was fresh everything came after it.
			rec.DstValidity, rec.DstUIDNext = c.dstInfo.UIDValidity, 0
			if c.mbrec.DstFresh {
				rec.DstUIDNext = 1
			}
		}
		changed = append(changed, rec)
		c.recs[k] = rec
	}
	log := c.r.opts.Logger.Warn
	what := "destination UIDVALIDITY changed; re-found copies by content"
	if c.mbrec.DstFresh {
		log, what = c.r.opts.Logger.Info, "the destination numbered a mailbox that was empty (its UIDVALIDITY is fixed only once it holds mail); re-found copies by content"
	}
	log(what, "account", c.r.acct.ID, "mailbox", c.plan.Dest, "old", old, "new", c.dstInfo.UIDValidity,
		"found", len(changed)-lost, "lost", lost)
	if err := c.r.ledger.PutRecords(c.r.acct.ID, c.plan.Source.Name, changed); err != nil {
		return providers.WithClass(providers.ClassRun, err)
	}
	return nil
}

// followDestValidity takes the UIDVALIDITY a fresh destination mailbox
// was given when it stored its first message (see
// ledger.MailboxRecord.DstFresh): the records made under the one it
// showed before move to it, and everything in it counts as come after
// first sight. A change of any other mailbox is left to the next attempt,
// which re-finds its copies by content (repairDest).
//
// empty says the mailbox still holds nothing: its UIDVALIDITY is then not
// fixed yet either, and the next one is followed too.
func (c *mailboxCopy) followDestValidity(validity uint32, empty bool) error {
	old := c.dstInfo.UIDValidity
	if validity == old || !c.mbrec.DstFresh || c.r.opts.DryRun {
		return nil
	}
	c.mu.Lock()
	var moved []ledger.Record
	for k, rec := range c.recs {
		if rec.DstValidity != old {
			continue
		}
		rec.DstValidity = validity
		if rec.DstUIDNext != 0 {
			rec.DstUIDNext = 1 // the old numbering's bound means nothing now
		}
		c.recs[k] = rec
		moved = append(moved, rec)
	}
	c.mu.Unlock()
	if err := c.r.ledger.PutRecords(c.r.acct.ID, c.plan.Source.Name, moved); err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
	}
	c.dstInfo.UIDValidity = validity
	c.mbrec.DstValidity, c.mbrec.DstBaseline, c.mbrec.DstFresh = validity, 1, empty
	c.r.opts.Logger.Info("the destination numbered the mailbox when it stored the first message", "account", c.r.acct.ID,
		"mailbox", c.plan.Dest, "shown", old, "uidvalidity", validity, "records", len(moved))
	return c.putMailboxRecord()
}
