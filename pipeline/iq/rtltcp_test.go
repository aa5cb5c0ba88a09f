package iq

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeRTLTCP is an rtl_tcp server on 127.0.0.1:0 for one client. serve
// runs on the accepted connection; whatever it returns is reported by wait.
type fakeRTLTCP struct {
	ln   net.Listener
	errc chan error
}

func startFake(t *testing.T, serve func(net.Conn) error) *fakeRTLTCP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRTLTCP{ln: ln, errc: make(chan error, 1)}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			f.errc <- err
			return
		}
		defer c.Close()
		f.errc <- serve(c)
	}()
	t.Cleanup(func() { ln.Close() })
	return f
}

func (f *fakeRTLTCP) spec() string { return "rtltcp://" + f.ln.Addr().String() }

func (f *fakeRTLTCP) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-f.errc:
		if err != nil {
			t.Fatalf("fake rtl_tcp server: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fake rtl_tcp server did not finish")
	}
}

func header(tuner, gains uint32) []byte {
	b := []byte(rtltcpMagic)
	b = binary.BigEndian.AppendUint32(b, tuner)
	return binary.BigEndian.AppendUint32(b, gains)
}

type command struct {
	cmd   byte
	param uint32
}

func readCommands(c net.Conn, n int) ([]command, error) {
	b := make([]byte, 5*n)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	cmds := make([]command, n)
	for i := range cmds {
		cmds[i] = command{b[5*i], binary.BigEndian.Uint32(b[5*i+1:])}
	}
	return cmds, nil
}

func TestRTLTCPSettingsAndStream(t *testing.T) {
	payload := make([]byte, 100_001) // odd: the last byte is half a sample
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	tests := []struct {
		name string
		opts Options
		want []command
	}{
		{"manual gain", Options{SampleRate: 2.4e6, CenterHz: 868.625e6, Gain: "49.6", PPM: -3, AGC: true}, []command{
			{cmdSampleRate, 2400000}, {cmdFreqCorr, 0xfffffffd}, {cmdFrequency, 868625000},
			{cmdGainMode, 1}, {cmdGain, 496}, {cmdAGC, 1},
		}},
		{"defaults", Options{}, []command{
			{cmdSampleRate, 1600000}, {cmdFreqCorr, 0}, {cmdFrequency, 868950000}, {cmdGainMode, 0}, {cmdAGC, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t, func(c net.Conn) error {
				if _, err := c.Write(header(5, 29)); err != nil {
					return err
				}
				got, err := readCommands(c, len(tt.want))
				if err != nil {
					return err
				}
				for i := range got {
					if got[i] != tt.want[i] {
						return fmt.Errorf("commands %x, want %x", got, tt.want)
					}
				}
				// Stream in uneven writes so pairs split across reads.
				for p := payload; len(p) > 0; {
					n := min(len(p), 4093)
					if _, err := c.Write(p[:n]); err != nil {
						return err
					}
					p = p[n:]
				}
				return nil
			})
			src, err := Open(context.Background(), srv.spec(), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if info := src.Info(); !strings.Contains(info.Name, "R820T") || info.Format != CU8 {
				t.Errorf("Info = %+v", info)
			}
			got, err := readAll(t, src, []int{1000, 17})
			if !errors.Is(err, ErrDisconnected) {
				t.Errorf("end of stream: %v, want ErrDisconnected", err)
			}
			want := make([]complex64, len(payload)/2)
			CU8.Convert(want, payload)
			if len(got) != len(want) {
				t.Fatalf("got %d samples, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("sample %d = %v, want %v", i, got[i], want[i])
				}
			}
			srv.wait(t)
		})
	}
}

func TestRTLTCPNotAServer(t *testing.T) {
	tests := []struct {
		name     string
		greeting []byte
		close    bool
		is       error
		mention  string
	}{
		{"ssh", []byte("SSH-2.0-OpenSSH_9.6\r\n"), false, ErrNotRTLTCP, `"SSH-"`},
		{"http", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), true, ErrNotRTLTCP, `"HTTP"`},
		{"short", []byte("RTL0\x00\x00"), true, ErrDisconnected, "before sending its header"},
		{"closes", nil, true, ErrDisconnected, "before sending its header"},
		{"silent", nil, false, ErrNotRTLTCP, "no rtl_tcp header within"},
		{"implausible", append([]byte("RTL0"), 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff), false, ErrNotRTLTCP, "implausible"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hold := make(chan struct{})
			defer close(hold)
			srv := startFake(t, func(c net.Conn) error {
				c.Write(tt.greeting)
				if !tt.close {
					<-hold
				}
				return nil
			})
			src, err := Open(context.Background(), srv.spec(), Options{StallTimeout: 300 * time.Millisecond})
			if err == nil {
				src.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.mention) || !strings.Contains(err.Error(), srv.spec()) {
				t.Fatalf("Open = %v; want %v mentioning %q and the address", err, tt.is, tt.mention)
			}
			t.Log(err)
		})
	}
}

func TestRTLTCPConnectRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Open(context.Background(), "rtltcp://"+addr, Options{})
	if err == nil || !strings.Contains(err.Error(), "cannot connect") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Open = %v", err)
	}
}

func TestRTLTCPStall(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	srv := startFake(t, func(c net.Conn) error {
		c.Write(header(5, 29))
		if _, err := readCommands(c, 5); err != nil {
			return err
		}
		c.Write(bytes.Repeat([]byte{128}, 1000))
		<-hold // alive but silent
		return nil
	})
	src, err := Open(context.Background(), srv.spec(), Options{StallTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got, err := readAll(t, src, []int{64})
	if len(got) != 500 || !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), srv.spec()) {
		t.Fatalf("got %d samples, %v; want 500 then ErrStalled naming the server", len(got), err)
	}
	t.Log(err)
}

func TestRTLTCPContextCancel(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	srv := startFake(t, func(c net.Conn) error {
		c.Write(header(1, 14))
		<-hold
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	src, err := Open(ctx, srv.spec(), Options{StallTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if !strings.Contains(src.Info().Name, "E4000") {
		t.Errorf("Name = %q", src.Info().Name)
	}
	done := make(chan error, 1)
	go func() {
		_, err := src.Read(make([]complex64, 64))
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Read = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not unblock Read")
	}
}

func TestParseDongleInfo(t *testing.T) {
	d, err := ParseDongleInfo(header(6, 29))
	if err != nil || d.Tuner() != "R828D" || d.GainCount != 29 {
		t.Fatalf("ParseDongleInfo = %+v, %v", d, err)
	}
	if d, _ := ParseDongleInfo(header(42, 0)); d.Tuner() != "tuner type 42" {
		t.Errorf("unknown tuner named %q", d.Tuner())
	}
	for _, b := range [][]byte{nil, []byte("RTL0"), []byte("RTL1\x00\x00\x00\x05\x00\x00\x00\x1d"), header(5, 5000), header(1<<20, 3)} {
		if _, err := ParseDongleInfo(b); !errors.Is(err, ErrNotRTLTCP) {
			t.Errorf("ParseDongleInfo(% x) = %v, want ErrNotRTLTCP", b, err)
		}
	}
}

func FuzzParseDongleInfo(f *testing.F) {
	f.Add(header(5, 29))
	f.Add(header(0, 0))
	f.Add([]byte("SSH-2.0-OpenSSH"))
	f.Add([]byte("RTL0\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDongleInfo(b)
		if err != nil {
			if !errors.Is(err, ErrNotRTLTCP) {
				t.Fatalf("error %v does not wrap ErrNotRTLTCP", err)
			}
			return
		}
		if !bytes.HasPrefix(b, []byte(rtltcpMagic)) || len(b) < rtltcpHeaderLen {
			t.Fatalf("accepted % x", b)
		}
		if d.Tuner() == "" || !bytes.Equal(header(d.TunerType, d.GainCount), b[:rtltcpHeaderLen]) {
			t.Fatalf("decoded % x as %+v", b, d)
		}
	})
}
