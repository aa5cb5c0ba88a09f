package iq

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// chunkQueue carries bytes from a producer that must never block (the
// librtlsdr USB callback) to a reader, through a fixed set of reused chunks.
// When the reader falls behind and no chunk is free, the bytes are dropped
// and counted, never queued without bound.
type chunkQueue struct {
	free    chan []byte
	full    chan []byte
	cur     []byte // unread part of the chunk being read
	curBuf  []byte // that chunk, to give back
	done    chan struct{}
	endOnce sync.Once
	endErr  error
	dropped atomic.Uint64 // bytes
	timeout time.Duration
	timer   *time.Timer
}

func newChunkQueue(chunks, chunkSize int, timeout time.Duration) *chunkQueue {
	q := &chunkQueue{
		free:    make(chan []byte, chunks),
		full:    make(chan []byte, chunks),
		done:    make(chan struct{}),
		timeout: timeout,
	}
	for range chunks {
		q.free <- make([]byte, 0, chunkSize)
	}
	if timeout > 0 {
		q.timer = time.NewTimer(timeout)
		q.timer.Stop()
	}
	return q
}

// push copies p into free chunks. It never blocks; it reports false when it
// had to drop bytes because the reader is behind.
func (q *chunkQueue) push(p []byte) bool {
	for len(p) > 0 {
		var c []byte
		select {
		case c = <-q.free:
		default:
			q.dropped.Add(uint64(len(p)))
			return false
		}
		n := copy(c[:cap(c)], p)
		q.full <- c[:n] // cannot block: at most cap(full) chunks exist
		p = p[n:]
	}
	return true
}

// end records why the producer stopped; the reader sees it after the
// chunks already queued. Only the first call counts.
func (q *chunkQueue) end(err error) {
	q.endOnce.Do(func() {
		q.endErr = err
		close(q.done)
	})
}

// Dropped returns the bytes dropped so far.
func (q *chunkQueue) Dropped() uint64 { return q.dropped.Load() }

func (q *chunkQueue) Read(p []byte) (int, error) {
	if len(q.cur) == 0 {
		if q.curBuf != nil {
			q.free <- q.curBuf[:0]
			q.curBuf = nil
		}
		c, err := q.next()
		if err != nil {
			return 0, err
		}
		q.cur, q.curBuf = c, c
	}
	n := copy(p, q.cur)
	q.cur = q.cur[n:]
	return n, nil
}

func (q *chunkQueue) next() ([]byte, error) {
	select {
	case c := <-q.full:
		return c, nil
	default:
	}
	var expired <-chan time.Time
	if q.timer != nil {
		q.timer.Reset(q.timeout)
		defer q.timer.Stop()
		expired = q.timer.C
	}
	select {
	case c := <-q.full:
		return c, nil
	case <-q.done:
		// Chunks pushed before end still count.
		select {
		case c := <-q.full:
			return c, nil
		default:
		}
		if q.endErr == nil {
			return nil, io.EOF
		}
		return nil, q.endErr
	case <-expired:
		return nil, fmt.Errorf("no samples for %v: %w", q.timeout, ErrStalled)
	}
}
