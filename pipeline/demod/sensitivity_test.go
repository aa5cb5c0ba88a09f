package demod_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod/synth"
)

// idealSuccess is the frame success of ideal single-chip noncoherent binary
// FSK: chip error ½·e^(−Eb/2N0), every one of `chips` chips right.
func idealSuccess(ebn0dB float64, chips int) float64 {
	p := 0.5 * math.Exp(-math.Pow(10, ebn0dB/10)/2)
	return math.Pow(1-p, float64(chips))
}

// impaired is the sensitivity test condition of the issue: random carrier
// offset within ±20 kHz, chip rate within ±50 ppm, deviation 45 kHz ±10 %.
func impaired(rng *rand.Rand, rate, ebn0 float64) scene {
	return scene{
		Rate:     rate,
		Offset:   (rng.Float64()*2 - 1) * 20e3,
		PPM:      (rng.Float64()*2 - 1) * 50,
		Dev:      45e3 * (1 + (rng.Float64()*2-1)*0.10),
		EbN0:     ebn0,
		Gap:      40 + rng.IntN(60),
		Quantise: true,
	}
}

// successRate sends n frames of coding c (one per capture, demodulator
// reset in between) and counts exact decodes, and wrong or repeated frames.
func successRate(tb testing.TB, rng *rand.Rand, cfg demod.Config, n int, mk func(*rand.Rand) scene, c synth.Coding, tels []telegram) (ok, wrong int) {
	d, err := demod.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	var out []demod.Frame
	for range n {
		tel := tels[rng.IntN(len(tels))]
		x := mk(rng).render(tb, rng, chipsOf(tb, c, tel, 32))
		d.Reset()
		out = d.Flush(d.Work(x, out[:0]))
		seen := false
		for _, f := range out {
			if bytes.Equal(f.Data, tel.Data) && !seen {
				ok++
				seen = true
			} else {
				wrong++ // a wrong frame or a second report of the telegram
			}
		}
	}
	return ok, wrong
}

// BenchmarkSensitivity prints frame success versus Eb/N0 for Kamstrup C1-B
// compact frames (336 chips after the preamble) under the impairments
// above, beside the ideal noncoherent curve, and reports the Eb/N0 at
// which 90 % of frames decode. Run: go test -run '^$' -bench Sensitivity
func BenchmarkSensitivity(b *testing.B) {
	const frames = 200
	tels := meterFrames(b, true)
	for range b.N {
		rng := rand.New(rand.NewPCG(11, 12))
		var tab strings.Builder
		fmt.Fprintf(&tab, "\nC1-B compact, 1.6 MS/s, %d frames/point, offset ±20 kHz, ±50 ppm, deviation 45 kHz ±10 %%\n", frames)
		fmt.Fprintf(&tab, "Eb/N0 dB   ours    ideal   wrong\n")
		var xs, ys []float64
		for e := 7.0; e <= 15; e++ {
			ok, wrong := successRate(b, rng, demod.Config{SampleRate: 1.6e6}, frames, func(r *rand.Rand) scene { return impaired(r, 1.6e6, e) }, synth.C1B, tels)
			s := float64(ok) / frames
			fmt.Fprintf(&tab, "%6.1f   %6.1f%%  %6.1f%%  %d\n", e, 100*s, 100*idealSuccess(e, 336), wrong)
			xs, ys = append(xs, e), append(ys, s)
		}
		// Printed, not logged: the benchmark log keeps only 10 lines.
		fmt.Print(tab.String())
		b.ReportMetric(crossing(xs, ys, 0.9), "dB@90%")
		b.ReportMetric(ebn0For(0.9, 336), "ideal-dB@90%")
	}
}

// crossing interpolates where ys first reaches level.
func crossing(xs, ys []float64, level float64) float64 {
	for i := 1; i < len(xs); i++ {
		if ys[i-1] < level && ys[i] >= level {
			return xs[i-1] + (level-ys[i-1])/(ys[i]-ys[i-1])*(xs[i]-xs[i-1])
		}
	}
	if len(ys) > 0 && ys[0] >= level {
		return xs[0]
	}
	return math.Inf(1)
}

// ebn0For solves idealSuccess = s by bisection.
func ebn0For(s float64, chips int) float64 {
	lo, hi := 0.0, 30.0
	for range 60 {
		mid := (lo + hi) / 2
		if idealSuccess(mid, chips) < s {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}
