package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/syncbuf"

	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
)

// output is a goroutine-safe buffer: the daemon writes from several.
type output = syncbuf.Buffer

// daemon is one in-process "flowiq-gateway …" run fed through a pipe.
type daemon struct {
	t      *testing.T
	stdin  *io.PipeWriter
	stdout *output
	stderr *output
	done   chan int
	cancel context.CancelFunc
}

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	r, w := io.Pipe()
	d := &daemon{t: t, stdin: w, stdout: &output{}, stderr: &output{}, done: make(chan int, 1)}
	e := &env{stdin: r, stdout: d.stdout, stderr: d.stderr, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.done <- execute(ctx, e, args) }()
	t.Cleanup(func() {
		cancel()
		w.Close()
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			t.Errorf("daemon did not stop")
		}
		if t.Failed() {
			t.Logf("stderr:\n%s\nstdout:\n%s", d.stderr, d.stdout)
		}
	})
	return d
}

func (d *daemon) send(lines ...string) {
	d.t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(d.stdin, l+"\n"); err != nil {
			d.t.Fatalf("writing to the daemon: %v", err)
		}
	}
}

// waitOutput waits until stream holds want n times.
func (d *daemon) waitOutput(stream *output, want string, n int) {
	d.t.Helper()
	brokertest.WaitFor(d.t, 15*time.Second, fmt.Sprintf("%d× %q in the output", n, want), func() bool {
		return strings.Count(stream.String(), want) >= n
	})
}

// exit closes stdin (the hex input ends) and returns the exit status.
func (d *daemon) exit() int {
	d.t.Helper()
	d.stdin.Close()
	select {
	case code := <-d.done:
		d.done <- code // for the cleanup
		return code
	case <-time.After(20 * time.Second):
		d.t.Fatal("daemon did not exit after its input ended")
		return -1
	}
}

