package backoff

import (
	"context"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	cases := []struct {
		name     string
		b        Backoff
		want     []time.Duration
		resetAt  int
		afterRst time.Duration
	}{
		{"defaults", Backoff{}, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}, 7, time.Second},
		{"bounds", Backoff{Min: 100 * time.Millisecond, Max: 300 * time.Millisecond},
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}, 4, 100 * time.Millisecond},
		{"max below min", Backoff{Min: time.Minute, Max: time.Second}, []time.Duration{time.Minute, time.Minute}, 2, time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.b
			for i, w := range c.want {
				if p := b.Peek(); p != w {
					t.Errorf("peek %d: %v, want %v", i, p, w)
				}
				if got := b.Next(); got != w {
					t.Errorf("wait %d: %v, want %v", i, got, w)
				}
			}
			b.Reset()
			if got := b.Next(); got != c.afterRst {
				t.Errorf("after reset: %v, want %v", got, c.afterRst)
			}
		})
	}
}

func TestWait(t *testing.T) {
	if !Wait(context.Background(), time.Millisecond) {
		t.Error("an uncancelled wait reported a cancel")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Wait(ctx, time.Hour) {
		t.Error("a cancelled wait ran its course")
	}
}
