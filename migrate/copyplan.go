package migrate

// What an attempt has to do: the source messages it selects, what the
// ledger already says of them, the records it writes, and its summary.

import (
	"context"
	"fmt"
	"slices"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// firstPass reports a mailbox with no record yet and no selection beyond
// all its messages.
func (c *mailboxCopy) firstPass() bool {
	return len(c.recs) == 0 && c.r.opts.Select.Filter.IsZero() && c.r.opts.Exclude == nil && len(c.r.labelSkip[c.plan.Source.Name]) == 0
}

// sourceUIDs lists the source messages this run is about: those the
// filters select, less those reverse excludes and those another label
// folder copies (see LabelPolicy).
func (c *mailboxCopy) sourceUIDs(ctx context.Context) ([]providers.UID, error) {
	name := c.plan.Source.Name
	uids, err := providers.Select(ctx, c.src, c.r.opts.Select.Filter)
	if err != nil {
		return nil, fmt.Errorf("list source mailbox %q: %w", name, err)
	}
	if c.r.opts.Exclude != nil {
		ex, err := c.r.opts.Exclude(name, c.srcInfo.UIDValidity)
		if err != nil {
			return nil, err
		}
		uids = slices.DeleteFunc(uids, ex)
	}
	if skip := c.r.labelSkip[name]; len(skip) > 0 {
		n := len(uids)
		uids = slices.DeleteFunc(uids, func(u providers.UID) bool { return skip[u] })
		c.otherLabel = n - len(uids)
	}
	return uids, nil
}

// loadRecords reads the ledger records of this source mailbox.
func (c *mailboxCopy) loadRecords() error {
	c.recs = map[ledger.RecordKey]ledger.Record{}
	err := c.r.ledger.Records(c.r.acct.ID, c.plan.Source.Name, func(rec ledger.Record) error {
		c.recs[rec.RecordKey] = rec
		return nil
	})
	if err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("read checkpoint: %w", err))
	}
	return nil
}

// progressed reports whether this attempt settled any message.
func (c *mailboxCopy) progressed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settled > 0 || c.newN > 0
}

func (c *mailboxCopy) key(uid providers.UID) ledger.RecordKey {
	return ledger.RecordKey{SrcValidity: c.srcInfo.UIDValidity, SrcUID: uint32(uid)}
}

// todo returns the UIDs still needing work, ascending.
func (c *mailboxCopy) todo(uids []providers.UID) []providers.UID {
	var out []providers.UID
	for _, u := range uids {
		rec, ok := c.recs[c.key(u)]
		switch {
		case !ok, rec.Status == ledger.StatusPending, rec.Status == ledger.StatusRemoved:
			out = append(out, u)
		case rec.Status == ledger.StatusFailed && c.r.opts.RetryFailed:
			out = append(out, u)
		}
	}
	return out
}

// refuseTooLarge records as failed, without sending them, the messages
// larger than the destination takes (its APPENDLIMIT or its preset's
// limit): sending 150 MB to have it refused helps nobody. It returns the
// others.
func (c *mailboxCopy) refuseTooLarge(uids []providers.UID, infos map[providers.UID]providers.MessageInfo) ([]providers.UID, error) {
	l, ok := providers.As[providers.AppendLimiter](c.r.acct.Dest)
	if !ok || l.AppendLimit() <= 0 {
		return uids, nil
	}
	limit := l.AppendLimit()
	var refused []ledger.Record
	keep := uids[:0:0]
	for _, u := range uids {
		m := infos[u]
		if m.Size <= limit {
			keep = append(keep, u)
			continue
		}
		rec, err := c.newRecord(m, ledger.StatusFailed, 0)
		if err != nil {
			return nil, err
		}
		rec.Reason = fmt.Sprintf("%d bytes: larger than the destination takes (%d bytes); not sent", m.Size, limit)
		refused = append(refused, rec)
	}
	if len(refused) > 0 {
		c.r.opts.Logger.Warn("messages too large for the destination", "account", c.r.acct.ID, "mailbox", c.plan.Source.Name, "count", len(refused), "limit", limit)
	}
	return keep, c.record(refused)
}

