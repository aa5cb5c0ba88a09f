package bluez

import (
	"sync"

	"github.com/godbus/dbus/v5"
)

// queue receives the connection's signals in the order they arrive.
// godbus's own handler hands signals to a goroutine each when the reader
// lags, which can reorder them; notifications are pieces of a byte
// stream, so order matters. The queue is bounded: past its size signals
// are dropped and counted (the stream parser then sees a cut frame).
type queue struct {
	mu      sync.Mutex
	sigs    []*dbus.Signal
	head    int
	max     int
	dropped int
	closed  bool
	wake    chan struct{}
}

func newQueue(max int) *queue {
	return &queue{max: max, wake: make(chan struct{}, 1)}
}

// DeliverSignal implements dbus.SignalHandler.
func (q *queue) DeliverSignal(_, _ string, sig *dbus.Signal) {
	q.mu.Lock()
	if q.closed || len(q.sigs)-q.head >= q.max {
		q.dropped++
	} else {
		q.sigs = append(q.sigs, sig)
	}
	q.mu.Unlock()
	q.poke()
}

// Terminate implements dbus.Terminator: the connection is closed.
func (q *queue) Terminate() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.poke()
}

func (q *queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop returns the oldest signal; closed is true when none is left and the
// connection is gone.
func (q *queue) pop() (sig *dbus.Signal, ok, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.sigs) {
		q.sigs, q.head = q.sigs[:0], 0
		return nil, false, q.closed
	}
	sig = q.sigs[q.head]
	q.sigs[q.head] = nil
	q.head++
	if q.head >= 256 && 2*q.head >= len(q.sigs) {
		// A reader that never quite catches up must not grow the slice.
		n := copy(q.sigs, q.sigs[q.head:])
		clear(q.sigs[n:])
		q.sigs, q.head = q.sigs[:n], 0
	}
	return sig, true, false
}

// overflowed returns and resets the number of signals dropped.
func (q *queue) overflowed() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.dropped
	q.dropped = 0
	return n
}
