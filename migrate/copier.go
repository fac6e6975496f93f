package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// mailboxCopy copies one source mailbox into its destination. It lives for
// one attempt; a retry starts a fresh one on fresh connections.
type mailboxCopy struct {
	r    *accountRun
	plan MailboxPlan
	// group holds the source mailboxes that share this destination; their
	// ledger records claim destination messages too.
	group []MailboxPlan

	src, dst providers.Mailbox
	srcInfo  providers.MailboxInfo
	dstInfo  providers.MailboxInfo
	mbrec    ledger.MailboxRecord

	// sent holds the messages this run's attempts on the mailbox marked
	// pending and sent: one found on the destination later is a copy this
	// run made, whose confirmation a dropped connection lost.
	sent map[ledger.RecordKey]bool

	mu       sync.Mutex // guards recs, sent, newN, bytes and failures once appends are in flight
	recs     map[ledger.RecordKey]ledger.Record
	newN     int
	settled  int // records settled from the destination this attempt
	flagsSet int
	late     int // late copies found (removed, but in a dry run)
	// otherLabel counts messages left to the label folder that copies them.
	otherLabel int
	bytes      int64
	connErr    error // first error that left messages unsettled
}

// copyMailbox copies one source mailbox, unless both sides are as the last
// pass left them (see quiet.go).
func (r *accountRun) copyMailbox(ctx context.Context, p MailboxPlan, group []MailboxPlan) (MailboxSummary, error) {
	r.opts.emit(Event{Kind: EventMailboxStart, ID: r.acct.ID, Mailbox: p.Source.Name})
	if sum, ok := r.quiet(p, group); ok {
		return sum, nil
	}
	if err := r.forgetQuiet(p.Source.Name); err != nil {
		return MailboxSummary{Source: p.Source.Name, Dest: p.Dest}, err
	}
	sum, err := r.copyAttempts(ctx, p, group)
	if err == nil {
		if qerr := r.noteQuiet(ctx, p, group, sum); qerr != nil {
			return sum, qerr
		}
	}
	return sum, err
}

// copyAttempts runs copy attempts until one succeeds, the error is not
// transient, or the retries are used up.
func (r *accountRun) copyAttempts(ctx context.Context, p MailboxPlan, group []MailboxPlan) (MailboxSummary, error) {
	wait := r.opts.Backoff
	failures := 0 // attempts in a row that settled nothing
	var newN int
	var bytes int64
	sent := map[ledger.RecordKey]bool{}
	for {
		c := &mailboxCopy{r: r, plan: p, group: group, sent: sent}
		sum, err := c.run(ctx)
		// Earlier attempts' copies were this run's too.
		newN, bytes = newN+sum.New, bytes+sum.Bytes
		sum.New, sum.Bytes = newN, bytes
		if err == nil {
			return sum, nil
		}
		if nerr := c.noteUnsettled(); nerr != nil {
			return sum, nerr
		}
		// A link that drops now and then still gets a long mailbox across:
		// only attempts that settle nothing count against the retries.
		if c.progressed() || providers.IsAdapting(err) {
			failures, wait = 0, r.opts.Backoff
		} else {
			failures++
		}
		if providers.ClassOf(err) != providers.ClassTransient || failures > r.opts.Retries || ctx.Err() != nil {
			return sum, err
		}
		if after := providers.RetryAfter(err); after > wait {
			wait = after
		}
		// Full jitter keeps many accounts from retrying in lock step.
		d := wait/2 + rand.N(wait/2+1)
		r.opts.Logger.Warn("retrying mailbox", "account", r.acct.ID, "mailbox", p.Source.Name, "failures", failures, "wait", d, "err", err)
		r.opts.emit(Event{Kind: EventRetry, ID: r.acct.ID, Mailbox: p.Source.Name, Err: err})
		select {
		case <-ctx.Done():
			return sum, ctx.Err()
		case <-time.After(d):
		}
		wait = min(wait*2, r.opts.MaxBackoff)
	}
}

