package providers

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"
)

// fakeClock records the waits a Pacer asks for instead of sleeping.
type fakeClock struct {
	waits []time.Duration
	// cancel, if set, is called at the wait numbered cancelAt (1-based).
	cancel   func()
	cancelAt int
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.waits = append(c.waits, d)
	if c.cancel != nil && len(c.waits) == c.cancelAt {
		c.cancel()
	}
	return ctx.Err()
}

// fixedRand returns its value, bounded by n.
func fixedRand(v int64) func(int64) int64 {
	return func(n int64) int64 { return min(v, n-1) }
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := Pacer{Min: time.Second, Max: 10 * time.Second, NoJitter: true}.Start()
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next(0))
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	b.Reset()
	if d := b.Next(0); d != time.Second {
		t.Errorf("after Reset: %v, want 1s", d)
	}
}

func TestBackoffDefaults(t *testing.T) {
	b := Pacer{NoJitter: true}.Start()
	if d := b.Next(0); d != DefaultMinBackoff {
		t.Errorf("first wait %v, want %v", d, DefaultMinBackoff)
	}
	b = Pacer{Min: 5 * time.Second, Max: time.Second, NoJitter: true}.Start()
	b.Next(0)
	if d := b.Next(0); d != 5*time.Second {
		t.Errorf("Max below Min: %v, want Min", d)
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	for _, tc := range []struct {
		rnd       int64
		step, exp time.Duration
	}{
		{0, 4 * time.Second, 2 * time.Second},       // the least: half the step
		{1 << 62, 4 * time.Second, 4 * time.Second}, // the most: the whole step
		{int64(500 * time.Millisecond), 4 * time.Second, 2500 * time.Millisecond},
	} {
		p := Pacer{Min: tc.step, Max: time.Minute, Rand: fixedRand(tc.rnd)}
		if d := p.Start().Next(0); d != tc.exp {
			t.Errorf("rand %d step %v: wait %v, want %v", tc.rnd, tc.step, d, tc.exp)
		}
	}
	// The random source is asked for a number in [0, half+1).
	var asked int64
	p := Pacer{Min: 4 * time.Second, Rand: func(n int64) int64 { asked = n; return 0 }}
	p.Start().Next(0)
	if asked != int64(2*time.Second)+1 {
		t.Errorf("Rand(%d), want Rand(half step + 1)", asked)
	}
}

func TestBackoffHonoursHint(t *testing.T) {
	// The hint wins over a shorter step, is never cut by jitter, and the
	// step then grows from it.
	p := Pacer{Min: time.Second, Max: time.Minute, Rand: fixedRand(0)}
	b := p.Start()
	if d := b.Next(7 * time.Second); d != 7*time.Second {
		t.Errorf("hint 7s: wait %v", d)
	}
	if d := b.Next(0); d != 7*time.Second { // step 14s, jittered to its half
		t.Errorf("after the hint: wait %v, want 7s (half of 14s)", d)
	}
	// A hint beyond Max is honoured; the step stays at Max.
	b = Pacer{Min: time.Second, Max: 10 * time.Second, NoJitter: true}.Start()
	if d := b.Next(90 * time.Second); d != 90*time.Second {
		t.Errorf("hint beyond Max: wait %v", d)
	}
	if d := b.Next(0); d != 10*time.Second {
		t.Errorf("after a long hint: %v, want Max", d)
	}
}

var errDropped = WithClass(ClassTransient, errors.New("connection dropped"))

func TestPacerCallRetriesTransient(t *testing.T) {
	clk := &fakeClock{}
	var retried []int
	p := Pacer{Min: time.Second, Retries: 3, NoJitter: true, Sleep: clk.sleep,
		OnRetry: func(attempt int, wait time.Duration, err error) { retried = append(retried, attempt) }}
	calls := 0
	err := p.Call(context.Background(), func() (bool, error) {
		calls++
		if calls < 3 {
			return true, errDropped
		}
		return false, nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	if !slices.Equal(clk.waits, []time.Duration{time.Second, 2 * time.Second}) || !slices.Equal(retried, []int{1, 2}) {
		t.Errorf("waits %v, OnRetry %v", clk.waits, retried)
	}
}

func TestPacerCallBoundedAttempts(t *testing.T) {
	clk := &fakeClock{}
	p := Pacer{Retries: 2, Sleep: clk.sleep, Rand: fixedRand(0)}
	calls := 0
	err := p.Call(context.Background(), func() (bool, error) { calls++; return true, errDropped })
	if !errors.Is(err, errDropped) || calls != 3 || len(clk.waits) != 2 {
		t.Errorf("err %v, %d calls, %d waits; want the error after 3 calls and 2 waits", err, calls, len(clk.waits))
	}
	// No retries: one call, no wait.
	clk = &fakeClock{}
	calls = 0
	err = Pacer{Sleep: clk.sleep}.Call(context.Background(), func() (bool, error) { calls++; return true, errDropped })
	if !errors.Is(err, errDropped) || calls != 1 || len(clk.waits) != 0 {
		t.Errorf("Retries 0: err %v, %d calls, %d waits", err, calls, len(clk.waits))
	}
}

func TestPacerCallStopsOnPermanent(t *testing.T) {
	clk := &fakeClock{}
	perm := WithClass(ClassAccount, errors.New("authentication failed"))
	calls := 0
	err := Pacer{Retries: 5, Sleep: clk.sleep}.Call(context.Background(), func() (bool, error) {
		calls++
		return ShouldRetry(context.Background(), perm), perm
	})
	if !errors.Is(err, perm) || calls != 1 || len(clk.waits) != 0 {
		t.Errorf("err %v, %d calls, %d waits", err, calls, len(clk.waits))
	}
}

func TestPacerCallHint(t *testing.T) {
	clk := &fakeClock{}
	throttled := Throttled(errors.New("[UNAVAILABLE] try later"), 42*time.Second)
	calls := 0
	_ = Pacer{Retries: 1, Sleep: clk.sleep, Rand: fixedRand(0)}.Call(context.Background(), func() (bool, error) {
		calls++
		return true, throttled
	})
	if !slices.Equal(clk.waits, []time.Duration{42 * time.Second}) {
		t.Errorf("waits %v, want the server's 42s", clk.waits)
	}
}

func TestPacerCallCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clk := &fakeClock{cancel: cancel, cancelAt: 2}
	calls := 0
	err := Pacer{Retries: 10, Sleep: clk.sleep}.Call(ctx, func() (bool, error) { calls++; return true, errDropped })
	if !errors.Is(err, context.Canceled) || calls != 2 {
		t.Errorf("err %v after %d calls; want Canceled after 2", err, calls)
	}
	// Already cancelled: Wait returns at once, without asking Sleep.
	clk = &fakeClock{}
	if err := (Pacer{Sleep: clk.sleep}).Wait(ctx, time.Hour); !errors.Is(err, context.Canceled) || len(clk.waits) != 0 {
		t.Errorf("Wait on a done context: %v, %d sleeps", err, len(clk.waits))
	}
	// The real timer also ends with the context.
	if err := (Pacer{}).Wait(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("real Wait on a done context: %v", err)
	}
}

func TestShouldRetry(t *testing.T) {
	ctx := context.Background()
	done, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want bool
	}{
		{ctx, nil, false},
		{ctx, errDropped, true},
		{ctx, io.ErrUnexpectedEOF, true},
		{ctx, Throttled(errors.New("[LIMIT]"), time.Second), true},
		{ctx, WithClass(ClassMessage, errors.New("too big")), false},
		{ctx, errors.New("unclassified"), false},
		{done, errDropped, false},
	} {
		if got := ShouldRetry(tc.ctx, tc.err); got != tc.want {
			t.Errorf("ShouldRetry(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
