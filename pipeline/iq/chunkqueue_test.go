package iq

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestChunkQueueOrderAndEnd(t *testing.T) {
	q := newChunkQueue(4, 8, 0)
	var want []byte
	for i := range 3 {
		p := []byte{byte(i), byte(i), byte(i), 10, 11, 12, 13, 14, 15, 16, 17} // 11 bytes: spans 2 chunks
		if i == 2 {
			p = p[:3]
		}
		if !q.push(p) {
			if i < 2 {
				t.Fatalf("push %d dropped with free chunks", i)
			}
			continue
		}
		want = append(want, p...)
	}
	boom := errors.New("device gone")
	q.end(boom)
	got, err := io.ReadAll(iotestReader{q})
	if !errors.Is(err, boom) {
		t.Fatalf("ended with %v, want %v after the queued bytes", err, boom)
	}
	if string(got) != string(want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

// iotestReader hides chunkQueue's other methods from io.ReadAll.
type iotestReader struct{ r io.Reader }

func (r iotestReader) Read(p []byte) (int, error) { return r.r.Read(p) }

func TestChunkQueueDropsWhenFull(t *testing.T) {
	q := newChunkQueue(2, 4, 0)
	if !q.push([]byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatal("first push dropped")
	}
	if q.push([]byte{9, 9, 9}) {
		t.Fatal("push with no free chunk reported success")
	}
	if q.Dropped() != 3 {
		t.Fatalf("Dropped = %d, want 3", q.Dropped())
	}
	// Moving on to the next chunk frees the one read.
	buf := make([]byte, 4)
	for range 2 {
		if _, err := q.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if !q.push([]byte{7}) {
		t.Fatal("push after reading dropped")
	}
	q.end(nil)
	n, err := q.Read(buf)
	if n != 1 || buf[0] != 7 || err != nil {
		t.Fatalf("Read = %d % x %v", n, buf[:n], err)
	}
	if _, err := q.Read(buf); err != io.EOF {
		t.Fatalf("Read after end = %v", err)
	}
}

func TestChunkQueueStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newChunkQueue(2, 4, 2*time.Second)
		go func() {
			// The behaviour under test: data after 1.5 s of fake time
			// (synctest), inside the 2 s stall timeout.
			time.Sleep(1500 * time.Millisecond)
			q.push([]byte{1, 2})
		}()
		buf := make([]byte, 4)
		if n, err := q.Read(buf); n != 2 || err != nil {
			t.Fatalf("Read = %d, %v", n, err)
		}
		start := time.Now()
		_, err := q.Read(buf)
		if !errors.Is(err, ErrStalled) || time.Since(start) != 2*time.Second {
			t.Fatalf("Read = %v after %v, want ErrStalled after 2s", err, time.Since(start))
		}
	})
}

func TestSelectDevice(t *testing.T) {
	devs := []usbDevice{
		{Index: 0, Manufacturer: "Realtek", Product: "RTL2838UHIDIR", Serial: "00000001"},
		{Index: 1, Manufacturer: "RTLSDRBlog", Product: "Blog V4", Serial: "FLOWIQ"},
		{Index: 2, Manufacturer: "Realtek", Product: "RTL2838UHIDIR", Serial: "7"},
	}
	for sel, want := range map[string]int{"": 0, "0": 0, "1": 1, "2": 2, "00000001": 0, "FLOWIQ": 1, "7": 2} {
		got, err := selectDevice(sel, devs)
		if err != nil || got != want {
			t.Errorf("selectDevice(%q) = %d, %v; want %d", sel, got, err, want)
		}
	}
	for _, sel := range []string{"3", "flowiq", "0001", "x"} {
		_, err := selectDevice(sel, devs)
		if !errors.Is(err, ErrSerialUnknown) {
			t.Errorf("selectDevice(%q) = %v, want ErrSerialUnknown", sel, err)
			continue
		}
		for _, s := range []string{"00000001", "FLOWIQ", "#2", "rtlsdr://" + sel} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("selectDevice(%q) error %q does not mention %q", sel, err, s)
			}
		}
	}
	if _, err := selectDevice("0", nil); !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "passthrough") {
		t.Errorf("no devices: %v", err)
	}
}

func TestNearestGain(t *testing.T) {
	r820t := []int{0, 9, 14, 27, 37, 77, 87, 125, 144, 157, 166, 197, 207, 229, 254, 280, 297, 328, 338, 364, 372, 386, 402, 421, 434, 439, 445, 480, 496}
	for want, exp := range map[int]int{496: 496, 500: 496, 420: 421, 0: 0, -10: 0, 400: 402, 10: 9} {
		if got, ok := nearestGain(want, r820t); !ok || got != exp {
			t.Errorf("nearestGain(%d) = %d, want %d", want, got, exp)
		}
	}
	if _, ok := nearestGain(100, nil); ok {
		t.Error("nearestGain with no gains reported ok")
	}
}

func TestUSBOpenHint(t *testing.T) {
	for msg, want := range map[string]error{
		"resource busy": ErrDeviceBusy,
		"no such device (it may have been disconnected)": ErrNoDevice,
	} {
		if hint, got := usbOpenHint(msg); got != want || hint == "" {
			t.Errorf("usbOpenHint(%q) = %v, %q", msg, got, hint)
		}
	}
	if hint, _ := usbOpenHint("resource busy"); !strings.Contains(hint, "-6") || !strings.Contains(hint, "dvb_usb_rtl28xxu") {
		t.Errorf("busy hint %q", hint)
	}
	if hint, _ := usbOpenHint("access denied (insufficient permissions)"); !strings.Contains(hint, "udev") {
		t.Errorf("access hint %q", hint)
	}
}
