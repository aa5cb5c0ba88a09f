package demod_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod/synth"
)

var codings = []synth.Coding{synth.C1A, synth.C1B, synth.T1}

func modeOf(c synth.Coding) demod.Mode {
	if c == synth.T1 {
		return demod.T1
	}
	return demod.C1
}

// captures are the sample rates and tunings the demodulator must support;
// the 2.4 MS/s one is tuned 325 kHz below the channel, like issue48.
var captures = []struct {
	rate, center float64
}{
	{1.0e6, 868.95e6}, {1.2e6, 868.95e6}, {1.6e6, 868.95e6}, {2.0e6, 868.95e6},
	{2.048e6, 868.95e6}, {2.4e6, 868.95e6}, {2.4e6, 868.625e6},
}

func TestModulatedFrames(t *testing.T) {
	tels := loadTelegrams(t)
	offsets := []float64{-60e3, -45e3, -20e3, 0, 20e3, 45e3, 60e3}
	ppms := []float64{-100, 100}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	for _, capt := range captures {
		for _, c := range codings {
			for _, off := range offsets {
				for _, ppm := range ppms {
					tel := tels[n%len(tels)]
					n++
					dev := 45e3
					if c == synth.T1 {
						dev = 50e3
					}
					sc := scene{Rate: capt.rate, Shift: 868.95e6 - capt.center, Offset: off, Dev: dev, PPM: ppm, EbN0: 20, Gap: 50, Quantise: true}
					name := fmt.Sprintf("%.3fM@%.3f/%s/%+.0fk/%+.0fppm/%s", capt.rate/1e6, capt.center/1e6, c, off/1e3, ppm, tel.Name)
					x := sc.render(t, rng, chipsOf(t, c, tel, 40))
					frames, d := decodeAll(t, demod.Config{SampleRate: capt.rate, CenterHz: capt.center}, x, 30011)
					if len(frames) != 1 {
						t.Errorf("%s: %d frames, want 1; stats %+v", name, len(frames), d.Stats())
						continue
					}
					f := frames[0]
					if !bytes.Equal(f.Data, tel.Data) || f.Mode != modeOf(c) || f.Format != c.Format() {
						t.Errorf("%s: got %s %s % X", name, f.Mode, f.Format, f.Data)
					}
					if math.Abs(f.SNRdB-20) > 1.5 {
						t.Errorf("%s: SNR estimate %.1f dB, sent 20 dB", name, f.SNRdB)
					}
					if lvl := 20 * math.Log10(0.3); math.Abs(f.LevelDBFS-lvl) > 1.5 {
						t.Errorf("%s: level %.1f dBFS, sent %.1f", name, f.LevelDBFS, lvl)
					}
					if math.Abs(f.OffsetHz-off) > 2500 {
						t.Errorf("%s: offset %.0f Hz, want %.0f", name, f.OffsetHz, off)
					}
					// The 0x543D word starts after the gap and the preamble
					// (T1's sync shares its first 6 chips with the preamble).
					syncAt := 50.0 + 40
					if c == synth.T1 {
						syncAt -= 6
					}
					spc := capt.rate / 100e3 / (1 + ppm*1e-6)
					if wantPos := syncAt * spc; math.Abs(float64(f.Position)-wantPos) > spc/2 {
						t.Errorf("%s: position %d, want %.0f", name, f.Position, wantPos)
					}
				}
			}
		}
	}
}

