package demod_test

import (
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod/synth"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

const vectorsPath = "../kamstrup/testdata/vectors.json"

// telegram is a real Kamstrup frame: CRC-less form, and the over-the-air
// format B bytes when the vector has them.
type telegram struct {
	Name string
	Data []byte // CRC-less, L = len−1
	RawB []byte // format B with CRC, nil if not recorded that way
}

func loadTelegrams(tb testing.TB) []telegram {
	tb.Helper()
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		tb.Fatal(err)
	}
	var v struct {
		Vectors []struct {
			Name  string `json:"name"`
			Frame string `json:"frame"`
			CRCs  string `json:"crcs"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		tb.Fatal(err)
	}
	var out []telegram
	for _, x := range v.Vectors {
		raw, err := hex.DecodeString(x.Frame)
		if err != nil {
			tb.Fatalf("%s: %v", x.Name, err)
		}
		t := telegram{Name: x.Name}
		if strings.HasPrefix(x.CRCs, "frame format B") {
			t.RawB = raw
			if t.Data, err = wmbus.AppendStripped(nil, raw, wmbus.FormatB); err != nil {
				tb.Fatalf("%s: %v", x.Name, err)
			}
		} else {
			t.Data = raw
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		tb.Fatal("no vectors")
	}
	return out
}

// meterFrames returns the over-the-air format B frames of meter 74493770.
func meterFrames(tb testing.TB, compactOnly bool) []telegram {
	var out []telegram
	for _, t := range loadTelegrams(tb) {
		if t.RawB == nil || !strings.Contains(t.Name, "74493770") {
			continue
		}
		if compactOnly && len(t.RawB) != 38 {
			continue
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		tb.Fatal("no 74493770 frames in vectors.json")
	}
	return out
}

// chipsOf encodes t in coding c (format B frames go out exactly as recorded).
func chipsOf(tb testing.TB, c synth.Coding, t telegram, pre int) []byte {
	tb.Helper()
	var chips []byte
	var err error
	if c == synth.C1B && t.RawB != nil {
		chips, err = synth.AppendRawChips(nil, c, t.RawB, pre)
	} else {
		chips, err = synth.AppendChips(nil, c, t.Data, pre)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return chips
}

// scene is a synthetic capture: telegrams separated by silence, plus noise.
type scene struct {
	Rate     float64
	Shift    float64 // channel relative to the capture centre
	Offset   float64 // transmitter carrier offset from the channel
	Dev      float64
	PPM      float64
	EbN0     float64 // dB; +Inf for no noise
	Gap      int     // chips of silence before each telegram
	Quantise bool
}

func (s scene) render(tb testing.TB, rng *rand.Rand, chips ...[]byte) []complex64 {
	tb.Helper()
	dev := s.Dev
	if dev == 0 {
		dev = 45e3
	}
	const amp = 0.3
	mod, err := synth.NewModulator(synth.Signal{
		SampleRate: s.Rate, ChipRate: 100e3, DeviationHz: dev,
		OffsetHz: s.Shift + s.Offset, ChipErrorPPM: s.PPM, Amplitude: amp,
	})
	if err != nil {
		tb.Fatal(err)
	}
	var x []complex64
	gap := mod.SamplesFor(s.Gap)
	for _, c := range chips {
		x = mod.AppendSilence(x, gap)
		x = mod.AppendChips(x, c)
	}
	x = mod.AppendSilence(x, gap+mod.SamplesFor(20))
	if s.EbN0 < 1000 {
		synth.AddNoise(x, synth.NoiseVariance(amp*amp, s.Rate, 100e3, s.EbN0), rng)
	}
	if s.Quantise {
		synth.Quantise(x)
	}
	return x
}
