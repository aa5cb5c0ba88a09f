package pipeline

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/flowiq-gateway/flowiq-gateway/internal/syncbuf"
	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

const (
	bundled   = "../testdata/flowiq2101_74493770_868.95M_1M6.cu8"
	meterID   = wmbus.ID(0x74493770)
	meterKey  = "44E9112D06BD762EC2BFECE57E487C9B"
	meterKHex = "44e9112d06bd762ec2bfece57e487c9b"
)

func keyOf(t testing.TB) wmbus.KeyFunc {
	k, err := hex.DecodeString(meterKey)
	if err != nil {
		t.Fatal(err)
	}
	return func(id wmbus.ID) ([]byte, bool) { return k, id == meterID }
}

// telegrams returns the 35 captured telegrams of meter 74493770 as hex.
func telegrams(t testing.TB) []string {
	t.Helper()
	return testvectors.Frames(t, testvectors.Seed74493770, 35)
}

type collected struct {
	mu       sync.Mutex
	frames   []Frame
	readings []kamstrup.Reading
	problems []error
}

func (c *collected) pipeline(src Source, keys wmbus.KeyFunc) *Pipeline {
	return &Pipeline{
		Sources: []Source{src}, Decoder: kamstrup.NewDecoder(), Keys: keys,
		Frame: func(f Frame, _ *wmbus.Telegram, _ error) {
			c.mu.Lock()
			f.Data = append([]byte(nil), f.Data...)
			c.frames = append(c.frames, f)
			c.mu.Unlock()
		},
		Reading: func(r *kamstrup.Reading) {
			c.mu.Lock()
			c.readings = append(c.readings, *r)
			c.mu.Unlock()
		},
		Problem: func(err error) {
			c.mu.Lock()
			c.problems = append(c.problems, err)
			c.mu.Unlock()
		},
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond,
	}
}

func TestHexSourceLines(t *testing.T) {
	tg := telegrams(t)
	in := strings.Join([]string{
		"# comment",
		"",
		strings.ToLower(tg[0]),
		"C1;1;1;2026-11-21 10:00:00.000;97;148;74493770;0x" + tg[1],
		"not hex at all",
		strings.ReplaceAll(tg[2][:10], "", "") + " | " + tg[2][10:],
	}, "\n")
	var c collected
	p := c.pipeline(&HexSource{Spec: "-", Stdin: strings.NewReader(in)}, keyOf(t))
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(c.readings) != 3 || len(c.frames) != 3 {
		t.Fatalf("%d frames, %d readings; want 3 and 3 (problems %v)", len(c.frames), len(c.readings), c.problems)
	}
	if c.frames[1].Radio.Mode != "C1" || c.frames[1].Position != 4 {
		t.Errorf("receiver line: mode %q position %d", c.frames[1].Radio.Mode, c.frames[1].Position)
	}
	if len(c.problems) != 1 || !errors.Is(c.problems[0], wmbus.ErrHexLine) || !strings.Contains(c.problems[0].Error(), "hex:- line 5") {
		t.Errorf("problems = %v, want one bad line naming line 5", c.problems)
	}
	if c.readings[0].Radio.Format != "B" {
		t.Errorf("frame format = %q, want B (as captured, with CRCs)", c.readings[0].Radio.Format)
	}
}

func TestHexSourceMissingFile(t *testing.T) {
	var c collected
	p := c.pipeline(&HexSource{Spec: "/nonexistent/telegrams.txt"}, nil)
	err := p.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "hex:/nonexistent/telegrams.txt") {
		t.Fatalf("err = %v, want one naming the input", err)
	}
}

