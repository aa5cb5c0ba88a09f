// Package vw1871 reads the byte stream of a VW1871 Bluetooth wireless M-Bus
// concentrator: frames
//
//	FB FB FB F0 | header (11 bytes) | wM-Bus frame, format B, with its CRC | CRC-16 | FE FE 0E 0F
//
// cut across notifications (or serial reads, or TCP segments) anywhere.
// The Parser reassembles them, checks both CRCs and hands over each frame
// with the header's signal level and counter; Source runs it over a file,
// stdin, a TCP bridge, a serial port or Bluetooth LE through BlueZ.
package vw1871

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Stream layout.
const (
	syncLen    = 4  // FB FB FB F0
	headerLen  = 11 // after the sync
	trailerLen = 2 + 4
	lenOffset  = syncLen + headerLen // the wM-Bus L byte
	// MaxRecord is the longest record the stream can hold: sync, header,
	// a format-B frame of 256 bytes (L = 255), CRC and end marker.
	MaxRecord = syncLen + headerLen + 256 + trailerLen

	levelOffset   = syncLen + 9
	counterOffset = syncLen + 4
)

var (
	syncMark = []byte{0xFB, 0xFB, 0xFB, 0xF0}
	endMark  = []byte{0xFE, 0xFE, 0x0E, 0x0F}
)

// Frame is one wireless M-Bus frame the device forwarded, with what its
// header says about it.
type Frame struct {
	// Data is the link-layer frame. By default its format-B CRCs have been
	// verified and removed (Stripped is true, L counts the bytes after L,
	// the "none" form wmbus.FormatNone); with ParserOptions.KeepCRC it is the
	// frame as sent, format B with its CRCs (also verified), and Stripped
	// is false. Data belongs to the Parser and is overwritten by the next
	// frame: copy it to keep it.
	Data     []byte
	Stripped bool
	// Level is the signal level the device measured (header byte 9):
	// larger is stronger. The device does not document its unit; real
	// streams show 168–236.
	Level uint8
	// Counter is the header's little-endian counter (bytes 4–5), which
	// steps by one every few frames.
	Counter uint16
	// Time is when the chunk that completed the frame arrived.
	Time time.Time
	// Position is the stream offset of the frame's FB FB FB F0.
	Position int64
}

// Stats counts what the parser saw. Every record that starts with
// FB FB FB F0 ends in exactly one of Frames, BadLength, BadEnd (Cut),
// BadTrailerCRC or BadFrameCRC.
type Stats struct {
	Frames int64 // frames handed over
	// BadFrameCRC: the record is intact (end marker and trailing CRC
	// check) but the radio frame's own CRC does not: the device forwarded
	// a frame damaged on the air.
	BadFrameCRC int64
	// BadTrailerCRC: the end marker is in place but the record's CRC
	// does not check: the stream was damaged between device and us.
	BadTrailerCRC int64
	// Cut: the end marker is missing where the length says it must be, or
	// the stream ended inside the record: the stream was cut (a capture's
	// seam, a reconnect, lost notifications).
	Cut int64
	// BadLength: the L byte is impossible for format B.
	BadLength int64
	// Garbage counts bytes that belong to no frame: between frames, and
	// the remains of dropped records after their FB FB FB F0.
	Garbage int64
	// Bytes is everything fed in.
	Bytes int64
}

// Why records are dropped, as Source reports them to its skip function.
var (
	ErrCut        = errors.New("cut record (end marker missing: the stream was cut)")
	ErrTrailerCRC = errors.New("record CRC mismatch (damaged between device and gateway)")
	ErrFrameCRC   = errors.New("frame CRC mismatch (received damaged by the device)")
	ErrLength     = errors.New("impossible frame length")
)

// Dropped is the number of records dropped for any reason.
func (s Stats) Dropped() int64 { return s.BadFrameCRC + s.BadTrailerCRC + s.Cut + s.BadLength }

// ParserOptions change what the Parser hands over.
type ParserOptions struct {
	// KeepCRC hands frames over in format B with their CRCs instead of
	// CRC-less. Both are verified either way.
	KeepCRC bool
	// OnDrop, if set, hears of every dropped record: why (ErrCut,
	// ErrTrailerCRC, ErrFrameCRC or ErrLength) and the stream offset of
	// its FB FB FB F0.
	OnDrop func(reason error, position int64)
}

// Parser reassembles frames from a VW1871 byte stream fed in chunks of
// any size. Its memory is fixed (a garbage stream does not grow it) and it
// allocates nothing per frame. It is not safe for concurrent use.
type Parser struct {
	opts  ParserOptions
	win   [2 * MaxRecord]byte // unconsumed stream bytes are win[start:end]
	start int
	end   int
	base  int64 // stream offset of win[0]
	out   [256]byte
	stats Stats
}

