// Package testvectors loads the project's real Kamstrup telegrams with
// their known decodes (pipeline/kamstrup/testdata/vectors.json, a copy of
// the shared test data) for the tests of every package that needs them.
// It is test support only.
package testvectors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Vector is one telegram of vectors.json.
type Vector struct {
	Name        string          `json:"name"`
	Frame       string          `json:"frame"` // hex, as captured
	Key         *string         `json:"key"`   // nil: plaintext
	Kind        string          `json:"kind"`  // "full", "compact" or ""
	Plaintext   string          `json:"plaintext_after_sn"`
	Expected    json.RawMessage `json:"expected"`
	ExpectedWM  map[string]any  `json:"expected_wmbusmeters"`
	ExpectError string          `json:"expect_error"`
}

// Path is where vectors.json lives, whatever the calling test's directory.
func Path() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "pipeline", "kamstrup", "testdata", "vectors.json")
}

// Load returns every vector.
func Load(tb testing.TB) []Vector {
	tb.Helper()
	b, err := os.ReadFile(Path())
	if err != nil {
		tb.Fatal(err)
	}
	var f struct{ Vectors []Vector }
	if err := json.Unmarshal(b, &f); err != nil {
		tb.Fatalf("%s: %v", Path(), err)
	}
	if len(f.Vectors) == 0 {
		tb.Fatalf("%s holds no vectors", Path())
	}
	return f.Vectors
}

// Frames returns the hex frames of the vectors whose name starts with
// prefix, and fails unless there are exactly want of them.
func Frames(tb testing.TB, prefix string, want int) []string {
	tb.Helper()
	var out []string
	for _, v := range Load(tb) {
		if strings.HasPrefix(v.Name, prefix) {
			out = append(out, v.Frame)
		}
	}
	if len(out) != want {
		tb.Fatalf("%d vectors named %s*, want %d", len(out), prefix, want)
	}
	return out
}

// Seed74493770 is the name prefix of the 35 captured telegrams of the
// flowIQ 2101 meter 74493770 (key in the vectors).
const Seed74493770 = "flowiq2101-74493770-"
