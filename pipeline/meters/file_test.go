package meters

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Test keys. Every test that produces messages checks that none of them
// shows up (see assertNoKeys).
const (
	key1 = "44E9 112D 06BD 762E C2BF ECE5 7E48 7C9B"
	key2 = "A1B2C3D4E5F60718293A4B5C6D7E8F90"
	key3 = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
)

func keySlice(t testing.TB, s string) []byte {
	k := mustKey(t, s)
	return k[:]
}

func mustKey(t testing.TB, s string) [16]byte {
	t.Helper()
	var k [16]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil || len(b) != 16 {
		t.Fatalf("bad test key")
	}
	copy(k[:], b)
	return k
}

func id(t testing.TB, s string) wmbus.ID {
	t.Helper()
	v, err := wmbus.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// assertNoKeys fails if any 8-character piece of a test key (compact or
// spaced, any case) appears in text.
func assertNoKeys(t testing.TB, text string) {
	t.Helper()
	low := strings.ToLower(text)
	for _, k := range []string{key1, key2, key3} {
		compact := strings.ToLower(strings.ReplaceAll(k, " ", ""))
		spaced := strings.ToLower(formatKey(mustKey(t, k)))
		for _, form := range []string{compact, spaced} {
			for i := 0; i+8 <= len(form); i++ {
				if strings.Contains(low, form[i:i+8]) {
					t.Fatalf("key material %q found in output:\n%s", form[i:i+8], text)
				}
			}
		}
	}
}

func problemsText(s *Snapshot) string {
	var b strings.Builder
	for _, p := range s.Problems {
		b.WriteString(p.Error())
		b.WriteByte('\n')
	}
	return b.String()
}

func TestParseExample(t *testing.T) {
	s, err := Load("../../meters.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Problems) != 0 {
		t.Fatalf("problems in the example: %v", s.Problems)
	}
	if got := s.IDs(); len(got) != 2 || got[0] != id(t, "74493770") || got[1] != id(t, "12345678") {
		t.Fatalf("IDs = %v", got)
	}
	k, ok := s.Key(id(t, "74493770"))
	if !ok || !bytes.Equal(k, keySlice(t, key1)) {
		t.Fatalf("Key(74493770) = %x, %v", k, ok)
	}
	if _, ok := s.Key(id(t, "12345678")); ok {
		t.Fatal("a disabled meter must not yield its key")
	}
	if m, ok := s.Meter(id(t, "12345678")); !ok || m.Enabled || !m.HasKey || m.Name != "Garden tap" {
		t.Fatalf("disabled meter = %v, %v", m, ok)
	}
	if m, _ := s.Meter(id(t, "74493770")); m.Model != "flowIQ 2101" || m.Source != "meters.example.toml:46" {
		t.Fatalf("meter = %v", m)
	}
	r := s.Radio
	if r.Input != "rtlsdr://0" || r.Format != "cu8" || r.Center != "868.95M" || r.Channel != "868.95M" ||
		r.Rate != "1.6M" || r.Gain != "auto" || r.PPM == nil || *r.PPM != 0 ||
		strings.Join(r.Modes, ",") != "C1,T1" || r.ChipRate != "" {
		t.Fatalf("radio = %+v", r)
	}
	q := s.MQTT
	if q.URL != "tcp://localhost:1883" || q.DiscoveryPrefix != "homeassistant" || q.BaseTopic != "flowiq" ||
		q.Retain == nil || !*q.Retain || q.MeterTimeout.String() != "10m0s" {
		t.Fatalf("mqtt = %+v", q)
	}
}

func TestParseProblems(t *testing.T) {
	for _, tc := range []struct {
		name     string
		text     string
		ids      []string // valid meters, in order
		sentinel error
		want     []string // one per problem, in order
	}{
		{
			name: "unknown field",
			text: "[[meter]]\nid = \"74493770\"\nkey = \"" + key1 + "\"\n\n[[meter]]\nid = \"12345678\"\nkye = \"" + key2 + "\"\n",
			ids:  []string{"74493770"}, sentinel: ErrUnknownField,
			want: []string{`meters.toml line 7: unknown field "kye" in [[meter]] 2 (12345678) (did you mean "key"?)`},
		},
		{
			name: "duplicate ID",
			text: "[[meter]]\nid = \"74493770\"\nkey = \"" + key1 + "\"\n[[meter]]\nid = \"11111111\"\n[[meter]]\nname = \"again\"\nid = \"74493770\"\nkey = \"" + key2 + "\"\n",
			ids:  []string{"11111111"}, sentinel: ErrDuplicateID,
			want: []string{"meters.toml line 8: duplicate meter ID 74493770 in [[meter]] 3, first defined in [[meter]] 1 at line 2; both entries skipped"},
		},
		{
			name: "short key",
			text: "[[meter]]\nid = \"74493770\"\nname = \"Kitchen\"\nkey = \"" + key1[:len(key1)-1] + "\"\n[[meter]]\nid = \"11111111\"\n",
			ids:  []string{"11111111"}, sentinel: ErrBadKey,
			want: []string{"meters.toml line 4: key of [[meter]] 1 (74493770) must be 32 hex digits, found 31"},
		},
		{
			name:     "non-hex key",
			text:     "[[meter]]\nid = \"74493770\"\nkey = \"" + strings.Replace(key2, "E", "G", 1) + "\"\n",
			sentinel: ErrBadKey,
			want:     []string{"meters.toml line 3: key of [[meter]] 1 (74493770) has a character that is not a hex digit at position 9 (a key is 32 hex digits 0-9 A-F, spaces allowed)"},
		},
		{
			name:     "key not a string",
			text:     "[[meter]]\nid = \"74493770\"\nkey = 0x44E9112D06BD762E\n",
			sentinel: ErrBadType,
			want:     []string{"meters.toml line 3: key of [[meter]] 1 (74493770) must be a string of 32 hex digits in quotes, not an integer"},
		},
		{
			name:     "malformed ID",
			text:     "[[meter]]\nid = \"7449377\"\n[[meter]]\nid = \"7449377X\"\n[[meter]]\nid = \"" + key2 + "\"\n[[meter]]\nname = \"no id\"\n",
			sentinel: ErrBadID,
			want: []string{
				"meters.toml line 2: id of [[meter]] 1 must be 8 digits, found 7 characters",
				"meters.toml line 4: id of [[meter]] 2 must be 8 digits; character 8 is not a digit",
				"meters.toml line 6: id of [[meter]] 3 must be 8 digits, found 32 characters",
				"meters.toml line 7: [[meter]] 4 has no id (the 8-digit number printed on the meter)",
			},
		},
		{
			name: "integer ID and defaults",
			text: "[[meter]]\nid = 74493770\n",
			ids:  []string{"74493770"},
		},
		{
			name:     "wrong types",
			text:     "[radio]\nppm = \"3\"\nmodes = \"C1\"\n[mqtt]\nretain = \"yes\"\nmeter_timeout = \"soon\"\n[[meter]]\nid = \"74493770\"\nenabled = \"yes\"\n",
			sentinel: ErrBadType,
			want: []string{
				"meters.toml line 2: ppm in [radio] must be an integer, not a string",
				"meters.toml line 3: modes in [radio] must be a list of strings like [\"C1\", \"T1\"], not a string",
				"meters.toml line 5: retain in [mqtt] must be true or false, not a string",
				`meters.toml line 6: meter_timeout in [mqtt] must be a positive duration like "10m" or "1h30m"`,
				"meters.toml line 9: enabled of [[meter]] 1 (74493770) must be true or false, not a string",
			},
		},
		{
			name:     "unknown sections and radio keys",
			text:     "[radoi]\ninput = \"-\"\n[radio]\ngian = \"auto\"\n[meters]\nid = \"74493770\"\n",
			sentinel: ErrUnknownField,
			want: []string{
				`meters.toml line 1: unknown field "radoi" at the top level (did you mean "radio"?)`,
				`meters.toml line 4: unknown field "gian" in [radio] (did you mean "gain"?)`,
				`meters.toml line 5: unknown field "meters" at the top level (did you mean "meter"?)`,
			},
		},
		{
			name:     "single brackets",
			text:     "[meter]\nid = \"74493770\"\n",
			sentinel: ErrBadType,
			want:     []string{"meters.toml line 1: meters must be written as [[meter]] tables (double brackets), one per meter"},
		},
		{
			name: "inline array of tables",
			text: "meter = [\n  {id = \"74493770\", key = \"" + key1 + "\"},\n  {id = \"11111111\", kye = \"x\"},\n]\n",
			ids:  []string{"74493770"}, sentinel: ErrUnknownField,
			want: []string{`meters.toml line 1: unknown field "kye" in [[meter]] 2 (11111111) (did you mean "key"?)`},
		},
		{
			name: "multi-line strings do not confuse the line count",
			text: "[[meter]]\nid = \"11111111\"\nname = \"\"\"first\n[[meter]]\nkye = 1\n\"\"\"\n[[meter]]\nid = '22222222'\nmodel = '''x\ny'''\nkye = 2\n",
			ids:  []string{"11111111"}, sentinel: ErrUnknownField,
			want: []string{`meters.toml line 11: unknown field "kye" in [[meter]] 2 (22222222) (did you mean "key"?)`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.text), "meters.toml")
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range s.Meters {
				ids = append(ids, m.ID.String())
			}
			if strings.Join(ids, " ") != strings.Join(tc.ids, " ") {
				t.Errorf("meters = %v, want %v", ids, tc.ids)
			}
			if len(s.Problems) != len(tc.want) {
				t.Fatalf("problems:\n%s\nwant %d", problemsText(s), len(tc.want))
			}
			for i, p := range s.Problems {
				if p.Error() != tc.want[i] {
					t.Errorf("problem %d:\n got %s\nwant %s", i, p, tc.want[i])
				}
			}
			if tc.sentinel != nil && !errors.Is(s.Problems[0], tc.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", s.Problems[0], tc.sentinel)
			}
			assertNoKeys(t, problemsText(s))
		})
	}
}

