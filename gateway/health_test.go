package gateway

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHealthCheck(t *testing.T) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	l := HealthLimits{MaxAge: time.Minute, BrokerGrace: 5 * time.Minute}
	up := &BrokerHealth{Connected: true}
	cases := []struct {
		name string
		h    HealthReport
		want string // "" healthy
	}{
		{"receiving", HealthReport{Written: now, Frames: 35, Broker: up}, ""},
		{"no broker configured", HealthReport{Written: now}, ""},
		{"reopening, not yet stalled", HealthReport{Written: now, Failing: 1, Reopens: 2, Broker: up}, ""},
		{"stalled beyond reopening", HealthReport{Written: now, Failing: 1, Stalled: 1, Reopens: 3, LastError: "rtlsdr://0: no samples", Broker: up},
			"1 input(s) keep failing after reopening (3 reopens): rtlsdr://0: no samples"},
		{"broker away briefly", HealthReport{Written: now, Broker: &BrokerHealth{DownSince: now.Add(-time.Minute)}}, ""},
		{"broker away too long", HealthReport{Written: now, Broker: &BrokerHealth{DownSince: now.Add(-6 * time.Minute)}}, "not connected to the MQTT broker for 6m0s"},
		{"stale report", HealthReport{Written: now.Add(-2 * time.Minute), Broker: up}, "has not updated its health for 2m0s"},
	}
	for _, c := range cases {
		err := c.h.Check(now, l)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// The report goes through the file unchanged.
func TestHealthFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "health.json")
	h := HealthReport{Written: time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC), Inputs: "rtlsdr://0", Frames: 7, Stalled: 1,
		Reopens: 4, LastError: "x", Broker: &BrokerHealth{DownSince: time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)}}
	if err := writeHealth(path, h); err != nil {
		t.Fatal(err)
	}
	got, err := ReadHealth(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != h.String() || got.Stalled != 1 || !got.Broker.DownSince.Equal(h.Broker.DownSince) {
		t.Errorf("read back %+v, wrote %+v", got, h)
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}
