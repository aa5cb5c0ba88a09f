package iq

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const testdataIQ = "../../testdata/iq/"

func TestOpenRealRecording(t *testing.T) {
	path := testdataIQ + "rtlsdr_868.950M_1M6_samples2.cu8"
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	src, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	info := src.Info()
	if info.Format != CU8 || info.SampleRate != 1.6e6 || info.CenterHz != 868.95e6 || !strings.Contains(info.Name, "samples2.cu8") {
		t.Errorf("Info = %+v", info)
	}
	got, err := readAll(t, src, []int{4096, 333})
	if err != io.EOF {
		t.Fatalf("ended with %v, want io.EOF", err)
	}
	if int64(len(got)) != st.Size()/2 {
		t.Fatalf("read %d samples from %d bytes", len(got), st.Size())
	}
	for _, i := range []int{0, 1, len(got) / 2, len(got) - 1} {
		want := complex((float32(raw[2*i])-127.5)/127.5, (float32(raw[2*i+1])-127.5)/127.5)
		if got[i] != want {
			t.Errorf("sample %d = %v, want %v", i, got[i], want)
		}
	}
	if err := src.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestOpenOptionsOverrideName(t *testing.T) {
	src, err := Open(context.Background(), testdataIQ+"rtlsdr_868.625M_2M4_issue48.cu8", Options{Format: CS8, SampleRate: 2.048e6, CenterHz: 868e6})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if info := src.Info(); info.Format != CS8 || info.SampleRate != 2.048e6 || info.CenterHz != 868e6 {
		t.Errorf("Info = %+v", info)
	}
}

func TestOpenFormatFromExtension(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x_1M.cs16")
	if err := os.WriteFile(path, []byte{0, 0x40, 0, 0xc0}, 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := Open(context.Background(), "file://"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	buf := make([]complex64, 4)
	n, err := src.Read(buf)
	if n != 1 || buf[0] != complex(0.5, -0.5) || err != nil {
		t.Fatalf("Read = %d %v %v", n, buf[:n], err)
	}
	if _, err := src.Read(buf); err != io.EOF {
		t.Fatalf("second Read: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	noRate := filepath.Join(dir, "capture.cu8")
	if err := os.WriteFile(noRate, []byte{1, 2}, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		spec    string
		opts    Options
		is      error
		mention string
	}{
		{"", Options{}, ErrInput, "no input"},
		{"  ", Options{}, ErrInput, "no input"},
		{filepath.Join(dir, "missing_1M.cu8"), Options{}, os.ErrNotExist, "missing_1M.cu8"},
		{noRate, Options{}, ErrNoSampleRate, "capture.cu8"},
		{noRate, Options{SampleRate: 1}, ErrInput, "capture.cu8"},
		{noRate, Options{Format: Format(42)}, ErrFormat, "capture.cu8"},
		{dir + "/", Options{SampleRate: 1e6}, ErrInput, "directory"},
		{"-", Options{}, ErrNoSampleRate, "stdin"},
		{"http://example.com/x.cu8", Options{}, ErrInput, `unknown scheme "http"`},
		{"rtltcp://", Options{}, ErrInput, "rtltcp://"},
		{"rtltcp://:1234", Options{}, ErrInput, "no host"},
		{"rtltcp://host:99999", Options{}, ErrInput, "bad port"},
		{"rtltcp://host:12/path", Options{}, ErrInput, "rtltcp://host:12/path"},
		{"rtltcp://127.0.0.1:1", Options{Format: CS16}, ErrFormat, "cu8 only"},
		{"rtltcp://127.0.0.1:1", Options{Gain: "loud"}, ErrGain, "loud"},
		{"rtltcp://127.0.0.1:1", Options{SampleRate: -5}, ErrInput, "sample rate"},
	}
	for _, tt := range tests {
		src, err := Open(context.Background(), tt.spec, tt.opts)
		if err == nil {
			src.Close()
			t.Errorf("Open(%q) succeeded", tt.spec)
			continue
		}
		if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("Open(%q) = %v; want %v mentioning %q", tt.spec, err, tt.is, tt.mention)
		}
	}
}

func TestRTLTCPAddr(t *testing.T) {
	for in, want := range map[string]string{
		"pi:1234":     "pi:1234",
		"pi":          "pi:1234",
		"10.0.0.2:7":  "10.0.0.2:7",
		"[::1]:1235":  "[::1]:1235",
		"[fe80::1]":   "[fe80::1]:1234",
		"pi.local:99": "pi.local:99",
	} {
		got, err := rtltcpAddr("rtltcp://"+in, in)
		if err != nil || got != want {
			t.Errorf("rtltcpAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestFileSourceContextCancel(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	src := newFileSource(ctx, r, Info{Name: "pipe", Format: CU8, SampleRate: 1e6})
	defer src.Close()
	done := make(chan error, 1)
	go func() {
		_, err := src.Read(make([]complex64, 16))
		done <- err
	}()
	// Cancel while Read waits for the pipe, the case that needs Close to
	// unblock it.
	deadline := time.Now().Add(5 * time.Second)
	for !goroutineWaits("IO wait", "(*fileSource).Read") {
		if time.Now().After(deadline) {
			t.Fatal("Read never blocked on the empty pipe")
		}
		runtime.Gosched()
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "pipe") {
			t.Fatalf("Read after cancel = %v, want context.Canceled naming the source", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the context did not unblock Read")
	}
}

func TestNewReaderSource(t *testing.T) {
	src, err := NewReaderSource(strings.NewReader("\x00\x40\x00\xc0\x00"), "pipe", Options{Format: CS16, SampleRate: 1e6, CenterHz: 923.1e6})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if info := src.Info(); info != (Info{Name: "pipe", Format: CS16, SampleRate: 1e6, CenterHz: 923.1e6}) {
		t.Errorf("Info = %+v", info)
	}
	got, err := readAll(t, src, []int{8})
	if len(got) != 1 || got[0] != complex(0.5, -0.5) || !errors.Is(err, ErrPartialSample) || !strings.Contains(err.Error(), "pipe") {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := NewReaderSource(strings.NewReader(""), "pipe", Options{}); !errors.Is(err, ErrNoSampleRate) {
		t.Errorf("no rate: %v", err)
	}
	if _, err := NewReaderSource(strings.NewReader(""), "pipe", Options{SampleRate: 1e6, Format: 9}); !errors.Is(err, ErrFormat) {
		t.Errorf("bad format: %v", err)
	}
}

// goroutineWaits reports whether a goroutine is in the given wait state
// (as runtime.Stack names it) with fn on its stack.
func goroutineWaits(state, fn string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "["+state) && strings.Contains(g, fn) {
			return true
		}
	}
	return false
}
