package wmbus

import (
	"errors"
	"fmt"
	"strings"
)

// ErrHexLine marks a text line that is not a telegram.
var ErrHexLine = errors.New("not a hex telegram")

// ParseHexLine reads one telegram written as text: plain hex in any case,
// optionally prefixed 0x, with spaces, '|' or '_' anywhere; or a receiver
// line "MODE;CRC;…;0xHEX" such as rtl-wmbus prints
// ("T1;1;1;2019-04-11 10:31:34.000;97;148;94623155;0x…").
func ParseHexLine(s string) ([]byte, error) {
	b, _, err := AppendHexLine(nil, s)
	return b, err
}

// AppendHexLine is ParseHexLine appending to dst, without allocating when
// dst has room. mode is the receiver line's first field ("T1", "C1"), or
// "" for plain hex; it is a substring of s.
func AppendHexLine(dst []byte, s string) (out []byte, mode string, err error) {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		if j := strings.IndexByte(s, ';'); j > 0 {
			mode = strings.TrimSpace(s[:j])
		}
		s = strings.TrimSpace(s[i+1:])
		if !strings.HasPrefix(s, "0x") && !strings.HasPrefix(s, "0X") {
			return dst, "", fmt.Errorf("%w: receiver line's last field does not start with 0x", ErrHexLine)
		}
	}
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s = s[2:]
	}
	start := len(dst)
	var hi byte
	half := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		case c == ' ' || c == '\t' || c == '|' || c == '_':
			continue
		default:
			return dst[:start], "", fmt.Errorf("%w: character %q at position %d", ErrHexLine, c, i+1)
		}
		if half {
			dst = append(dst, hi<<4|v)
		} else {
			hi = v
		}
		half = !half
	}
	if half {
		return dst[:start], "", fmt.Errorf("%w: odd number of hex digits", ErrHexLine)
	}
	if len(dst) == start {
		return dst, "", fmt.Errorf("%w: no hex digits", ErrHexLine)
	}
	return dst, mode, nil
}
