package addon

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// The 915–928 MHz options: channel, chip rate and deviation next to the
// frequency, each checked on its own and together by the demodulator.
func TestRadioBandOptions(t *testing.T) {
	cases := []struct {
		name   string
		radio  map[string]any
		want   Radio  // the fields under test
		errsub string // "" = no problem
	}{
		{"defaults", map[string]any{}, Radio{}, ""},
		{"923 MHz meters", map[string]any{"frequency": "923M", "sample_rate": "2.4M", "chip_rate": "100k", "deviation": "45k"},
			Radio{ChipRate: "100k", Deviation: "45k"}, ""},
		{"channel beside the tuning", map[string]any{"frequency": "922.6M", "sample_rate": "2.4M", "channel": "922.9M"},
			Radio{Channel: "922.9M"}, ""},
		{"chip rate typo", map[string]any{"chip_rate": "100"}, Radio{}, "radio.chip_rate: invalid option: 100 is outside 10k to 300k; using the default"},
		{"deviation not a number", map[string]any{"deviation": "wide"}, Radio{}, "radio.deviation: invalid option"},
		{"channel not a number", map[string]any{"channel": "ch 3"}, Radio{}, "radio.channel: invalid option"},
		{"channel outside the captured band", map[string]any{"frequency": "868.95M", "channel": "923M"}, Radio{},
			"option radio: invalid option: channel 923M, chip rate default, deviation default: "},
		{"deviation too wide beside the channel", map[string]any{"sample_rate": "1.0M", "channel": "869.2M", "deviation": "200k"}, Radio{},
			"is outside the captured band"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw, _ := json.Marshal(map[string]any{"radio": c.radio})
			o, errs := parseOptions(raw, "options.json")
			got := Radio{Channel: o.Radio.Channel, ChipRate: o.Radio.ChipRate, Deviation: o.Radio.Deviation}
			if got.Channel != c.want.Channel || got.ChipRate != c.want.ChipRate || got.Deviation != c.want.Deviation {
				t.Errorf("radio %+v, want %+v", got, c.want)
			}
			text := ""
			for _, e := range errs {
				if !errors.Is(e, ErrBadOption) {
					t.Errorf("%v does not wrap ErrBadOption", e)
				}
				text += e.Error() + "\n"
			}
			switch {
			case c.errsub == "" && text != "":
				t.Errorf("problems: %s", text)
			case c.errsub != "" && !strings.Contains(text, c.errsub):
				t.Errorf("problems %q lack %q", text, c.errsub)
			}
		})
	}
}

// What the options give the gateway: the channel is the frequency unless
// set; chip rate and deviation pass through as typed.
func TestRadioSettingsBand(t *testing.T) {
	r := DefaultRadio()
	if s := r.Settings(); s.Channel != "868.95M" || s.Center != "868.95M" || s.ChipRate != "" || s.Deviation != "" {
		t.Errorf("defaults: %+v", s)
	}
	r.Frequency, r.Channel, r.ChipRate, r.Deviation = "922.6M", "922.9M", "100k", "45k"
	if s := r.Settings(); s.Channel != "922.9M" || s.Center != "922.6M" || s.ChipRate != "100k" || s.Deviation != "45k" {
		t.Errorf("band settings: %+v", s)
	}
	if !strings.Contains(r.String(), "channel 922.9M, chip rate 100k, deviation 45k") {
		t.Errorf("String() = %s", r)
	}
}

func TestConfigurationURL(t *testing.T) {
	for host, want := range map[string]string{
		"a0d7b954-flowiq-gateway": "homeassistant://hassio/addon/a0d7b954_flowiq_gateway/info",
		"local-flowiq-gateway":    "homeassistant://hassio/addon/local_flowiq_gateway/info",
		"flowiq-gateway":          "",
		"build-host":              "",
		"x-y-flowiq-gateway":      "",
		"":                        "",
	} {
		if got := ConfigurationURL(host); got != want {
			t.Errorf("ConfigurationURL(%q) = %q, want %q", host, got, want)
		}
	}
}
