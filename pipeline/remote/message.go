package remote

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Frame is one frame read from an MQTT message.
type Frame struct {
	Data []byte // the frame; aliases the Parser's buffer until its next Parse
	// Stripped says Data is CRC-less (a receiver's message); a hex line
	// may carry CRCs, which the decoder detects, checks and removes.
	Stripped bool
	Radio    wmbus.Radio
	Time     time.Time // when the receiver heard it; zero when not said
}

// ErrMessage marks an MQTT payload that is not a frame.
var ErrMessage = errors.New("not a frame message")

// MaxPayload bounds a message; a frame is at most 256 bytes, so its
// message is well under 1 KB.
const MaxPayload = 4096

// maxNames bounds the receiver names kept as strings, so that a publisher
// sending ever new names cannot grow the decoder.
const maxNames = 1024

// Parser reads the payloads a decoder subscribes to: a receiver's JSON
// message (FrameInfo's fields: frame, mode, frame_format, level_dbfs,
// snr_db, offset_hz, device_level, time, receiver; others are ignored), or
// a line of hex in any form wmbus.ParseHexLine accepts ("MODE;…;0xHEX",
// what ESP32 bridges publish). A payload without a receiver name is named
// by its topic. The zero value is ready; not safe for concurrent use.
type Parser struct {
	buf   []byte
	names map[string]string
}

// Parse reads one payload into f. It allocates nothing for a receiver's
// JSON message once its receiver name has been seen.
func (p *Parser) Parse(topic string, payload []byte, f *Frame) error {
	*f = Frame{}
	if len(payload) > MaxPayload {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrMessage, len(payload), MaxPayload)
	}
	body := bytes.TrimSpace(payload)
	if len(body) > 0 && body[0] == '{' {
		if err := p.parseJSON(body, f); err != nil {
			return err
		}
		// A receiver's message carries the frame without CRCs, checked
		// by the receiver: no detection, which could take a CRC-less
		// frame for one with CRCs by a chance match.
		f.Stripped = true
	} else {
		data, mode, err := wmbus.AppendHexLine(p.buf[:0], string(body))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMessage, err)
		}
		p.buf = data
		f.Data, f.Radio.Mode = data, mode
	}
	if len(f.Data) == 0 {
		return fmt.Errorf("%w: no frame", ErrMessage)
	}
	if f.Radio.Receiver == "" {
		f.Radio.Receiver = p.topicName(topic)
	}
	return nil
}

// parseJSON reads a flat JSON object. Values of fields it does not use may
// be anything, nested or not.
func (p *Parser) parseJSON(b []byte, f *Frame) error {
	s := scanner{b: b}
	s.space()
	if !s.eat('{') {
		return s.fail("want an object")
	}
	s.space()
	if s.eat('}') {
		return fmt.Errorf("%w: empty object", ErrMessage)
	}
	for {
		s.space()
		key, ok := s.str()
		if !ok {
			return s.fail("want a field name")
		}
		s.space()
		if !s.eat(':') {
			return s.fail("want :")
		}
		s.space()
		if err := p.field(&s, key, f); err != nil {
			return err
		}
		s.space()
		if s.eat('}') {
			s.space()
			if s.i != len(s.b) {
				return s.fail("data after the object")
			}
			return nil
		}
		if !s.eat(',') {
			return s.fail("want , or }")
		}
	}
}

func (p *Parser) field(s *scanner, key []byte, f *Frame) error {
	switch string(key) {
	case "frame":
		v, ok := s.str()
		if !ok {
			return s.fail("frame: want a string of hex")
		}
		if len(v)%2 != 0 || len(v) > 2*(256+2*16) {
			return fmt.Errorf("%w: frame: %d hex digits", ErrMessage, len(v))
		}
		p.buf = append(p.buf[:0], make([]byte, len(v)/2)...)
		if _, err := hex.Decode(p.buf, v); err != nil {
			return fmt.Errorf("%w: frame: %v", ErrMessage, err)
		}
		f.Data = p.buf
	case "mode", "frame_format", "receiver":
		v, ok := s.str()
		if !ok {
			return s.fail(string(key) + ": want a string")
		}
		switch string(key) {
		case "mode":
			f.Radio.Mode = p.name(v)
		case "frame_format":
			f.Radio.Format = p.name(v)
		default:
			if len(v) > 0 {
				f.Radio.Receiver = p.name(v)
			}
		}
	case "level_dbfs", "snr_db", "offset_hz", "device_level":
		v, ok := s.number()
		if !ok {
			return s.fail(string(key) + ": want a number")
		}
		switch string(key) {
		case "level_dbfs":
			f.Radio.LevelDBFS = v
		case "snr_db":
			f.Radio.SNRdB = v
		case "offset_hz":
			f.Radio.OffsetHz = v
		default:
			f.Radio.DeviceLevel = int(v)
		}
	case "time":
		v, ok := s.str()
		if !ok {
			return s.fail("time: want a string")
		}
		t, err := parseTime(v)
		if err != nil {
			return fmt.Errorf("%w: time %q: want RFC 3339", ErrMessage, v)
		}
		f.Time = t
	default:
		if !s.skip() {
			return s.fail("bad value of " + strconv.Quote(string(key)))
		}
	}
	return nil
}

