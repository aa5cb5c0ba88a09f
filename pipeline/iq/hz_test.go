package iq

import (
	"errors"
	"math"
	"testing"
)

func TestParseHz(t *testing.T) {
	good := []struct {
		in   string
		want float64
	}{
		{"1.6M", 1.6e6},
		{"2400k", 2.4e6},
		{"2400K", 2.4e6},
		{"868.95M", 868.95e6},
		{"923.1M", 923.1e6},
		{"1600000", 1.6e6},
		{"2.048M", 2.048e6},
		{"1e6", 1e6},
		{"0.5G", 0.5e9},
		{"868.95m", 868.95e6}, // rtl_sdr accepts either case
		{"868.95MHz", 868.95e6},
		{"250 kHz", 0}, // filled below: space before the unit is junk
		{" 2.4M ", 2.4e6},
		{"1M6", 1.6e6},
		{"2M4", 2.4e6},
		{"2M048", 2.048e6},
		{"868.950M", 868.95e6},
		{"100k", 1e5},
		{"1.5e3k", 1.5e6},
	}
	for _, tt := range good {
		got, err := ParseHz(tt.in)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("ParseHz(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseHz(%q): %v", tt.in, err)
			continue
		}
		if math.Abs(got-tt.want) > 1e-6*tt.want {
			t.Errorf("ParseHz(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	bad := []string{"", " ", "M", "k", "abc", "1.6MM", "1.6Mx", "1M6k", "-868M", "0", "0k", "NaN", "Inf", "1e400",
		"1,6M", "0x10", "1_000", "868.95.1M", "1.6 M", "Hz", "12Q", "M6", "1.5M6"}
	for _, in := range bad {
		got, err := ParseHz(in)
		if err == nil {
			t.Errorf("ParseHz(%q) = %v, want an error", in, got)
			continue
		}
		if !errors.Is(err, ErrHz) {
			t.Errorf("ParseHz(%q) error %v does not wrap ErrHz", in, err)
		}
	}
	_, err := ParseHz("1.6MM")
	if want := `invalid frequency "1.6MM": unexpected text after the unit (examples: 868.95M, 1600k, 2.4e6)`; err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
}

func FuzzParseHz(f *testing.F) {
	for _, s := range []string{"1.6M", "2400k", "1M6", "1e6", "868.95MHz", "-1", "M"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseHz(s)
		if err == nil && !(v > 0) || math.IsInf(v, 0) {
			t.Fatalf("ParseHz(%q) = %v, %v", s, v, err)
		}
		if err != nil && !errors.Is(err, ErrHz) {
			t.Fatalf("ParseHz(%q) error %v does not wrap ErrHz", s, err)
		}
	})
}

func TestParseGain(t *testing.T) {
	tests := []struct {
		in     string
		auto   bool
		tenths int
		ok     bool
	}{
		{"", true, 0, true},
		{"auto", true, 0, true},
		{"AUTO", true, 0, true},
		{"49.6", false, 496, true},
		{"40", false, 400, true},
		{"42.1dB", false, 421, true},
		{"0", false, 0, true},
		{"-1", false, -10, true},
		{"loud", false, 0, false},
		{"NaN", false, 0, false},
		{"500", false, 0, false},
		{"4 0", false, 0, false},
	}
	for _, tt := range tests {
		auto, tenths, err := ParseGain(tt.in)
		if (err == nil) != tt.ok || auto != tt.auto || tenths != tt.tenths {
			t.Errorf("ParseGain(%q) = %v, %d, %v; want %v, %d, ok=%v", tt.in, auto, tenths, err, tt.auto, tt.tenths, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrGain) {
			t.Errorf("ParseGain(%q) error %v does not wrap ErrGain", tt.in, err)
		}
	}
}

func TestHintsFromName(t *testing.T) {
	tests := []struct {
		path         string
		center, rate float64
	}{
		{"../x/rtlsdr_868.950M_1M6_samples2.cu8", 868.95e6, 1.6e6},
		{"rtlsdr_868.625M_2M4_issue48.cu8", 868.625e6, 2.4e6},
		{"g001_868.95M_1600k.cu8", 868.95e6, 1.6e6},
		{"g001_923.1M_2400k.cs16", 923.1e6, 2.4e6},
		{"capture.cu8", 0, 0},
		{"issue48_2.cu8", 0, 0},
		{"a_868M_915M_1M.cu8", 0, 1e6}, // two centres: ambiguous, none taken
	}
	for _, tt := range tests {
		c, r := hintsFromName(tt.path)
		if math.Abs(c-tt.center) > 1 || math.Abs(r-tt.rate) > 1 {
			t.Errorf("hintsFromName(%q) = %v, %v; want %v, %v", tt.path, c, r, tt.center, tt.rate)
		}
	}
}
