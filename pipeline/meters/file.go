package meters

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Radio holds the [radio] section. Values stay text: the command line parses
// them with the same parsers as its flags, so both spellings mean the same.
// An empty string (or nil Modes, nil PPM) means "not set here".
type Radio struct {
	Input     string   // file.cu8, -, rtltcp://host:port, rtlsdr://INDEX|SERIAL, hex:-, hex:FILE, hex:tcp://host:port
	Format    string   // sample format of a file/stdin input, e.g. "cu8"
	Center    string   // tuned centre frequency, e.g. "868.95M"
	Channel   string   // wM-Bus channel frequency
	Rate      string   // sample rate, e.g. "1.6M"
	Gain      string   // "auto" or dB
	PPM       *int     // tuner frequency correction
	Modes     []string // e.g. ["C1", "T1"]
	ChipRate  string   // e.g. "100k" for flowIQ 2102 at 915–928 MHz
	Deviation string   // e.g. "45k"
}

// MQTT holds the [mqtt] section. Empty strings and nil pointers mean "not
// set here" (defaults or the add-on's broker apply).
type MQTT struct {
	URL             string // tcp://, ssl://, tls://, ws://, wss://
	Username        string
	Password        string // a secret: never logged (see LogValue)
	ClientID        string
	CAFile          string
	DiscoveryPrefix string
	StatusTopic     string // Home Assistant's birth topic
	BaseTopic       string
	Retain          *bool
	MeterTimeout    time.Duration // 0: not set
}

// Snapshot is one immutable, validated state of the meter list. Share it
// freely; never modify it.
type Snapshot struct {
	Path     string  // the file it was read from ("" for an overlay-only list)
	Meters   []Meter // valid entries in file order, enabled and disabled
	Radio    Radio
	MQTT     MQTT
	Problems []error // per-entry problems (*Problem); the entries named are skipped

	index map[wmbus.ID]int // ID → position in Meters
}

// Key returns the AES key of an enabled meter that has one. The slice points
// into the snapshot (no allocation); callers must not modify it.
func (s *Snapshot) Key(id wmbus.ID) ([]byte, bool) {
	if s == nil {
		return nil, false
	}
	i, ok := s.index[id]
	if !ok {
		return nil, false
	}
	m := &s.Meters[i]
	if !m.Enabled || !m.HasKey {
		return nil, false
	}
	return m.Key[:], true
}

// Meter returns the entry for id, enabled or not.
func (s *Snapshot) Meter(id wmbus.ID) (Meter, bool) {
	if s == nil {
		return Meter{}, false
	}
	i, ok := s.index[id]
	if !ok {
		return Meter{}, false
	}
	return s.Meters[i], true
}

// Len is the number of valid entries.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.Meters)
}

// IDs lists the valid entries' IDs in file order.
func (s *Snapshot) IDs() []wmbus.ID {
	if s == nil {
		return nil
	}
	ids := make([]wmbus.ID, len(s.Meters))
	for i, m := range s.Meters {
		ids[i] = m.ID
	}
	return ids
}

// newSnapshot indexes meters; the caller guarantees unique IDs.
func newSnapshot(path string, meters []Meter) *Snapshot {
	s := &Snapshot{Path: path, Meters: meters, index: make(map[wmbus.ID]int, len(meters))}
	for i, m := range meters {
		s.index[m.ID] = i
	}
	return s
}

// Load reads and parses the meter list at path. A file that does not parse
// is an error (*SyntaxError, errors.Is ErrSyntax); problems with single
// entries are not: they are in Snapshot.Problems and those entries skipped.
func Load(path string) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("meter list: %w", err)
	}
	s, err := Parse(data, filepath.Base(path))
	if err != nil {
		return nil, err
	}
	s.Path = path
	return s, nil
}

// The fields each section knows, in the order the messages suggest them.
var (
	topFields   = []string{"radio", "mqtt", "meter"}
	meterFields = []string{"id", "name", "key", "model", "enabled"}
	radioFields = []string{"input", "format", "center", "channel", "rate", "gain", "ppm", "modes", "chip_rate", "deviation"}
	mqttFields  = []string{"url", "username", "password", "client_id", "ca_file", "discovery_prefix", "status_topic", "base_topic", "retain", "meter_timeout"}
)