func (c *mailboxCopy) run(ctx context.Context) (sum MailboxSummary, err error) {
	acct, name := c.r.acct.ID, c.plan.Source.Name
	sum = MailboxSummary{Source: name, Dest: c.plan.Dest}

	if c.src, err = c.r.acct.Source.Mailbox(ctx, name); err != nil {
		return sum, fmt.Errorf("open source mailbox %q: %w", name, err)
	}
	defer c.src.Close()
	if c.r.opts.DryRun && !c.plan.DestExists {
		// Nothing to compare against: everything not yet settled would be
		// copied into the mailbox the real run creates.
		c.srcInfo = c.src.Info()
		uids, err := c.sourceUIDs(ctx)
		if err != nil {
			return sum, err
		}
		// The bytes it would copy size the wave.
		var bytes int64
		if len(uids) > 0 {
			if err := c.src.List(ctx, uids, func(m providers.MessageInfo) error { bytes += m.Size; return nil }); err != nil {
				return sum, fmt.Errorf("read source mailbox %q: %w", name, err)
			}
		}
		return MailboxSummary{Source: name, Dest: c.plan.Dest, Seen: len(uids), Pending: len(uids), New: len(uids), Bytes: bytes,
			Filtered: c.filtered(c.srcInfo, uids), OtherLabel: c.otherLabel}, nil
	}
	rec, _, err := c.r.ledger.Mailbox(acct, name)
	if err != nil {
		return sum, providers.WithClass(providers.ClassRun, err)
	}
	c.mbrec = rec
	sum.Created = rec.Created
	if err := c.loadRecords(); err != nil {
		return sum, err
	}
	if c.dst, err = c.r.acct.Dest.Mailbox(ctx, c.plan.Dest); err != nil {
		return sum, fmt.Errorf("open destination mailbox %q: %w", c.plan.Dest, err)
	}
	defer c.releaseDst()
	c.srcInfo, c.dstInfo = c.src.Info(), c.dst.Info()
	// A first pass needs every message's metadata anyway: one listing
	// gives the UIDs too.
	var listed map[providers.UID]providers.MessageInfo
	var uids []providers.UID
	if c.firstPass() {
		listed = map[providers.UID]providers.MessageInfo{}
		if err := c.src.List(ctx, nil, func(m providers.MessageInfo) error {
			listed[m.UID] = m
			return nil
		}); err != nil {
			return sum, fmt.Errorf("read source mailbox %q: %w", name, err)
		}
		uids = sortedUIDs(listed)
	} else if uids, err = c.sourceUIDs(ctx); err != nil {
		return sum, err
	}

	srcChanged := rec.SrcValidity != 0 && rec.SrcValidity != c.srcInfo.UIDValidity
	dstChanged := rec.DstValidity != 0 && rec.DstValidity != c.dstInfo.UIDValidity
	todo := c.todo(uids)
	if len(todo) == 0 && !srcChanged && !dstChanged {
		// The common re-run: nothing new, nothing to look at on the
		// destination, not a single byte fetched.
		if err := c.saveValidity(); err != nil {
			return sum, err
		}
		if err := c.removeLateCopies(ctx, nil); err != nil {
			return c.summary(uids, err), err
		}
		if err := c.syncFlags(ctx); err != nil {
			return c.summary(uids, err), err
		}
		return c.summary(uids, nil), nil
	}
	// A dry run goes as far as a real one short of changing anything: it
	// lists both sides and settles against the destination in memory (its
	// ledger drops writes), so that NEW is what a real run would copy.
	var toCopy []providers.UID
	infos := map[providers.UID]providers.MessageInfo{}
	defer func() {
		if c.r.opts.DryRun && err == nil {
			sum = c.dryRunSummary(uids, toCopy, infos)
			return
		}
		sum = c.summary(uids, err)
	}()

	// Source metadata and dedup keys: for the messages to do, or for all
	// when the source was renumbered and old records must be re-paired.
	need := todo
	if srcChanged {
		need = nil
	}
	if listed != nil {
		maps.Copy(infos, listed)
	} else if err := c.src.List(ctx, need, func(m providers.MessageInfo) error {
		infos[m.UID] = m
		return nil
	}); err != nil {
		return sum, fmt.Errorf("read source mailbox %q: %w", name, err)
	}
	uids = slices.DeleteFunc(uids, func(u providers.UID) bool {
		_, ok := infos[u]
		return !ok && (need == nil || slices.Contains(todo, u))
	})

	pool := newPool()
	var dstMsgs []providers.MessageInfo
	// An empty destination (one mailferry just made, say) has nothing to
	// list.
	if c.dstInfo.Messages != 0 {
		if err := c.dst.List(ctx, nil, func(m providers.MessageInfo) error {
			pool.add(m)
			dstMsgs = append(dstMsgs, m)
			return nil
		}); err != nil {
			return sum, fmt.Errorf("read destination mailbox %q: %w", c.plan.Dest, err)
		}
	}
	if srcChanged {
		if err := c.repairSource(infos); err != nil {
			return sum, err
		}
	}
	if dstChanged {
		if err := c.repairDest(dstMsgs); err != nil {
			return sum, err
		}
	}
	if err := c.saveValidity(); err != nil {
		return sum, err
	}
	if err := c.claim(pool); err != nil {
		return sum, err
	}
	if err := c.removeLateCopies(ctx, pool); err != nil {
		return sum, err
	}
	todo = c.todo(uids)
	if toCopy, err = c.settleFromDestination(todo, infos, pool); err != nil || c.r.opts.DryRun {
		return sum, err
	}
	if toCopy, err = c.settleLanding(ctx, toCopy, infos); err != nil {
		return sum, err
	}
	if toCopy, err = c.refuseTooLarge(toCopy, infos); err != nil {
		return sum, err
	}
	err = c.copyMessages(ctx, toCopy, infos)
	if ferr := c.followDestValidity(c.dst.Info().UIDValidity, false); err == nil {
		err = ferr
	}
	if err != nil {
		return sum, err
	}
	if err := c.lookupMissingUIDs(ctx); err != nil {
		return sum, err
	}
	return sum, c.syncFlags(ctx)
}

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
				rec.Status, rec.DstUID, rec.DstValidity = ledger.StatusRemoved, 0, c.dstInfo.UIDValidity
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

