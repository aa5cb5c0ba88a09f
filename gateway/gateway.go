// Package gateway is the composition root: from one resolved
// settings.Config it builds source → decoder → outputs, and owns the meter
// list, the state files, health reporting and the shutdown order.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/discovery"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
	"github.com/flowiq-gateway/flowiq-gateway/settings"
)

// Options are what the gateway may touch of the outside world.
type Options struct {
	Stdin  io.Reader // for --input - and hex:-
	Stdout io.Writer // JSON lines when there is no broker
	Log    *slog.Logger
}

// Gateway runs one configuration until its context ends or a recording
// has been read to its end.
type Gateway struct {
	cfg     settings.Config
	log     *slog.Logger
	sources []pipeline.Source
	dec     *kamstrup.Decoder
	state   *state
	outputs []Output

	watcher  *meters.Watcher
	current  func() *meters.Snapshot
	problems *pipeline.Reporter
	status   *Status // the status page's model; nil without --web
}

// How often health goes out and state is saved.
const housekeepingEvery = 30 * time.Second

// New checks the configuration and prepares everything that can fail
// before any work starts: the source, the meter list watcher, the state
// directory and the broker settings.
func New(cfg settings.Config, o Options) (*Gateway, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	g := &Gateway{cfg: cfg, log: o.Log, dec: kamstrup.NewDecoder()}
	var err error
	if g.sources, err = openSources(cfg.Inputs, o.Stdin, cfg.Radio, g.log); err != nil {
		return nil, err
	}
	if err := g.openMeterList(); err != nil {
		return nil, err
	}
	// Only telegrams that verified with a key, or come from a listed
	// meter, teach formats: anyone can send made-up frames.
	g.dec.Trust = func(t *wmbus.Telegram) bool { return t.Security != wmbus.SecurityNone || g.listed(t.Meter()) }
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
		g.state = newState(cfg.StateDir, g.dec, g.listed, g.log)
	}
	if cfg.MQTT != nil {
		p, err := discovery.New(*cfg.MQTT, g.log)
		if err != nil {
			return nil, err
		}
		g.outputs = append(g.outputs, mqttOutput{p})
	} else {
		g.outputs = append(g.outputs, newJSONLines(o.Stdout, g.log))
	}
	if cfg.Web != "" {
		if err := g.addStatusPage(); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// AddOutput adds an output; call before Run.
func (g *Gateway) AddOutput(o Output) { g.outputs = append(g.outputs, o) }

// Meters returns the meter list in force (nil when there is none).
func (g *Gateway) Meters() *meters.Snapshot { return g.current() }

// listed reports whether a meter is in the meter list in force.
func (g *Gateway) listed(id wmbus.ID) bool {
	_, ok := g.current().Meter(id)
	return ok
}

func (g *Gateway) openMeterList() error {
	g.current = func() *meters.Snapshot { return nil }
	switch {
	case g.cfg.MetersPath != "":
		w, err := meters.NewWatcher(g.cfg.MetersPath, g.log)
		if err != nil {
			return err
		}
		if len(g.cfg.Overlay) > 0 {
			w.SetOverlay(g.cfg.Overlay)
		}
		g.watcher, g.current = w, w.Current
	case len(g.cfg.Overlay) > 0:
		snap, warns := meters.Overlay(nil, g.cfg.Overlay)
		for _, w := range warns {
			g.log.Warn(w)
		}
		g.current = func() *meters.Snapshot { return snap }
	}
	if s := g.current(); s != nil {
		g.log.Info("meter list", "meters", s.Len(), "file", g.cfg.MetersPath)
	}
	return nil
}

// Run receives until ctx ends (nil) or a recording ends. Shutdown order:
// the source stops, the last health goes out, a finished recording's
// readings are drained to the broker, the state is saved, and the outputs
// say goodbye within outputsStopTimeout — so that a stop request (the
// Supervisor kills after 10 s) is done within 5 s whatever the broker does.
func (g *Gateway) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	// Outputs outlive the source: they get their own context, ended last.
	outCtx, stopOutputs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOutputs()
	var outWG sync.WaitGroup
	g.startOutputs(outCtx, &outWG)

	if g.watcher != nil {
		g.watcher.OnChange(func(u meters.Update) { g.eachOutput(func(o Output) { setMeters(o, u.New) }) })
		wg.Add(2)
		go func() { defer wg.Done(); _ = g.watcher.Run(ctx) }()
		go func() { defer wg.Done(); meters.ReloadOnSIGHUP(ctx, g.watcher) }()
	}

	p := g.pipeline()
	if g.status != nil {
		g.status.SetPipelineStats(p.Stats())
	}
	wg.Add(1)
	go func() { defer wg.Done(); g.housekeeping(ctx, p.Stats()) }()
	if g.cfg.HealthFile != "" {
		wg.Add(1)
		go func() { defer wg.Done(); g.healthLoop(ctx, p.Stats()) }()
	}

	g.log.Info("receiving", "input", inputNames(g.sources), "output", g.outputNames())
	runErr := p.Run(ctx)
	g.problems.Flush()
	g.report(p.Stats())
	if ctx.Err() == nil {
		g.drain(ctx) // a recording has ended: let what it produced reach the broker
	}
	cancel()
	if g.state != nil {
		g.state.save()
	}
	stopOutputs()
	g.waitOutputs(&outWG)
	wg.Wait()
	if pending := g.dec.Pending(); pending > 0 {
		g.log.Warn("compact frames never decoded: no full frame with their format arrived", "frames", pending)
	}
	s := p.Stats()
	g.log.Info("stopped", "frames", s.Frames.Load(), "readings", s.Readings.Load(), "failed", s.Failed.Load())
	if runErr != nil && !errors.Is(runErr, io.EOF) {
		return runErr
	}
	return nil
}

