package demod

import "github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"

// Chip patterns, most significant chip first.
const (
	// syncPattern is the last 16 preamble chips ("01" pairs) and the
	// 0x543D sync word. C1 sends it as its first sync word; T1's 0000111101
	// reads the same together with the preamble tail.
	syncPattern = 0x5555543D
	syncChips   = 32
	// The second C1 sync word names the frame format.
	c1SyncA = 0x54CD
	c1SyncB = 0x543D
)

// c1Second maps the second C1 sync word to its frame format (data, not branches).
var c1Second = [...]struct {
	word   uint16
	format wmbus.Format
}{
	{c1SyncA, wmbus.FormatA},
	{c1SyncB, wmbus.FormatB},
}

// threeOfSix is the 3-out-of-6 code word of each nibble 0..F.
var threeOfSix = [16]byte{0x16, 0x0D, 0x0E, 0x0B, 0x1C, 0x19, 0x1A, 0x13, 0x2C, 0x25, 0x26, 0x23, 0x34, 0x31, 0x32, 0x29}

// invalidNibble marks a 6-chip group that is no code word.
const invalidNibble = 0xFF

// fromSix decodes a 6-chip group to its nibble, or invalidNibble.
var fromSix = func() (t [64]byte) {
	for i := range t {
		t[i] = invalidNibble
	}
	for n, c := range threeOfSix {
		t[c] = byte(n)
	}
	return t
}()

// block is one link-layer CRC block: data bytes [start, crc) followed by a
// 2-byte CRC at crc.
type block struct{ start, crc int }

// appendBlocks appends the CRC blocks of an on-air frame of n bytes in
// format f (n = wmbus.EncodedLen of its L byte).
func appendBlocks(dst []block, n int, f wmbus.Format) []block {
	switch f {
	case wmbus.FormatA:
		for off, first := 0, true; off < n; first = false {
			size := 16
			if first {
				size = 10
			}
			size = min(size, n-off-2)
			dst = append(dst, block{off, off + size})
			off += size + 2
		}
	case wmbus.FormatB:
		if n <= 128 {
			return append(dst, block{0, n - 2})
		}
		dst = append(dst, block{0, 126}, block{128, n - 2})
	}
	return dst
}
