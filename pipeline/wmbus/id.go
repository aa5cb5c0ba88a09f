package wmbus

import (
	"fmt"
	"strconv"
)

// ID is a meter's address as sent: four BCD bytes read little-endian, so the
// printed ID 74493770 is the value 0x74493770. Keeping the raw BCD means a
// malformed (non-decimal) address still has a faithful printed form.
type ID uint32

// String prints the ID the way it is written on the meter: eight digits.
func (id ID) String() string { return fmt.Sprintf("%08X", uint32(id)) }

// ParseID parses an 8-digit meter ID as printed on the meter ("74493770").
func ParseID(s string) (ID, error) {
	if len(s) != 8 {
		return 0, fmt.Errorf("meter ID %q: want 8 digits, got %d characters", s, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("meter ID %q: %q is not a digit", s, s[i])
		}
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("meter ID %q: %w", s, err)
	}
	return ID(v), nil
}

// Manufacturer is the 2-byte manufacturer field (little-endian on the air).
type Manufacturer uint16

// Manufacturer codes of the meters this project targets.
const (
	KAM Manufacturer = 0x2C2D // Kamstrup
	KAW Manufacturer = 0x2C37 // Kamstrup (flowIQ 2200 family)
)

// String returns the three-letter FLAG code, e.g. "KAM". Each letter is five
// bits offset from '@'; a value outside A–Z prints as '?'.
func (m Manufacturer) String() string {
	var b [3]byte
	for i, shift := range [3]uint{10, 5, 0} {
		c := byte(m>>shift)&0x1F + 64
		if c < 'A' || c > 'Z' {
			c = '?'
		}
		b[i] = c
	}
	return string(b[:])
}
