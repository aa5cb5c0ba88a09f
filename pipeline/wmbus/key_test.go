package wmbus

import (
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
)

const testKey = "44E9112D06BD762EC2BFECE57E487C9B"

func TestParseKey(t *testing.T) {
	cases := []struct {
		in, err string
	}{
		{testKey, ""},
		{strings.ToLower(testKey), ""},
		{"44E9 112D 06BD 762E C2BF ECE5 7E48 7C9B", ""},
		{" 44 E9 11 2D 06 BD 76 2E C2 BF EC E5 7E 48 7C 9B\t", ""},
		{"", "must be 32 hex digits, found 0"},
		{"44E9112D06BD762EC2BFECE57E487C9B00", "must be 32 hex digits, found 34"},
		{"0x44E9112D06BD762EC2BFECE57E487C", "not a hex digit at position 2"},
		{"44E9-112D-06BD-762E-C2BF-ECE5-7E48-7C9B", "not a hex digit at position 5"},
		{"44É9112D06BD762EC2BFECE57E487C9B", "not a hex digit at position 3"},
	}
	want, _ := hex.DecodeString(testKey)
	for _, c := range cases {
		k, err := ParseKey(c.in)
		if c.err == "" {
			if err != nil || string(k[:]) != string(want) {
				t.Errorf("ParseKey(%q) = %X, %v", c.in, k, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParseKey(%q) error %v, want %q", c.in, err, c.err)
		}
		if k != ([16]byte{}) {
			t.Errorf("ParseKey(%q) returned key bytes with an error", c.in)
		}
	}
}

func TestParseID(t *testing.T) {
	cases := []struct {
		in   string
		want ID
		err  string
	}{
		{"74493770", 0x74493770, ""},
		{" 00000001\t", 1, ""},
		{"", 0, "is missing"},
		{"7449377", 0, "must be 8 digits, found 7 characters"},
		{"7449377A", 0, "character 8 is not a digit"},
		{"744937701", 0, "found 9 characters"},
		{"7449377É", 0, "character 8 is not a digit"},
	}
	for _, c := range cases {
		id, err := ParseID(c.in)
		if c.err == "" {
			if err != nil || id != c.want {
				t.Errorf("ParseID(%q) = %v, %v; want %v", c.in, id, err, c.want)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrBadID) || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParseID(%q) error %v, want %q", c.in, err, c.err)
		}
	}
}

// FuzzParseKey: never panics; an accepted key is the input's hex digits; an
// error is one of two fixed forms, so it cannot carry the input.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{testKey, "44E9 112D 06BD 762E C2BF ECE5 7E48 7C9B", "", "0x00", "ZZ", "44É9"} {
		f.Add(s)
	}
	errForm := regexp.MustCompile(`^(has a character that is not a hex digit at position \d+ \(a key is 32 hex digits 0-9 A-F, spaces allowed\)|must be 32 hex digits, found \d+)$`)
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if !errForm.MatchString(err.Error()) {
				t.Fatalf("unexpected error form: %q", err)
			}
			return
		}
		digits := strings.NewReplacer(" ", "", "\t", "").Replace(s)
		if !strings.EqualFold(hex.EncodeToString(k[:]), digits) {
			t.Fatalf("ParseKey(%q) = %X", s, k)
		}
	})
}

// FuzzParseID: never panics; an accepted ID prints back as its digits; an
// error never carries the input.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"74493770", "", "1234567", "abcdefgh", "7449377É"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			if len(strings.TrimSpace(s)) >= 4 && strings.Contains(err.Error(), strings.TrimSpace(s)) {
				t.Fatalf("error %q quotes the input", err)
			}
			return
		}
		if id.String() != strings.Trim(s, " \t") {
			t.Fatalf("ParseID(%q) = %v", s, id)
		}
	})
}
