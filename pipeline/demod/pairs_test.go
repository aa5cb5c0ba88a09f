package demod

import (
	"math/rand/v2"
	"testing"
)

// The assembly kernels agree with the portable ones at every length (the
// tails of the vector loops included).
func TestPairKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	rnd := func(n int) []complex64 {
		x := make([]complex64, n)
		for i := range x {
			x[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
		}
		return x
	}
	for n := range 19 {
		a, b, acc := rnd(n+3), rnd(n+5), rnd(n)
		want := append([]complex64(nil), acc...)
		addPairsGo(want, a, b, 0.37)
		addPairs(acc, a, b, 0.37)
		for i := range acc {
			if acc[i] != want[i] {
				t.Fatalf("addPairs n=%d [%d]: %v, want %v", n, i, acc[i], want[i])
			}
		}
		scaleGo(want, a, -1.5)
		scale(acc, a, -1.5)
		for i := range acc {
			if acc[i] != want[i] {
				t.Fatalf("scale n=%d [%d]: %v, want %v", n, i, acc[i], want[i])
			}
		}
	}
}