// Parse parses a meter list. name is the file's name for messages
// ("meters.toml").
func Parse(data []byte, name string) (*Snapshot, error) {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, syntaxError(data, name, err)
	}
	p := parser{name: name, lay: scanLayout(data)}

	for _, k := range sortedKeys(doc) {
		if !slices.Contains(topFields, k) {
			p.unknown(p.lay.keyLine(nil, k), k, "", topFields)
		}
	}
	radio, _ := p.table(doc, "radio")
	mqtt, _ := p.table(doc, "mqtt")
	p.radio(radio)
	p.mqtt(mqtt)

	var entries []any
	switch v := doc["meter"].(type) {
	case nil:
	case []map[string]any:
		for _, e := range v {
			entries = append(entries, e)
		}
	case []any:
		entries = v
	default:
		p.problem(p.lay.keyLine(nil, "meter"), "meter", ErrBadType,
			"meters must be written as [[meter]] tables (double brackets), one per meter")
	}

	// Validate every entry, then drop every entry whose ID occurs twice:
	// which of two keys is right cannot be guessed.
	type parsed struct {
		m    Meter
		good bool
		i    int
	}
	all := make([]parsed, 0, len(entries))
	byID := map[wmbus.ID][]int{} // ID → ordinals of entries with a readable ID
	for i, e := range entries {
		m, good, idOK := p.meter(i, e)
		all = append(all, parsed{m, good, i})
		if idOK {
			byID[m.ID] = append(byID[m.ID], i)
		}
	}
	meters := make([]Meter, 0, len(entries))
	for _, e := range all {
		same := byID[e.m.ID]
		if len(same) > 1 && slices.Contains(same, e.i) {
			if j := same[0]; j != e.i {
				p.problem(p.lay.meterLine(e.i, "id"), where(e.i, e.m.ID), ErrDuplicateID,
					"duplicate meter ID %s in [[meter]] %d, first defined in [[meter]] %d at line %d; both entries skipped",
					e.m.ID, e.i+1, j+1, p.lay.meterLine(j, "id"))
			}
			continue
		}
		if e.good {
			meters = append(meters, e.m)
		}
	}
	// Report in file order, whatever order the checks ran in.
	slices.SortStableFunc(p.problems, func(a, b error) int {
		return cmp.Compare(a.(*Problem).Line, b.(*Problem).Line)
	})
	s := newSnapshot("", meters)
	s.Radio, s.MQTT, s.Problems = p.r, p.m, p.problems
	return s, nil
}

// syntaxError turns a decoder error into a *SyntaxError with line and column
// and without anything key-like.
func syntaxError(data []byte, name string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		// The parser's line can be one past the error when the offending
		// token is a newline; the byte offset is exact, so count from it.
		line, col := pe.Position.Line, pe.Position.Col
		if start := pe.Position.Start; start > 0 && start <= len(data) || start == 0 && line == 1 {
			ls := bytes.LastIndexByte(data[:start], '\n') + 1
			line = bytes.Count(data[:start], []byte{'\n'}) + 1
			col = utf8.RuneCount(data[ls:start]) + 1
		}
		return &SyntaxError{File: name, Line: line, Col: col, Msg: redact(pe.Message)}
	}
	// Decoding into map[string]any has no type errors; keep a safe fallback.
	return &SyntaxError{File: name, Msg: redact(strings.TrimPrefix(err.Error(), "toml: "))}
}

type parser struct {
	name     string
	lay      *layout
	problems []error
	r        Radio
	m        MQTT
}

func (p *parser) problem(line int, where string, sentinel error, format string, args ...any) {
	p.problems = append(p.problems, &Problem{File: p.name, Line: line, Where: where,
		Msg: fmt.Sprintf(format, args...), Err: sentinel})
}

