package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

const (
	seedKey = "44E9112D06BD762EC2BFECE57E487C9B"
)

// runDecodeCommand runs "flowiq-gateway decode args…" in-process.
func runDecodeCommand(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	code = execute(context.Background(), e, append([]string{"decode"}, args...))
	if strings.Contains(strings.ToUpper(out.String()+errb.String()), seedKey) {
		t.Errorf("the key was printed")
	}
	return code, out.String(), errb.String()
}

// seedFrames returns the 35 captured telegrams of meter 74493770.
func seedFrames(t *testing.T) []string {
	t.Helper()
	return testvectors.Frames(t, testvectors.Seed74493770, 35)
}

func TestDecodeSeedMeterJSON(t *testing.T) {
	frames := seedFrames(t)
	code, out, errs := runDecodeCommand(t, strings.Join(frames, "\n")+"\n", "--json", "--key", seedKey)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 35 {
		t.Fatalf("%d readings, want 35", len(lines))
	}
	kinds := map[string]int{}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		if m["id"] != "74493770" || m["manufacturer"] != "KAM" || m["model"] != "flowIQ 2101" ||
			m["total_m3"] != 8.915 || m["target_m3"] != 8.533 || m["dry_duration"] != "4-7 days" ||
			m["info_code"] != float64(0x41) || m["frame_format"] != "B" {
			t.Errorf("reading: %s", l)
		}
		if a, _ := m["alarms"].([]any); len(a) != 1 || a[0] != "DRY" {
			t.Errorf("alarms: %s", l)
		}
		if _, ok := m["access_number"].(float64); !ok {
			t.Errorf("access_number: %s", l)
		}
		kinds[m["kind"].(string)]++
	}
	if kinds["full"] != 6 || kinds["compact"] != 29 {
		t.Errorf("kinds %v", kinds)
	}
}

func TestDecodeInputForms(t *testing.T) {
	frame := seedFrames(t)[0]
	raw, _ := hex.DecodeString(frame)
	plain, _, err := wmbus.Detect(raw)
	if err != nil {
		t.Fatal(err)
	}
	spaced := strings.ToLower(frame[:10]) + " " + frame[10:20] + "|" + frame[20:30] + "_" + frame[30:]
	receiver := "C1;1;1;2026-11-21 08:00:00.000;97;148;74493770;0x" + frame
	stdin := "# a comment\n\n" + spaced + "\n" + receiver + "\n" + hex.EncodeToString(plain) + "\n"
	code, out, errs := runDecodeCommand(t, stdin, "--key", seedKey)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	for i, l := range lines {
		for _, want := range []string{`74493770 KAM "flowIQ 2101" compact access=180`, "total_m3=8.915", "target_m3=8.533",
			"min_water_temperature_c=33", "ambient_temperature_c=28", "info_code=0x0041 alarms=DRY", `dry_duration="4-7 days"`} {
			if !strings.Contains(l, want) {
				t.Errorf("line %d lacks %q: %s", i+1, want, l)
			}
		}
	}
	if !strings.HasSuffix(lines[2], "frame_format=none") || !strings.HasSuffix(lines[0], "frame_format=B") {
		t.Errorf("frame formats: %s", out)
	}
	// Telegrams as arguments, flags after them too.
	code, out, _ = runDecodeCommand(t, "", frame, "--json", "--key", seedKey)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, `{"id":"74493770"`) {
		t.Fatalf("arguments: exit %d %s", code, out)
	}
}

func TestDecodeErrorsDoNotStopTheStream(t *testing.T) {
	frames := seedFrames(t)
	good := frames[0]
	raw, _ := hex.DecodeString(good)
	flipped := bytes.Clone(raw)
	flipped[25] ^= 0x04
	plain, _, _ := wmbus.Detect(raw)
	leftover := append(bytes.Clone(plain), 0x12, 0x34)
	stdin := strings.Join([]string{
		good,
		good[:40],                    // truncated
		hex.EncodeToString(flipped),  // flipped bit
		hex.EncodeToString(leftover), // leftover CRC bytes
		"25442D2C7037zz",             // not hex
		"2A442D2C998734761B168D2091D37CAC21576C7802FF207100041308190000441308190000615B7F616713", // plaintext MULTICAL 21
		good,
	}, "\n")
	code, out, errs := runDecodeCommand(t, stdin, "--key", seedKey)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("%d readings, want 3:\n%s", n, out)
	}
	want := []string{
		"line 2: meter 74493770: frame too short",
		"line 3: meter 74493770: payload CRC mismatch: frame corrupted",
		"line 4: meter 74493770: leftover link-layer CRC bytes",
		"line 5: not a hex telegram",
		"flowiq-gateway decode: 4 of 7 telegrams not decoded",
	}
	got := strings.Split(strings.TrimSpace(errs), "\n")
	if len(got) != len(want) {
		t.Fatalf("stderr:\n%s", errs)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("stderr line %d = %q, want prefix %q", i+1, got[i], want[i])
		}
	}

	// A wrong key: said so, naming the meter.
	code, _, errs = runDecodeCommand(t, good+"\n", "--key", "00112233445566778899AABBCCDDEEFF")
	if code != 1 || !strings.HasPrefix(errs, "line 1: meter 74493770: wrong key (payload CRC mismatch)") {
		t.Errorf("wrong key: exit %d %s", code, errs)
	}
	// No key at all.
	code, _, errs = runDecodeCommand(t, good+"\n")
	if code != 1 || !strings.HasPrefix(errs, "line 1: meter 74493770: no key for this encrypted meter") {
		t.Errorf("no key: exit %d %s", code, errs)
	}
	// A malformed --key is a usage error that does not echo the value.
	code, _, errs = runDecodeCommand(t, "", "--key", "44E9112D06BD762EC2BFECE57E487C9")
	if code != 2 || !strings.Contains(errs, "--key must be 32 hex digits") || strings.Contains(errs, "44E9112D") {
		t.Errorf("bad key: exit %d %s", code, errs)
	}
}