func TestParseSyntaxError(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[[meter]]\nid = \"74493770\"\nkey = " + strings.ReplaceAll(key1, " ", "") + "\n", "meters.toml line 3, column 7: "},
		{"[[meter]]\nid = \"74493770\"\nkey = \"" + key1 + "\n", "meters.toml line 3, column 47: strings cannot contain newlines"},
		{"[[meter]\nid = 1\n", "meters.toml line 1, column 8: expected end of table array name delimiter"},
		{"[[meter]]\nkey = \"" + key2 + "\"\nkey = \"" + key3 + "\"\n", "meters.toml line 3, column 1: Key 'meter.key' has already been defined."},
		{key2 + " = 1\n" + key2 + " = 2\n", "meters.toml line 2, column 1: Key '…' has already been defined."},
		{"[[meter]]\nkey = '" + key3 + "\n", "meters.toml line 2, column 40: "},
	} {
		_, err := Parse([]byte(tc.text), "meters.toml")
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
			t.Fatalf("Parse(%q) = %v, want a *SyntaxError", tc.text, err)
		}
		if !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("error = %q, want prefix %q", err, tc.want)
		}
		assertNoKeys(t, err.Error())
	}
}

func TestKeyAllocatesNothing(t *testing.T) {
	s, err := Parse([]byte("[[meter]]\nid = \"74493770\"\nkey = \""+key1+"\"\n"), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	ID := id(t, "74493770")
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := s.Key(ID); !ok {
			t.Fatal("no key")
		}
	})
	if allocs != 0 {
		t.Fatalf("Key allocates %v times", allocs)
	}
	var nilSnap *Snapshot
	if _, ok := nilSnap.Key(ID); ok {
		t.Fatal("nil snapshot has a key")
	}
}

