package imap

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// HostLimiter caps the connections to one server across every account of
// a batch and backs the whole host off when it says it is overloaded
// ("too many connections", [UNAVAILABLE], [LIMIT], BYE on login): one
// user's throttling reply slows everyone's new connections to that host,
// instead of each user hammering it and failing on its own.
type HostLimiter struct {
	sem *semaphore.Weighted // nil: no cap, only backoff

	mu      sync.Mutex
	until   time.Time     // no new connection before this
	backoff time.Duration // next pause; doubles on each throttle
	open    int           // connections held, for tests and reports
	peak    int
}

// Pause bounds for a throttled host.
const (
	minHostBackoff = time.Second
	maxHostBackoff = time.Minute
)

// NewHostLimiter allows n connections at once; n <= 0 means no cap.
func NewHostLimiter(n int) *HostLimiter {
	h := &HostLimiter{backoff: minHostBackoff}
	if n > 0 {
		h.sem = semaphore.NewWeighted(int64(n))
	}
	return h
}

// Acquire waits for a free connection slot and for any backoff to pass.
func (h *HostLimiter) Acquire(ctx context.Context) error {
	if h.sem != nil {
		if err := h.sem.Acquire(ctx, 1); err != nil {
			return err
		}
	}
	for {
		h.mu.Lock()
		wait := time.Until(h.until)
		if wait <= 0 {
			h.open++
			h.peak = max(h.peak, h.open)
			h.mu.Unlock()
			return nil
		}
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			if h.sem != nil {
				h.sem.Release(1)
			}
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// TryAcquire takes a slot if one is free and the host is not backed off.
func (h *HostLimiter) TryAcquire() bool {
	if h.sem != nil && !h.sem.TryAcquire(1) {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Now().Before(h.until) {
		if h.sem != nil {
			h.sem.Release(1)
		}
		return false
	}
	h.open++
	h.peak = max(h.peak, h.open)
	return true
}

// Release frees a slot.
func (h *HostLimiter) Release() {
	h.mu.Lock()
	h.open--
	h.mu.Unlock()
	if h.sem != nil {
		h.sem.Release(1)
	}
}

// Throttled records that the host refused for load: new connections wait
// for the current backoff (at least after, the server's own hint), which
// doubles up to a minute while refusals continue.
func (h *HostLimiter) Throttled(after time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := max(h.backoff, after)
	if t := time.Now().Add(d); t.After(h.until) {
		h.until = t
	}
	h.backoff = min(h.backoff*2, maxHostBackoff)
}

// Succeeded records a connection that worked, which ends the backoff.
func (h *HostLimiter) Succeeded() {
	h.mu.Lock()
	h.backoff = minHostBackoff
	h.mu.Unlock()
}

// Peak reports the most connections held at once.
func (h *HostLimiter) Peak() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peak
}
