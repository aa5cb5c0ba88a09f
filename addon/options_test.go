package addon

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// The key of meter 74493770 in the shared Kamstrup test vectors.
const testKey = "44E9112D06BD762EC2BFECE57E487C9B"

func mustKey(t *testing.T, s string) [16]byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil || len(b) != 16 {
		t.Fatalf("bad test key %q", s)
	}
	return [16]byte(b)
}

func mustID(t *testing.T, s string) wmbus.ID {
	t.Helper()
	id, err := wmbus.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// secretsIn returns every key and password text in an options fixture, so a
// test can check that no message repeats one.
func secretsIn(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`"(?:key|id|mqtt_password|kem_password)":\s*"([^"]+)"`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		v := m[1]
		if len(v) == 8 && strings.Trim(v, "0123456789") == "" { // a valid meter ID is no secret
			continue
		}
		out = append(out, v)
	}
	return out
}

// assertNoSecret fails when msg contains a secret or any 8-character piece
// of one.
func assertNoSecret(t *testing.T, msg string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		compact := strings.ReplaceAll(s, " ", "")
		for _, v := range []string{s, compact} {
			for i := 0; i+8 <= len(v); i++ {
				piece := v[i : i+8]
				if strings.Contains(strings.ToUpper(msg), strings.ToUpper(piece)) && strings.Trim(piece, "0123456789") != "" {
					t.Errorf("message repeats a secret piece %q: %s", piece, msg)
					return
				}
			}
		}
	}
}

