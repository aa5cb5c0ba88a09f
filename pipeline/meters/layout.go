package meters

import (
	"strconv"
	"strings"
)

// The TOML decoder reports where a key is only for the last occurrence of a
// dotted path, so it cannot tell [[meter]] 2 from [[meter]] 5. layout is a
// small scanner over text that already parsed: it finds each table header and
// each key = value line, which gives precise line numbers for messages and
// the byte ranges that Upsert edits.

// item is one table header or one key/value pair.
type item struct {
	header bool     // a [table] or [[array]] header line
	array  bool     // [[...]]
	path   []string // header path, or the key path relative to the table
	table  []string // the table a key/value belongs to
	index  int      // for [[...]] headers and the keys under them: 0-based element index
	line   int      // 1-based line where the item starts
	start  int      // byte offset of the start of that line
	end    int      // byte offset just past the item's last line (incl. newline)
	vstart int      // for key/value: the value's byte range, without the
	vend   int      // surrounding blanks and trailing comment
}

type layout struct {
	items []item
}

// meterHeader returns the item of the i-th [[meter]] header, if any.
func (l *layout) meterHeader(i int) (item, bool) {
	for _, it := range l.items {
		if it.header && it.array && len(it.path) == 1 && it.path[0] == "meter" && it.index == i {
			return it, true
		}
	}
	return item{}, false
}

// meterField returns the line of a field of the i-th [[meter]] table.
func (l *layout) meterField(i int, field string) (item, bool) {
	for _, it := range l.items {
		if !it.header && it.index == i && len(it.table) == 1 && it.table[0] == "meter" &&
			len(it.path) >= 1 && it.path[0] == field {
			return it, true
		}
	}
	return item{}, false
}

// meterLine is the best line to name for the i-th meter: its field, its
// header, or (for meter = [ {...}, ... ]) the line of the array.
func (l *layout) meterLine(i int, field string) int {
	if field != "" {
		if it, ok := l.meterField(i, field); ok {
			return it.line
		}
	}
	if it, ok := l.meterHeader(i); ok {
		return it.line
	}
	return l.keyLine(nil, "meter")
}

// keyLine returns the line of a key directly in the given table (nil: top
// level), or of the header [table.key].
func (l *layout) keyLine(table []string, key string) int {
	for _, it := range l.items {
		if it.header {
			if len(it.path) == len(table)+1 && equalPath(it.path[:len(table)], table) && it.path[len(table)] == key {
				return it.line
			}
			continue
		}
		if equalPath(it.table, table) && len(it.path) >= 1 && it.path[0] == key {
			return it.line
		}
	}
	return 0
}