// name returns b as a string, the same string each time for names seen
// before (receivers, modes, formats), so steady traffic allocates nothing.
func (p *Parser) name(b []byte) string {
	if s, ok := p.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if p.names == nil {
		p.names = map[string]string{}
	}
	if len(p.names) < maxNames {
		p.names[s] = s
	}
	return s
}

func (p *Parser) topicName(topic string) string {
	if s, ok := p.names[topic]; ok {
		return s
	}
	if p.names == nil {
		p.names = map[string]string{}
	}
	if len(p.names) < maxNames {
		p.names[topic] = topic
	}
	return topic
}

// scanner reads the JSON of one message.
type scanner struct {
	b   []byte
	i   int
	esc []byte // unescaped string, when it had escapes
}

func (s *scanner) fail(what string) error {
	return fmt.Errorf("%w: JSON at byte %d: %s", ErrMessage, s.i, what)
}

func (s *scanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string; the result aliases the payload, or the scanner's
// buffer when the string had escapes.
func (s *scanner) str() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start, plain := s.i, true
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if plain {
				return v, true
			}
			return s.unescape(v)
		case c == '\\':
			plain = false
			s.i += 2
		case c < 0x20:
			return nil, false
		default:
			s.i++
		}
	}
	return nil, false
}

func (s *scanner) unescape(v []byte) ([]byte, bool) {
	q, err := strconv.Unquote(`"` + string(v) + `"`)
	if err != nil {
		return nil, false
	}
	s.esc = append(s.esc[:0], q...)
	return s.esc, true
}

// number reads a JSON number.
func (s *scanner) number() (float64, bool) {
	start := s.i
	for s.i < len(s.b) && strings.IndexByte("+-.0123456789eE", s.b[s.i]) >= 0 {
		s.i++
	}
	return parseNumber(s.b[start:s.i])
}

// parseNumber reads -?digits[.digits] without allocating, and anything
// else JSON allows through strconv.
func parseNumber(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 32 {
		return 0, false
	}
	i, neg := 0, false
	if b[0] == '-' {
		i, neg = 1, true
	}
	var mant uint64
	digits, frac, dot := 0, 0, false
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9' && digits < 18:
			mant = mant*10 + uint64(c-'0')
			digits++
			if dot {
				frac++
			}
		case c == '.' && !dot && digits > 0:
			dot = true
		default:
			v, err := strconv.ParseFloat(string(b), 64)
			return v, err == nil
		}
	}
	if digits == 0 || (dot && frac == 0) {
		return 0, false
	}
	v := float64(mant) / pow10[frac]
	if neg {
		v = -v
	}
	return v, true
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// skip passes over any JSON value.
func (s *scanner) skip() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		s.i++
		for first := true; ; first = false {
			s.space()
			if s.eat(end) {
				return true
			}
			if !first && !s.eat(',') {
				return false
			}
			s.space()
			if end == '}' {
				if _, ok := s.str(); !ok {
					return false
				}
				s.space()
				if !s.eat(':') {
					return false
				}
				s.space()
			}
			if !s.skip() {
				return false
			}
		}
	case c == 't' || c == 'f' || c == 'n':
		for _, w := range [...]string{"true", "false", "null"} {
			if len(s.b)-s.i >= len(w) && string(s.b[s.i:s.i+len(w)]) == w {
				s.i += len(w)
				return true
			}
		}
		return false
	default:
		_, ok := s.number()
		return ok
	}
}

// parseTime reads RFC 3339 times as receivers write them (UTC, "Z") without
// allocating, and any other RFC 3339 time through the time package.
func parseTime(b []byte) (time.Time, error) {
	// 2006-01-02T15:04:05[.fraction]Z
	if len(b) >= 20 && len(b) <= 30 && b[len(b)-1] == 'Z' && b[4] == '-' && b[7] == '-' && b[10] == 'T' && b[13] == ':' && b[16] == ':' {
		num := func(at, n int) (int, bool) {
			v := 0
			for _, c := range b[at : at+n] {
				if c < '0' || c > '9' {
					return 0, false
				}
				v = v*10 + int(c-'0')
			}
			return v, true
		}
		y, ok1 := num(0, 4)
		mo, ok2 := num(5, 2)
		d, ok3 := num(8, 2)
		h, ok4 := num(11, 2)
		mi, ok5 := num(14, 2)
		sec, ok6 := num(17, 2)
		ns, okf := 0, true
		if len(b) > 20 {
			if b[19] != '.' || len(b) == 21 {
				okf = false
			} else {
				digits := len(b) - 21
				ns, okf = num(20, digits)
				for range 9 - digits {
					ns *= 10
				}
			}
		} else if b[19] != 'Z' {
			okf = false
		}
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && okf && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && sec < 60 {
			return time.Date(y, time.Month(mo), d, h, mi, sec, ns, time.UTC), nil
		}
	}
	return time.Parse(time.RFC3339Nano, string(b))
}
