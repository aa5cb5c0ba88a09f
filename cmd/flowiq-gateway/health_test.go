package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/gateway"
	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
)

// startRun runs "flowiq-gateway run args…" in-process until the test ends.
func startRun(t *testing.T, args ...string) *output {
	t.Helper()
	var log output
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &log, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- execute(ctx, e, append([]string{"run"}, args...)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("the gateway did not stop")
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", log.String())
		}
	})
	return &log
}

// health runs "flowiq-gateway health args…" and returns its exit status
// and output.
func health(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb output
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	code := execute(context.Background(), e, append([]string{"health"}, args...))
	return code, out.String() + errb.String()
}

// waitHealth polls the health file until cond holds.
func waitHealth(t *testing.T, path, what string, cond func(gateway.HealthReport) bool) gateway.HealthReport {
	t.Helper()
	var h gateway.HealthReport
	brokertest.WaitFor(t, 20*time.Second, what, func() bool {
		var err error
		h, err = gateway.ReadHealth(path)
		return err == nil && cond(h)
	})
	return h
}

// hexServer serves the 35 real telegrams as hex lines to each client and
// keeps the connection open, like a network receiver.
func hexServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	lines := seedLines(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := io.WriteString(c, lines); err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, c) // hold it open until the client leaves
			}()
		}
	}()
	return ln.Addr().String()
}

func writeMeters(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meters.toml")
	if err := os.WriteFile(path, []byte("[[meter]]\nid = \"74493770\"\nkey = \""+addonSeedKey+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHealthReceiving: a live input delivering telegrams is healthy.
func TestHealthReceiving(t *testing.T) {
	file := filepath.Join(t.TempDir(), "health.json")
	startRun(t, "--input", "hex:tcp://"+hexServer(t), "--meters", writeMeters(t), "--health-file", file)
	waitHealth(t, file, "frames in the health file", func(h gateway.HealthReport) bool { return h.Frames >= 35 })
	if code, out := health(t, "--file", file); code != 0 || !strings.HasPrefix(out, "healthy: ") {
		t.Errorf("health exit %d: %s", code, out)
	}
}

// TestHealthStalledBeyondReopening: an input that fails every time it is
// opened (a dongle that never delivers) is reopened first; the health check
// turns 1 only once reopening keeps failing.
func TestHealthStalledBeyondReopening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens: every open fails
	file := filepath.Join(t.TempDir(), "health.json")
	log := startRun(t, "--input", "hex:tcp://"+dead, "--meters", writeMeters(t), "--health-file", file)
	h := waitHealth(t, file, "the input stalled", func(h gateway.HealthReport) bool { return h.Stalled > 0 })
	if h.Reopens < 2 {
		t.Errorf("stalled after %d reopens; the gateway must reopen first", h.Reopens)
	}
	code, out := health(t, "--file", file)
	if code != 1 || !strings.Contains(out, "keep failing after reopening") || !strings.Contains(out, dead) {
		t.Errorf("health exit %d: %s", code, out)
	}
	if !strings.Contains(log.String(), "input failed; reopening") {
		t.Errorf("no reopening logged:\n%s", log.String())
	}
}

// TestHealthBroker: connected is healthy; a broker gone longer than the
// grace is not.
func TestHealthBroker(t *testing.T) {
	b := brokertest.Start(t, "")
	file := filepath.Join(t.TempDir(), "health.json")
	startRun(t, "--input", "hex:tcp://"+hexServer(t), "--meters", writeMeters(t), "--mqtt", b.URL("tcp"), "--health-file", file)
	waitHealth(t, file, "broker connected", func(h gateway.HealthReport) bool { return h.Broker != nil && h.Broker.Connected })
	if code, out := health(t, "--file", file, "--broker-grace", "1s"); code != 0 || !strings.Contains(out, "broker connected") {
		t.Errorf("health exit %d: %s", code, out)
	}
	b.Kill()
	waitHealth(t, file, "broker down", func(h gateway.HealthReport) bool { return h.Broker != nil && !h.Broker.Connected })
	brokertest.WaitFor(t, 10*time.Second, "health 1 after the grace", func() bool {
		code, _ := health(t, "--file", file, "--broker-grace", "1s")
		return code == 1
	})
	if code, out := health(t, "--file", file, "--broker-grace", "1h"); code != 0 {
		t.Errorf("within the grace: exit %d: %s", code, out)
	}
	_, out := health(t, "--file", file, "--broker-grace", "1s")
	if !strings.Contains(out, "not connected to the MQTT broker") {
		t.Errorf("output: %s", out)
	}
}

// A missing or stale file is unhealthy: the gateway is gone or hangs.
func TestHealthMissingOrStale(t *testing.T) {
	dir := t.TempDir()
	if code, out := health(t, "--file", filepath.Join(dir, "none.json")); code != 1 || !strings.Contains(out, "no health report") {
		t.Errorf("missing: exit %d: %s", code, out)
	}
	stale := filepath.Join(dir, "stale.json")
	if err := os.WriteFile(stale, []byte(`{"written":"2026-01-01T00:00:00Z","inputs":"rtlsdr://0"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := health(t, "--file", stale); code != 1 || !strings.Contains(out, "has not updated its health") {
		t.Errorf("stale: exit %d: %s", code, out)
	}
}
