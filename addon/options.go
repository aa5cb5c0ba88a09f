// Package addon is the Home Assistant side of the gateway: it reads the
// add-on options the Supervisor writes to /data/options.json, turns them into
// meters and radio settings, and asks the Supervisor for the MQTT broker.
//
// Nothing here is fatal by design: a bad option or meter entry is reported
// precisely and skipped (or replaced by its default), so one typo never stops
// the other meters.
package addon

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/internal/atomicfile"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
)

// Paths are where the add-on finds its files inside the container. Tests and
// power users override them (--options, --data, --config-dir).
type Paths struct {
	Options string // options.json written by the Supervisor
	Data    string // persistent state: learned formats, last states
	Config  string // the add-on's own config folder (map addon_config): meters.toml, KEM files
	Share   string // /share (map share:ro): an alternative place for a KEM file
	// Health is where the running gateway keeps its health for the
	// health command (the image's HEALTHCHECK), $FLOWIQ_HEALTH_FILE; ""
	// keeps none. In the add-on it lies in /tmp, a tmpfs (config.yaml
	// tmpfs), so its rewrites cost no flash.
	Health string
}

// DefaultPaths are the paths inside the add-on container.
func DefaultPaths() Paths {
	return Paths{Options: "/data/options.json", Data: "/data", Config: "/config", Share: "/share", Health: os.Getenv(HealthFileEnv)}
}

// HealthFileEnv names the health file; the image sets it (to
// DefaultHealthFile), so the gateway keeps a health file only where a
// HEALTHCHECK reads it.
const HealthFileEnv = "FLOWIQ_HEALTH_FILE"

// DefaultHealthFile is the image's health file, which the health command
// reads when $FLOWIQ_HEALTH_FILE is not set.
const DefaultHealthFile = "/tmp/flowiq-gateway-health.json"

// HealthFile is the health file the health command reads by default.
func HealthFile() string {
	if f := os.Getenv(HealthFileEnv); f != "" {
		return f
	}
	return DefaultHealthFile
}

// OptionsSource is meters.Meter.Source for every meter from the options,
// and Broker.Source for a broker named by mqtt_url.
const OptionsSource = "add-on options"

// LevelTrace is below slog.LevelDebug: every frame heard, decoded or not.
const LevelTrace = slog.LevelDebug - 4

// Sentinel errors; every error LoadOptions reports wraps one of them.
var (
	ErrOptionsFile   = errors.New("cannot read the add-on options")
	ErrBadOption     = errors.New("invalid option")
	ErrBadMeterID    = errors.New("invalid meter ID")
	ErrBadKey        = errors.New("invalid key")
	ErrDuplicateID   = errors.New("meter listed twice")
	ErrKEMFile       = errors.New("unusable KEM file")
	ErrMeterConflict = errors.New("meter listed in two places")
	ErrNoKey         = errors.New("no key")
)

// Secret is a password or key text. It prints as [redacted] with every fmt
// verb and in slog, so it can sit in structs that get logged; convert it to
// string explicitly where the real value is needed.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Options are the add-on options after validation. A zero Options is not
// useful; start from Defaults or LoadOptions.
type Options struct {
	Radio Radio
	// Inputs, when set, are where frames come from instead of the radio
	// alone (mqtt:// for receivers elsewhere, rtlsdr://, rtltcp://, …).
	Inputs []string

	// MQTT override. An empty MQTTURL means "use the Supervisor's broker";
	// MQTTUsername/MQTTPassword, when set, replace the credentials either way.
	MQTTURL      string
	MQTTUsername string
	MQTTPassword Secret

	DiscoveryPrefix string
	// StatusTopic is Home Assistant's birth topic; "online" there makes
	// the gateway announce everything again.
	StatusTopic string
	LogLevel    slog.Level

	// KEMFile is the option as written (a name relative to the config folder
	// or a path in /config or /share); resolve it with KEMPath.
	KEMFile     string
	KEMPassword Secret

	meters []meters.Meter
}

// Defaults are the options a fresh install starts with; they match the
// options block of config.yaml (a test checks this).
func Defaults() Options {
	return Options{
		Radio:           DefaultRadio(),
		DiscoveryPrefix: "homeassistant",
		StatusTopic:     "homeassistant/status",
		LogLevel:        slog.LevelInfo,
	}
}

