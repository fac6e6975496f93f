package migrate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

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
	late     int // late copies found (removed, but in a dry run or under LateCopiesKeep)
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
		r.noteQuiet(ctx, p, group, sum)
	}
	return sum, err
}

// copyAttempts runs copy attempts until one succeeds, the error is not
// transient, or the retries are used up.
func (r *accountRun) copyAttempts(ctx context.Context, p MailboxPlan, group []MailboxPlan) (MailboxSummary, error) {
	pacer := r.opts.pacer()
	backoff := pacer.Start()
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
			failures = 0
			backoff.Reset()
		} else {
			failures++
		}
		if providers.ClassOf(err) != providers.ClassTransient || failures > r.opts.Retries || ctx.Err() != nil {
			return sum, err
		}
		// Jitter keeps many accounts from retrying in lock step; a
		// server's hint is waited out in full.
		d := backoff.Next(providers.RetryAfter(err))
		r.opts.Logger.Warn("retrying mailbox", "account", r.acct.ID, "mailbox", p.Source.Name, "failures", failures, "wait", d, "err", err)
		r.opts.emit(Event{Kind: EventRetry, ID: r.acct.ID, Mailbox: p.Source.Name, Err: err})
		if werr := pacer.Wait(ctx, d); werr != nil {
			return sum, werr
		}
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

func (c *mailboxCopy) putMailboxRecord() error {
	if err := c.r.ledger.PutMailbox(c.r.acct.ID, c.plan.Source.Name, c.mbrec); err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
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
