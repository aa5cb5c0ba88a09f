package vw1871

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// realFrame is one real telegram of the test vectors in both link-layer
// forms.
type realFrame struct {
	name     string
	formatB  []byte // as the device forwards it
	stripped []byte // CRC-less, what the parser hands over
}

// realFrames returns every test vector as a format-B frame with valid
// CRCs: the ones captured in format B as they are, the CRC-less ones with
// format-B CRCs added.
func realFrames(tb testing.TB) []realFrame {
	tb.Helper()
	var out []realFrame
	for _, v := range testvectors.Load(tb) {
		b, err := hex.DecodeString(v.Frame)
		if err != nil {
			tb.Fatalf("%s: %v", v.Name, err)
		}
		stripped, f, err := wmbus.Detect(b)
		if err != nil {
			tb.Fatalf("%s: %v", v.Name, err)
		}
		fb := b
		if f != wmbus.FormatB {
			fb = toFormatB(tb, stripped)
		}
		out = append(out, realFrame{name: v.Name, formatB: fb, stripped: stripped})
	}
	if len(out) < 40 {
		tb.Fatalf("only %d vectors", len(out))
	}
	return out
}

// toFormatB adds format-B CRCs to a CRC-less frame (short frames only: one
// CRC block).
func toFormatB(tb testing.TB, stripped []byte) []byte {
	tb.Helper()
	if len(stripped)+2 > 128 {
		tb.Fatalf("frame of %d bytes needs two format-B blocks", len(stripped))
	}
	b := append([]byte{}, stripped...)
	b[0] = byte(len(b) + 1)
	return binary.BigEndian.AppendUint16(b, wmbus.CRC(b))
}

// record wraps a format-B frame as the device sends it.
func record(frameB []byte, counter uint16, level byte) []byte {
	r := []byte{0xFB, 0xFB, 0xFB, 0xF0, 0x11, 0x01, 0x25, 0x08, 0, 0, 0x91, 0x62, 0x61, level, 0x01}
	binary.LittleEndian.PutUint16(r[8:], counter)
	r = append(r, frameB...)
	r = binary.BigEndian.AppendUint16(r, wmbus.CRC(r))
	return append(r, 0xFE, 0xFE, 0x0E, 0x0F)
}

// noise returns n bytes between frames that hold no complete sync mark but
// plenty of its pieces and of end markers.
func noise(rng *rand.Rand, n int) []byte {
	pieces := [][]byte{{0xFB}, {0xFB, 0xFB}, {0xFB, 0xFB, 0xFB}, {0xF0}, {0xFE, 0xFE, 0x0E, 0x0F}, {0x25}}
	var b []byte
	for len(b) < n {
		if rng.IntN(2) == 0 {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		} else {
			b = append(b, byte(rng.IntN(256)))
		}
	}
	b = b[:n]
	for i := bytes.Index(b, syncMark); i >= 0; i = bytes.Index(b, syncMark) {
		b[i+3] = 0
	}
	return b
}

// want is what a test expects a frame to come out as.
type want struct {
	name    string
	data    []byte
	level   uint8
	counter uint16
	pos     int64
}

// buildStream lays every real frame out as records with noise between
// them, and returns the stream, what must come out and the noise length.
func buildStream(tb testing.TB, rng *rand.Rand, frames []realFrame, maxNoise int) ([]byte, []want, int) {
	var stream []byte
	var wants []want
	garbage := 0
	for i, f := range frames {
		n := rng.IntN(maxNoise + 1)
		stream = append(stream, noise(rng, n)...)
		garbage += n
		level := byte(168 + rng.IntN(69))
		counter := uint16(0x4000 + i/3)
		wants = append(wants, want{name: f.name, data: f.stripped, level: level, counter: counter, pos: int64(len(stream))})
		stream = append(stream, record(f.formatB, counter, level)...)
	}
	return stream, wants, garbage
}

// collect feeds chunks and returns copies of what came out.
func collect(p *Parser, chunks ...[]byte) []Frame {
	var got []Frame
	emit := func(f Frame) {
		f.Data = append([]byte(nil), f.Data...)
		got = append(got, f)
	}
	for _, c := range chunks {
		p.Feed(c, testTime, emit)
	}
	p.Flush(testTime, emit)
	return got
}

func checkFrames(t *testing.T, got []Frame, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("%d frames, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		g := got[i]
		if !bytes.Equal(g.Data, w.data) || !g.Stripped || g.Level != w.level || g.Counter != w.counter || g.Position != w.pos || !g.Time.Equal(testTime) {
			t.Fatalf("frame %d (%s): got data %X stripped %v level %d counter %#x pos %d\nwant data %X level %d counter %#x pos %d",
				i, w.name, g.Data, g.Stripped, g.Level, g.Counter, g.Position, w.data, w.level, w.counter, w.pos)
		}
	}
}