func equalPath(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// scanLayout scans TOML text. It is meant for text the decoder accepted; on
// anything else it returns what it found so far and never panics.
func scanLayout(data []byte) *layout {
	s := scanner{data: data, line: 1}
	l := &layout{}
	var table []string
	index := 0
	counts := map[string]int{}
	for s.pos < len(data) {
		s.skipBlank()
		if s.pos >= len(data) {
			break
		}
		c := data[s.pos]
		switch {
		case c == '\n':
			s.newline()
			continue
		case c == '\r':
			s.pos++
			continue
		case c == '#':
			s.skipComment()
			continue
		}
		startLine, lineStart := s.line, s.lineStart
		if c == '[' {
			array := s.pos+1 < len(data) && data[s.pos+1] == '['
			if array {
				s.pos += 2
			} else {
				s.pos++
			}
			path := s.key()
			s.skipBlank()
			if array {
				s.expect(']')
			}
			s.expect(']')
			idx := 0
			if array {
				k := strings.Join(path, "\x00")
				idx = counts[k]
				counts[k]++
			}
			s.skipRestOfLine()
			table, index = path, idx
			l.items = append(l.items, item{header: true, array: array, path: path, index: idx,
				line: startLine, start: lineStart, end: s.pos})
			continue
		}
		key := s.key()
		s.skipBlank()
		if !s.expect('=') {
			return l // not TOML; stop rather than guess
		}
		s.skipBlank()
		vstart := s.pos
		s.value()
		vend := s.pos
		for vend > vstart && (data[vend-1] == ' ' || data[vend-1] == '\t' || data[vend-1] == '\r') {
			vend--
		}
		s.skipRestOfLine()
		l.items = append(l.items, item{path: key, table: table, index: index,
			line: startLine, start: lineStart, end: s.pos, vstart: vstart, vend: vend})
	}
	return l
}

type scanner struct {
	data      []byte
	pos       int
	line      int
	lineStart int
}

func (s *scanner) newline() {
	s.pos++
	s.line++
	s.lineStart = s.pos
}

func (s *scanner) skipBlank() {
	for s.pos < len(s.data) && (s.data[s.pos] == ' ' || s.data[s.pos] == '\t') {
		s.pos++
	}
}

func (s *scanner) skipComment() {
	for s.pos < len(s.data) && s.data[s.pos] != '\n' {
		s.pos++
	}
}

// skipRestOfLine moves past the trailing blanks, comment and newline.
func (s *scanner) skipRestOfLine() {
	s.skipComment()
	if s.pos < len(s.data) {
		s.newline()
	}
}

func (s *scanner) expect(c byte) bool {
	s.skipBlank()
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// key reads a dotted key: bare, "basic" or 'literal' parts.
func (s *scanner) key() []string {
	var parts []string
	for {
		s.skipBlank()
		if s.pos >= len(s.data) {
			return parts
		}
		switch c := s.data[s.pos]; {
		case c == '"':
			start := s.pos
			s.basicString()
			raw := string(s.data[start:s.pos])
			if u, err := strconv.Unquote(raw); err == nil {
				parts = append(parts, u)
			} else {
				parts = append(parts, strings.Trim(raw, `"`))
			}
		case c == '\'':
			start := s.pos
			s.literalString()
			parts = append(parts, strings.Trim(string(s.data[start:s.pos]), "'"))
		default:
			start := s.pos
			for s.pos < len(s.data) && isBare(s.data[s.pos]) {
				s.pos++
			}
			if s.pos == start {
				return parts
			}
			parts = append(parts, string(s.data[start:s.pos]))
		}
		s.skipBlank()
		if s.pos < len(s.data) && s.data[s.pos] == '.' {
			s.pos++
			continue
		}
		return parts
	}
}

func isBare(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// value skips one value, which may span lines (multi-line strings, arrays,
// inline tables), and stops before the end of its last line.
func (s *scanner) value() {
	depth := 0
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; c {
		case '"':
			s.basicString()
		case '\'':
			s.literalString()
		case '[', '{':
			depth++
			s.pos++
		case ']', '}':
			depth--
			s.pos++
		case '#':
			if depth <= 0 {
				return
			}
			s.skipComment()
		case '\n':
			if depth <= 0 {
				return
			}
			s.newline()
		default:
			s.pos++
		}
	}
}

// basicString skips a "basic" or """multi-line""" string.
func (s *scanner) basicString() {
	if s.hasPrefix(`"""`) {
		s.pos += 3
		for s.pos < len(s.data) {
			switch s.data[s.pos] {
			case '\\':
				s.pos++
				if s.pos < len(s.data) && s.data[s.pos] == '\n' {
					s.newline()
				} else {
					s.pos++
				}
			case '\n':
				s.newline()
			case '"':
				if s.hasPrefix(`"""`) {
					s.pos += 3
					// Up to two more quotes belong to the content.
					for n := 0; n < 2 && s.pos < len(s.data) && s.data[s.pos] == '"'; n++ {
						s.pos++
					}
					return
				}
				s.pos++
			default:
				s.pos++
			}
		}
		return
	}
	s.pos++
	for s.pos < len(s.data) && s.data[s.pos] != '\n' {
		switch s.data[s.pos] {
		case '\\':
			s.pos += 2
		case '"':
			s.pos++
			return
		default:
			s.pos++
		}
	}
	s.pos = min(s.pos, len(s.data))
}

// literalString skips a 'literal' or ”'multi-line”' string.
func (s *scanner) literalString() {
	if s.hasPrefix(`'''`) {
		s.pos += 3
		for s.pos < len(s.data) {
			if s.data[s.pos] == '\n' {
				s.newline()
				continue
			}
			if s.hasPrefix(`'''`) {
				s.pos += 3
				for n := 0; n < 2 && s.pos < len(s.data) && s.data[s.pos] == '\''; n++ {
					s.pos++
				}
				return
			}
			s.pos++
		}
		return
	}
	s.pos++
	for s.pos < len(s.data) && s.data[s.pos] != '\n' {
		if s.data[s.pos] == '\'' {
			s.pos++
			return
		}
		s.pos++
	}
}

func (s *scanner) hasPrefix(p string) bool {
	return strings.HasPrefix(string(s.data[s.pos:min(s.pos+len(p), len(s.data))]), p)
}
