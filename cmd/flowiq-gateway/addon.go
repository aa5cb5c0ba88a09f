package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/addon"
	"github.com/flowiq-gateway/flowiq-gateway/discovery"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kem"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
)

func init() {
	register(&command{
		name:    "addon",
		summary: "the Home Assistant add-on: options from /data/options.json, broker from the Supervisor, then run",
		run:     runAddon,
	})
}

// meterListName is the user-editable meter list in the add-on's config
// folder (/config inside the container, addon_configs/<slug> outside).
const meterListName = "meters.toml"

// Transient Supervisor failures (it may still be starting) are retried a
// few times before the add-on settles for printing readings to its log.
var (
	supervisorAttempts   = 4
	supervisorRetryDelay = 2 * time.Second
)

// runAddon is the add-on's entry point. Precedence, highest first:
// command-line flags, the add-on options (Configuration tab), the meter
// list meters.toml. Nothing a user can type into the options stops it: every
// problem is logged, naming the option or meter at fault, and the add-on
// runs with the rest.
func runAddon(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "addon")
	paths := addon.DefaultPaths()
	fs.StringVar(&paths.Options, "options", paths.Options, "the add-on options `file` the Supervisor writes")
	fs.StringVar(&paths.Data, "data", paths.Data, "persistent `directory`: learned compact-frame formats and each meter's last reading go to its state/ folder")
	fs.StringVar(&paths.Config, "config-dir", paths.Config, "the add-on's config `directory`: "+meterListName+" and KEM files")
	fs.StringVar(&paths.Share, "share", paths.Share, "the shared `directory` a kem_file may also be in")
	var rf radioFlags
	rf.register(fs)
	mqttURL := fs.String("mqtt", "", "MQTT broker `URL`, instead of mqtt_url and the Supervisor's broker (the options' mqtt_username and mqtt_password apply)")
	level := fs.String("log-level", "", "log level: trace, debug, info, warning, error (default: the log_level option)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: flowiq-gateway addon [--options FILE] [--data DIR] [--config-dir DIR] [run flags]")
		fmt.Fprintln(fs.Output(), "\nRuns the gateway as the Home Assistant add-on: options from --options, the MQTT")
		fmt.Fprintln(fs.Output(), "broker from the Supervisor ($SUPERVISOR_URL, $SUPERVISOR_TOKEN), meters from the")
		fmt.Fprintln(fs.Output(), "options, the kem_file and "+meterListName+" in --config-dir. Flags override the options.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := rf.parse(e, fs, args); err != nil {
		return err
	}
	var flagLevel *slog.Level
	if *level != "" {
		l, err := parseAddonLevel(*level)
		if err != nil {
			return err
		}
		flagLevel = &l
	}

	opts, problems := addon.LoadOptions(paths.Options)
	lvl := opts.LogLevel
	if flagLevel != nil {
		lvl = *flagLevel
	}
	log := newAddonLogger(e, lvl)
	e.log = log
	log.Info("flowIQ Gateway add-on", "version", version, "options", opts)
	for _, p := range problems {
		if errors.Is(p, addon.ErrOptionsFile) {
			log.Error(p.Error() + "; running with the default options (no meters)")
			continue
		}
		log.Warn(p.Error())
	}

	// Meters: the options, then the KEM file for what they lack; both lie
	// over meters.toml, which the daemon watches.
	kemMeters := addonKEM(log, opts, paths)
	overlay, conflicts := addon.Merge(opts.Meters(), kemMeters)
	for _, w := range conflicts {
		log.Warn(w.Error())
	}
	for _, w := range addon.MissingKeys(overlay) {
		log.Warn(w.Error())
	}
	metersPath := addonMeterList(log, paths.Config)
	var file *meters.Snapshot
	if metersPath != "" {
		// Only for the [radio] and [mqtt] sections; the watcher reports
		// any problem of the file itself.
		file, _ = meters.Load(metersPath)
	}
	var fileRadio meters.Radio
	var fileMQTT meters.MQTT
	if file != nil {
		fileRadio, fileMQTT = file.Radio, file.MQTT
	}

	cfg := gatewayConfig{metersPath: metersPath, overlay: overlay}
	var err error
	if cfg.input, cfg.radio, err = rf.resolve(addonRadio(opts.Radio, fileRadio, rf)); err != nil {
		return fmt.Errorf("radio settings: %w", err)
	}

	cfg.mqtt = addonBroker(ctx, log, opts, *mqttURL, fileMQTT)

	cfg.stateDir = filepath.Join(paths.Data, "state")
	if err := os.MkdirAll(cfg.stateDir, 0o700); err != nil {
		log.Warn("no state folder: learned compact-frame formats and last readings will not survive a restart", "err", err)
		cfg.stateDir = ""
	}
	cfg.logFrames = log.Enabled(ctx, slog.LevelDebug)
	return runGateway(ctx, e, cfg)
}

