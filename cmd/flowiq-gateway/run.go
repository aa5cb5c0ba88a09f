package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/discovery"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
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

// gatewayConfig is everything the daemon needs; run builds it from flags and
// the meter list, the add-on from its options.
type gatewayConfig struct {
	input      string
	radio      pipeline.RadioOptions
	metersPath string         // "" = no meter list file
	overlay    []meters.Meter // meters from elsewhere (add-on options), winning over the file
	mqtt       *discovery.Config
	stateDir   string // learned formats and last readings; "" = none
	logFrames  bool   // log every frame heard at debug level
}

func runRun(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "run")
	var rf radioFlags
	rf.register(fs)
	metersPath := fs.String("meters", "", "meter list `file` (TOML): meters, keys, and optional [radio] and [mqtt] settings; reloaded when it changes")
	mqttURL := fs.String("mqtt", "", "MQTT broker `URL` (tcp://host:1883, ssl://, ws://); default from the meter list's [mqtt]; none: print readings as JSON lines")
	mqttUser := fs.String("mqtt-user", "", "MQTT user name")
	mqttPass := fs.String("mqtt-password", "", "MQTT password (prefer the meter list's [mqtt] or MQTT_PASSWORD)")
	mqttCA := fs.String("mqtt-ca", "", "PEM `file` of the CA that signed the broker's certificate (ssl://, tls://, wss://)")
	clientID := fs.String("mqtt-client-id", "", "MQTT client ID (default flowiq-flowiq_gateway)")
	prefix := fs.String("discovery-prefix", "", "Home Assistant discovery prefix (default homeassistant)")
	base := fs.String("base-topic", "", "base topic for state (default flowiq)")
	stateDir := fs.String("state", "", "`directory` for learned compact-frame formats and the last reading of each meter, kept across restarts")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: flowiq-gateway run [--meters FILE] [--input SPEC] [--mqtt URL] [flags]")
		fmt.Fprintln(fs.Output(), "\nWithout a broker, readings are printed to stdout as JSON lines.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := rf.parse(e, fs, args); err != nil {
		return err
	}
	log, err := newLogger(e, *level)
	if err != nil {
		return err
	}
	e.log = log

	// The file's [radio] and [mqtt] sections are defaults under the flags.
	var file *meters.Snapshot
	if *metersPath != "" {
		if file, err = meters.Load(*metersPath); err != nil {
			// The watcher keeps retrying; settings fall back to flags.
			log.Error("meter list not loaded; continuing with flags only until it is fixed", "file", *metersPath, "err", err)
			file = nil
		}
	}
	var fileRadio meters.Radio
	var fileMQTT meters.MQTT
	if file != nil {
		fileRadio, fileMQTT = file.Radio, file.MQTT
	}
	cfg := gatewayConfig{metersPath: *metersPath, stateDir: *stateDir}
	if cfg.input, cfg.radio, err = rf.resolve(fileRadio); err != nil {
		return err
	}
	m := discovery.Config{
		URL: fileMQTT.URL, Username: fileMQTT.Username, Password: fileMQTT.Password,
		ClientID: fileMQTT.ClientID, CAFile: fileMQTT.CAFile,
		DiscoveryPrefix: fileMQTT.DiscoveryPrefix, BaseTopic: fileMQTT.BaseTopic,
		Retain: fileMQTT.Retain, MeterTimeout: fileMQTT.MeterTimeout, SWVersion: version,
	}
	override := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	override(&m.URL, *mqttURL)
	override(&m.Username, *mqttUser)
	override(&m.Password, *mqttPass)
	override(&m.Password, os.Getenv("MQTT_PASSWORD"))
	override(&m.CAFile, *mqttCA)
	override(&m.ClientID, *clientID)
	override(&m.DiscoveryPrefix, *prefix)
	override(&m.BaseTopic, *base)
	if m.URL != "" {
		cfg.mqtt = &m
	}
	cfg.logFrames = log.Enabled(ctx, slog.LevelDebug)
	return runGateway(ctx, e, cfg)
}

func newLogger(e *env, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: l})), nil
}

