// Package pipeline connects the stages: a frame source (IQ samples through
// the demodulator, or telegrams typed as hex) feeds the decoder, whose
// readings go to whoever publishes them.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/iq"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Frame is one link-layer frame as it arrived, before decoding.
type Frame struct {
	Data []byte // with or without link-layer CRCs; the decoder detects which
	// Stripped says Data is already CRC-less (a demodulator checked and
	// removed the CRCs), so no detection is needed.
	Stripped bool
	Radio    wmbus.Radio // what the receiver measured; zero for text input
	Time     time.Time   // when it arrived
	// Position is the sample index of the frame in a radio stream, or the
	// line number of a text input.
	Position int64
	// Live says the frame came from a live source (the air now), not from
	// a recording or a file; set by the pipeline.
	Live bool
}

// Handler receives what a source produces: frames, and input it had to skip
// (a line that is not hex, a stalled dongle it recovered from).
type Handler struct {
	Frame func(Frame)
	Skip  func(error)
}

// Source delivers frames until the input ends (nil), ctx ends (ctx.Err())
// or the input fails. Live sources are worth reopening after a failure;
// a recording or a file has simply ended.
type Source interface {
	Run(ctx context.Context, h Handler) error
	Name() string
	Live() bool
}

// HexPrefix marks an --input that carries telegrams as text lines.
const HexPrefix = "hex:"

// RadioOptions configure a radio source: how to open the samples and how
// to demodulate them.
type RadioOptions struct {
	IQ    iq.Options
	Demod demod.Config
	// Log is where every source says what happens to it (reconnects,
	// dropped records, adjusted settings); nil: slog.Default().
	Log *slog.Logger
}

// NewSource opens nothing yet; it picks the source kind for an --input spec:
// "hex:-", "hex:FILE", "hex:tcp://host:port" for text; anything else (a
// recording, "-", "rtltcp://…", "rtlsdr://…") is a radio source;
// "mqtt://host:port/FILTER" subscribes to frames other receivers publish.
func NewSource(spec string, stdin io.Reader, ro RadioOptions) (Source, error) {
	if rest, ok := strings.CutPrefix(spec, HexPrefix); ok {
		if rest == "" {
			return nil, fmt.Errorf("input %q: say where the hex lines come from: hex:- (stdin), hex:FILE or hex:tcp://host:port", spec)
		}
		if addr, ok := strings.CutPrefix(rest, "tcp://"); ok {
			// Checked now: a live input is retried forever, and an address
			// that can never work must not be.
			if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
				return nil, fmt.Errorf("input %q: want hex:tcp://host:port (the port the bridge serves its lines on, e.g. hex:tcp://192.168.1.50:9000)", spec)
			}
		}
		return &HexSource{Spec: rest, Stdin: stdin}, nil
	}
	if isVW1871(spec) {
		return newVW1871Source(spec, stdin, ro.Log)
	}
	if IsRemote(spec) {
		return newRemoteSource(spec)
	}
	if spec == "" {
		return nil, errors.New("no input: give --input (a recording, -, rtltcp://host:port, rtlsdr://0 or hex:-)")
	}
	// Check the demodulator settings now when they are all known (a radio
	// tuned by us), so a bad --channel is reported before a dongle opens.
	// A recording's rate and centre may come from its name, checked at Run.
	if cfg := ro.Demod; ro.IQ.SampleRate != 0 && cfg.CenterHz != 0 {
		cfg.SampleRate = ro.IQ.SampleRate
		if _, err := demod.New(cfg); err != nil {
			return nil, fmt.Errorf("input %s: %w", spec, err)
		}
	}
	if ro.IQ.Logger == nil {
		ro.IQ.Logger = ro.Log
	}
	return &RadioSource{Spec: spec, Stdin: stdin, Options: ro}, nil
}

// Tuned reports whether an input spec is a radio this gateway tunes (a
// dongle or rtl_tcp), rather than an input that describes itself (a
// recording, stdin, hex lines).
func Tuned(spec string) bool {
	return strings.HasPrefix(spec, "rtltcp://") || strings.HasPrefix(spec, "rtlsdr://")
}

// HexSource reads telegrams written as hex, one per line, in any form
// wmbus.ParseHexLine accepts, from stdin ("-"), a file or a TCP server
// (ESP32 bridges, serial-to-network dongles).
type HexSource struct {
	Spec  string    // "-", a path, or "tcp://host:port"
	Stdin io.Reader // used for "-"
}

// Name implements Source.
func (s *HexSource) Name() string { return HexPrefix + s.Spec }

// Live implements Source: a TCP feed is reopened, a file or stdin ends.
func (s *HexSource) Live() bool { return strings.HasPrefix(s.Spec, "tcp://") }