// record commits recs to the ledger, then to this attempt's view of it.
func (c *mailboxCopy) record(recs []ledger.Record) error {
	if err := c.r.ledger.PutRecords(c.r.acct.ID, c.plan.Source.Name, recs); err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
	}
	c.mu.Lock()
	for _, rec := range recs {
		c.recs[rec.RecordKey] = rec
	}
	c.mu.Unlock()
	return nil
}

// newRecord makes the record of source message m, in status st, in place
// of whatever record it had (which must be allowed to become st, see
// transitions).
func (c *mailboxCopy) newRecord(m providers.MessageInfo, st ledger.Status, dstUID uint32) (ledger.Record, error) {
	key := c.key(m.UID)
	c.mu.Lock()
	prev, ok := c.recs[key]
	c.mu.Unlock()
	rec := ledger.Record{
		RecordKey:   key,
		Status:      noRecord,
		DstValidity: c.dstInfo.UIDValidity,
		DstUID:      dstUID,
		Size:        m.Size,
		Fingerprint: m.Key.Fingerprint,
		MessageID:   m.Key.MessageID,
		Run:         c.r.opts.Run,
	}
	if ok {
		rec.Status = prev.Status
	}
	return rec, setStatus(&rec, st)
}

// summary counts the current source messages by ledger status.
func (c *mailboxCopy) summary(uids []providers.UID, err error) MailboxSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := MailboxSummary{Source: c.plan.Source.Name, Dest: c.plan.Dest, Created: c.mbrec.Created,
		Seen: len(uids), New: c.newN, Bytes: c.bytes, FlagsUpdated: c.flagsSet, Filtered: c.filtered(c.srcInfo, uids), OtherLabel: c.otherLabel}
	if c.r.opts.LateCopies == LateCopiesKeep {
		s.LateCopiesKept = c.late
		if c.late > 0 {
			s.Warn = fmt.Sprintf("%d late copies left on the destination (LateCopies: keep): those messages are there twice", c.late)
		}
	} else {
		s.LateCopies = c.late
	}
	for _, u := range uids {
		rec, ok := c.recs[c.key(u)]
		switch {
		case !ok:
			s.Pending++
		case rec.Status == ledger.StatusCopied:
			s.Copied++
			if rec.Reason != "" {
				s.Altered++
				if len(s.Alterations) < maxFailures {
					s.Alterations = append(s.Alterations, Failure{UID: u, MessageID: rec.MessageID, Reason: rec.Reason})
				}
			}
		case rec.Status == ledger.StatusDuplicate:
			s.Duplicate++
		case rec.Status == ledger.StatusFailed:
			s.Failed++
			if len(s.Failures) < maxFailures {
				s.Failures = append(s.Failures, Failure{UID: u, MessageID: rec.MessageID, Reason: rec.Reason})
			}
		default:
			s.Pending++
		}
	}
	if err != nil {
		s.Error, s.Class = err.Error(), classString(err)
	}
	return s
}

// filtered counts the source messages the date and size filters left out.
func (c *mailboxCopy) filtered(info providers.MailboxInfo, selected []providers.UID) int {
	if c.r.opts.Select.Filter.IsZero() {
		return 0
	}
	return max(info.Messages-len(selected)-c.otherLabel, 0)
}

func (c *mailboxCopy) dryRunSummary(uids, todo []providers.UID, infos map[providers.UID]providers.MessageInfo) MailboxSummary {
	s := c.summary(uids, nil)
	s.New = len(todo)
	s.Bytes = 0 // what it would copy
	for _, u := range todo {
		s.Bytes += infos[u].Size
	}
	return s
}

func sortedUIDs(m map[providers.UID]providers.MessageInfo) []providers.UID {
	out := make([]providers.UID, 0, len(m))
	for u := range m {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

func sortedKeys(m map[ledger.RecordKey]ledger.Record) []ledger.RecordKey {
	out := make([]ledger.RecordKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, compareKeys)
	return out
}

func compareKeys(a, b ledger.RecordKey) int {
	if a.SrcValidity != b.SrcValidity {
		return int(int64(a.SrcValidity) - int64(b.SrcValidity))
	}
	return int(int64(a.SrcUID) - int64(b.SrcUID))
}
