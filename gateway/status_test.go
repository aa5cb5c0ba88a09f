package gateway

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// feeder plays telegrams into a Status the way the pipeline does: the
// link layer with the meter list's keys, then the Kamstrup decoder.
type feeder struct {
	s      *Status
	list   *meters.Snapshot
	parser wmbus.Parser
	tel    wmbus.Telegram
	dec    *kamstrup.Decoder
}

func newFeeder(t testing.TB, s *Status, listTOML string) *feeder {
	t.Helper()
	list, err := meters.Parse([]byte(listTOML), "meters.toml")
	if err != nil {
		t.Fatal(err)
	}
	list.Path = "meters.toml"
	s.SetMeters(list)
	return &feeder{s: s, list: list, dec: kamstrup.NewDecoder()}
}

func (fd *feeder) frame(t testing.TB, hexFrame string, at time.Time, radio wmbus.Radio) {
	t.Helper()
	data, err := hex.DecodeString(hexFrame)
	if err != nil {
		t.Fatal(err)
	}
	f := pipeline.Frame{Data: data, Time: at, Radio: radio}
	perr := fd.parser.Parse(data, fd.list.Key, &fd.tel)
	if perr != nil {
		fd.s.Frame(f, nil, perr)
		fd.s.Problem(perr)
		return
	}
	fd.s.Frame(f, &fd.tel, nil)
	rs, derr := fd.dec.Decode(&fd.tel, at, radio)
	if derr != nil {
		fd.s.Problem(derr)
	}
	for i := range rs {
		fd.s.Reading(&rs[i])
	}
}

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func key(t testing.TB, prefix string) string {
	for _, v := range testvectors.Load(t) {
		if strings.HasPrefix(v.Name, prefix) && v.Key != nil {
			return *v.Key
		}
	}
	t.Fatalf("no key for %s", prefix)
	return ""
}

func meterTOML(id, key string) string {
	s := fmt.Sprintf("[[meter]]\nid = %q\nname = \"Kitchen\"\n", id)
	if key != "" {
		s += fmt.Sprintf("key = %q\n", key)
	}
	return s
}

