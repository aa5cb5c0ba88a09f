package bluez_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/vw1871/bluez"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/vw1871/bluez/bluetest"
)

const (
	addr     = "C8:2E:18:42:7A:01"
	dataUUID = "49535343-1e4d-4bd9-ba61-23c647249616"
)

var vw = bluetest.Device{Name: "VW1871-0042", Address: addr, UUID: dataUUID}

func config(bus, device string) bluez.Config {
	return bluez.Config{BusAddress: bus, Device: device, UUIDs: []string{dataUUID, "0000ff01-0000-1000-8000-00805f9b34fb"},
		DiscoveryTimeout: 500 * time.Millisecond, ConnectTimeout: 5 * time.Second}
}

// stream runs bluez.Stream in the background, collecting what it hands over.
type stream struct {
	mu    sync.Mutex
	got   []byte
	info  chan bluez.Info
	done  chan struct{}
	err   error
	stop  context.CancelFunc
	calls int
}

func start(t *testing.T, cfg bluez.Config) *stream {
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{info: make(chan bluez.Info, 1), done: make(chan struct{}), stop: cancel}
	go func() {
		defer close(s.done)
		s.err = bluez.Stream(ctx, cfg, func(i bluez.Info) { s.info <- i }, func(b []byte) {
			s.mu.Lock()
			s.got = append(s.got, b...)
			s.calls++
			s.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Error("Stream did not end within 5 s of its context")
		}
	})
	return s
}

func (s *stream) ready(t *testing.T) bluez.Info {
	t.Helper()
	select {
	case i := <-s.info:
		return i
	case <-s.done:
		t.Fatalf("Stream ended before notifications were on: %v", s.err)
	case <-time.After(10 * time.Second):
		t.Fatal("notifications not on within 10 s")
	}
	return bluez.Info{}
}

func (s *stream) waitFor(t *testing.T, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		got := append([]byte(nil), s.got...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fewer than %d bytes within 10 s", n)
	return nil
}

func (s *stream) result(t *testing.T) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(10 * time.Second):
		t.Fatal("Stream did not end within 10 s")
	}
	return nil
}

// Every byte comes through in order, whatever the notification sizes.
func TestStreamSplitNotifications(t *testing.T) {
	for _, tc := range []struct {
		name, device string
		known        bool
	}{
		{"known device by name", "VW1871", true},
		{"scanned by name, any case", "vw1871-00", false},
		{"scanned by address", strings.ToLower(addr), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := bluetest.StartBus(t)
			bz := bluetest.New(t, bus)
			bz.AddAdapter()
			bz.AddDevice(bluetest.Device{Name: "Other", Address: "11:22:33:44:55:66", UUID: dataUUID})
			if tc.known {
				bz.AddDevice(vw)
			} else {
				bz.HideDevice(vw)
			}
			s := start(t, config(bus, tc.device))
			info := s.ready(t)
			if info.Address != addr || info.Name != vw.Name || info.Adapter != "hci0" || info.Characteristic != dataUUID || !info.Connected {
				t.Fatalf("info %+v", info)
			}
			if scans, connects := bz.Counts(); connects != 1 || (scans > 0) == tc.known {
				t.Fatalf("%d scans, %d connects", scans, connects)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			want := make([]byte, 64<<10)
			for i := range want {
				want[i] = byte(rng.IntN(256))
			}
			n := 0
			for rest := want; len(rest) > 0; n++ {
				k := min(20+rng.IntN(225), len(rest))
				bz.Notify(addr, rest[:k])
				rest = rest[k:]
			}
			if got := s.waitFor(t, len(want)); !bytes.Equal(got, want) {
				t.Fatalf("%d bytes differ from the %d sent", len(got), len(want))
			}
			s.mu.Lock()
			calls := s.calls
			s.mu.Unlock()
			if calls != n {
				t.Fatalf("%d chunks handed over, %d notified", calls, n)
			}
		})
	}
}

