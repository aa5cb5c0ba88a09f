package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Pipeline moves frames from a source through the link layer and the
// Kamstrup decoder to readings. One goroutine does all of it, in order.
type Pipeline struct {
	Source  Source
	Decoder *kamstrup.Decoder
	// Keys looks up a meter's AES key; called once per telegram, so it
	// must be cheap (the meter list's lock-free snapshot).
	Keys wmbus.KeyFunc
	// Frame, when set, sees every frame heard — any manufacturer — with the
	// link-layer result: the telegram when it parsed, else the error.
	Frame func(f Frame, t *wmbus.Telegram, err error)
	// Reading receives each reading. It is valid during the call only.
	Reading func(r *kamstrup.Reading)
	// Problem receives every frame that could not become a reading and
	// every input that was skipped; nothing is dropped silently.
	Problem func(error)
	Log     *slog.Logger
	// RetryMin and RetryMax bound the wait before a failed live source is
	// reopened (defaults 1 s and 30 s, doubling in between).
	RetryMin, RetryMax time.Duration

	parser   wmbus.Parser
	telegram wmbus.Telegram
	stats    Stats
}

// Stats counts what the pipeline saw; safe to read from other goroutines.
type Stats struct {
	Frames   atomic.Int64 // frames heard
	Readings atomic.Int64 // readings produced
	Failed   atomic.Int64 // frames that gave no reading (foreign meters included)
	Reopens  atomic.Int64 // times a live source was reopened
	LastUnix atomic.Int64 // time of the last frame, Unix seconds
	Healthy  atomic.Bool  // the source is delivering
	LastErr  atomic.Pointer[string]
}

// Stats returns the live counters.
func (p *Pipeline) Stats() *Stats { return &p.stats }

// Run reads the source until ctx ends (nil) or a non-live source ends (its
// error, nil at a clean end). A live source that fails is reported and
// reopened with backoff; it never ends the run.
func (p *Pipeline) Run(ctx context.Context) error {
	log := p.Log
	if log == nil {
		log = slog.Default()
	}
	minWait, maxWait := p.RetryMin, p.RetryMax
	if minWait <= 0 {
		minWait = time.Second
	}
	if maxWait < minWait {
		maxWait = max(30*time.Second, minWait)
	}
	h := Handler{Frame: p.handle, Skip: p.problem}
	wait := minWait
	for {
		p.stats.Healthy.Store(true)
		started := time.Now()
		err := p.Source.Run(ctx, h)
		p.stats.Healthy.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if !p.Source.Live() {
			return err
		}
		if err == nil {
			err = errors.New("input ended")
		}
		msg := err.Error()
		p.stats.LastErr.Store(&msg)
		if time.Since(started) > 2*maxWait {
			wait = minWait // it ran well for a while: start backing off afresh
		}
		log.Error("input failed; reopening", "input", p.Source.Name(), "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		p.stats.Reopens.Add(1)
		wait = min(2*wait, maxWait)
	}
}

func (p *Pipeline) problem(err error) {
	if p.Problem != nil {
		p.Problem(err)
	}
}

// ErrInternal marks a fault of the gateway itself while handling one frame;
// the frame is reported with its bytes and the gateway goes on.
var ErrInternal = errors.New("internal error (please report it with this line)")

// handle decodes one frame. Telegram errors already name the meter.
func (p *Pipeline) handle(f Frame) {
	defer func() {
		if r := recover(); r != nil {
			p.stats.Failed.Add(1)
			p.problem(fmt.Errorf("%w: frame %X: %v", ErrInternal, f.Data, r))
		}
	}()
	p.stats.Frames.Add(1)
	p.stats.LastUnix.Store(f.Time.Unix())
	keys := p.Keys
	if keys == nil {
		keys = noKeys
	}
	var err error
	if f.Stripped {
		err = p.parser.ParseForm(f.Data, wmbus.FormatNone, keys, &p.telegram)
	} else {
		err = p.parser.Parse(f.Data, keys, &p.telegram)
	}
	if p.Frame != nil {
		if err != nil {
			p.Frame(f, nil, err)
		} else {
			p.Frame(f, &p.telegram, nil)
		}
	}
	if err != nil {
		p.stats.Failed.Add(1)
		p.problem(err)
		return
	}
	radio := f.Radio
	if radio.Format == "" {
		radio.Format = p.telegram.Format.String()
	}
	rs, err := p.Decoder.Decode(&p.telegram, f.Time, radio)
	if err != nil {
		if len(rs) == 0 {
			p.stats.Failed.Add(1)
		}
		p.problem(err)
	}
	for i := range rs {
		p.stats.Readings.Add(1)
		if p.Reading != nil {
			p.Reading(&rs[i])
		}
	}
}

func noKeys(wmbus.ID) ([]byte, bool) { return nil, false }
