package addon

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/iq"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
)

// Radio are the receiver settings of the radio option, validated with the
// same parsers as the run command's flags and kept as text, so they feed the
// command exactly like the [radio] section of meters.toml (see Settings).
type Radio struct {
	// Device selects the USB dongle by serial number or index, as
	// rtlsdr://DEVICE does; empty means the first dongle.
	Device string
	// RTLTCP is the host:port of an rtl_tcp server used instead of a USB
	// dongle; empty means USB.
	RTLTCP    string
	Frequency string // tuned centre frequency, e.g. "868.95M"
	// Channel is the frequency the meters send on; empty: Frequency. Set
	// apart from it to tune beside a channel (away from the dongle's DC
	// spike) or to try neighbouring channels of the 915–928 MHz band.
	Channel string
	// ChipRate ("100k") and Deviation ("45k") of the meters' FSK; empty:
	// the demodulator's C1/T1 values (the [radio] section of meters.toml
	// may still set them).
	ChipRate   string
	Deviation  string
	SampleRate string   // e.g. "1.6M"
	Modes      []string // "C1", "T1", in that order
	Gain       string   // "auto" or dB, e.g. "49.6"
	PPM        int      // crystal correction, parts per million
}

// DefaultRadio is the radio option of a fresh install: C1 and T1 on
// 868.95 MHz at 1.6 MS/s (16 samples per chip), automatic gain.
func DefaultRadio() Radio {
	return Radio{Frequency: "868.95M", SampleRate: "1.6M", Modes: []string{"C1", "T1"}, Gain: "auto"}
}

// Input is the run command's --input for these settings:
// rtltcp://HOST:PORT, or rtlsdr://DEVICE (rtlsdr://0 for the first dongle).
func (r Radio) Input() string {
	switch {
	case r.RTLTCP != "":
		return "rtltcp://" + r.RTLTCP
	case r.Device != "":
		return "rtlsdr://" + r.Device
	}
	return "rtlsdr://0"
}

// Settings returns the radio settings in the form of the [radio] section of
// meters.toml, which the run command merges with its flags. Without a
// channel option the frequency is the meters' channel as well as the
// tuning: left to its 868.95 MHz default, the channel would fall outside
// the band captured at 923 MHz.
func (r Radio) Settings() meters.Radio {
	ppm := r.PPM
	return meters.Radio{
		Input:     r.Input(),
		Center:    r.Frequency,
		Channel:   r.channel(),
		ChipRate:  r.ChipRate,
		Deviation: r.Deviation,
		Rate:      r.SampleRate,
		Gain:      r.Gain,
		PPM:       &ppm,
		Modes:     append([]string(nil), r.Modes...),
	}
}

func (r Radio) channel() string {
	if r.Channel != "" {
		return r.Channel
	}
	return r.Frequency
}

func (r Radio) String() string {
	s := fmt.Sprintf("%s at %s, %s S/s, %s, gain %s, %d ppm",
		r.Input(), r.Frequency, r.SampleRate, strings.Join(r.Modes, "+"), r.Gain, r.PPM)
	if r.Channel != "" {
		s += ", channel " + r.Channel
	}
	if r.ChipRate != "" {
		s += ", chip rate " + r.ChipRate
	}
	if r.Deviation != "" {
		s += ", deviation " + r.Deviation
	}
	return s
}

// sampleRates are the rates the schema offers (list(...) in config.yaml).
var sampleRates = []string{"1.0M", "1.2M", "1.6M", "2.0M", "2.048M", "2.4M"}

// Limits of an RTL-SDR (R820T/R828D tuner) and of the ppm option.
const (
	minFrequencyHz = 24e6
	maxFrequencyHz = 1766e6
	maxPPM         = 200
)

// Plausible FSK parameters of a wireless M-Bus meter: S1's 32.768 kchip/s
// to well above C1/T1's 100 kchip/s, and deviations around their ±45–50 kHz.
// Outside these a typo (a missing "k") is far more likely than a meter.
var (
	chipRateRange  = [2]float64{10e3, 300e3}
	deviationRange = [2]float64{5e3, 200e3}
)

