package discovery

import (
	"context"
	"encoding/json"
	"github.com/flowiq-gateway/flowiq-gateway/internal/syncbuf"
	"log/slog"
	"testing"
	"time"
)

// logBuffer collects a publisher's log lines.
type logBuffer struct{ syncbuf.Buffer }

func newLog() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// runPublisher starts a publisher on cfg and stops it at cleanup.
func runPublisher(tb testing.TB, cfg Config) (*Publisher, *logBuffer, context.CancelFunc) {
	tb.Helper()
	log, lb := newLog()
	p, err := New(cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			tb.Errorf("Run did not return after cancel")
		}
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			tb.Logf("publisher log:\n%s", lb.String())
		}
	})
	return p, lb, stop
}

func testConfig(url string) Config {
	return Config{URL: url, ReconnectMax: 300 * time.Millisecond, ConnectTimeout: 2 * time.Second,
		MeterTimeout: time.Hour, SWVersion: "test"}
}

func jsonField(tb testing.TB, b []byte, key string) any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatalf("%s: %v", b, err)
	}
	return m[key]
}

func accessNumber(tb testing.TB, b []byte) int {
	v, ok := jsonField(tb, b, "access_number").(float64)
	if !ok {
		tb.Fatalf("no access_number in %s", b)
	}
	return int(v)
}