// runGateway wires meter list → source → decoder → publisher and runs until
// ctx ends or a recording is finished.
func runGateway(ctx context.Context, e *env, cfg gatewayConfig) error {
	log := e.log
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	// Meter list: live snapshot for keys, changes to the publisher.
	var watcher *meters.Watcher
	current := func() *meters.Snapshot { return nil }
	if cfg.metersPath != "" {
		w, err := meters.NewWatcher(cfg.metersPath, log)
		if err != nil {
			return err
		}
		watcher, current = w, w.Current
		if len(cfg.overlay) > 0 {
			w.SetOverlay(cfg.overlay)
		}
	} else if len(cfg.overlay) > 0 {
		snap, warns := meters.Overlay(nil, cfg.overlay)
		for _, w := range warns {
			log.Warn(w)
		}
		current = func() *meters.Snapshot { return snap }
	}
	if s := current(); s != nil {
		log.Info("meter list", "meters", s.Len(), "file", cfg.metersPath)
	}

	dec := kamstrup.NewDecoder()
	formatsPath := ""
	if cfg.stateDir != "" {
		if err := os.MkdirAll(cfg.stateDir, 0o700); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		formatsPath = filepath.Join(cfg.stateDir, "formats.txt")
		if err := dec.Load(formatsPath); err != nil {
			log.Warn("learned formats not loaded; they will be learned again from full frames", "err", err)
		} else if n := dec.Learned(); n > 0 {
			log.Info("learned formats loaded", "file", formatsPath, "formats", n)
		}
	}
	var last *lastReadings
	var restored []kamstrup.Reading
	if cfg.stateDir != "" {
		last = newLastReadings(filepath.Join(cfg.stateDir, "last-readings.json"))
		var err error
		if restored, err = last.load(); err != nil {
			log.Warn("last readings not (all) restored", "err", err)
		}
	}
	saveState := func() {
		if formatsPath != "" && dec.Dirty() {
			if err := dec.Save(formatsPath); err != nil {
				log.Warn("saving learned formats", "err", err)
			}
		}
		if last != nil {
			if err := last.save(); err != nil {
				log.Warn("saving last readings", "err", err)
			}
		}
	}
	defer saveState()

	// Output: the publisher, or JSON lines on stdout.
	var pub *discovery.Publisher
	var out func(kamstrup.Reading)
	if cfg.mqtt != nil {
		p, err := discovery.New(*cfg.mqtt, log)
		if err != nil {
			return err
		}
		pub = p
		out = p.Publish
	} else {
		enc := json.NewEncoder(e.stdout)
		out = func(r kamstrup.Reading) {
			if err := enc.Encode(r); err != nil {
				log.Error("writing reading", "err", err)
			}
		}
	}
	publisherDone := make(chan struct{})
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	if pub != nil {
		setPublisherMeters(pub, current())
		for _, r := range restored {
			pub.Restore(r)
		}
		if len(restored) > 0 {
			log.Info("last readings restored", "meters", len(restored))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(publisherDone)
			if err := pub.Run(pubCtx); err != nil {
				log.Error("publisher stopped", "err", err)
			}
		}()
	} else {
		close(publisherDone)
	}

	if watcher != nil {
		watcher.OnChange(func(u meters.Update) {
			if pub != nil {
				setPublisherMeters(pub, u.New)
			}
		})
		wg.Add(2)
		go func() { defer wg.Done(); _ = watcher.Run(ctx) }()
		go func() { defer wg.Done(); meters.ReloadOnSIGHUP(ctx, watcher) }()
	}

	src, err := pipeline.NewSource(cfg.input, e.stdin, cfg.radio)
	if err != nil {
		return err
	}
	rep := &pipeline.Reporter{Log: log, Known: func(id wmbus.ID) bool {
		_, ok := current().Meter(id)
		return ok
	}}
	p := &pipeline.Pipeline{
		Source:  src,
		Decoder: dec,
		Keys:    func(id wmbus.ID) ([]byte, bool) { return current().Key(id) },
		Reading: func(r *kamstrup.Reading) {
			if m, ok := current().Meter(r.ID); ok && m.Model != "" {
				r.Model = m.Model
			}
			out(*r)
			if last != nil {
				last.put(r)
			}
		},
		Problem: rep.Report,
		Log:     log,
	}
	if cfg.logFrames {
		p.Frame = func(f pipeline.Frame, t *wmbus.Telegram, err error) { logFrame(log, f, t, err) }
	}

	// Housekeeping: gateway health to Home Assistant, formats to disk.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			if pub != nil {
				pub.SetGatewayState(gatewayState(p.Stats()))
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				saveState()
			}
		}
	}()

	log.Info("receiving", "input", src.Name(), "output", outputName(cfg))
	runErr := p.Run(ctx)
	if pub != nil {
		pub.SetGatewayState(gatewayState(p.Stats()))
		if ctx.Err() == nil {
			// A recording has ended: let what it produced reach the broker.
			drainCtx, cancelDrain := context.WithTimeout(ctx, 15*time.Second)
			if err := pub.Drain(drainCtx); err != nil {
				log.Warn("not everything reached the broker before exit", "err", err)
			}
			cancelDrain()
		}
	}
	cancel()
	stopPub()
	<-publisherDone
	if pending := dec.Pending(); pending > 0 {
		log.Warn("compact frames never decoded: no full frame with their format arrived", "frames", pending)
	}
	s := p.Stats()
	log.Info("stopped", "frames", s.Frames.Load(), "readings", s.Readings.Load(), "failed", s.Failed.Load())
	if runErr != nil && !errors.Is(runErr, io.EOF) {
		return runErr
	}
	return nil
}

