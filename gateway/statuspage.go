package gateway

import (
	"github.com/flowiq-gateway/flowiq-gateway/discovery"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
	"github.com/flowiq-gateway/flowiq-gateway/web"
)

// addStatusPage adds the status model and the web server that shows it
// (settings.Config.Web). The server binds now, so a busy port stops the
// start with a clear error.
func (g *Gateway) addStatusPage() error {
	st, err := NewStatus(StatusOptions{Sources: g.sources, Radio: g.cfg.Radio, Version: g.cfg.Version, StateDir: g.cfg.StateDir})
	if err != nil {
		g.log.Warn("status page charts", "err", err)
	}
	cfg := web.Config{Addr: g.cfg.Web, Peer: g.cfg.WebPeer, Model: st, MetersPath: g.cfg.MetersPath, Log: g.log}
	if g.watcher != nil {
		cfg.Reload = g.watcher.Reload
	}
	srv, err := web.New(cfg)
	if err != nil {
		if g.cfg.WebPeer != "" {
			// The add-on's ingress page is a convenience: the meters go on.
			g.log.Error("status page not available", "err", err)
			return nil
		}
		return err
	}
	g.status = st
	g.outputs = append(g.outputs, st, webOutput{srv})
	return nil
}

// webOutput runs the web server among the outputs; readings reach the
// page through the Status.
type webOutput struct{ *web.Server }

func (webOutput) Reading(*kamstrup.Reading) {}

// receptionReporter publishes each meter's reception quality.
type receptionReporter interface {
	SetReception(id wmbus.ID, r discovery.Reception)
}

// reportReception hands the status page's reception quality to the
// outputs that publish it (Home Assistant's diagnostic sensor).
func (g *Gateway) reportReception() {
	if g.status == nil {
		return
	}
	g.status.ReceptionQuality(func(id wmbus.ID, hour, day float64, ok bool) {
		if !ok {
			return
		}
		g.eachOutput(func(o Output) {
			if r, ok := o.(receptionReporter); ok {
				r.SetReception(id, discovery.Reception{HourPct: hour, DayPct: day})
			}
		})
	})
}

// SetReception publishes a meter's reception quality.
func (m mqttOutput) SetReception(id wmbus.ID, r discovery.Reception) { m.p.SetReception(id, r) }

// WebAddr is the status page's listen address, "" without one.
func (g *Gateway) WebAddr() string {
	for _, o := range g.outputs {
		if w, ok := o.(webOutput); ok {
			return w.Addr().String()
		}
	}
	return ""
}

// Status is the status page's model, nil without --web.
func (g *Gateway) Status() *Status { return g.status }
