package demod_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod/synth"
)

// TestRobustness: at 20 dB Eb/N0, at least 99 % of C1-A, C1-B and T1 frames
// decode with the carrier anywhere within ±60 kHz and the chip clock within
// ±100 ppm, at 1.6 MS/s and at 2.4 MS/s tuned 325 kHz below the channel;
// no frame may come out wrong. 300 frames per case (30 with -short).
func TestRobustness(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 30
	}
	tels := loadTelegrams(t)
	for _, capt := range []struct{ rate, center float64 }{{1.6e6, 868.95e6}, {2.4e6, 868.625e6}} {
		for _, c := range codings {
			t.Run(fmt.Sprintf("%.1fMSps/%s", capt.rate/1e6, c), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(uint64(capt.rate), uint64(c)))
				nominal := 45e3
				if c == synth.T1 {
					nominal = 50e3
				}
				mk := func(r *rand.Rand) scene {
					return scene{
						Rate:     capt.rate,
						Shift:    868.95e6 - capt.center,
						Offset:   (r.Float64()*2 - 1) * 60e3,
						PPM:      (r.Float64()*2 - 1) * 100,
						Dev:      nominal * (1 + (r.Float64()*2-1)*0.05),
						EbN0:     20,
						Gap:      30 + r.IntN(100),
						Quantise: true,
					}
				}
				ok, wrong := successRate(t, rng, demod.Config{SampleRate: capt.rate, CenterHz: capt.center}, n, mk, c, tels)
				t.Logf("%d/%d frames (%.1f %%), %d wrong", ok, n, 100*float64(ok)/float64(n), wrong)
				if float64(ok) < 0.99*float64(n) || wrong != 0 {
					t.Errorf("%d of %d frames decoded, %d wrong; want ≥ 99 %% and none wrong", ok, n, wrong)
				}
			})
		}
	}
}
