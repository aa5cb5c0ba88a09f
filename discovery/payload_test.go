package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

func testSite(tb testing.TB) Site {
	tb.Helper()
	s, err := Site{SWVersion: "1.2.3"}.Normalize()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// radioReading is a reading as it comes off this project's own receiver:
// radio data present, so the signal entity exists.
func radioReading(tb testing.TB) kamstrup.Reading {
	r := vectorReadings(tb)[0]
	r.Radio = wmbus.Radio{Mode: "C1", Format: "B", LevelDBFS: -41.26, SNRdB: 18.3, OffsetHz: 2150}
	return r
}

// flowIQ2200Reading has a 32-bit info code (tamper, low battery, no
// history), flows and no target volume, and an unknown model.
func flowIQ2200Reading() kamstrup.Reading {
	r := kamstrup.Reading{ID: 0x52525252, Manufacturer: wmbus.KAW, Version: 0x3A, DeviceType: 0x16,
		Model: "unknown", Kind: kamstrup.Full, AccessNumber: 0x38, Time: t0,
		Info: kamstrup.InfoCode{Raw: 0x10, Bits: 32}}
	r.Set(kamstrup.Total, kamstrup.Value{V: 44.206, Known: true})
	r.Set(kamstrup.Flow, kamstrup.Value{V: 0, Known: true})
	r.Set(kamstrup.MaxFlow, kamstrup.Value{V: 0.495, Known: true})
	r.Set(kamstrup.MinWaterTemp, kamstrup.Value{V: 13, Known: true})
	return r
}

func golden(t *testing.T, name string, m Message) {
	t.Helper()
	var payload json.RawMessage = []byte("null")
	if len(m.Payload) > 0 {
		payload = m.Payload
	}
	got, err := json.MarshalIndent(struct {
		Topic   string          `json:"topic"`
		Retain  bool            `json:"retain"`
		Payload json.RawMessage `json:"payload"`
	}{m.Topic, m.Retain, payload}, "", "  ")
	if err != nil {
		t.Fatalf("%s: %v (payload %s)", name, err, m.Payload)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (go test -update rewrites it after review):\n%s", name, path, got)
	}
}

// must unwraps a payload builder's result: must(t)(MeterConfig(...)).
func must(tb testing.TB) func(Message, error) Message {
	return func(m Message, err error) Message {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return m
	}
}

func TestGolden(t *testing.T) {
	s := testSite(t)
	vec := vectorReadings(t)[0]
	rad := radioReading(t)
	r22 := flowIQ2200Reading()
	state := func(r kamstrup.Reading) Message {
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return Message{Topic: s.MeterStateTopic(r.ID), Payload: b, Retain: true}
	}
	gs, err := GatewayState{TelegramsReceived: 40, TelegramsDecoded: 35, TelegramsFailed: 5, SDR: "ok",
		LastTelegram: t0.Add(9 * time.Minute)}.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		msg  Message
	}{
		{"meter_74493770", must(t)(MeterConfig(s, Meter{ID: vec.ID}, vec.Model, FeaturesOf(&vec)))},
		{"meter_74493770_radio_named", must(t)(MeterConfig(s, Meter{ID: rad.ID, Name: "Kitchen water"}, "flowIQ 2102", FeaturesOf(&rad)))},
		{"meter_52525252_flowiq2200", must(t)(MeterConfig(s, Meter{ID: r22.ID}, r22.Model, FeaturesOf(&r22)))},
		{"meter_74493770_removed", RemoveMeter(s, vec.ID)},
		{"gateway", must(t)(GatewayConfig(s))},
		{"state_74493770", state(vec)},
		{"state_74493770_radio", state(rad)},
		{"gateway_state", Message{Topic: s.GatewayStateTopic(), Payload: gs, Retain: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { golden(t, c.name, c.msg) })
	}
}

// haUnits is Home Assistant's table of accepted units and state classes
// for the device classes used here (sensor device classes; a unit outside
// the list makes HA log an error and drop statistics).
var haUnits = map[string]struct{ units, stateClasses []string }{
	"water":            {[]string{"L", "m³", "ft³", "CCF", "gal", "MCF"}, []string{"total", "total_increasing"}},
	"volume_flow_rate": {[]string{"m³/h", "m³/s", "L/min", "L/h", "L/s", "gal/min", "ft³/min", "mL/s"}, []string{"measurement"}},
	"temperature":      {[]string{"°C", "°F", "K"}, []string{"measurement"}},
	"signal_strength":  {[]string{"dB", "dBm"}, []string{"measurement"}},
	"timestamp":        {[]string{""}, []string{""}},
	"date":             {[]string{""}, []string{""}},
}

// haBinaryClasses are the binary sensor device classes used here.
var haBinaryClasses = []string{"battery", "connectivity", "moisture", "problem", "tamper"}

// allFeatures is every entity a meter can have.
var allFeatures = Features{Quantities: 1<<kamstrup.NumQuantities - 1, Alarms: 1<<kamstrup.NumAlarms - 1,
	History: 1<<kamstrup.NumAlarms - 1, InfoCode: true, Radio: true, Time: true, TargetDate: true,
	Version: 0x1F, HasVersion: true, Reception: true}

// isRemoval reports a component that only removes an earlier entity.
func isRemoval(c Component) bool {
	b, err := json.Marshal(c)
	return err == nil && string(b) == `{"p":"`+c.Platform+`"}`
}

func decodeConfig(t *testing.T, m Message) DeviceConfig {
	t.Helper()
	var c DeviceConfig
	if err := json.Unmarshal(m.Payload, &c); err != nil {
		t.Fatalf("%s: %v", m.Topic, err)
	}
	return c
}

func TestDeviceClassUnitStateClass(t *testing.T) {
	s := testSite(t)
	meter := decodeConfig(t, must(t)(MeterConfig(s, Meter{ID: 0x74493770}, "flowIQ 2101", allFeatures)))
	gw := decodeConfig(t, must(t)(GatewayConfig(s)))
	// quantities, alarms, history, info code, signal, month, target date,
	// reception, reception quality, and the removal of last_seen.
	if n := len(meter.Components); n != int(kamstrup.NumQuantities)+int(kamstrup.NumAlarms)+8 {
		t.Errorf("meter with every feature has %d entities", n)
	}
	for _, cfg := range []DeviceConfig{meter, gw} {
		for key, c := range cfg.Components {
			if isRemoval(c) {
				if key != removedLastSeen {
					t.Errorf("%s: a removal-only component", key)
				}
				continue
			}
			switch c.Platform {
			case "binary_sensor":
				if !slices.Contains(haBinaryClasses, c.DeviceClass) {
					t.Errorf("%s: binary sensor class %q", key, c.DeviceClass)
				}
			case "sensor":
				if c.DeviceClass == "" {
					// Home Assistant takes a sensor without a device class
					// as numeric when it has a unit; it then needs a state
					// class to keep statistics, and the reverse.
					if (c.Unit != "") != (c.StateClass == "measurement") {
						t.Errorf("%s: unit %q / state class %q without a device class", key, c.Unit, c.StateClass)
					}
					continue
				}
				allowed, ok := haUnits[c.DeviceClass]
				if !ok {
					t.Errorf("%s: device class %q not in the table", key, c.DeviceClass)
					continue
				}
				if !slices.Contains(allowed.units, c.Unit) {
					t.Errorf("%s: %s with unit %q; HA accepts %q", key, c.DeviceClass, c.Unit, allowed.units)
				}
				if !slices.Contains(allowed.stateClasses, c.StateClass) {
					t.Errorf("%s: %s with state class %q; HA accepts %q", key, c.DeviceClass, c.StateClass, allowed.stateClasses)
				}
			default:
				t.Errorf("%s: platform %q", key, c.Platform)
			}
		}
	}
	// The recipe's specific promises.
	want := map[string][3]string{
		"total":                 {"water", "m³", "total_increasing"},
		"target":                {"water", "m³", "total"},
		"flow":                  {"volume_flow_rate", "m³/h", "measurement"},
		"max_flow":              {"volume_flow_rate", "m³/h", "measurement"},
		"ambient_temperature":   {"temperature", "°C", "measurement"},
		"min_water_temperature": {"temperature", "°C", "measurement"},
		"rssi":                  {"signal_strength", "dB", "measurement"},
		// resets when the target date moves on: a new cycle, not a drop
		"month_consumption": {"water", "m³", "total_increasing"},
		"target_date":       {"date", "", ""},
	}
	for key, w := range want {
		c := meter.Components[key]
		if got := [3]string{c.DeviceClass, c.Unit, c.StateClass}; got != w {
			t.Errorf("%s = %q, want %q", key, got, w)
		}
	}
	for a, class := range map[string]string{"alarm_leak": "moisture", "alarm_burst": "moisture", "alarm_dry": "problem",
		"alarm_reverse": "problem", "alarm_tamper": "tamper", "alarm_low_battery": "battery"} {
		if c := meter.Components[a]; c.Platform != "binary_sensor" || c.DeviceClass != class {
			t.Errorf("%s = %s/%s, want binary_sensor/%s", a, c.Platform, c.DeviceClass, class)
		}
	}
	for _, k := range []string{"rssi", "reception", "reception_quality", "info_code", "alarm_history"} {
		if meter.Components[k].EntityCategory != "diagnostic" {
			t.Errorf("%s is not diagnostic", k)
		}
	}
	if e := meter.Components["rssi"].EnabledByDefault; e == nil || *e {
		t.Errorf("rssi must be disabled by default")
	}
}

func TestMeterDevice(t *testing.T) {
	s := testSite(t)
	vec := vectorReadings(t)[0]
	cfg := decodeConfig(t, must(t)(MeterConfig(s, Meter{ID: vec.ID}, vec.Model, FeaturesOf(&vec))))
	d := cfg.Device
	if d.Name != "Kamstrup flowIQ 2101 74493770" || d.Manufacturer != "Kamstrup" || d.Model != "flowIQ 2101" ||
		d.SerialNumber != "74493770" || d.ViaDevice != s.GatewayDeviceID() || !slices.Equal(d.Identifiers, []string{"kamstrup_74493770"}) {
		t.Errorf("device = %+v", d)
	}
	if cfg.Origin.Name == "" || cfg.Origin.URL == "" || cfg.Origin.SWVersion != "1.2.3" {
		t.Errorf("origin = %+v", cfg.Origin)
	}
	if cfg.AvailabilityMode != "all" || len(cfg.Availability) != 2 ||
		cfg.Availability[0].Topic != "flowiq/status" || cfg.Availability[1].Topic != "flowiq/74493770/availability" {
		t.Errorf("availability = %v %s", cfg.Availability, cfg.AvailabilityMode)
	}
	// Only what this meter reports: no flow, no radio, 16-bit info code
	// (no tamper/battery).
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range cfg.Components {
			if !yield(k) {
				return
			}
		}
	})
	want := []string{"alarm_burst", "alarm_dry", "alarm_history", "alarm_leak", "alarm_reverse", "ambient_temperature",
		"info_code", "last_seen", "min_water_temperature", "month_consumption", "reception", "target", "total"}
	if !slices.Equal(keys, want) {
		t.Errorf("entities %q, want %q", keys, want)
	}
	c := cfg.Components["total"]
	if c.UniqueID != "kamstrup_74493770_total" || c.DefaultEntityID != "sensor.kamstrup_74493770_total" {
		t.Errorf("total ids: %s %s", c.UniqueID, c.DefaultEntityID)
	}
	if c := cfg.Components["alarm_dry"]; c.DefaultEntityID != "binary_sensor.kamstrup_74493770_alarm_dry" {
		t.Errorf("dry id: %s", c.DefaultEntityID)
	}
	if strings.Contains(string(must(t)(MeterConfig(s, Meter{ID: vec.ID}, vec.Model, FeaturesOf(&vec))).Payload), "expire_after") {
		t.Errorf("retained state must not be combined with expire_after")
	}
	// Unknown model: left out, name without it.
	u := decodeConfig(t, must(t)(MeterConfig(s, Meter{ID: vec.ID}, "unknown", FeaturesOf(&vec))))
	if u.Device.Model != "" || u.Device.Name != "Kamstrup 74493770" {
		t.Errorf("unknown model: %+v", u.Device)
	}
}