// outputsStopTimeout bounds how long the outputs may take to say goodbye
// (the MQTT output's own bound is shorter).
const outputsStopTimeout = 3 * time.Second

func (g *Gateway) waitOutputs(wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(outputsStopTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		g.log.Warn("outputs did not stop in time; exiting without them", "waited", outputsStopTimeout)
	}
}

// startOutputs hands each output the meter list and the restored readings,
// then starts those that run by themselves.
func (g *Gateway) startOutputs(ctx context.Context, wg *sync.WaitGroup) {
	var restored []kamstrup.Reading
	if g.state != nil {
		restored = g.state.restored
	}
	for _, o := range g.outputs {
		setMeters(o, g.current())
		if r, ok := o.(restorer); ok {
			for _, x := range restored {
				r.Restore(x)
			}
		}
		if r, ok := o.(runner); ok {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.Run(ctx); err != nil {
					g.log.Error("output stopped", "output", o.Name(), "err", err)
				}
			}()
		}
	}
	if len(restored) > 0 {
		g.log.Info("last readings restored", "meters", len(restored))
	}
}

func setMeters(o Output, s *meters.Snapshot) {
	if l, ok := o.(lister); ok && s != nil {
		l.SetMeters(s)
	}
}

func (g *Gateway) eachOutput(f func(Output)) {
	for _, o := range g.outputs {
		f(o)
	}
}

// openSources prepares a source for each input spec; it opens nothing yet.
func openSources(inputs []string, stdin io.Reader, ro pipeline.RadioOptions, log *slog.Logger) ([]pipeline.Source, error) {
	if ro.Log == nil {
		ro.Log = log
	}
	srcs := make([]pipeline.Source, 0, len(inputs))
	for _, in := range inputs {
		src, err := pipeline.NewSource(in, stdin, ro)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, src)
	}
	return srcs, nil
}

func inputNames(srcs []pipeline.Source) string {
	s := ""
	for i, src := range srcs {
		if i > 0 {
			s += ", "
		}
		s += src.Name()
	}
	return s
}

func (g *Gateway) outputNames() string {
	s := ""
	for i, o := range g.outputs {
		if i > 0 {
			s += ", "
		}
		s += o.Name()
	}
	return s
}

// pipeline wires the sources, the meter list's keys and the outputs.
func (g *Gateway) pipeline() *pipeline.Pipeline {
	rep := &pipeline.Reporter{Log: g.log, Known: g.listed}
	g.problems = rep
	var frameWatchers []frameWatcher
	var problemWatchers []problemWatcher
	for _, o := range g.outputs {
		if w, ok := o.(frameWatcher); ok {
			frameWatchers = append(frameWatchers, w)
		}
		if w, ok := o.(problemWatcher); ok {
			problemWatchers = append(problemWatchers, w)
		}
	}
	p := &pipeline.Pipeline{
		Sources: g.sources,
		Decoder: g.dec,
		Keys:    func(id wmbus.ID) ([]byte, bool) { return g.current().Key(id) },
		Reading: g.reading,
		Problem: func(err error) {
			rep.Report(err)
			for _, w := range problemWatchers {
				w.Problem(err)
			}
		},
		Log:   g.log,
		Dedup: dedupFor(g.cfg.Inputs),
	}
	if g.cfg.LogFrames || len(frameWatchers) > 0 {
		p.Frame = func(f pipeline.Frame, t *wmbus.Telegram, err error) {
			if g.cfg.LogFrames {
				fi := pipeline.Describe(f, t, err)
				g.log.Debug("frame", fi.LogAttrs()...)
			}
			for _, w := range frameWatchers {
				w.Frame(f, t, err)
			}
		}
	}
	return p
}

// reading applies the meter list's model override, then hands the reading
// to the state and every output.
func (g *Gateway) reading(r *kamstrup.Reading) {
	if m, ok := g.current().Meter(r.ID); ok && m.Model != "" {
		r.Model = m.Model
	}
	if g.state != nil {
		g.state.put(r)
	}
	for _, o := range g.outputs {
		o.Reading(r)
	}
}

// housekeeping reports health and saves state until ctx ends.
func (g *Gateway) housekeeping(ctx context.Context, s *pipeline.Stats) {
	tick := time.NewTicker(housekeepingEvery)
	defer tick.Stop()
	for {
		g.report(s)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if g.state != nil {
				g.state.save()
			}
		}
	}
}

func (g *Gateway) report(s *pipeline.Stats) {
	h := Health{
		Received: uint64(s.Frames.Load()),
		Decoded:  uint64(s.Readings.Load()),
		Failed:   uint64(s.Failed.Load()),
		Source:   "ok",
	}
	if !s.Healthy() {
		h.Source = "input failed"
		if e := s.LastErr.Load(); e != nil {
			h.Source = "input failed: " + *e
		}
	}
	if t := s.LastUnix.Load(); t > 0 {
		h.LastFrame = time.Unix(t, 0).UTC()
	}
	g.eachOutput(func(o Output) {
		if r, ok := o.(healthReporter); ok {
			r.SetHealth(h)
		}
	})
	g.reportReception()
}

// drainTimeout bounds how long a finished recording waits for the broker.
const drainTimeout = 15 * time.Second

func (g *Gateway) drain(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	g.eachOutput(func(o Output) {
		if d, ok := o.(drainer); ok {
			if err := d.Drain(ctx); err != nil {
				g.log.Warn("not everything reached the broker before exit", "output", o.Name(), "err", err)
			}
		}
	})
}