// refuseTooLarge records as failed, without sending them, the messages
// larger than the destination takes (its APPENDLIMIT or its preset's
// limit): sending 150 MB to have it refused helps nobody. It returns the
// others.
func (c *mailboxCopy) refuseTooLarge(uids []providers.UID, infos map[providers.UID]providers.MessageInfo) ([]providers.UID, error) {
	l, ok := c.r.acct.Dest.(providers.AppendLimiter)
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
		rec := c.newRecord(m, ledger.StatusFailed, 0)
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
				rec.Status, rec.DstUID, rec.Reason = ledger.StatusCopied, uint32(dst), ""
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
				settled = append(settled, c.newRecord(infos[uid], ledger.StatusDuplicate, uint32(dst)))
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

func (c *mailboxCopy) newRecord(m providers.MessageInfo, st ledger.Status, dstUID uint32) ledger.Record {
	return ledger.Record{
		RecordKey:   c.key(m.UID),
		Status:      st,
		DstValidity: c.dstInfo.UIDValidity,
		DstUID:      dstUID,
		Size:        m.Size,
		Fingerprint: m.Key.Fingerprint,
		MessageID:   m.Key.MessageID,
		Run:         c.r.opts.Run,
	}
}

// copyMessages appends the messages in batches. Each batch is first
// committed as pending, then streamed from a FETCH straight into pipelined
// APPENDs; confirmations are committed in batches by a recorder. A large
// mailbox is copied over several connection pairs at once (Streams),
// because a server saves one APPEND at a time per connection.
func (c *mailboxCopy) copyMessages(ctx context.Context, uids []providers.UID, infos map[providers.UID]providers.MessageInfo) error {
	if len(uids) == 0 {
		return nil
	}
	var batches [][]providers.UID
	for len(uids) > 0 {
		n, size := 0, int64(0)
		for n < len(uids) && n < c.r.opts.BatchSize && (n == 0 || size+infos[uids[n]].Size <= c.r.opts.BatchBytes) {
			size += infos[uids[n]].Size
			n++
		}
		batches = append(batches, uids[:n])
		uids = uids[n:]
	}
	rec := newRecorder(c)
	defer rec.stop()
	streams := min(c.r.opts.Streams, len(batches))
	if len(infos) < c.r.opts.StreamThreshold {
		streams = 1
	}
	next := make(chan []providers.UID, len(batches))
	for _, b := range batches {
		next <- b
	}
	close(next)
	g, gctx := errgroup.WithContext(ctx)
	for i := range streams {
		g.Go(func() error {
			src, dst := c.src, c.dst
			if i > 0 {
				// An extra stream only helps: if its connections are not to
				// be had soon (caps full), the others carry its batches,
				// rather than every copy waiting for more while holding two.
				octx, cancel := context.WithTimeout(gctx, extraStreamWait)
				var err error
				src, dst, err = c.openStream(octx)
				cancel()
				if err != nil {
					c.r.opts.Logger.Debug("extra stream not opened", "account", c.r.acct.ID, "mailbox", c.plan.Source.Name, "err", err)
					return nil
				}
				defer src.Close()
				defer dst.Close()
			}
			err := c.copyBatches(gctx, src, dst, next, infos, rec)
			// Let confirmations already on the wire be recorded before
			// giving up; unconfirmed ones stay pending for the next attempt.
			if ferr := dst.Flush(ctx); err == nil {
				err = ferr
			}
			return err
		})
	}
	err := g.Wait()
	if rerr := rec.stop(); rerr != nil {
		return rerr
	}
	return c.attemptError(err)
}

// extraStreamWait bounds how long an extra stream waits for connections.
const extraStreamWait = 5 * time.Second

// openStream opens one more connection pair on the same two mailboxes.
func (c *mailboxCopy) openStream(ctx context.Context) (providers.Mailbox, providers.Mailbox, error) {
	src, err := c.r.acct.Source.Mailbox(ctx, c.plan.Source.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("open source mailbox %q: %w", c.plan.Source.Name, err)
	}
	dst, err := c.r.acct.Dest.Mailbox(ctx, c.plan.Dest)
	if err != nil {
		src.Close()
		return nil, nil, fmt.Errorf("open destination mailbox %q: %w", c.plan.Dest, err)
	}
	if src.Info().UIDValidity != c.srcInfo.UIDValidity || dst.Info().UIDValidity != c.dstInfo.UIDValidity {
		src.Close()
		dst.Close()
		return nil, nil, providers.WithClass(providers.ClassTransient, providers.ErrUIDValidityChanged)
	}
	return src, dst, nil
}

// copyBatches copies batches from next until it is empty or one fails.
func (c *mailboxCopy) copyBatches(ctx context.Context, src, dst providers.Mailbox, next <-chan []providers.UID, infos map[providers.UID]providers.MessageInfo, rec *recorder) error {
	for batch := range next {
		if err := c.markPending(batch, infos); err != nil {
			return err
		}
		delivered := map[providers.UID]bool{}
		err := src.Fetch(ctx, batch, func(uid providers.UID, size int64, body io.Reader) error {
			m, ok := infos[uid]
			if !ok {
				return nil
			}
			delivered[uid] = true
			m.Flags = appendFlags(m.Flags)
			b := providers.NewBody(body)
			return dst.Append(ctx, b, size, m, func(dstUID providers.UID, err error) {
				rec.done(uid, size, dstUID, b.Altered(), err)
			})
		})
		if err == nil {
			err = c.forgetVanished(batch, delivered)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// attemptError picks the error that ends this attempt: the one that broke
// the copy, or the first error that left an APPEND unconfirmed.
func (c *mailboxCopy) attemptError(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		err = c.connErr
	}
	if err == nil {
		return nil
	}
	var me *providers.MessageError
	if errors.As(err, &me) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("copy %q to %q: %w", c.plan.Source.Name, c.plan.Dest, err)
}

func (c *mailboxCopy) markPending(batch []providers.UID, infos map[providers.UID]providers.MessageInfo) error {
	recs := make([]ledger.Record, 0, len(batch))
	for _, uid := range batch {
		r := c.newRecord(infos[uid], ledger.StatusPending, 0)
		r.DstUIDNext = c.dstInfo.UIDNext
		recs = append(recs, r)
	}
	if err := c.record(recs); err != nil {
		return err
	}
	c.mu.Lock()
	for _, r := range recs {
		c.sent[r.RecordKey] = true
	}
	c.mu.Unlock()
	c.r.opts.emit(Event{Kind: EventCommitted, ID: c.r.acct.ID, Mailbox: c.plan.Source.Name, Count: len(recs)})
	return nil
}

// forgetVanished drops the pending records of messages expunged from the
// source since they were listed: they are no longer part of the mailbox.
func (c *mailboxCopy) forgetVanished(batch []providers.UID, delivered map[providers.UID]bool) error {
	var gone []ledger.RecordKey
	for _, uid := range batch {
		if !delivered[uid] {
			gone = append(gone, c.key(uid))
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if err := c.r.ledger.DeleteRecords(c.r.acct.ID, c.plan.Source.Name, gone); err != nil {
		return providers.WithClass(providers.ClassRun, err)
	}
	c.mu.Lock()
	for _, k := range gone {
		delete(c.recs, k)
	}
	c.mu.Unlock()
	return nil
}

// appendFlags drops the flags an APPEND must not or should not carry.
func appendFlags(flags []string) []string {
	return slices.DeleteFunc(slices.Clone(flags), func(f string) bool { return f == `\Recent` })
}

// syncFlags sets the flags of earlier copies to the source's, for flag
// changes made on the source since (delta sync before cutover).
func (c *mailboxCopy) syncFlags(ctx context.Context) error {
	setter, ok := c.r.acct.Dest.(providers.FlagSetter)
	if c.r.opts.NoFlagSync || c.r.opts.DryRun || !ok {
		return nil
	}
	c.mu.Lock()
	pairs := map[providers.UID]providers.UID{}
	for k, rec := range c.recs {
		// A copy made by this run has the flags the source had when it was
		// listed a moment ago: nothing to compare (a first run reads no
		// flags at all).
		if rec.Status == ledger.StatusCopied && k.SrcValidity == c.srcInfo.UIDValidity && !c.sent[k] &&
			rec.DstValidity == c.dstInfo.UIDValidity && rec.DstUID != 0 {
			pairs[providers.UID(k.SrcUID)] = providers.UID(rec.DstUID)
		}
	}
	c.mu.Unlock()
	if len(pairs) == 0 {
		return nil
	}
	srcFlags, err := flagsOf(ctx, c.src, nil)
	if err != nil {
		return fmt.Errorf("read source flags of %q: %w", c.plan.Source.Name, err)
	}
	dstFlags, err := flagsOf(ctx, c.dst, nil)
	if err != nil {
		return fmt.Errorf("read destination flags of %q: %w", c.plan.Dest, err)
	}
	changes := map[providers.UID][]string{}
	for s, d := range pairs {
		sf, okS := srcFlags[s]
		df, okD := dstFlags[d]
		if okS && okD && !sameFlags(sf, df) {
			changes[d] = appendFlags(sf)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	// SetFlags takes a connection of the store: give this one back first,
	// or a full connection cap would leave every copy waiting here.
	c.releaseDst()
	if err := setter.SetFlags(ctx, c.plan.Dest, c.dstInfo.UIDValidity, changes); err != nil {
		return err
	}
	c.mu.Lock()
	c.flagsSet += len(changes)
	c.mu.Unlock()
	return nil
}

// flagsOf reads the flags of a mailbox's messages, cheaply if the store
// can.
func flagsOf(ctx context.Context, mb providers.Mailbox, uids []providers.UID) (map[providers.UID][]string, error) {
	out := map[providers.UID][]string{}
	if fl, ok := mb.(providers.FlagLister); ok {
		err := fl.Flags(ctx, uids, func(u providers.UID, f []string) error {
			out[u] = f
			return nil
		})
		return out, err
	}
	err := mb.List(ctx, uids, func(m providers.MessageInfo) error {
		out[m.UID] = m.Flags
		return nil
	})
	return out, err
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

// summary counts the current source messages by ledger status.
func (c *mailboxCopy) summary(uids []providers.UID, err error) MailboxSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := MailboxSummary{Source: c.plan.Source.Name, Dest: c.plan.Dest, Created: c.mbrec.Created,
		Seen: len(uids), New: c.newN, Bytes: c.bytes, FlagsUpdated: c.flagsSet, Filtered: c.filtered(c.srcInfo, uids), LateCopies: c.late,
		OtherLabel: c.otherLabel}
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

func (c *mailboxCopy) putMailboxRecord() error {
	if err := c.r.ledger.PutMailbox(c.r.acct.ID, c.plan.Source.Name, c.mbrec); err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
	}
	return nil
}

// removeLateCopies removes the copies a stuck destination stored late: in
// a window of unanswered APPENDs (see noteUnsettled), a message no record
// claims with the content of one of this mailbox's copies is the first
// send of a message that was sent again; both came from mailferry, and
// one is kept. p is the destination's pool, already claimed, or nil to
// list the windows here (a re-run that would read nothing otherwise).
// Windows older than lateWindow are dropped.
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
	if len(late) > 0 {
		c.r.opts.Logger.Warn("the destination stored APPENDs late that were sent again; removing the extra copies",
			"account", c.r.acct.ID, "mailbox", c.plan.Dest, "copies", len(late))
	}
	if c.r.opts.DryRun {
		return nil
	}
	if len(late) > 0 {
		rm, ok := c.r.acct.Dest.(providers.Remover)
		if !ok {
			return providers.WithClass(providers.ClassMailbox, fmt.Errorf("destination mailbox %q holds %d late copies and the store cannot remove them", c.plan.Dest, len(late)))
		}
		slices.Sort(late)
		if err := rm.Remove(ctx, c.plan.Dest, c.dstInfo.UIDValidity, late); err != nil {
			return fmt.Errorf("remove late copies from %q: %w", c.plan.Dest, err)
		}
	}
	if len(keep) != len(c.mbrec.Unsettled) {
		c.mbrec.Unsettled = keep
		return c.putMailboxRecord()
	}
	return nil
}

// releaseDst closes the destination mailbox, giving its connection back.
func (c *mailboxCopy) releaseDst() {
	if c.dst != nil {
		c.dst.Close()
		c.dst = nil
	}
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
