package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
	"github.com/flowiq-gateway/flowiq-gateway/internal/syncbuf"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

const seedMeterList = "[[meter]]\nid = \"74493770\"\nname = \"Kitchen\"\nkey = \"44E9112D06BD762EC2BFECE57E487C9B\"\n"

// buildGateway builds the command, for tests that need a real process
// (its peak memory, its reaction to signals).
func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flowiq-gateway")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the gateway: %v", err)
	}
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// spoofLine is what anyone can send for meter 74493770 without its key: a
// plaintext ELL telegram (encryption field 0, valid payload CRC, no link
// CRCs) claiming 999.999 m³ with every alarm bit set.
func spoofLine() string {
	app, _ := hex.DecodeString("78" + "02FF20FFFF" + "04133F420F00" + "441355210000")
	c := wmbus.CRC(app)
	payload := append([]byte{byte(c), byte(c >> 8)}, app...)
	head, _ := hex.DecodeString("442D2C703749741F16" + "8D" + "20C3" + "00240201")
	f := append([]byte{byte(len(head) + len(payload))}, head...)
	return strings.ToUpper(hex.EncodeToString(append(f, payload...)))
}

// floodLines are n plaintext full frames (no link CRCs) from ids made-up
// meters, each with a random record layout.
func floodLines(n, ids int) []string {
	rng := rand.New(rand.NewPCG(11, 12))
	vifs := []byte{0x13, 0x14, 0x15, 0x16, 0x3B, 0x3C, 0x5B, 0x5F, 0x67, 0x2B, 0x2C}
	out := make([]string, n)
	for i := range out {
		id := 20000000 + i%ids
		idBytes, _ := hex.DecodeString(fmt.Sprintf("%08d", id))
		frame := []byte{0, 0x44, 0x2D, 0x2C, idBytes[3], idBytes[2], idBytes[1], idBytes[0], 0x1B, 0x16, 0x78}
		for range 1 + rng.IntN(8) {
			dif := byte(1 + rng.IntN(4))
			frame = append(frame, dif, vifs[rng.IntN(len(vifs))])
			for range dif {
				frame = append(frame, byte(rng.IntN(256)))
			}
		}
		frame[0] = byte(len(frame) - 1)
		out[i] = strings.ToUpper(hex.EncodeToString(frame))
	}
	return out
}

