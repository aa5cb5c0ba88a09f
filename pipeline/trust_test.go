package pipeline

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors/sent"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// frameSource hands over fixed frames as if heard from the air, then
// ends (a live source that ends is reopened: it says so once).
type frameSource []Frame

func (s frameSource) Name() string { return "frames" }
func (s frameSource) Live() bool   { return true }
func (s frameSource) Run(ctx context.Context, h Handler) error {
	for _, f := range s {
		h.Frame(f)
	}
	<-ctx.Done()
	return ctx.Err()
}

// runAll runs p until it has handled n frames.
func runAll(t *testing.T, p *Pipeline, n int64) {
	t.Helper()
	runUntil(t, p, 10*time.Second, func() bool { return p.Stats().Frames.Load() >= n })
}

// chronological returns the 35 telegrams of 74493770 in the order the
// meter sent them, as frames 16 s apart.
func chronological(t testing.TB) []Frame {
	t.Helper()
	at := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	var out []Frame
	for i, h := range sent.Seed74493770(t) {
		raw, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Frame{Data: raw, Time: at.Add(time.Duration(i) * 16 * time.Second)})
	}
	return out
}

// SpoofFrame is what an attacker can send for meter 74493770 without its
// key: a plaintext ELL telegram (encryption field 0, valid payload CRC)
// claiming 999.999 m³ with every alarm bit set. CRC-less form.
func SpoofFrame() []byte {
	app, _ := hex.DecodeString("78" + "02FF20FFFF" + "04133F420F00" + "441355210000")
	payload := append([]byte{0, 0}, app...)
	c := wmbus.CRC(app)
	payload[0], payload[1] = byte(c), byte(c>>8)
	head, _ := hex.DecodeString("442D2C703749741F16" + "8D" + "20C3" + "00240201") // SN 0x01022400: encryption 0
	f := append([]byte{byte(len(head) + len(payload))}, head...)
	return append(f, payload...)
}

func totals(rs []kamstrup.Reading) []float64 {
	var out []float64
	for _, r := range rs {
		v, _ := r.Get(kamstrup.Total)
		out = append(out, v.V)
	}
	return out
}

func TestSpoofedTelegramOfKeyedMeterIgnored(t *testing.T) {
	spoof := Frame{Data: SpoofFrame(), Stripped: true, Time: time.Date(2026, 11, 21, 8, 5, 0, 0, time.UTC)}

	// Without a key for the meter the frame is a valid telegram: what the
	// gateway would believe if it did not insist on the key.
	var naive collected
	runAll(t, naive.pipeline(frameSource{spoof}, nil), 1)
	if len(naive.readings) != 1 || totals(naive.readings)[0] != 999.999 ||
		!naive.readings[0].Info.Active(kamstrup.Leak) || !naive.readings[0].Info.Active(kamstrup.Burst) {
		t.Fatalf("the spoof does not decode as a leak at 999.999 m³: %v %v", naive.readings, naive.problems)
	}

	frames := chronological(t)
	in := slices.Concat(frames[:17], []Frame{spoof}, frames[17:])
	var c collected
	runAll(t, c.pipeline(frameSource(in), keyOf(t)), int64(len(in)))
	if len(c.readings) != 35 {
		t.Fatalf("%d readings, want the 35 genuine ones; problems %v", len(c.readings), c.problems)
	}
	for i, v := range totals(c.readings) {
		if v != 8.915 || c.readings[i].Info.Active(kamstrup.Leak) {
			t.Errorf("reading %d: total %v leak %v", i, v, c.readings[i].Info.Active(kamstrup.Leak))
		}
	}
	if len(c.problems) != 1 || !errors.Is(c.problems[0], ErrUnencryptedKeyed) {
		t.Fatalf("problems %v, want the spoof", c.problems)
	}
	want := "unencrypted telegram for meter 74493770, which has a key: ignored — possible spoofing"
	if c.problems[0].Error() != want {
		t.Errorf("message %q, want %q", c.problems[0], want)
	}
	if id, ok := wmbus.ErrorMeter(c.problems[0]); !ok || id != meterID {
		t.Errorf("the problem does not name the meter")
	}
}

func TestReplayedTelegramNotPublished(t *testing.T) {
	frames := chronological(t)
	later := frames[34].Time.Add(16 * time.Second)
	replay := frames[10]
	replay.Time = later
	again := frames[34]
	again.Time = later
	var c collected
	runAll(t, c.pipeline(frameSource(append(slices.Clone(frames), replay, again)), keyOf(t)), 37)
	if len(c.readings) != 35 || len(c.problems) != 2 {
		t.Fatalf("%d readings, problems %v; want 35 and the replay and the repeat", len(c.readings), c.problems)
	}
	if !errors.Is(c.problems[0], ErrReplayed) || !strings.Contains(c.problems[0].Error(), "meter 74493770") {
		t.Errorf("replay reported as %v", c.problems[0])
	}
	if !errors.Is(c.problems[1], ErrDuplicate) {
		t.Errorf("repeat reported as %v", c.problems[1])
	}
}

