package providers

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// HostLimiter caps the connections to one server across every account of
// a batch and backs the whole host off when it says it is overloaded
// (for IMAP: "too many connections", [UNAVAILABLE], [LIMIT], BYE on
// login): one
// user's throttling reply slows everyone's new connections to that host,
// instead of each user hammering it and failing on its own.
//
// Idle pooled connections hold their slots, so that the cap counts what is
// open on the server. A caller that finds the cap full first closes an
// idle connection of any account (an IdlePool), and while anyone waits, a
// connection given back is closed rather than pooled: otherwise accounts
// parked on each other's idle connections wait forever.
type HostLimiter struct {
	sem     *semaphore.Weighted // nil: no cap, only backoff
	cap     int                 // the sem's size, 0 without one
	waiting atomic.Int32        // callers blocked for a slot
	// pools are the accounts' pools whose idle connections hold this
	// limiter's slots (guarded by hostState.mu). Only they can free one:
	// a limiter sharing the server (WithCap) has slots of its own.
	pools map[IdlePool]struct{}
	*hostState
}

// hostState is what limiters of one server share: the backoff and the
// count of open connections.
type hostState struct {
	mu    sync.Mutex
	until time.Time // no new connection before this
	// pace gives the next pause: it doubles on each throttle, from
	// minHostBackoff to maxHostBackoff, without jitter (every caller
	// waits for the same moment; the server's hint wins when longer).
	pace *Backoff
	open int // connections held, for tests and reports
	peak int

	// throttles counts Throttled calls; waited is the time callers spent
	// in Acquire for the backoff to pass. Both are for metrics.
	throttles int64
	waited    time.Duration
}

// IdlePool is an account's pool of idle connections to the host.
type IdlePool interface {
	// CloseIdle closes one idle connection, releasing its slot, and
	// reports whether it had one.
	CloseIdle() bool
}

// Pause bounds for a throttled host.
const (
	minHostBackoff = time.Second
	maxHostBackoff = time.Minute
)

var hostPacer = Pacer{Min: minHostBackoff, Max: maxHostBackoff, NoJitter: true}

// NewHostLimiter allows n connections at once; n <= 0 means no cap.
func NewHostLimiter(n int) *HostLimiter {
	return newLimiter(n, &hostState{pace: hostPacer.Start()})
}

func newLimiter(n int, st *hostState) *HostLimiter {
	h := &HostLimiter{hostState: st, pools: map[IdlePool]struct{}{}}
	if n > 0 {
		h.sem, h.cap = semaphore.NewWeighted(int64(n)), n
	}
	return h
}

// WithCap is a limiter for the same server with a cap of its own (n <= 0:
// none), sharing this one's backoff and connection count. When both sides
// of a migration are one server, each side gets its own part of the cap: a
// copy holds a source connection while it opens the destination, and with
// one shared cap every slot could go to copies waiting for a second one.
func (h *HostLimiter) WithCap(n int) *HostLimiter { return newLimiter(n, h.hostState) }

// Acquire waits for a free connection slot and for any backoff to pass.
func (h *HostLimiter) Acquire(ctx context.Context) error {
	if h.sem != nil && !h.sem.TryAcquire(1) {
		h.waiting.Add(1)
		// Counted as waiting before looking for idle connections, so that
		// one given back from now on is closed, not pooled (see put).
		h.evictIdle()
		err := h.sem.Acquire(ctx, 1)
		h.waiting.Add(-1)
		if err != nil {
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
		began := time.Now()
		select {
		case <-ctx.Done():
			h.addWaited(time.Since(began))
			if h.sem != nil {
				h.sem.Release(1)
			}
			return ctx.Err()
		case <-time.After(wait):
			h.addWaited(time.Since(began))
		}
	}
}

// evictIdle closes one idle connection of any account holding this
// limiter's slots.
func (h *HostLimiter) evictIdle() {
	h.mu.Lock()
	pools := make([]IdlePool, 0, len(h.pools))
	for p := range h.pools {
		pools = append(pools, p)
	}
	h.mu.Unlock()
	for _, p := range pools {
		if p.CloseIdle() {
			return
		}
	}
}

// Contended reports whether a caller is waiting for a slot: a connection
// given back then is closed, to free its slot, instead of pooled.
func (h *HostLimiter) Contended() bool { return h.waiting.Load() > 0 }

// Register names a pool whose idle connections hold this limiter's slots,
// so that a caller finding the cap full can have one closed.
func (h *HostLimiter) Register(p IdlePool) {
	h.mu.Lock()
	h.pools[p] = struct{}{}
	h.mu.Unlock()
}

// Unregister forgets a pool, when its store closes.
func (h *HostLimiter) Unregister(p IdlePool) {
	h.mu.Lock()
	delete(h.pools, p)
	h.mu.Unlock()
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
	h.throttles++
	if t := time.Now().Add(h.pace.Next(after)); t.After(h.until) {
		h.until = t
	}
}

// Succeeded records a connection that worked, which ends the backoff.
func (h *HostLimiter) Succeeded() {
	h.mu.Lock()
	h.pace.Reset()
	h.mu.Unlock()
}

// Peak reports the most connections held at once, by every limiter of the
// server.
func (h *HostLimiter) Peak() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peak
}

func (h *HostLimiter) addWaited(d time.Duration) {
	h.mu.Lock()
	h.waited += d
	h.mu.Unlock()
}

// HostStats is a snapshot of a limiter, for metrics and status pages.
type HostStats struct {
	Open, Peak int // connections held now, and at most, by every limiter of the server
	Cap        int // this limiter's cap, 0 for none
	Throttles  int64
	// ThrottleWait is the time connections waited for the host's backoff.
	ThrottleWait time.Duration
}

// Stats reports the limiter's counts.
func (h *HostLimiter) Stats() HostStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HostStats{Open: h.open, Peak: h.peak, Cap: h.cap, Throttles: h.throttles, ThrottleWait: h.waited}
}
