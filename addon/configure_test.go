package addon

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/settings"
)

// The new options reach the gateway's configuration: the birth topic goes
// to the publisher, the band options to the demodulator and win over
// meters.toml's [radio], which still fills what the options leave empty.
func TestConfigureBandAndStatusTopic(t *testing.T) {
	dir := t.TempDir()
	paths := Paths{Options: filepath.Join(dir, "options.json"), Data: filepath.Join(dir, "data"), Config: filepath.Join(dir, "config"),
		Health: filepath.Join(dir, "health.json")}
	if err := os.MkdirAll(paths.Config, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(paths.Config, MeterListName), []byte("[radio]\nchip_rate = \"50k\"\ndeviation = \"30k\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{
		"radio":        map[string]any{"frequency": "923M", "sample_rate": "2.4M", "channel": "922.9M", "chip_rate": "100k"},
		"mqtt_url":     "tcp://127.0.0.1:1883",
		"status_topic": "ha-main/status",
	})
	if err := os.WriteFile(paths.Options, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	opts, errs := LoadOptions(paths.Options)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg, err := Configure(context.Background(), slog.New(slog.DiscardHandler), opts, paths, settings.Layer{Name: "flags"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	ro := cfg.Radio
	if ro.IQ.CenterHz != 923e6 || ro.Demod.ChannelHz != 922.9e6 || ro.Demod.ChipRate != 100e3 || ro.Demod.DeviationHz != 30e3 {
		t.Errorf("centre %v channel %v chip rate %v deviation %v", ro.IQ.CenterHz, ro.Demod.ChannelHz, ro.Demod.ChipRate, ro.Demod.DeviationHz)
	}
	if cfg.MQTT == nil || cfg.MQTT.StatusTopic != "ha-main/status" || cfg.MQTT.DiscoveryPrefix != "homeassistant" {
		t.Errorf("mqtt %+v", cfg.MQTT)
	}
	if cfg.HealthFile != paths.Health {
		t.Errorf("health file %q", cfg.HealthFile)
	}
}
