package migrate

import (
	"fmt"
	"sync"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// recorder turns APPEND confirmations into ledger records, committed in
// batches: by count, or after CommitInterval, whichever comes first. A
// record is only ever written after the server's confirmation, so the
// ledger never claims a message the destination does not have.
type recorder struct {
	c       *mailboxCopy
	results chan result
	stopped chan struct{}
	once    sync.Once
	err     error // first commit error; read after stopped is closed
}

type result struct {
	uid     providers.UID
	size    int64
	dstUID  providers.UID
	altered string // how the copy differs from the source, see providers.Body
	err     error
}

// newRecorder records the results of n appends. The queue holds up to
// 1,024 at once, no more than n: a mailbox of a few messages, copied for
// each of many accounts at once, needs no room for a thousand.
func newRecorder(c *mailboxCopy, n int) *recorder {
	r := &recorder{c: c, results: make(chan result, min(max(n, 1), 1024)), stopped: make(chan struct{})}
	go r.loop()
	return r
}

// done is the Append callback.
func (r *recorder) done(uid providers.UID, size int64, dstUID providers.UID, altered string, err error) {
	r.results <- result{uid, size, dstUID, altered, err}
}

// stop waits for every queued result to be committed and reports the first
// commit error. It is safe to call more than once.
func (r *recorder) stop() error {
	r.once.Do(func() { close(r.results) })
	<-r.stopped
	return r.err
}

func (r *recorder) loop() {
	defer close(r.stopped)
	c := r.c
	tick := time.NewTicker(c.r.opts.CommitInterval)
	defer tick.Stop()
	var batch []ledger.Record
	var bytes int64
	commit := func() {
		if len(batch) == 0 || r.err != nil {
			return
		}
		if err := c.r.ledger.PutRecords(c.r.acct.ID, c.plan.Source.Name, batch); err != nil {
			// Without the ledger nothing more may be copied.
			r.err = providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
			return
		}
		c.mu.Lock()
		for _, rec := range batch {
			c.recs[rec.RecordKey] = rec
			if rec.Status == ledger.StatusCopied {
				c.newN++
			}
		}
		c.bytes += bytes
		c.mu.Unlock()
		c.r.opts.emit(Event{Kind: EventCommitted, ID: c.r.acct.ID, Mailbox: c.plan.Source.Name, Count: len(batch), Bytes: bytes})
		batch, bytes = batch[:0], 0
	}
	for {
		select {
		case res, ok := <-r.results:
			if !ok {
				commit()
				return
			}
			rec, ok, err := r.record(res)
			if err != nil && r.err == nil {
				r.err = err // nothing more is committed
			}
			if ok {
				batch = append(batch, rec)
				if rec.Status == ledger.StatusCopied {
					bytes += res.size
					c.r.opts.emit(Event{Kind: EventAppended, ID: c.r.acct.ID, Mailbox: c.plan.Source.Name, Count: 1, Bytes: res.size})
				}
			}
			if len(batch) >= c.r.opts.BatchSize {
				commit()
			}
		case <-tick.C:
			commit()
		}
	}
}

// record turns one confirmation into a record. An APPEND whose outcome is
// unknown (the connection broke) gets none: its pending record stays, and
// the next attempt looks for it on the destination before re-sending.
func (r *recorder) record(res result) (ledger.Record, bool, error) {
	c := r.c
	c.mu.Lock()
	rec := c.recs[c.key(res.uid)]
	c.mu.Unlock()
	switch {
	case res.err == nil:
		// A copy's Reason says how its bytes differ, if they do.
		if err := setStatus(&rec, ledger.StatusCopied); err != nil {
			return rec, false, err
		}
		rec.DstUID, rec.Reason = uint32(res.dstUID), res.altered
		if res.altered != "" {
			c.r.opts.Logger.Warn("message copied altered", "account", c.r.acct.ID, "mailbox", c.plan.Source.Name,
				"uid", res.uid, "message_id", rec.MessageID, "how", res.altered)
		}
		return rec, true, nil
	case providers.ClassOf(res.err) == providers.ClassMessage:
		if err := setStatus(&rec, ledger.StatusFailed); err != nil {
			return rec, false, err
		}
		rec.Reason = res.err.Error()
		c.r.opts.Logger.Error("message refused", "account", c.r.acct.ID, "mailbox", c.plan.Source.Name,
			"uid", res.uid, "message_id", rec.MessageID, "err", res.err)
		return rec, true, nil
	}
	c.mu.Lock()
	if c.connErr == nil {
		c.connErr = &providers.MessageError{Mailbox: c.plan.Source.Name, UID: res.uid, Err: res.err}
	}
	c.mu.Unlock()
	return rec, false, nil
}
