package vw1871

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/backoff"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/vw1871/bluez"
)

// Config tunes a Source. The zero value works.
type Config struct {
	Stdin  io.Reader    // for "-"; nil: os.Stdin
	Logger *slog.Logger // nil: slog.Default()
	// KeepCRC hands frames over in format B with their CRCs (see Frame).
	KeepCRC bool
	// BusAddress is the D-Bus BlueZ is on; empty: the system bus (which
	// honours DBUS_SYSTEM_BUS_ADDRESS).
	BusAddress string
	// RetryMin and RetryMax bound the wait before reconnecting a live
	// input, doubling from one to the other (defaults 1 s and 30 s).
	RetryMin, RetryMax time.Duration
	// DialTimeout bounds a TCP connect (default 10 s); DiscoveryTimeout
	// and ConnectTimeout bound a Bluetooth scan and connect (default 30 s).
	DialTimeout      time.Duration
	DiscoveryTimeout time.Duration
	ConnectTimeout   time.Duration
}

// SourceStats is the parser's counts plus the connection's state.
type SourceStats struct {
	Stats
	Connects  int64  // successful (re)connections of a live input
	Connected bool   // a live input is up now
	LastError string // why it last failed, "" if never
}

// Source reads a VW1871 stream from a file, stdin, a TCP bridge, a serial
// port or Bluetooth LE, and hands over its frames.
type Source struct {
	spec Spec
	cfg  Config
	log  *slog.Logger

	mu    sync.Mutex
	stats SourceStats
}

// New returns a source for spec; it opens nothing until Run.
func New(spec Spec, cfg Config) *Source {
	if cfg.Stdin == nil {
		cfg.Stdin = os.Stdin
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Source{spec: spec, cfg: cfg, log: log}
}

// Name is the input spec, "vw1871:…".
func (s *Source) Name() string { return s.spec.String() }

// Live reports whether the input is a connection or a device: such a
// source reconnects by itself and its Run ends only with ctx. A file or
// stdin ends.
func (s *Source) Live() bool { return s.spec.Live() }

// Stats returns the counts so far; safe to call while Run runs.
func (s *Source) Stats() SourceStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Run reads the stream and calls emit for every frame, in order, from
// one goroutine; the Frame's Data is the callee's to keep. Each dropped
// record is reported to skip (an error wrapping ErrCut, ErrTrailerCRC,
// ErrFrameCRC or ErrLength); skip may be nil. A file or stdin is read to
// its end (nil) or to a read error; a live input reconnects with backoff,
// logging what is wrong and when it has recovered, until ctx ends
// (ctx.Err()).
func (s *Source) Run(ctx context.Context, emit func(Frame), skip func(error)) error {
	if skip == nil {
		skip = func(error) {}
	}
	r := &runner{src: s, emit: emit}
	r.p = NewParser(ParserOptions{KeepCRC: s.cfg.KeepCRC, OnDrop: func(reason error, pos int64) {
		skip(fmt.Errorf("%s: record at byte %d dropped: %w", s.Name(), pos, reason))
	}})
	if !s.Live() {
		return r.readOnce(ctx)
	}
	return r.reconnect(ctx)
}

type runner struct {
	src  *Source
	p    *Parser
	emit func(Frame)
}

func (r *runner) deliver(f Frame) {
	f.Data = bytes.Clone(f.Data)
	r.emit(f)
}

func (r *runner) feed(chunk []byte) {
	r.p.Feed(chunk, time.Now(), r.deliver)
	r.account()
}

func (r *runner) flush() {
	r.p.Flush(time.Now(), r.deliver)
	r.account()
}

// account publishes the parser's counts.
func (r *runner) account() {
	st := r.p.Stats()
	r.src.mu.Lock()
	r.src.stats.Stats = st
	r.src.mu.Unlock()
}

func (r *runner) readOnce(ctx context.Context) error {
	s := r.src
	var in io.Reader
	if s.spec.Kind == Stdin {
		in = s.cfg.Stdin
	} else {
		f, err := os.Open(s.spec.Path)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name(), err)
		}
		defer f.Close()
		in = f
	}
	err := r.pump(ctx, in)
	r.flush()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	return nil
}

