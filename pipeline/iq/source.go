// Package iq delivers complex baseband samples from a recording, stdin, an
// rtl_tcp server or a USB RTL-SDR dongle, converts the common sample formats
// without allocating, and detects sources that stall or vanish.
package iq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Source delivers complex samples scaled to roughly [-1, 1].
//
// Read fills buf with up to len(buf) samples and returns how many it wrote;
// like io.Reader, it may return n > 0 together with an error, and callers
// handle the samples first. A recording ends with io.EOF. Errors name the
// source. Close unblocks a pending Read where the platform allows.
type Source interface {
	Read(buf []complex64) (int, error)
	Info() Info
	Close() error
}

// Info describes a source for the demodulator and for messages.
type Info struct {
	Name       string  // for messages: "recording x.cu8", "rtltcp://pi:1234", "rtlsdr://0 (serial 00000001)"
	Format     Format  // the format the source converts from
	SampleRate float64 // samples per second
	CenterHz   float64 // tuned centre frequency, 0 when unknown (a recording without one in its name)
}

// Defaults for live radios: 16 samples per 100 kchip/s chip, C1/T1 channel.
const (
	DefaultSampleRate   = 1.6e6
	DefaultCenterHz     = 868.95e6
	DefaultStallTimeout = 3 * time.Second
)

// Errors, for errors.Is. Messages built on them name the input at fault.
var (
	ErrInput         = errors.New("invalid input")
	ErrFormat        = errors.New("unknown sample format")
	ErrHz            = errors.New("invalid frequency")
	ErrGain          = errors.New("invalid gain")
	ErrNoSampleRate  = errors.New("sample rate unknown")
	ErrPartialSample = errors.New("recording ends inside a sample")
	ErrStalled       = errors.New("source stalled")
	ErrDisconnected  = errors.New("source disconnected")
	ErrNotRTLTCP     = errors.New("not an rtl_tcp server")
	ErrNoUSBSupport  = errors.New("this build has no USB RTL-SDR support; rebuild with -tags rtlsdr (needs librtlsdr-dev) or use rtltcp://host:port")
	ErrNoDevice      = errors.New("no RTL-SDR dongle found")
	ErrDeviceBusy    = errors.New("RTL-SDR device busy")
	ErrSerialUnknown = errors.New("no RTL-SDR with that serial")
	ErrClosed        = errors.New("source closed")
)

// Options tune Open. The zero value is usable for radios.
type Options struct {
	// Format of a recording or stdin. FormatAuto: from the file extension
	// (.cu8 .cs8 .cs16 .cf32), else CU8. Radios always deliver CU8.
	Format Format
	// SampleRate in Hz. Zero: for a recording, from its name
	// (rtlsdr_868.950M_1M6_x.cu8, g001_868.95M_1600k.cu8); for stdin it
	// must be given; for radios DefaultSampleRate.
	SampleRate float64
	// CenterHz to tune a radio to, or the centre a recording was made at.
	// Zero: from a recording's name, DefaultCenterHz for radios.
	CenterHz float64
	// Gain: "" or "auto" for tuner AGC, else dB ("42.1"); radios only.
	Gain string
	// PPM frequency correction of the dongle's crystal; radios only.
	PPM int
	// AGC enables the RTL2832's digital AGC; radios only.
	AGC bool
	// StallTimeout bounds connecting and waiting for data from rtl_tcp.
	// Zero: DefaultStallTimeout.
	StallTimeout time.Duration
	// Logger for warnings (sample drops, settings the device adjusted).
	// Nil: slog.Default().
	Logger *slog.Logger
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

func (o *Options) stallTimeout() time.Duration {
	if o.StallTimeout > 0 {
		return o.StallTimeout
	}
	return DefaultStallTimeout
}

// radioDefaults fills the settings a radio needs and rejects the ones it
// cannot honour.
func (o Options) radioDefaults(name string) (Options, error) {
	if o.Format != FormatAuto && o.Format != CU8 {
		return o, fmt.Errorf("%s: %w %s: an RTL-SDR delivers cu8 only", name, ErrFormat, o.Format)
	}
	o.Format = CU8
	if o.SampleRate == 0 {
		o.SampleRate = DefaultSampleRate
	}
	if o.CenterHz == 0 {
		o.CenterHz = DefaultCenterHz
	}
	if err := checkRate(name, o.SampleRate); err != nil {
		return o, err
	}
	if o.CenterHz < 0 || o.CenterHz > math32Max {
		return o, fmt.Errorf("%s: %w: centre frequency %g Hz out of range", name, ErrHz, o.CenterHz)
	}
	if _, _, err := ParseGain(o.Gain); err != nil {
		return o, fmt.Errorf("%s: %w", name, err)
	}
	return o, nil
}

// math32Max: rtl_tcp carries frequencies and rates as u32.
const math32Max = 1<<32 - 1

func checkRate(name string, rate float64) error {
	// The RTL2832 delivers 225–300 kS/s and 0.9–3.2 MS/s; recordings
	// from other radios may use anything sensible.
	if !(rate >= 1e3 && rate <= 1e9) {
		return fmt.Errorf("%s: %w: sample rate %g out of range", name, ErrInput, rate)
	}
	return nil
}

// Open opens the input named by spec:
//
//	capture.cu8          a recording (format from Options or the extension)
//	-                    stdin (Options.SampleRate required)
//	rtltcp://host:port   an rtl_tcp server (port 1234 when omitted)
//	rtlsdr://0           a USB dongle by index (needs a build with -tags rtlsdr)
//	rtlsdr://SERIAL      a USB dongle by serial
//
// ctx bounds the whole life of the source: cancelling it closes the source
// and unblocks Read.
func Open(ctx context.Context, spec string, opts Options) (Source, error) {
	if opts.Format != FormatAuto && !opts.Format.valid() {
		return nil, fmt.Errorf("input %q: %w %s", spec, ErrFormat, opts.Format)
	}
	switch {
	case strings.TrimSpace(spec) == "":
		return nil, fmt.Errorf("%w: no input given (a file, -, rtltcp://host:port or rtlsdr://0)", ErrInput)
	case spec == "-":
		return openStdin(ctx, opts)
	}
	scheme, rest, ok := strings.Cut(spec, "://")
	if !ok {
		return openFile(ctx, spec, opts)
	}
	switch strings.ToLower(scheme) {
	case "file":
		return openFile(ctx, rest, opts)
	case "rtltcp", "rtl_tcp", "tcp":
		addr, err := rtltcpAddr(spec, rest)
		if err != nil {
			return nil, err
		}
		return openRTLTCP(ctx, addr, opts)
	case "rtlsdr", "rtl_sdr", "usb":
		return openUSB(ctx, strings.TrimSuffix(rest, "/"), opts)
	}
	return nil, fmt.Errorf("input %q: %w: unknown scheme %q (use a file, -, rtltcp://host:port or rtlsdr://0)", spec, ErrInput, scheme)
}

// rtltcpAddr turns "host", "host:port", "[v6]:port" into a dial address.
func rtltcpAddr(spec, rest string) (string, error) {
	u, err := url.Parse("tcp://" + rest)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("input %q: %w: want rtltcp://host:port", spec, ErrInput)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", fmt.Errorf("input %q: %w: no host (want rtltcp://host:port)", spec, ErrInput)
	}
	if port == "" {
		port = "1234" // rtl_tcp's default
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("input %q: %w: bad port %q", spec, ErrInput, port)
	}
	return net.JoinHostPort(host, port), nil
}
