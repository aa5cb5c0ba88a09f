package kamstrup

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/mbus"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Decoder errors, wrapped in a *wmbus.MeterError naming the meter.
var (
	// ErrAwaitingFullFrame: a compact frame whose format is not known yet.
	// It is queued and decoded once a full frame teaches the format.
	ErrAwaitingFullFrame = errors.New("waiting for a full frame")
	// ErrDataCRC: the compact frame's data CRC does not match its format.
	ErrDataCRC = errors.New("compact data CRC mismatch")
	// ErrFrame: application data that is not a readable Kamstrup frame.
	ErrFrame = errors.New("bad application data")
	// ErrUnsupportedCI: an application CI that carries no meter readings.
	ErrUnsupportedCI = errors.New("application CI carries no readings")
	// ErrQueueFull comes with ErrAwaitingFullFrame when a compact frame
	// was lost to the queue bounds (the new one or the oldest kept).
	ErrQueueFull = errors.New("queue full")
)

const (
	// MaxQueuedPerMeter bounds the compact frames kept per meter while
	// waiting for a full frame: one arrives every 8th telegram, so 16
	// covers one missed full frame.
	MaxQueuedPerMeter = 16
	// MaxQueuedMeters bounds how many meters may have frames queued.
	MaxQueuedMeters = 256
	// MaxLearned bounds the formats learned from full frames (those
	// shipped in KnownFormats do not count). A handful of meter models
	// use a handful of formats; past the bound, the learned format used
	// longest ago is forgotten (its meters' next full frame teaches it
	// again).
	MaxLearned = 64
	maxApp     = 256
)

type queued struct {
	t     wmbus.Telegram // App unset; see app
	app   [maxApp]byte
	n     int
	sig   uint16
	at    time.Time
	radio wmbus.Radio
}

type meterQueue struct {
	id    wmbus.ID
	items [MaxQueuedPerMeter]queued
	n     int // oldest first: items[0:n]
}

// format is one compact-frame format: its record headers, and whether it
// was learned (and so belongs in the saved file) rather than shipped.
type format struct {
	heads   []byte
	learned bool
	used    uint64 // Decoder.tick when it last decoded or was taught
}

// Decoder turns Telegrams into Readings. It keeps the format table (known
// and learned) and the queue of compact frames waiting for a full frame.
// One goroutine decodes; Save, Load, Pending, Learned and Dirty may be
// called from others meanwhile. Decode's results are valid until the next
// Decode.
type Decoder struct {
	// Trust, when set, says whether a telegram may teach a format: the
	// gateway allows only telegrams that verified with a key or come from
	// a meter in the list, so that made-up frames from the air cannot fill
	// the format table. Untrusted full frames still decode. Nil trusts
	// every telegram (decoding a file the user chose). Set before use.
	Trust func(t *wmbus.Telegram) bool

	mu       sync.Mutex
	formats  map[uint16][]format
	nLearned int
	tick     uint64
	queues   []*meterQueue
	dirty    bool // learned formats not saved yet

	out   []Reading
	mfr   [][]byte // ManufacturerData storage, one per out slot
	heads []byte   // scratch: record headers of the full frame being read
	errs  []error
}

// NewDecoder returns a Decoder that knows KnownFormats.
func NewDecoder() *Decoder {
	d := &Decoder{formats: make(map[uint16][]format), heads: make([]byte, 0, maxApp)}
	for _, k := range KnownFormats {
		h := mustHeads(k.Heads)
		d.formats[wmbus.CRC(h)] = append(d.formats[wmbus.CRC(h)], format{heads: h})
	}
	return d
}

// Decode reads one telegram. It returns the readings it produced: usually
// one, none when a compact frame has to wait for its format, and more when
// a full frame lets queued compact frames decode too (those come first,
// oldest first). at and radio are stored in the reading. When readings and
// an error come back together, the error concerns queued frames that still
// failed. The slice and its readings' ManufacturerData are reused by the
// next call: copy what you keep.
func (d *Decoder) Decode(t *wmbus.Telegram, at time.Time, radio wmbus.Radio) ([]Reading, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.out = d.out[:0]
	d.errs = d.errs[:0]
	if radio.Format == "" {
		radio.Format = t.Format.String()
	}
	var err error
	switch t.AppCI {
	case 0x78, 0x7A, 0x72:
		var learned bool
		learned, err = d.full(t, at, radio)
		if err == nil && learned {
			d.drain()
			// Queued frames are older: put the full frame's reading last.
			if n := len(d.out); n > 1 {
				cur := d.out[0]
				copy(d.out, d.out[1:])
				d.out[n-1] = cur
			}
		}
	case 0x79:
		err = d.compact(t, t.App, at, radio, true)
	default:
		err = fmt.Errorf("%w: 0x%02X", ErrUnsupportedCI, t.AppCI)
	}
	if err != nil {
		err = &wmbus.MeterError{ID: t.Meter(), Err: err}
	}
	if len(d.errs) > 0 {
		err = errors.Join(append([]error{err}, d.errs...)...)
	}
	return d.out, err
}

