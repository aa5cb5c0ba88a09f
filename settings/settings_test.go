package settings

import (
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
)

func ptr[T any](v T) *T { return &v }

// The one precedence rule: the first layer that sets a value wins; values
// are parsed once, and an error names the setting and the layer.
func TestResolvePrecedence(t *testing.T) {
	flags := Layer{Name: "flags", Radio: meters.Radio{Rate: "2.4M"}, MQTT: meters.MQTT{URL: "tcp://flag:1883"}}
	opts := Layer{Name: "add-on options", Radio: meters.Radio{Input: "rtlsdr://1", Rate: "1.6M", Channel: "923M", PPM: ptr(3)},
		MQTT: meters.MQTT{Username: "opt-user", DiscoveryPrefix: "custom"}}
	file := Layer{Name: "meters.toml", Radio: meters.Radio{ChipRate: "50k", Channel: "868.95M", Modes: []string{"T1"}, PPM: ptr(9)},
		MQTT: meters.MQTT{URL: "tcp://file:1883", Username: "file-user", BaseTopic: "water", Retain: ptr(false)}}
	cfg, err := Resolve("1.2.3", flags, opts, file)
	if err != nil {
		t.Fatal(err)
	}
	ro := cfg.Radio
	checks := []struct {
		name      string
		got, want any
	}{
		{"inputs", strings.Join(cfg.Inputs, ","), "rtlsdr://1"},
		{"rate", ro.IQ.SampleRate, 2.4e6},
		{"channel", ro.Demod.ChannelHz, 923e6},
		{"centre follows the channel of a tuned dongle", ro.IQ.CenterHz, 923e6},
		{"demod centre", ro.Demod.CenterHz, 923e6},
		{"chip rate", ro.Demod.ChipRate, 50e3},
		{"ppm", ro.IQ.PPM, 3},
		{"modes", ro.Demod.Modes, demod.T1},
		{"url", cfg.MQTT.URL, "tcp://flag:1883"},
		{"user", cfg.MQTT.Username, "opt-user"},
		{"prefix", cfg.MQTT.DiscoveryPrefix, "custom"},
		{"base topic", cfg.MQTT.BaseTopic, "water"},
		{"retain", *cfg.MQTT.Retain, false},
		{"version", cfg.MQTT.SWVersion, "1.2.3"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestResolveDefaults(t *testing.T) {
	cfg, err := Resolve("dev")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Inputs) != 1 || cfg.Inputs[0] != DefaultInput || cfg.MQTT != nil {
		t.Errorf("defaults: inputs %v, mqtt %v", cfg.Inputs, cfg.MQTT)
	}
	cfg, err = Resolve("dev", Layer{Inputs: []string{"a.cu8", "hex:-"}})
	if err != nil || len(cfg.Inputs) != 2 {
		t.Errorf("two inputs: %v, %v", cfg.Inputs, err)
	}
}

func TestResolveErrorsNameSettingAndLayer(t *testing.T) {
	cases := []struct {
		r    meters.Radio
		want string
	}{
		{meters.Radio{Rate: "fast"}, "rate (from meters.toml)"},
		{meters.Radio{Channel: "868.95X"}, "channel (from meters.toml)"},
		{meters.Radio{Format: "wav"}, "format (from meters.toml)"},
		{meters.Radio{Gain: "loud"}, "gain (from meters.toml)"},
		{meters.Radio{Modes: []string{"Q9"}}, "modes (from meters.toml)"},
		{meters.Radio{Deviation: "-"}, "deviation (from meters.toml)"},
	}
	for _, c := range cases {
		_, err := Resolve("dev", Layer{Name: "flags"}, Layer{Name: "meters.toml", Radio: c.r})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want it to name %q", c.r, err, c.want)
		}
	}
}

// A recording, stdin or hex input describes itself: a layer's tuning does
// not apply to it; a dongle's does.
func TestForInputs(t *testing.T) {
	opts := Layer{Radio: meters.Radio{Center: "923M", Channel: "923M", Rate: "2.4M", Gain: "40", PPM: ptr(3), ChipRate: "50k"}}
	for _, c := range []struct {
		inputs []string
		tuning bool
	}{
		{nil, true},
		{[]string{"rtlsdr://0"}, true},
		{[]string{"capture.cu8"}, false},
		{[]string{"hex:-", "rtltcp://pi:1234"}, true},
		{[]string{"hex:-", "vw1871:ble://VW1871"}, false},
	} {
		l := opts.ForInputs(c.inputs)
		if got := l.Radio.Center != "" && l.Radio.Rate != "" && l.Radio.PPM != nil; got != c.tuning {
			t.Errorf("%v: tuning kept %v, want %v", c.inputs, got, c.tuning)
		}
		if l.Radio.ChipRate != "50k" {
			t.Errorf("%v: chip rate dropped", c.inputs)
		}
	}
}