// The bundled recording goes through the radio source, the demodulator and
// the decoder: the six telegrams of its frame list, decrypted.
func TestRadioSourceBundledRecording(t *testing.T) {
	var want struct {
		Frames []struct{ Frame string }
	}
	b, err := os.ReadFile(strings.TrimSuffix(bundled, ".cu8") + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	src, err := NewSource(bundled, nil, RadioOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var c collected
	if err := c.pipeline(src, keyOf(t)).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(c.frames) != len(want.Frames) {
		t.Fatalf("%d frames, want %d", len(c.frames), len(want.Frames))
	}
	for i, f := range c.frames {
		if got := hex.EncodeToString(f.Data); got != want.Frames[i].Frame {
			t.Errorf("frame %d = %s, want %s", i, got, want.Frames[i].Frame)
		}
		if f.Radio.Mode != "C1" || f.Radio.Format != "B" || f.Radio.SNRdB < 15 {
			t.Errorf("frame %d radio = %+v", i, f.Radio)
		}
	}
	if len(c.readings) != len(want.Frames) || len(c.problems) != 0 {
		t.Fatalf("%d readings, problems %v", len(c.readings), c.problems)
	}
	for _, r := range c.readings {
		if v, _ := r.Get(kamstrup.Total); v.V != 8.915 || !r.Info.Active(kamstrup.Dry) {
			t.Errorf("reading %s: total %v dry %v", r.ID, v, r.Info.Active(kamstrup.Dry))
		}
	}
}

func TestNewSourceErrors(t *testing.T) {
	for _, spec := range []string{"", "hex:"} {
		if _, err := NewSource(spec, nil, RadioOptions{}); err == nil {
			t.Errorf("NewSource(%q) accepted", spec)
		}
	}
}

// Every frame that gives no reading is reported: nothing is dropped.
func TestProblemsForEveryFailure(t *testing.T) {
	tg := telegrams(t)
	raw, _ := hex.DecodeString(tg[1])
	raw[20] ^= 0x04 // one bit flipped in the encrypted payload
	in := strings.Join([]string{tg[0], hex.EncodeToString(raw), tg[0][:30], "zz"}, "\n")
	var c collected
	p := c.pipeline(&HexSource{Spec: "-", Stdin: strings.NewReader(in)}, nil) // no keys
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := p.Stats()
	if s.Frames.Load() != 3 || s.Failed.Load() != 3 || len(c.problems) != 4 {
		t.Fatalf("frames %d failed %d problems %v", s.Frames.Load(), s.Failed.Load(), c.problems)
	}
	if !errors.Is(c.problems[0], wmbus.ErrNoKey) {
		t.Errorf("no key: %v", c.problems[0])
	}
	if id, ok := wmbus.ErrorMeter(c.problems[0]); !ok || id != meterID {
		t.Errorf("problem does not name the meter: %v", c.problems[0])
	}
	if !errors.Is(c.problems[2], wmbus.ErrShort) || !errors.Is(c.problems[3], wmbus.ErrHexLine) {
		t.Errorf("truncated / bad line: %v / %v", c.problems[2], c.problems[3])
	}
}

// failingSource fails a few times, then delivers one frame and waits.
type failingSource struct {
	fails int
	frame []byte
	runs  int
}

func (s *failingSource) Name() string { return "rtltcp://test" }
func (s *failingSource) Live() bool   { return true }
func (s *failingSource) Run(ctx context.Context, h Handler) error {
	s.runs++
	if s.runs <= s.fails {
		return errors.New("connection refused")
	}
	h.Frame(Frame{Data: s.frame, Time: time.Now()})
	<-ctx.Done()
	return ctx.Err()
}

func TestLiveSourceReopened(t *testing.T) {
	raw, _ := hex.DecodeString(telegrams(t)[0])
	src := &failingSource{fails: 3, frame: raw}
	var c collected
	p := c.pipeline(src, keyOf(t))
	log := runUntil(t, p, 10*time.Second, func() bool { return p.Stats().Readings.Load() > 0 })
	if got := p.Stats().Reopens.Load(); got != 3 {
		t.Errorf("reopens = %d, want 3", got)
	}
	if n := strings.Count(log, "input failed; reopening"); n != 3 || !strings.Contains(log, "rtltcp://test") {
		t.Errorf("log names the input %d times:\n%s", n, log)
	}
}

// runUntil runs p in the background with its log captured until done()
// holds, then cancels it, checks that Run ended cleanly and returns the log.
func runUntil(t *testing.T, p *Pipeline, timeout time.Duration, done func() bool) string {
	t.Helper()
	var logBuf syncbuf.Buffer
	p.Log = slog.New(slog.NewTextHandler(&logBuf, nil))
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error)
	go func() { ended <- p.Run(ctx) }()
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			cancel()
			<-ended
			t.Fatalf("timed out after %v; %d readings, %d reopens; log:\n%s", timeout,
				p.Stats().Readings.Load(), p.Stats().Reopens.Load(), logBuf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-ended; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	return logBuf.String()
}

func TestReporterFoldsRepeats(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	r := &Reporter{
		Log:   slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Known: func(id wmbus.ID) bool { return id == meterID },
		Every: time.Minute,
		Now:   func() time.Time { return now },
	}
	wrongKey := &wmbus.MeterError{ID: meterID, Err: wmbus.ErrWrongKey}
	neighbour := &wmbus.MeterError{ID: 0x11111111, Err: wmbus.ErrNoKey}
	for range 5 {
		r.Report(wrongKey)
		r.Report(neighbour)
	}
	now = now.Add(2 * time.Minute)
	r.Report(wrongKey)
	r.Report(neighbour)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d log lines, want 4:\n%s", len(lines), buf.String())
	}
	checks := []struct{ level, text string }{
		{"WARN", "meter 74493770: wrong key"},
		{"INFO", "not in the meter list"},
		{"WARN", "repeated=4"},
		{"DEBUG", "repeated=4"},
	}
	for i, c := range checks {
		if !strings.Contains(lines[i], "level="+c.level) || !strings.Contains(lines[i], c.text) {
			t.Errorf("line %d = %s, want level %s and %q", i, lines[i], c.level, c.text)
		}
	}
}

func BenchmarkPipelineHex(b *testing.B) {
	tg := telegrams(b)
	raws := make([][]byte, len(tg))
	for i, s := range tg {
		raws[i], _ = hex.DecodeString(s)
	}
	var c collected
	p := c.pipeline(nil, keyOf(b))
	p.Frame, p.Reading, p.Problem = nil, func(*kamstrup.Reading) {}, func(err error) { b.Fatal(err) }
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p.handle(Frame{Data: raws[i%len(raws)]})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "telegrams/s")
}

