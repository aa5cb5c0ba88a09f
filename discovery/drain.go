package discovery

import (
	"context"
	"fmt"
)

// Drain waits until everything handed to the publisher so far has been
// published and acknowledged by the broker. A gateway reading a recording
// calls it before exiting, so the last readings are not lost; ctx bounds
// the wait (a broker that never answers). Run must be running.
func (p *Publisher) Drain(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case p.drainReq <- ch:
	case <-ctx.Done():
		return fmt.Errorf("publisher not running: %w", ctx.Err())
	}
	p.signal()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		connected := p.connected
		p.mu.Unlock()
		if !connected {
			return fmt.Errorf("broker not connected: %w", ctx.Err())
		}
		return fmt.Errorf("broker did not acknowledge everything: %w", ctx.Err())
	}
}

// answerDrainers releases the Drain callers once nothing is waiting to be
// published. It runs in the Run goroutine, after a flush.
func (p *Publisher) answerDrainers() {
	if len(p.drainers) == 0 || !p.settled() {
		return
	}
	for _, ch := range p.drainers {
		close(ch)
	}
	p.drainers = p.drainers[:0]
}

// settled reports whether a flush left nothing to publish.
func (p *Publisher) settled() bool {
	p.mu.Lock()
	busy := !p.connected || len(p.order) > 0 || p.listDirty || p.gwDirty || p.resync
	p.mu.Unlock()
	if busy || len(p.removals) > 0 || !p.gwOnlineSent || !p.gwAnnounced || (p.gwState != nil && !p.gwStateSent) {
		return false
	}
	for _, m := range p.meters {
		if m.discDirty || m.stateDirty || m.availDirty {
			return false
		}
	}
	return true
}
