package gateway

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/discovery"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Output is where readings go: Home Assistant over MQTT, JSON lines, and
// whatever comes next. Reading is called from the decoding goroutine and
// must not block; r is valid during the call only.
type Output interface {
	Name() string
	Reading(r *kamstrup.Reading)
}

// Optional parts of an Output, used when present.
type (
	// runner is an output with a life of its own (a connection). Run
	// returns when ctx ends, after its last words (offline status).
	runner interface {
		Run(ctx context.Context) error
	}
	// lister follows the meter list.
	lister interface{ SetMeters(*meters.Snapshot) }
	// restorer takes each meter's last reading from before a restart.
	restorer interface{ Restore(kamstrup.Reading) }
	// healthReporter publishes the gateway's health.
	healthReporter interface{ SetHealth(Health) }
	// drainer delivers what it holds before a finished recording exits.
	drainer interface {
		Drain(ctx context.Context) error
	}
	// frameWatcher sees every frame heard, any manufacturer, with the
	// link-layer result (the telegram, or why there is none); t and f.Data
	// are valid during the call only.
	frameWatcher interface {
		Frame(f pipeline.Frame, t *wmbus.Telegram, err error)
	}
	// problemWatcher sees every problem reported (wrong key, CRC, …).
	problemWatcher interface{ Problem(err error) }
)

// Health is the gateway's own state, for outputs that report it.
type Health struct {
	Received, Decoded, Failed uint64
	Source                    string // "ok", "input failed: …"
	LastFrame                 time.Time
}

// jsonLines prints each reading as one JSON line (the same encoding as the
// MQTT state and the state file), one write per reading.
type jsonLines struct {
	mu  sync.Mutex
	w   *bufio.Writer
	buf []byte
	log *slog.Logger
}

func newJSONLines(w io.Writer, log *slog.Logger) *jsonLines {
	return &jsonLines{w: bufio.NewWriterSize(w, 64<<10), log: log}
}

func (j *jsonLines) Name() string { return "stdout (JSON lines)" }

func (j *jsonLines) Reading(r *kamstrup.Reading) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = append(r.AppendJSON(j.buf[:0]), '\n')
	_, err := j.w.Write(j.buf)
	if err == nil {
		err = j.w.Flush()
	}
	if err != nil {
		j.log.Error("writing reading", "err", err)
	}
}

// mqttOutput publishes to Home Assistant through a discovery.Publisher;
// the entities themselves are the discovery package's data.
type mqttOutput struct{ p *discovery.Publisher }

func (m mqttOutput) Name() string                    { return "mqtt" }
func (m mqttOutput) Reading(r *kamstrup.Reading)     { m.p.Publish(*r) }
func (m mqttOutput) Restore(r kamstrup.Reading)      { m.p.Restore(r) }
func (m mqttOutput) Run(ctx context.Context) error   { return m.p.Run(ctx) }
func (m mqttOutput) Drain(ctx context.Context) error { return m.p.Drain(ctx) }

func (m mqttOutput) SetMeters(s *meters.Snapshot) {
	if s == nil {
		return
	}
	ms := make([]discovery.Meter, 0, len(s.Meters))
	for _, x := range s.Meters {
		ms = append(ms, discovery.Meter{ID: x.ID, Name: x.Name, Disabled: !x.Enabled})
	}
	m.p.SetMeters(ms)
}

func (m mqttOutput) SetHealth(h Health) {
	m.p.SetGatewayState(discovery.GatewayState{
		TelegramsReceived: h.Received, TelegramsDecoded: h.Decoded, TelegramsFailed: h.Failed,
		SDR: h.Source, LastTelegram: h.LastFrame,
	})
}
