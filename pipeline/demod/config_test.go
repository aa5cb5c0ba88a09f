package demod_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
)

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  demod.Config
		want string
	}{
		{"no rate", demod.Config{}, "sample rate"},
		{"negative rate", demod.Config{SampleRate: -1}, "sample rate"},
		{"rate too low", demod.Config{SampleRate: 200e3}, "outside 0.25–20 MS/s"},
		{"channel outside band", demod.Config{SampleRate: 1.6e6, CenterHz: 868.3e6}, "outside the captured band"},
		{"channel at band edge", demod.Config{SampleRate: 2.4e6, CenterHz: 867.9e6}, "outside the captured band"},
		{"too few samples per chip", demod.Config{SampleRate: 1e6, ChipRate: 400e3}, "samples per chip"},
		{"negative deviation", demod.Config{SampleRate: 1.6e6, DeviationHz: -5}, "deviation"},
		{"unknown mode", demod.Config{SampleRate: 1.6e6, Modes: 8}, "mode"},
		{"too much correction", demod.Config{SampleRate: 1.6e6, CorrectBits: 9}, "false frames"},
	} {
		_, err := demod.New(c.cfg)
		if !errors.Is(err, demod.ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrConfig mentioning %q", c.name, err, c.want)
		}
	}
}

func TestConfigSupportedRates(t *testing.T) {
	for _, rate := range []float64{1.0e6, 1.2e6, 1.6e6, 2.0e6, 2.048e6, 2.4e6, 3.2e6} {
		d, err := demod.New(demod.Config{SampleRate: rate})
		if err != nil {
			t.Errorf("%.3f MS/s: %v", rate/1e6, err)
			continue
		}
		// The channel filter lands at 4–5 samples per chip.
		if spc := d.DecimatedRate() / 100e3; spc < 4 || spc > 5.5 {
			t.Errorf("%.3f MS/s: %.2f samples per chip after decimation", rate/1e6, spc)
		}
	}
	// 923 MHz for the flowIQ 2102, tuned 200 kHz away.
	if _, err := demod.New(demod.Config{SampleRate: 2.4e6, CenterHz: 922.9e6, ChannelHz: 923.1e6, DeviationHz: 40e3}); err != nil {
		t.Error(err)
	}
}

func TestParseModes(t *testing.T) {
	for in, want := range map[string]demod.Mode{"C1,T1": demod.C1 | demod.T1, "t1": demod.T1, " C1 ": demod.C1, "C,T": demod.C1 | demod.T1} {
		if got, err := demod.ParseModes(in); err != nil || got != want {
			t.Errorf("ParseModes(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "S1", "C1,X"} {
		if _, err := demod.ParseModes(in); !errors.Is(err, demod.ErrConfig) {
			t.Errorf("ParseModes(%q): error %v, want ErrConfig", in, err)
		}
	}
	if s := (demod.C1 | demod.T1).String(); s != "C1,T1" {
		t.Errorf("String = %q", s)
	}
}

// Only the enabled modes are reported.
func TestModesFilter(t *testing.T) {
	x := readCU8(t, iqDir+"/rtlsdr_868.950M_1M6_samples2.cu8")
	frames, _ := decodeAll(t, demod.Config{SampleRate: 1.6e6, Modes: demod.C1}, x, 1<<16)
	if len(frames) != 0 {
		t.Errorf("C1 only: %d frames from a T1 recording", len(frames))
	}
}
