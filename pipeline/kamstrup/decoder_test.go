package kamstrup

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// vector is one telegram of the project's test vectors.
type vector = testvectors.Vector

func loadVectors(t testing.TB) []vector {
	t.Helper()
	vs := testvectors.Load(t)
	if len(vs) < 48 {
		t.Fatalf("%d vectors", len(vs))
	}
	return vs
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keysOf(t testing.TB, v vector) wmbus.KeyFunc {
	if v.Key == nil {
		return nil
	}
	k := mustHex(t, *v.Key)
	return func(wmbus.ID) ([]byte, bool) { return k, true }
}

// decodeOne runs a vector through a fresh parser and decoder that know
// only the shipped formats.
func decodeOne(t *testing.T, v vector) (Reading, error) {
	t.Helper()
	var p wmbus.Parser
	var tg wmbus.Telegram
	if err := p.Parse(mustHex(t, v.Frame), keysOf(t, v), &tg); err != nil {
		t.Fatalf("parse: %v", err)
	}
	rs, err := NewDecoder().Decode(&tg, time.Time{}, wmbus.Radio{})
	if err != nil {
		return Reading{}, err
	}
	if len(rs) != 1 {
		t.Fatalf("%d readings", len(rs))
	}
	return rs[0], nil
}

func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			r, err := decodeOne(t, v)
			if v.ExpectError != "" {
				if !errors.Is(err, ErrDataCRC) || !strings.Contains(err.Error(), v.ExpectError) {
					t.Fatalf("err = %v, want %q", err, v.ExpectError)
				}
				if id, ok := wmbus.ErrorMeter(err); !ok || id.String() != v.ExpectedWM["id"] {
					t.Errorf("error names meter %v", id)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Kind != "" && r.Kind.String() != v.Kind {
				t.Errorf("kind %s, want %s", r.Kind, v.Kind)
			}
			if v.Expected != nil {
				checkExpected(t, r, v.Expected)
			}
			if v.ExpectedWM != nil {
				checkWmbusmeters(t, r, v.ExpectedWM)
			}
			if _, err := json.Marshal(r); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// checkExpected compares exactly: every field, and no quantity beyond
// those listed.
func checkExpected(t *testing.T, r Reading, raw json.RawMessage) {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	quantity := map[string]Quantity{}
	for q := range NumQuantities {
		quantity[Quantities[q].Key] = q
	}
	listed := 0
	for k, want := range e {
		var got any
		switch k {
		case "id":
			got = r.ID.String()
		case "manufacturer":
			got = r.Manufacturer.String()
		case "version":
			got = fmt.Sprintf("0x%02X", r.Version)
		case "device_type":
			got = fmt.Sprintf("0x%02X", r.DeviceType)
		case "info_code":
			got = fmt.Sprintf("0x%04X", r.Info.Raw)
		case "alarms_now":
			got = fmt.Sprint(r.ActiveAlarms())
			want = fmt.Sprint(want)
		case "dry_duration":
			d, ok := r.Info.Duration(Dry)
			if !ok {
				t.Errorf("no dry duration")
			}
			got = DurationText[d]
		default:
			q, ok := quantity[k]
			if !ok {
				t.Fatalf("expectation %q has no meaning here", k)
			}
			listed++
			got = valueOf(t, r, q)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	present := 0
	for q := range NumQuantities {
		if r.Has(q) {
			present++
		}
	}
	if present != listed {
		t.Errorf("%d quantities reported, %d expected", present, listed)
	}
	if r.Unmapped != 0 {
		t.Errorf("%d unmapped records", r.Unmapped)
	}
	if r.Model == UnknownModel {
		t.Errorf("model unknown")
	}
}

// valueOf returns a quantity as the vectors write it: a number, or nil
// for "not measured"; it fails when the quantity is absent.
func valueOf(t *testing.T, r Reading, q Quantity) any {
	t.Helper()
	v, ok := r.Get(q)
	if !ok {
		t.Errorf("%s not reported", Quantities[q].Key)
		return "absent"
	}
	if !v.Known {
		return nil
	}
	return v.V
}

// wmbusmeters names fields after the driver, not the record; these are
// the translations by meaning (see the report for the reasoning).
var wmFields = map[string][]Quantity{
	"total_m3":                              {Total},
	"target_m3":                             {Target},
	"flow_m3h":                              {Flow},
	"max_flow_m3h":                          {MaxFlow},
	"min_flow_m3h":                          {MinFlow},
	"flow_temperature_c":                    {MinWaterTemp, MinWaterTempMonth}, // whichever the frame has
	"min_flow_temperature_c":                {MinWaterTemp},
	"max_flow_temperature_c":                {MaxWaterTemp},
	"min_external_temperature_last_month_c": {MinAmbientTempMonth},
	"min_external_temperature_last_day_c":   {MinAmbientTemp},
	"max_external_temperature_c":            {MaxAmbientTempMonth},
}

var wmDurations = map[string]Alarm{"time_dry": Dry, "time_reversed": Reverse, "time_leaking": Leak, "time_bursting": Burst}

func checkWmbusmeters(t *testing.T, r Reading, e map[string]any) {
	t.Helper()
	for k, want := range e {
		if a, ok := wmDurations[k]; ok {
			d, ok := r.Info.Duration(a)
			got := ""
			if ok && d != 0 {
				got = DurationText[d]
			}
			if got != want {
				t.Errorf("%s %q, want %q", k, got, want)
			}
			continue
		}
		switch {
		case k == "id":
			if r.ID.String() != want {
				t.Errorf("id %s, want %v", r.ID, want)
			}
		case k == "target_date":
			if got := r.TargetDate.Format(time.DateOnly); got != want {
				t.Errorf("target_date %s, want %v", got, want)
			}
		case k == "current_status":
			if got := strings.Join(r.ActiveAlarms(), " "); got != want {
				t.Errorf("current_status %q, want %q", got, want)
			}
		case k == "status":
			checkStatus(t, r, want.(string))
		default:
			qs, ok := wmFields[k]
			if !ok {
				t.Fatalf("expectation %q has no meaning here", k)
			}
			var q Quantity
			n := 0
			for _, c := range qs {
				if r.Has(c) {
					q = c
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s: %d candidate quantities reported", k, n)
				continue
			}
			v, _ := r.Get(q)
			w := want.(float64)
			if w == 127 && Quantities[q].Class == Temperature {
				if v.Known {
					t.Errorf("%s (%s) = %v, want not measured", k, Quantities[q].Key, v.V)
				}
				continue
			}
			if !v.Known || math.Abs(v.V-w) > 1e-9 {
				t.Errorf("%s (%s) = %+v, want %v", k, Quantities[q].Key, v, w)
			}
		}
	}
}

// checkStatus: "OK" = no flag and no other bit; "DRY" etc. = those flags;
// "ERROR_FLAGS_800" = raw bits 0x800 among the unnamed ones.
func checkStatus(t *testing.T, r Reading, want string) {
	t.Helper()
	active := r.ActiveAlarms()
	switch {
	case want == "OK":
		if len(active) != 0 || r.Info.Other() != 0 {
			t.Errorf("status OK, but alarms %v other %#x", active, r.Info.Other())
		}
	case strings.HasPrefix(want, "ERROR_FLAGS_"):
		bits, err := strconv.ParseUint(strings.TrimPrefix(want, "ERROR_FLAGS_"), 16, 32)
		if err != nil {
			t.Fatal(err)
		}
		if r.Info.Other()&uint32(bits) != uint32(bits) {
			t.Errorf("status %s: other flags %#x", want, r.Info.Other())
		}
	default:
		if got := strings.Join(active, " "); got != want {
			t.Errorf("status %q, want %q", got, want)
		}
	}
}

// The seed meter's 35 telegrams through one decoder, in capture order.
func TestSeedMeterStream(t *testing.T) {
	var p wmbus.Parser
	var tg wmbus.Telegram
	d := NewDecoder()
	n := 0
	for _, v := range loadVectors(t) {
		if !strings.HasPrefix(v.Name, "flowiq2101-74493770") {
			continue
		}
		if err := p.Parse(mustHex(t, v.Frame), keysOf(t, v), &tg); err != nil {
			t.Fatal(err)
		}
		rs, err := d.Decode(&tg, time.Time{}, wmbus.Radio{})
		if err != nil || len(rs) != 1 {
			t.Fatalf("%s: %d readings, %v", v.Name, len(rs), err)
		}
		r := rs[0]
		if r.Model != "flowIQ 2101" || r.Radio.Format != "B" || !r.Info.Active(Dry) {
			t.Errorf("%s: %+v", v.Name, r)
		}
		n++
	}
	if n != 35 {
		t.Fatalf("%d telegrams", n)
	}
	// The shipped table already holds this meter's format: nothing learned.
	if d.Learned() != 0 || d.Pending() != 0 {
		t.Errorf("learned %d pending %d", d.Learned(), d.Pending())
	}
}

func TestKnownFormatsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range KnownFormats {
		h := mustHeads(k.Heads)
		c := wmbus.CRC(h)
		if got := fmt.Sprintf("%02X%02X", byte(c), byte(c>>8)); got != k.Signature {
			t.Errorf("%s: signature of %s is %s", k.Signature, k.Heads, got)
		}
		if seen[k.Signature] {
			t.Errorf("%s twice", k.Signature)
		}
		seen[k.Signature] = true
		// Every record of a shipped format has a meaning.
		d := NewDecoder()
		var p wmbus.Parser
		var tg wmbus.Telegram
		frame := append(mustHex(t, "00442D2C785634121F168D2000"+"00000000"+"0000"), 0x78)
		frame = append(frame, fullData(h)...)
		frame[0] = byte(len(frame) - 1)
		c = wmbus.CRC(frame[19:])
		frame[17], frame[18] = byte(c), byte(c>>8)
		if err := p.Parse(frame, nil, &tg); err != nil {
			t.Fatal(err)
		}
		rs, err := d.Decode(&tg, time.Time{}, wmbus.Radio{})
		if err != nil || len(rs) != 1 || rs[0].Unmapped != 0 {
			t.Errorf("%s: %v %+v", k.Signature, err, rs)
		}
	}
}

// fullData interleaves record headers with plausible data (zeros; a
// valid date for dates).
func fullData(heads []byte) []byte {
	var out []byte
	for i := 0; i < len(heads); {
		j := i + 1
		for heads[j-1]&0x80 != 0 { // DIFEs
			j++
		}
		j++                        // VIF
		for heads[j-1]&0x80 != 0 { // VIFEs
			j++
		}
		out = append(out, heads[i:j]...)
		n := []int{0, 1, 2, 3, 4, 4, 6, 8}[heads[i]&0x07]
		if heads[j-1] == 0x6C {
			out = append(out, 0x81, 0x2A)
		} else {
			out = append(out, make([]byte, n)...)
		}
		i = j
	}
	return out
}

func TestModels(t *testing.T) {
	tests := []struct {
		m    wmbus.Manufacturer
		v, d uint8
		want string
	}{
		{wmbus.KAM, 0x1B, 0x16, "MULTICAL 21"}, {wmbus.KAM, 0x1B, 0x06, "MULTICAL 21"},
		{wmbus.KAM, 0x1F, 0x16, "flowIQ 2101"}, {wmbus.KAM, 0x1D, 0x16, "flowIQ 3100"},
		{wmbus.KAW, 0x3C, 0x16, "flowIQ 2200"}, {wmbus.KAW, 0x3A, 0x16, "flowIQ 2200"},
		{wmbus.KAW, 0x42, 0x06, "KWM 3230"}, {wmbus.KAM, 0x99, 0x16, UnknownModel},
	}
	for _, tc := range tests {
		if got := ModelName(tc.m, tc.v, tc.d); got != tc.want {
			t.Errorf("%v %02X %02X = %s", tc.m, tc.v, tc.d, got)
		}
	}
}

// plainFrame builds a CRC-less ELL 0x8D plaintext telegram of meter id
// (version v) around application data app (CI included).
func plainFrame(t *testing.T, id string, v byte, acc byte, app []byte) []byte {
	b := mustHex(t, "00442D2C"+id[6:8]+id[4:6]+id[2:4]+id[0:2]+"00168D20"+fmt.Sprintf("%02X", acc)+"00000000"+"0000")
	b[8] = v
	b = append(b, app...)
	b[0] = byte(len(b) - 1)
	c := wmbus.CRC(b[19:])
	b[17], b[18] = byte(c), byte(c>>8)
	return b
}

// A format the table does not know: compact frames wait, the full frame
// releases them, the learned format survives a save and load.
func TestLearnQueueAndPersist(t *testing.T) {
	// Records: info, total, target, current flow (not a shipped format).
	heads := mustHex(t, "02FF2004134413023B")
	data := mustHex(t, "0000"+"10270000"+"88130000"+"2300")
	sig := wmbus.CRC(heads)
	full := append([]byte{0x78}, fullData2(heads, data)...)
	dcrc := wmbus.CRC(fullData2(heads, data))
	compact := append([]byte{0x79, byte(sig), byte(sig >> 8), byte(dcrc), byte(dcrc >> 8)}, data...)

	var p wmbus.Parser
	var tg wmbus.Telegram
	d := NewDecoder()
	decode := func(frame []byte) ([]Reading, error) {
		t.Helper()
		if err := p.Parse(frame, nil, &tg); err != nil {
			t.Fatal(err)
		}
		return d.Decode(&tg, time.Time{}, wmbus.Radio{})
	}
	// Unknown version: still decodes, model unknown.
	for acc := byte(1); acc <= 3; acc++ {
		rs, err := decode(plainFrame(t, "11112222", 0x77, acc, compact))
		if !errors.Is(err, ErrAwaitingFullFrame) || len(rs) != 0 || !strings.Contains(err.Error(), "meter 11112222: waiting for a full frame") {
			t.Fatalf("compact before full: %d readings, %v", len(rs), err)
		}
	}
	// Another meter with the same format waits too.
	if _, err := decode(plainFrame(t, "33334444", 0x1B, 9, compact)); !errors.Is(err, ErrAwaitingFullFrame) {
		t.Fatal(err)
	}
	if d.Pending() != 4 {
		t.Fatalf("pending %d", d.Pending())
	}
	rs, err := decode(plainFrame(t, "11112222", 0x77, 4, full))
	if err != nil || len(rs) != 5 {
		t.Fatalf("full frame: %d readings, %v", len(rs), err)
	}
	for i, r := range rs {
		wantKind := Compact
		if i == 4 {
			wantKind = Full
		}
		v, _ := r.Get(Flow)
		if r.Kind != wantKind || v.V != 0.035 || r.Model != UnknownModel && r.ID.String() == "11112222" {
			t.Errorf("reading %d: %s acc %d flow %v model %s", i, r.Kind, r.AccessNumber, v, r.Model)
		}
	}
	if rs[3].ID.String() != "33334444" || rs[3].Model != "MULTICAL 21" || rs[0].AccessNumber != 1 || rs[2].AccessNumber != 3 {
		t.Errorf("order: %v %v %v", rs[0].AccessNumber, rs[2].AccessNumber, rs[3].ID)
	}
	if d.Pending() != 0 || d.Learned() != 1 || !d.Dirty() {
		t.Fatalf("pending %d learned %d", d.Pending(), d.Learned())
	}

	path := filepath.Join(t.TempDir(), "formats.txt")
	if err := d.Save(path); err != nil {
		t.Fatal(err)
	}
	d2 := NewDecoder()
	if err := d2.Load(path); err != nil || d2.Learned() != 1 {
		t.Fatalf("load: %v, %d learned", err, d2.Learned())
	}
	if err := p.Parse(plainFrame(t, "55556666", 0x1F, 7, compact), nil, &tg); err != nil {
		t.Fatal(err)
	}
	if rs, err := d2.Decode(&tg, time.Time{}, wmbus.Radio{}); err != nil || len(rs) != 1 {
		t.Fatalf("after load: %v", err)
	}
	if err := NewDecoder().Load(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	for _, bad := range []string{"EB61 02FF2004134413A1015B8101E7FF0E\n", "zz\n", "0000 2F2F\n"} {
		path := filepath.Join(t.TempDir(), "bad")
		os.WriteFile(path, []byte("# c\n\n"+bad), 0o644)
		if err := NewDecoder().Load(path); !errors.Is(err, ErrFormatsFile) || !strings.Contains(err.Error(), "line 3") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func fullData2(heads, data []byte) []byte {
	// Split after each record: 02FF20|0413|4413|023B with 2,4,4,2 bytes.
	hs := [][]byte{heads[0:3], heads[3:5], heads[5:7], heads[7:9]}
	ls := []int{2, 4, 4, 2}
	var out []byte
	for i, h := range hs {
		out = append(out, h...)
		out = append(out, data[:ls[i]]...)
		data = data[ls[i]:]
	}
	return out
}

func TestQueueBound(t *testing.T) {
	compact := []byte{0x79, 0x01, 0x02, 0x03, 0x04, 0x00}
	var p wmbus.Parser
	var tg wmbus.Telegram
	d := NewDecoder()
	var err error
	for acc := 0; acc < MaxQueuedPerMeter+1; acc++ {
		if e := p.Parse(plainFrame(t, "11112222", 0x1F, byte(acc), compact), nil, &tg); e != nil {
			t.Fatal(e)
		}
		_, err = d.Decode(&tg, time.Time{}, wmbus.Radio{})
	}
	if !errors.Is(err, ErrAwaitingFullFrame) || !errors.Is(err, ErrQueueFull) || !strings.Contains(err.Error(), "access number 0) dropped") || d.Pending() != MaxQueuedPerMeter {
		t.Fatalf("%v, pending %d", err, d.Pending())
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		app  string
		want error
		msg  string
	}{
		{"short compact", "79EB61", ErrFrame, "no signature"},
		{"compact misfit", "79EB61000000", ErrFrame, "does not fit format EB61"},
		{"data CRC", "79EB610000" + "4100D322000055210000211C", ErrDataCRC, "compact data CRC mismatch"},
		{"bad full frame", "780413D322", ErrFrame, "record cut off"},
		{"bad date", "78426C0000", ErrFrame, "target date"},
		{"bad info width", "7803FF20000000", ErrFrame, "info code"},
		{"no readings CI", "7A00000000", ErrUnsupportedCI, ""},
	}
	var p wmbus.Parser
	var tg wmbus.Telegram
	for _, tc := range tests {
		if err := p.Parse(plainFrame(t, "74493770", 0x1F, 1, mustHex(t, tc.app)), nil, &tg); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.name == "no readings CI" {
			tg.AppCI = 0xA0
		}
		_, err := NewDecoder().Decode(&tg, time.Time{}, wmbus.Radio{})
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "meter 74493770: ") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	mix := benchMix(t)
	var p wmbus.Parser
	var tg wmbus.Telegram
	d := NewDecoder()
	run := func() {
		for _, m := range mix {
			if err := p.Parse(m.frame, m.keys, &tg); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Decode(&tg, time.Time{}, wmbus.Radio{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	run()
	if n := testing.AllocsPerRun(20, run); n != 0 {
		t.Fatalf("%.1f allocations per mix", n)
	}
}
