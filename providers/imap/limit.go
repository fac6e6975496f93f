package imap

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// HostLimiter is a Limiter backed by a weighted semaphore.
type HostLimiter struct{ sem *semaphore.Weighted }

// NewHostLimiter allows n connections at once.
func NewHostLimiter(n int) *HostLimiter { return &HostLimiter{sem: semaphore.NewWeighted(int64(n))} }

// Acquire waits for a free connection slot.
func (h *HostLimiter) Acquire(ctx context.Context) error { return h.sem.Acquire(ctx, 1) }

// Release frees a slot.
func (h *HostLimiter) Release() { h.sem.Release(1) }