// Meters returns the valid meter entries, in the order of the options, each
// with Source OptionsSource and Enabled set. A meter without a key (HasKey
// false) expects its key from the TOML meter list or a KEM file (see Merge).
func (o Options) Meters() []meters.Meter {
	return append([]meters.Meter(nil), o.meters...)
}

// String describes the options without any secret (keys, passwords).
func (o Options) String() string {
	return fmt.Sprintf("%d meter(s), radio %s, discovery prefix %q, status topic %q, log level %s, mqtt_url %q, kem_file %q",
		len(o.meters), o.Radio, o.DiscoveryPrefix, o.StatusTopic, levelName(o.LogLevel), redactURL(o.MQTTURL), o.KEMFile)
}

// GoString keeps %#v from printing meter keys.
func (o Options) GoString() string { return "addon.Options{" + o.String() + "}" }

// LogValue is what slog prints: no keys, no passwords.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("meters", len(o.meters)),
		slog.String("radio", o.Radio.String()),
		slog.String("discovery_prefix", o.DiscoveryPrefix),
		slog.String("status_topic", o.StatusTopic),
		slog.String("log_level", levelName(o.LogLevel)),
		slog.String("mqtt_url", redactURL(o.MQTTURL)),
		slog.String("kem_file", o.KEMFile),
	)
}

// OptionError names the option at fault. Option is the path as the user sees
// it in the configuration page: "radio.ppm", "mqtt_url".
type OptionError struct {
	Option string
	Err    error
}

func (e *OptionError) Error() string { return "option " + e.Option + ": " + e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// MeterError names a meter entry at fault. The entry is skipped.
type MeterError struct {
	Entry int    // 1-based position in the meters list, as shown in the configuration page
	ID    string // the entry's ID when it is a valid one, else ""
	Field string // "id", "key", "name", "model" or "" for the entry as a whole
	Err   error
}

func (e *MeterError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "meters entry %d", e.Entry)
	if e.ID != "" {
		fmt.Fprintf(&b, " (meter %s)", e.ID)
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Err.Error() + "; entry skipped")
	return b.String()
}

func (e *MeterError) Unwrap() error { return e.Err }

// LoadOptions reads the options file (normally /data/options.json). It
// never fails as a whole: it returns the usable options plus one error per
// problem (wrapping ErrOptionsFile, ErrLastGoodOptions, ErrBadOption,
// ErrBadMeterID, ErrBadKey, ErrDuplicateID). A bad meter entry is skipped;
// a bad setting keeps its default. If the file itself cannot be read, the
// result is Defaults() and an error wrapping ErrOptionsFile, which the
// caller may treat as fatal.
func LoadOptions(path string) (Options, []error) { return LoadOptionsKeeping(path, "") }

// LoadOptionsKeeping is LoadOptions that also keeps a copy of an options
// file that reads well in dir (the add-on's /data), as LastGoodName. If the
// file itself cannot be read or is not a JSON object (truncated while being
// written, a full disk), that copy is used instead, with an error wrapping
// ErrLastGoodOptions: starting with no meters would remove every meter's
// device from Home Assistant. dir "" keeps no copy.
func LoadOptionsKeeping(path, dir string) (Options, []error) {
	data, err := os.ReadFile(path)
	var o Options
	var errs []error
	if err != nil {
		o, errs = Defaults(), []error{fmt.Errorf("%w: %w", ErrOptionsFile, err)}
	} else {
		o, errs = parseOptions(data, path)
	}
	if dir == "" {
		return o, errs
	}
	keep := filepath.Join(dir, LastGoodName)
	if !unreadable(errs) {
		if err := keepLastGood(keep, data); err != nil {
			errs = append(errs, fmt.Errorf("%w: keeping a copy of the options for when %s cannot be read: %w", ErrBadOption, path, err))
		}
		return o, errs
	}
	good, err := os.ReadFile(keep)
	if err != nil {
		return o, errs // no copy (a first start): the defaults it is
	}
	og, gerrs := parseOptions(good, keep)
	clear(good) // it holds keys and passwords
	if unreadable(gerrs) {
		return o, errs
	}
	return og, append([]error{fmt.Errorf("%w: %v; using the last options that read well, from %s", ErrLastGoodOptions, errs[0], keep)}, gerrs...)
}

