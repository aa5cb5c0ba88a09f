package pipeline

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// frameOf returns a captured telegram as heard by a receiver: CRC-less,
// as a demodulator or an MQTT receiver delivers it.
func frameOf(t testing.TB, hexFrame, receiver string, snr float64) Frame {
	t.Helper()
	raw, err := hex.DecodeString(hexFrame)
	if err != nil {
		t.Fatal(err)
	}
	plain, _, err := wmbus.Detect(raw)
	if err != nil {
		t.Fatal(err)
	}
	return Frame{Data: plain, Stripped: true, Time: time.Unix(1e9, 0),
		Radio: wmbus.Radio{Mode: "C1", Format: "B", LevelDBFS: -50 + snr, SNRdB: snr, Receiver: receiver}}
}

func TestDedupCopies(t *testing.T) {
	tg := telegrams(t)
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	raw, _ := hex.DecodeString(tg[0])
	withCRCs := Frame{Data: raw, Time: t0, Radio: wmbus.Radio{Receiver: "esp32"}}
	type offer struct {
		f   Frame
		at  time.Duration // after t0
		dup bool
	}
	for _, c := range []struct {
		name   string
		hold   time.Duration
		offers []offer
		at     time.Duration // when Due is asked
		groups int
		best   string
		heard  []string
		late   int64
	}{
		{"three receivers in the hold", time.Second, []offer{
			{frameOf(t, tg[0], "cellar", 10), 0, false},
			{frameOf(t, tg[0], "pit", 25), 20 * time.Millisecond, true},
			{frameOf(t, tg[0], "attic", 3), 900 * time.Millisecond, true},
		}, time.Second, 1, "pit", []string{"cellar", "pit", "attic"}, 0},
		{"a receiver delivering twice (QoS 1) is listed once", time.Second, []offer{
			{frameOf(t, tg[0], "cellar", 10), 0, false},
			{frameOf(t, tg[0], "pit", 12), 10 * time.Millisecond, true},
			{frameOf(t, tg[0], "cellar", 10), 20 * time.Millisecond, true},
		}, time.Second, 1, "pit", []string{"cellar", "pit"}, 0},
		{"held frames are not due early", time.Second, []offer{
			{frameOf(t, tg[0], "cellar", 10), 0, false},
		}, 999 * time.Millisecond, 0, "", nil, 0},
		{"a copy with CRCs is the same telegram", time.Second, []offer{
			{frameOf(t, tg[0], "cellar", 10), 0, false},
			{withCRCs, 10 * time.Millisecond, true},
		}, time.Second, 1, "cellar", []string{"cellar", "esp32"}, 0},
		{"a copy after the hold is late, never a second reading", 0, []offer{
			{frameOf(t, tg[0], "cellar", 10), 0, false},
			{frameOf(t, tg[0], "pit", 20), 30 * time.Second, true},
		}, 40 * time.Second, 1, "cellar", []string{"cellar"}, 1},
		{"after the window the telegram is new again", 0, []offer{
			{frameOf(t, tg[0], "cellar", 10), 0, false},
			{frameOf(t, tg[0], "cellar", 10), DedupWindow + 2*time.Second, false},
		}, DedupWindow + 3*time.Second, 2, "cellar", []string{"cellar"}, 0},
		{"different telegrams of one meter", time.Second, []offer{
			{frameOf(t, tg[0], "cellar", 10), 0, false},
			{frameOf(t, tg[1], "cellar", 10), 0, false},
			{frameOf(t, tg[1], "pit", 12), 0, true},
		}, time.Second, 2, "cellar", []string{"cellar"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := &Dedup{Hold: c.hold}
			var got []*Group
			var heard [][]string
			collect := func(now time.Time) {
				for g := d.Due(now); g != nil; g = d.Due(now) {
					got = append(got, g)
					var names []string
					for _, r := range g.Radios {
						names = append(names, r.Receiver)
					}
					heard = append(heard, names)
				}
			}
			for i, o := range c.offers {
				now := t0.Add(o.at)
				if dup := d.Offer(o.f, now); dup != o.dup {
					t.Errorf("offer %d: copy %v, want %v", i, dup, o.dup)
				}
				if c.hold == 0 {
					collect(now)
				}
			}
			collect(t0.Add(c.at))
			if len(got) != c.groups {
				t.Fatalf("%d frames handed on, want %d", len(got), c.groups)
			}
			if c.groups == 0 {
				return
			}
			if got[0].Frame.Radio.Receiver != c.best {
				t.Errorf("best receiver %q, want %q", got[0].Frame.Radio.Receiver, c.best)
			}
			if fmt.Sprint(heard[0]) != fmt.Sprint(c.heard) {
				t.Errorf("heard by %v, want %v", heard[0], c.heard)
			}
			if !got[0].Frame.Stripped || got[0].Frame.Data[0] != byte(len(got[0].Frame.Data)-1) {
				t.Errorf("frame handed on is not CRC-less: %X", got[0].Frame.Data)
			}
			if s := d.Stats(); s.Late != c.late {
				t.Errorf("late copies %d, want %d", s.Late, c.late)
			}
		})
	}
}

