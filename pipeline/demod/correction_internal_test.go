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