func TestDecodeMeterList(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "meters.toml")
	err := os.WriteFile(list, []byte("[[meter]]\nid = \"74493770\"\nname = \"Kitchen\"\nkey = \""+seedKey+"\"\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	frames := seedFrames(t)
	code, out, errs := runDecodeCommand(t, strings.Join(frames[:3], "\n"), "--meters", list, "--json")
	if code != 0 || strings.Count(out, "\n") != 3 {
		t.Fatalf("exit %d, stdout %s, stderr %s", code, out, errs)
	}
	code, _, errs = runDecodeCommand(t, "", "--meters", filepath.Join(dir, "missing.toml"))
	if code != 1 || !strings.Contains(errs, "meter list") {
		t.Errorf("missing list: exit %d %s", code, errs)
	}
}

// plainTelegram wraps application data (CI included) in an unencrypted ELL
// 0x8D telegram of meter 11112222, CRC-less form.
func plainTelegram(acc byte, app []byte) string {
	b := []byte{0, 0x44, 0x2D, 0x2C, 0x22, 0x22, 0x11, 0x11, 0x1B, 0x16, 0x8D, 0x20, acc, 0, 0, 0, 0, 0, 0}
	b = append(b, app...)
	b[0] = byte(len(b) - 1)
	c := wmbus.CRC(b[19:])
	b[17], b[18] = byte(c), byte(c>>8)
	return hex.EncodeToString(b)
}

func TestDecodeFormatsFile(t *testing.T) {
	// A format outside the shipped table: info, total, target, flow.
	records := []byte{0x02, 0xFF, 0x20, 0x00, 0x00, 0x04, 0x13, 0x10, 0x27, 0, 0, 0x44, 0x13, 0x88, 0x13, 0, 0, 0x02, 0x3B, 0x23, 0x00}
	heads := []byte{0x02, 0xFF, 0x20, 0x04, 0x13, 0x44, 0x13, 0x02, 0x3B}
	data := []byte{0x00, 0x00, 0x10, 0x27, 0, 0, 0x88, 0x13, 0, 0, 0x23, 0x00}
	sig, dcrc := wmbus.CRC(heads), wmbus.CRC(records)
	compact := append([]byte{0x79, byte(sig), byte(sig >> 8), byte(dcrc), byte(dcrc >> 8)}, data...)
	full := append([]byte{0x78}, records...)
	path := filepath.Join(t.TempDir(), "formats.txt")

	// Compact first: it waits; the full frame releases it.
	stdin := plainTelegram(1, compact) + "\n" + plainTelegram(2, full) + "\n"
	code, out, errs := runDecodeCommand(t, stdin, "--json", "--formats", path)
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(errs, "line 1: meter 11112222: waiting for a full frame") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, `"kind":"compact","access_number":1`) || !strings.Contains(out, `"flow_m3h":0.035`) {
		t.Errorf("queued compact frame not decoded:\n%s", out)
	}
	saved, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(saved), "02FF2004134413023B") {
		t.Fatalf("formats file: %v\n%s", err, saved)
	}
	// A second run knows the format at once.
	code, out, errs = runDecodeCommand(t, plainTelegram(3, compact)+"\n", "--formats", path)
	if code != 0 || errs != "" || !strings.Contains(out, "compact access=3") {
		t.Fatalf("second run: exit %d\n%s\n%s", code, out, errs)
	}
	// Without the file, a compact frame left waiting fails the run.
	code, _, errs = runDecodeCommand(t, plainTelegram(3, compact)+"\n")
	if code != 1 || !strings.Contains(errs, "1 compact frame(s) still waiting") {
		t.Errorf("unknown format at end: exit %d %s", code, errs)
	}
}
