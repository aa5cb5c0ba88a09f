package discovery

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// The publisher's input contract is kamstrup.Reading, so its tests build
// readings straight from the vectors' expected decodes rather than running
// the decoder.

type vector struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Expected struct {
		ID           string   `json:"id"`
		Version      string   `json:"version"`
		DeviceType   string   `json:"device_type"`
		Total        *float64 `json:"total_m3"`
		Target       *float64 `json:"target_m3"`
		MinWaterTemp *float64 `json:"min_water_temperature_c"`
		AmbientTemp  *float64 `json:"ambient_temperature_c"`
		InfoCode     string   `json:"info_code"`
		AlarmsNow    []string `json:"alarms_now"`
		DryDuration  string   `json:"dry_duration"`
	} `json:"expected"`
	raw map[string]json.RawMessage
}

// t0 is when the first test telegram "arrived"; later ones follow at the
// meter's 16 s interval.
var t0 = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	b, err := os.ReadFile("testdata/vectors_74493770.json")
	if err != nil {
		tb.Fatal(err)
	}
	var f struct {
		Vectors []json.RawMessage `json:"vectors"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		tb.Fatalf("testdata/vectors_74493770.json: %v", err)
	}
	out := make([]vector, len(f.Vectors))
	for i, raw := range f.Vectors {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			tb.Fatalf("vector %d: %v", i, err)
		}
		var m struct {
			Expected map[string]json.RawMessage `json:"expected"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			tb.Fatal(err)
		}
		out[i].raw = m.Expected
	}
	return out
}

// quantityKeys maps the vectors' expected keys to quantities; every key of
// kamstrup.Quantities is accepted so a richer vector needs no code.
func quantityByKey(key string) (kamstrup.Quantity, bool) {
	for q := range kamstrup.NumQuantities {
		if kamstrup.Quantities[q].Key == key {
			return q, true
		}
	}
	return 0, false
}

func hexByte(tb testing.TB, s string) uint8 {
	tb.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 8)
	if err != nil {
		tb.Fatalf("%q: %v", s, err)
	}
	return uint8(v)
}

// reading turns vector i into the Reading the decoder will produce.
func (v vector) reading(tb testing.TB, i int) kamstrup.Reading {
	tb.Helper()
	e := v.Expected
	id, err := wmbus.ParseID(e.ID)
	if err != nil {
		tb.Fatal(err)
	}
	r := kamstrup.Reading{
		ID:           id,
		Manufacturer: wmbus.KAM,
		Version:      hexByte(tb, e.Version),
		DeviceType:   hexByte(tb, e.DeviceType),
		Model:        "flowIQ 2101", // version 0x1F, see docs/wmbus-kamstrup.md
		Time:         t0.Add(time.Duration(i) * 16 * time.Second),
		Radio:        wmbus.Radio{Format: "B"},
	}
	if v.Kind == "compact" {
		r.Kind = kamstrup.Compact
	}
	acc := v.Name[strings.LastIndex(v.Name, "acc")+3:]
	r.AccessNumber = hexByte(tb, acc)
	for k, raw := range v.raw {
		q, ok := quantityByKey(k)
		if !ok {
			continue
		}
		var f *float64
		if err := json.Unmarshal(raw, &f); err != nil {
			tb.Fatalf("%s %s: %v", v.Name, k, err)
		}
		if f == nil {
			r.Set(q, kamstrup.Value{}) // reported as "not measured" (127)
		} else {
			r.Set(q, kamstrup.Value{V: *f, Known: true})
		}
	}
	if e.InfoCode != "" {
		ic, err := strconv.ParseUint(strings.TrimPrefix(e.InfoCode, "0x"), 16, 16)
		if err != nil {
			tb.Fatal(err)
		}
		r.Info = kamstrup.InfoCode{Raw: uint32(ic), Bits: 16}
	}
	// Cross-check the reading against the vector's own alarm fields so a
	// wrong test input cannot slip through.
	if got := r.ActiveAlarms(); strings.Join(got, ",") != strings.Join(e.AlarmsNow, ",") {
		tb.Fatalf("%s: alarms %v, vector says %v", v.Name, got, e.AlarmsNow)
	}
	if d, ok := r.Info.Duration(kamstrup.Dry); e.DryDuration != "" && (!ok || kamstrup.DurationText[d] != e.DryDuration) {
		tb.Fatalf("%s: dry duration %d, vector says %q", v.Name, d, e.DryDuration)
	}
	return r
}

func vectorReadings(tb testing.TB) []kamstrup.Reading {
	vs := loadVectors(tb)
	rs := make([]kamstrup.Reading, len(vs))
	for i, v := range vs {
		rs[i] = v.reading(tb, i)
	}
	return rs
}

func TestVectorReadings(t *testing.T) {
	rs := vectorReadings(t)
	if len(rs) != 35 {
		t.Fatalf("%d readings of 74493770, want 35", len(rs))
	}
	nulls := 0
	for _, r := range rs {
		if v, ok := r.Get(kamstrup.Total); !ok || !v.Known || v.V != 8.915 {
			t.Errorf("access %d: total %v %v", r.AccessNumber, v, ok)
		}
		if v, ok := r.Get(kamstrup.MinWaterTemp); ok && !v.Known {
			nulls++
		}
	}
	if nulls == 0 {
		t.Errorf("no vector with an unknown water temperature: the null path is untested")
	}
}