func TestStatusMyMeters(t *testing.T) {
	seed := testvectors.Frames(t, testvectors.Seed74493770, 35)
	good := key(t, testvectors.Seed74493770)
	wrong := strings.Repeat("00", 16)
	level := wmbus.Radio{Mode: "C1", LevelDBFS: -31.24, SNRdB: 17.5}
	tests := []struct {
		name   string
		key    string
		frames []string
		every  time.Duration // between telegrams
		after  time.Duration // from the last telegram to "now"
		// awaiting: the decoder reports the last compact frame's format
		// unknown (every real vector's format is in the built-in table).
		awaiting bool
		state    string
		check    func(t *testing.T, m MyMeterDoc)
	}{
		{name: "no telegram yet", key: good, state: StateNoTelegram, check: func(t *testing.T, m MyMeterDoc) {
			if m.LastSeen != nil || m.Reception1h != nil || m.Reading != nil {
				t.Errorf("an unheard meter shows data: %+v", m)
			}
		}},
		{name: "all 35 telegrams", key: good, frames: seed, every: 16 * time.Second, state: StateReceiving,
			check: func(t *testing.T, m MyMeterDoc) {
				var r struct {
					Total  float64  `json:"total_m3"`
					Alarms []string `json:"alarms"`
					Dry    string   `json:"dry_duration"`
				}
				if err := json.Unmarshal(m.Reading, &r); err != nil {
					t.Fatal(err)
				}
				if r.Total != 8.915 || len(r.Alarms) != 1 || r.Alarms[0] != "DRY" || r.Dry != "4-7 days" {
					t.Errorf("reading %s", m.Reading)
				}
				if m.Telegrams != 35 || m.FullPhase == nil || *m.FullPhase != 5 {
					t.Errorf("telegrams %d, full-frame phase %v; want 35 and 5 (full frames at B5, E5, 45, BD, F5)", m.Telegrams, m.FullPhase)
				}
				if m.LevelDBFS == nil || *m.LevelDBFS != -31.2 || *m.SNRdB != 17.5 {
					t.Errorf("level %v SNR %v", m.LevelDBFS, m.SNRdB)
				}
			}},
		{name: "first five: one gap of 42", key: good, frames: seed[:5], every: 16 * time.Second, state: StateReceiving,
			check: func(t *testing.T, m MyMeterDoc) {
				// B4 B5 B6 B7 E2: 5 received of 1+1+1+1+43 sent. The gap
				// is replayed 16 s apart, so the interval is 16 s.
				if m.Reception1h == nil || *m.Reception1h != 10.6 || *m.Reception24h != 10.6 {
					t.Errorf("reception %v/%v, want 10.6 %% (5 of 47)", m.Reception1h, m.Reception24h)
				}
				if m.IntervalS == nil || *m.IntervalS != 16 {
					t.Errorf("interval %v, want 16 s", m.IntervalS)
				}
			}},
		{name: "compact frame of an unknown format", key: good, frames: seed[:1], awaiting: true, state: StateAwaiting},
		{name: "wrong key", key: wrong, frames: seed[:3], every: 16 * time.Second, state: StateWrongKey},
		{name: "no key", frames: seed[:3], every: 16 * time.Second, state: StateNoKey, check: func(t *testing.T, m MyMeterDoc) {
			if m.Reception1h == nil || *m.Reception1h != 100 {
				t.Errorf("reception of a meter without key %v, want 100 (the access number is readable)", m.Reception1h)
			}
		}},
		{name: "silent", key: good, frames: seed[:8], every: 16 * time.Second, after: 31 * time.Minute, state: StateSilent,
			check: func(t *testing.T, m MyMeterDoc) {
				if m.SilentMinutes != 31 {
					t.Errorf("silent for %d min, want 31", m.SilentMinutes)
				}
				if m.Reception1h == nil || m.Reception24h == nil {
					t.Error("a silent meter lost its reception history")
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{now: t0}
			s, err := NewStatus(StatusOptions{Now: c.Now})
			if err != nil {
				t.Fatal(err)
			}
			fd := newFeeder(t, s, meterTOML("74493770", tc.key))
			for i, f := range tc.frames {
				c.now = t0.Add(time.Duration(i) * tc.every)
				if i == 4 && len(tc.frames) == 5 {
					c.now = t0.Add(3*tc.every + 43*tc.every) // B7 → E2
				}
				fd.frame(t, f, c.now, level)
			}
			if tc.awaiting {
				s.Problem(&wmbus.MeterError{ID: 0x74493770, Err: fmt.Errorf("%w: format 0509 unknown; frame kept", kamstrup.ErrAwaitingFullFrame)})
			}
			c.now = c.now.Add(tc.after)
			d := s.Snapshot()
			if len(d.Meters) != 1 {
				t.Fatalf("%d meters", len(d.Meters))
			}
			m := d.Meters[0]
			if m.State != tc.state {
				t.Errorf("state %q, want %q", m.State, tc.state)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestStatusAccessNumberGaps(t *testing.T) {
	tests := []struct {
		name string
		accs []uint8
		want float64
	}{
		{"consecutive", []uint8{10, 11, 12, 13}, 100},
		{"wraps", []uint8{0xFE, 0xFF, 0x00, 0x01}, 100},
		{"duplicate ignored", []uint8{10, 11, 11, 12}, 100},
		{"every other", []uint8{10, 12, 14, 16}, 57.1}, // 4 of 7
		{"one missed over the wrap", []uint8{0xFF, 0x01}, 66.7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &myMeter{phase: -1}
			at := t0
			for i, a := range tc.accs {
				if i > 0 {
					at = at.Add(time.Duration(a-tc.accs[i-1]) * 16 * time.Second)
				}
				m.countTelegram(at, a)
			}
			got, ok := m.qualityOver(at, time.Hour)
			if !ok || got != tc.want {
				t.Errorf("quality %v %v, want %v", got, ok, tc.want)
			}
		})
	}
	// After 3 h of silence the 8-bit counter wrapped twice: the time says so.
	m := &myMeter{phase: -1}
	at := t0
	for i := range 9 {
		m.countTelegram(at, uint8(i))
		at = at.Add(16 * time.Second)
	}
	at = at.Add(-16*time.Second + 675*16*time.Second) // 675 telegrams later
	m.countTelegram(at, uint8((8+675)%256))
	if got, _ := m.qualityOver(at, 24*time.Hour); got != 1.5 { // 10 of 684
		t.Errorf("after a long silence: %v %%, want 1.5 (10 of 684)", got)
	}
}

func TestStatusNearbyAndProblems(t *testing.T) {
	c := &clock{now: t0}
	s, _ := NewStatus(StatusOptions{Now: c.Now})
	fd := newFeeder(t, s, meterTOML("74493770", key(t, testvectors.Seed74493770)))
	// An encrypted neighbour without key, plaintext neighbours, another
	// maker, a damaged frame.
	// 76348799 sends in plain text, then encrypted (the newest counts).
	fd.frame(t, vectorFrame(t, "wmbusmeters-1"), t0, wmbus.Radio{})
	fd.frame(t, vectorFrame(t, "wmbusmeters-9"), t0, wmbus.Radio{})
	fd.frame(t, vectorFrame(t, "wmbusmeters-7"), t0, wmbus.Radio{})
	fd.frame(t, "14449726667788990107"+"7A100000000C1378563412", t0, wmbus.Radio{Mode: "T1"})
	broken := []byte(testvectors.Frames(t, testvectors.Seed74493770, 35)[1]) // format B, with CRCs
	broken[40] = "01"[(broken[40]-'0'+1)%2]
	fd.frame(t, string(broken), t0, wmbus.Radio{})
	d := s.Snapshot()
	byID := map[string]NearbyDoc{}
	for _, n := range d.Nearby {
		byID[n.ID] = n
	}
	tests := []struct {
		id, manufacturer string
		encrypted        bool
		kamstrup         bool
		typeName         string
	}{
		{"76348799", "KAM", true, true, "cold water"},
		{"99887766", "ITW", false, false, "water"},
		{"23813076", "KAW", false, true, "cold water"},
	}
	for _, tc := range tests {
		n, ok := byID[tc.id]
		if !ok {
			t.Errorf("meter %s not nearby: %v", tc.id, d.Nearby)
			continue
		}
		if n.Manufacturer != tc.manufacturer || n.Encrypted == nil || *n.Encrypted != tc.encrypted ||
			n.Kamstrup != tc.kamstrup || n.TypeName != tc.typeName || n.InList {
			t.Errorf("nearby %s: %+v", tc.id, n)
		}
	}
	var texts []string
	for _, p := range d.Problems {
		texts = append(texts, p.Meter+" "+p.Kind+": "+p.Text)
		if strings.Contains(p.Text, "no key") {
			t.Errorf("a neighbour's missing key is listed as a problem: %s", p.Text)
		}
	}
	want := []string{"74493770 corrupted: meter 74493770: payload CRC mismatch", "23813076 compact data CRC: meter 23813076: compact data CRC mismatch"}
	if len(texts) != 2 || !strings.HasPrefix(texts[0], want[0]) || !strings.HasPrefix(texts[1], want[1]) {
		t.Errorf("problems, newest first:\n%s\nwant the damaged frame and wmbusmeters-7's compact data CRC", strings.Join(texts, "\n"))
	}
	if d.Radio.CRCFailures != 2 || d.Radio.FramesPerMinute["text"] == 0 || d.Radio.FramesPerMinute["T1"] == 0 {
		t.Errorf("radio %+v", d.Radio)
	}
}

func vectorFrame(t testing.TB, name string) string {
	for _, v := range testvectors.Load(t) {
		if v.Name == name {
			return v.Frame
		}
	}
	t.Fatalf("no vector %s", name)
	return ""
}

// neighbours builds n encrypted telegrams of distinct meters from a real
// one: its CRC-less form with the ID and access number replaced. Without
// their keys they are what a busy neighbourhood sounds like.
func neighbours(t testing.TB, n int) [][]byte {
	plain, _, err := wmbus.Detect(mustHex(t, testvectors.Frames(t, testvectors.Seed74493770, 35)[0]))
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range out {
		b := append([]byte(nil), plain...)
		id := uint32(0x10000000) + uint32(i/1000%10)<<12 + uint32(i/100%10)<<8 + uint32(i/10%10)<<4 + uint32(i%10)
		b[4], b[5], b[6], b[7] = byte(id), byte(id>>8), byte(id>>16), byte(id>>24)
		out[i] = b
	}
	return out
}

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStatusBounds(t *testing.T) {
	c := &clock{now: t0}
	s, _ := NewStatus(StatusOptions{Now: c.Now})
	newFeeder(t, s, "")
	var p wmbus.Parser
	var tel wmbus.Telegram
	frames := neighbours(t, MaxNearby+50)
	for i, b := range frames {
		err := p.ParseForm(b, wmbus.FormatNone, nil, &tel)
		if !errors.Is(err, wmbus.ErrNoKey) {
			t.Fatalf("frame %d: %v", i, err)
		}
		s.Frame(pipeline.Frame{Data: b, Stripped: true, Time: t0.Add(time.Duration(i) * time.Second)}, nil, err)
	}
	d := s.Snapshot()
	if len(d.Nearby) != MaxNearby {
		t.Fatalf("%d nearby meters, want the bound %d", len(d.Nearby), MaxNearby)
	}
	if d.Nearby[0].ID != "10001049" || d.Nearby[MaxNearby-1].ID != "10000050" {
		t.Errorf("newest %s, oldest %s: want 10001049 and 10000050 (the 50 least recently heard evicted)", d.Nearby[0].ID, d.Nearby[MaxNearby-1].ID)
	}
	for i := range 2 * MaxProblems {
		s.Problem(fmt.Errorf("hex:- line %d: %w", i, wmbus.ErrHexLine))
	}
	if n := len(s.Snapshot().Problems); n != MaxProblems {
		t.Errorf("%d problems kept, want %d", n, MaxProblems)
	}
}

func TestStatusChartsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{now: t0}
	s, err := NewStatus(StatusOptions{Now: c.Now, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	fd := newFeeder(t, s, meterTOML("74493770", key(t, testvectors.Seed74493770)))
	for i, f := range testvectors.Frames(t, testvectors.Seed74493770, 35) {
		c.now = t0.Add(time.Duration(i) * 20 * time.Minute)
		fd.frame(t, f, c.now, wmbus.Radio{Mode: "C1", LevelDBFS: -40 + float64(i), SNRdB: 12})
	}
	before := s.Charts()
	if err := s.charts.save(); err != nil {
		t.Fatal(err)
	}
	s2, err := NewStatus(StatusOptions{Now: c.Now, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	newFeeder(t, s2, meterTOML("74493770", ""))
	after := s2.Charts()
	b1, _ := json.Marshal(before)
	b2, _ := json.Marshal(after)
	if string(b1) != string(b2) {
		t.Errorf("charts after restart differ:\n%s\n%s", b1, b2)
	}
	// 35 telegrams 20 min apart: 35 signal points, one volume point per
	// half hour (23 half hours), the last at 8.915.
	ch := before[0]
	if len(ch.Signal) != 35 || len(ch.Volume) != 23 || ch.Volume[len(ch.Volume)-1][1] != 8.915 || ch.Signal[34][1] != -6 {
		t.Errorf("charts: %d signal, %d volume points: %v", len(ch.Signal), len(ch.Volume), ch)
	}
}

// loadedStatus is the benchmark's neighbourhood: 330 meters heard, all of
// them in the meter list (the costliest case), each with a reading, full
// charts, 24 h of reception history, and a full problem list.
func loadedStatus(b testing.TB) (*Status, [][]byte, *clock) {
	const n = 330
	c := &clock{now: t0}
	s, _ := NewStatus(StatusOptions{Now: c.Now})
	var toml strings.Builder
	frames := neighbours(b, n)
	for _, f := range frames {
		fmt.Fprintf(&toml, "[[meter]]\nid = \"%s\"\n", wmbus.ID(uint32(f[4])|uint32(f[5])<<8|uint32(f[6])<<16|uint32(f[7])<<24))
	}
	newFeeder(b, s, toml.String())
	var r kamstrup.Reading
	var p wmbus.Parser
	var tel wmbus.Telegram
	dec := kamstrup.NewDecoder()
	list, _ := meters.Parse([]byte(meterTOML("74493770", key(b, testvectors.Seed74493770))), "x")
	full := mustHex(b, testvectors.Frames(b, testvectors.Seed74493770, 35)[1])
	if err := p.Parse(full, list.Key, &tel); err != nil {
		b.Fatal(err)
	}
	rs, err := dec.Decode(&tel, t0, wmbus.Radio{})
	if err != nil || len(rs) != 1 {
		b.Fatal(err)
	}
	r = rs[0]
	errs := make([]error, len(frames))
	for i, f := range frames {
		if errs[i] = p.ParseForm(f, wmbus.FormatNone, nil, &tel); !errors.Is(errs[i], wmbus.ErrNoKey) {
			b.Fatal(errs[i])
		}
	}
	// 7 days, each meter a telegram every 16 s compressed to one per
	// 5 minutes for the history plus readings every half hour.
	for step := range 7 * 24 * 12 {
		c.now = t0.Add(time.Duration(step) * 5 * time.Minute)
		for i, f := range frames {
			f[12] = byte(step)
			s.Frame(pipeline.Frame{Data: f, Stripped: true, Time: c.now,
				Radio: wmbus.Radio{Mode: "C1", LevelDBFS: -50 + rand.Float64()*30, SNRdB: 10}}, nil, errs[i])
			if step%6 == 0 {
				r.ID, r.Time = wmbus.ID(uint32(f[4])|uint32(f[5])<<8|uint32(f[6])<<16|uint32(f[7])<<24), c.now
				r.Set(kamstrup.Total, kamstrup.Value{V: 8.915 + float64(step)/1000, Known: true})
				s.Reading(&r)
			}
		}
	}
	for i := range MaxProblems {
		s.Problem(&wmbus.MeterError{ID: wmbus.ID(i), Err: wmbus.ErrWrongKey})
	}
	return s, frames, c
}

// BenchmarkStatusJSON is GET api/status with 330 meters heard.
func BenchmarkStatusJSON(b *testing.B) {
	s, _, _ := loadedStatus(b)
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var err error
		if buf, err = s.AppendStatus(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf))/1024, "KiB/status")
}

// BenchmarkStatusFrame is the decoding goroutine's cost per frame of a
// known meter (100 frames/s is 1 % of a core at 100 µs).
func BenchmarkStatusFrame(b *testing.B) {
	s, frames, c := loadedStatus(b)
	var p wmbus.Parser
	var tel wmbus.Telegram
	errs := make([]error, len(frames))
	for i, f := range frames {
		errs[i] = p.ParseForm(f, wmbus.FormatNone, nil, &tel)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		f := frames[i%len(frames)]
		f[12]++
		c.now = c.now.Add(10 * time.Millisecond)
		s.Frame(pipeline.Frame{Data: f, Stripped: true, Time: c.now, Radio: wmbus.Radio{Mode: "C1", LevelDBFS: -40, SNRdB: 12}}, nil, errs[i%len(frames)])
		i++
	}
}

// BenchmarkStatusMemory reports the heap the status holds for 330 meters
// heard for 7 days at 100 frames/s (every bound reached: charts full,
// 24 h of reception history, a full problem list), after a forced GC.
func BenchmarkStatusMemory(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s, _, _ := loadedStatus(b)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-held")
		runtime.KeepAlive(s)
	}
}

func TestStatusRadioState(t *testing.T) {
	live := &pipeline.HexSource{Spec: "tcp://127.0.0.1:1"}
	file := &pipeline.HexSource{Spec: "frames.txt"}
	tests := []struct {
		name   string
		src    pipeline.Source
		frame  bool          // a frame was heard at t0
		after  time.Duration // now - t0
		health string
		want   string
	}{
		{"hearing", live, true, time.Minute, "ok", "receiving"},
		{"quiet for 6 minutes", live, true, 6 * time.Minute, "ok", "stalled"},
		{"nothing since the start", live, false, 6 * time.Minute, "ok", "stalled"},
		{"a file that ended", file, true, time.Hour, "ok", "receiving"},
		{"input failed", live, true, time.Second, "input failed: tcp://127.0.0.1:1: connection refused", "reconnecting"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{now: t0}
			s, _ := NewStatus(StatusOptions{Now: c.Now, Sources: []pipeline.Source{tc.src}})
			if tc.frame {
				s.Frame(pipeline.Frame{Data: mustHex(t, vectorFrame(t, "wmbusmeters-1")), Time: t0, Radio: wmbus.Radio{Mode: "C1"}}, nil, wmbus.ErrShort)
			}
			s.SetHealth(Health{Source: tc.health})
			c.now = t0.Add(tc.after)
			r := s.Snapshot().Radio
			if r.State != tc.want || r.Inputs[0] != tc.src.Name() {
				t.Errorf("state %q (%s), want %q", r.State, r.StateDetail, tc.want)
			}
		})
	}
}

// demodSource is a source whose demodulator reports its counters and a
// spectrum, as a radio source can (RadioReport).
type demodSource struct{ pipeline.HexSource }

func (demodSource) RadioReport() RadioReport {
	n, floor := int64(3), -92.5
	return RadioReport{Corrected: &n, NoiseFloorDBFS: &floor, Spectrum: &Spectrum{StartHz: 868.5e6, StepHz: 25e3, DBFS: []float32{-90, -60, -91}}}
}

func TestStatusRadioReport(t *testing.T) {
	var p pipeline.Stats
	p.Reopens.Add(2)
	p.Failing.Add(1)
	msg := "rtltcp://pi:1234: connection refused"
	p.LastErr.Store(&msg)
	s, _ := NewStatus(StatusOptions{Sources: []pipeline.Source{&demodSource{}}})
	s.SetPipelineStats(&p)
	b, err := s.AppendStatus(nil)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Radio struct {
			Demodulator map[string]any
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	r := s.Snapshot().Radio
	if r.State != "reconnecting" || r.StateDetail != "input failed: "+msg || r.Reopens != 2 {
		t.Errorf("radio %+v", r)
	}
	if dm := d.Radio.Demodulator; dm["corrected_frames"] != 3.0 || dm["noise_floor_dbfs"] != -92.5 || dm["spectrum"] == nil {
		t.Errorf("demodulator %s", b)
	}
}

// FuzzStatusFrame: any frame the air or a text input delivers, parsed as
// the pipeline parses it, keeps the status consistent and its JSON valid.
func FuzzStatusFrame(f *testing.F) {
	for _, v := range testvectors.Load(f) {
		f.Add(mustHex(f, v.Frame), false)
	}
	f.Add([]byte{0x0A, 0x44, 0x2D, 0x2C}, true)
	c := &clock{now: t0}
	s, _ := NewStatus(StatusOptions{Now: c.Now})
	fd := newFeeder(f, s, meterTOML("74493770", key(f, testvectors.Seed74493770)))
	f.Fuzz(func(t *testing.T, data []byte, stripped bool) {
		c.now = c.now.Add(time.Second)
		var err error
		if stripped {
			err = fd.parser.ParseForm(data, wmbus.FormatNone, fd.list.Key, &fd.tel)
		} else {
			err = fd.parser.Parse(data, fd.list.Key, &fd.tel)
		}
		fr := pipeline.Frame{Data: data, Stripped: stripped, Time: c.now}
		if err != nil {
			s.Frame(fr, nil, err)
			s.Problem(err)
		} else {
			s.Frame(fr, &fd.tel, nil)
		}
		b, jerr := s.AppendStatus(nil)
		if jerr != nil || !json.Valid(b) {
			t.Fatalf("status JSON: %v", jerr)
		}
		if d := s.Snapshot(); len(d.Nearby) > MaxNearby || len(d.Problems) > MaxProblems {
			t.Fatalf("bounds exceeded: %d nearby, %d problems", len(d.Nearby), len(d.Problems))
		}
	})
}
