// Package wmbus is the wireless M-Bus link layer (EN 13757-4): CRCs, frame
// formats A and B, the DLL header, and the extended link and transport layers
// with their AES-128 encryption.
package wmbus

// crcTable is the byte-wise table for the EN 13757 CRC-16 (poly 0x3D65).
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x3D65
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC returns the EN 13757 CRC-16 of b: polynomial 0x3D65, initial value 0,
// not reflected, final XOR 0xFFFF. Every CRC of the protocol uses it.
func CRC(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>8)^x]
	}
	return ^c
}

// CRCUpdate runs the CRC register over b without the final XOR, so a CRC
// can be taken over pieces without copying them together: start from 0,
// feed every piece, and finish with ^c. CRC(b) == ^CRCUpdate(0, b).
func CRCUpdate(c uint16, b []byte) uint16 {
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>8)^x]
	}
	return c
}
