// Package settings is the one place where settings from command-line flags,
// the meter list's [radio] and [mqtt] sections and the add-on options meet.
// Each source is a Layer; Resolve merges them with one rule — the first
// layer that sets a value wins — and parses every value once, naming the
// setting and the layer at fault.
package settings

import (
	"fmt"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/discovery"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/iq"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
)

// Layer is one source of settings, values as typed ("1.6M", "868.95M").
// Empty strings and nil pointers mean "not set here".
type Layer struct {
	// Name says where a value came from in messages: "flags",
	// "meters.toml", "add-on options".
	Name string
	// Inputs are the --input specs; when empty, Radio.Input is the one.
	Inputs []string
	Radio  meters.Radio
	AGC    *bool // flags only: the RTL2832's digital AGC
	MQTT   meters.MQTT
}

// Config is the gateway's resolved configuration: every value parsed and
// checked, defaults applied where the gateway needs them.
type Config struct {
	Inputs []string // --input specs, default rtlsdr://0; frames of all go to one decoder
	Radio  pipeline.RadioOptions
	// MetersPath is the meter list file, watched and reloaded; "" = none.
	MetersPath string
	// Overlay lists meters from elsewhere (add-on options, a KEM file) that
	// win over the file's entries.
	Overlay []meters.Meter
	// MQTT is the broker and Home Assistant settings; nil: no broker, the
	// readings go to stdout as JSON lines.
	MQTT *discovery.Config
	// StateDir keeps learned formats and last readings; "" = none.
	StateDir string
	// HealthFile is where the running gateway keeps its health for the
	// health command (Docker HEALTHCHECK); "" = none.
	HealthFile string
	// LogFrames logs every frame heard (debug level).
	LogFrames bool
	Version   string
	// Web is the status page's listen address ("" = no page); a bare port
	// binds loopback. WebPeer, when set, is the only client allowed (the
	// add-on's ingress proxy).
	Web, WebPeer string
}

// DefaultInput is the input when no layer names one.
const DefaultInput = "rtlsdr://0"

// Resolve merges the layers (the first that sets a value wins) into the
// input, the radio options and the broker settings (nil when no layer
// names a broker).
func Resolve(version string, layers ...Layer) (Config, error) {
	cfg := Config{Version: version}
	var err error
	if cfg.Inputs, cfg.Radio, err = resolveRadio(layers); err != nil {
		return cfg, err
	}
	cfg.MQTT = resolveMQTT(version, layers)
	return cfg, nil
}

// pick returns the first layer's value that is set, and the layer's name.
func pick(layers []Layer, get func(*Layer) string) (string, string) {
	for i := range layers {
		if v := get(&layers[i]); v != "" {
			return v, layers[i].Name
		}
	}
	return "", ""
}

// inputs returns the layer's input specs.
func (l *Layer) inputs() []string {
	if len(l.Inputs) > 0 {
		return l.Inputs
	}
	if l.Radio.Input != "" {
		return []string{l.Radio.Input}
	}
	return nil
}

// tuned reports whether any of the inputs is a radio this gateway tunes.
func tuned(inputs []string) bool {
	for _, in := range inputs {
		if pipeline.Tuned(in) {
			return true
		}
	}
	return false
}

