package wmbus

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// encode builds the on-air bytes of a CRC-less frame in format f; it is the
// inverse of AppendStripped and lets the tests round-trip every length.
func encode(plain []byte, f Format) []byte {
	switch f {
	case FormatA:
		out := []byte{}
		for off, block := 0, 0; off < len(plain); block++ {
			n := blockLen
			if block == 0 {
				n = headerLen
			}
			n = min(n, len(plain)-off)
			out = append(out, plain[off:off+n]...)
			c := CRC(plain[off : off+n])
			out = append(out, byte(c>>8), byte(c))
			off += n
		}
		return out
	case FormatB:
		total := len(plain) + 2
		if total > 128 {
			total += 2
		}
		b := append([]byte{byte(total - 1)}, plain[1:]...)
		if total <= 128 {
			c := CRC(b)
			return append(b, byte(c>>8), byte(c))
		}
		first := append([]byte(nil), b[:bBlock2End]...)
		c := CRC(first)
		first = append(first, byte(c>>8), byte(c))
		rest := b[bBlock2End:]
		c = CRC(rest)
		return append(append(first, rest...), byte(c>>8), byte(c))
	}
	return plain
}

func TestRoundTripAllLengths(t *testing.T) {
	for _, f := range []Format{FormatA, FormatB} {
		for l := headerLen - 1; l < 250; l++ {
			plain := make([]byte, l+1)
			plain[0] = byte(l)
			for i := 1; i < len(plain); i++ {
				plain[i] = byte(i*7 + l)
			}
			raw := encode(plain, f)
			if f == FormatB && EncodedLen(raw[0], f) == 0 {
				continue
			}
			if got := EncodedLen(raw[0], f); got != len(raw) {
				t.Fatalf("%s L=%d: EncodedLen=%d, encoded %d", f, l, got, len(raw))
			}
			got, err := AppendStripped(nil, raw, f)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s L=%d: strip = %x, %v", f, l, got, err)
			}
			got, gf, err := Detect(raw)
			if err != nil || gf != f || !bytes.Equal(got, plain) {
				t.Fatalf("%s L=%d: Detect = %s %x, %v", f, l, gf, got, err)
			}
		}
	}
}

func TestDetectRealFrameB(t *testing.T) {
	raw, _ := hex.DecodeString("25442D2C703749741F168D20B4231B02216F07DDD3EFA318553DDFEE5134DB3985C5DB84A7E6")
	plain, f, err := Detect(raw)
	if err != nil || f != FormatB || int(plain[0]) != len(plain)-1 || len(plain) != len(raw)-2 {
		t.Fatalf("Detect = %s %x %v", f, plain, err)
	}
	none, f, err := Detect(plain)
	if err != nil || f != FormatNone || !bytes.Equal(none, plain) {
		t.Fatalf("Detect(CRC-less) = %s %v", f, err)
	}
}

func TestDetectErrors(t *testing.T) {
	raw, _ := hex.DecodeString("25442D2C703749741F168D20B4231B02216F07DDD3EFA318553DDFEE5134DB3985C5DB84A7E6")
	plain, _, _ := Detect(raw)
	flipped := append([]byte(nil), raw...)
	flipped[20] ^= 0x10
	withCRC := append(append([]byte(nil), plain...), 0x12, 0x34)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"truncated", raw[:20], ErrShort},
		{"leftover CRC bytes", withCRC, ErrCRCLayout},
		{"tiny", raw[:5], ErrShort},
	}
	for _, tc := range tests {
		if _, _, err := Detect(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	// A flipped bit in a format B frame no longer verifies as B; it is then
	// taken as the CRC-less form, whose payload check (ELL CRC) catches it.
	if _, f, err := Detect(flipped); err != nil || f != FormatNone {
		t.Errorf("flipped: %s %v", f, err)
	}
	if _, err := AppendStripped(nil, flipped, FormatB); !errors.Is(err, ErrBlockCRC) {
		t.Errorf("flipped strip as B: %v", err)
	}
}
