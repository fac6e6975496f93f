package checkpoint

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Writers that come while a commit is under way are committed together in
// the next transaction, each returns only when its own write is in, and a
// write whose function fails gets its error while the others still land.
func TestWritersArrivingDuringACommitShareTheNext(t *testing.T) {
	s := mustOpen(t)
	hold, held := make(chan struct{}), make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- s.update(func(tx *txn) error {
			close(held)
			<-hold // keep the commit under way while the others queue
			b, err := tx.top(bucketRuns)
			if err != nil {
				return err
			}
			return b.b.Put([]byte("first"), []byte("x"))
		})
	}()
	<-held

	const n = 12
	refuse := errors.New("refused")
	var mu sync.Mutex
	txIDs := map[int]int{}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.update(func(tx *txn) error {
				mu.Lock()
				txIDs[i] = tx.tx.ID()
				mu.Unlock()
				if i == 5 {
					return refuse
				}
				return putRunMarker(tx, i)
			})
		})
	}
	// All n are queued behind the held commit before it ends.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.group.mu.Lock()
		queued := len(s.group.queue)
		s.group.mu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d writers queued", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
	close(hold)
	if err := <-firstDone; err != nil {
		t.Fatalf("first write: %v", err)
	}
	wg.Wait()

	for i, err := range errs {
		if i == 5 {
			if !errors.Is(err, refuse) {
				t.Errorf("writer 5 got %v, want its own error", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	// The group ran in one transaction, then once more without writer 5.
	ids := map[int]bool{}
	for _, id := range txIDs {
		ids[id] = true
	}
	if len(ids) > 2 {
		t.Errorf("%d writers committed in %d transactions, want them grouped: %v", n, len(ids), txIDs)
	}
	err := s.view(func(tx *txn) error {
		b, err := tx.top(bucketRuns)
		if err != nil {
			return err
		}
		for i := range n {
			got := b.b.Get([]byte(fmt.Sprintf("marker-%d", i)))
			if (got != nil) != (i != 5) {
				return fmt.Errorf("marker %d present=%v", i, got != nil)
			}
		}
		if b.b.Get([]byte("first")) == nil {
			return errors.New("the held write is missing")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func putRunMarker(tx *txn, i int) error {
	b, err := tx.top(bucketRuns)
	if err != nil {
		return err
	}
	return b.b.Put([]byte(fmt.Sprintf("marker-%d", i)), []byte("x"))
}
