package vw1871

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/syncbuf"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/vw1871/bluez/bluetest"
	"golang.org/x/sys/unix"
)

// capture builds a stream like a real capture: every real frame as a
// record, noise between records, and records cut at seams.
func capture(t *testing.T, seed uint64, seams int) (stream []byte, wants []want) {
	rng := rand.New(rand.NewPCG(seed, 1))
	frames := realFrames(t)
	for i, f := range frames {
		stream = append(stream, noise(rng, rng.IntN(30))...)
		if i%(len(frames)/seams+1) == 1 {
			cut := record(frames[rng.IntN(len(frames))].formatB, 1, 1)
			stream = append(stream, cut[:4+rng.IntN(len(cut)-5)]...)
		}
		level := byte(168 + rng.IntN(69))
		wants = append(wants, want{name: f.name, data: f.stripped, level: level, counter: uint16(i), pos: int64(len(stream))})
		stream = append(stream, record(f.formatB, uint16(i), level)...)
	}
	return stream, wants
}

// sink collects what a Source emits.
type sink struct {
	mu     sync.Mutex
	frames []Frame
	skips  []error
}

func (s *sink) emit(f Frame) {
	s.mu.Lock()
	s.frames = append(s.frames, f)
	s.mu.Unlock()
}

func (s *sink) skip(err error) {
	s.mu.Lock()
	s.skips = append(s.skips, err)
	s.mu.Unlock()
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

func (s *sink) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for s.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d frames within 15 s, want %d", s.count(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// check compares frames and data with wants, ignoring positions (a live
// stream's offsets include what a reconnect lost).
func (s *sink) check(t *testing.T, wants []want) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.frames) != len(wants) {
		t.Fatalf("%d frames, want %d", len(s.frames), len(wants))
	}
	for i, w := range wants {
		g := s.frames[i]
		if !bytes.Equal(g.Data, w.data) || g.Level != w.level || g.Counter != w.counter || !g.Stripped || g.Time.IsZero() {
			t.Fatalf("frame %d (%s): got %X level %d counter %d, want %X level %d counter %d", i, w.name, g.Data, g.Level, g.Counter, w.data, w.level, w.counter)
		}
	}
}

// A captured stream in a file: every complete frame once, with its level;
// the cut ones counted and reported, never handed over.
func TestSourceFile(t *testing.T) {
	stream, wants := capture(t, 1, 4)
	path := filepath.Join(t.TempDir(), "capture.bin")
	if err := os.WriteFile(path, stream, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec  string
		stdin io.Reader
	}{{"vw1871:" + path, nil}, {"vw1871:-", bytes.NewReader(stream)}} {
		t.Run(tc.spec, func(t *testing.T) {
			spec, err := ParseSpec(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			src := New(spec, Config{Stdin: tc.stdin})
			if src.Live() || src.Name() != tc.spec {
				t.Fatalf("Live %v Name %q", src.Live(), src.Name())
			}
			var s sink
			if err := src.Run(context.Background(), s.emit, s.skip); err != nil {
				t.Fatal(err)
			}
			s.check(t, wants)
			for i, w := range wants {
				if s.frames[i].Position != w.pos {
					t.Fatalf("frame %d at %d, want %d", i, s.frames[i].Position, w.pos)
				}
			}
			st := src.Stats()
			if st.Frames != int64(len(wants)) || st.Cut != 4 || st.Dropped() != 4 || st.Bytes != int64(len(stream)) {
				t.Fatalf("stats %+v, want %d frames and 4 cut", st, len(wants))
			}
			if len(s.skips) != 4 || !errors.Is(s.skips[0], ErrCut) || !strings.Contains(s.skips[0].Error(), tc.spec) {
				t.Fatalf("skips %v, want 4 naming the input and ErrCut", s.skips)
			}
			// The handed-over Data is the callee's: no later frame overwrote it.
			if &s.frames[0].Data[0] == &s.frames[1].Data[0] {
				t.Fatal("frames share their Data")
			}
		})
	}
	if err := New(Spec{Kind: File, Path: filepath.Join(t.TempDir(), "missing")}, Config{}).Run(context.Background(), func(Frame) {}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// Stdin that never ends gives way to ctx.
func TestSourceStdinCancel(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	src := New(Spec{Kind: Stdin}, Config{Stdin: r})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var s sink
	go func() { done <- src.Run(ctx, s.emit, s.skip) }()
	stream, _ := capture(t, 2, 1)
	w.Write(stream[:100])
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end within 5 s of its context")
	}
}

func logger() (*slog.Logger, *syncbuf.Buffer) {
	var buf syncbuf.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), &buf
}

// runLive runs a live source in the background until the test ends.
func runLive(t *testing.T, src *Source, s *sink) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, s.emit, s.skip) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run ended with %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not end within 5 s of its context")
		}
	})
}

