package kamstrup

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// FuzzCompact feeds arbitrary compact-frame application data (after CI
// 0x79) to a decoder that knows the shipped formats; a learned one is
// added from a full frame first.
func FuzzCompact(f *testing.F) {
	var p wmbus.Parser
	var tg wmbus.Telegram
	for _, v := range loadVectors(f) {
		if err := p.Parse(mustHex(f, v.Frame), keysOf(f, v), &tg); err == nil && tg.AppCI == 0x79 {
			f.Add(append([]byte(nil), tg.App...))
		}
	}
	f.Fuzz(func(t *testing.T, app []byte) {
		d := NewDecoder()
		tg := wmbus.Telegram{Header: wmbus.Header{Manufacturer: wmbus.KAM, ID: 0x74493770, Version: 0x1F, DeviceType: 0x16}, AppCI: 0x79, App: app}
		rs, err := d.Decode(&tg, time.Time{}, wmbus.Radio{})
		if err == nil && len(rs) != 1 {
			t.Fatalf("%d readings without error", len(rs))
		}
		for _, r := range rs {
			if _, err := json.Marshal(r); err != nil {
				t.Fatal(err)
			}
		}
		// A full frame made of the same bytes must not break the queue.
		tg.AppCI = 0x78
		_, _ = d.Decode(&tg, time.Time{}, wmbus.Radio{})
	})
}

// FuzzFull feeds arbitrary records as a full frame, then a compact frame
// in the format it taught.
func FuzzFull(f *testing.F) {
	var p wmbus.Parser
	var tg wmbus.Telegram
	for _, v := range loadVectors(f) {
		if err := p.Parse(mustHex(f, v.Frame), keysOf(f, v), &tg); err == nil && tg.AppCI == 0x78 {
			f.Add(append([]byte(nil), tg.App...), []byte{0, 0, 0, 0})
		}
	}
	f.Fuzz(func(t *testing.T, records, compact []byte) {
		d := NewDecoder()
		tg := wmbus.Telegram{Header: wmbus.Header{Manufacturer: wmbus.KAW, ID: 0x12345678, Version: 0x3C, DeviceType: 0x16}, AppCI: 0x79, App: compact}
		_, _ = d.Decode(&tg, time.Time{}, wmbus.Radio{})
		tg.AppCI, tg.App = 0x78, records
		rs, err := d.Decode(&tg, time.Time{}, wmbus.Radio{})
		for _, r := range rs {
			if _, err := json.Marshal(r); err != nil {
				t.Fatal(err)
			}
		}
		if err == nil && len(rs) == 0 {
			t.Fatal("no reading and no error")
		}
	})
}
