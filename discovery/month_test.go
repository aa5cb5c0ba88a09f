package discovery

import (
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// decodeSeed decodes the 35 captured telegrams of meter 74493770 the way
// the pipeline does (link layer, AES, Kamstrup decoder), so the entity is
// tested on what the gateway really publishes, not on hand-made readings.
func decodeSeed(t *testing.T) []kamstrup.Reading {
	t.Helper()
	var key []byte
	for _, v := range testvectors.Load(t) {
		if strings.HasPrefix(v.Name, testvectors.Seed74493770) && v.Key != nil {
			k, err := wmbus.ParseKey(*v.Key)
			if err != nil {
				t.Fatal(err)
			}
			key = k[:]
		}
	}
	keys := func(wmbus.ID) ([]byte, bool) { return key, key != nil }
	var (
		p   wmbus.Parser
		tel wmbus.Telegram
		out []kamstrup.Reading
	)
	dec := kamstrup.NewDecoder()
	for i, hex := range testvectors.Frames(t, testvectors.Seed74493770, 35) {
		data, _, err := wmbus.AppendHexLine(nil, hex)
		if err != nil {
			t.Fatalf("telegram %d: %v", i, err)
		}
		if err := p.Parse(data, keys, &tel); err != nil {
			t.Fatalf("telegram %d: %v", i, err)
		}
		rs, err := dec.Decode(&tel, t0.Add(time.Duration(i)*16*time.Second), wmbus.Radio{})
		if err != nil {
			t.Fatalf("telegram %d: %v", i, err)
		}
		out = append(out, rs...)
	}
	return out
}

// TestMonthConsumptionSeed: for each of meter 74493770's 35 telegrams the
// "Consumption this month" entity, rendered by Jinja2 from the published
// state JSON, reads 0.382 m³ (8.915 − 8.533), as a water sensor.
func TestMonthConsumptionSeed(t *testing.T) {
	rs := decodeSeed(t)
	if len(rs) != 35 {
		t.Fatalf("%d readings from 35 telegrams", len(rs))
	}
	s := testSite(t)
	var feats Features
	for i := range rs {
		feats = feats.Union(FeaturesOf(&rs[i]))
	}
	cfg := decodeConfig(t, must(t)(MeterConfig(s, Meter{ID: rs[0].ID}, rs[0].Model, feats)))
	c, ok := cfg.Components["month_consumption"]
	if !ok {
		t.Fatalf("no month_consumption entity; components %v", componentKeys(t, must(t)(MeterConfig(s, Meter{ID: rs[0].ID}, rs[0].Model, feats)).Payload))
	}
	if c.DeviceClass != "water" || c.Unit != "m³" || c.StateClass != "total_increasing" {
		t.Errorf("month_consumption is %s/%s/%s", c.DeviceClass, c.Unit, c.StateClass)
	}
	if cfg.Device.SWVersion != "0x1F" {
		t.Errorf("sw_version %q, want the meter's version 0x1F", cfg.Device.SWVersion)
	}
	jobs := make([]map[string]string, len(rs))
	for i := range rs {
		jobs[i] = map[string]string{"t": c.ValueTemplate, "v": string(rs[i].AppendJSON(nil))}
	}
	for i, got := range renderTemplates(t, jobs) {
		if got != "0.382" {
			t.Errorf("telegram %d (access %d): month consumption %q, want 0.382", i, rs[i].AccessNumber, got)
		}
	}
}
