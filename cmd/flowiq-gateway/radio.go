package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/iq"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
)

// radioFlags are the input and radio flags shared by listen and run. Each
// is text as typed ("1.6M", "868.95M") and parsed once, in resolve, where
// the meter list's [radio] section fills in what the flags leave unset.
type radioFlags struct {
	input, format, center, channel, rate, gain, modes, chipRate, deviation string
	ppm                                                                    int
	agc                                                                    bool
	set                                                                    map[string]bool
}

func (r *radioFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.input, "input", "", "where frames come from: a recording (file.cu8), - (IQ on stdin), rtltcp://host:port, rtlsdr://INDEX or rtlsdr://SERIAL; hex:-, hex:FILE or hex:tcp://host:port for telegrams as hex lines (default rtlsdr://0)")
	fs.StringVar(&r.format, "format", "", "sample format of a recording or stdin: cu8, cs8, cs16 or cf32 (default: from the file extension, else cu8)")
	fs.StringVar(&r.center, "center", "", "`frequency` the radio is tuned to, e.g. 868.95M (default: the channel; for a recording, from its name)")
	fs.StringVar(&r.channel, "channel", "", "wM-Bus channel `frequency` (default 868.95M; flowIQ 2102: 915–928 MHz)")
	fs.StringVar(&r.rate, "rate", "", "sample `rate`, e.g. 1.6M, 2400k (default 1.6M; for a recording, from its name)")
	fs.StringVar(&r.gain, "gain", "", "tuner gain: auto or dB (default auto)")
	fs.IntVar(&r.ppm, "ppm", 0, "frequency correction of the dongle's crystal, in ppm")
	fs.BoolVar(&r.agc, "agc", false, "enable the RTL2832's digital AGC")
	fs.StringVar(&r.modes, "modes", "", "radio modes to decode, e.g. C1,T1 (default C1,T1)")
	fs.StringVar(&r.chipRate, "chip-rate", "", "chip `rate` (default 100k)")
	fs.StringVar(&r.deviation, "deviation", "", "FSK `deviation` (default: per mode)")
}

// parse parses the command line of a command with radio flags and no
// arguments, and records which flags the user gave, so that file and
// add-on settings apply only where no flag was given.
func (r *radioFlags) parse(e *env, fs *flag.FlagSet, args []string) error {
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	r.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { r.set[f.Name] = true })
	return nil
}

// resolve merges the flags over the meter list's [radio] section and parses
// every value, naming the setting at fault.
func (r *radioFlags) resolve(file meters.Radio) (string, pipeline.RadioOptions, error) {
	pick := func(name, flagVal, fileVal string) string {
		if r.set[name] || fileVal == "" {
			return flagVal
		}
		return fileVal
	}
	var ro pipeline.RadioOptions
	input := pick("input", r.input, file.Input)
	if input == "" {
		input = "rtlsdr://0"
	}
	hz := func(name, v string) (float64, error) {
		if v == "" {
			return 0, nil
		}
		f, err := iq.ParseHz(v)
		if err != nil {
			return 0, fmt.Errorf("--%s: %w", name, err)
		}
		return f, nil
	}
	var err error
	if ro.IQ.SampleRate, err = hz("rate", pick("rate", r.rate, file.Rate)); err != nil {
		return "", ro, err
	}
	if ro.IQ.CenterHz, err = hz("center", pick("center", r.center, file.Center)); err != nil {
		return "", ro, err
	}
	if ro.Demod.ChannelHz, err = hz("channel", pick("channel", r.channel, file.Channel)); err != nil {
		return "", ro, err
	}
	if ro.Demod.ChipRate, err = hz("chip-rate", pick("chip-rate", r.chipRate, file.ChipRate)); err != nil {
		return "", ro, err
	}
	if ro.Demod.DeviationHz, err = hz("deviation", pick("deviation", r.deviation, file.Deviation)); err != nil {
		return "", ro, err
	}
	if f := pick("format", r.format, file.Format); f != "" {
		if ro.IQ.Format, err = iq.ParseFormat(f); err != nil {
			return "", ro, fmt.Errorf("--format: %w", err)
		}
	}
	ro.IQ.Gain = pick("gain", r.gain, file.Gain)
	if ro.IQ.Gain != "" {
		if _, _, err := iq.ParseGain(ro.IQ.Gain); err != nil {
			return "", ro, fmt.Errorf("--gain: %w", err)
		}
	}
	ro.IQ.PPM = r.ppm
	if !r.set["ppm"] && file.PPM != nil {
		ro.IQ.PPM = *file.PPM
	}
	ro.IQ.AGC = r.agc
	modes := r.modes
	if !r.set["modes"] && len(file.Modes) > 0 {
		modes = strings.Join(file.Modes, ",")
	}
	if modes != "" {
		if ro.Demod.Modes, err = demod.ParseModes(modes); err != nil {
			return "", ro, fmt.Errorf("--modes: %w", err)
		}
	}
	// A dongle tuned by us sits on the channel unless told otherwise.
	if ro.IQ.CenterHz == 0 && ro.Demod.ChannelHz != 0 && !isRecording(input) {
		ro.IQ.CenterHz = ro.Demod.ChannelHz
	}
	ro.Demod.CenterHz = ro.IQ.CenterHz
	return input, ro, nil
}

func isRecording(input string) bool {
	return !strings.HasPrefix(input, "rtltcp://") && !strings.HasPrefix(input, "rtlsdr://") && !strings.HasPrefix(input, pipeline.HexPrefix)
}
