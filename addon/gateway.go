package addon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kem"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/settings"
	"github.com/flowiq-gateway/flowiq-gateway/web"
)

// MeterListName is the user-editable meter list in the add-on's config
// folder (/config inside the container, addon_configs/<slug> outside).
const MeterListName = "meters.toml"

// IngressPort is the status page's port: the Supervisor's default
// ingress_port, which config.yaml therefore does not restate.
const IngressPort = 8099

// Transient Supervisor failures (it may still be starting) are retried a
// few times before the add-on settles for printing readings to its log.
var (
	SupervisorAttempts   = 4
	SupervisorRetryDelay = 2 * time.Second
)

// Configure turns the add-on's world into the gateway's configuration.
// Precedence, highest first: command-line flags, the add-on options
// (Configuration tab), the meter list meters.toml. Nothing a user can type
// into the options stops it: every problem is logged, naming the option or
// meter at fault, and the add-on runs with the rest.
func Configure(ctx context.Context, log *slog.Logger, opts Options, paths Paths, flags settings.Layer, version string) (settings.Config, error) {
	// Meters: the options, then the KEM file for what they lack; both lie
	// over meters.toml, which the gateway watches.
	overlay, conflicts := Merge(opts.Meters(), kemMeters(log, opts, paths))
	for _, w := range conflicts {
		log.Warn(w.Error())
	}
	for _, w := range MissingKeys(overlay) {
		log.Warn(w.Error())
	}
	metersPath := meterList(log, paths.Config)
	var file meters.Snapshot
	if metersPath != "" {
		// Only for the [radio] and [mqtt] sections; the watcher reports
		// any problem of the file itself.
		if s, err := meters.Load(metersPath); err == nil {
			file = *s
		}
	}
	if file.MQTT.URL != "" || file.MQTT.Username != "" || file.MQTT.Password != "" {
		log.Info(MeterListName + " [mqtt] url, username and password are not used by the add-on: set mqtt_url, mqtt_username and mqtt_password in the options")
		file.MQTT.URL, file.MQTT.Username, file.MQTT.Password = "", "", ""
	}
	options := settings.Layer{Name: "add-on options", Inputs: opts.Inputs, Radio: opts.Radio.Settings(),
		MQTT: meters.MQTT{DiscoveryPrefix: opts.DiscoveryPrefix, StatusTopic: opts.StatusTopic}}
	// Of the file's [radio], only what the options have no field for or
	// leave empty (they are the earlier layer, so theirs win when set).
	fileLayer := settings.Layer{Name: MeterListName, MQTT: file.MQTT, Radio: meters.Radio{
		ChipRate: file.Radio.ChipRate, Deviation: file.Radio.Deviation, Format: file.Radio.Format}}
	if b, ok := broker(ctx, log, opts, flags.MQTT.URL); ok {
		options.MQTT.URL, options.MQTT.Username, options.MQTT.Password = b.URL, b.Username, string(b.Password)
	}
	flags.MQTT.URL = "" // the broker above, with the options' credentials
	inputs := flags.Inputs
	if len(inputs) == 0 {
		inputs = opts.Inputs
	}
	cfg, err := settings.Resolve(version, flags, options.ForInputs(inputs), fileLayer)
	if err != nil {
		return cfg, fmt.Errorf("radio settings: %w", err)
	}
	if cfg.MQTT != nil {
		host, _ := os.Hostname()
		cfg.MQTT.ConfigurationURL = ConfigurationURL(host)
	}
	cfg.MetersPath, cfg.Overlay, cfg.HealthFile = metersPath, overlay, paths.Health
	// The status page, through Home Assistant's ingress only (config.yaml).
	cfg.Web, cfg.WebPeer = ":"+strconv.Itoa(IngressPort), web.IngressPeer
	cfg.StateDir = filepath.Join(paths.Data, "state")
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		log.Warn("no state folder: learned compact-frame formats and last readings will not survive a restart", "err", err)
		cfg.StateDir = ""
	}
	return cfg, nil
}

