package vw1871

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
)

var update = flag.Bool("update", false, "rewrite the synthesized VW1871 capture in testdata/")

// captureFile is a VW1871 byte stream synthesized from the 35 real
// telegrams of meter 74493770, for end-to-end tests of `run --input
// vw1871:FILE` (see testdata/README.md).
var captureFile = filepath.Join("..", "..", "testdata", "vw1871", "seed-74493770.vw1871")

// synthCapture lays the 35 telegrams out as device records with noise
// between them, and ends with a record cut at the capture's seam.
func synthCapture(tb testing.TB) []byte {
	var seed []realFrame
	for _, f := range realFrames(tb) {
		if strings.HasPrefix(f.name, testvectors.Seed74493770) {
			seed = append(seed, f)
		}
	}
	if len(seed) != 35 {
		tb.Fatalf("%d seed telegrams, want 35", len(seed))
	}
	stream, _, _ := buildStream(tb, rand.New(rand.NewPCG(1871, 74493770)), seed, 40)
	cut := record(seed[0].formatB, 0x5000, 200)
	return append(stream, cut[:len(cut)/2]...)
}

func TestSynthesizedCapture(t *testing.T) {
	want := synthCapture(t)
	if *update {
		if err := os.WriteFile(captureFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(captureFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what synthCapture makes; run go test -run TestSynthesizedCapture -update", captureFile)
	}
	p := NewParser(ParserOptions{})
	frames := collect(p, got)
	if len(frames) != 35 || p.Stats().Cut != 1 {
		t.Errorf("%d frames, %d cut; want 35 and 1", len(frames), p.Stats().Cut)
	}
}
