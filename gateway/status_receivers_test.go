package gateway

import (
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Per meter, the page lists every receiver that hears it and names the
// best: the highest mean SNR; receivers with only a device level (a
// VW1871) rank below any that measure SNR.
func TestStatusReceivers(t *testing.T) {
	c := &clock{now: t0}
	s, err := NewStatus(StatusOptions{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	fd := newFeeder(t, s, meterTOML("74493770", key(t, testvectors.Seed74493770)))
	frames := testvectors.Frames(t, testvectors.Seed74493770, 35)
	cellar := wmbus.Radio{Mode: "C1", Receiver: "cellar", LevelDBFS: -40, SNRdB: 18}
	attic := wmbus.Radio{Mode: "C1", Receiver: "attic", LevelDBFS: -60, SNRdB: 6}
	box := wmbus.Radio{Mode: "C1", Receiver: "vw1871", DeviceLevel: 230}
	for i, f := range frames[:10] {
		at := t0.Add(time.Duration(i) * 16 * time.Second)
		c.now = at
		fd.frame(t, f, at, cellar)
	}
	// One more reading heard by all three, as copy detection hands it on.
	r := kamstrup.Reading{ID: 0x74493770, Time: c.now, Radio: cellar, Receivers: []wmbus.Radio{cellar, attic, box}}
	s.Reading(&r)
	d := s.Snapshot()
	var m *MyMeterDoc
	for i := range d.Meters {
		if d.Meters[i].ID == "74493770" {
			m = &d.Meters[i]
		}
	}
	if m == nil {
		t.Fatal("meter not listed")
	}
	if m.BestReceiver != "cellar" || len(m.Receivers) != 3 {
		t.Fatalf("best %q, receivers %+v", m.BestReceiver, m.Receivers)
	}
	for _, rd := range m.Receivers {
		switch rd.Name {
		case "attic", "vw1871":
			if rd.Telegrams != 1 {
				t.Errorf("%s heard %d telegrams, want 1", rd.Name, rd.Telegrams)
			}
		case "cellar":
			if rd.Telegrams < 10 || rd.MeanSNRdB == nil || *rd.MeanSNRdB != 18 {
				t.Errorf("cellar: %+v", rd)
			}
		}
	}
	// Bounded: many receivers keep at most maxReceivers per meter.
	for i := range 3 * maxReceivers {
		rx := wmbus.Radio{Receiver: string(rune('a' + i)), DeviceLevel: 100 + i}
		r := kamstrup.Reading{ID: 0x74493770, Time: c.now.Add(time.Duration(i) * time.Second), Radio: rx}
		s.Reading(&r)
	}
	d = s.Snapshot()
	for _, mm := range d.Meters {
		if mm.ID == "74493770" && len(mm.Receivers) != maxReceivers {
			t.Errorf("%d receivers kept, want %d", len(mm.Receivers), maxReceivers)
		}
	}
}