// ErrLastGoodOptions: the options file could not be read, and the copy of
// the last one that could is used.
var ErrLastGoodOptions = errors.New("add-on options unreadable")

// LastGoodName is the copy of the last options file that read well, in
// the directory given to LoadOptionsKeeping; private (it holds keys and
// passwords).
const LastGoodName = "options.last-good.json"

func unreadable(errs []error) bool {
	for _, e := range errs {
		if errors.Is(e, ErrOptionsFile) {
			return true
		}
	}
	return false
}

// keepLastGood writes data to dst unless it is there already,
// atomically and readable by the owner only.
func keepLastGood(dst string, data []byte) error {
	if old, err := os.ReadFile(dst); err == nil && string(old) == string(data) {
		clear(old)
		return nil
	}
	return atomicfile.Write(dst, data, 0o600)
}

// decodeInputs reads the inputs option: a list of input specs, each
// checked as the command line's --input is; a bad one is reported and
// skipped.
func (o *Options) decodeInputs(raw json.RawMessage) []error {
	if string(raw) == "null" {
		return nil
	}
	var list []*string
	if err := json.Unmarshal(raw, &list); err != nil {
		return []error{&OptionError{Option: "inputs", Err: fmt.Errorf("%w: want a list of inputs, got %s", ErrBadOption, jsonKind(raw))}}
	}
	var errs []error
	for i, p := range list {
		if p == nil || strings.TrimSpace(*p) == "" {
			continue
		}
		spec := strings.TrimSpace(*p)
		if _, err := pipeline.NewSource(spec, nil, pipeline.RadioOptions{}); err != nil {
			errs = append(errs, &OptionError{Option: fmt.Sprintf("inputs[%d]", i), Err: fmt.Errorf("%w: %w; skipped", ErrBadOption, err)})
			continue
		}
		o.Inputs = append(o.Inputs, spec)
	}
	return errs
}

// parseOptions is LoadOptions on the file's content; path is for messages.
func parseOptions(data []byte, path string) (Options, []error) {
	o := Defaults()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return o, []error{fmt.Errorf("%w: %s is not valid JSON: %w", ErrOptionsFile, path, err)}
	}
	if top == nil {
		return o, []error{fmt.Errorf("%w: %s holds no options object", ErrOptionsFile, path)}
	}
	var errs []error
	report := func(option string, err error) {
		errs = append(errs, &OptionError{Option: option, Err: err})
	}

	if raw, ok := top["meters"]; ok {
		errs = append(errs, o.decodeMeters(raw)...)
	}
	if raw, ok := top["radio"]; ok {
		errs = append(errs, o.Radio.decode(raw)...)
	}
	if raw, ok := top["inputs"]; ok {
		errs = append(errs, o.decodeInputs(raw)...)
	}
	var s string
	if decodeString(top, "mqtt_url", &s, report) {
		if u, err := normalizeBrokerURL(s); err != nil {
			report("mqtt_url", fmt.Errorf("%w: %w; using the Supervisor's broker instead", ErrBadOption, err))
		} else {
			o.MQTTURL = u
		}
	}
	if decodeString(top, "mqtt_username", &s, report) {
		o.MQTTUsername = s
	}
	if decodeSecret(top, "mqtt_password", &s, report) {
		o.MQTTPassword = Secret(s)
	}
	if decodeString(top, "discovery_prefix", &s, report) {
		if err := checkTopicPrefix(s); err != nil {
			report("discovery_prefix", fmt.Errorf("%w: %w; using %q", ErrBadOption, err, o.DiscoveryPrefix))
		} else {
			o.DiscoveryPrefix = s
		}
	}
	if decodeString(top, "status_topic", &s, report) {
		if err := checkTopicPrefix(s); err != nil {
			report("status_topic", fmt.Errorf("%w: %w; using %q", ErrBadOption, err, o.StatusTopic))
		} else {
			o.StatusTopic = s
		}
	}
	if decodeString(top, "log_level", &s, report) {
		if l, ok := logLevels[s]; ok {
			o.LogLevel = l
		} else {
			report("log_level", fmt.Errorf("%w: %q is not one of trace, debug, info, warning, error; using info", ErrBadOption, s))
		}
	}
	if decodeString(top, "kem_file", &s, report) {
		o.KEMFile = s
	}
	if decodeSecret(top, "kem_password", &s, report) {
		o.KEMPassword = Secret(s)
	}
	if o.KEMFile == "" && o.KEMPassword != "" {
		report("kem_password", fmt.Errorf("%w: set, but kem_file is empty; the password is not used", ErrBadOption))
	}
	return o, errs
}