// pump feeds everything r yields until it ends (nil) or fails. A reader
// that may block (stdin, a pipe) is read from its own goroutine so that
// ctx ends the wait.
func (r *runner) pump(ctx context.Context, in io.Reader) error {
	type chunk struct {
		b   []byte
		err error
	}
	chunks := make(chan chunk)
	free := make(chan []byte, 2)
	free <- make([]byte, 4096)
	free <- make([]byte, 4096)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-done:
				return
			}
			n, err := in.Read(buf)
			select {
			case chunks <- chunk{buf[:n], err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-chunks:
			if len(c.b) > 0 {
				r.feed(c.b)
			}
			if c.err != nil {
				if errors.Is(c.err, io.EOF) {
					return nil
				}
				return c.err
			}
			free <- c.b[:cap(c.b)]
		}
	}
}

// reconnect runs sessions of a live input until ctx ends.
func (r *runner) reconnect(ctx context.Context) error {
	s := r.src
	retry := backoff.Backoff{Min: s.cfg.RetryMin, Max: s.cfg.RetryMax}
	var downSince time.Time
	var lastErr string
	for {
		var upAt time.Time
		up := func(detail ...any) {
			upAt = time.Now()
			s.mu.Lock()
			s.stats.Connects++
			s.stats.Connected = true
			s.mu.Unlock()
			args := append([]any{"input", s.Name()}, detail...)
			if downSince.IsZero() {
				s.log.Info("vw1871 input connected", args...)
			} else {
				s.log.Info("vw1871 input recovered", append(args, "down_for", time.Since(downSince).Round(time.Millisecond), "was", lastErr)...)
			}
			downSince = time.Time{}
		}
		err := r.session(ctx, up)
		r.flush()
		s.mu.Lock()
		s.stats.Connected = false
		s.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			err = errors.New("the stream ended")
		}
		if !upAt.IsZero() && time.Since(upAt) > retry.Limit() {
			retry.Reset() // it ran well for a while: back off afresh
		}
		if downSince.IsZero() {
			downSince = time.Now()
		}
		lastErr = err.Error()
		s.mu.Lock()
		s.stats.LastError = lastErr
		s.mu.Unlock()
		wait := retry.Next()
		s.log.Error("vw1871 input lost; reconnecting", "input", s.Name(), "err", err, "retry_in", wait)
		if !backoff.Wait(ctx, wait) {
			return ctx.Err()
		}
	}
}

// session runs one connection of a live input; up is called once it
// delivers.
func (r *runner) session(ctx context.Context, up func(detail ...any)) error {
	s := r.src
	switch s.spec.Kind {
	case TCP:
		d := net.Dialer{Timeout: s.cfg.DialTimeout}
		c, err := d.DialContext(ctx, "tcp", s.spec.Addr)
		if err != nil {
			return fmt.Errorf("cannot connect to the bridge: %w", err)
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		up("remote", c.RemoteAddr().String())
		return r.readConn(ctx, c)
	case Serial:
		f, err := openSerial(s.spec.Path, s.spec.Baud)
		if err != nil {
			return err
		}
		defer f.Close()
		stop := context.AfterFunc(ctx, func() { f.Close() })
		defer stop()
		up("baud", s.spec.Baud)
		return r.readConn(ctx, f)
	case BLE:
		cfg := bluez.Config{
			BusAddress: s.cfg.BusAddress, Adapter: s.spec.Adapter, Device: s.spec.Device, UUIDs: DataUUIDs,
			DiscoveryTimeout: s.cfg.DiscoveryTimeout, ConnectTimeout: s.cfg.ConnectTimeout, Logger: s.log,
		}
		return bluez.Stream(ctx, cfg, func(i bluez.Info) {
			up("device", i.Name, "address", i.Address, "adapter", i.Adapter, "characteristic", i.Characteristic)
		}, r.feed)
	}
	return fmt.Errorf("%s is not a live input", s.Name())
}

// readConn feeds a connection or device until it fails; closing it (on
// ctx) ends the read.
func (r *runner) readConn(ctx context.Context, c io.Reader) error {
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			r.feed(buf[:n])
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return errors.New("the other end closed the connection")
			}
			return err
		}
	}
}