func resolveRadio(layers []Layer) ([]string, pipeline.RadioOptions, error) {
	var ro pipeline.RadioOptions
	inputs := []string{DefaultInput}
	for i := range layers {
		if in := layers[i].inputs(); len(in) > 0 {
			inputs = in
			break
		}
	}
	hz := func(setting string, get func(*meters.Radio) string, dst *float64) error {
		v, from := pick(layers, func(l *Layer) string { return get(&l.Radio) })
		if v == "" {
			return nil
		}
		f, err := iq.ParseHz(v)
		if err != nil {
			return fmt.Errorf("%s (from %s): %w", setting, from, err)
		}
		*dst = f
		return nil
	}
	for _, s := range []struct {
		name string
		get  func(*meters.Radio) string
		dst  *float64
	}{
		{"rate", func(r *meters.Radio) string { return r.Rate }, &ro.IQ.SampleRate},
		{"center", func(r *meters.Radio) string { return r.Center }, &ro.IQ.CenterHz},
		{"channel", func(r *meters.Radio) string { return r.Channel }, &ro.Demod.ChannelHz},
		{"chip rate", func(r *meters.Radio) string { return r.ChipRate }, &ro.Demod.ChipRate},
		{"deviation", func(r *meters.Radio) string { return r.Deviation }, &ro.Demod.DeviationHz},
	} {
		if err := hz(s.name, s.get, s.dst); err != nil {
			return nil, ro, err
		}
	}
	var err error
	if f, from := pick(layers, func(l *Layer) string { return l.Radio.Format }); f != "" {
		if ro.IQ.Format, err = iq.ParseFormat(f); err != nil {
			return nil, ro, fmt.Errorf("format (from %s): %w", from, err)
		}
	}
	var from string
	if ro.IQ.Gain, from = pick(layers, func(l *Layer) string { return l.Radio.Gain }); ro.IQ.Gain != "" {
		if _, _, err := iq.ParseGain(ro.IQ.Gain); err != nil {
			return nil, ro, fmt.Errorf("gain (from %s): %w", from, err)
		}
	}
	if ro.Demod.ChipRate != 0 && (ro.Demod.ChipRate < MinChipRate || ro.Demod.ChipRate > MaxChipRate) {
		_, from := pick(layers, func(l *Layer) string { return l.Radio.ChipRate })
		return nil, ro, fmt.Errorf("chip rate (from %s): %g chips/s is not a wireless M-Bus chip rate; want %gk to %gk (modes C and T use 100k, mode S 32.768k)",
			from, ro.Demod.ChipRate, MinChipRate/1e3, MaxChipRate/1e3)
	}
	for _, l := range layers {
		if l.Radio.PPM != nil {
			ro.IQ.PPM = *l.Radio.PPM
			if ro.IQ.PPM < -MaxPPM || ro.IQ.PPM > MaxPPM {
				return nil, ro, fmt.Errorf("ppm (from %s): %d is not a crystal correction; want -%d to %d (a dongle's crystal is off by at most about 100 ppm)",
					l.Name, ro.IQ.PPM, MaxPPM, MaxPPM)
			}
			break
		}
	}
	for _, l := range layers {
		if l.AGC != nil {
			ro.IQ.AGC = *l.AGC
			break
		}
	}
	modes, from := pick(layers, func(l *Layer) string { return strings.Join(l.Radio.Modes, ",") })
	if modes != "" {
		if ro.Demod.Modes, err = demod.ParseModes(modes); err != nil {
			return nil, ro, fmt.Errorf("modes (from %s): %w", from, err)
		}
	}
	// A dongle tuned by us sits on the channel unless told otherwise.
	if ro.IQ.CenterHz == 0 && ro.Demod.ChannelHz != 0 && tuned(inputs) {
		ro.IQ.CenterHz = ro.Demod.ChannelHz
	}
	ro.Demod.CenterHz = ro.IQ.CenterHz
	return inputs, ro, nil
}

// Bounds of the radio settings that would otherwise be taken as given and
// fail obscurely (a chip rate of 1 makes the demodulator filter nothing
// useful; a ppm of 99999999 tunes the dongle megahertz away).
const (
	MinChipRate = 10e3
	MaxChipRate = 500e3
	MaxPPM      = 1000 // as the meter list's [radio] ppm
)

func resolveMQTT(version string, layers []Layer) *discovery.Config {
	s := func(get func(*meters.MQTT) string) string {
		v, _ := pick(layers, func(l *Layer) string { return get(&l.MQTT) })
		return v
	}
	c := discovery.Config{
		URL:             s(func(m *meters.MQTT) string { return m.URL }),
		Username:        s(func(m *meters.MQTT) string { return m.Username }),
		Password:        s(func(m *meters.MQTT) string { return m.Password }),
		ClientID:        s(func(m *meters.MQTT) string { return m.ClientID }),
		CAFile:          s(func(m *meters.MQTT) string { return m.CAFile }),
		DiscoveryPrefix: s(func(m *meters.MQTT) string { return m.DiscoveryPrefix }),
		StatusTopic:     s(func(m *meters.MQTT) string { return m.StatusTopic }),
		BaseTopic:       s(func(m *meters.MQTT) string { return m.BaseTopic }),
		SWVersion:       version,
	}
	for _, l := range layers {
		if c.Retain == nil && l.MQTT.Retain != nil {
			c.Retain = l.MQTT.Retain
		}
		if c.MeterTimeout == 0 && l.MQTT.MeterTimeout != 0 {
			c.MeterTimeout = l.MQTT.MeterTimeout
		}
	}
	if c.URL == "" {
		return nil
	}
	return &c
}

// ForInputs keeps what a layer says about tuning a radio we control
// (centre, channel, rate, gain, ppm) out of the merge when the inputs are
// recordings, stdin or hex lines: such inputs describe themselves.
func (l Layer) ForInputs(inputs []string) Layer {
	if len(inputs) > 0 && !tuned(inputs) {
		l.Radio.Center, l.Radio.Channel, l.Radio.Rate, l.Radio.Gain, l.Radio.PPM = "", "", "", "", nil
	}
	return l
}
