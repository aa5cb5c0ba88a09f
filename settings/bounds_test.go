package settings

import (
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
)

func TestAbsurdRadioSettingsRejected(t *testing.T) {
	ppm := func(v int) *int { return &v }
	for _, c := range []struct {
		name  string
		radio meters.Radio
		want  string // "" accepted
	}{
		{"chip rate 1", meters.Radio{ChipRate: "1"}, "chip rate (from flags): 1 chips/s is not a wireless M-Bus chip rate; want 10k to 500k"},
		{"chip rate 100M", meters.Radio{ChipRate: "100M"}, "chip rate (from flags): 1e+08 chips/s"},
		{"chip rate 100k", meters.Radio{ChipRate: "100k"}, ""},
		{"chip rate of mode S", meters.Radio{ChipRate: "32.768k"}, ""},
		{"ppm 99999999", meters.Radio{PPM: ppm(99999999)}, "ppm (from flags): 99999999 is not a crystal correction; want -1000 to 1000"},
		{"ppm -5000", meters.Radio{PPM: ppm(-5000)}, "ppm (from flags): -5000"},
		{"ppm 57", meters.Radio{PPM: ppm(57)}, ""},
	} {
		_, err := Resolve("test", Layer{Name: "flags", Inputs: []string{"rtltcp://127.0.0.1:1234"}, Radio: c.radio})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