// unknown reports an unknown field; the name is redacted like parser output
// because a pasted key can end up anywhere, even left of an "=".
func (p *parser) unknown(line int, field, where string, known []string) {
	in := "in " + where
	if where == "" {
		where, in = "top level", "at the top level"
	}
	msg := fmt.Sprintf("unknown field %q %s", redact(field), in)
	if s := suggest(field, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else {
		msg += fmt.Sprintf(" (known: %s)", strings.Join(known, ", "))
	}
	p.problems = append(p.problems, &Problem{File: p.name, Line: line, Where: where, Msg: msg, Err: ErrUnknownField})
}

func (p *parser) table(doc map[string]any, name string) (map[string]any, bool) {
	v, ok := doc[name]
	if !ok {
		return nil, false
	}
	t, ok := v.(map[string]any)
	if !ok {
		p.problem(p.lay.keyLine(nil, name), "["+name+"]", ErrBadType,
			"%s must be a table written as [%s], not %s", name, name, typeName(v))
		return nil, false
	}
	return t, true
}

func (p *parser) radio(t map[string]any) {
	if t == nil {
		return
	}
	sec := []string{"radio"}
	str := map[string]*string{"input": &p.r.Input, "format": &p.r.Format, "center": &p.r.Center,
		"channel": &p.r.Channel, "rate": &p.r.Rate, "gain": &p.r.Gain, "chip_rate": &p.r.ChipRate,
		"deviation": &p.r.Deviation}
	for _, k := range sortedKeys(t) {
		v, line := t[k], p.lay.keyLine(sec, k)
		if dst, ok := str[k]; ok {
			// Numbers are fine too: gain = 40 means "40" to the flag parser.
			switch x := v.(type) {
			case string:
				*dst = x
			case int64:
				*dst = strconv.FormatInt(x, 10)
			case float64:
				*dst = strconv.FormatFloat(x, 'g', -1, 64)
			default:
				p.badType(line, "[radio]", k, "a string", v)
			}
			continue
		}
		switch k {
		case "ppm":
			if x, ok := v.(int64); ok && x >= -1000 && x <= 1000 {
				n := int(x)
				p.r.PPM = &n
			} else if ok {
				p.problem(line, "[radio]", ErrBadValue, "ppm in [radio] must be between -1000 and 1000")
			} else {
				p.badType(line, "[radio]", k, "an integer", v)
			}
		case "modes":
			modes, ok := stringList(v)
			if !ok {
				p.badType(line, "[radio]", k, `a list of strings like ["C1", "T1"]`, v)
				continue
			}
			p.r.Modes = modes
		default:
			p.unknown(line, k, "[radio]", radioFields)
		}
	}
}

func (p *parser) mqtt(t map[string]any) {
	if t == nil {
		return
	}
	sec := []string{"mqtt"}
	str := map[string]*string{"url": &p.m.URL, "username": &p.m.Username, "password": &p.m.Password,
		"client_id": &p.m.ClientID, "ca_file": &p.m.CAFile, "discovery_prefix": &p.m.DiscoveryPrefix,
		"status_topic": &p.m.StatusTopic, "base_topic": &p.m.BaseTopic}
	for _, k := range sortedKeys(t) {
		v, line := t[k], p.lay.keyLine(sec, k)
		if dst, ok := str[k]; ok {
			if x, ok := v.(string); ok {
				*dst = x
			} else if k == "password" {
				p.problem(line, "[mqtt]", ErrBadType, "password in [mqtt] must be a string (write it in quotes)")
			} else {
				p.badType(line, "[mqtt]", k, "a string", v)
			}
			continue
		}
		switch k {
		case "retain":
			if x, ok := v.(bool); ok {
				p.m.Retain = &x
			} else {
				p.badType(line, "[mqtt]", k, "true or false", v)
			}
		case "meter_timeout":
			x, ok := v.(string)
			if !ok {
				p.badType(line, "[mqtt]", k, `a duration like "10m"`, v)
				continue
			}
			d, err := time.ParseDuration(x)
			if err != nil || d <= 0 {
				p.problem(line, "[mqtt]", ErrBadValue, `meter_timeout in [mqtt] must be a positive duration like "10m" or "1h30m"`)
				continue
			}
			p.m.MeterTimeout = d
		default:
			p.unknown(line, k, "[mqtt]", mqttFields)
		}
	}
}

func (p *parser) badType(line int, where, field, want string, got any) {
	p.problem(line, where, ErrBadType, "%s in %s must be %s, not %s", field, where, want, typeName(got))
}

// where names the i-th meter for messages.
func where(i int, id wmbus.ID) string {
	if id == 0 {
		return fmt.Sprintf("[[meter]] %d", i+1)
	}
	return fmt.Sprintf("[[meter]] %d (%s)", i+1, id)
}

// meter validates the i-th [[meter]] entry. Every problem is reported, not
// only the first, so one save fixes them all.
func (p *parser) meter(i int, e any) (m Meter, good, idOK bool) {
	t, ok := e.(map[string]any)
	if !ok {
		p.problem(p.lay.meterLine(i, ""), where(i, 0), ErrBadType, "[[meter]] %d must be a table, not %s", i+1, typeName(e))
		return Meter{}, false, false
	}
	m = Meter{Enabled: true, Source: fmt.Sprintf("%s:%d", p.name, p.lay.meterLine(i, ""))}
	good = true

	// The ID first: the other messages name the meter by it.
	idLine := p.lay.meterLine(i, "id")
	switch v := t["id"].(type) {
	case nil:
		p.problem(p.lay.meterLine(i, ""), where(i, 0), ErrMissingID, "[[meter]] %d has no id (the 8-digit number printed on the meter)", i+1)
		good = false
	case string:
		id, err := parseID(v)
		if err != "" {
			p.problem(idLine, where(i, 0), ErrBadID, "id of [[meter]] %d %s", i+1, err)
			good = false
		}
		m.ID = id
	case int64:
		// id = 74493770 without quotes: the digits are the ID.
		if v < 0 || v > 99999999 {
			p.problem(idLine, where(i, 0), ErrBadID, "id of [[meter]] %d must be 8 digits", i+1)
			good = false
		} else {
			m.ID, _ = parseID(fmt.Sprintf("%08d", v))
		}
	default:
		p.problem(idLine, where(i, 0), ErrBadType, "id of [[meter]] %d must be a string of 8 digits, not %s", i+1, typeName(v))
		good = false
	}
	idOK = good
	w := where(i, m.ID)

	for _, k := range sortedKeys(t) {
		v, line := t[k], p.lay.meterLine(i, k)
		switch k {
		case "id":
		case "name", "model":
			s, ok := v.(string)
			if !ok {
				p.problem(line, w, ErrBadType, "%s of %s must be a string, not %s", k, w, typeName(v))
				good = false
				continue
			}
			if k == "name" {
				m.Name = strings.TrimSpace(s)
			} else {
				m.Model = strings.TrimSpace(s)
			}
		case "key":
			s, ok := v.(string)
			if !ok {
				p.problem(line, w, ErrBadType, "key of %s must be a string of 32 hex digits in quotes, not %s", w, typeName(v))
				good = false
				continue
			}
			key, has, msg := parseKey(s)
			if msg != "" {
				p.problem(line, w, ErrBadKey, "key of %s %s", w, msg)
				good = false
				continue
			}
			m.Key, m.HasKey = key, has
		case "enabled":
			b, ok := v.(bool)
			if !ok {
				p.problem(line, w, ErrBadType, "enabled of %s must be true or false, not %s", w, typeName(v))
				good = false
				continue
			}
			m.Enabled = b
		default:
			p.unknown(line, k, w, meterFields)
			good = false
		}
	}
	if m.Name == "" {
		m.Name = m.ID.String()
	}
	return m, good, idOK
}

// parseID checks an 8-digit ID; the message never quotes the text.
func parseID(s string) (wmbus.ID, string) {
	id, err := wmbus.ParseID(s)
	if err != nil {
		return 0, err.Error()
	}
	return id, ""
}

// parseKey reads a key; an empty one means "no key". The message describes,
// never quotes.
func parseKey(s string) (key [16]byte, has bool, msg string) {
	if strings.TrimSpace(s) == "" {
		return key, false, ""
	}
	key, err := wmbus.ParseKey(s)
	if err != nil {
		return key, false, err.Error()
	}
	return key, true, ""
}

func stringList(v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// typeName describes a decoded TOML value's type, never its content.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a number"
	case bool:
		return "true/false"
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date/time"
	}
	return "an unexpected value"
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// String describes the section without the password.
func (m MQTT) String() string {
	pw := ""
	if m.Password != "" {
		pw = " password=(set)"
	}
	return fmt.Sprintf("mqtt url=%s username=%s%s", m.URL, m.Username, pw)
}

// LogValue keeps slog from printing the password.
func (m MQTT) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", m.URL), slog.String("username", m.Username),
		slog.Bool("password_set", m.Password != ""))
}
