package kamstrup

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

func TestParseReadingRoundTrip(t *testing.T) {
	full := Reading{ID: 0x23813076, Manufacturer: wmbus.KAW, Version: 0x3C, DeviceType: 0x16, Model: "flowIQ 2200",
		Kind: Compact, AccessNumber: 90, Time: time.Date(2026, 11, 21, 8, 0, 0, 5, time.UTC),
		TargetDate: time.Date(2022, 11, 1, 0, 0, 0, 0, time.UTC), Info: InfoCode{Raw: 0x800, Bits: 32},
		ManufacturerData: []byte{0x08, 0x90, 0x00, 0x08, 0xF0, 0xFF},
		Radio:            wmbus.Radio{Mode: "C1", Format: "B", LevelDBFS: -31.2, SNRdB: 17.5, OffsetHz: -12000}}
	full.Set(Total, Value{3.871, true})
	full.Set(Flow, Value{0, true})
	full.Set(MaxAmbientTempMonth, Value{27, true})
	full.Set(MinWaterTemp, Value{})
	dry := Reading{ID: 0x74493770, Manufacturer: wmbus.KAM, Version: 0x1F, DeviceType: 0x16, Model: "flowIQ 2101",
		Info: InfoCode{Raw: 0x41, Bits: 16}}
	dry.Set(Total, Value{8.915, true})
	heard := dry
	heard.Radio = wmbus.Radio{Mode: "C1", Format: "B", LevelDBFS: -40, SNRdB: 21.5, OffsetHz: 300, Receiver: "pit \"2\""}
	heard.Receivers = []wmbus.Radio{{Receiver: "cellar", DeviceLevel: 120},
		{Receiver: "pit \"2\"", LevelDBFS: -40, SNRdB: 21.5, OffsetHz: 300}, {Receiver: "attic"}}
	for _, r := range []Reading{full, dry, heard} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseReading(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		b2, _ := json.Marshal(back)
		if !bytes.Equal(b, b2) {
			t.Errorf("round trip:\n%s\n%s", b, b2)
		}
		if back.Radio != r.Radio || len(back.Receivers) != len(r.Receivers) {
			t.Errorf("radio %+v receivers %+v", back.Radio, back.Receivers)
		}
		if back.Info != r.Info || back.Manufacturer != r.Manufacturer {
			t.Errorf("info %+v manufacturer %s", back.Info, back.Manufacturer)
		}
	}
}

func TestParseReadingErrors(t *testing.T) {
	for _, in := range []string{``, `[]`, `{"id":"1234"}`, `{"id":"74493770","manufacturer":"KAM","version":"zz","device_type":"0x16"}`,
		`{"id":"74493770","manufacturer":"KAM","version":"0x1F","device_type":"0x16","total_m3":"many"}`} {
		if _, err := ParseReading([]byte(in)); !errors.Is(err, ErrReadingJSON) {
			t.Errorf("%s: %v", in, err)
		}
	}
}
