//go:build !unix

package demod_test

// cpuSeconds is unavailable here; the CPU-time metric is then omitted.
func cpuSeconds() float64 { return 0 }