// decode reads the radio option. A bad field is reported and keeps its
// default.
func (r *Radio) decode(raw json.RawMessage) []error {
	if string(raw) == "null" {
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return []error{&OptionError{Option: "radio", Err: fmt.Errorf("%w: want a group of settings, got %s", ErrBadOption, jsonKind(raw))}}
	}
	var errs []error
	report := func(name string, err error) {
		errs = append(errs, &OptionError{Option: "radio." + name, Err: err})
	}
	bad := func(name, format string, args ...any) {
		report(name, fmt.Errorf("%w: "+format, append([]any{ErrBadOption}, args...)...))
	}
	var s string
	if decodeString(fields, "device", &s, report) {
		r.Device = s
	}
	if decodeString(fields, "rtl_tcp", &s, report) {
		if addr, err := rtlTCPAddr(s); err != nil {
			bad("rtl_tcp", "%v; using the USB dongle", err)
		} else {
			r.RTLTCP = addr
		}
	}
	if r.RTLTCP != "" && r.Device != "" {
		bad("device", "both device and rtl_tcp are set; rtl_tcp %s is used and device is ignored", r.RTLTCP)
		r.Device = ""
	}
	if decodeString(fields, "frequency", &s, report) {
		hz, err := iq.ParseHz(s)
		switch {
		case err != nil:
			bad("frequency", "%v; using %s", err, r.Frequency)
		case hz < minFrequencyHz || hz > maxFrequencyHz:
			bad("frequency", "%s is outside what an RTL-SDR can tune (24M to 1766M); using %s", s, r.Frequency)
		default:
			r.Frequency = s
		}
	}
	hzField := func(name string, dst *string, lo, hi float64) {
		if !decodeString(fields, name, &s, report) {
			return
		}
		hz, err := iq.ParseHz(s)
		switch {
		case err != nil:
			bad(name, "%v; using the default", err)
		case hz < lo || hz > hi:
			bad(name, "%s is outside %s to %s; using the default", s, hzText(lo), hzText(hi))
		default:
			*dst = s
		}
	}
	hzField("channel", &r.Channel, minFrequencyHz, maxFrequencyHz)
	hzField("chip_rate", &r.ChipRate, chipRateRange[0], chipRateRange[1])
	hzField("deviation", &r.Deviation, deviationRange[0], deviationRange[1])
	if decodeString(fields, "sample_rate", &s, report) {
		if slices.Contains(sampleRates, s) {
			r.SampleRate = s
		} else {
			bad("sample_rate", "%q is not one of %s; using %s", s, strings.Join(sampleRates, ", "), r.SampleRate)
		}
	}
	if decodeString(fields, "modes", &s, report) {
		if m, err := parseModes(s); err != nil {
			bad("modes", "%v; using %s", err, strings.Join(r.Modes, ","))
		} else {
			r.Modes = m
		}
	}
	if decodeString(fields, "gain", &s, report) {
		if auto, _, err := iq.ParseGain(s); err != nil {
			bad("gain", "%v; using %s", err, r.Gain)
		} else if auto {
			r.Gain = "auto"
		} else {
			r.Gain = s
		}
	}
	if v, ok := fields["ppm"]; ok && string(v) != "null" {
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			bad("ppm", "want a whole number, got %s; using %d", jsonKind(v), r.PPM)
		} else if p, err := strconv.Atoi(n.String()); err != nil || p < -maxPPM || p > maxPPM {
			bad("ppm", "%s is not a whole number from -%d to %d; using %d", n, maxPPM, maxPPM, r.PPM)
		} else {
			r.PPM = p
		}
	}
	if err := r.checkDemod(); err != nil {
		errs = append(errs, &OptionError{Option: "radio", Err: fmt.Errorf("%w: channel %s, chip rate %s, deviation %s: %w; using channel = frequency and the default chip rate and deviation",
			ErrBadOption, r.channel(), orDefault(r.ChipRate), orDefault(r.Deviation), err)})
		r.Channel, r.ChipRate, r.Deviation = "", "", ""
	}
	return errs
}

// checkDemod asks the demodulator whether it can work with these settings
// (the channel inside the captured band, enough samples per chip), so a
// combination that would stop the radio is caught here, named, and
// replaced, rather than failing the add-on's start.
func (r Radio) checkDemod() error {
	if r.Channel == "" && r.ChipRate == "" && r.Deviation == "" {
		return nil
	}
	var c demod.Config
	for _, f := range []struct {
		v   string
		dst *float64
	}{{r.Frequency, &c.CenterHz}, {r.channel(), &c.ChannelHz}, {r.SampleRate, &c.SampleRate}, {r.ChipRate, &c.ChipRate}, {r.Deviation, &c.DeviationHz}} {
		if f.v == "" {
			continue
		}
		hz, err := iq.ParseHz(f.v)
		if err != nil {
			return err
		}
		*f.dst = hz
	}
	_, err := demod.New(c)
	return err
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

// hzText writes a frequency limit the way the options take it.
func hzText(hz float64) string {
	switch {
	case hz >= 1e6:
		return strconv.FormatFloat(hz/1e6, 'f', -1, 64) + "M"
	case hz >= 1e3:
		return strconv.FormatFloat(hz/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(hz, 'f', -1, 64)
}

// parseModes reads "C1", "T1" or "C1,T1" (any order, any case).
func parseModes(s string) ([]string, error) {
	var c1, t1 bool
	for _, m := range strings.Split(s, ",") {
		switch strings.ToUpper(strings.TrimSpace(m)) {
		case "C1":
			c1 = true
		case "T1":
			t1 = true
		default:
			return nil, fmt.Errorf("%q is not C1, T1 or C1,T1", s)
		}
	}
	var out []string
	if c1 {
		out = append(out, "C1")
	}
	if t1 {
		out = append(out, "T1")
	}
	return out, nil
}

// rtlTCPAddr accepts host, host:port or [v6]:port, optionally with an
// rtltcp:// prefix, and returns host:port (port 1234, rtl_tcp's default,
// when omitted).
func rtlTCPAddr(s string) (string, error) {
	for _, p := range [...]string{"rtltcp://", "rtl_tcp://", "tcp://"} {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			s = s[len(p):]
			break
		}
	}
	u, err := url.Parse("tcp://" + s)
	if err != nil || u.Hostname() == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("%q is not host:port (for example 192.168.1.20:1234)", s)
	}
	port := u.Port()
	if port == "" {
		port = "1234"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("%q: the port must be a number from 1 to 65535", s)
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}