// Telegrams back to back: each found once, in order, none merged or lost.
func TestBackToBack(t *testing.T) {
	tels := loadTelegrams(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, capt := range []struct{ rate, center float64 }{{1.6e6, 868.95e6}, {2.4e6, 868.625e6}} {
		for _, gap := range []int{0, 8, 200} {
			var chips [][]byte
			var want [][]byte
			for i := range 9 {
				c := codings[i%3]
				tel := tels[(i*5)%len(tels)]
				chips = append(chips, chipsOf(t, c, tel, 32))
				want = append(want, tel.Data)
			}
			sc := scene{Rate: capt.rate, Shift: 868.95e6 - capt.center, Offset: 12e3, Dev: 47e3, PPM: 40, EbN0: 20, Gap: gap, Quantise: true}
			x := sc.render(t, rng, chips...)
			for _, blockLen := range []int{len(x), 4099} {
				frames, d := decodeAll(t, demod.Config{SampleRate: capt.rate, CenterHz: capt.center}, x, blockLen)
				if len(frames) != len(want) {
					t.Errorf("%.1f MS/s gap %d blocks %d: %d frames, want %d; stats %+v", capt.rate/1e6, gap, blockLen, len(frames), len(want), d.Stats())
					continue
				}
				var last int64 = -1
				for i, f := range frames {
					if !bytes.Equal(f.Data, want[i]) {
						t.Errorf("gap %d frame %d: % X, want % X", gap, i, f.Data, want[i])
					}
					if f.Position <= last {
						t.Errorf("gap %d frame %d: position %d not after %d", gap, i, f.Position, last)
					}
					last = f.Position
				}
			}
		}
	}
}

// Pure noise must never produce a frame. The full minute runs without
// -short, as two half-minutes of independent noise side by side.
func TestNoNoiseFrames(t *testing.T) {
	seconds := 30
	if testing.Short() {
		seconds = 2
	}
	const rate = 1.6e6
	for part := range uint64(2) {
		t.Run(fmt.Sprintf("part%d", part), func(t *testing.T) {
			t.Parallel()
			d, err := demod.New(demod.Config{SampleRate: rate})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(5, 6+part))
			// Noise regenerated in blocks to keep memory small.
			block := make([]complex64, 1<<16)
			var frames []demod.Frame
			for range int(float64(seconds) * rate / float64(len(block))) {
				fillNoise(block, rng)
				frames = d.Work(block, frames)
			}
			frames = d.Flush(frames)
			for _, f := range frames {
				t.Errorf("false frame from noise: %s %s % X", f.Mode, f.Format, f.Data)
			}
			t.Logf("%d s of noise: stats %+v", seconds, d.Stats())
		})
	}
}

// fillNoise writes cu8-quantised near-Gaussian noise (σ ≈ 12 counts per
// component, a typical idle dongle) cheaply: each component is the sum of
// four uniform bytes, which is Gaussian enough for a detector and 20 times
// faster than NormFloat64, so a minute of noise takes seconds.
func fillNoise(x []complex64, rng *rand.Rand) {
	const scale = 12.0 / 147.8 // σ of a sum of four uniform bytes is 147.8
	for i := range x {
		r := rng.Uint64()
		a := int(r&0xFF) + int(r>>8&0xFF) + int(r>>16&0xFF) + int(r>>24&0xFF) - 510
		b := int(r>>32&0xFF) + int(r>>40&0xFF) + int(r>>48&0xFF) + int(r>>56&0xFF) - 510
		x[i] = complex(float32(math.Round(float64(a)*scale))/127.5, float32(math.Round(float64(b)*scale))/127.5)
	}
}

// After Reset a demodulator decodes a capture exactly as a new one does,
// whatever it was in the middle of (here: a telegram cut short, at
// 2.4 MS/s with the mixer running).
func TestResetForgets(t *testing.T) {
	tels := loadTelegrams(t)
	rng := rand.New(rand.NewPCG(8, 8))
	cfg := demod.Config{SampleRate: 2.4e6, CenterHz: 868.625e6}
	sc := scene{Rate: 2.4e6, Shift: 868.95e6 - 868.625e6, Offset: 9e3, Dev: 46e3, PPM: -30, EbN0: 18, Gap: 6000, Quantise: true}
	// Long enough for the history to move (a base that is not 0).
	a := sc.render(t, rng, chipsOf(t, synth.C1A, tels[1], 40), chipsOf(t, synth.T1, tels[2], 40))
	sc.Gap = 60
	b := sc.render(t, rng, chipsOf(t, synth.C1B, tels[3], 40), chipsOf(t, synth.T1, tels[4], 40))
	want, _ := decodeAll(t, cfg, b, 4099)
	d, err := demod.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.Work(a[:len(a)*3/4], nil)
	d.Reset()
	if st := d.Stats(); st.Samples != 0 || st.Candidates != 0 {
		t.Errorf("stats after Reset: %+v", st)
	}
	var got []demod.Frame
	for i := 0; i < len(b); i += 4099 {
		got = d.Work(b[i:min(i+4099, len(b))], got)
	}
	got = d.Flush(got)
	if len(want) != 2 || len(got) != len(want) {
		t.Fatalf("%d frames after Reset, %d from a new demodulator, want 2", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].Data, want[i].Data) || got[i].Position != want[i].Position || got[i].OffsetHz != want[i].OffsetHz {
			t.Errorf("frame %d after Reset: %+v, from a new demodulator %+v", i, got[i], want[i])
		}
	}
}
