package iq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Block is a run of samples from a Stream. Samples belong to the Stream:
// hand the Block back with Release when done with it.
type Block struct {
	Samples []complex64
	// Index is the position of Samples[0] in the whole stream, counting from 0.
	Index int64
	slot  int
}

// StreamOptions size a Stream. Zero values take the defaults.
type StreamOptions struct {
	BlockSize    int           // samples per block; default 1<<16 (41 ms at 1.6 MS/s)
	Blocks       int           // blocks in the pool; default 4
	StallTimeout time.Duration // no samples for this long is a stall; default DefaultStallTimeout
}

// Stream reads a Source in its own goroutine into a fixed pool of reused
// blocks and watches it: a source that delivers no samples for StallTimeout
// ends the stream with an error wrapping ErrStalled. The caller decides
// whether to reopen.
type Stream struct {
	src     Source
	name    string
	bufs    [][]complex64
	held    []atomic.Bool
	free    chan int
	full    chan filled
	timeout time.Duration
	timer   *time.Timer

	// Set by the reader goroutine: whether it is inside src.Read and since when.
	reading   atomic.Bool
	readStart atomic.Int64 // monotonic nanoseconds since epoch

	epoch  time.Time
	cancel context.CancelFunc
	closed chan struct{}
	err    error // sticky; only Next touches it
	once   sync.Once
	cerr   error
}

type filled struct {
	slot  int
	n     int
	index int64
	err   error
}

// NewStream starts reading src. The Stream owns src from now on: Close
// closes it.
func NewStream(src Source, opts StreamOptions) *Stream {
	if opts.BlockSize <= 0 {
		opts.BlockSize = 1 << 16
	}
	if opts.Blocks <= 0 {
		opts.Blocks = 4
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = DefaultStallTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stream{
		src:     src,
		name:    src.Info().Name,
		bufs:    make([][]complex64, opts.Blocks),
		held:    make([]atomic.Bool, opts.Blocks),
		free:    make(chan int, opts.Blocks),
		full:    make(chan filled, opts.Blocks),
		timeout: opts.StallTimeout,
		timer:   time.NewTimer(opts.StallTimeout),
		epoch:   time.Now(),
		cancel:  cancel,
		closed:  make(chan struct{}),
	}
	s.timer.Stop()
	for i := range s.bufs {
		s.bufs[i] = make([]complex64, opts.BlockSize)
		s.free <- i
	}
	go s.run(ctx)
	return s
}

func (s *Stream) now() int64 { return int64(time.Since(s.epoch)) }

// run fills blocks until the source fails or ends. Waiting for a free block
// (a slow consumer) does not count towards a stall; waiting in Read does.
func (s *Stream) run(ctx context.Context) {
	var index int64
	for {
		var slot int
		select {
		case slot = <-s.free:
		case <-ctx.Done():
			return
		}
		buf := s.bufs[slot]
		n := 0
		var err error
		for n < len(buf) && err == nil {
			s.readStart.Store(s.now())
			s.reading.Store(true)
			var k int
			k, err = s.src.Read(buf[n:])
			s.reading.Store(false)
			n += k
		}
		select {
		case s.full <- filled{slot: slot, n: n, index: index, err: err}:
		case <-ctx.Done():
			return
		}
		index += int64(n)
		if err != nil {
			return
		}
	}
}

// Next returns the next block. At the end of a recording it returns io.EOF;
// a failing source gives its error (naming the source), a silent one an
// error wrapping ErrStalled, a closed Stream ErrClosed. After an error Next
// keeps returning it. Next is for one goroutine; Release and Close may be
// called from others.
func (s *Stream) Next(ctx context.Context) (Block, error) {
	if s.err != nil {
		return Block{}, s.err
	}
	for {
		select {
		case <-s.closed:
			s.err = fmt.Errorf("%s: %w", s.name, ErrClosed)
			return Block{}, s.err
		default:
		}
		wait := s.timeout
		if s.reading.Load() {
			wait -= time.Duration(s.now() - s.readStart.Load())
		}
		if wait <= 0 {
			return Block{}, s.stalled()
		}
		s.timer.Reset(wait)
		select {
		case f := <-s.full:
			s.timer.Stop()
			if f.err != nil {
				s.err = s.sourceErr(f.err)
			}
			if f.n == 0 {
				s.free <- f.slot
				return Block{}, s.err
			}
			s.held[f.slot].Store(true)
			return Block{Samples: s.bufs[f.slot][:f.n], Index: f.index, slot: f.slot}, nil
		case <-ctx.Done():
			s.timer.Stop()
			return Block{}, ctx.Err()
		case <-s.closed:
			s.timer.Stop()
			s.err = fmt.Errorf("%s: %w", s.name, ErrClosed)
			return Block{}, s.err
		case <-s.timer.C:
			// Re-check: the reader may have made progress meanwhile.
		}
	}
}

func (s *Stream) stalled() error {
	s.err = fmt.Errorf("%s: no samples for %v: %w", s.name, s.timeout, ErrStalled)
	// Closing the source unblocks the reader goroutine where possible.
	s.Close()
	return s.err
}

func (s *Stream) sourceErr(err error) error {
	switch {
	case errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		return io.EOF
	case strings.Contains(err.Error(), s.name):
		return err
	}
	return fmt.Errorf("%s: %w", s.name, err)
}

// Release hands a block back to the pool. Releasing a block twice or a zero
// Block does nothing; a Block from another Stream must not be passed.
func (s *Stream) Release(b Block) {
	if b.Samples == nil || b.slot < 0 || b.slot >= len(s.held) {
		return
	}
	if s.held[b.slot].CompareAndSwap(true, false) {
		s.free <- b.slot
	}
}

// Info describes the source.
func (s *Stream) Info() Info { return s.src.Info() }

// Close stops reading and closes the source. It does not wait for a Read
// that the source cannot interrupt (stdin on some systems).
func (s *Stream) Close() error {
	s.once.Do(func() {
		s.cancel()
		close(s.closed)
		s.cerr = s.src.Close()
	})
	return s.cerr
}
