package demod_test

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod/synth"
)

var update = flag.Bool("update", false, "rewrite the bundled recording in ../../testdata")

// The bundled recording: real flowIQ 2101 telegrams of meter 74493770 as
// the meter sends them (C1, frame format B), compressed in time (every 16 s
// in reality), so that the README's command shows readings without a dongle.
const (
	bundledDir  = "../../testdata"
	bundledCU8  = "flowiq2101_74493770_868.95M_1M6.cu8"
	bundledJSON = "flowiq2101_74493770_868.95M_1M6.json"
	bundledRate = 1.6e6
)

// bundledVectors are the telegrams, in order: compact and full frames.
var bundledVectors = []struct {
	name   string
	offset float64 // carrier offset, Hz
	ebn0   float64 // dB
}{
	{"flowiq2101-74493770-accB4", 6e3, 24},
	{"flowiq2101-74493770-accB5", 6.5e3, 22},
	{"flowiq2101-74493770-accB6", 5.5e3, 23},
	{"flowiq2101-74493770-accB7", 6e3, 21},
	{"flowiq2101-74493770-accE4", -3e3, 25},
	{"flowiq2101-74493770-accE5", -2.5e3, 20},
}

type bundledFrame struct {
	Vector   string  `json:"vector"`
	Mode     string  `json:"mode"`
	Format   string  `json:"format"`
	TimeS    float64 `json:"time_s"`
	OffsetHz float64 `json:"carrier_offset_hz"`
	EbN0dB   float64 `json:"eb_n0_db"`
	Frame    string  `json:"frame"`
}

type bundledIndex struct {
	About      string         `json:"about"`
	File       string         `json:"file"`
	SampleRate float64        `json:"sample_rate"`
	CenterHz   float64        `json:"center_hz"`
	Frames     []bundledFrame `json:"frames"`
}

func TestGenerateBundled(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite the bundled recording")
	}
	byName := map[string]telegram{}
	for _, tel := range loadTelegrams(t) {
		byName[tel.Name] = tel
	}
	rng := rand.New(rand.NewPCG(2101, 74493770))
	const amp = 0.25
	const spacing = 0.08 // s between telegram starts
	idx := bundledIndex{
		About:      "Synthesized, not captured: six real telegrams of flowIQ 2101 meter 74493770 (C1, frame format B, 100 kchip/s, ±45 kHz deviation, 80 ms apart) modulated by the project's modulator (pipeline/demod/synth) with these impairments: carrier offsets of −3 to +6.5 kHz, chip clock +20 ppm, white Gaussian noise at Eb/N0 20–25 dB per telegram, 8-bit quantisation. cu8, 868.95 MHz, 1.6 MS/s. frame = hex without link-layer CRCs, L = bytes after L.",
		File:       bundledCU8,
		SampleRate: bundledRate,
		CenterHz:   868.95e6,
	}
	var x []complex64
	for i, v := range bundledVectors {
		tel, ok := byName[v.name]
		if !ok || tel.RawB == nil {
			t.Fatalf("vector %s missing or not format B", v.name)
		}
		start := int(float64(i)*spacing*bundledRate) + 4000
		mod, err := synth.NewModulator(synth.Signal{SampleRate: bundledRate, ChipRate: 100e3, DeviationHz: 45e3, OffsetHz: v.offset, ChipErrorPPM: 20, Amplitude: amp})
		if err != nil {
			t.Fatal(err)
		}
		chips := chipsOf(t, synth.C1B, tel, 48)
		seg := mod.AppendChips(nil, chips)
		// Noise for the telegram's own Eb/N0 over its stretch of the capture.
		pad := start - len(x)
		gap := make([]complex64, pad)
		x = append(x, gap...)
		x = append(x, seg...)
		synth.AddNoise(x[len(x)-len(seg)-pad:], synth.NoiseVariance(amp*amp, bundledRate, 100e3, v.ebn0), rng)
		idx.Frames = append(idx.Frames, bundledFrame{
			Vector: v.name, Mode: "C1", Format: "B",
			TimeS:    float64(start+mod.SamplesFor(48)) / bundledRate,
			OffsetHz: v.offset, EbN0dB: v.ebn0, Frame: hex.EncodeToString(tel.Data),
		})
	}
	tail := make([]complex64, 8000)
	synth.AddNoise(tail, synth.NoiseVariance(amp*amp, bundledRate, 100e3, 22), rng)
	x = append(x, tail...)
	raw := synth.AppendCU8(nil, x)
	if err := os.WriteFile(filepath.Join(bundledDir, bundledCU8), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	js, err := json.MarshalIndent(idx, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundledDir, bundledJSON), append(js, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d bytes (%.2f s) with %d telegrams", len(raw), float64(len(x))/bundledRate, len(idx.Frames))
}

// TestBundledRecording: the committed recording still decodes to exactly
// the frames its index lists, each once.
func TestBundledRecording(t *testing.T) {
	js, err := os.ReadFile(filepath.Join(bundledDir, bundledJSON))
	if err != nil {
		t.Fatal(err)
	}
	var idx bundledIndex
	if err := json.Unmarshal(js, &idx); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(bundledDir, idx.File))
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > 2<<20 {
		t.Errorf("recording is %d bytes, keep it under 2 MiB", len(raw))
	}
	frames, d := decodeAll(t, demod.Config{SampleRate: idx.SampleRate, CenterHz: idx.CenterHz}, cu8(raw), 1<<16)
	if len(frames) != len(idx.Frames) {
		t.Fatalf("%d frames, want %d; stats %+v", len(frames), len(idx.Frames), d.Stats())
	}
	for i, want := range idx.Frames {
		got := frames[i]
		if h := hex.EncodeToString(got.Data); h != want.Frame || got.Mode.String() != want.Mode || got.Format.String() != want.Format {
			t.Errorf("frame %d: %s %s %s, want %s %s %s", i, got.Mode, got.Format, h, want.Mode, want.Format, want.Frame)
		}
		if ts := float64(got.Position) / idx.SampleRate; ts < want.TimeS-0.001 || ts > want.TimeS+0.001 {
			t.Errorf("frame %d at %.4f s, want %.4f s", i, ts, want.TimeS)
		}
		t.Logf("%s %s %.1f dBFS SNR %.1f dB offset %+.0f Hz: %s", got.Mode, got.Format, got.LevelDBFS, got.SNRdB, got.OffsetHz, want.Vector)
	}
}
