package wmbus

// ID is a meter's address as sent: four BCD bytes read little-endian, so the
// printed ID 74493770 is the value 0x74493770. Keeping the raw BCD means a
// malformed (non-decimal) address still has a faithful printed form.
type ID uint32

// String prints the ID the way it is written on the meter: eight digits.
func (id ID) String() string { return string(id.Append(make([]byte, 0, 8))) }

// Append appends the ID's eight digits (hex digits of the raw BCD, so a
// malformed address still prints faithfully).
func (id ID) Append(b []byte) []byte {
	const digits = "0123456789ABCDEF"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[uint32(id)>>uint(shift)&15])
	}
	return b
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
