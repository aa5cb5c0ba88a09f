package meters

import (
	"errors"
	"fmt"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Sentinel errors, testable with errors.Is on a Problem or a *SyntaxError.
var (
	ErrSyntax       = errors.New("not valid TOML")
	ErrUnknownField = errors.New("unknown field")
	ErrDuplicateID  = errors.New("duplicate meter ID")
	ErrBadKey       = wmbus.ErrBadKey
	ErrBadID        = wmbus.ErrBadID
	ErrMissingID    = errors.New("meter without id")
	ErrBadType      = errors.New("wrong type")
	ErrBadValue     = errors.New("bad value")
)

// Problem is one validation error of an otherwise readable meter list. The
// entry it names is skipped; the rest of the list is used. Its text never
// contains key material: values are described, not quoted.
type Problem struct {
	File  string // base name of the file, e.g. "meters.toml"
	Line  int    // 1-based; 0 when unknown
	Where string // "[[meter]] 2 (74493770)", "[mqtt]", "top level"
	Msg   string // what is wrong, without the location
	Err   error  // one of the sentinels above
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, " line %d", p.Line)
	}
	b.WriteString(": ")
	b.WriteString(p.Msg)
	return b.String()
}

func (p *Problem) Unwrap() error { return p.Err }

// SyntaxError is a meter list that is not valid TOML at all. The whole file
// is rejected; a watcher keeps the last good list.
type SyntaxError struct {
	File      string
	Line, Col int
	Msg       string // the parser's message with anything key-like redacted
}

func (e *SyntaxError) Error() string {
	if e.Col > 0 {
		return fmt.Sprintf("%s line %d, column %d: %s", e.File, e.Line, e.Col, e.Msg)
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s line %d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// redact replaces every run of four or more hex digits (spaces, '_' and '-'
// allowed between them) with "…". The TOML parser quotes the offending text in
// its messages, and that text may be part of a key.
func redact(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		if !isHex(s[i]) {
			b.WriteByte(s[i])
			i++
			continue
		}
		// Extend the run over hex digits and single separators between them.
		j, n, end := i, 0, i
		for j < len(s) {
			if isHex(s[j]) {
				n++
				j++
				end = j
				continue
			}
			if (s[j] == ' ' || s[j] == '_' || s[j] == '-') && j+1 < len(s) && isHex(s[j+1]) {
				j++
				continue
			}
			break
		}
		if n >= 4 {
			b.WriteString("…")
		} else {
			b.WriteString(s[i:end])
		}
		i = end
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// suggest returns the candidate closest to s by edit distance, if it is
// close enough to be a plausible typo.
func suggest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), c); d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && bestD >= len(s) {
		return "" // "x" is two edits from "id" but is no typo of it
	}
	return best
}

// editDistance is the Damerau–Levenshtein distance (optimal string
// alignment), so a swap like "kye" → "key" costs one.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	var d [65][65]int
	for i := 0; i <= len(a); i++ {
		d[i][0] = i
	}
	for j := 0; j <= len(b); j++ {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
