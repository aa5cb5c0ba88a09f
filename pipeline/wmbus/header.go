package wmbus

import (
	"fmt"
)

// Header is the data link layer header, read from the CRC-less form.
type Header struct {
	L            byte // bytes after L, CRCs excluded
	C            byte // 0x44 = SND_NR
	Manufacturer Manufacturer
	ID           ID
	Version      byte
	DeviceType   byte
	CI           byte // control information of the next layer
}

// ParseHeader reads the DLL header from a CRC-less frame (see AppendDetect).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < headerLen+1 {
		return Header{}, fmt.Errorf("%w: %d bytes, a telegram has at least %d", ErrShort, len(b), headerLen+1)
	}
	if int(b[0]) != len(b)-1 {
		return Header{}, fmt.Errorf("%w: L=%d but %d bytes follow it", ErrLength, b[0], len(b)-1)
	}
	return Header{
		L:            b[0],
		C:            b[1],
		Manufacturer: Manufacturer(uint16(b[2]) | uint16(b[3])<<8),
		ID:           idAt(b[4:8]),
		Version:      b[8],
		DeviceType:   b[9],
		CI:           b[10],
	}, nil
}

// idAt reads a little-endian 4-byte BCD address.
func idAt(b []byte) ID {
	return ID(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
}

// MeterError is a per-telegram error that names the meter it concerns:
// "meter 74493770: wrong key (payload CRC mismatch)". The cause stays
// reachable with errors.Is / errors.As.
type MeterError struct {
	ID  ID
	Err error
}

func (e *MeterError) Error() string { return "meter " + e.ID.String() + ": " + e.Err.Error() }
func (e *MeterError) Unwrap() error { return e.Err }

// ErrorMeter returns the meter a telegram error names, if any.
func ErrorMeter(err error) (ID, bool) {
	// errors.As would allocate; this runs for every frame of a neighbour.
	for err != nil {
		switch e := err.(type) {
		case *MeterError:
			return e.ID, true
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				if id, ok := ErrorMeter(x); ok {
					return id, true
				}
			}
			return 0, false
		default:
			return 0, false
		}
	}
	return 0, false
}

// accessAt is where the access number sits in a CRC-less frame, by the CI
// after the DLL header: the ELL's (0x8C–0x8F) or the TPL's short (0x7A) or
// long (0x72) header. Those bytes are never encrypted.
var accessAt = map[byte]int{0x8C: 12, 0x8D: 12, 0x8E: 12, 0x8F: 12, 0x7A: 11, 0x72: 19}

// PeekAccessNumber reads the access number of a CRC-less frame without
// parsing (or decrypting) it, as Telegram.AccessNumber would give it.
func PeekAccessNumber(plain []byte) (byte, bool) {
	at, ok := AccessNumberAt(plain)
	if !ok {
		return 0, false
	}
	return plain[at], true
}

// AccessNumberAt returns the offset of the access number in a CRC-less
// frame.
func AccessNumberAt(plain []byte) (int, bool) {
	if len(plain) <= headerLen {
		return 0, false
	}
	at, ok := accessAt[plain[headerLen]]
	return at, ok && at < len(plain)
}
