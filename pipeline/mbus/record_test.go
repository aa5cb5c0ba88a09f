package mbus

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"testing"
	"time"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func collect(t *testing.T, it Iter) []Record {
	t.Helper()
	var out []Record
	var r Record
	for it.Next(&r) {
		out = append(out, r)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Application data of a flowIQ 2101 full frame (74493770, vectors.json)
// after CI 0x78.
const kamFull = "02FF2041000413D3220000441355210000A1015B218101E7FF0F1C"

func TestKamstrupFullFrame(t *testing.T) {
	recs := collect(t, Records(mustHex(t, kamFull)))
	type want struct {
		head    string
		data    string
		kind    Kind
		fn      Function
		storage uint64
		mfr     string
	}
	wants := []want{
		{"02FF20", "4100", KindManufacturer, Instantaneous, 0, "20"},
		{"0413", "D3220000", KindVolume, Instantaneous, 0, ""},
		{"4413", "55210000", KindVolume, Instantaneous, 1, ""},
		{"A1015B", "21", KindFlowTemperature, Minimum, 2, ""},
		{"8101E7FF0F", "1C", KindExternalTemperature, Instantaneous, 2, "0F"},
	}
	if len(recs) != len(wants) {
		t.Fatalf("%d records, want %d", len(recs), len(wants))
	}
	for i, w := range wants {
		r := recs[i]
		if hex.EncodeToString(r.Head) != toLower(w.head) || hex.EncodeToString(r.Data) != toLower(w.data) ||
			r.Unit.Kind != w.kind || r.Function != w.fn || r.Storage != w.storage || hex.EncodeToString(r.Mfr) != toLower(w.mfr) {
			t.Errorf("record %d: head %X data %X kind %v fn %v storage %d mfr %X; want %+v",
				i, r.Head, r.Data, r.Unit.Kind, r.Function, r.Storage, r.Mfr, w)
		}
	}
	if v, err := recs[1].Scaled(); err != nil || v != 8.915 || recs[1].Unit.Sym != "m³" {
		t.Errorf("total = %v %s %v", v, recs[1].Unit.Sym, err)
	}
	if v, err := recs[3].Int(); err != nil || v != 33 {
		t.Errorf("temperature = %v %v", v, err)
	}
	if v, err := recs[0].Uint(); err != nil || v != 0x41 {
		t.Errorf("info = %#x %v", v, err)
	}
}

func toLower(s string) string { return string(bytes.ToLower([]byte(s))) }

// OMS specification volume 2, annex N.2.1, after decryption: 28504.27 m³
// at 2008-05-31 23:50, error flags 0, then AES fill.
func TestOMSExample(t *testing.T) {
	recs := collect(t, Records(mustHex(t, "2F2F0C1427048502046D32371F1502FD1700002F2F2F2F2F2F2F2F2F2F2F2F2F")))
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	if v, err := recs[0].Scaled(); err != nil || math.Abs(v-28504.27) > 1e-9 || recs[0].Type != TypeBCD8 {
		t.Errorf("volume %v %v", v, err)
	}
	if d, err := recs[1].Date(nil); err != nil || !d.Equal(time.Date(2008, 5, 31, 23, 50, 0, 0, time.UTC)) || recs[1].Unit.Kind != KindDateTime {
		t.Errorf("date %v %v", d, err)
	}
	if recs[2].Unit.Kind != KindExtFD || recs[2].Ext != 0x17 {
		t.Errorf("error flags record: %+v", recs[2])
	}
}

func TestDIFEAndTypes(t *testing.T) {
	// DIF C4 (storage LSB 1, DIFE), DIFE 8F (storage 0xF, tariff 0, ext),
	// DIFE 62 (storage 2, tariff 2, subunit 1): storage 1 | F<<1 | 2<<5,
	// tariff 2<<2, subunit 2.
	recs := collect(t, Records(mustHex(t, "C48F6213"+"01000000")))
	r := recs[0]
	if r.Storage != 1|0xF<<1|2<<5 || r.Tariff != 2<<2 || r.Subunit != 2 || r.Function != Instantaneous {
		t.Errorf("storage %d tariff %d subunit %d", r.Storage, r.Tariff, r.Subunit)
	}
	tests := []struct {
		rec   string
		want  float64
		kind  Kind
		scale bool
	}{
		{"0113FF", -1, KindVolume, false},                          // int8
		{"02FB12" + "3412", 0x1234, KindExtFB, false},              // int16, extension FB
		{"033B010080", -8388607, KindVolumeFlow, false},            // int24
		{"05130000C03F", 1.5, KindVolume, false},                   // real32
		{"06030102030405FF", -0xFAFBFCFDFF, KindEnergy, false},     // int48
		{"0913" + "42", 42, KindVolume, false},                     // BCD2
		{"0A5A" + "4512", 1245, KindFlowTemperature, false},        // BCD4
		{"0B13" + "563412", 123456, KindVolume, false},             // BCD6
		{"0E13" + "010000000080", 800000000001, KindVolume, false}, // BCD12
		{"0C13" + "123456F0", -563412, KindVolume, false},          // negative BCD
		{"0D13" + "C2" + "3412", 1234, KindVolume, false},          // LVAR BCD
		{"0D13" + "E2" + "FFFF", -1, KindVolume, false},            // LVAR binary
		{"0A3B" + "0012", 1.2, KindVolumeFlow, true},               // 1200 × 10⁻³ m³/h
	}
	for _, tc := range tests {
		recs := collect(t, Records(mustHex(t, tc.rec)))
		if len(recs) != 1 {
			t.Fatalf("%s: %d records", tc.rec, len(recs))
		}
		var v float64
		var err error
		if tc.scale {
			v, err = recs[0].Scaled()
		} else {
			v, err = recs[0].Float()
		}
		if err != nil || math.Abs(v-tc.want) > 1e-9 || recs[0].Unit.Kind != tc.kind {
			t.Errorf("%s: %v %v kind %v", tc.rec, v, err, recs[0].Unit.Kind)
		}
	}
}

func TestVIFTable(t *testing.T) {
	tests := []struct {
		vif  byte
		kind Kind
		exp  int8
		sym  string
	}{
		{0x13, KindVolume, -3, "m³"}, {0x3B, KindVolumeFlow, -3, "m³/h"}, {0x5B, KindFlowTemperature, 0, "°C"},
		{0x67, KindExternalTemperature, 0, "°C"}, {0x6C, KindDate, 0, ""}, {0x6D, KindDateTime, 0, ""},
		{0x06, KindEnergy, 3, "Wh"}, {0x2B, KindPower, 0, "W"}, {0x22, KindOnTime, 0, "h"},
		{0x27, KindOperatingTime, 0, "d"}, {0xFF, KindManufacturer, 0, ""}, {0x5F, KindReturnTemperature, 0, "°C"},
		{0x61, KindTemperatureDifference, -2, "K"}, {0x68, KindPressure, -3, "bar"}, {0x44, KindVolumeFlowMin, -3, "m³/min"},
	}
	for _, tc := range tests {
		if u := UnitOf(tc.vif); u.Kind != tc.kind || u.Exp != tc.exp || u.Sym != tc.sym {
			t.Errorf("VIF %02X = %+v", tc.vif, u)
		}
	}
}

func TestDates(t *testing.T) {
	tests := []struct {
		data string
		want time.Time
	}{
		{"812A", time.Date(2020, 10, 1, 0, 0, 0, 0, time.UTC)},
		{"C12B", time.Date(2022, 11, 1, 0, 0, 0, 0, time.UTC)},
		{"4137", time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		r := Record{Data: mustHex(t, tc.data)}
		if d, err := r.Date(nil); err != nil || !d.Equal(tc.want) {
			t.Errorf("%s: %v %v", tc.data, d, err)
		}
	}
	for _, bad := range []string{"0000", "3F2F", "FFFF", "00", "80000000"} {
		r := Record{Data: mustHex(t, bad)}
		if _, err := r.Date(nil); !errors.Is(err, ErrValue) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestManufacturerData(t *testing.T) {
	recs := collect(t, Records(mustHex(t, "2F041301000000"+"0F0102030405")))
	if len(recs) != 2 || !recs[1].MfrData || !bytes.Equal(recs[1].Data, []byte{1, 2, 3, 4, 5}) {
		t.Fatalf("%+v", recs)
	}
}

func TestCompactRecords(t *testing.T) {
	heads := mustHex(t, "02FF2004134413A1015B8101E7FF0F")
	data := mustHex(t, "4100D322000055210000211C")
	recs := collect(t, CompactRecords(heads, data))
	full := collect(t, Records(mustHex(t, kamFull)))
	if len(recs) != len(full) {
		t.Fatalf("%d records, want %d", len(recs), len(full))
	}
	for i := range recs {
		if !bytes.Equal(recs[i].Head, full[i].Head) || !bytes.Equal(recs[i].Data, full[i].Data) {
			t.Errorf("record %d: %X %X vs %X %X", i, recs[i].Head, recs[i].Data, full[i].Head, full[i].Data)
		}
	}
	it := CompactRecords(heads, append(bytes.Clone(data), 0))
	var r Record
	for it.Next(&r) {
	}
	if !errors.Is(it.Err(), ErrTrailingData) {
		t.Errorf("trailing data: %v", it.Err())
	}
	it = CompactRecords(heads, data[:len(data)-1])
	for it.Next(&r) {
	}
	if !errors.Is(it.Err(), ErrTruncated) {
		t.Errorf("short data: %v", it.Err())
	}
}

func TestRecordErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"04", ErrTruncated},
		{"0413D322", ErrTruncated},
		{"84", ErrTruncated},
		{"8480808080808080808080808013", ErrTooManyExt},
		{"04938080808080808080808080", ErrTooManyExt},
		{"0493", ErrTruncated},
		{"3F", ErrReservedDIF},
		{"7F", ErrReservedDIF},
		{"0D13FF", ErrLVAR},
		{"0D13", ErrTruncated},
		{"047C05414243", ErrTruncated},
	}
	for _, tc := range tests {
		it := Records(mustHex(t, tc.in))
		var r Record
		for it.Next(&r) {
		}
		if !errors.Is(it.Err(), tc.want) {
			t.Errorf("%s: %v, want %v", tc.in, it.Err(), tc.want)
		}
	}
	r := Record{Type: TypeBCD4, Data: []byte{0x1A, 0x00}}
	if _, err := r.Int(); !errors.Is(err, ErrValue) {
		t.Errorf("bad BCD: %v", err)
	}
	for _, bits := range []string{"0000C07F", "0000807F", "000080FF"} { // NaN, +Inf, -Inf
		r := Record{Type: TypeReal32, Data: mustHex(t, bits)}
		if _, err := r.Scaled(); !errors.Is(err, ErrValue) {
			t.Errorf("real %s: %v", bits, err)
		}
	}
}

func TestIterAllocs(t *testing.T) {
	b := mustHex(t, kamFull)
	var r Record
	n := testing.AllocsPerRun(100, func() {
		it := Records(b)
		for it.Next(&r) {
			_, _ = r.Scaled()
		}
	})
	if n != 0 {
		t.Fatalf("%.1f allocations per walk", n)
	}
}

func BenchmarkRecords(b *testing.B) {
	buf := mustHex(b, kamFull)
	var r Record
	b.ReportAllocs()
	for b.Loop() {
		it := Records(buf)
		for it.Next(&r) {
		}
	}
}