func BenchmarkKey(b *testing.B) {
	var text strings.Builder
	for i := range 200 {
		fmt.Fprintf(&text, "[[meter]]\nid = \"%08d\"\nkey = %q\n", 10000000+i, key2)
	}
	s, err := Parse([]byte(text.String()), "m.toml")
	if err != nil || len(s.Meters) != 200 {
		b.Fatal(err, s.Problems)
	}
	ID := s.Meters[137].ID
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Key(ID); !ok {
			b.Fatal("no key")
		}
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	s, err := Parse([]byte("[mqtt]\npassword = \""+key3+"\"\n[[meter]]\nid = \"74493770\"\nkey = \""+key1+"\"\n"), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	m := s.Meters[0]
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("m", "meter", m, "mqtt", s.MQTT, "snapshot", s.Meters)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "meter", m, "mqtt", s.MQTT)
	fmt.Fprintf(&buf, "%v %+v %#v %s %v %+v\n", m, m, m, m, s.MQTT, s.MQTT)
	fmt.Fprintf(&buf, "%v %+v\n", s.Meters, s.Meters)
	if !strings.Contains(buf.String(), "74493770") {
		t.Fatal("the output does not even name the meter")
	}
	assertNoKeys(t, buf.String())
}

func TestDiffAndOverlay(t *testing.T) {
	old, err := Parse([]byte(`
[[meter]]
id = "11111111"
key = "`+key1+`"
[[meter]]
id = "22222222"
name = "Old name"
[[meter]]
id = "33333333"
[[meter]]
id = "44444444"
enabled = false
`), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	new, err := Parse([]byte(`
[[meter]]
id = "11111111"
key = "`+key2+`"
[[meter]]
id = "22222222"
name = "New name"
model = "flowIQ 2200"
[[meter]]
id = "44444444"
[[meter]]
id = "55555555"
`), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	c := Diff(old, new)
	want := "added 55555555; removed 33333333; key changed 11111111; renamed 22222222; model changed 22222222; enabled 44444444"
	if c.String() != want {
		t.Fatalf("Diff = %q\nwant  %q", c, want)
	}
	if !Diff(new, new).Empty() || Diff(nil, nil).String() != "no change" {
		t.Fatal("a snapshot differs from itself")
	}
	if got := Diff(nil, old).String(); got != "added 11111111 22222222 33333333 44444444" {
		t.Fatalf("Diff(nil, old) = %q", got)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "change", c)
	if !strings.Contains(buf.String(), "change.key_changed=11111111") {
		t.Fatalf("log = %s", buf.String())
	}
	assertNoKeys(t, buf.String())

	extra := []Meter{
		{ID: id(t, "11111111"), Name: "From options", Key: mustKey(t, key3), HasKey: true, Enabled: true, Source: "add-on options"},
		{ID: id(t, "66666666"), Key: mustKey(t, key3), HasKey: true, Enabled: true},
	}
	o, warnings := Overlay(new, extra)
	if len(warnings) != 1 || warnings[0] != "meter 11111111 from add-on options overrides the entry at m.toml:2" {
		t.Fatalf("warnings = %q", warnings)
	}
	if k, ok := o.Key(id(t, "11111111")); !ok || !bytes.Equal(k, extra[0].Key[:]) {
		t.Fatal("the overlay did not win")
	}
	if m, ok := o.Meter(id(t, "66666666")); !ok || m.Name != "66666666" {
		t.Fatalf("added overlay meter = %v", m)
	}
	if k, _ := new.Key(id(t, "11111111")); !bytes.Equal(k, keySlice(t, key2)) {
		t.Fatal("Overlay modified its base")
	}
	if o.Len() != 5 {
		t.Fatalf("overlay has %d meters", o.Len())
	}
	if s, w := Overlay(nil, nil); s.Len() != 0 || w != nil {
		t.Fatal("empty overlay of nothing")
	}

	// An options entry without a key takes the file's key for that meter.
	keyless, _ := Overlay(new, []Meter{{ID: id(t, "11111111"), Name: "Renamed", Enabled: true}})
	if k, ok := keyless.Key(id(t, "11111111")); !ok || !bytes.Equal(k, keySlice(t, key2)) {
		t.Fatal("a keyless overlay entry lost the file's key")
	}
	if m, _ := keyless.Meter(id(t, "11111111")); m.Name != "Renamed" {
		t.Fatalf("overlay name not applied: %v", m)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"44E9112 is out of range for float64": "… is out of range for float64",
		"invalid escape in string '\\q'":      "invalid escape in string '\\q'",
		"x 44E9 112D 06BD y":                  "x … y",
		"abc is fine, dead is not":            "abc is fine, … is not",
		"":                                    "",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
