//go:build !amd64

package demod

// addPairs sets acc[i] += h·(a[i]+b[i]) for i < len(acc). a and b must be
// at least as long as acc.
func addPairs(acc, a, b []complex64, h float32) { addPairsGo(acc, a, b, h) }

// scale sets acc[i] = h·a[i] for i < len(acc); a must be at least as long.
func scale(acc, a []complex64, h float32) { scaleGo(acc, a, h) }