// parseAddonLevel reads --log-level with the names of the log_level option.
func parseAddonLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace":
		return addon.LevelTrace, nil
	case "warning":
		return slog.LevelWarn, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want trace, debug, info, warning or error", s)
	}
	return l, nil
}

// newAddonLogger writes text lines to the add-on log; the level below debug
// is named TRACE rather than slog's DEBUG-4.
func newAddonLogger(e *env, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				if l, ok := a.Value.Any().(slog.Level); ok && l <= addon.LevelTrace {
					a.Value = slog.StringValue("TRACE")
				}
			}
			return a
		},
	}))
}

// addonKEM reads the kem_file option's meters. Every failure is logged and
// leaves the list empty: the meters of the options and of meters.toml run
// regardless.
func addonKEM(log *slog.Logger, opts addon.Options, paths addon.Paths) []meters.Meter {
	path, err := opts.KEMPath(paths)
	if err != nil {
		log.Error(err.Error() + "; the meters of the KEM file are not used")
		return nil
	}
	if path == "" {
		return nil
	}
	ms, err := kem.Open(path, string(opts.KEMPassword))
	switch {
	case errors.Is(err, kem.ErrWrongPassword):
		log.Error(fmt.Sprintf("kem_file %s: %v: check kem_password (case-sensitive, as your utility sent it); the meters of the KEM file are not used", opts.KEMFile, err))
		return nil
	case err != nil:
		log.Error(fmt.Sprintf("kem_file %s: %v; the meters of the KEM file are not used", opts.KEMFile, err))
		return nil
	}
	source := "KEM file " + filepath.Base(path)
	out := make([]meters.Meter, 0, len(ms))
	for _, m := range ms {
		switch {
		case !m.HasID:
			log.Warn(fmt.Sprintf("%s: meter %s skipped: %v", source, m.Serial, m.IDError()))
		case !m.HasKey:
			log.Warn(fmt.Sprintf("%s: meter %s skipped: the file has no key for it", source, m.Serial))
		default:
			out = append(out, meters.Meter{ID: m.ID, Key: m.Key, HasKey: true, Model: m.Model, Enabled: true, Source: source})
		}
	}
	log.Info("KEM file read", "file", path, "meters", len(out))
	return out
}

// meterListStarter is written to a missing meters.toml, so the File editor
// finds the file and explains it. It holds no meter.
const meterListStarter = `# Meter list of the flowIQ Gateway add-on (optional).
#
# The Configuration tab is the usual place for meters. This file is for those
# who prefer a text file: every [[meter]] here is used as well, and a saved
# change applies at once, without restarting the add-on. A meter listed here
# and in the options or the KEM file is taken from there, and the log says
# so. Keep this file private: it holds keys.
#
# [[meter]]
# id = "12345678"        # the 8-digit number printed on the meter
# name = "Kitchen"       # what Home Assistant calls the device (default: the id)
# key = "0011 2233 4455 6677 8899 AABB CCDD EEFF"   # 32 hex digits from your utility
# model = "flowIQ 2101"  # optional: overrides the decoded model name
# enabled = true         # false keeps the entry but ignores the meter
#
# The broker and the radio are set on the Configuration tab. Of the [radio]
# and [mqtt] sections of a meter list, the add-on uses only what the options
# have no field for: [radio] chip_rate, deviation, format; [mqtt] client_id,
# ca_file, base_topic, retain, meter_timeout.
`

