package addon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/settings"
)

func TestInputsOption(t *testing.T) {
	for _, c := range []struct {
		name, json string
		want       []string
		bad        []string // options reported
	}{
		{"none", `{}`, nil, nil},
		{"null", `{"inputs": null}`, nil, nil},
		{"mqtt and a radio", `{"inputs": ["mqtt://b:1883/flowiq/frames/#", "rtlsdr://0", ""]}`,
			[]string{"mqtt://b:1883/flowiq/frames/#", "rtlsdr://0"}, nil},
		{"bad ones skipped", `{"inputs": ["mqtt://b/flowiq/#/x", "hex:", "mqtt://b/flowiq/frames/3/#"]}`,
			[]string{"mqtt://b/flowiq/frames/3/#"}, []string{"inputs[0]", "inputs[1]"}},
		{"not a list", `{"inputs": "mqtt://b/x"}`, nil, []string{"inputs"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, errs := parseOptions([]byte(c.json), "options.json")
			if !reflect.DeepEqual(o.Inputs, c.want) {
				t.Errorf("inputs %q, want %q", o.Inputs, c.want)
			}
			var bad []string
			for _, err := range errs {
				var oe *OptionError
				if !errors.As(err, &oe) || !errors.Is(err, ErrBadOption) {
					t.Fatalf("problem %v names no option", err)
				}
				bad = append(bad, oe.Option)
			}
			if !reflect.DeepEqual(bad, c.bad) {
				t.Errorf("problems with %q, want %q", bad, c.bad)
			}
		})
	}
}

// The options' inputs become the gateway's, unless --input says otherwise.
func TestInputsOptionConfigures(t *testing.T) {
	o, errs := LoadOptions("testdata/options-full.json")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []string{"mqtt://receivers:secret@broker.local:1883/flowiq/frames/#", "rtltcp://192.168.1.20:1234"}
	if !reflect.DeepEqual(o.Inputs, want) {
		t.Fatalf("inputs %q", o.Inputs)
	}
	paths := Paths{Options: "testdata/options-full.json", Data: t.TempDir(), Config: t.TempDir(), Share: t.TempDir()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	o.KEMFile, o.KEMPassword = "", ""
	cfg, err := Configure(context.Background(), log, o, paths, settings.Layer{Name: "flags"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Inputs, want) {
		t.Errorf("gateway inputs %q, want %q", cfg.Inputs, want)
	}
	cfg, err = Configure(context.Background(), log, o, paths, settings.Layer{Name: "flags", Inputs: []string{"hex:-"}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Inputs, []string{"hex:-"}) {
		t.Errorf("with --input: %q", cfg.Inputs)
	}
}
