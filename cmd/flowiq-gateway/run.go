package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/flowiq-gateway/flowiq-gateway/gateway"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/settings"
)

func init() {
	register(&command{
		name:    "run",
		summary: "the gateway: receive meters and publish them to Home Assistant over MQTT (or print JSON lines)",
		run:     runRun,
	})
}

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

// mqttFlags are the broker flags of run, as a settings layer.
type mqttFlags struct{ m meters.MQTT }

func (f *mqttFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.m.URL, "mqtt", "", "MQTT broker `URL` (tcp://host:1883, ssl://, ws://); default from the meter list's [mqtt]; none: print readings as JSON lines")
	fs.StringVar(&f.m.Username, "mqtt-user", "", "MQTT user name")
	fs.StringVar(&f.m.Password, "mqtt-password", "", "MQTT password (prefer the meter list's [mqtt] or MQTT_PASSWORD)")
	fs.StringVar(&f.m.CAFile, "mqtt-ca", "", "PEM `file` of the CA that signed the broker's certificate (ssl://, tls://, wss://)")
	fs.StringVar(&f.m.ClientID, "mqtt-client-id", "", "MQTT client ID (default flowiq-flowiq_gateway)")
	fs.StringVar(&f.m.DiscoveryPrefix, "discovery-prefix", "", "Home Assistant discovery prefix (default homeassistant)")
	fs.StringVar(&f.m.StatusTopic, "status-topic", "", "Home Assistant's birth `topic`, whose \"online\" re-announces everything (default homeassistant/status, whatever the discovery prefix)")
	fs.StringVar(&f.m.BaseTopic, "base-topic", "", "base topic for state (default flowiq)")
}

func runRun(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "run",
		"usage: flowiq-gateway run [--meters FILE] [--input SPEC] [--mqtt URL] [flags]\n"+
			"\nWithout a broker, readings are printed to stdout as JSON lines.")
	var rf radioFlags
	rf.register(fs)
	var mf mqttFlags
	mf.register(fs)
	metersPath := fs.String("meters", "", "meter list `file` (TOML): meters, keys, and optional [radio] and [mqtt] settings; reloaded when it changes")
	stateDir := fs.String("state", "", "`directory` for learned compact-frame formats and the last reading of each meter, kept across restarts")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	healthFile := fs.String("health-file", "", "`file` where the gateway keeps its health for the health command (a container HEALTHCHECK)")
	webAddr := fs.String("web", "", "serve the status page at `ADDR` (PORT or HOST:PORT; a bare port listens on loopback only); default: no page")
	if err := rf.parse(e, fs, args); err != nil {
		return err
	}
	log, err := newLogger(e, *level)
	if err != nil {
		return err
	}
	// Layers, highest first: flags, $MQTT_PASSWORD, the meter list file.
	layers := []settings.Layer{rf.layer(), {Name: "flags", MQTT: mf.m},
		{Name: "$MQTT_PASSWORD", MQTT: meters.MQTT{Password: os.Getenv("MQTT_PASSWORD")}}}
	if *metersPath != "" {
		file, err := meters.Load(*metersPath)
		if err != nil {
			// The watcher keeps retrying; settings fall back to flags.
			log.Error("meter list not loaded; continuing with flags only until it is fixed", "file", *metersPath, "err", err)
		} else {
			layers = append(layers, settings.Layer{Name: *metersPath, Radio: file.Radio, MQTT: file.MQTT})
		}
	}
	cfg, err := settings.Resolve(version, layers...)
	if err != nil {
		return err
	}
	cfg.MetersPath, cfg.StateDir, cfg.HealthFile, cfg.Web = *metersPath, *stateDir, *healthFile, *webAddr
	cfg.LogFrames = log.Enabled(ctx, slog.LevelDebug)
	return runGateway(ctx, e, log, cfg)
}

// runGateway runs one resolved configuration.
func runGateway(ctx context.Context, e *env, log *slog.Logger, cfg settings.Config) error {
	g, err := gateway.New(cfg, gateway.Options{Stdin: e.stdin, Stdout: e.stdout, Log: log})
	if err != nil {
		return err
	}
	return g.Run(ctx)
}

func newLogger(e *env, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: l})), nil
}