// addonMeterList returns the meter list's path in the config folder,
// writing a commented starter file (mode 0600) when there is none. It
// returns "" when the folder is missing: then only the options' meters run.
func addonMeterList(log *slog.Logger, dir string) string {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		log.Warn("no config folder: "+meterListName+" is not used; meters come from the options only (is addon_config mapped?)", "dir", dir)
		return ""
	}
	path := filepath.Join(dir, meterListName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, os.ErrExist):
		return path
	case err != nil:
		log.Warn("cannot create a starter "+meterListName+"; it is picked up once it exists", "err", err)
		return path
	}
	_, err = f.WriteString(meterListStarter)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		log.Warn("writing a starter "+meterListName, "err", err)
		_ = os.Remove(path)
		return path
	}
	log.Info("created an empty meter list for the File editor", "file", path)
	return path
}

// addonRadio is the options' radio settings with, below them, what only the
// meter list's [radio] can say (chip rate, deviation, sample format). The
// flags go over both in radioFlags.resolve. A recording, stdin or hex input
// given by flag describes itself: the options' tuner settings do not apply.
func addonRadio(o addon.Radio, file meters.Radio, rf radioFlags) meters.Radio {
	r := o.Settings()
	if rf.set["input"] && (isRecording(rf.input) || strings.HasPrefix(rf.input, pipeline.HexPrefix)) {
		r.Center, r.Channel, r.Rate, r.Gain, r.PPM = "", "", "", "", nil
	}
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&r.ChipRate, file.ChipRate)
	fill(&r.Deviation, file.Deviation)
	fill(&r.Format, file.Format)
	return r
}

// addonBroker picks the broker: --mqtt, else mqtt_url, else the
// Supervisor's. Without one the readings go to stdout, which is the add-on
// log, so a user still sees them while fixing the cause named in the log.
func addonBroker(ctx context.Context, log *slog.Logger, opts addon.Options, flagURL string, file meters.MQTT) *discovery.Config {
	var b addon.Broker
	var err error
	if flagURL != "" {
		b = addon.Broker{URL: flagURL, Username: opts.MQTTUsername, Password: opts.MQTTPassword, Source: "--mqtt"}
	} else {
		b, err = resolveBrokerRetrying(ctx, log, opts)
	}
	if err != nil {
		hint := ""
		if errors.Is(err, addon.ErrSupervisorRefused) {
			hint = ": restart the add-on; if that does not help, reinstall it (the token belongs to the installation)"
		}
		log.Error("no MQTT broker: " + err.Error() + hint + "; readings are printed to this log instead of going to Home Assistant")
		return nil
	}
	if file.URL != "" || file.Username != "" || file.Password != "" {
		log.Info(meterListName + " [mqtt] url, username and password are not used by the add-on: set mqtt_url, mqtt_username and mqtt_password in the options")
	}
	log.Info("MQTT broker", "broker", b)
	return &discovery.Config{
		URL: b.URL, Username: b.Username, Password: string(b.Password),
		ClientID: file.ClientID, CAFile: file.CAFile,
		DiscoveryPrefix: opts.DiscoveryPrefix, BaseTopic: file.BaseTopic,
		Retain: file.Retain, MeterTimeout: file.MeterTimeout, SWVersion: version,
	}
}

// resolveBrokerRetrying asks the Supervisor again after a failure that may
// pass (it is starting, a network blip); a refused token or a missing broker
// add-on will not pass by waiting.
func resolveBrokerRetrying(ctx context.Context, log *slog.Logger, opts addon.Options) (addon.Broker, error) {
	url, token := addon.SupervisorFromEnv()
	for attempt := 1; ; attempt++ {
		b, err := addon.ResolveBroker(ctx, opts, url, token)
		if err == nil || !errors.Is(err, addon.ErrSupervisor) || attempt >= supervisorAttempts {
			return b, err
		}
		log.Warn("asking the Supervisor for the MQTT broker again", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return b, err
		case <-time.After(supervisorRetryDelay):
		}
	}
}