// NewParser returns a parser.
func NewParser(opts ParserOptions) *Parser { return &Parser{opts: opts} }

// Stats returns the counts so far.
func (p *Parser) Stats() Stats { return p.stats }

// Feed adds a chunk of the stream that arrived at time at, and calls emit
// for every frame it completes, in stream order. Frame.Data is valid only
// during the call.
func (p *Parser) Feed(chunk []byte, at time.Time, emit func(Frame)) {
	p.stats.Bytes += int64(len(chunk))
	for len(chunk) > 0 {
		if p.end == len(p.win) {
			p.compact() // scan leaves less than MaxRecord bytes unconsumed
		}
		n := copy(p.win[p.end:], chunk)
		p.end += n
		chunk = chunk[n:]
		p.scan(at, emit)
	}
}

// Flush ends the stream at time at: a record still incomplete is counted
// as cut, and the bytes after its FB FB FB F0 are scanned once more for
// complete frames (a cut record waits for as many bytes as its length
// byte promises, and may hold whole frames meanwhile); leftover bytes are
// garbage. The parser is then ready for a new stream (after a reconnect,
// say) and keeps its counts.
func (p *Parser) Flush(at time.Time, emit func(Frame)) {
	for p.end-p.start >= syncLen && bytes.Equal(p.win[p.start:p.start+syncLen], syncMark) {
		p.drop(&p.stats.Cut, ErrCut)
		p.scan(at, emit)
	}
	p.stats.Garbage += int64(p.end - p.start)
	p.base += int64(p.end)
	p.start, p.end = 0, 0
}

func (p *Parser) compact() {
	n := copy(p.win[:], p.win[p.start:p.end])
	p.base += int64(p.start)
	p.start, p.end = 0, n
}

// scan consumes every complete record in win[start:end]. What remains is
// either a record waiting for its end (shorter than MaxRecord) or up to 3
// bytes that may begin a sync mark.
func (p *Parser) scan(at time.Time, emit func(Frame)) {
	for {
		buf := p.win[p.start:p.end]
		i := bytes.Index(buf, syncMark)
		if i < 0 {
			keep := syncPrefix(buf)
			p.stats.Garbage += int64(len(buf) - keep)
			p.start = p.end - keep
			return
		}
		p.stats.Garbage += int64(i)
		p.start += i
		buf = buf[i:]
		if len(buf) <= lenOffset {
			return
		}
		l := buf[lenOffset]
		flen := wmbus.EncodedLen(l, wmbus.FormatB)
		if flen == 0 {
			p.drop(&p.stats.BadLength, ErrLength)
			continue
		}
		rlen := lenOffset + flen + trailerLen
		if len(buf) < rlen {
			return
		}
		p.record(buf[:rlen], at, emit)
	}
}

// drop gives up the record at start: its sync is skipped and the bytes
// after it are scanned again, since a cut record often holds the start of
// the next one.
func (p *Parser) drop(count *int64, reason error) {
	*count++
	if p.opts.OnDrop != nil {
		p.opts.OnDrop(reason, p.base+int64(p.start))
	}
	p.start += syncLen
}

func (p *Parser) record(rec []byte, at time.Time, emit func(Frame)) {
	body := rec[:len(rec)-trailerLen]
	trailer := rec[len(rec)-trailerLen:]
	if !bytes.Equal(trailer[2:], endMark) {
		p.drop(&p.stats.Cut, ErrCut)
		return
	}
	if wmbus.CRC(body) != binary.BigEndian.Uint16(trailer) {
		p.drop(&p.stats.BadTrailerCRC, ErrTrailerCRC)
		return
	}
	raw := body[lenOffset:]
	var data []byte
	var err error
	if p.opts.KeepCRC {
		if _, err = wmbus.AppendStripped(p.out[:0], raw, wmbus.FormatB); err == nil {
			data = p.out[:copy(p.out[:], raw)]
		}
	} else {
		data, err = wmbus.AppendStripped(p.out[:0], raw, wmbus.FormatB)
	}
	if err != nil {
		p.drop(&p.stats.BadFrameCRC, ErrFrameCRC)
		return
	}
	p.stats.Frames++
	f := Frame{
		Data:     data,
		Stripped: !p.opts.KeepCRC,
		Level:    rec[levelOffset],
		Counter:  binary.LittleEndian.Uint16(rec[counterOffset:]),
		Time:     at,
		Position: p.base + int64(p.start),
	}
	p.start += len(rec)
	emit(f)
}

// syncPrefix returns how many bytes at the end of b could be the start of
// a sync mark (FB, FB FB or FB FB FB).
func syncPrefix(b []byte) int {
	n := 0
	for n < syncLen-1 && n < len(b) && b[len(b)-1-n] == 0xFB {
		n++
	}
	return n
}
