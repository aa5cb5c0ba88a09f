// Package cputime measures the CPU time the process has used, so that
// throughput benchmarks can report work per CPU-second: figures that other
// work on a shared machine does not distort as it does wall-clock time.
package cputime

// Seconds is the CPU time (user + system) the process has used, 0 where
// the platform cannot say.
func Seconds() float64 { return seconds() }
