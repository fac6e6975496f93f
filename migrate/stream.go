package migrate

// Copying: messages marked pending, then streamed from a FETCH straight
// into pipelined APPENDs over one or more connection pairs.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// copyMessages appends the messages in batches. Each batch is first
// committed as pending, then streamed from a FETCH straight into pipelined
// APPENDs; confirmations are committed in batches by a recorder. A large
// mailbox is copied over several connection pairs at once (Streams),
// because a server saves one APPEND at a time per connection.
func (c *mailboxCopy) copyMessages(ctx context.Context, uids []providers.UID, infos map[providers.UID]providers.MessageInfo) error {
	if len(uids) == 0 {
		return nil
	}
	rec := newRecorder(c, len(uids))
	defer rec.stop()
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
			m.Flags = providers.AppendFlags(m.Flags)
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
		r, err := c.newRecord(infos[uid], ledger.StatusPending, 0)
		if err != nil {
			return err
		}
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
