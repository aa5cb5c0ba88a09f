package iq

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
)

// unitScale maps the suffixes rtl_sdr accepts (any case) to multipliers.
var unitScale = map[byte]float64{'k': 1e3, 'K': 1e3, 'm': 1e6, 'M': 1e6, 'g': 1e9, 'G': 1e9}

// ParseHz parses a frequency or sample rate as people type it for rtl_sdr:
// "868.95M", "2400k", "1600000", "2.048M", "1e6", "0.5G", an optional "Hz"
// ("868.95MHz"), and the embedded-unit form used in file names ("1M6",
// "2M4" = 1.6 and 2.4 MHz). The value must be positive and finite.
func ParseHz(s string) (float64, error) {
	bad := func(why string) (float64, error) {
		return 0, fmt.Errorf("%w %q: %s (examples: 868.95M, 1600k, 2.4e6)", ErrHz, s, why)
	}
	t := strings.TrimSpace(s)
	if len(t) > 2 && strings.EqualFold(t[len(t)-2:], "hz") {
		t = t[:len(t)-2]
	}
	if t == "" {
		return bad("empty")
	}
	scale := 1.0
	if i := strings.IndexAny(t, "kKmMgG"); i >= 0 {
		scale = unitScale[t[i]]
		head, tail := t[:i], t[i+1:]
		switch {
		case head == "":
			return bad("no number before the unit")
		case tail == "":
			t = head
		case allDigits(head) && allDigits(tail): // "1M6"
			t = head + "." + tail
		default:
			return bad("unexpected text after the unit")
		}
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('0' <= c && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
			return bad(fmt.Sprintf("unexpected %q", rune(c)))
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return bad("not a number")
	}
	v *= scale
	switch {
	case math.IsInf(v, 0) || math.IsNaN(v):
		return bad("out of range")
	case v <= 0:
		return bad("must be positive")
	}
	return v, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ParseGain parses a tuner gain: "" or "auto" selects tuner AGC; otherwise a
// value in dB ("42.1", "49.6dB"), returned in tenths of a dB as librtlsdr
// and rtl_tcp take it.
func ParseGain(s string) (auto bool, tenthsDB int, err error) {
	t := strings.TrimSpace(s)
	if t == "" || strings.EqualFold(t, "auto") {
		return true, 0, nil
	}
	if len(t) > 2 && strings.EqualFold(t[len(t)-2:], "db") {
		t = strings.TrimSpace(t[:len(t)-2])
	}
	v, perr := strconv.ParseFloat(t, 64)
	// RTL-SDR tuners span about −1 to 50 dB; allow some slack for others.
	if perr != nil || math.IsNaN(v) || v < -20 || v > 100 {
		return false, 0, fmt.Errorf("%w %q: want \"auto\" or a gain in dB such as 40 or 49.6", ErrGain, s)
	}
	return false, int(math.Round(v * 10)), nil
}

// hintsFromName reads a centre frequency and a sample rate from a recording's
// name, as rtl_433 and others write them ("g001_868.95M_1600k.cu8",
// "rtlsdr_868.950M_1M6_samples2.cu8"). Only tokens with a unit count, and a
// value is taken only when exactly one token fits its range.
func hintsFromName(path string) (center, rate float64) {
	base := filepath.Base(path)
	base = strings.TrimSuffix(base, filepath.Ext(base))
	var centers, rates []float64
	for _, tok := range strings.FieldsFunc(base, func(r rune) bool { return r == '_' || r == '-' || r == ' ' }) {
		if !strings.ContainsAny(tok, "kKmMgG") {
			continue
		}
		v, err := ParseHz(tok)
		if err != nil {
			continue
		}
		switch {
		case v >= 24e6: // lowest RTL-SDR tuning frequency
			centers = append(centers, v)
		case v >= 200e3 && v <= 20e6:
			rates = append(rates, v)
		}
	}
	if len(centers) == 1 {
		center = centers[0]
	}
	if len(rates) == 1 {
		rate = rates[0]
	}
	return center, rate
}
