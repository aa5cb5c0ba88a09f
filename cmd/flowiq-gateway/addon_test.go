package main

import (
	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"

	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/addon"
)

const (
	addonRecording = "../../testdata/flowiq2101_74493770_868.95M_1M6.cu8"
	addonKEMFile   = "../../testdata/kem/synthetic_test.zip.kem"

	addonSeedKey      = "44E9112D06BD762EC2BFECE57E487C9B"
	addonSynthKey     = "000102030405060708090A0B0C0D0E0F"
	addonKEMPassword  = "TestPass123"
	addonToken        = "supervisor-token-7f3a"
	addonBrokerPass   = "broker-secret-9c1d"
	addonShortKey     = "44E9112D06BD762EC2BFECE57E487C9" // 31 digits
	addonSynthTotalM3 = 123.456
)

// addonSecrets are the texts that must never reach a log line or stdout.
var addonSecrets = []string{addonSeedKey, addonSynthKey, addonShortKey, addonKEMPassword, addonToken, addonBrokerPass,
	"F0E1D2C3B4A5968778695A4B3C2D1E0F"} // the KEM file's second key

// haMosquitto is a real Mosquitto on a free local port, stopped at cleanup.
type haMosquitto struct {
	url  string
	host string
	port int
}

func startHAMosquitto(t *testing.T) *haMosquitto {
	t.Helper()
	b := brokertest.Start(t, "")
	return &haMosquitto{url: b.URL("tcp"), host: "127.0.0.1", port: b.Port()}
}

// retained returns the retained messages under filter, as a new subscriber
// sees them: what Home Assistant finds when it (re)starts.
func (b *haMosquitto) retained(t *testing.T, filter string) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	for topic, m := range brokertest.Retained(t, b.url, filter) {
		got[topic] = m.Payload
	}
	return got
}

// fakeSupervisor answers GET /services/mqtt like the Supervisor, checking
// the add-on's bearer token; status != 200 answers that status instead.
type fakeSupervisor struct {
	*httptest.Server
	calls   atomic.Int32
	badAuth atomic.Int32
}

func startSupervisor(t *testing.T, b *haMosquitto, status int) *fakeSupervisor {
	t.Helper()
	s := &fakeSupervisor{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodGet || r.URL.Path != "/services/mqtt" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"result":"error","message":"no such endpoint"}`)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+addonToken {
			s.badAuth.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"result":"error","message":"Invalid token"}`)
			return
		}
		if status != http.StatusOK {
			w.WriteHeader(status)
			fmt.Fprint(w, `{"result":"error","message":"try later"}`)
			return
		}
		fmt.Fprintf(w, `{"result":"ok","data":{"host":%q,"port":%d,"ssl":false,"protocol":"3.1.1","username":"addons","password":%q}}`,
			b.host, b.port, addonBrokerPass)
	}))
	t.Cleanup(s.Close)
	t.Setenv("SUPERVISOR_URL", s.URL)
	t.Setenv("SUPERVISOR_TOKEN", addonToken)
	return s
}

// addonDirs is one add-on installation: /data and /config in a temp dir.
type addonDirs struct{ options, data, config string }

func newAddonDirs(t *testing.T, options map[string]any) addonDirs {
	t.Helper()
	root := t.TempDir()
	d := addonDirs{options: filepath.Join(root, "data", "options.json"), data: filepath.Join(root, "data"), config: filepath.Join(root, "config")}
	for _, dir := range []string{d.data, d.config} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	full := map[string]any{
		"meters":           []any{},
		"radio":            map[string]any{"frequency": "868.95M", "sample_rate": "1.6M", "modes": "C1,T1", "gain": "auto", "ppm": 0},
		"discovery_prefix": "homeassistant",
		"log_level":        "info",
	}
	for k, v := range options {
		full[k] = v
	}
	b, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.options, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d addonDirs) args(extra ...string) []string {
	return append([]string{"addon", "--options", d.options, "--data", d.data, "--config-dir", d.config}, extra...)
}

