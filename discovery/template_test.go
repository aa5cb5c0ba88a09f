package discovery

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
)

// renderScript renders value templates with Jinja2, the engine Home
// Assistant uses, in a sandbox like HA's. HA turns a rendered "None" into
// the state unknown.
const renderScript = `
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment()
out = []
for job in json.load(sys.stdin):
    out.append(env.from_string(job["t"]).render(value_json=json.loads(job["v"])))
json.dump(out, sys.stdout)
`

func renderTemplates(t *testing.T, jobs []map[string]string) []string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-c", "import jinja2").Run() != nil {
		t.Fatal("python3 with jinja2 is not installed: run `make test`, or `make deps` to install it (apt-get install python3-jinja2)")
	}
	in, _ := json.Marshal(jobs)
	cmd := exec.Command(py, "-c", renderScript)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("jinja2: %v\n%s", err, stderr.String())
	}
	var res []string
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	return res
}

// TestTemplatesRender renders every value template against real state JSON
// (the reading contract's MarshalJSON), including unknown (null) values and
// a state that lacks fields.
func TestTemplatesRender(t *testing.T) {
	s := testSite(t)
	rs := vectorReadings(t)
	var withNull kamstrup.Reading
	for _, r := range rs {
		if v, ok := r.Get(kamstrup.MinWaterTemp); ok && !v.Known {
			withNull = r
			break
		}
	}
	full := radioReading(t)
	full.Info.Raw |= 0x3 << 10 // leak history "2-3 days"
	dated := rs[0]
	dated.TargetDate = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	noTarget := rs[0]
	noTarget.Set(kamstrup.Target, kamstrup.Value{}) // reported, not measured: null
	states := map[string]kamstrup.Reading{"vector": rs[0], "null_temp": withNull, "radio": full, "dated": dated, "no_target": noTarget}
	cases := []struct {
		state, entity, want string
	}{
		{"vector", "total", "8.915"},
		{"vector", "target", "8.533"},
		{"vector", "min_water_temperature", "33"},
		{"vector", "ambient_temperature", "28"},
		{"vector", "alarm_dry", "ON"},
		{"vector", "alarm_leak", "OFF"},
		{"vector", "alarm_history", "dry 4-7 days"},
		{"vector", "info_code", "65"},
		{"vector", "month_consumption", "0.382"},
		{"vector", "target_date", "None"}, // compact frames carry no date
		{"dated", "target_date", "2026-11-01"},
		{"null_temp", "month_consumption", "0.382"},
		{"empty", "month_consumption", "None"},
		{"no_target", "month_consumption", "None"},
		{"vector", "rssi", "None"}, // no radio data: unknown
		{"null_temp", "min_water_temperature", "None"},
		{"null_temp", "ambient_temperature", "27"},
		{"radio", "rssi", "-41.3"},
		{"radio", "alarm_history", "dry 4-7 days, leak 2-3 days"},
		{"radio", "flow", "None"}, // not in this reading
		{"empty", "total", "None"},
		{"empty", "alarm_dry", "None"},
		{"empty", "alarm_history", "None"},
	}
	cfg := decodeConfig(t, must(t)(MeterConfig(s, Meter{ID: rs[0].ID}, "flowIQ 2101", allFeatures)))
	jobs := make([]map[string]string, len(cases))
	for i, c := range cases {
		v := []byte(`{"id":"74493770"}`)
		if c.state != "empty" {
			r := states[c.state]
			var err error
			if v, err = r.MarshalJSON(); err != nil {
				t.Fatal(err)
			}
		}
		comp, ok := cfg.Components[c.entity]
		if !ok {
			t.Fatalf("no entity %s", c.entity)
		}
		jobs[i] = map[string]string{"t": comp.ValueTemplate, "v": string(v)}
	}
	got := renderTemplates(t, jobs)
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("%s on %s state: %q, want %q", c.entity, c.state, got[i], c.want)
		}
	}
	gw := decodeConfig(t, must(t)(GatewayConfig(s)))
	gs, _ := GatewayState{TelegramsReceived: 7, SDR: "ok"}.MarshalState()
	gcases := []struct{ entity, want string }{{"telegrams_received", "7"}, {"telegrams_failed", "0"}, {"sdr", "ok"}, {"last_telegram", "None"}}
	jobs = jobs[:0]
	for _, c := range gcases {
		jobs = append(jobs, map[string]string{"t": gw.Components[c.entity].ValueTemplate, "v": string(gs)})
	}
	got = renderTemplates(t, jobs)
	for i, c := range gcases {
		if got[i] != c.want {
			t.Errorf("gateway %s: %q, want %q", c.entity, got[i], c.want)
		}
	}
}
