package providers

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestHostLimiterCaps(t *testing.T) {
	h := NewHostLimiter(3)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.Acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
			h.Release()
		}()
	}
	wg.Wait()
	if p := h.Peak(); p > 3 || p < 1 {
		t.Errorf("peak %d, want 1..3", p)
	}
}

func TestHostLimiterBacksOff(t *testing.T) {
	h := NewHostLimiter(0)
	h.Throttled(0)
	start := time.Now()
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.Release()
	if waited := time.Since(start); waited < minHostBackoff/2 {
		t.Errorf("a throttled host let a connection through after %v", waited)
	}
	// A cancelled caller does not wait out the backoff.
	h.Throttled(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := h.Acquire(ctx); err == nil {
		t.Errorf("Acquire ignored cancellation during backoff")
	}
	if h.pace.step <= minHostBackoff {
		t.Errorf("backoff did not grow: %v", h.pace.step)
	}
	h.Succeeded()
	if h.pace.step != minHostBackoff {
		t.Errorf("backoff not reset after success: %v", h.pace.step)
	}
}