// Telegrams from a network bridge (an ESP32 printing hex lines over TCP).
func TestHexSourceTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tg := telegrams(t)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for _, s := range tg[:5] {
			io.WriteString(c, s+"\r\n")
		}
	}()
	src, err := NewSource("hex:tcp://"+l.Addr().String(), nil, RadioOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !src.Live() {
		t.Error("a TCP feed is live: it must be reopened when it drops")
	}
	var c collected
	err = src.Run(context.Background(), Handler{Frame: func(f Frame) { c.frames = append(c.frames, f) }, Skip: func(err error) { t.Error(err) }})
	if err != nil || len(c.frames) != 5 {
		t.Fatalf("%d frames, err %v", len(c.frames), err)
	}
}

// A channel the tuning cannot reach is reported before anything is opened.
func TestNewSourceChecksTuning(t *testing.T) {
	ro := RadioOptions{}
	ro.IQ.SampleRate, ro.IQ.CenterHz = 1.6e6, 923e6
	ro.Demod.CenterHz = 923e6
	_, err := NewSource("rtlsdr://0", nil, ro)
	if err == nil || !strings.Contains(err.Error(), "rtlsdr://0") {
		t.Fatalf("err = %v, want the 868.95 MHz channel refused at 923 MHz", err)
	}
	ro.Demod.ChannelHz = 923.1e6
	if _, err := NewSource("rtlsdr://0", nil, ro); err != nil {
		t.Fatalf("923.1 MHz within 1.6 MS/s of 923 MHz: %v", err)
	}
}

