package discovery

import (
	"strconv"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Reception is a meter's reception quality: the share (%) of the telegrams
// it sent that were received over the last hour and the last 24 hours,
// from the gaps in its access number.
type Reception struct {
	HourPct, DayPct float64
}

// receptionState is what is known and sent of one meter's reception.
type receptionState struct {
	r     Reception
	dirty bool
}

// MeterReceptionTopic carries a meter's reception quality JSON
// ({"reception_1h_pct":…,"reception_24h_pct":…}), retained.
func (s Site) MeterReceptionTopic(id wmbus.ID) string {
	return s.BaseTopic + "/" + id.String() + "/reception"
}

// receptionComponent is the diagnostic sensor of a meter's reception
// quality over the last hour; it has its own state topic.
func receptionComponent(s Site, id wmbus.ID) Component {
	return Component{
		Platform:       "sensor",
		Name:           "Reception quality",
		Unit:           "%",
		StateClass:     "measurement",
		Precision:      ptr(0),
		EntityCategory: "diagnostic",
		Icon:           "mdi:radio-tower",
		StateTopic:     s.MeterReceptionTopic(id),
		ValueTemplate:  numberTemplate("reception_1h_pct"),
	}
}

// SetReception sets a meter's reception quality; it is published (with its
// sensor) when the meter is published, and again only when it changed.
func (p *Publisher) SetReception(id wmbus.ID, r Reception) {
	p.mu.Lock()
	if p.rx == nil {
		p.rx = map[wmbus.ID]*receptionState{}
	}
	st := p.rx[id]
	if st == nil {
		if len(p.rx) >= p.cfg.MaxMeters {
			p.mu.Unlock()
			return
		}
		st = &receptionState{}
		p.rx[id] = st
	} else if st.r == r {
		p.mu.Unlock()
		return
	}
	st.r, st.dirty = r, true
	p.mu.Unlock()
	p.signal()
}

// sendReception adds the reception messages to a send: the retained value
// of removed meters is cleared, a changed value of a published meter goes
// out, and its device gains the sensor the first time. Runs in Run's
// goroutine, before the meters' own messages.
func (p *Publisher) sendReception(add func(Message, func())) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.removals {
		if _, ok := p.rx[id]; ok {
			delete(p.rx, id)
			add(Message{Topic: p.site.MeterReceptionTopic(id), Retain: true}, func() {})
		}
	}
	for id, st := range p.rx {
		ms := p.meters[id]
		if ms == nil || !st.dirty {
			continue
		}
		if !ms.feats.Reception {
			ms.feats.Reception, ms.discDirty = true, true
		}
		st.dirty = false
		b := append([]byte(`{"reception_1h_pct":`), strconv.FormatFloat(st.r.HourPct, 'f', -1, 64)...)
		b = append(b, `,"reception_24h_pct":`...)
		b = append(strconv.AppendFloat(b, st.r.DayPct, 'f', -1, 64), '}')
		add(Message{Topic: p.site.MeterReceptionTopic(id), Payload: b, Retain: true}, func() {
			p.mu.Lock()
			st.dirty = true
			p.mu.Unlock()
		})
	}
}

// resyncReception marks every reception value for sending again.
func (p *Publisher) resyncReception() {
	p.mu.Lock()
	for _, st := range p.rx {
		st.dirty = true
	}
	p.mu.Unlock()
}