// runAddonCommand runs the add-on in-process until its input ends. It
// fails the test if any secret shows up in the log or on stdout.
func runAddonCommand(t *testing.T, stdin string, args ...string) (code int, stdout, log string) {
	t.Helper()
	var out, errb output
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code = execute(ctx, e, args)
	if ctx.Err() != nil {
		t.Errorf("the add-on did not stop by itself when its input ended")
	}
	stdout, log = out.String(), errb.String()
	all := strings.ToUpper(stdout + log)
	for _, s := range addonSecrets {
		if strings.Contains(all, strings.ToUpper(s)) {
			t.Errorf("secret %.4s… appears in the output", s)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s\nstdout:\n%s", log, stdout)
	}
	return code, stdout, log
}

// vectorFrames returns the hex telegrams of the vectors whose name starts
// with prefix.
func vectorFrames(t *testing.T, prefix string, want int) []string {
	t.Helper()
	return testvectors.Frames(t, prefix, want)
}

func seedLines(t *testing.T) string {
	return strings.Join(vectorFrames(t, "flowiq2101-74493770-", 35), "\n") + "\n"
}

func synthLines(t *testing.T) string {
	return strings.Join(vectorFrames(t, "synthetic-12345678-", 2), "\n") + "\n"
}

func jsonMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

// checkMeterPublished checks the retained device config and state of a
// meter: the device with its total entity, and the total in the state.
func checkMeterPublished(t *testing.T, got map[string][]byte, id, name string, total float64) {
	t.Helper()
	cfgTopic := "homeassistant/device/kamstrup_" + id + "/config"
	cfg, ok := got[cfgTopic]
	if !ok || len(cfg) == 0 {
		t.Errorf("no retained %s", cfgTopic)
	} else {
		var dc struct {
			Dev struct {
				Name   string `json:"name"`
				Serial string `json:"serial_number"`
			} `json:"dev"`
			Cmps map[string]struct {
				P           string `json:"p"`
				DeviceClass string `json:"device_class"`
				Unit        string `json:"unit_of_measurement"`
				StateClass  string `json:"state_class"`
			} `json:"cmps"`
			StateTopic string `json:"state_topic"`
		}
		if err := json.Unmarshal(cfg, &dc); err != nil {
			t.Fatalf("%s: %v", cfg, err)
		}
		if dc.Dev.Serial != id || (name != "" && dc.Dev.Name != name) {
			t.Errorf("%s device = %+v, want serial %s name %q", cfgTopic, dc.Dev, id, name)
		}
		var water bool
		for _, c := range dc.Cmps {
			water = water || c.P == "sensor" && c.DeviceClass == "water" && c.Unit == "m³" && c.StateClass == "total_increasing"
		}
		if !water || len(dc.Cmps) < 5 {
			t.Errorf("%s: %d entities, total water sensor %v: %s", cfgTopic, len(dc.Cmps), water, cfg)
		}
		if dc.StateTopic != "flowiq/"+id+"/state" {
			t.Errorf("%s: state_topic %q", cfgTopic, dc.StateTopic)
		}
	}
	state, ok := got["flowiq/"+id+"/state"]
	if !ok {
		t.Errorf("no retained state of meter %s", id)
		return
	}
	if s := jsonMap(t, state); s["total_m3"] != total || s["id"] != id {
		t.Errorf("state of %s: %s, want total_m3 %v", id, state, total)
	}
}

func TestAddonEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stdin func(*testing.T) string
		input string
	}{
		{"recording", func(*testing.T) string { return "" }, addonRecording},
		{"hex on stdin", seedLines, "hex:-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startHAMosquitto(t)
			sup := startSupervisor(t, b, http.StatusOK)
			d := newAddonDirs(t, map[string]any{
				"meters": []any{map[string]any{"id": "74493770", "name": "Kitchen", "key": "44E9 112D 06BD 762E C2BF ECE5 7E48 7C9B"}},
			})
			code, stdout, log := runAddonCommand(t, tc.stdin(t), d.args("--input", tc.input)...)
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			if sup.calls.Load() != 1 || sup.badAuth.Load() != 0 {
				t.Errorf("Supervisor asked %d times, %d with a wrong token", sup.calls.Load(), sup.badAuth.Load())
			}
			got := b.retained(t, "#")
			checkMeterPublished(t, got, "74493770", "Kitchen", 8.915)
			if _, ok := got["homeassistant/device/flowiq_gateway/config"]; !ok {
				t.Errorf("the gateway device was not announced; topics: %v", keys(got))
			}
			if stdout != "" {
				t.Errorf("readings went to stdout although a broker was found: %s", stdout)
			}
			for _, want := range []string{"MQTT broker", "source=Supervisor", "username=addons", "created an empty meter list"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q", want)
				}
			}
			// The starter meter list: private, parseable, no meter.
			fi, err := os.Stat(filepath.Join(d.config, "meters.toml"))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("starter meters.toml: %v, mode %v", err, fi.Mode())
			}
			// Last readings (and learned formats, none here: the meter's
			// compact format is a known one) persist in /data/state.
			if b, err := os.ReadFile(filepath.Join(d.data, "state", "last-readings.json")); err != nil || !strings.Contains(string(b), "8.915") {
				t.Errorf("state: %v: %.200s", err, b)
			}
		})
	}
}

