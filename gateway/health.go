package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/atomicfile"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
)

// HealthReport is what the running gateway writes to its health file
// (settings.Config.HealthFile) for the health command, which the add-on's
// Docker HEALTHCHECK runs: a file rather than a port, so the check needs
// no network and works with any output.
type HealthReport struct {
	Written   time.Time `json:"written"`
	Inputs    string    `json:"inputs"`
	Frames    int64     `json:"frames"`
	LastFrame time.Time `json:"last_frame,omitzero"`
	Failing   int32     `json:"failing"` // inputs failed and about to be reopened
	Stalled   int32     `json:"stalled"` // inputs whose reopening keeps failing
	Reopens   int64     `json:"reopens"`
	LastError string    `json:"last_error,omitempty"`
	// Broker is nil when the gateway has no broker (JSON lines output).
	Broker *BrokerHealth `json:"broker,omitempty"`
}

// BrokerHealth is the MQTT connection as the health file reports it.
type BrokerHealth struct {
	Connected bool      `json:"connected"`
	DownSince time.Time `json:"down_since,omitzero"` // when it was last seen up (or the gateway started)
}

// HealthLimits say when a report means "unhealthy".
type HealthLimits struct {
	// MaxAge: an older report means the gateway stopped writing it (hung
	// or gone).
	MaxAge time.Duration
	// BrokerGrace: the broker may be away this long (a Mosquitto restart,
	// an update) before the gateway counts as unhealthy; paho reconnects
	// by itself meanwhile.
	BrokerGrace time.Duration
}

// DefaultHealthLimits fit the HEALTHCHECK in the Dockerfile: the report
// is written every healthEvery.
var DefaultHealthLimits = HealthLimits{MaxAge: 6 * healthEvery, BrokerGrace: 5 * time.Minute}

// healthEvery is how often the health file is rewritten.
const healthEvery = 10 * time.Second

// ErrUnhealthy wraps every reason Check gives.
var ErrUnhealthy = errors.New("unhealthy")

// Check returns nil while the gateway is healthy: the report is fresh, no
// input is stalled beyond reopening (one being reopened is fine: the
// gateway heals that itself), and the broker, if any, is connected or has
// been away less than BrokerGrace.
func (h HealthReport) Check(now time.Time, l HealthLimits) error {
	if age := now.Sub(h.Written); age > l.MaxAge {
		return fmt.Errorf("%w: the gateway has not updated its health for %v (hung or stopped)", ErrUnhealthy, age.Round(time.Second))
	}
	if h.Stalled > 0 {
		return fmt.Errorf("%w: %d input(s) keep failing after reopening (%d reopens): %s", ErrUnhealthy, h.Stalled, h.Reopens, h.LastError)
	}
	if b := h.Broker; b != nil && !b.Connected {
		if down := now.Sub(b.DownSince); down > l.BrokerGrace {
			return fmt.Errorf("%w: not connected to the MQTT broker for %v", ErrUnhealthy, down.Round(time.Second))
		}
	}
	return nil
}

// String is the one-line summary the health command prints.
func (h HealthReport) String() string {
	s := fmt.Sprintf("inputs %s: %d frames, %d reopens", h.Inputs, h.Frames, h.Reopens)
	if h.Failing > 0 {
		s += fmt.Sprintf(", %d reopening", h.Failing)
	}
	if b := h.Broker; b != nil {
		if b.Connected {
			s += "; broker connected"
		} else {
			s += "; broker down since " + b.DownSince.UTC().Format(time.RFC3339)
		}
	}
	return s
}

// ReadHealth reads a health file.
func ReadHealth(path string) (HealthReport, error) {
	var h HealthReport
	b, err := os.ReadFile(path)
	if err != nil {
		return h, fmt.Errorf("%w: no health report (is the gateway running?): %w", ErrUnhealthy, err)
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("%w: health report %s: %w", ErrUnhealthy, path, err)
	}
	return h, nil
}

// connectionReporter is an output that knows whether it is connected.
type connectionReporter interface{ Connected() bool }

// Connected implements connectionReporter.
func (m mqttOutput) Connected() bool { return m.p.Connected() }

// healthLoop rewrites the health file every healthEvery until ctx ends,
// then removes it: a stopped gateway has no health to report.
func (g *Gateway) healthLoop(ctx context.Context, s *pipeline.Stats) {
	var broker connectionReporter
	for _, o := range g.outputs {
		if c, ok := o.(connectionReporter); ok {
			broker = c
			break
		}
	}
	var bh *BrokerHealth
	if broker != nil {
		bh = &BrokerHealth{DownSince: time.Now()}
	}
	// Looked at every second, written when the verdict's inputs change or
	// healthEvery has passed: a stall shows at once, without a write per
	// second.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer os.Remove(g.cfg.HealthFile)
	failedBefore := false
	var last HealthReport
	for {
		now := time.Now()
		if bh != nil {
			if bh.Connected = broker.Connected(); bh.Connected {
				bh.DownSince = now
			}
		}
		h := g.healthReport(now, s, bh)
		if last.Written.IsZero() || now.Sub(last.Written) >= healthEvery || h.Stalled != last.Stalled ||
			h.Failing != last.Failing || (h.Frames == 0) != (last.Frames == 0) ||
			(h.Broker != nil && h.Broker.Connected != last.Broker.Connected) {
			err := writeHealth(g.cfg.HealthFile, h)
			if err != nil && !failedBefore {
				g.log.Warn("cannot write the health file; the health check will report the gateway unhealthy", "file", g.cfg.HealthFile, "err", err)
			}
			failedBefore = err != nil
			if err == nil {
				last = h
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (g *Gateway) healthReport(now time.Time, s *pipeline.Stats, bh *BrokerHealth) HealthReport {
	h := HealthReport{
		Written: now.UTC(), Inputs: inputNames(g.sources), Frames: s.Frames.Load(),
		Failing: s.Failing.Load(), Stalled: s.Stalled.Load(), Reopens: s.Reopens.Load(),
	}
	if t := s.LastUnix.Load(); t > 0 {
		h.LastFrame = time.Unix(t, 0).UTC()
	}
	if e := s.LastErr.Load(); e != nil {
		h.LastError = *e
	}
	if bh != nil {
		b := *bh
		b.DownSince = b.DownSince.UTC()
		if b.Connected {
			b.DownSince = time.Time{}
		}
		h.Broker = &b
	}
	return h
}

// writeHealth replaces the file in one rename, so the health command never
// reads half a report.
func writeHealth(path string, h HealthReport) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o600)
}