// The access number alone (no session number) is compared modulo 256.
func TestCountersAccessNumberWraps(t *testing.T) {
	at := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	var c counters
	steps := []struct {
		acc   uint8
		after time.Duration
		want  error
	}{
		{250, 0, nil},
		{255, 16 * time.Second, nil},
		{3, 16 * time.Second, nil},             // wrapped: 4 ahead
		{254, 16 * time.Second, ErrReplayed},   // 5 behind
		{3, 16 * time.Second, ErrDuplicate},    // the same again
		{131, 16 * time.Second, ErrReplayed},   // 128 apart: counts as the older half
		{200, 16 * time.Second, ErrReplayed},   // 59 behind
		{200, accessWindow + time.Second, nil}, // after a long silence nothing can be told
		{201, 16 * time.Second, nil},
	}
	for i, s := range steps {
		at = at.Add(s.after)
		tg := wmbus.Telegram{Header: wmbus.Header{ID: meterID}, TPL: wmbus.TPL{CI: 0x7A, ACC: s.acc}}
		err := c.check(&tg, at)
		if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Errorf("step %d (access number %d): %v, want %v", i, s.acc, err, s.want)
		}
	}
}

func TestCountersBounded(t *testing.T) {
	var c counters
	at := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	for i := range 3 * MaxCounters {
		tg := wmbus.Telegram{Header: wmbus.Header{ID: wmbus.ID(i)}, TPL: wmbus.TPL{CI: 0x7A, ACC: 1}}
		if err := c.check(&tg, at.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) != MaxCounters {
		t.Fatalf("%d records, want %d", len(c.m), MaxCounters)
	}
	if _, ok := c.m[wmbus.ID(3*MaxCounters-1)]; !ok {
		t.Error("the newest meter was evicted")
	}
	if _, ok := c.m[0]; ok {
		t.Error("the oldest meter was kept")
	}
}

// A flood of distinct problems — bad lines, made-up meters — keeps the
// Reporter's memory and its log bounded.
func TestReporterBounded(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	r := &Reporter{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now: func() time.Time { return now }}
	for i := range 100_000 {
		r.Report(fmt.Errorf("hex:- line %d: %w: %q", i+1, wmbus.ErrHexLine, fmt.Sprint("junk", i)))
		r.Report(&wmbus.MeterError{ID: wmbus.ID(i), Err: wmbus.ErrNoKey})
		r.Report(&wmbus.MeterError{ID: wmbus.ID(i), Err: fmt.Errorf("%w: %d", ErrInternal, i)})
		if i%1000 == 0 {
			now = now.Add(time.Second)
		}
	}
	if n := r.Problems(); n > MaxProblemKeys {
		t.Errorf("%d problems remembered, bound %d", n, MaxProblemKeys)
	}
	lines := strings.Count(buf.String(), "\n")
	// 100 s of flood: per kind at most BurstPerKind lines a minute plus a
	// summary line per minute.
	if lines > 3*2*(BurstPerKind+1) {
		t.Errorf("%d log lines for the flood", lines)
	}
	if !strings.Contains(buf.String(), "not_logged=") {
		t.Errorf("the rate limit does not say what it held back:\n%s", buf.String()[:min(2000, buf.Len())])
	}
	if strings.Count(buf.String(), "not a hex telegram") != 1 {
		t.Errorf("bad lines are not grouped by kind: %d lines", strings.Count(buf.String(), "not a hex telegram"))
	}
}

// FuzzTrust feeds arbitrary frames, as from the air, to a pipeline that
// knows the key of meter 74493770: nothing panics, and no reading of that
// meter comes from a telegram that did not verify with its key.
func FuzzTrust(f *testing.F) {
	for _, fr := range chronological(f) {
		f.Add(fr.Data, false)
	}
	f.Add(SpoofFrame(), true)
	var c collected
	p := c.pipeline(nil, keyOf(f))
	p.Frame = nil
	f.Fuzz(func(t *testing.T, data []byte, stripped bool) {
		p.Reading = func(r *kamstrup.Reading) {
			if r.ID == meterID && p.telegram.Security == wmbus.SecurityNone {
				t.Fatalf("a reading of the keyed meter from a telegram without its key: %X", data)
			}
		}
		p.Problem = func(error) {}
		p.handle(Frame{Data: data, Stripped: stripped, Live: true})
		if p.stats.Failed.Load() > p.stats.Frames.Load() {
			t.Fatal("more failures than frames")
		}
	})
}

// BenchmarkPipelineLive is BenchmarkPipelineHex with the trust checks of a
// live source (the key rule and the per-meter replay record): the 35
// telegrams in the order sent, the record cleared before each round.
func BenchmarkPipelineLive(b *testing.B) {
	frames := chronological(b)
	var c collected
	p := c.pipeline(nil, keyOf(b))
	p.Frame, p.Reading, p.Problem = nil, func(*kamstrup.Reading) {}, func(err error) { b.Fatal(err) }
	for i := range frames {
		frames[i].Live = true
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%len(frames) == 0 {
			clear(p.counters.m)
		}
		p.handle(frames[i%len(frames)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "telegrams/s")
}
