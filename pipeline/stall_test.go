package pipeline

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// gatedSource fails `fails` times, then waits for release before it
// delivers a frame, so a test can look at the stats in between.
type gatedSource struct {
	fails   int32
	frame   []byte
	runs    atomic.Int32
	release chan struct{}
}

func (s *gatedSource) Name() string { return "rtlsdr://0" }
func (s *gatedSource) Live() bool   { return true }
func (s *gatedSource) Run(ctx context.Context, h Handler) error {
	if s.runs.Add(1) <= s.fails {
		return errors.New("no samples for 3s (stalled)")
	}
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.Frame(Frame{Data: s.frame, Time: time.Now()})
	<-ctx.Done()
	return ctx.Err()
}

// A live source counts as stalled only once reopening has failed
// StalledAfter times in a row, and stops counting when it delivers again.
func TestStalledAfterReopeningFails(t *testing.T) {
	raw, _ := hex.DecodeString(telegrams(t)[0])
	for _, c := range []struct {
		fails       int32
		wantStalled bool
	}{{2, false}, {3, true}, {6, true}} {
		src := &gatedSource{fails: c.fails, frame: raw, release: make(chan struct{})}
		var col collected
		p := col.pipeline(src, keyOf(t))
		p.StalledAfter = 3
		var sawStalled atomic.Bool
		log := runUntil(t, p, 10*time.Second, func() bool {
			if p.Stats().Stalled.Load() > 0 {
				sawStalled.Store(true)
			}
			if src.runs.Load() > c.fails && p.Stats().Failing.Load() == 0 {
				// Now in the run that works: let it deliver.
				select {
				case <-src.release:
				default:
					if p.Stats().Stalled.Load() > 0 == c.wantStalled {
						close(src.release)
					}
				}
			}
			return p.Stats().Readings.Load() > 0 && p.Stats().Stalled.Load() == 0
		})
		if sawStalled.Load() != c.wantStalled {
			t.Errorf("%d failures: stalled seen %v, want %v", c.fails, sawStalled.Load(), c.wantStalled)
		}
		if got := strings.Contains(log, "input keeps failing after reopening"); got != c.wantStalled {
			t.Errorf("%d failures: log says stalled %v:\n%s", c.fails, got, log)
		}
		if p.Stats().Reopens.Load() != int64(c.fails) {
			t.Errorf("%d failures, %d reopens", c.fails, p.Stats().Reopens.Load())
		}
	}
}
