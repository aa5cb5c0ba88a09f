package wmbus

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Sentinels of the two values users type: a meter's ID and its AES key.
var (
	ErrBadID  = errors.New("malformed meter ID")
	ErrBadKey = errors.New("key is not 32 hex digits")
)

// badValue describes what is wrong with a typed value without quoting it
// (a key pasted into the wrong field must never reach a log). Its text is a
// predicate, so callers write "key of meter 74493770 " + err.
type badValue struct {
	kind error
	msg  string
}

func (e *badValue) Error() string { return e.msg }
func (e *badValue) Unwrap() error { return e.kind }

// ParseID parses a meter ID as printed on the meter: 8 decimal digits,
// surrounding blanks ignored. Errors wrap ErrBadID.
func ParseID(s string) (ID, error) {
	s = trimBlanks(s)
	if s == "" {
		return 0, &badValue{ErrBadID, "is missing (the 8-digit number printed on the meter)"}
	}
	if n := utf8.RuneCountInString(s); n != 8 {
		return 0, &badValue{ErrBadID, fmt.Sprintf("must be 8 digits, found %d characters", n)}
	}
	var v uint32
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, &badValue{ErrBadID, fmt.Sprintf("must be 8 digits; character %d is not a digit", i+1)}
		}
		v = v<<4 | uint32(s[i]-'0') // BCD, as sent
	}
	return ID(v), nil
}

// ParseKey parses an AES-128 key written as 32 hex digits, with spaces or
// tabs anywhere (utilities print keys in groups). Errors wrap ErrBadKey and
// say what is wrong and where, never what the key is.
func ParseKey(s string) ([16]byte, error) {
	var key [16]byte
	n, pos := 0, 0
	for _, r := range s {
		pos++
		var v byte
		switch {
		case r == ' ' || r == '\t':
			continue
		case '0' <= r && r <= '9':
			v = byte(r - '0')
		case 'a' <= r && r <= 'f':
			v = byte(r-'a') + 10
		case 'A' <= r && r <= 'F':
			v = byte(r-'A') + 10
		default:
			return [16]byte{}, &badValue{ErrBadKey, fmt.Sprintf("has a character that is not a hex digit at position %d (a key is 32 hex digits 0-9 A-F, spaces allowed)", pos)}
		}
		if n < 32 {
			key[n/2] |= v << (4 * (1 - n%2))
		}
		n++
	}
	if n != 32 {
		return [16]byte{}, &badValue{ErrBadKey, fmt.Sprintf("must be 32 hex digits, found %d", n)}
	}
	return key, nil
}

func trimBlanks(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
