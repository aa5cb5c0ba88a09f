package iq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// scriptSource plays steps: samples to deliver (counting up from the last
// value), a pause, then an error or a block forever.
type scriptSource struct {
	name  string
	steps []step
	next  float32
	mu    sync.Mutex
	close chan struct{}
	once  sync.Once
}

type step struct {
	samples int
	pause   time.Duration
	err     error
	block   bool // block until Close
}

func newScript(name string, steps ...step) *scriptSource {
	return &scriptSource{name: name, steps: steps, close: make(chan struct{})}
}

func (s *scriptSource) Read(buf []complex64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.steps) > 0 {
		st := &s.steps[0]
		if st.pause > 0 {
			d := st.pause
			st.pause = 0
			select {
			case <-time.After(d):
			case <-s.close:
				return 0, errors.New("closed")
			}
		}
		if st.samples > 0 {
			n := min(len(buf), st.samples)
			for i := range n {
				buf[i] = complex(s.next, 0)
				s.next++
			}
			st.samples -= n
			return n, nil
		}
		if st.block {
			<-s.close
			return 0, errors.New("use of closed source")
		}
		if st.err != nil {
			return 0, st.err
		}
		s.steps = s.steps[1:]
	}
	return 0, io.EOF
}

func (s *scriptSource) Info() Info { return Info{Name: s.name, Format: CU8, SampleRate: 1e6} }
func (s *scriptSource) Close() error {
	s.once.Do(func() { close(s.close) })
	return nil
}

// drain reads a stream to its end, checking indexes and sample values.
func drain(t *testing.T, st *Stream) (int, error) {
	t.Helper()
	total := 0
	for {
		b, err := st.Next(context.Background())
		if err != nil {
			return total, err
		}
		if b.Index != int64(total) {
			t.Fatalf("block index %d, want %d", b.Index, total)
		}
		for i, v := range b.Samples {
			if real(v) != float32(total+i) {
				t.Fatalf("sample %d = %v", total+i, v)
			}
		}
		total += len(b.Samples)
		st.Release(b)
		st.Release(b) // a second release must not corrupt the pool
	}
}

func TestStreamOrderAndEOF(t *testing.T) {
	src := newScript("script", step{samples: 10_000}, step{samples: 7}, step{samples: 3000})
	st := NewStream(src, StreamOptions{BlockSize: 1024, Blocks: 3})
	defer st.Close()
	n, err := drain(t, st)
	if err != io.EOF || n != 13_007 {
		t.Fatalf("read %d samples, ended %v; want 13007 and io.EOF", n, err)
	}
	if _, err := st.Next(context.Background()); err != io.EOF {
		t.Fatalf("Next after EOF = %v", err)
	}
}

func TestStreamRealRecording(t *testing.T) {
	src, err := Open(context.Background(), testdataIQ+"rtlsdr_868.625M_2M4_issue48.cu8", Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := NewStream(src, StreamOptions{})
	defer st.Close()
	total := 0
	for {
		b, err := st.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		total += len(b.Samples)
		st.Release(b)
	}
	if total != 204800/2 {
		t.Fatalf("read %d samples, want %d", total, 204800/2)
	}
}

func TestStreamReadError(t *testing.T) {
	boom := errors.New("usb transfer failed")
	src := newScript("rtlsdr://0", step{samples: 100}, step{err: boom})
	st := NewStream(src, StreamOptions{BlockSize: 64})
	defer st.Close()
	n, err := drain(t, st)
	if n != 100 || !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "rtlsdr://0: ") {
		t.Fatalf("read %d, ended %v; want 100 and the error naming the source", n, err)
	}
	// An error that names the source already is not named twice.
	named := fmt.Errorf("rtlsdr://0: %w", ErrDisconnected)
	st2 := NewStream(newScript("rtlsdr://0", step{err: named}), StreamOptions{})
	defer st2.Close()
	if _, err := st2.Next(context.Background()); err != named {
		t.Fatalf("Next = %v, want %v", err, named)
	}
}

func TestStreamStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newScript("rtltcp://pi:1234", step{samples: 5000}, step{block: true})
		st := NewStream(src, StreamOptions{BlockSize: 1000, StallTimeout: 3 * time.Second})
		defer st.Close()
		start := time.Now()
		n, err := drain(t, st)
		if n != 5000 || !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "rtltcp://pi:1234") {
			t.Fatalf("read %d, ended %v; want 5000 then ErrStalled naming the source", n, err)
		}
		if waited := time.Since(start); waited != 3*time.Second {
			t.Errorf("stall reported after %v, want 3s", waited) // fake clock: exact
		}
		// The stream closed the source, which ends the reader goroutine.
		synctest.Wait()
		if _, err2 := st.Next(context.Background()); err2 != err {
			t.Errorf("Next after stall = %v", err2)
		}
	})
}

func TestStreamSlowSourceIsNoStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Data every 2.9 s never trips a 3 s stall timeout.
		var steps []step
		for range 5 {
			steps = append(steps, step{pause: 2900 * time.Millisecond, samples: 10})
		}
		st := NewStream(newScript("slow", steps...), StreamOptions{BlockSize: 10, StallTimeout: 3 * time.Second})
		defer st.Close()
		if n, err := drain(t, st); n != 50 || err != io.EOF {
			t.Fatalf("read %d, ended %v; want 50 and io.EOF", n, err)
		}
	})
}

func TestStreamSlowConsumerIsNoStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := NewStream(newScript("fast", step{samples: 100}), StreamOptions{BlockSize: 10, Blocks: 2, StallTimeout: time.Second})
		defer st.Close()
		for i := 0; ; i++ {
			b, err := st.Next(context.Background())
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("block %d: %v", i, err)
			}
			// The behaviour under test: a consumer holding blocks for 5 s,
			// longer than the stall timeout (fake time of synctest), is not
			// the source's fault.
			time.Sleep(5 * time.Second)
			st.Release(b)
		}
	})
}

func TestStreamCloseUnblocksNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := NewStream(newScript("silent", step{block: true}), StreamOptions{StallTimeout: time.Hour})
		errc := make(chan error)
		go func() {
			_, err := st.Next(context.Background())
			errc <- err
		}()
		// Fake time (synctest): a minute with Next blocked on a silent
		// source passes at once; Next must still be waiting.
		time.Sleep(time.Minute)
		select {
		case err := <-errc:
			t.Fatalf("Next returned %v before Close", err)
		default:
		}
		st.Close()
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("Next = %v, want ErrClosed", err)
		}
	})
}

func TestStreamContextCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := NewStream(newScript("silent", step{block: true}), StreamOptions{StallTimeout: time.Hour})
		defer st.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := st.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next = %v, want the context's error", err)
		}
	})
}

type nopSource struct{}

func (s *nopSource) Read(buf []complex64) (int, error) { return len(buf), nil }
func (s *nopSource) Info() Info                        { return Info{Name: "nop"} }
func (s *nopSource) Close() error                      { return nil }

func BenchmarkStream(b *testing.B) {
	st := NewStream(&nopSource{}, StreamOptions{})
	defer st.Close()
	ctx := context.Background()
	b.ReportAllocs()
	blk := 0
	for b.Loop() {
		bl, err := st.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		blk = len(bl.Samples)
		st.Release(bl)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/block")
	b.ReportMetric(float64(blk), "samples/block")
}
