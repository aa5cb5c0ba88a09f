package demod

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestFastAtan2(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	worst := 0.0
	for i := range 200000 {
		var x, y float32
		switch i {
		case 0:
			x, y = 0, 0
		case 1:
			x, y = -1, 0
		case 2:
			x, y = 0, -1
		case 3:
			x, y = 1, 1
		default:
			x, y = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		got := float64(fastAtan2(y, x))
		want := math.Atan2(float64(y), float64(x))
		d := math.Abs(math.Remainder(got-want, 2*math.Pi))
		if x == 0 && y == 0 {
			continue // any angle will do
		}
		worst = max(worst, d)
	}
	if worst > 0.0045 {
		t.Errorf("worst error %.5f rad, want ≤ 0.0045", worst)
	}
}

func TestMixerShiftsTone(t *testing.T) {
	const fs = 2.4e6
	in := make([]complex64, 4800)
	for i := range in {
		s, c := math.Sincos(2 * math.Pi * 325e3 * float64(i) / fs)
		in[i] = complex(float32(c), float32(s))
	}
	m := NewMixer(-325e3, fs)
	out := make([]complex64, len(in))
	// Two calls: the phase carries over.
	m.Work(in[:1000], out[:1000])
	m.Work(in[1000:], out[1000:])
	var d Discriminator
	f := make([]float32, len(out))
	d.Work(out, f)
	for i, v := range f[1:] {
		if math.Abs(float64(v)) > 0.01 {
			t.Fatalf("sample %d: residual %.4f rad/sample, want 0", i+1, v)
		}
	}
}

func TestDiscriminatorFrequency(t *testing.T) {
	const fs = 400e3
	for _, f := range []float64{-110e3, -45e3, 0, 20e3, 105e3, 190e3} {
		in := make([]complex64, 64)
		for i := range in {
			s, c := math.Sincos(2 * math.Pi * f * float64(i) / fs)
			in[i] = complex(float32(3*c), float32(3*s))
		}
		var d Discriminator
		out := make([]float32, len(in))
		d.Work(in, out)
		want := 2 * math.Pi * f / fs
		for i, v := range out[1:] {
			if math.Abs(float64(v)-want) > 0.005 {
				t.Fatalf("%.0f Hz sample %d: %.4f rad, want %.4f", f, i+1, v, want)
			}
		}
	}
}

func BenchmarkDiscriminator(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	in := make([]complex64, 4096)
	for i := range in {
		in[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
	}
	out := make([]float32, len(in))
	var d Discriminator
	b.SetBytes(int64(len(in)) * 8)
	for range b.N {
		d.Work(in, out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/sample")
}