// slot returns a fresh reading at the end of out and its index.
func (d *Decoder) slot() (*Reading, int) {
	i := len(d.out)
	if i < cap(d.out) {
		d.out = d.out[:i+1]
		d.out[i] = Reading{}
	} else {
		d.out = append(d.out, Reading{})
	}
	if i >= len(d.mfr) {
		d.mfr = append(d.mfr, nil)
	}
	d.mfr[i] = d.mfr[i][:0]
	return &d.out[i], i
}

func (d *Decoder) header(r *Reading, t *wmbus.Telegram, kind FrameKind, at time.Time, radio wmbus.Radio) {
	r.ID = t.Meter()
	r.Manufacturer, r.Version, r.DeviceType = t.Header.Manufacturer, t.Header.Version, t.Header.DeviceType
	if t.TPL.CI == 0x72 {
		r.Manufacturer, r.Version, r.DeviceType = t.TPL.Manufacturer, t.TPL.Version, t.TPL.DeviceType
	}
	r.Model = ModelName(r.Manufacturer, r.Version, r.DeviceType)
	r.Kind = kind
	r.AccessNumber = t.AccessNumber()
	r.Time = at
	r.Radio = radio
}

// full decodes a full frame and learns its format; learned reports a
// format not seen before.
func (d *Decoder) full(t *wmbus.Telegram, at time.Time, radio wmbus.Radio) (learned bool, err error) {
	r, i := d.slot()
	d.header(r, t, Full, at, radio)
	d.heads = d.heads[:0]
	it := mbus.Records(t.App)
	var rec mbus.Record
	for it.Next(&rec) {
		d.heads = append(d.heads, rec.Head...)
		if err := d.apply(r, i, &rec); err != nil {
			d.out = d.out[:i]
			return false, err
		}
	}
	if err := it.Err(); err != nil {
		d.out = d.out[:i]
		return false, fmt.Errorf("%w: full frame: %w", ErrFrame, err)
	}
	if len(d.heads) == 0 || (d.Trust != nil && !d.Trust(t)) {
		return false, nil
	}
	return d.learn(d.heads), nil
}

// learn adds a format unless it is known; it reports whether it was new.
// Past MaxLearned it forgets the learned format used longest ago.
func (d *Decoder) learn(heads []byte) bool {
	d.tick++
	sig := wmbus.CRC(heads)
	fs := d.formats[sig]
	for k := range fs {
		if bytes.Equal(fs[k].heads, heads) {
			fs[k].used = d.tick
			return false
		}
	}
	if d.nLearned >= MaxLearned {
		d.forgetOldest()
	}
	d.formats[sig] = append(d.formats[sig], format{heads: bytes.Clone(heads), learned: true, used: d.tick})
	d.nLearned++
	d.dirty = true
	return true
}

// forgetOldest removes the learned format used longest ago.
func (d *Decoder) forgetOldest() {
	var sig uint16
	k, oldest := -1, uint64(0)
	for s, fs := range d.formats {
		for i, f := range fs {
			if f.learned && (k < 0 || f.used < oldest) {
				sig, k, oldest = s, i, f.used
			}
		}
	}
	if k < 0 {
		return
	}
	fs := d.formats[sig]
	fs = append(fs[:k], fs[k+1:]...)
	if len(fs) == 0 {
		delete(d.formats, sig)
	} else {
		d.formats[sig] = fs
	}
	d.nLearned--
}

// compact decodes a compact frame's app data (after CI 0x79). When its
// format is unknown and mayQueue is set, the frame is queued.
func (d *Decoder) compact(t *wmbus.Telegram, app []byte, at time.Time, radio wmbus.Radio, mayQueue bool) error {
	if len(app) < 4 {
		return fmt.Errorf("%w: compact frame of %d bytes has no signature and data CRC", ErrFrame, len(app))
	}
	sig := uint16(app[0]) | uint16(app[1])<<8
	dataCRC := uint16(app[2]) | uint16(app[3])<<8
	data := app[4:]
	cands := d.formats[sig]
	if len(cands) == 0 {
		if !mayQueue {
			return fmt.Errorf("%w: format %02X%02X", ErrAwaitingFullFrame, app[0], app[1])
		}
		return d.enqueue(t, app, sig, at, radio)
	}
	var lastErr error
	for k := range cands {
		f := &cands[k]
		r, i := d.slot()
		d.header(r, t, Compact, at, radio)
		it := mbus.CompactRecords(f.heads, data)
		var rec mbus.Record
		var crc uint16
		var err error
		for it.Next(&rec) {
			crc = wmbus.CRCUpdate(crc, rec.Head)
			crc = wmbus.CRCUpdate(crc, rec.Data)
			if err = d.apply(r, i, &rec); err != nil {
				break
			}
		}
		if err == nil {
			if err = it.Err(); err != nil {
				err = fmt.Errorf("%w: compact data (%d bytes) does not fit format %02X%02X: %w", ErrFrame, len(data), app[0], app[1], err)
			} else if ^crc != dataCRC {
				err = fmt.Errorf("%w: format %02X%02X gives %04X, frame says %04X", ErrDataCRC, app[0], app[1], ^crc, dataCRC)
			}
		}
		if err == nil {
			d.tick++
			f.used = d.tick
			return nil
		}
		d.out = d.out[:i]
		// A data CRC mismatch says more than a misfit: keep it.
		if lastErr == nil || errors.Is(err, ErrDataCRC) {
			lastErr = err
		}
	}
	return lastErr
}

