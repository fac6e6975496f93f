package providers

import (
	"context"
	"math/rand/v2"
	"time"
)

// Pacer spaces the attempts of an operation that fails for load or a
// dropped connection: exponential backoff with jitter, bounded attempts,
// a server's own hint (RetryAfter: an IMAP [UNAVAILABLE] or [LIMIT] reply,
// Office 365's "Suggested Backoff Time") honoured, and a cancelled context
// ending every wait at once. It is the one retry policy of mailferry: the
// copier's mailbox attempts, the batch's logins and the host limiter's
// pause all use it (rclone's lib/pacer and restic's retry backend are the
// models).
//
// A Pacer is a value: copy it to change a field for one caller. The zero
// value waits 1 s, then 2 s, 4 s … up to 1 min, with jitter, and does not
// retry (Retries 0).
type Pacer struct {
	// Min is the first wait (default 1 s); Max bounds how far the wait
	// grows by doubling (default 1 min, never below Min). A server's hint
	// is honoured even beyond Max.
	Min, Max time.Duration
	// Retries bounds the attempts after the first one in Call; 0 or less:
	// none.
	Retries int
	// NoJitter waits exactly the step. Jitter (the default) waits between
	// half the step and all of it, so that many accounts throttled at
	// once do not come back in lock step; never less than a hint.
	NoJitter bool
	// OnRetry, if set, is told of every failed attempt Call retries,
	// before the wait: for logs and progress events.
	OnRetry func(attempt int, wait time.Duration, err error)

	// Sleep waits d or until ctx is done, returning ctx.Err() then
	// (default: a timer). Rand returns a number in [0, n) (default
	// math/rand/v2). Tests inject both, so that nothing really sleeps.
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func(n int64) int64
}

// Default bounds of a Pacer.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
)

func (p Pacer) bounds() (lo, hi time.Duration) {
	lo, hi = p.Min, p.Max
	if lo <= 0 {
		lo = DefaultMinBackoff
	}
	if hi <= 0 {
		hi = DefaultMaxBackoff
	}
	return lo, max(lo, hi)
}

// Start begins one sequence of attempts.
func (p Pacer) Start() *Backoff {
	lo, _ := p.bounds()
	return &Backoff{p: p, step: lo}
}

// Wait sleeps d, or until ctx is done (then it returns ctx.Err()).
func (p Pacer) Wait(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.Sleep != nil {
		return p.Sleep(ctx, d)
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Call runs op until it succeeds, says its error is not worth retrying,
// the retries are used up or ctx is done, and returns op's last error
// (ctx.Err() if ctx ended a wait). op reports whether to retry, as
// rclone's pacer has it; ShouldRetry is the usual answer. The wait before
// each retry comes from Backoff.Next with the error's RetryAfter hint.
func (p Pacer) Call(ctx context.Context, op func() (retry bool, err error)) error {
	b := p.Start()
	for attempt := 1; ; attempt++ {
		retry, err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retry || attempt > p.Retries {
			return err
		}
		d := b.Next(RetryAfter(err))
		if p.OnRetry != nil {
			p.OnRetry(attempt, d, err)
		}
		if werr := p.Wait(ctx, d); werr != nil {
			return werr
		}
	}
}

// ShouldRetry reports whether err is worth another attempt after a wait:
// it is transient (a dropped connection, throttling, a timeout) and the
// context is still live.
func ShouldRetry(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil && ClassOf(err) == ClassTransient
}

// Backoff is the state of one sequence of attempts: the step, which
// doubles on each failure and goes back to Min on Reset. It is not safe
// for concurrent use; the host limiter guards its own.
type Backoff struct {
	p    Pacer
	step time.Duration
}

// Next returns the wait before the next attempt: the step, or hint if the
// server asked for longer, with the pacer's jitter (never below hint). The
// step then doubles, up to Max.
func (b *Backoff) Next(hint time.Duration) time.Duration {
	_, hi := b.p.bounds()
	s := max(b.step, hint)
	d := s
	if !b.p.NoJitter {
		half := int64(s / 2)
		rnd := rand.Int64N
		if b.p.Rand != nil {
			rnd = b.p.Rand
		}
		d = time.Duration(half + rnd(int64(s)-half+1))
		d = max(d, hint)
	}
	b.step = min(s*2, hi)
	return d
}

// Reset brings the step back to Min, after an attempt that got something
// done.
func (b *Backoff) Reset() {
	b.step, _ = b.p.bounds()
}
