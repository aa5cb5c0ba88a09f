//go:build unix

package demod_test

import "syscall"

// cpuSeconds is the CPU time (user + system) the process has used: the
// throughput benchmarks report samples per CPU-second, which other work on
// a shared machine does not distort as it does wall-clock time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
