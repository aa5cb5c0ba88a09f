//go:build race

package remote_test

// The race detector's instrumentation allocates; allocation counts are
// checked without it.
const raceEnabled = true