func TestAddonInvalidKeySkipsOnlyThatMeter(t *testing.T) {
	b := startHAMosquitto(t)
	startSupervisor(t, b, http.StatusOK)
	d := newAddonDirs(t, map[string]any{
		"meters": []any{
			map[string]any{"id": "74493770", "key": addonShortKey},
			map[string]any{"id": "12345678", "name": "Garden", "key": addonSynthKey},
		},
	})
	code, _, log := runAddonCommand(t, seedLines(t)+synthLines(t), d.args("--input", "hex:-")...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(log, "meters entry 1 (meter 74493770): key: invalid key") || !strings.Contains(log, "31") {
		t.Errorf("no precise error for the bad key of meter 74493770")
	}
	got := b.retained(t, "#")
	checkMeterPublished(t, got, "12345678", "Garden", addonSynthTotalM3)
	if _, ok := got["flowiq/74493770/state"]; ok {
		t.Errorf("meter 74493770 was published without a valid key")
	}
}

// meters.toml in the config folder adds meters; on an ID in both, the
// options win and the log says so.
func TestAddonMeterListFile(t *testing.T) {
	b := startHAMosquitto(t)
	startSupervisor(t, b, http.StatusOK)
	d := newAddonDirs(t, map[string]any{
		"meters": []any{map[string]any{"id": "74493770", "name": "Kitchen", "key": addonSeedKey}},
	})
	list := "[[meter]]\nid = \"12345678\"\nname = \"Garden\"\nkey = \"" + addonSynthKey + "\"\n\n" +
		"[[meter]]\nid = \"74493770\"\nname = \"Old name\"\nkey = \"00000000000000000000000000000000\"\n"
	if err := os.WriteFile(filepath.Join(d.config, "meters.toml"), []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, log := runAddonCommand(t, seedLines(t)+synthLines(t), d.args("--input", "hex:-")...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(log, "meter 74493770 from add-on options overrides the entry at meters.toml:") {
		t.Errorf("no warning about the conflicting entry")
	}
	if strings.Contains(log, "created an empty meter list") {
		t.Errorf("an existing meters.toml was replaced")
	}
	got := b.retained(t, "#")
	checkMeterPublished(t, got, "74493770", "Kitchen", 8.915)
	checkMeterPublished(t, got, "12345678", "Garden", addonSynthTotalM3)
}

func TestAddonKEMFile(t *testing.T) {
	kemData, err := os.ReadFile(addonKEMFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("keys from the file", func(t *testing.T) {
		b := startHAMosquitto(t)
		startSupervisor(t, b, http.StatusOK)
		d := newAddonDirs(t, map[string]any{
			// No key: it comes from the KEM file; the name from here.
			"meters":       []any{map[string]any{"id": "12345678", "name": "Garden"}},
			"kem_file":     "keys.zip.kem",
			"kem_password": addonKEMPassword,
		})
		if err := os.WriteFile(filepath.Join(d.config, "keys.zip.kem"), kemData, 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, log := runAddonCommand(t, synthLines(t), d.args("--input", "hex:-")...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		if !strings.Contains(log, "KEM file read") || strings.Contains(log, "no key") {
			t.Errorf("KEM file not used as expected")
		}
		checkMeterPublished(t, b.retained(t, "#"), "12345678", "Garden", addonSynthTotalM3)
	})
	t.Run("wrong password", func(t *testing.T) {
		b := startHAMosquitto(t)
		startSupervisor(t, b, http.StatusOK)
		d := newAddonDirs(t, map[string]any{
			"meters": []any{
				map[string]any{"id": "74493770", "key": addonSeedKey},
				map[string]any{"id": "12345678"},
			},
			"kem_file":     "keys.zip.kem",
			"kem_password": "TestPass12",
		})
		if err := os.WriteFile(filepath.Join(d.config, "keys.zip.kem"), kemData, 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, log := runAddonCommand(t, seedLines(t)+synthLines(t), d.args("--input", "hex:-")...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		for _, want := range []string{
			"kem_file keys.zip.kem: ",
			"wrong password or not a KEM file: check kem_password",
			"meter 12345678 (add-on options): no key",
		} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q", want)
			}
		}
		got := b.retained(t, "#")
		checkMeterPublished(t, got, "74493770", "", 8.915)
		if _, ok := got["flowiq/12345678/state"]; ok {
			t.Errorf("meter 12345678 was decoded without its key")
		}
	})
	t.Run("outside the readable folders", func(t *testing.T) {
		b := startHAMosquitto(t)
		startSupervisor(t, b, http.StatusOK)
		d := newAddonDirs(t, map[string]any{
			"meters":       []any{map[string]any{"id": "74493770", "key": addonSeedKey}},
			"kem_file":     "/etc/keys.kem",
			"kem_password": addonKEMPassword,
		})
		code, _, log := runAddonCommand(t, seedLines(t), d.args("--input", "hex:-")...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		if !strings.Contains(log, "option kem_file: unusable KEM file: /etc/keys.kem is outside") {
			t.Errorf("no precise kem_file error")
		}
		checkMeterPublished(t, b.retained(t, "#"), "74493770", "", 8.915)
	})
}

// Without a broker the readings still reach the add-on log (stdout), and
// the log says why nothing goes to Home Assistant.
func TestAddonSupervisorRefusesToken(t *testing.T) {
	sup := startSupervisor(t, nil, http.StatusOK)
	t.Setenv("SUPERVISOR_TOKEN", "not-the-token")
	d := newAddonDirs(t, map[string]any{"meters": []any{map[string]any{"id": "74493770", "key": addonSeedKey}}})
	code, stdout, log := runAddonCommand(t, seedLines(t), d.args("--input", "hex:-")...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if sup.badAuth.Load() != 1 {
		t.Errorf("Supervisor saw %d refused requests, want 1 (no retry of a refused token)", sup.badAuth.Load())
	}
	for _, want := range []string{"no MQTT broker: the Supervisor refused the token (HTTP 401) (Supervisor: Invalid token)", "reinstall it", "readings are printed to this log"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(log, "not-the-token") {
		t.Errorf("the token was logged")
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 35 {
		t.Fatalf("%d readings on stdout, want 35", len(lines))
	}
	if r := jsonMap(t, []byte(lines[len(lines)-1])); r["total_m3"] != 8.915 || r["id"] != "74493770" {
		t.Errorf("last reading %s", lines[len(lines)-1])
	}
}

// A Supervisor that is still starting is asked again.
func TestAddonSupervisorRetried(t *testing.T) {
	b := startHAMosquitto(t)
	good := startSupervisor(t, b, http.StatusOK)
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		good.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(flaky.Close)
	t.Setenv("SUPERVISOR_URL", flaky.URL)
	defer func(d time.Duration) { addon.SupervisorRetryDelay = d }(addon.SupervisorRetryDelay)
	addon.SupervisorRetryDelay = 10 * time.Millisecond

	d := newAddonDirs(t, map[string]any{"meters": []any{map[string]any{"id": "74493770", "key": addonSeedKey}}})
	code, stdout, log := runAddonCommand(t, seedLines(t), d.args("--input", "hex:-")...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if calls.Load() != 3 || strings.Count(log, "asking the Supervisor for the MQTT broker again") != 2 {
		t.Errorf("%d requests; log:\n%s", calls.Load(), log)
	}
	if stdout != "" {
		t.Errorf("readings on stdout although the broker was found in the end")
	}
	checkMeterPublished(t, b.retained(t, "#"), "74493770", "", 8.915)
}

// mqtt_url in the options wins over the Supervisor, which is not asked.
func TestAddonBrokerFromOptions(t *testing.T) {
	b := startHAMosquitto(t)
	sup := startSupervisor(t, b, http.StatusOK)
	d := newAddonDirs(t, map[string]any{
		"meters":           []any{map[string]any{"id": "74493770", "key": addonSeedKey}},
		"mqtt_url":         fmt.Sprintf("127.0.0.1:%d", b.port),
		"discovery_prefix": "ha-test",
	})
	code, _, log := runAddonCommand(t, seedLines(t), d.args("--input", "hex:-")...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if sup.calls.Load() != 0 {
		t.Errorf("the Supervisor was asked although mqtt_url is set")
	}
	if !strings.Contains(log, "source=\"add-on options\"") {
		t.Errorf("log does not name the broker's source")
	}
	got := b.retained(t, "#")
	if _, ok := got["ha-test/device/kamstrup_74493770/config"]; !ok {
		t.Errorf("discovery_prefix not used; topics %v", keys(got))
	}
}

// --mqtt replaces both mqtt_url and the Supervisor.
func TestAddonMQTTFlag(t *testing.T) {
	b := startHAMosquitto(t)
	t.Setenv("SUPERVISOR_TOKEN", "")
	d := newAddonDirs(t, map[string]any{
		"meters":   []any{map[string]any{"id": "74493770", "key": addonSeedKey}},
		"mqtt_url": "tcp://127.0.0.1:1",
	})
	code, _, log := runAddonCommand(t, seedLines(t), d.args("--input", "hex:-", "--mqtt", b.url)...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(log, "source=--mqtt") {
		t.Errorf("log does not name the broker's source")
	}
	checkMeterPublished(t, b.retained(t, "#"), "74493770", "", 8.915)
}

// Listen mode: with log_level debug and no meters, every frame heard is
// logged with the meter's ID, signal level and frequency offset.
func TestAddonDebugLogsFrames(t *testing.T) {
	t.Setenv("SUPERVISOR_TOKEN", "")
	d := newAddonDirs(t, map[string]any{"log_level": "debug"})
	code, stdout, log := runAddonCommand(t, "", d.args("--input", addonRecording)...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	frames := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=DEBUG msg=frame") && strings.Contains(l, "id=74493770") &&
			strings.Contains(l, "level_dbfs=") && strings.Contains(l, "offset_hz=") {
			frames++
		}
	}
	if frames != 6 {
		t.Errorf("%d frames of 74493770 logged, want the recording's 6", frames)
	}
	if !strings.Contains(log, "SUPERVISOR_TOKEN is not set") || stdout != "" {
		t.Errorf("no broker line, or readings without a key: %q", stdout)
	}
}

// trace is below debug and printed as TRACE; a bad option never stops the
// add-on; a missing options file means the defaults.
func TestAddonOptionsProblems(t *testing.T) {
	t.Setenv("SUPERVISOR_TOKEN", "")
	d := newAddonDirs(t, map[string]any{
		"meters": []any{map[string]any{"id": "7449377", "key": addonSeedKey}, map[string]any{"id": "12345678", "key": addonSynthKey}},
		"radio":  map[string]any{"frequency": "868.95M", "sample_rate": "3M", "modes": "C1", "gain": "auto", "ppm": 0},
	})
	code, stdout, log := runAddonCommand(t, synthLines(t), d.args("--input", "hex:-")...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"meters entry 1: id: invalid meter ID", "option radio.sample_rate: invalid option: \\\"3M\\\" is not one of"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if n := strings.Count(stdout, `"id":"12345678"`); n != 2 {
		t.Errorf("%d readings of the valid meter, want 2", n)
	}

	missing := newAddonDirs(t, nil)
	code, _, log = runAddonCommand(t, "", "addon", "--options", filepath.Join(missing.data, "nothing.json"),
		"--data", missing.data, "--config-dir", missing.config, "--input", "hex:-", "--log-level", "trace")
	if code != 0 {
		t.Fatalf("exit %d with a missing options file", code)
	}
	if !strings.Contains(log, "cannot read the add-on options") || !strings.Contains(log, "running with the default options") {
		t.Errorf("missing options file not reported")
	}

	code, _, _ = runAddonCommand(t, "", d.args("--log-level", "loud")...)
	if code != 1 {
		t.Errorf("bad --log-level: exit %d, want 1", code)
	}
}

func TestAddonLogLevels(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want slog.Level
	}{{"trace", -8}, {"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warning", slog.LevelWarn}, {"WARN", slog.LevelWarn}, {"error", slog.LevelError}} {
		if got, err := addon.ParseLevel(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseLevel(%q) = %v, %v", tc.in, got, err)
		}
	}
	var buf output
	addon.NewLogger(&buf, -8).Log(context.Background(), -8, "x")
	if !strings.Contains(buf.String(), "level=TRACE") {
		t.Errorf("trace line: %s", buf.String())
	}
}

// The options' tuner settings describe the dongle; a recording given with
// --input describes itself, and meters.toml adds what the options lack.
func TestAddonRadioLayers(t *testing.T) {
	d := newAddonDirs(t, map[string]any{"radio": map[string]any{"frequency": "923M", "sample_rate": "2.4M", "modes": "C1", "gain": "40", "ppm": 3}})
	opts, problems := addon.LoadOptions(d.options)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if err := os.WriteFile(filepath.Join(d.config, "meters.toml"), []byte("[radio]\nchip_rate = \"50k\"\ncenter = \"100M\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	paths := addon.Paths{Options: d.options, Data: d.data, Config: d.config}
	resolve := func(args ...string) (string, float64, float64, float64, float64) {
		t.Helper()
		e := &env{stderr: io.Discard}
		fs := newFlags(e, "addon", "")
		var rf radioFlags
		rf.register(fs)
		if err := rf.parse(e, fs, args); err != nil {
			t.Fatal(err)
		}
		cfg, err := addon.Configure(context.Background(), slog.New(slog.DiscardHandler), opts, paths, rf.layer(), "test")
		if err != nil {
			t.Fatal(err)
		}
		ro := cfg.Radio
		return strings.Join(cfg.Inputs, " "), ro.IQ.CenterHz, ro.Demod.ChannelHz, ro.IQ.SampleRate, ro.Demod.ChipRate
	}
	input, center, channel, rate, chip := resolve()
	if input != "rtlsdr://0" || center != 923e6 || channel != 923e6 || rate != 2.4e6 || chip != 50e3 {
		t.Errorf("dongle: %s centre %v channel %v rate %v chip rate %v", input, center, channel, rate, chip)
	}
	input, center, channel, rate, _ = resolve("--input", addonRecording)
	if input != addonRecording || center != 0 || channel != 0 || rate != 0 {
		t.Errorf("recording: %s centre %v channel %v rate %v: the options' tuner settings leaked", input, center, channel, rate)
	}
	_, center, _, _, _ = resolve("--center", "868.3M")
	if center != 868.3e6 {
		t.Errorf("--center did not override the options: %v", center)
	}
}

func keys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