// decodeString reads an optional string option. It returns true when the
// option is present and is a non-empty string (surrounding space trimmed,
// since the configuration page keeps pasted blanks).
func decodeString(top map[string]json.RawMessage, name string, dst *string, report func(string, error)) bool {
	if !decodeSecret(top, name, dst, report) {
		return false
	}
	*dst = strings.TrimSpace(*dst)
	return *dst != ""
}

// decodeSecret is decodeString for passwords: their blanks may be meant, so
// they are kept.
func decodeSecret(top map[string]json.RawMessage, name string, dst *string, report func(string, error)) bool {
	raw, ok := top[name]
	if !ok || string(raw) == "null" {
		return false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		report(name, fmt.Errorf("%w: want text, got %s", ErrBadOption, jsonKind(raw)))
		return false
	}
	if s == "" {
		return false
	}
	*dst = s
	return true
}

// jsonKind names the JSON type of raw without echoing its content (which
// could be a secret typed into the wrong field).
func jsonKind(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "nothing"
	}
	switch s[0] {
	case '"':
		return "text"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "true/false"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

var logLevels = map[string]slog.Level{
	"trace":   LevelTrace,
	"debug":   slog.LevelDebug,
	"info":    slog.LevelInfo,
	"warning": slog.LevelWarn,
	"error":   slog.LevelError,
}

func levelName(l slog.Level) string {
	for name, v := range logLevels {
		if v == l {
			return name
		}
	}
	return l.String()
}

// checkTopicPrefix accepts an MQTT topic prefix Home Assistant can
// subscribe to: no wildcards, no empty levels.
func checkTopicPrefix(s string) error {
	if strings.ContainsAny(s, "+#\x00") {
		return errors.New("must not contain the MQTT wildcards + or #")
	}
	for _, level := range strings.Split(s, "/") {
		if level == "" {
			return errors.New("must not start or end with / or contain //")
		}
	}
	return nil
}

// KEMPath resolves the kem_file option: a bare name or relative path is
// taken inside the add-on's config folder; an absolute path must lie in the
// config folder or in /share (the only folders the add-on can read). It
// returns "" and no error when no KEM file is configured.
func (o Options) KEMPath(p Paths) (string, error) {
	if o.KEMFile == "" {
		return "", nil
	}
	fail := func(format string, args ...any) (string, error) {
		return "", &OptionError{Option: "kem_file", Err: fmt.Errorf("%w: "+format, append([]any{ErrKEMFile}, args...)...)}
	}
	path := o.KEMFile
	if !filepath.IsAbs(path) {
		path = filepath.Join(p.Config, path)
	}
	path = filepath.Clean(path)
	if !within(path, p.Config) && !within(path, p.Share) {
		return fail("%s is outside %s and %s: put the file in the add-on's config folder (or /share) and enter its name", o.KEMFile, p.Config, p.Share)
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fail("%s does not exist: upload the file to the add-on's config folder (File editor or Samba) and enter its name", path)
	case err != nil:
		return fail("%w", err)
	case st.IsDir():
		return fail("%s is a folder, not a file", path)
	}
	if o.KEMPassword == "" {
		return path, &OptionError{Option: "kem_password", Err: fmt.Errorf("%w: %s is set but kem_password is empty; KEM files are encrypted with the password the utility sent", ErrKEMFile, o.KEMFile)}
	}
	return path, nil
}

// within reports whether path is dir or inside it (both cleaned).
func within(path, dir string) bool {
	if dir == "" {
		return false
	}
	dir = filepath.Clean(dir)
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