// writeByRename saves a file the way editors do: a new file renamed over
// the old one.
func writeByRename(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".meters.toml.swp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

const otherMeter = `[[meter]]
id = "12345678"
name = "Garden"
key = "000102030405060708090A0B0C0D0E0F"
`

// Issue acceptance: a meter missing from the list is reported as having no
// key; its key is added while the gateway runs (saved by rename-over) and
// the next telegram decodes without a restart; a broken save keeps the old
// list working and the process alive.
func TestRunPicksUpKeyLive(t *testing.T) {
	frames := seedFrames(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "meters.toml")
	if err := os.WriteFile(list, []byte(otherMeter), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "run", "--meters", list, "--input", "hex:-")

	d.send(frames[0])
	d.waitOutput(d.stderr, "meter 74493770: no key for this encrypted meter", 1)
	if strings.Contains(d.stdout.String(), "74493770") {
		t.Fatalf("a reading without a key: %s", d.stdout)
	}

	writeByRename(t, list, otherMeter+"\n[[meter]]\nid = \"74493770\"\nname = \"Kitchen\"\nkey = \"44E9 112D 06BD 762E C2BF ECE5 7E48 7C9B\"\n")
	d.waitOutput(d.stderr, "change.added=74493770", 1)
	d.send(frames[1])
	d.waitOutput(d.stdout, `"id":"74493770"`, 1)

	writeByRename(t, list, otherMeter+"\n[[meter]\nid = \"74493770\"\n")
	d.waitOutput(d.stderr, "keeping the last good list", 1)
	if !strings.Contains(d.stderr.String(), "meters.toml line 6, column 8") {
		t.Errorf("the broken save is not located by line and column")
	}
	d.send(frames[2], frames[3])
	d.waitOutput(d.stdout, `"id":"74493770"`, 3)

	if code := d.exit(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	var r struct {
		ID     string   `json:"id"`
		Total  float64  `json:"total_m3"`
		Alarms []string `json:"alarms"`
	}
	last := strings.Split(strings.TrimSpace(d.stdout.String()), "\n")
	if err := json.Unmarshal([]byte(last[len(last)-1]), &r); err != nil {
		t.Fatal(err)
	}
	if r.ID != "74493770" || r.Total != 8.915 || len(r.Alarms) != 1 || r.Alarms[0] != "DRY" {
		t.Errorf("last reading = %+v", r)
	}
	for _, k := range []string{"44E9112D", "44E9 112D", "06BD762E", "00010203", "0C0D0E0F"} {
		if strings.Contains(strings.ToUpper(d.stderr.String()+d.stdout.String()), k) {
			t.Errorf("key material %q in the output", k)
		}
	}
}

func TestRunRecordingPrintsReadings(t *testing.T) {
	d := startDaemon(t, "run", "--meters", "../../testdata/demo-meters.toml", "--input", "../../testdata/flowiq2101_74493770_868.95M_1M6.cu8")
	if code := d.exit(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	lines := strings.Split(strings.TrimSpace(d.stdout.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d readings, want the recording's 6:\n%s", len(lines), d.stdout)
	}
	for _, l := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r["total_m3"] != 8.915 || r["mode"] != "C1" || r["frame_format"] != "B" {
			t.Errorf("reading %s", l)
		}
	}
}

// A VW1871 capture (synthesized from the 35 real telegrams, with noise
// between records and a record cut at its end): every telegram decodes
// once, with the device's signal level; the cut record is reported, not
// decoded.
func TestRunVW1871Capture(t *testing.T) {
	d := startDaemon(t, "run", "--meters", "../../testdata/demo-meters.toml", "--input", "vw1871:../../testdata/vw1871/seed-74493770.vw1871")
	if code := d.exit(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	lines := strings.Split(strings.TrimSpace(d.stdout.String()), "\n")
	for _, l := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r["id"] != "74493770" || r["frame_format"] != "B" || r["device_level"] == nil || r["level_dbfs"] != nil {
			t.Errorf("reading %s", l)
		}
	}
	if len(lines) != 35 {
		t.Errorf("%d readings from 35 telegrams", len(lines))
	}
	if !strings.Contains(d.stderr.String(), "cut record") {
		t.Errorf("the cut record was not reported:\n%s", d.stderr)
	}
}

func TestRunBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--rate", "fast"},
		{"run", "--modes", "S1"},
		{"run", "--log-level", "loud"},
		{"run", "stray"},
	} {
		var out, errb output
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
		if code := execute(context.Background(), e, args); code == 0 {
			t.Errorf("%v: exit 0", args)
		} else if errb.String() == "" {
			t.Errorf("%v: no message", args)
		}
	}
}

// The daemon with a broker: the 35 telegrams in → discovery and state
// retained; the meter removed from the list → its device removed; the
// gateway stopping leaves "offline" retained.
func TestRunPublishesToBroker(t *testing.T) {
	b := brokertest.Start(t, "")
	frames := seedFrames(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "meters.toml")
	if err := os.WriteFile(list, []byte("[[meter]]\nid = \"74493770\"\nname = \"Kitchen\"\nkey = \"44E9112D06BD762EC2BFECE57E487C9B\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "run", "--meters", list, "--input", "hex:-", "--mqtt", b.URL("tcp"), "--state", filepath.Join(dir, "state"))
	d.send(frames...)
	snap := brokertest.WaitRetained(t, b.URL("tcp"), "the meter's state with total 8.915", func(s map[string]brokertest.Message) bool {
		m, ok := s["flowiq/74493770/state"]
		return ok && bytes.Contains(m.Payload, []byte(`"total_m3":8.915`)) && bytes.Contains(m.Payload, []byte(`"access_number":194`))
	}, "homeassistant/#", "flowiq/#")
	cfg, ok := snap["homeassistant/device/kamstrup_74493770/config"]
	if !ok {
		t.Fatal("no retained device config")
	}
	var dev struct {
		Dev  map[string]any            `json:"dev"`
		Cmps map[string]map[string]any `json:"cmps"`
	}
	if err := json.Unmarshal(cfg.Payload, &dev); err != nil {
		t.Fatal(err)
	}
	if dev.Dev["name"] != "Kitchen" || dev.Dev["model"] != "flowIQ 2101" || dev.Dev["serial_number"] != "74493770" {
		t.Errorf("device = %v", dev.Dev)
	}
	if len(dev.Cmps) < 8 {
		t.Errorf("%d entities: %v", len(dev.Cmps), dev.Cmps)
	}
	if !bytes.Contains(snap["flowiq/74493770/state"].Payload, []byte(`"alarms":["DRY"]`)) {
		t.Errorf("state without DRY: %s", snap["flowiq/74493770/state"].Payload)
	}

	// The meter leaves the list: its device is removed (empty retained
	// config) while the gateway runs — once a second read a few seconds
	// later confirms it is gone. (A list with no meters at all is taken for
	// a fault, so another meter stays.)
	writeByRename(t, list, "[[meter]]\nid = \"11112222\"\n")
	brokertest.WaitRetained(t, b.URL("tcp"), "the device config removed", func(s map[string]brokertest.Message) bool {
		_, ok := s["homeassistant/device/kamstrup_74493770/config"]
		return !ok
	}, "homeassistant/#")

	if code := d.exit(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	brokertest.WaitRetained(t, b.URL("tcp"), "gateway offline", func(s map[string]brokertest.Message) bool {
		return string(s["flowiq/status"].Payload) == "offline"
	}, "flowiq/#")
}

// The last reading of each meter survives a restart: a second run, with a
// broker that lost everything, publishes it again before any telegram.
func TestRunRestoresLastReadings(t *testing.T) {
	b := brokertest.Start(t, "")
	frames := seedFrames(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "meters.toml")
	if err := os.WriteFile(list, []byte("[[meter]]\nid = \"74493770\"\nkey = \"44E9112D06BD762EC2BFECE57E487C9B\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	args := []string{"run", "--meters", list, "--input", "hex:-", "--mqtt", b.URL("tcp"), "--state", state}
	d := startDaemon(t, args...)
	d.send(frames[:3]...)
	brokertest.WaitRetained(t, b.URL("tcp"), "the first run's state", func(s map[string]brokertest.Message) bool {
		return bytes.Contains(s["flowiq/74493770/state"].Payload, []byte(`"access_number":182`))
	}, "flowiq/#")
	if code := d.exit(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	saved, err := os.ReadFile(filepath.Join(state, "last-readings.json"))
	if err != nil || !bytes.Contains(saved, []byte(`"access_number":182`)) {
		t.Fatalf("saved state: %s, %v", saved, err)
	}

	b.Stop()
	b.Start() // persistence off: the broker forgot everything
	d2 := startDaemon(t, args...)
	brokertest.WaitRetained(t, b.URL("tcp"), "the restored state", func(s map[string]brokertest.Message) bool {
		return bytes.Contains(s["flowiq/74493770/state"].Payload, []byte(`"access_number":182`)) &&
			len(s["homeassistant/device/kamstrup_74493770/config"].Payload) > 0
	}, "flowiq/#", "homeassistant/#")
	d2.waitOutput(d2.stderr, "last readings restored", 1)
	d2.exit()
}

// Keys imported from a KEM file with `kem --merge` reach a running gateway
// without a restart, and the list keeps its comments.
func TestRunPicksUpKEMMerge(t *testing.T) {
	frames := vectorFrames(t, "synthetic-12345678-", 2)
	dir := t.TempDir()
	list := filepath.Join(dir, "meters.toml")
	const start = "# my meters\n[[meter]]\nid = \"74493770\"\nname = \"Kitchen\" # upstairs\nkey = \"44E9112D06BD762EC2BFECE57E487C9B\"\n"
	if err := os.WriteFile(list, []byte(start), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "run", "--meters", list, "--input", "hex:-")
	d.send(frames[0])
	d.waitOutput(d.stderr, "meter 12345678: no key", 1)

	var out, errb output
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	t.Setenv("KEM_PASSWORD", "TestPass123")
	if code := execute(context.Background(), e, []string{"kem", "../../testdata/kem/synthetic_test.zip.kem", "--merge", list}); code != 0 {
		t.Fatalf("kem --merge: exit %d: %s", code, errb.String())
	}
	d.waitOutput(d.stderr, `msg="meter list reloaded"`, 1)
	if !strings.Contains(d.stderr.String(), `change.added="12345678 87654321"`) {
		t.Errorf("the reload does not name the imported meters")
	}
	d.send(frames[1])
	d.waitOutput(d.stdout, `"id":"12345678"`, 1)
	if code := d.exit(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(d.stdout.String(), `"total_m3":123.456`) {
		t.Errorf("readings: %s", d.stdout)
	}
	b, _ := os.ReadFile(list)
	if !strings.HasPrefix(string(b), "# my meters\n") || !strings.Contains(string(b), `name = "Kitchen" # upstairs`) {
		t.Errorf("the merge lost the list's comments:\n%s", b)
	}
}