// The whole chain on the bundled recording: cu8 file → samples → stream →
// demodulator → link layer → AES → Kamstrup readings.
func BenchmarkRadioPipeline(b *testing.B) {
	st, err := os.Stat(bundled)
	if err != nil {
		b.Fatal(err)
	}
	samples := st.Size() / 2
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		src, err := NewSource(bundled, nil, RadioOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var c collected
		p := c.pipeline(src, keyOf(b))
		p.Frame = nil
		if err := p.Run(context.Background()); err != nil || len(c.readings) != 6 {
			b.Fatalf("%d readings, %v", len(c.readings), err)
		}
	}
	b.ReportMetric(float64(samples)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MS/s")
}

// A fault while handling one frame is reported with the frame and the
// gateway goes on with the next.
func TestFaultInOneFrameIsContained(t *testing.T) {
	tg := telegrams(t)
	var c collected
	p := c.pipeline(&HexSource{Spec: "-", Stdin: strings.NewReader(tg[0] + "\n" + tg[1] + "\n")}, keyOf(t))
	n := 0
	p.Frame = func(Frame, *wmbus.Telegram, error) {
		if n++; n == 1 {
			panic("fault in a frame hook")
		}
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(c.problems) != 1 || !errors.Is(c.problems[0], ErrInternal) || !strings.Contains(c.problems[0].Error(), strings.ToUpper(tg[0][:20])) {
		t.Fatalf("problems = %v", c.problems)
	}
	if len(c.readings) != 1 || c.readings[0].AccessNumber != 0xB5 {
		t.Fatalf("the next frame was not decoded: %d readings", len(c.readings))
	}
}

// A dongle behind rtl_tcp that streams a while and then goes silent: the
// stall is detected, reported with the input's name, and the gateway
// reconnects and receives again — without anyone restarting it.
func TestRTLTCPStallAndReconnect(t *testing.T) {
	iqBytes, err := os.ReadFile(bundled)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	release := make(chan struct{})
	defer close(release)
	var conns atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func(c net.Conn) {
				defer c.Close()
				go io.Copy(io.Discard, c)                                    // the client's tuning commands
				c.Write([]byte{'R', 'T', 'L', '0', 0, 0, 0, 5, 0, 0, 0, 29}) // R820T, 29 gains
				c.Write(iqBytes)
				<-release // then silence: a dongle that stopped delivering
			}(c)
		}
	}()
	ro := RadioOptions{}
	ro.IQ.SampleRate, ro.IQ.CenterHz, ro.IQ.StallTimeout = 1.6e6, 868.95e6, 300*time.Millisecond
	src, err := NewSource("rtltcp://"+l.Addr().String(), nil, ro)
	if err != nil {
		t.Fatal(err)
	}
	var c collected
	p := c.pipeline(src, keyOf(t))
	// The server sends the same recording on every connection: from the
	// air that is a replay, so its readings are published once; that
	// frames arrive again is what shows the reconnect.
	log := runUntil(t, p, 20*time.Second, func() bool { return p.Stats().Frames.Load() >= 12 })
	if r := p.Stats().Readings.Load(); r > 8 {
		t.Errorf("%d readings from one recording of 8 telegrams sent again", r)
	}
	if conns.Load() < 2 || p.Stats().Reopens.Load() < 1 || !strings.Contains(log, "no samples") && !strings.Contains(log, "stall") {
		t.Errorf("connections %d, reopens %d, log:\n%s", conns.Load(), p.Stats().Reopens.Load(), log)
	}
	if !strings.Contains(log, "rtltcp://"+l.Addr().String()) {
		t.Errorf("the log does not name the input:\n%s", log)
	}
}
