package wmbus

import (
	"errors"
	"fmt"
)

// Format is how link-layer CRCs are laid out in a frame's bytes.
type Format uint8

const (
	// FormatNone is the usual textual form: all link-layer CRCs removed,
	// L = number of bytes after L.
	FormatNone Format = iota
	// FormatA: a 10-byte first block and 16-byte blocks, each followed by
	// its CRC (high byte first); L excludes the CRCs.
	FormatA
	// FormatB: L includes the CRCs; one CRC at the end of a frame of at most
	// 128 bytes, else a first CRC at bytes 126–127 and one at the end.
	FormatB
)

func (f Format) String() string {
	switch f {
	case FormatA:
		return "A"
	case FormatB:
		return "B"
	default:
		return "none"
	}
}

const (
	headerLen   = 10  // L C M M A A A A A A
	blockLen    = 16  // format A data blocks after the first
	bBlock2End  = 126 // format B: first CRC covers bytes 0..125
	maxFrameLen = 256 // L is one byte
)

// Link-layer errors. Callers match them with errors.Is.
var (
	ErrShort     = errors.New("frame too short")
	ErrLength    = errors.New("length field does not match the frame")
	ErrBlockCRC  = errors.New("link-layer block CRC mismatch")
	ErrCRCLayout = errors.New("leftover link-layer CRC bytes")
)

// EncodedLen returns the number of bytes, L byte included, that a frame with
// length field l occupies on the air in format f, or 0 when l is impossible
// for f. A receiver reads the L byte and then knows how many bytes to take.
func EncodedLen(l byte, f Format) int {
	n := int(l)
	switch f {
	case FormatA:
		if n < headerLen-1 {
			return 0
		}
		blocks := 1 + (n-(headerLen-1)+blockLen-1)/blockLen
		return 1 + n + 2*blocks
	case FormatB:
		total := 1 + n
		if total < headerLen+2 || (total > 128 && total < 131) {
			return 0
		}
		return total
	default:
		if n < headerLen-1 {
			return 0
		}
		return 1 + n
	}
}

// AppendStripped verifies the link-layer CRCs of raw (exactly one frame in
// format f) and appends the CRC-less form to dst, with L rewritten to count
// the bytes after it. It allocates nothing when dst has room.
func AppendStripped(dst, raw []byte, f Format) ([]byte, error) {
	if len(raw) < 1 {
		return dst, ErrShort
	}
	want := EncodedLen(raw[0], f)
	if want == 0 {
		return dst, fmt.Errorf("%w: L=%d is impossible in format %s", ErrLength, raw[0], f)
	}
	if len(raw) != want {
		return dst, fmt.Errorf("%w: L=%d means %d bytes in format %s, got %d", ErrLength, raw[0], want, f, len(raw))
	}
	start := len(dst)
	switch f {
	case FormatNone:
		return append(dst, raw...), nil
	case FormatA:
		for off, block := 0, 0; off < len(raw); block++ {
			n := blockLen
			if block == 0 {
				n = headerLen
			}
			if rest := len(raw) - off - 2; n > rest {
				n = rest
			}
			if err := checkBlock(raw[off:off+n], raw[off+n:off+n+2], block); err != nil {
				return dst[:start], err
			}
			dst = append(dst, raw[off:off+n]...)
			off += n + 2
		}
	case FormatB:
		if len(raw) <= 128 {
			if err := checkBlock(raw[:len(raw)-2], raw[len(raw)-2:], 0); err != nil {
				return dst, err
			}
			dst = append(dst, raw[:len(raw)-2]...)
			break
		}
		if err := checkBlock(raw[:bBlock2End], raw[bBlock2End:bBlock2End+2], 0); err != nil {
			return dst, err
		}
		if err := checkBlock(raw[bBlock2End+2:len(raw)-2], raw[len(raw)-2:], 1); err != nil {
			return dst, err
		}
		dst = append(dst, raw[:bBlock2End]...)
		dst = append(dst, raw[bBlock2End+2:len(raw)-2]...)
	}
	dst[start] = byte(len(dst) - start - 1)
	return dst, nil
}

func checkBlock(data, crc []byte, block int) error {
	if got, want := CRC(data), uint16(crc[0])<<8|uint16(crc[1]); got != want {
		return fmt.Errorf("%w in block %d: computed %04X, frame says %04X", ErrBlockCRC, block+1, got, want)
	}
	return nil
}

// Detect tells which form b is in and returns it without link-layer CRCs.
// Format B is tried first (L = len−1 with a valid end CRC), then A, then the
// CRC-less form. A frame whose L fits none of them, or that carries CRC
// bytes which do not verify, gets an error saying so rather than a guess.
func Detect(b []byte) ([]byte, Format, error) {
	out, f, err := AppendDetect(nil, b)
	if err != nil {
		return nil, f, err
	}
	return out, f, nil
}

// AppendDetect is Detect appending the CRC-less form to dst; it allocates
// nothing when dst has room (at most len(b) bytes are appended).
func AppendDetect(dst, b []byte) ([]byte, Format, error) {
	if len(b) < headerLen+1 {
		return dst, FormatNone, fmt.Errorf("%w: %d bytes, a telegram has at least %d", ErrShort, len(b), headerLen+1)
	}
	l := int(b[0])
	if EncodedLen(b[0], FormatB) == len(b) && verifiesB(b) {
		out, err := AppendStripped(dst, b, FormatB)
		return out, FormatB, err
	}
	if EncodedLen(b[0], FormatA) == len(b) {
		out, err := AppendStripped(dst, b, FormatA)
		return out, FormatA, err
	}
	switch {
	case l+1 == len(b):
		return append(dst, b...), FormatNone, nil
	case l+1 < len(b):
		extra := len(b) - l - 1
		if extra%2 == 0 {
			return dst, FormatNone, fmt.Errorf("%w: L=%d but %d bytes follow it; %d extra bytes look like CRCs that do not verify", ErrCRCLayout, l, len(b)-1, extra)
		}
		return dst, FormatNone, fmt.Errorf("%w: L=%d but %d bytes follow it", ErrLength, l, len(b)-1)
	default:
		return dst, FormatNone, fmt.Errorf("%w: L=%d but only %d bytes follow it (truncated)", ErrShort, l, len(b)-1)
	}
}

// verifiesB reports whether the format B CRCs of b (whose length already
// fits its L in format B) check, without building an error.
func verifiesB(b []byte) bool {
	crcAt := func(data, crc []byte) bool { return CRC(data) == uint16(crc[0])<<8|uint16(crc[1]) }
	if len(b) <= 128 {
		return crcAt(b[:len(b)-2], b[len(b)-2:])
	}
	return crcAt(b[:bBlock2End], b[bBlock2End:bBlock2End+2]) && crcAt(b[bBlock2End+2:len(b)-2], b[len(b)-2:])
}