func TestLoadOptionsFull(t *testing.T) {
	o, errs := LoadOptions("testdata/options-full.json")
	for _, err := range errs {
		t.Errorf("unexpected problem: %v", err)
	}
	want := []meters.Meter{
		{ID: mustID(t, "74493770"), Name: "Kitchen", Key: mustKey(t, testKey), HasKey: true, Model: "flowIQ 2101", Enabled: true, Source: OptionsSource},
		{ID: mustID(t, "12345678"), Key: mustKey(t, "000102030405060708090A0B0C0D0E0F"), HasKey: true, Enabled: true, Source: OptionsSource},
		{ID: mustID(t, "87654321"), Name: "Garden", Enabled: true, Source: OptionsSource},
	}
	if got := o.Meters(); !reflect.DeepEqual(got, want) {
		t.Errorf("Meters() =\n%v\nwant\n%v", got, want)
	}
	wantRadio := Radio{Device: "00000001", Frequency: "868.9M", SampleRate: "2.4M", Modes: []string{"T1"}, Gain: "49.6", PPM: -12}
	if !reflect.DeepEqual(o.Radio, wantRadio) {
		t.Errorf("Radio = %#v, want %#v", o.Radio, wantRadio)
	}
	if got := o.Radio.Input(); got != "rtlsdr://00000001" {
		t.Errorf("Input() = %q", got)
	}
	checks := []struct{ name, got, want string }{
		{"MQTTURL", o.MQTTURL, "ssl://broker.example.net:8883"},
		{"MQTTUsername", o.MQTTUsername, "gateway"},
		{"MQTTPassword", string(o.MQTTPassword), "broker-secret-pw"},
		{"DiscoveryPrefix", o.DiscoveryPrefix, "ha/discovery"},
		{"StatusTopic", o.StatusTopic, "ha/status"},
		{"KEMFile", o.KEMFile, "keys.zip.kem"},
		{"KEMPassword", string(o.KEMPassword), "TestPass123"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if o.LogLevel != slog.LevelDebug {
		t.Errorf("LogLevel = %v, want debug", o.LogLevel)
	}
	// Meters returns a copy: the caller cannot change the options.
	m := o.Meters()
	m[0].Name = "changed"
	if o.Meters()[0].Name != "Kitchen" {
		t.Error("Meters() shares its backing array with the options")
	}
}

func TestLoadOptionsBadMeters(t *testing.T) {
	const path = "testdata/options-bad-meters.json"
	o, errs := LoadOptions(path)
	want := []struct {
		entry    int
		id       string
		field    string
		sentinel error
		text     string
	}{
		{2, "", "id", ErrBadMeterID, "must be 8 digits, found 7 characters"},
		{3, "12345678", "key", ErrBadKey, "must be 32 hex digits, found 30"},
		{4, "23456789", "key", ErrBadKey, "not a hex digit at position 31"},
		{5, "", "id", ErrBadMeterID, "must be 8 digits, found 32 characters"},
		{6, "74493770", "id", ErrDuplicateID, "entry 1 has the same ID"},
		{7, "", "", ErrBadOption, "want an entry with id and key, got text"},
		{8, "", "id", ErrBadMeterID, "missing"},
		{9, "", "id", ErrBadMeterID, "want text, got a number"},
		{10, "45678901", "key", ErrBadKey, "want text, got a number"},
	}
	if len(errs) != len(want) {
		t.Errorf("got %d problems, want %d:", len(errs), len(want))
		for _, e := range errs {
			t.Log(e)
		}
	}
	secrets := secretsIn(t, path)
	for i, err := range errs {
		assertNoSecret(t, err.Error(), secrets)
		if i >= len(want) {
			continue
		}
		w := want[i]
		var me *MeterError
		if !errors.As(err, &me) {
			t.Errorf("problem %d is %T, want *MeterError: %v", i, err, err)
			continue
		}
		if me.Entry != w.entry || me.ID != w.id || me.Field != w.field {
			t.Errorf("problem %d: entry %d id %q field %q, want entry %d id %q field %q (%v)",
				i, me.Entry, me.ID, me.Field, w.entry, w.id, w.field, err)
		}
		if !errors.Is(err, w.sentinel) {
			t.Errorf("problem %d: %v does not wrap %v", i, err, w.sentinel)
		}
		msg := err.Error()
		if !strings.Contains(msg, w.text) || !strings.Contains(msg, fmt.Sprintf("meters entry %d", w.entry)) || !strings.HasSuffix(msg, "entry skipped") {
			t.Errorf("problem %d: %q lacks %q, the entry number or the consequence", i, msg, w.text)
		}
	}
	var ids []string
	for _, m := range o.Meters() {
		ids = append(ids, m.ID.String())
	}
	if got, want := strings.Join(ids, ","), "74493770,56789012"; got != want {
		t.Errorf("kept meters %s, want %s", got, want)
	}
	if o.Meters()[1].Key != mustKey(t, "000102030405060708090A0B0C0D0E0F") {
		t.Error("lower-case key parsed wrongly")
	}
}

func TestLoadOptionsBadSettings(t *testing.T) {
	const path = "testdata/options-bad-settings.json"
	o, errs := LoadOptions(path)
	want := map[string]error{
		"meters":            ErrBadOption,
		"radio.rtl_tcp":     nil, // valid
		"radio.device":      ErrBadOption,
		"radio.frequency":   ErrBadOption,
		"radio.sample_rate": ErrBadOption,
		"radio.modes":       ErrBadOption,
		"radio.gain":        ErrBadOption,
		"radio.ppm":         ErrBadOption,
		"mqtt_url":          ErrBrokerURL,
		"mqtt_username":     ErrBadOption,
		"discovery_prefix":  ErrBadOption,
		"log_level":         ErrBadOption,
		"kem_password":      ErrBadOption,
	}
	got := map[string]bool{}
	secrets := secretsIn(t, path)
	for _, err := range errs {
		assertNoSecret(t, err.Error(), append(secrets, "hunter2pass"))
		var oe *OptionError
		if !errors.As(err, &oe) {
			t.Errorf("%T is not *OptionError: %v", err, err)
			continue
		}
		sentinel, ok := want[oe.Option]
		if !ok || sentinel == nil {
			t.Errorf("unexpected problem with %s: %v", oe.Option, err)
			continue
		}
		if !errors.Is(err, sentinel) {
			t.Errorf("%v does not wrap %v", err, sentinel)
		}
		if !strings.HasPrefix(err.Error(), "option "+oe.Option+": ") {
			t.Errorf("message does not start with the option: %q", err)
		}
		got[oe.Option] = true
	}
	for opt, sentinel := range want {
		if sentinel != nil && !got[opt] {
			t.Errorf("no problem reported for %s", opt)
		}
	}
	// Every bad setting keeps its default; the good one is used.
	d := Defaults()
	wantRadio := d.Radio
	wantRadio.RTLTCP = "192.168.1.20:1234"
	if !reflect.DeepEqual(o.Radio, wantRadio) {
		t.Errorf("Radio = %#v, want %#v", o.Radio, wantRadio)
	}
	if o.Radio.Input() != "rtltcp://192.168.1.20:1234" {
		t.Errorf("Input() = %q", o.Radio.Input())
	}
	if o.MQTTURL != "" || o.MQTTUsername != "" || o.DiscoveryPrefix != d.DiscoveryPrefix || o.LogLevel != d.LogLevel || len(o.Meters()) != 0 {
		t.Errorf("bad settings were not replaced by defaults: %v", o)
	}
}

func TestLoadOptionsFile(t *testing.T) {
	for _, path := range []string{"testdata/does-not-exist.json", "testdata/options-truncated.json", "testdata/options-null.json"} {
		o, errs := LoadOptions(path)
		if len(errs) != 1 || !errors.Is(errs[0], ErrOptionsFile) {
			t.Errorf("%s: got %v, want one ErrOptionsFile", path, errs)
		}
		if !reflect.DeepEqual(o, Defaults()) {
			t.Errorf("%s: options are not the defaults: %v", path, o)
		}
	}
}

func TestLoadOptionsEmptyValues(t *testing.T) {
	// What the Supervisor writes for optional options left empty: absent
	// keys, and blanks pasted into a field.
	path := filepath.Join(t.TempDir(), "options.json")
	data := `{"meters":[{"id":" 74493770 ","key":"  "}],"radio":{"device":"","rtl_tcp":null,"frequency":"868.95M","sample_rate":"1.6M","modes":"C1,T1","gain":"auto","ppm":0},"mqtt_url":"  ","mqtt_password":" pw ","discovery_prefix":"homeassistant","log_level":"trace"}`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	o, errs := LoadOptions(path)
	if len(errs) != 0 {
		t.Fatalf("problems: %v", errs)
	}
	if m := o.Meters(); len(m) != 1 || m[0].HasKey || m[0].ID.String() != "74493770" {
		t.Errorf("meters = %v", m)
	}
	if _, ok := o.Broker(); ok {
		t.Error("a blank mqtt_url overrides the Supervisor's broker")
	}
	if o.LogLevel != LevelTrace {
		t.Errorf("LogLevel = %v, want trace", o.LogLevel)
	}
	if o.MQTTPassword != " pw " {
		t.Error("the blanks of a password were trimmed")
	}
	if o.Radio.Input() != "rtlsdr://0" {
		t.Errorf("Input() = %q", o.Radio.Input())
	}
}

// FuzzLoadOptions: any options file gives usable options and only errors
// that wrap one of the package's sentinels.
func FuzzLoadOptions(f *testing.F) {
	for _, name := range []string{"options-full.json", "options-bad-meters.json", "options-bad-settings.json", "options-truncated.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"radio":{"frequency":"923M","sample_rate":"2.4M","channel":"922.9M","chip_rate":"100k","deviation":"45k"},"status_topic":"ha/status"}`))
	f.Add([]byte(`{"radio":{"frequency":"868.95M","sample_rate":"1.0M","channel":"869.4M","chip_rate":"300k","deviation":"200k"},"status_topic":"a/#"}`))
	sentinels := []error{ErrOptionsFile, ErrBadOption, ErrBadMeterID, ErrBadKey, ErrDuplicateID, ErrBrokerURL}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, errs := parseOptions(data, "options.json")
		for _, err := range errs {
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
		}
		seen := map[wmbus.ID]bool{}
		for _, m := range o.Meters() {
			if seen[m.ID] || !m.Enabled || m.Source != OptionsSource {
				t.Fatalf("bad meter list: %v", o.Meters())
			}
			seen[m.ID] = true
		}
		if o.Radio.Frequency == "" || o.Radio.SampleRate == "" || len(o.Radio.Modes) == 0 || o.Radio.Gain == "" || o.DiscoveryPrefix == "" || o.StatusTopic == "" {
			t.Fatalf("a radio setting, the prefix or the status topic is empty: %v", o)
		}
		// Whatever was typed, the radio the options give can run.
		if err := o.Radio.checkDemod(); err != nil {
			t.Fatalf("radio %v: %v", o.Radio, err)
		}
	})
}

func TestOptionsNeverPrintSecrets(t *testing.T) {
	const path = "testdata/options-full.json"
	o, errs := LoadOptions(path)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	log.Info("options", "options", o, "password", o.MQTTPassword, "broker", Broker{URL: "tcp://x:1883", Password: "broker-secret-pw"})
	out := fmt.Sprintf("%v|%+v|%#v|%s|%v|%+v|%#v|%s|%x", o, o, o, o, o.MQTTPassword, o.KEMPassword, o.KEMPassword, o.MQTTPassword, o.MQTTPassword) + logged.String()
	secrets := append(secretsIn(t, path), "broker-secret-pw", "TestPass123")
	assertNoSecret(t, out, secrets)
	if !strings.Contains(out, "3 meter(s)") || !strings.Contains(out, "[redacted]") {
		t.Errorf("the description lost its content: %s", out)
	}
}

func TestDefaultsMatchInput(t *testing.T) {
	d := Defaults()
	if d.Radio.Input() != "rtlsdr://0" {
		t.Errorf("default input %q", d.Radio.Input())
	}
	s := d.Radio.Settings()
	if s.Input != "rtlsdr://0" || s.Center != "868.95M" || s.Channel != "868.95M" || s.Rate != "1.6M" || s.Gain != "auto" || s.PPM == nil || *s.PPM != 0 ||
		!reflect.DeepEqual(s.Modes, []string{"C1", "T1"}) {
		t.Errorf("Settings() = %+v", s)
	}
}

func TestKEMPath(t *testing.T) {
	root := t.TempDir()
	p := Paths{Config: filepath.Join(root, "config"), Share: filepath.Join(root, "share"), Data: filepath.Join(root, "data")}
	for _, d := range []string{p.Config, p.Share, p.Data, filepath.Join(p.Config, "sub.kem")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(p.Config, "keys.zip.kem"), filepath.Join(p.Share, "utility.kem"), filepath.Join(p.Data, "options.kem")} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		file, password string
		want           string
		sentinel       error
		option         string
	}{
		{"", "", "", nil, ""},
		{"keys.zip.kem", "pw", filepath.Join(p.Config, "keys.zip.kem"), nil, ""},
		{filepath.Join(p.Config, "keys.zip.kem"), "pw", filepath.Join(p.Config, "keys.zip.kem"), nil, ""},
		{filepath.Join(p.Share, "utility.kem"), "pw", filepath.Join(p.Share, "utility.kem"), nil, ""},
		{"keys.zip.kem", "", filepath.Join(p.Config, "keys.zip.kem"), ErrKEMFile, "kem_password"},
		{"missing.kem", "pw", "", ErrKEMFile, "kem_file"},
		{"sub.kem", "pw", "", ErrKEMFile, "kem_file"},
		{"../data/options.kem", "pw", "", ErrKEMFile, "kem_file"},
		{filepath.Join(p.Data, "options.kem"), "pw", "", ErrKEMFile, "kem_file"},
	}
	for _, c := range cases {
		o := Defaults()
		o.KEMFile, o.KEMPassword = c.file, Secret(c.password)
		got, err := o.KEMPath(p)
		if got != c.want {
			t.Errorf("KEMPath(%q) = %q, want %q", c.file, got, c.want)
		}
		if c.sentinel == nil {
			if err != nil {
				t.Errorf("KEMPath(%q): %v", c.file, err)
			}
			continue
		}
		var oe *OptionError
		if !errors.Is(err, c.sentinel) || !errors.As(err, &oe) || oe.Option != c.option {
			t.Errorf("KEMPath(%q) error %v, want %v on %s", c.file, err, c.sentinel, c.option)
		}
	}
}