// Run implements Source.
func (s *HexSource) Run(ctx context.Context, h Handler) error {
	var r io.ReadCloser
	switch {
	case s.Spec == "-":
		r = io.NopCloser(s.Stdin)
	case strings.HasPrefix(s.Spec, "tcp://"):
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(s.Spec, "tcp://"))
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name(), err)
		}
		r = c
	default:
		f, err := os.Open(s.Spec)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name(), err)
		}
		r = f
	}
	// The scanner runs in its own goroutine so that a blocked read (stdin,
	// an idle socket) never delays shutdown; closing r releases it.
	lines := make(chan lineOrErr)
	go scanLines(ctx, r, lines)
	defer r.Close()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l, ok := <-lines:
			if !ok {
				return nil
			}
			if l.err != nil {
				return fmt.Errorf("%s: %w", s.Name(), l.err)
			}
			if l.skip != nil {
				h.Skip(fmt.Errorf("%s %w", s.Name(), l.skip))
				continue
			}
			text := strings.TrimSpace(l.text)
			if text == "" || text[0] == '#' {
				continue
			}
			data, mode, err := wmbus.AppendHexLine(nil, text)
			if err != nil {
				h.Skip(fmt.Errorf("%s line %d: %w", s.Name(), l.n, err))
				continue
			}
			f := Frame{Data: data, Time: time.Now(), Position: l.n}
			f.Radio.Mode = mode
			h.Frame(f)
		}
	}
}

type lineOrErr struct {
	text string
	n    int64
	skip error // this line is skipped (too long); the input goes on
	err  error // the input failed
}

func scanLines(ctx context.Context, r io.Reader, out chan<- lineOrErr) {
	defer close(out)
	lr := NewLineReader(r)
	for {
		text, n, err := lr.Next()
		l := lineOrErr{text: string(text), n: n}
		switch {
		case errors.Is(err, ErrLineTooLong):
			l.skip = err
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrClosed):
			return
		case err != nil:
			l = lineOrErr{err: err}
		}
		select {
		case out <- l:
		case <-ctx.Done():
			return
		}
		if l.err != nil {
			return
		}
	}
}

// RadioSource demodulates IQ samples from a recording, stdin, rtl_tcp or a
// USB dongle.
type RadioSource struct {
	Spec    string
	Stdin   io.Reader
	Options RadioOptions

	dm atomic.Pointer[demod.Demodulator] // of the current or last run
}

// Radio returns what the demodulator sees — its counters and the averaged
// spectrum of the capture — and false before the source first ran. Safe
// from any goroutine.
func (s *RadioSource) Radio() (demod.Stats, demod.Spectrum, bool) {
	dm := s.dm.Load()
	if dm == nil {
		return demod.Stats{}, demod.Spectrum{}, false
	}
	return dm.Stats(), dm.Spectrum(), true
}

// Name implements Source.
func (s *RadioSource) Name() string { return s.Spec }

// Live implements Source: dongles and rtl_tcp are reopened; recordings and
// stdin end.
func (s *RadioSource) Live() bool { return Tuned(s.Spec) }

// Run implements Source.
func (s *RadioSource) Run(ctx context.Context, h Handler) error {
	src, err := openIQ(ctx, s.Spec, s.Stdin, s.Options.IQ)
	if err != nil {
		return err
	}
	info := src.Info()
	cfg := s.Options.Demod
	cfg.SampleRate = info.SampleRate
	if cfg.CenterHz == 0 {
		cfg.CenterHz = info.CenterHz
	}
	if cfg.CenterHz == 0 {
		cfg.CenterHz = demod.DefaultChannelHz
	}
	dm, err := demod.New(cfg)
	if err != nil {
		src.Close()
		return fmt.Errorf("%s: %w", info.Name, err)
	}
	st := iq.NewStream(src, iq.StreamOptions{StallTimeout: s.Options.IQ.StallTimeout})
	defer st.Close()
	frames := make([]demod.Frame, 0, 8)
	emit := func(fs []demod.Frame) {
		for _, f := range fs {
			h.Frame(Frame{
				Data:     f.Data,
				Stripped: true,
				Radio: wmbus.Radio{Mode: f.Mode.String(), Format: f.Format.String(),
					LevelDBFS: f.LevelDBFS, SNRdB: f.SNRdB, OffsetHz: f.OffsetHz},
				Time:     time.Now(),
				Position: f.Position,
			})
		}
	}
	s.dm.Store(dm)
	for {
		b, err := st.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				emit(dm.Flush(frames[:0]))
				return nil
			}
			return err
		}
		frames = s.work(dm, b, frames[:0], h)
		st.Release(b)
		emit(frames)
	}
}

// work runs the demodulator on one block. A fault in it costs that block,
// reported with its position, and a fresh demodulator state — never the
// gateway.
func (s *RadioSource) work(dm *demod.Demodulator, b iq.Block, out []demod.Frame, h Handler) (frames []demod.Frame) {
	defer func() {
		if r := recover(); r != nil {
			dm.Reset()
			h.Skip(fmt.Errorf("%w: demodulator at sample %d of %s: %v", ErrInternal, b.Index, s.Spec, r))
			frames = out[:0]
		}
	}()
	return dm.Work(b.Samples, out)
}

// openIQ opens the sample source; "-" reads the given stdin rather than the
// process's, so tests and pipes behave alike.
func openIQ(ctx context.Context, spec string, stdin io.Reader, opts iq.Options) (iq.Source, error) {
	if spec == "-" && stdin != nil && stdin != os.Stdin {
		return iq.NewReaderSource(stdin, "stdin", opts)
	}
	return iq.Open(ctx, spec, opts)
}