func outputName(cfg gatewayConfig) string {
	if cfg.mqtt == nil {
		return "stdout (JSON lines)"
	}
	return "mqtt"
}

func setPublisherMeters(p *discovery.Publisher, s *meters.Snapshot) {
	if s == nil {
		return
	}
	ms := make([]discovery.Meter, 0, len(s.Meters))
	for _, m := range s.Meters {
		ms = append(ms, discovery.Meter{ID: m.ID, Name: m.Name, Model: m.Model, Disabled: !m.Enabled})
	}
	p.SetMeters(ms)
}

func gatewayState(s *pipeline.Stats) discovery.GatewayState {
	g := discovery.GatewayState{
		TelegramsReceived: uint64(s.Frames.Load()),
		TelegramsDecoded:  uint64(s.Readings.Load()),
		TelegramsFailed:   uint64(s.Failed.Load()),
		SDR:               "ok",
	}
	if !s.Healthy.Load() {
		g.SDR = "input failed"
		if e := s.LastErr.Load(); e != nil {
			g.SDR = "input failed: " + *e
		}
	}
	if t := s.LastUnix.Load(); t > 0 {
		g.LastTelegram = time.Unix(t, 0).UTC()
	}
	return g
}

// logFrame logs every frame heard at debug level: how a user finds a
// meter's ID (see DOCS.md).
func logFrame(log *slog.Logger, f pipeline.Frame, t *wmbus.Telegram, err error) {
	attrs := []any{"mode", f.Radio.Mode, "level_dbfs", round1(f.Radio.LevelDBFS), "offset_hz", int(f.Radio.OffsetHz)}
	h, herr := frameHeader(f, t)
	if herr == nil {
		attrs = append(attrs, "id", h.ID.String(), "manufacturer", h.Manufacturer.String(),
			"version", fmt.Sprintf("0x%02X", h.Version), "type", fmt.Sprintf("0x%02X", h.DeviceType))
	}
	if err != nil {
		attrs = append(attrs, "decode", err.Error())
	}
	log.Debug("frame", attrs...)
}

// frameHeader returns a frame's link-layer header: from the telegram when it
// parsed, else read from the bytes (a meter without a key still shows who
// it is).
func frameHeader(f pipeline.Frame, t *wmbus.Telegram) (wmbus.Header, error) {
	if t != nil {
		return t.Header, nil
	}
	data := f.Data
	if !f.Stripped {
		plain, _, err := wmbus.Detect(f.Data)
		if err != nil {
			return wmbus.Header{}, err
		}
		data = plain
	}
	return wmbus.ParseHeader(data)
}

func round1(v float64) float64 { return float64(int(v*10)) / 10 }
