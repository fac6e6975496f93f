package checkpoint

import (
	"errors"
	"sync"
)

// Group commit. bbolt has one writer at a time and every commit costs two
// fdatasyncs; a batch of accounts commits a few times per mailbox each,
// so without grouping they queue behind each other's syncs. Writers that
// arrive while a commit is under way are gathered and committed together
// in the next transaction: one set of syncs for all of them, and nobody
// waits for a timer (bbolt's own Batch waits MaxBatchDelay even when
// alone, which would slow every single-account run). Each caller still
// returns only after its writes are durable.

type committer struct {
	mu    sync.Mutex
	busy  bool
	queue []*pendingWrite
}

type pendingWrite struct {
	fn   func(*txn) error
	done chan writeResult
}

type writeResult struct {
	err  error
	lead bool // the caller is to commit the queue next
}

// errRetry is what the transaction of a group returns when one of its
// functions failed: the group is rolled back and committed again without
// that one.
var errRetry = errors.New("checkpoint: group retried without a failed write")

// update runs fn in a read-write transaction, alone or with others that
// came while a commit was under way, and returns once it is committed.
func (s *Store) update(fn func(*txn) error) error {
	w := &pendingWrite{fn: fn, done: make(chan writeResult, 1)}
	c := &s.group
	c.mu.Lock()
	c.queue = append(c.queue, w)
	if c.busy {
		c.mu.Unlock()
		if r := <-w.done; !r.lead {
			return r.err
		}
		c.mu.Lock()
	}
	// This caller commits what is queued, its own write among it.
	c.busy = true
	batch := c.queue
	c.queue = nil
	c.mu.Unlock()

	s.commitGroup(batch)

	c.mu.Lock()
	if len(c.queue) > 0 {
		// Hand over to the first who came meanwhile: it commits the rest.
		c.queue[0].done <- writeResult{lead: true}
	} else {
		c.busy = false
	}
	c.mu.Unlock()
	return (<-w.done).err
}

// commitGroup commits batch in one transaction and tells each write its
// outcome. A function that fails gets its own error and the others are
// committed again without it, as if it had come last; a commit that
// fails (a full disk, a damaged page) fails them all, as none is written.
func (s *Store) commitGroup(batch []*pendingWrite) {
	for len(batch) > 0 {
		failed := -1
		var fnErr error
		err := s.updateTx(func(t *txn) error {
			for i, w := range batch {
				if err := w.fn(t); err != nil {
					failed, fnErr = i, err
					return errRetry
				}
			}
			return nil
		})
		if failed < 0 {
			for _, w := range batch {
				w.done <- writeResult{err: err}
			}
			return
		}
		if !errors.Is(err, errRetry) {
			// Not the function's doing (the damage check turned a panic
			// into an error): the same for all.
			for _, w := range batch {
				w.done <- writeResult{err: err}
			}
			return
		}
		batch[failed].done <- writeResult{err: fnErr}
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}