// apply puts one record into reading r (out slot i).
func (d *Decoder) apply(r *Reading, i int, rec *mbus.Record) error {
	if rec.MfrData {
		d.mfr[i] = append(d.mfr[i], rec.Data...)
		r.ManufacturerData = d.mfr[i]
		return nil
	}
	rule := ruleFor(rec)
	if rule == nil {
		r.Unmapped++
		return nil
	}
	switch rule.to {
	case toQuantity:
		if Quantities[rule.q].Class == Temperature && rec.Type == mbus.TypeInt8 && rec.Data[0] == notMeasured {
			r.Set(rule.q, Value{})
			return nil
		}
		v, err := rec.Scaled()
		if err != nil {
			return fmt.Errorf("%w: record %X: %w", ErrFrame, rec.Head, err)
		}
		r.Set(rule.q, Value{V: v, Known: true})
	case toTargetDate:
		tm, err := rec.Date(time.UTC)
		if err != nil {
			return fmt.Errorf("%w: target date record %X: %w", ErrFrame, rec.Head, err)
		}
		r.TargetDate = tm
	case toInfo:
		v, err := rec.Uint()
		if err != nil || len(rec.Data)*8 != int(rule.bits) {
			return fmt.Errorf("%w: info code record %X has %d data bytes, want %d", ErrFrame, rec.Head, len(rec.Data), rule.bits/8)
		}
		r.Info = InfoCode{Raw: uint32(v), Bits: rule.bits}
	case toMfrData:
		d.mfr[i] = append(d.mfr[i], rec.Data...)
		r.ManufacturerData = d.mfr[i]
	}
	return nil
}

// enqueue keeps a compact frame until its format is known.
func (d *Decoder) enqueue(t *wmbus.Telegram, app []byte, sig uint16, at time.Time, radio wmbus.Radio) error {
	var q *meterQueue
	for _, x := range d.queues {
		if x.id == t.Meter() {
			q = x
			break
		}
	}
	if q == nil {
		for _, x := range d.queues {
			if x.n == 0 { // reuse an idle queue
				q = x
				break
			}
		}
		if q == nil {
			if len(d.queues) >= MaxQueuedMeters {
				return fmt.Errorf("%w: format %02X%02X unknown; %w: %d meters already have frames waiting, this one is not kept", ErrAwaitingFullFrame, app[0], app[1], ErrQueueFull, MaxQueuedMeters)
			}
			q = &meterQueue{}
			d.queues = append(d.queues, q)
		}
		q.id = t.Meter()
	}
	if len(app) > maxApp {
		return fmt.Errorf("%w: compact frame of %d bytes too long to keep", ErrFrame, len(app))
	}
	dropped := -1
	if q.n == MaxQueuedPerMeter {
		dropped = int(q.items[0].t.AccessNumber())
		copy(q.items[:], q.items[1:])
		q.n--
	}
	e := &q.items[q.n]
	q.n++
	e.t = *t
	e.t.App = nil
	e.n = copy(e.app[:], app)
	e.sig, e.at, e.radio = sig, at, radio
	if dropped >= 0 {
		return fmt.Errorf("%w: format %02X%02X unknown; frame kept; %w: the oldest kept one (access number %d) dropped", ErrAwaitingFullFrame, app[0], app[1], ErrQueueFull, dropped)
	}
	return fmt.Errorf("%w: format %02X%02X unknown; frame kept", ErrAwaitingFullFrame, app[0], app[1])
}

// drain decodes every queued frame whose format is now known.
func (d *Decoder) drain() {
	for _, q := range d.queues {
		keep := 0
		for j := 0; j < q.n; j++ {
			e := &q.items[j]
			if len(d.formats[e.sig]) == 0 {
				if keep != j {
					q.items[keep] = *e
				}
				keep++
				continue
			}
			e.t.App = e.app[:e.n]
			if err := d.compact(&e.t, e.t.App, e.at, e.radio, false); err != nil {
				d.errs = append(d.errs, &wmbus.MeterError{ID: q.id, Err: fmt.Errorf("queued compact frame (access number %d): %w", e.t.AccessNumber(), err)})
			}
			e.t.App = nil
		}
		q.n = keep
	}
}

// Pending returns how many compact frames wait for a full frame.
func (d *Decoder) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, q := range d.queues {
		n += q.n
	}
	return n
}

// Learned returns how many formats were learned from full frames.
func (d *Decoder) Learned() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nLearned
}
