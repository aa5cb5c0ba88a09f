package demod_test

import (
	"math/rand/v2"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/internal/cputime"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod/synth"
)

// throughputScene is about a second of capture with a few telegrams at
// 20 dB and noise between them, quantised like a dongle's output.
func throughputScene(b *testing.B, rate, center float64) []complex64 {
	tels := meterFrames(b, false)
	rng := rand.New(rand.NewPCG(7, 8))
	var chips [][]byte
	for i := range 4 {
		chips = append(chips, chipsOf(b, []synth.Coding{synth.C1B, synth.T1}[i%2], tels[i%len(tels)], 40))
	}
	sc := scene{Rate: rate, Shift: 868.95e6 - center, Offset: 15e3, Dev: 47e3, PPM: 30, EbN0: 20, Gap: 25000, Quantise: true}
	return sc.render(b, rng, chips...)
}

func BenchmarkThroughput(b *testing.B) {
	for _, c := range []struct {
		name         string
		rate, center float64
	}{
		{"C1+T1/1.6MSps", 1.6e6, 868.95e6},
		{"C1+T1/2.4MSps-mixed", 2.4e6, 868.625e6},
	} {
		b.Run(c.name, func(b *testing.B) {
			x := throughputScene(b, c.rate, c.center)
			d, err := demod.New(demod.Config{SampleRate: c.rate, CenterHz: c.center, Modes: demod.C1 | demod.T1})
			if err != nil {
				b.Fatal(err)
			}
			const block = 1 << 16 // what an rtl_sdr read delivers
			out := make([]demod.Frame, 0, 16)
			frames := 0
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cputime.Seconds()
			for range b.N {
				for i := 0; i < len(x); i += block {
					out = d.Work(x[i:min(i+block, len(x))], out[:0])
					frames += len(out)
				}
			}
			b.StopTimer()
			cpu := cputime.Seconds() - cpu0
			if frames < 4*b.N {
				b.Errorf("%d frames in %d passes, want 4 per pass", frames, b.N)
			}
			b.ReportMetric(float64(len(x))*float64(b.N)/b.Elapsed().Seconds()/1e6, "MS/s")
			if cpu > 0 {
				b.ReportMetric(float64(len(x))*float64(b.N)/cpu/1e6, "MS/cpu-s")
			}
			b.ReportMetric(float64(len(x))/c.rate, "s/op")
		})
	}
}
