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

// noiseTable maps 16 uniform bits to a cu8 noise value: Gaussian with
// σ = 12 counts per component (a typical idle dongle) by the inverse of its
// distribution, rounded to whole counts like the dongle's ADC.
var noiseTable = func() (t [1 << 16]float32) {
	for i := range t {
		u := (float64(i) + 0.5) / (1 << 16)
		t[i] = float32(math.Round(12*math.Sqrt2*math.Erfinv(2*u-1))) / 127.5
	}
	return t
}()

// fillNoise writes cu8-quantised Gaussian noise cheaply: one random word
// gives two samples through the table, so a minute of noise takes seconds.
func fillNoise(x []complex64, rng *rand.Rand) {
	for i := 0; i+1 < len(x); i += 2 {
		r := rng.Uint64()
		x[i] = complex(noiseTable[r&0xFFFF], noiseTable[r>>16&0xFFFF])
		x[i+1] = complex(noiseTable[r>>32&0xFFFF], noiseTable[r>>48])
	}
	if len(x)%2 == 1 {
		r := rng.Uint64()
		x[len(x)-1] = complex(noiseTable[r&0xFFFF], noiseTable[r>>16&0xFFFF])
	}
}
