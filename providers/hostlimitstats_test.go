package providers

import (
	"context"
	"testing"
)

func TestHostLimiterStats(t *testing.T) {
	h := NewHostLimiter(3)
	shared := h.WithCap(2)
	ctx := context.Background()
	if err := h.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := shared.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if st := h.Stats(); st.Open != 2 || st.Peak != 2 || st.Cap != 3 || st.Throttles != 0 || st.ThrottleWait != 0 {
		t.Errorf("after two connections: %+v", st)
	}
	if st := shared.Stats(); st.Open != 2 || st.Cap != 2 {
		t.Errorf("the shared limiter: %+v, want the server's count and its own cap", st)
	}
	h.Release()
	shared.Throttled(0)
	// The next connection waits out the backoff, which is counted.
	if err := h.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	st := h.Stats()
	if st.Open != 2 || st.Peak != 2 || st.Throttles != 1 || st.ThrottleWait <= 0 {
		t.Errorf("after a throttle and a wait: %+v", st)
	}
	if st := NewHostLimiter(0).Stats(); st.Cap != 0 {
		t.Errorf("no cap: %+v", st)
	}
}
