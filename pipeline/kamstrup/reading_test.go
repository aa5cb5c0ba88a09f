package kamstrup

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

func TestInfoCodeLayouts(t *testing.T) {
	c := InfoCode{Raw: 0x0041, Bits: 16}
	if !c.Active(Dry) || c.Active(Leak) || c.Supports(Tamper) {
		t.Fatalf("16-bit flags wrong")
	}
	if d, ok := c.Duration(Dry); !ok || DurationText[d] != "4-7 days" {
		t.Fatalf("dry duration = %d %v", d, ok)
	}
	w := InfoCode{Raw: 0x800 | 0x10, Bits: 32}
	if !w.Active(Tamper) || w.Other() != 0x800 {
		t.Fatalf("32-bit: tamper %v other %#x", w.Active(Tamper), w.Other())
	}
	if _, ok := w.Duration(Dry); ok {
		t.Fatalf("32-bit info code has no history")
	}
}

func TestReadingJSON(t *testing.T) {
	r := Reading{ID: 0x74493770, Manufacturer: wmbus.KAM, Version: 0x1F, DeviceType: 0x16,
		Model: "flowIQ 2101", Kind: Compact, AccessNumber: 0xB4,
		Time: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC), Info: InfoCode{Raw: 0x41, Bits: 16}}
	r.Set(Total, Value{8.915, true})
	r.Set(MinWaterTemp, Value{})
	var m map[string]any
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	want := map[string]any{"id": "74493770", "manufacturer": "KAM", "model": "flowIQ 2101", "kind": "compact",
		"access_number": 180.0, "total_m3": 8.915, "info_code": 65.0, "dry_duration": "4-7 days", "version": "0x1F"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v (%s)", k, m[k], v, b)
		}
	}
	if v, ok := m["min_water_temperature_c"]; !ok || v != nil {
		t.Errorf("unknown temperature must be null, got %v %v", v, ok)
	}
	if _, ok := m["flow_m3h"]; ok {
		t.Errorf("unreported flow must be absent")
	}
	if a := m["alarms"].([]any); len(a) != 1 || a[0] != "DRY" {
		t.Errorf("alarms = %v", a)
	}
}