// The device going away ends Stream with ErrGone.
func TestStreamDeviceGone(t *testing.T) {
	for _, tc := range []struct {
		name string
		gone func(*bluetest.BlueZ)
		want string
	}{
		{"disconnected", func(bz *bluetest.BlueZ) { bz.DropConnection(addr) }, "disconnected"},
		{"removed", func(bz *bluetest.BlueZ) { bz.Vanish(addr) }, "BlueZ removed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := bluetest.StartBus(t)
			bz := bluetest.New(t, bus)
			bz.AddAdapter()
			bz.AddDevice(vw)
			s := start(t, config(bus, "VW1871"))
			s.ready(t)
			bz.Notify(addr, []byte{1, 2, 3})
			s.waitFor(t, 3)
			tc.gone(bz)
			err := s.result(t)
			if !errors.Is(err, bluez.ErrGone) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrGone saying %q", err, tc.want)
			}
		})
	}
}

// Each missing part gets its own error, saying what to look at.
func TestStreamErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(bus string, t *testing.T) // nil: no BlueZ on the bus
		cfg    func(bluez.Config) bluez.Config
		want   error
		saying string
	}{
		{"no D-Bus", nil, func(c bluez.Config) bluez.Config {
			c.BusAddress = "unix:path=/nonexistent/bus"
			return c
		}, bluez.ErrNoBus, "host_dbus"},
		{"no BlueZ", nil, nil, bluez.ErrNoBlueZ, "bluetoothd"},
		{"no adapter", func(bus string, t *testing.T) { bluetest.New(t, bus) }, nil, bluez.ErrNoAdapter, "no adapter"},
		{"no such adapter", func(bus string, t *testing.T) { bluetest.New(t, bus).AddAdapter() }, func(c bluez.Config) bluez.Config {
			c.Adapter = "hci1"
			return c
		}, bluez.ErrNoAdapter, "no adapter hci1; BlueZ has hci0"},
		{"no such device", func(bus string, t *testing.T) {
			bz := bluetest.New(t, bus)
			bz.AddAdapter()
			bz.AddDevice(bluetest.Device{Name: "Phone", Address: "11:22:33:44:55:66"})
		}, nil, bluez.ErrNoDevice, `11:22:33:44:55:66 "Phone"`},
		{"connected elsewhere", func(bus string, t *testing.T) {
			bz := bluetest.New(t, bus)
			bz.AddAdapter()
			d := vw
			d.RefuseConnect = true
			bz.AddDevice(d)
		}, nil, bluez.ErrUnreachable, "le-connection-abort-by-local"},
		{"notifications held by another program", func(bus string, t *testing.T) {
			bz := bluetest.New(t, bus)
			bz.AddAdapter()
			d := vw
			d.NotifyAcquired = true
			bz.AddDevice(d)
		}, nil, bluez.ErrInUse, "Notify acquired"},
		{"no data characteristic", func(bus string, t *testing.T) {
			bz := bluetest.New(t, bus)
			bz.AddAdapter()
			d := vw
			d.UUID = "00002a37-0000-1000-8000-00805f9b34fb"
			bz.AddDevice(d)
		}, nil, bluez.ErrNoCharacteristic, "00002a37"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := bluetest.StartBus(t)
			if tc.setup != nil {
				tc.setup(bus, t)
			}
			cfg := config(bus, "VW1871")
			if tc.cfg != nil {
				cfg = tc.cfg(cfg)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := bluez.Stream(ctx, cfg, func(bluez.Info) { t.Error("ready called") }, func([]byte) {})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.saying) {
				t.Fatalf("got %v\nwant %v saying %q", err, tc.want, tc.saying)
			}
			t.Log(err)
		})
	}
}

// Ending the context stops notifications and disconnects the device
// Stream connected.
func TestStreamCancel(t *testing.T) {
	bus := bluetest.StartBus(t)
	bz := bluetest.New(t, bus)
	bz.AddAdapter()
	bz.AddDevice(vw)
	s := start(t, config(bus, addr))
	s.ready(t)
	s.stop()
	if err := s.result(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if bz.Connected(addr) {
		t.Fatal("device still connected after Stream ended")
	}
}
