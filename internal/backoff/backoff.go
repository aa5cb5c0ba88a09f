// Package backoff is the one retry schedule of every live connection
// (inputs, brokers): wait Min, then twice as long each time up to Max, and
// start afresh after a good run.
package backoff

import (
	"context"
	"time"
)

// Backoff hands out waits; the zero value waits 1 s up to 30 s.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

func (b *Backoff) bounds() (time.Duration, time.Duration) {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi < lo {
		hi = max(30*time.Second, lo)
	}
	return lo, hi
}

// Limit is the longest wait it hands out.
func (b *Backoff) Limit() time.Duration {
	_, hi := b.bounds()
	return hi
}

// Peek is the wait Next will hand out.
func (b *Backoff) Peek() time.Duration {
	lo, hi := b.bounds()
	return min(max(b.next, lo), hi)
}

// Next returns the wait before the next try and doubles the one after.
func (b *Backoff) Next() time.Duration {
	_, hi := b.bounds()
	w := b.Peek()
	b.next = min(2*w, hi)
	return w
}

// Reset starts afresh at Min (after a good connection or a long run).
func (b *Backoff) Reset() { b.next = 0 }

// Wait waits d, and reports false when ctx ended first.
func Wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
