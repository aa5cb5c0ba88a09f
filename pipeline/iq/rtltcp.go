package iq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"time"
)

// rtl_tcp protocol: on connect the server sends a 12-byte dongle info header
// ("RTL0", tuner type u32, gain count u32, big-endian), then streams cu8.
// The client sends 5-byte commands: 1 byte command, u32 big-endian parameter.
const (
	rtltcpMagic     = "RTL0"
	rtltcpHeaderLen = 12

	cmdFrequency  = 0x01 // Hz
	cmdSampleRate = 0x02 // Hz
	cmdGainMode   = 0x03 // 0 auto, 1 manual
	cmdGain       = 0x04 // tenths of a dB
	cmdFreqCorr   = 0x05 // ppm, signed
	cmdAGC        = 0x08 // RTL2832 digital AGC, 0 off, 1 on
)

// tunerNames follows librtlsdr's enum rtlsdr_tuner.
var tunerNames = [...]string{"unknown tuner", "E4000", "FC0012", "FC0013", "FC2580", "R820T", "R828D"}

// DongleInfo is the rtl_tcp header.
type DongleInfo struct {
	TunerType uint32
	GainCount uint32 // number of gains the tuner supports
}

// Tuner returns the tuner's name ("R820T").
func (d DongleInfo) Tuner() string {
	if int(d.TunerType) < len(tunerNames) {
		return tunerNames[d.TunerType]
	}
	return fmt.Sprintf("tuner type %d", d.TunerType)
}

// ParseDongleInfo validates and decodes the 12-byte header an rtl_tcp server
// sends first. Anything else (an HTTP or SSH server, a wrong port) gives an
// error wrapping ErrNotRTLTCP.
func ParseDongleInfo(b []byte) (DongleInfo, error) {
	if len(b) < rtltcpHeaderLen {
		return DongleInfo{}, fmt.Errorf("%w: header is %d bytes, want %d", ErrNotRTLTCP, len(b), rtltcpHeaderLen)
	}
	if string(b[:4]) != rtltcpMagic {
		return DongleInfo{}, fmt.Errorf("%w: it greeted with %q instead of %q", ErrNotRTLTCP, printable(b[:4]), rtltcpMagic)
	}
	d := DongleInfo{TunerType: binary.BigEndian.Uint32(b[4:8]), GainCount: binary.BigEndian.Uint32(b[8:12])}
	// Real tuners have at most a few dozen gain steps; a huge count means
	// the peer speaks something else that happens to start with "RTL0".
	if d.TunerType > 255 || d.GainCount > 1000 {
		return DongleInfo{}, fmt.Errorf("%w: implausible header (tuner type %d, %d gains)", ErrNotRTLTCP, d.TunerType, d.GainCount)
	}
	return d, nil
}

func printable(b []byte) string {
	r := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		r[i] = c
	}
	return string(r)
}

func appendCommand(b []byte, cmd byte, param uint32) []byte {
	return binary.BigEndian.AppendUint32(append(b, cmd), param)
}

// setupCommands returns the commands that put a server into the wanted state.
// All of them are sent every time: rtl_tcp keeps settings from the previous
// client.
func setupCommands(o Options) ([]byte, error) {
	auto, tenths, err := ParseGain(o.Gain)
	if err != nil {
		return nil, err
	}
	if o.PPM < math.MinInt32 || o.PPM > math.MaxInt32 {
		return nil, fmt.Errorf("%w: ppm %d out of range", ErrInput, o.PPM)
	}
	b := make([]byte, 0, 6*5)
	b = appendCommand(b, cmdSampleRate, uint32(math.Round(o.SampleRate)))
	b = appendCommand(b, cmdFreqCorr, uint32(int32(o.PPM)))
	b = appendCommand(b, cmdFrequency, uint32(math.Round(o.CenterHz)))
	if auto {
		b = appendCommand(b, cmdGainMode, 0)
	} else {
		b = appendCommand(b, cmdGainMode, 1)
		b = appendCommand(b, cmdGain, uint32(int32(tenths)))
	}
	agc := uint32(0)
	if o.AGC {
		agc = 1
	}
	return appendCommand(b, cmdAGC, agc), nil
}

type rtltcpSource struct {
	*sampleReader
	ctx  context.Context
	conn net.Conn
	info Info
	dev  DongleInfo
	stop func() bool
	once sync.Once
	cerr error
}

// deadlineReader turns a read that waits longer than timeout into ErrStalled.
type deadlineReader struct {
	conn    net.Conn
	timeout time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if err := d.conn.SetReadDeadline(time.Now().Add(d.timeout)); err != nil {
		return 0, err
	}
	n, err := d.conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("no samples for %v: %w", d.timeout, ErrStalled)
	}
	return n, err
}

func openRTLTCP(ctx context.Context, addr string, opts Options) (Source, error) {
	name := "rtltcp://" + addr
	o, err := opts.radioDefaults(name)
	if err != nil {
		return nil, err
	}
	cmds, err := setupCommands(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	timeout := o.stallTimeout()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot connect (is rtl_tcp running there, started with -a 0.0.0.0?): %w", name, err)
	}
	// Closing the connection is what unblocks a pending Read on cancellation.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (Source, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	hdr := make([]byte, rtltcpHeaderLen)
	conn.SetDeadline(time.Now().Add(timeout))
	if n, err := io.ReadFull(conn, hdr); err != nil {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fail(fmt.Errorf("%w: no rtl_tcp header within %v (wrong port?)", ErrNotRTLTCP, timeout))
		case errors.Is(err, io.ErrUnexpectedEOF) && n >= 4 && string(hdr[:4]) != rtltcpMagic:
			_, err = ParseDongleInfo(hdr[:n])
			return fail(err)
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return fail(fmt.Errorf("server closed the connection before sending its header (rtl_tcp serves one client at a time; is another connected?): %w", ErrDisconnected))
		}
		return fail(fmt.Errorf("reading the rtl_tcp header: %w", err))
	}
	dev, err := ParseDongleInfo(hdr)
	if err != nil {
		return fail(err)
	}
	if _, err := conn.Write(cmds); err != nil {
		return fail(fmt.Errorf("sending settings: %w", err))
	}
	conn.SetDeadline(time.Time{})
	info := Info{
		Name:       fmt.Sprintf("%s (%s)", name, dev.Tuner()),
		Format:     CU8,
		SampleRate: o.SampleRate,
		CenterHz:   o.CenterHz,
	}
	s := &rtltcpSource{ctx: ctx, conn: conn, info: info, dev: dev, stop: stop}
	s.sampleReader = newSampleReader(&deadlineReader{conn: conn, timeout: timeout}, CU8, info.Name, true)
	if auto, _, _ := ParseGain(o.Gain); !auto && dev.GainCount == 0 {
		o.logger().Warn("rtl_tcp server reports no tuner gains; the gain setting may be ignored", "source", info.Name, "gain", o.Gain)
	}
	return s, nil
}

func (s *rtltcpSource) Read(dst []complex64) (int, error) {
	n, err := s.sampleReader.Read(dst)
	if err != nil && s.ctx.Err() != nil {
		err = fmt.Errorf("%s: %w", s.info.Name, context.Cause(s.ctx))
	}
	return n, err
}

func (s *rtltcpSource) Info() Info { return s.info }

// Dongle returns the header the server sent.
func (s *rtltcpSource) Dongle() DongleInfo { return s.dev }

func (s *rtltcpSource) Close() error {
	s.once.Do(func() {
		s.stop()
		if err := s.conn.Close(); err != nil {
			s.cerr = fmt.Errorf("%s: %w", s.info.Name, err)
		}
	})
	return s.cerr
}
