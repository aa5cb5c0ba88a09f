package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/settings"
)

// writeMeterList writes a meter list with the seed meter's key.
func writeMeterList(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "meters.toml")
	key := fmt.Sprintf("%X", seedKey(t))
	if err := os.WriteFile(path, []byte("# my meters\n[[meter]]\nid = \"74493770\"\nname = \"Kitchen\"\nkey = \""+key+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Two inputs feed one decoder; the readings come out as JSON lines in the
// one encoding, and the state directory keeps the last one across a
// restart.
func TestGatewayTwoInputsAndState(t *testing.T) {
	dir := t.TempDir()
	frames := testvectors.Frames(t, testvectors.Seed74493770, 35)
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	if err := os.WriteFile(a, []byte(strings.Join(frames[:20], "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte(strings.Join(frames[20:], "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := settings.Resolve("test", settings.Layer{Inputs: []string{"hex:" + a, "hex:" + b}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.MetersPath, cfg.StateDir = writeMeterList(t, dir), filepath.Join(dir, "state")
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := New(cfg, Options{Stdout: &out, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 30 {
		t.Fatalf("%d readings from 35 telegrams", len(lines))
	}
	totals := 0
	for _, l := range lines {
		r, err := kamstrup.ParseReading([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := r.Get(kamstrup.Total); ok && v.V == 8.915 {
			totals++
		}
	}
	if totals == 0 {
		t.Errorf("no reading of 8.915 m³")
	}
	saved, err := os.ReadFile(filepath.Join(cfg.StateDir, "last-readings.json"))
	if err != nil || !bytes.Contains(saved, []byte(`"id":"74493770"`)) {
		t.Fatalf("state not saved: %v %s", err, saved)
	}
	g2, err := New(cfg, Options{Stdout: io.Discard, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if len(g2.state.restored) != 1 || g2.state.restored[0].ID != 0x74493770 {
		t.Errorf("restored %v", g2.state.restored)
	}
}