// Slug is the add-on's slug in config.yaml. The Supervisor prefixes it
// with the repository ("local_", or a hash of the repository URL).
const Slug = "flowiq_gateway"

// ConfigurationURL is the devices' link to the add-on's page in Home
// Assistant, from the container's host name, which the Supervisor sets to
// the installed slug with "_" written "-" ("a0d7b954-flowiq-gateway"). It
// is "" when the name is not such an add-on host (not running as an
// add-on): no link beats a wrong one.
func ConfigurationURL(hostname string) string {
	prefix, ok := strings.CutSuffix(hostname, "-"+strings.ReplaceAll(Slug, "_", "-"))
	if !ok || prefix == "" {
		return ""
	}
	for _, c := range prefix {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return ""
		}
	}
	return "homeassistant://hassio/addon/" + prefix + "_" + Slug + "/info"
}

// ParseLevel reads a log level with the names of the log_level option.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace":
		return LevelTrace, nil
	case "warning":
		return slog.LevelWarn, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want trace, debug, info, warning or error", s)
	}
	return l, nil
}

// NewLogger writes text lines to the add-on log; the level below debug is
// named TRACE rather than slog's DEBUG-4.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				if l, ok := a.Value.Any().(slog.Level); ok && l <= LevelTrace {
					a.Value = slog.StringValue("TRACE")
				}
			}
			return a
		},
	}))
}

// kemMeters reads the kem_file option's meters. Every failure is logged and
// leaves the list empty: the meters of the options and of meters.toml run
// regardless.
func kemMeters(log *slog.Logger, opts Options, paths Paths) []meters.Meter {
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
	out, skipped := kem.Usable(ms, "KEM file "+filepath.Base(path))
	for _, s := range skipped {
		log.Warn(s)
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
# leave open: [radio] format, and chip_rate and deviation when the options
# leave them empty; [mqtt] client_id, ca_file, base_topic, retain,
# meter_timeout.
`

// meterList returns the meter list's path in the config folder, writing a
// commented starter file (mode 0600) when there is none. It returns ""
// when the folder is missing: then only the options' meters run.
func meterList(log *slog.Logger, dir string) string {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		log.Warn("no config folder: "+MeterListName+" is not used; meters come from the options only (is addon_config mapped?)", "dir", dir)
		return ""
	}
	path := filepath.Join(dir, MeterListName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, os.ErrExist):
		return path
	case err != nil:
		log.Warn("cannot create a starter "+MeterListName+"; it is picked up once it exists", "err", err)
		return path
	}
	_, err = f.WriteString(meterListStarter)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		log.Warn("writing a starter "+MeterListName, "err", err)
		_ = os.Remove(path)
		return path
	}
	log.Info("created an empty meter list for the File editor", "file", path)
	return path
}

// broker picks the broker: flagURL (with the options' credentials), else
// mqtt_url, else the Supervisor's. Without one the readings go to stdout,
// which is the add-on log, so a user still sees them while fixing the
// cause named in the log.
func broker(ctx context.Context, log *slog.Logger, opts Options, flagURL string) (Broker, bool) {
	if flagURL != "" {
		b := Broker{URL: flagURL, Username: opts.MQTTUsername, Password: opts.MQTTPassword, Source: "--mqtt"}
		log.Info("MQTT broker", "broker", b)
		return b, true
	}
	url, token := SupervisorFromEnv()
	for attempt := 1; ; attempt++ {
		b, err := ResolveBroker(ctx, opts, url, token)
		if err == nil {
			log.Info("MQTT broker", "broker", b)
			return b, true
		}
		if !errors.Is(err, ErrSupervisor) || attempt >= SupervisorAttempts || ctx.Err() != nil {
			hint := ""
			if errors.Is(err, ErrSupervisorRefused) {
				hint = ": restart the add-on; if that does not help, reinstall it (the token belongs to the installation)"
			}
			log.Error("no MQTT broker: " + err.Error() + hint + "; readings are printed to this log instead of going to Home Assistant")
			return Broker{}, false
		}
		log.Warn("asking the Supervisor for the MQTT broker again", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(SupervisorRetryDelay):
		}
	}
}
