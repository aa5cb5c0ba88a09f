package main

import (
	"flag"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/settings"
)

// radioFlags are the input and radio flags shared by listen, run and addon,
// kept as typed; settings.Resolve parses them with the other layers.
type radioFlags struct {
	inputs                                                          inputList
	format, center, channel, rate, gain, modes, chipRate, deviation string
	ppm                                                             int
	agc                                                             bool
	set                                                             map[string]bool
}

func (r *radioFlags) register(fs *flag.FlagSet) {
	fs.Var(&r.inputs, "input", "where frames come from, given once per source: a recording (file.cu8), - (IQ on stdin), rtltcp://host:port, rtlsdr://INDEX or rtlsdr://SERIAL; hex:-, hex:FILE or hex:tcp://host:port for telegrams as hex lines; vw1871:FILE|-|tcp://host:port|serial:/dev/ttyUSB0|ble://NAME for a VW1871 concentrator; mqtt://[user:pass@]host:1883/TOPIC-FILTER (mqtts:// for TLS) for frames receivers publish (default rtlsdr://0)")
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
// arguments, and records which flags the user gave: only those form the
// flags layer, so file and add-on settings apply where no flag was given.
func (r *radioFlags) parse(e *env, fs *flag.FlagSet, args []string) error {
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	r.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { r.set[f.Name] = true })
	return nil
}

// layer is the flags the user gave, as the highest settings layer.
func (r *radioFlags) layer() settings.Layer {
	l := settings.Layer{Name: "flags", Inputs: r.inputs, Radio: meters.Radio{Format: r.format, Center: r.center,
		Channel: r.channel, Rate: r.rate, Gain: r.gain, ChipRate: r.chipRate, Deviation: r.deviation}}
	if r.modes != "" {
		l.Radio.Modes = strings.Split(r.modes, ",")
	}
	if r.set["ppm"] {
		l.Radio.PPM = &r.ppm
	}
	if r.set["agc"] {
		l.AGC = &r.agc
	}
	return l
}

// inputList is a flag that may be given more than once.
type inputList []string

func (l *inputList) String() string     { return strings.Join(*l, " ") }
func (l *inputList) Set(v string) error { *l = append(*l, v); return nil }
