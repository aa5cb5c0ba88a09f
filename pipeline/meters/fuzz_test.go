package meters

import (
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary text with a secret key planted at every "@KEY@"
// and checks that Parse never panics, that its messages never contain a
// piece of that key, and that what it accepts reads back consistently.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"[[meter]]\nid = \"74493770\"\nkey = \"@KEY@\"\n",
		"[[meter]]\nid = \"@KEY@\"\n",
		"[[meter]]\nid = \"74493770\"\nkey = @KEY@\n",
		"[[meter]]\nid = \"74493770\"\nkey = \"@KEY@\n",
		"[[meter]]\nid = \"74493770\"\nkey = '@KEY@\n",
		"[[meter]]\n@KEY@ = \"x\"\n",
		"@KEY@ = 1\n@KEY@ = 2\n",
		"[[meter]]\nkey = \"@KEY@\"\nkey = \"@KEY@\"\n",
		"[[meter]]\nid = \"74493770\"\nkey = \"\\@KEY@\"\n",
		"[[meter]]\nid = \"74493770\"\nkey = \"@KEY@x\"\n[[meter]]\nid = \"74493770\"\n",
		"[mqtt]\npassword = \"@KEY@\"\nretain = @KEY@\n",
		"meter = [{id = \"74493770\", key = \"@KEY@\"}]\n",
		"[[meter]]\nid = 74493770\nname = \"\"\"a\n[[meter]]\"\"\"\nkey = '''@KEY@'''\n",
		"[[meter]]\nid = \"74493770\"\nkey = 0x@KEY@\n",
		"[[meter]]\nid = \"74493770\"\nkey = \"@KEY@\"\nkye = 1\n",
	}
	k := [16]byte{0x44, 0xE9, 0x11, 0x2D, 0x06, 0xBD, 0x76, 0x2E, 0xC2, 0xBF, 0xEC, 0xE5, 0x7E, 0x48, 0x7C, 0x9B}
	for i, s := range seeds {
		f.Add(s, k[:], i%3)
	}
	f.Fuzz(func(t *testing.T, text string, keyBytes []byte, form int) {
		var key [16]byte
		copy(key[:], keyBytes)
		forms := []string{
			strings.ToUpper(hex.EncodeToString(key[:])),
			formatKey(key),
			strings.ToLower(formatKey(key)),
		}
		if form < 0 {
			form = -form
		}
		data := strings.ReplaceAll(text, "@KEY@", forms[form%len(forms)])
		s, err := Parse([]byte(data), "meters.toml")
		var msgs strings.Builder
		if err != nil {
			msgs.WriteString(err.Error())
		} else {
			for _, p := range s.Problems {
				msgs.WriteString(p.Error())
				msgs.WriteByte('\n')
			}
			for _, m := range s.Meters {
				// Every valid meter reads back from its own ID.
				got, ok := s.Meter(m.ID)
				if !ok || got.ID != m.ID || got.HasKey != m.HasKey || got.Key != m.Key {
					t.Fatalf("meter %s does not read back", m.ID)
				}
				k, ok := s.Key(m.ID)
				if ok != (m.Enabled && m.HasKey) || ok && string(k) != string(m.Key[:]) {
					t.Fatalf("Key(%s) inconsistent", m.ID)
				}
			}
			msgs.WriteString(Diff(nil, s).String())
		}
		if !strings.Contains(text, "@KEY@") {
			return
		}
		out := strings.ToLower(msgs.String())
		// Only windows with a letter: an all-digit window can be a meter ID or
		// a line number by coincidence.
		for _, fm := range forms {
			fm = strings.ToLower(fm)
			for i := 0; i+8 <= len(fm); i++ {
				w := fm[i : i+8]
				if strings.ContainsAny(w, "abcdef") && strings.Contains(out, w) {
					t.Fatalf("key piece %q in messages:\n%s", w, msgs.String())
				}
			}
		}
	})
}