func TestMerge(t *testing.T) {
	id1, id2, id3 := mustID(t, "74493770"), mustID(t, "12345678"), mustID(t, "87654321")
	k1, k2 := mustKey(t, testKey), mustKey(t, "000102030405060708090A0B0C0D0E0F")
	options := []meters.Meter{
		{ID: id1, Name: "Kitchen", Key: k1, HasKey: true, Enabled: true, Source: OptionsSource},
		{ID: id2, Enabled: true, Source: OptionsSource}, // key expected from the KEM file
	}
	kem := []meters.Meter{
		{ID: id2, Name: "FLOWIQ 21XX", Key: k2, HasKey: true, Model: "flowIQ 2101", Enabled: true, Source: "KEM file keys.zip.kem"},
		{ID: id1, Key: k2, HasKey: true, Enabled: true, Source: "KEM file keys.zip.kem"},
		{ID: id3, Key: k2, HasKey: true, Enabled: true, Source: "KEM file keys.zip.kem"},
	}
	got, warnings := Merge(options, kem)
	want := []meters.Meter{
		{ID: id1, Name: "Kitchen", Key: k1, HasKey: true, Enabled: true, Source: OptionsSource},
		{ID: id2, Name: "FLOWIQ 21XX", Key: k2, HasKey: true, Model: "flowIQ 2101", Enabled: true, Source: "add-on options (key from KEM file keys.zip.kem)"},
		{ID: id3, Key: k2, HasKey: true, Enabled: true, Source: "KEM file keys.zip.kem"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Merge =\n%v\nwant\n%v", got, want)
	}
	if len(warnings) != 1 || !errors.Is(warnings[0], ErrMeterConflict) ||
		warnings[0].Error() != "meter listed in two places: meter 74493770 is in add-on options and in KEM file keys.zip.kem; using the entry from add-on options" {
		t.Errorf("warnings = %v", warnings)
	}
	if options[1].HasKey {
		t.Error("Merge modified its input")
	}

	missing := MissingKeys([]meters.Meter{options[1], {ID: id3, Enabled: false}, options[0]})
	if len(missing) != 1 || !errors.Is(missing[0], ErrNoKey) || !strings.Contains(missing[0].Error(), "meter 12345678 (add-on options)") {
		t.Errorf("MissingKeys = %v", missing)
	}
}