// A TCP bridge that drops the connection in the middle of a frame and
// comes back: the source reconnects by itself and loses only the frame
// that was cut.
func TestSourceTCPReconnects(t *testing.T) {
	stream, wants := capture(t, 3, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	half := int(wants[len(wants)/2].pos) + 30 // inside a record
	go func() {
		rng := rand.New(rand.NewPCG(4, 5))
		for i, part := range [][]byte{stream[:half], stream[half:]} {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			for rest := part; len(rest) > 0; {
				n := min(1+rng.IntN(200), len(rest))
				if _, err := c.Write(rest[:n]); err != nil {
					break
				}
				rest = rest[n:]
			}
			if i == 0 {
				c.Close()
			} else {
				defer c.Close() // stays open, as a bridge does
			}
		}
		<-make(chan struct{})
	}()
	log, logs := logger()
	spec, _ := ParseSpec("vw1871:tcp://" + ln.Addr().String())
	src := New(spec, Config{Logger: log, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	var s sink
	runLive(t, src, &s)
	lost := len(wants) / 2
	s.waitFor(t, len(wants)-1)
	s.check(t, append(wants[:lost:lost], wants[lost+1:]...))
	st := src.Stats()
	if st.Connects != 2 || !st.Connected || st.Cut != 2 || !strings.Contains(st.LastError, "closed the connection") {
		t.Fatalf("stats %+v, want 2 connects and 2 cut records", st)
	}
	for _, line := range []string{"vw1871 input connected", "vw1871 input lost; reconnecting", "vw1871 input recovered"} {
		if !strings.Contains(logs.String(), line) {
			t.Fatalf("log lacks %q:\n%s", line, logs)
		}
	}
}

// A serial port (a pseudo-terminal here) is put in raw mode at the baud
// rate of the spec, and its stream read.
func TestSourceSerial(t *testing.T) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	defer master.Close()
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts := fmt.Sprintf("/dev/pts/%d", n)
	spec, err := ParseSpec("vw1871:serial:" + pts + "@9600")
	if err != nil {
		t.Fatal(err)
	}
	log, _ := logger()
	src := New(spec, Config{Logger: log, RetryMin: 10 * time.Millisecond})
	var s sink
	runLive(t, src, &s)
	for src.Stats().Connects == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Cflag&unix.CBAUD != unix.B9600 || tio.Lflag&unix.ICANON != 0 || tio.Lflag&unix.ECHO != 0 || tio.Iflag&unix.ICRNL != 0 || tio.Cflag&unix.CSIZE != unix.CS8 {
		t.Fatalf("termios not raw 9600 8N1: cflag %#o lflag %#o iflag %#o", tio.Cflag, tio.Lflag, tio.Iflag)
	}
	stream, wants := capture(t, 6, 1)
	for rest := stream; len(rest) > 0; {
		k := min(64, len(rest))
		if _, err := master.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	s.waitFor(t, len(wants))
	s.check(t, wants)
}

// Bluetooth through a BlueZ double on a private D-Bus: notifications cut
// anywhere deliver every frame; the device vanishing and coming back is
// survived without a restart, and the log says so.
func TestSourceBLE(t *testing.T) {
	bus := bluetest.StartBus(t)
	bz := bluetest.New(t, bus)
	bz.AddAdapter()
	const addr = "C8:2E:18:42:7A:01"
	bz.HideDevice(bluetest.Device{Name: "VW1871-0042", Address: addr, UUID: DataUUIDs[0]})
	log, logs := logger()
	spec, _ := ParseSpec("vw1871:ble://VW1871")
	src := New(spec, Config{Logger: log, BusAddress: bus, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		DiscoveryTimeout: 5 * time.Second, ConnectTimeout: 5 * time.Second})
	var s sink
	runLive(t, src, &s)

	stream, wants := capture(t, 7, 2)
	rng := rand.New(rand.NewPCG(8, 9))
	send := func(b []byte) {
		for rest := b; len(rest) > 0; {
			k := min(20+rng.IntN(225), len(rest))
			bz.Notify(addr, rest[:k])
			rest = rest[k:]
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := bz.Subscribed(ctx); err != nil {
		t.Fatal(err)
	}
	send(stream)
	s.waitFor(t, len(wants))

	// Gone: BlueZ forgets the device; it is found again by a scan.
	bz.Vanish(addr)
	if _, err := bz.Subscribed(ctx); err != nil {
		t.Fatal(err)
	}
	send(stream)
	s.waitFor(t, 2*len(wants))
	// Out of range: disconnected, still known.
	bz.DropConnection(addr)
	if _, err := bz.Subscribed(ctx); err != nil {
		t.Fatal(err)
	}
	send(stream)
	s.waitFor(t, 3*len(wants))

	s.check(t, append(append(append([]want{}, wants...), wants...), wants...))
	st := src.Stats()
	if st.Connects != 3 || st.Cut != 6 || st.Dropped() != 6 {
		t.Fatalf("stats %+v, want 3 connects and 6 cut records", st)
	}
	if scans, connects := bz.Counts(); scans != 2 || connects != 3 {
		t.Fatalf("%d scans and %d connects, want 2 and 3", scans, connects)
	}
	out := logs.String()
	for _, line := range []string{
		`msg="vw1871 input connected" input=vw1871:ble://VW1871 device=VW1871-0042 address=C8:2E:18:42:7A:01 adapter=hci0`,
		`msg="vw1871 input lost; reconnecting" input=vw1871:ble://VW1871 err="the device went away: BlueZ removed VW1871"`,
		`msg="vw1871 input lost; reconnecting" input=vw1871:ble://VW1871 err="the device went away: VW1871 disconnected"`,
		`msg="vw1871 input recovered" input=vw1871:ble://VW1871 device=VW1871-0042`,
	} {
		if !strings.Contains(out, line) {
			t.Fatalf("log lacks %q:\n%s", line, out)
		}
	}
}