// The acceptance of "trust nothing from the air": among 20,000 frames from
// 1,000 made-up meters with random layouts, the 35 genuine telegrams of
// 74493770 and one spoof of it, the broker sees 8.915 m³ and never the
// spoof; the state directory holds at most 64 learned formats and no
// foreign meter.
func TestSpoofAndFloodWithBroker(t *testing.T) {
	b := brokertest.Start(t, "")
	sub := brokertest.Subscribe(t, b.URL("tcp"), "flowiq/#", "homeassistant/#")
	dir := t.TempDir()
	list := filepath.Join(dir, "meters.toml")
	if err := os.WriteFile(list, []byte(seedMeterList), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	frames := seedFrames(t)
	flood := floodLines(20000, 1000)
	var in []string
	in = append(in, flood[:10000]...)
	in = append(in, frames[:17]...)
	in = append(in, spoofLine())
	in = append(in, frames[17:]...)
	in = append(in, flood[10000:]...)
	d := startDaemon(t, "run", "--meters", list, "--input", "hex:-", "--mqtt", b.URL("tcp"), "--state", state)
	d.send(in...)
	if code := d.exit(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	sub.Sync()
	states := sub.All("flowiq/74493770/state")
	if len(states) == 0 {
		t.Fatal("no state published")
	}
	for _, m := range states {
		if bytes.Contains(m.Payload, []byte("999.999")) || bytes.Contains(m.Payload, []byte("LEAK")) {
			t.Errorf("the spoof was published: %s", m.Payload)
		}
	}
	if last := states[len(states)-1].Payload; !bytes.Contains(last, []byte(`"total_m3":8.915`)) {
		t.Errorf("last state %s", last)
	}
	if !strings.Contains(d.stderr.String(), "unencrypted telegram for meter 74493770, which has a key: ignored — possible spoofing") {
		t.Error("the spoof was not reported")
	}

	formats, err := os.ReadFile(filepath.Join(state, "formats.txt"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	learned := 0
	for _, l := range strings.Split(string(formats), "\n") {
		if l != "" && l[0] != '#' {
			learned++
		}
	}
	if learned > 64 {
		t.Errorf("%d formats learned from the flood", learned)
	}
	raw, err := os.ReadFile(filepath.Join(state, "last-readings.json"))
	if err != nil {
		t.Fatal(err)
	}
	var readings []struct{ ID string }
	if err := json.Unmarshal(raw, &readings); err != nil {
		t.Fatal(err)
	}
	if len(readings) != 1 || readings[0].ID != "74493770" {
		t.Errorf("state holds %d meters (%d bytes), want only 74493770", len(readings), len(raw))
	}
	ents, _ := os.ReadDir(state)
	for _, e := range ents {
		if e.Name() != "formats.txt" && e.Name() != "last-readings.json" {
			t.Errorf("state directory holds %s", e.Name())
		}
	}
	t.Logf("learned formats: %d; state file: %d bytes; log: %d lines", learned, len(raw), strings.Count(d.stderr.String(), "\n"))
}

// 1,000,000 lines of non-hex text on a hex input: the process stays small.
// Measured, not timed: the kernel's high-water mark of the process's
// resident memory (VmHWM in /proc/PID/status), read once a telegram sent
// after the million lines has come out as a reading — everything before it
// has been handled by then. (The rusage maxrss of a child is not used: on
// Linux it starts from the RSS of the parent at fork, and a test binary
// built with -race is itself larger than the bound.)
func TestBadLinesPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the command on a million lines")
	}
	bin := buildGateway(t)
	list := filepath.Join(t.TempDir(), "meters.toml")
	if err := os.WriteFile(list, []byte(seedMeterList), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--meters", list, "--input", "hex:-")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	reading := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"id":"74493770"`) {
				close(reading)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	w := bufio.NewWriterSize(stdin, 1<<16)
	for i := range 1_000_000 {
		fmt.Fprintf(w, "this is not a telegram, line %d: %x\n", i+1, i*7919)
	}
	fmt.Fprintln(w, seedFrames(t)[1]) // a full frame: one reading
	w.Flush()
	select {
	case <-reading:
	case <-time.After(5 * time.Minute):
		t.Fatalf("no reading after the bad lines\n%.2000s", stderr.String())
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var peakKB int64
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &peakKB)
		}
	}
	if peakKB == 0 {
		t.Fatalf("no VmHWM in /proc/%d/status", cmd.Process.Pid)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v\n%.2000s", err, stderr.String())
	}
	peak := peakKB * 1024
	lines := strings.Count(stderr.String(), "\n")
	t.Logf("peak RSS %.1f MB, %d log lines", float64(peak)/1e6, lines)
	if peak >= 60e6 {
		t.Errorf("peak RSS %.1f MB, bound 60 MB", float64(peak)/1e6)
	}
	if lines > 100 {
		t.Errorf("%d log lines for one kind of problem", lines)
	}
	if !strings.Contains(stderr.String(), "repeated=999999") {
		t.Errorf("the log does not count the bad lines it did not repeat:\n%.2000s", stderr.String())
	}
}

// SIGTERM while the broker is connected but frozen (SIGSTOP): the process
// saves its state and exits within 5 s.
func TestSIGTERMWithFrozenBroker(t *testing.T) {
	bin := buildGateway(t)
	b := brokertest.Start(t, "")
	dir := t.TempDir()
	list := filepath.Join(dir, "meters.toml")
	if err := os.WriteFile(list, []byte(seedMeterList), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	cmd := exec.Command(bin, "run", "--meters", list, "--input", "hex:-", "--mqtt", b.URL("tcp"), "--state", state)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()
	frames := seedFrames(t)
	fmt.Fprintln(stdin, strings.Join(frames, "\n"))
	brokertest.WaitRetained(t, b.URL("tcp"), "the meter's state", func(s map[string]brokertest.Message) bool {
		m, ok := s["flowiq/74493770/state"]
		return ok && bytes.Contains(m.Payload, []byte(`"total_m3":8.915`))
	}, "flowiq/#")

	b.Freeze()
	// More readings: the publisher now waits for acknowledgements that
	// never come.
	fmt.Fprintln(stdin, strings.Join(frames, "\n"))
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		took := time.Since(start)
		t.Logf("exited %v after SIGTERM (%v)", took.Round(time.Millisecond), err)
		if took >= 5*time.Second {
			t.Errorf("took %v, bound 5 s", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM\n%s", stderr.String())
	}
	raw, err := os.ReadFile(filepath.Join(state, "last-readings.json"))
	if err != nil || !bytes.Contains(raw, []byte(`"total_m3":8.915`)) {
		t.Errorf("state not saved: %v %s\n%s", err, raw, stderr.String())
	}
}

// An editor truncates the meter list and writes it a moment later, again
// and again, while telegrams are published: Home Assistant never receives
// an empty retained config (which would delete the device).
func TestTruncateThenWriteNeverRemovesDevice(t *testing.T) {
	b := brokertest.Start(t, "")
	dir := t.TempDir()
	list := filepath.Join(dir, "meters.toml")
	if err := os.WriteFile(list, []byte(seedMeterList), 0o600); err != nil {
		t.Fatal(err)
	}
	frames := seedFrames(t)
	d := startDaemon(t, "run", "--meters", list, "--input", "hex:-", "--mqtt", b.URL("tcp"))
	sub := brokertest.Subscribe(t, b.URL("tcp"), "homeassistant/#")
	const config = "homeassistant/device/kamstrup_74493770/config"
	d.send(frames...)
	brokertest.WaitFor(t, 15*time.Second, "the device config", func() bool {
		m, ok := sub.Last(config)
		return ok && len(m.Payload) > 0
	})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // readings keep coming
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				d.send(frames[len(frames)-1])
			}
		}
	}()
	for i := range 5 {
		if err := os.WriteFile(list, nil, 0o600); err != nil { // truncate
			t.Fatal(err)
		}
		time.Sleep(time.Duration(100+200*i) * time.Millisecond) // up to just under a second empty
		if err := os.WriteFile(list, []byte(seedMeterList), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(4 * time.Second) // past the confirming read
	close(stop)
	wg.Wait()
	sub.Sync()
	for _, m := range sub.All(config) {
		if len(m.Payload) == 0 {
			t.Fatalf("an empty config was published at %v", m.At)
		}
	}
	if got := brokertest.Retained(t, b.URL("tcp"), config); len(got[config].Payload) == 0 {
		t.Error("the retained device config is gone")
	}
	if !strings.Contains(d.stderr.String(), "meter list now holds no meters; taken for a fault") {
		t.Errorf("the empty list was not reported as a fault")
	}
}

// The add-on starts once with good options, then with options.json cut
// short: the meter's retained device stays, and the log says why.
func TestAddonTruncatedOptionsKeepsDevices(t *testing.T) {
	b := startHAMosquitto(t)
	startSupervisor(t, b, 200)
	d := newAddonDirs(t, map[string]any{
		"meters": []any{map[string]any{"id": "74493770", "name": "Kitchen", "key": "44E9 112D 06BD 762E C2BF ECE5 7E48 7C9B"}},
	})
	if code, _, log := runAddonCommand(t, seedLines(t), d.args("--input", "hex:-")...); code != 0 {
		t.Fatalf("first start: exit %d\n%s", code, log)
	}
	const config = "homeassistant/device/kamstrup_74493770/config"
	if len(b.retained(t, "homeassistant/#")[config]) == 0 {
		t.Fatal("no device after the first start")
	}
	good, err := os.ReadFile(d.options)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.options, good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	sub := brokertest.Subscribe(t, b.url, "homeassistant/#")
	code, _, log := runAddonCommand(t, seedLines(t), d.args("--input", "hex:-")...)
	if code != 0 {
		t.Fatalf("second start: exit %d\n%s", code, log)
	}
	sub.Sync()
	for _, m := range sub.All(config) {
		if len(m.Payload) == 0 {
			t.Fatal("an empty config was published: the device would be deleted")
		}
	}
	if len(b.retained(t, "homeassistant/#")[config]) == 0 {
		t.Error("the retained device is gone")
	}
	if !strings.Contains(log, "using the last options that read well") {
		t.Errorf("the log does not say the last good options are used:\n%s", log)
	}
}

// The meter list's directory is moved away and created again with the
// corrected key: the gateway follows it, and the next telegram decodes.
func TestRunFollowsReplacedMeterListDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, "meters.toml")
	wrong := strings.Replace(seedMeterList, "44E9112D06BD762EC2BFECE57E487C9B", "0F1E2D3C4B5A69788796A5B4C3D2E1F0", 1)
	if err := os.WriteFile(list, []byte(wrong), 0o600); err != nil {
		t.Fatal(err)
	}
	frames := seedFrames(t)
	d := startDaemon(t, "run", "--meters", list, "--input", "hex:-")
	d.send(frames[0])
	d.waitOutput(d.stderr, "wrong key", 1)
	reloads := strings.Count(d.stderr.String(), "meter list reloaded")
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	d.waitOutput(d.stderr, "meter list directory disappeared or was replaced", 1)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(list, []byte(seedMeterList), 0o600); err != nil {
		t.Fatal(err)
	}
	d.waitOutput(d.stderr, "meter list directory is back; watching it again", 1)
	d.waitOutput(d.stderr, "meter list reloaded", reloads+1)
	d.send(frames[1])
	d.waitOutput(d.stdout, `"id":"74493770"`, 1)
	if code := d.exit(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}