func TestFeaturesUnion(t *testing.T) {
	vec := vectorReadings(t)[0]
	rad := radioReading(t)
	a, b := FeaturesOf(&vec), FeaturesOf(&rad)
	if a.Radio || !b.Radio {
		t.Fatalf("radio feature: %v %v", a.Radio, b.Radio)
	}
	u := a.Union(b)
	if !u.Covers(a) || !u.Covers(b) || a.Covers(b) || !b.Covers(a) {
		t.Errorf("union/covers wrong: %+v %+v %+v", a, b, u)
	}
}

func TestSiteValidation(t *testing.T) {
	for _, s := range []Site{
		{DiscoveryPrefix: "home/#"},
		{BaseTopic: "flowiq/"},
		{BaseTopic: "a//b"},
		{GatewayID: "my gateway"},
		{GatewayID: "gw/1"},
	} {
		if _, err := s.Normalize(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err = %v, want ErrConfig", s, err)
		}
	}
	s, err := Site{}.Normalize()
	if err != nil || s.DiscoveryPrefix != "homeassistant" || s.BaseTopic != "flowiq" || s.GatewayID == "" {
		t.Errorf("defaults: %+v %v", s, err)
	}
}

func BenchmarkMeterConfig(b *testing.B) {
	s := testSite(b)
	r := radioReading(b)
	m := Meter{ID: r.ID}
	b.ReportAllocs()
	for b.Loop() {
		f := FeaturesOf(&r)
		if _, err := MeterConfig(s, m, r.Model, f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStateJSON(b *testing.B) {
	r := radioReading(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzMeterConfig: whatever a reading and the meter list hold, the payload
// is valid JSON with exactly one entity per reported feature, stable ids
// and no field that would break Home Assistant's parsing.
func FuzzMeterConfig(f *testing.F) {
	f.Add(uint32(0x74493770), uint32(0x0041), uint8(16), uint32(0b11), "", "", "flowIQ 2101", true, true)
	f.Add(uint32(0x52525252), uint32(0x10), uint8(32), uint32(0x1FFF), "Kitchen \"water\" <1>", "flowIQ 2200", "unknown", false, true)
	f.Add(uint32(0xFFFFFFFF), uint32(0xFFFFFFFF), uint8(7), uint32(0), "\x00\xff", "", "", false, false)
	s := testSite(f)
	f.Fuzz(func(t *testing.T, id, info uint32, bits uint8, present uint32, name, override, model string, radio, withTime bool) {
		r := kamstrup.Reading{ID: wmbus.ID(id), Model: model, Info: kamstrup.InfoCode{Raw: info, Bits: bits}}
		for q := range kamstrup.NumQuantities {
			if present&(1<<q) != 0 {
				r.Set(q, kamstrup.Value{V: float64(q), Known: q%2 == 0})
			}
		}
		if radio {
			r.Radio.Mode = "C1"
		}
		if withTime {
			r.Time = t0
		}
		feats := FeaturesOf(&r)
		if override != "" { // the meter list's model, as the gateway applies it
			r.Model = override
		}
		m, err := MeterConfig(s, Meter{ID: r.ID, Name: name}, r.Model, feats)
		if err != nil {
			t.Fatal(err)
		}
		var c DeviceConfig
		if err := json.Unmarshal(m.Payload, &c); err != nil {
			t.Fatalf("invalid JSON: %v\n%s", err, m.Payload)
		}
		want := 0
		for q := range kamstrup.NumQuantities {
			if r.Has(q) {
				want++
			}
		}
		for a := range kamstrup.NumAlarms {
			if r.Info.Supports(a) {
				want++
			}
		}
		if feats.History != 0 {
			want++
		}
		month := r.Has(kamstrup.Total) && r.Has(kamstrup.Target)
		for _, b := range []bool{feats.InfoCode, radio, month, true} { // true: reception
			if b {
				want++
			}
		}
		got := 0
		for k, comp := range c.Components {
			if isRemoval(comp) {
				if k != removedLastSeen || !withTime {
					t.Fatalf("removal of %q", k)
				}
				continue
			}
			got++
		}
		if got != want {
			t.Fatalf("%d entities, want %d", got, want)
		}
		prefix := "kamstrup_" + r.ID.String() + "_"
		for k, comp := range c.Components {
			if isRemoval(comp) {
				continue
			}
			if comp.UniqueID != prefix+k || comp.DefaultEntityID != comp.Platform+"."+prefix+k || !validObjectID(k) {
				t.Fatalf("entity %q ids %q %q", k, comp.UniqueID, comp.DefaultEntityID)
			}
		}
		if c.Device.SerialNumber != r.ID.String() || c.Device.Name == "" || !strings.HasSuffix(m.Topic, "/kamstrup_"+r.ID.String()+"/config") {
			t.Fatalf("device %+v topic %s", c.Device, m.Topic)
		}
	})
}