// The decoder sees frames in the order their first copies arrived.
func TestDedupKeepsOrder(t *testing.T) {
	tg := telegrams(t)
	d := &Dedup{Hold: 500 * time.Millisecond}
	t0 := time.Now()
	for i, h := range tg {
		d.Offer(frameOf(t, h, "a", 5), t0.Add(time.Duration(i)*10*time.Millisecond))
		d.Offer(frameOf(t, h, "b", 5), t0.Add(time.Duration(i)*10*time.Millisecond+time.Millisecond))
	}
	if next, ok := d.Next(); !ok || !next.Equal(t0.Add(500*time.Millisecond)) {
		t.Fatalf("next due %v %v", next, ok)
	}
	for i, h := range tg {
		g := d.Due(t0.Add(time.Hour))
		if g == nil {
			t.Fatalf("frame %d missing", i)
		}
		want := frameOf(t, h, "", 0).Data
		if !bytes.Equal(g.Frame.Data, want) || len(g.Radios) != 2 {
			t.Fatalf("frame %d: %X with %d copies", i, g.Frame.Data, len(g.Radios))
		}
	}
	if g := d.Due(t0.Add(time.Hour)); g != nil {
		t.Fatal("more frames than offered")
	}
}

func TestDedupBounded(t *testing.T) {
	d := &Dedup{MaxTracked: 100}
	f := frameOf(t, telegrams(t)[0], "a", 5)
	now := time.Now()
	for i := range 1000 {
		f.Data[len(f.Data)-1] = byte(i)
		f.Data[len(f.Data)-2] = byte(i >> 8)
		d.Offer(f, now)
		d.Due(now)
	}
	if d.Tracked() != 100 || d.Stats().Forgotten != 900 {
		t.Fatalf("tracked %d, forgotten %d", d.Tracked(), d.Stats().Forgotten)
	}
}

func TestDedupAllocatesNothing(t *testing.T) {
	tg := telegrams(t)
	frames := make([]Frame, len(tg))
	for i, h := range tg {
		frames[i] = frameOf(t, h, "a", 5)
	}
	d := &Dedup{Hold: time.Millisecond, Window: time.Second}
	now := time.Now()
	step := func() {
		for _, f := range frames {
			now = now.Add(100 * time.Millisecond)
			d.Offer(f, now)
			f.Radio.Receiver = "b"
			d.Offer(f, now)
			for g := d.Due(now); g != nil; g = d.Due(now) {
			}
		}
	}
	step()
	if n := testing.AllocsPerRun(50, step); n > 0 {
		t.Errorf("%.1f allocations per round of %d telegrams", n, len(frames))
	}
}

// Two hex sources carrying the same telegrams (one with CRCs, one without)
// give one reading per telegram, heard by both.
func TestPipelineDedupTwoSources(t *testing.T) {
	dir := t.TempDir()
	var withCRC, without strings.Builder
	for _, h := range telegrams(t) {
		withCRC.WriteString(h + "\n")
		without.WriteString(hex.EncodeToString(frameOf(t, h, "", 0).Data) + "\n")
	}
	a, b := filepath.Join(dir, "a.hex"), filepath.Join(dir, "b.hex")
	if err := os.WriteFile(a, []byte(withCRC.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte(without.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var readings []kamstrup.Reading
	p := &Pipeline{Sources: []Source{&HexSource{Spec: a}, &HexSource{Spec: b}}, Decoder: kamstrup.NewDecoder(),
		Keys: keyOf(t), Dedup: &Dedup{Hold: time.Minute},
		Reading: func(r *kamstrup.Reading) {
			x := *r
			x.Receivers = append([]wmbus.Radio(nil), r.Receivers...)
			readings = append(readings, x)
		}}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(readings) != 35 || p.Stats().Copies.Load() != 35 {
		t.Fatalf("%d readings, %d copies; want 35 and 35", len(readings), p.Stats().Copies.Load())
	}
	for _, r := range readings {
		if len(r.Receivers) != 2 || r.Receivers[0].Receiver == r.Receivers[1].Receiver {
			t.Fatalf("reading %d heard by %+v", r.AccessNumber, r.Receivers)
		}
	}
	if v, _ := readings[34].Get(kamstrup.Total); v.V != 8.915 {
		t.Errorf("last total %v", v.V)
	}
}

// Memory per tracked meter: each of 100,000 meters sends every 16 s, and
// the window holds each meter's last DedupWindow of telegrams.
func BenchmarkDedupMemoryPerMeter(b *testing.B) {
	const meters = 100_000
	perMeter := int(DedupWindow / (16 * time.Second))
	frame := frameOf(b, telegrams(b)[0], "a", 5)
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		d := &Dedup{}
		now := time.Now()
		f := frame
		f.Data = bytes.Clone(frame.Data)
		for k := range perMeter {
			for m := range meters {
				f.Data[4], f.Data[5], f.Data[6] = byte(m), byte(m>>8), byte(m>>16)
				f.Data[12] = byte(k)
				d.Offer(f, now)
				d.Due(now)
			}
			now = now.Add(16 * time.Second)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/meters, "bytes/meter")
		b.ReportMetric(float64(d.Tracked()), "telegrams")
		runtime.KeepAlive(d)
	}
}
