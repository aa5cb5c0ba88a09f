package demod

import (
	"math/rand/v2"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// The syndrome table says what flipping each bit does to a block's CRC
// check, for every bit of the longest block: checked against the CRC
// itself. It also shows the weakness the correction guards against: bits
// 151 apart have the same syndrome.
func TestBitSyndromes(t *testing.T) {
	var f corrector
	f.init()
	rng := rand.New(rand.NewPCG(1, 1))
	raw := make([]byte, 128)
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	b := block{start: 0, crc: 126}
	c := wmbus.CRC(raw[:126])
	raw[126], raw[127] = byte(c>>8), byte(c)
	check := func() uint16 { return wmbus.CRC(raw[:126]) ^ (uint16(raw[126])<<8 | uint16(raw[127])) }
	first, last := 8, 128*8
	f.syndromes(b, first, last)
	for k := first; k < last; k++ {
		raw[k/8] ^= 1 << uint(7-k%8)
		if got := check(); got != f.bitSyn[k-first] {
			t.Fatalf("bit %d: flipping it gives syndrome %04X, table says %04X", k, got, f.bitSyn[k-first])
		}
		raw[k/8] ^= 1 << uint(7-k%8)
	}
	if f.bitSyn[100-first] != f.bitSyn[251-first] {
		t.Errorf("bits 100 and 251: syndromes %04X and %04X; the CRC's period is 151", f.bitSyn[100-first], f.bitSyn[251-first])
	}
}

// correctionBench is a decoder holding one format B block of 38 bytes with
// valid CRC, every chip decided with reliability 10 and noise energy 1.
func correctionBench(t *testing.T) (*decoder, block) {
	d, err := derive(Config{SampleRate: 1.6e6})
	if err != nil {
		t.Fatal(err)
	}
	dc := &decoder{}
	dc.init(&d)
	rng := rand.New(rand.NewPCG(3, 3))
	dc.raw = dc.raw[:0]
	for range 36 {
		dc.raw = append(dc.raw, byte(rng.Uint32()))
	}
	dc.raw[0] = 37
	c := wmbus.CRC(dc.raw)
	dc.raw = append(dc.raw, byte(c>>8), byte(c))
	for k := range 38 * 8 {
		dc.soft[k] = -10
		if dc.raw[k/8]>>uint(7-k%8)&1 == 1 {
			dc.soft[k] = 10
		}
	}
	// Moments of a constant envelope of energy 10 in noise of energy 1.
	dc.mom = [2][3]float64{{1, 11, 142}, {1, 11, 142}}
	return dc, block{0, 36}
}

// chipError makes chip k wrong with reliability r.
func chipError(dc *decoder, k int, r float32) {
	dc.raw[k/8] ^= 1 << uint(7-k%8)
	if dc.soft[k] > 0 {
		dc.soft[k] = -r
	} else {
		dc.soft[k] = r
	}
}

// The correction flips a weak wrong chip back, but refuses when the CRC
// cannot tell the weak chip from a not much stronger one 151 bits away,
// and a block whose two errors cancel in the CRC is not taken as clean
// when both chips were weak.
func TestCorrectionAmbiguity(t *testing.T) {
	dc, b := correctionBench(t)
	want := append([]byte(nil), dc.raw...)
	chipError(dc, 100, 0.5)
	if n, ok := dc.correctBlock(b); !ok || n != 1 || string(dc.raw) != string(want) {
		t.Errorf("one weak error: corrected %d bits (%v), frame right: %v", n, ok, string(dc.raw) == string(want))
	}

	// The real error at 100 looks fairly reliable (4, above the weak
	// limit); 251 is right but weaker (3). Flipping 251 would make the
	// CRC match on a wrong frame.
	dc, b = correctionBench(t)
	chipError(dc, 100, 4)
	dc.soft[251] *= 0.3
	if n, ok := dc.correctBlock(b); ok {
		t.Errorf("ambiguous error: accepted with %d bits flipped", n)
	}
	// The same with the alias clearly more reliable than the weak chip.
	dc, b = correctionBench(t)
	want = append([]byte(nil), dc.raw...)
	chipError(dc, 100, 0.2)
	dc.soft[251] *= 0.6
	if n, ok := dc.correctBlock(b); !ok || n != 1 || string(dc.raw) != string(want) {
		t.Errorf("clear error: corrected %d bits (%v), frame right: %v", n, ok, string(dc.raw) == string(want))
	}

	// Two errors 151 bits apart pass the CRC.
	dc, _ = correctionBench(t)
	if !dc.surelyClean(38, wmbus.FormatB) {
		t.Error("a clean block refused")
	}
	chipError(dc, 60, 1)
	chipError(dc, 211, 1)
	if n, ok := dc.correctBlock(b); !ok || n != 0 {
		t.Fatalf("cancelling errors: CRC check says %d bits, %v", n, ok)
	}
	if dc.surelyClean(38, wmbus.FormatB) {
		t.Error("two weak errors that cancel in the CRC taken as a clean block")
	}
}
