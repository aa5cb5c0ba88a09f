package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/backoff"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Pipeline moves frames from its sources through the link layer and the
// Kamstrup decoder to readings. Each source runs in its own goroutine and
// puts what it hears on one frame bus; one goroutine decodes, in order, so
// the callbacks below are never called concurrently.
type Pipeline struct {
	Sources []Source
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
	// Dedup, when set, makes the copies of one telegram heard by several
	// receivers or sources one reading (see Dedup).
	Dedup *Dedup
	// RetryMin and RetryMax bound the wait before a failed live source is
	// reopened (defaults 1 s and 30 s, doubling in between).
	RetryMin, RetryMax time.Duration
	// StalledAfter is how many failures in a row, with no good run in
	// between, make a live source count as stalled (Stats.Stalled): its
	// reopening keeps failing and only a restart may help. Default 3.
	StalledAfter int

	parser    wmbus.Parser
	telegram  wmbus.Telegram
	counters  counters
	receivers []wmbus.Radio // of the frame being decoded, for its readings
	stats     Stats
}

// Stats counts what the pipeline saw; safe to read from other goroutines.
type Stats struct {
	Frames   atomic.Int64 // frames heard
	Readings atomic.Int64 // readings produced
	Failed   atomic.Int64 // frames that gave no reading (foreign meters included)
	Reopens  atomic.Int64 // times a live source was reopened
	LastUnix atomic.Int64 // time of the last frame, Unix seconds
	Failing  atomic.Int32 // sources failed and waiting to be reopened
	// Stalled counts live sources whose reopening keeps failing
	// (Pipeline.StalledAfter failures in a row); one leaves the count when
	// it delivers a frame or runs for a while.
	Stalled atomic.Int32
	LastErr atomic.Pointer[string]
	// Copies counts frames that were copies of a telegram already heard
	// (another receiver's); they give no reading of their own.
	Copies atomic.Int64
}

// Healthy reports whether every source is delivering.
func (s *Stats) Healthy() bool { return s.Failing.Load() == 0 }

// busSize bounds the frames waiting for the decoder; a source that finds
// it full waits, which a radio source absorbs in its sample queue.
const busSize = 256

// item is one thing a source hands to the decoder: a frame or a skip.
type item struct {
	f    Frame
	skip error
}

// Stats returns the live counters.
func (p *Pipeline) Stats() *Stats { return &p.stats }

// Run reads every source until ctx ends (nil) or every source has ended:
// a recording or a file ends by itself (its error, nil at a clean end); a
// live source that fails is reported and reopened with backoff, and ends
// only with ctx.
func (p *Pipeline) Run(ctx context.Context) error {
	bus := make(chan item, busSize)
	errs := make([]error, len(p.Sources))
	var wg sync.WaitGroup
	for i, src := range p.Sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Several sources: each frame says which one heard it.
			name := ""
			if len(p.Sources) > 1 {
				name = src.Name()
			}
			errs[i] = p.runSource(ctx, src, name, bus)
		}()
	}
	go func() { wg.Wait(); close(bus) }()
	if p.Dedup != nil {
		p.runDedup(bus)
	} else {
		for it := range bus {
			if it.skip != nil {
				p.problem(it.skip)
				continue
			}
			p.handle(it.f)
		}
	}
	return errors.Join(errs...)
}

// runDedup decodes the frames of the bus once per telegram: each first
// copy waits Dedup.Hold for the others, then is decoded with all of them.
func (p *Pipeline) runDedup(bus <-chan item) {
	d := p.Dedup
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var armed time.Time
	for {
		var wake <-chan time.Time
		if next, ok := d.Next(); ok {
			if !next.Equal(armed) {
				timer.Reset(time.Until(next))
				armed = next
			}
			wake = timer.C
		}
		select {
		case it, ok := <-bus:
			if !ok {
				p.decodeDue(time.Now().Add(d.Hold + time.Hour)) // the sources ended: nothing more will join
				return
			}
			if it.skip != nil {
				p.problem(it.skip)
				continue
			}
			now := time.Now()
			if d.Offer(it.f, now) {
				p.stats.Copies.Add(1)
			}
			p.decodeDue(now)
		case <-wake:
			armed = time.Time{}
			p.decodeDue(time.Now())
		}
	}
}

// decodeDue decodes every held frame whose hold has passed at now.
func (p *Pipeline) decodeDue(now time.Time) {
	for g := p.Dedup.Due(now); g != nil; g = p.Dedup.Due(now) {
		p.receivers = p.receivers[:0]
		for _, r := range g.Radios {
			if r.Receiver != "" {
				p.receivers = g.Radios
				break
			}
		}
		p.handle(g.Frame)
	}
	p.receivers = nil
}

// runSource runs one source, reopening a live one after a failure.
func (p *Pipeline) runSource(ctx context.Context, src Source, name string, bus chan<- item) error {
	log := p.Log
	if log == nil {
		log = slog.Default()
	}
	retry := backoff.Backoff{Min: p.RetryMin, Max: p.RetryMax}
	send := func(it item) {
		select {
		case bus <- it:
		case <-ctx.Done():
		}
	}
	// A run counts as good once it delivers a frame or lasts as long as
	// the backoff takes to start afresh; only then does a failure streak end.
	goodRun := 2 * retry.Limit()
	stalledAfter := int32(p.StalledAfter)
	if stalledAfter <= 0 {
		stalledAfter = 3
	}
	var fails atomic.Int32 // failures in a row
	var stalled atomic.Bool
	recovered := func() {
		fails.Store(0)
		if stalled.CompareAndSwap(true, false) {
			p.stats.Stalled.Add(-1)
		}
	}
	defer recovered()
	h := Handler{
		// The frame's bytes may be reused by the source once it returns.
		Frame: func(f Frame) {
			if stalled.Load() {
				recovered()
			}
			f.Data = bytes.Clone(f.Data)
			f.Live = src.Live()
			if f.Radio.Receiver == "" {
				f.Radio.Receiver = name
			}
			send(item{f: f})
		},
		Skip: func(err error) { send(item{skip: err}) },
	}
	for {
		started := time.Now()
		good := time.AfterFunc(goodRun, recovered)
		err := src.Run(ctx, h)
		good.Stop()
		if ctx.Err() != nil {
			return nil
		}
		if !src.Live() {
			return err
		}
		if err == nil {
			err = errors.New("input ended")
		}
		msg := src.Name() + ": " + err.Error()
		p.stats.LastErr.Store(&msg)
		p.stats.Failing.Add(1)
		if fails.Add(1) >= stalledAfter && stalled.CompareAndSwap(false, true) {
			p.stats.Stalled.Add(1)
			log.Error("input keeps failing after reopening", "input", src.Name(), "failures_in_a_row", fails.Load())
		}
		if time.Since(started) > goodRun {
			retry.Reset() // it ran well for a while: start backing off afresh
		}
		wait := retry.Next()
		log.Error("input failed; reopening", "input", src.Name(), "err", err, "retry_in", wait)
		ok := backoff.Wait(ctx, wait)
		p.stats.Failing.Add(-1)
		if !ok {
			return nil
		}
		p.stats.Reopens.Add(1)
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
	if err == nil {
		err = p.trusted(&p.telegram, keys, f)
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
		if rs[i].AccessNumber == p.telegram.AccessNumber() { // not a compact frame held from before
			rs[i].Receivers = p.receivers
		}
		p.stats.Readings.Add(1)
		if p.Reading != nil {
			p.Reading(&rs[i])
		}
	}
}

func noKeys(wmbus.ID) ([]byte, bool) { return nil, false }
