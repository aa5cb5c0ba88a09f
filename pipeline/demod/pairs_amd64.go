package demod

// addPairs sets acc[i] += h·(a[i]+b[i]) for i < len(acc). a and b must be
// at least as long as acc.
func addPairs(acc, a, b []complex64, h float32) {
	if len(a) < len(acc) || len(b) < len(acc) {
		panic("demod: addPairs operands shorter than the accumulator")
	}
	addPairsSSE(acc, a, b, h)
}

// addPairsSSE is addPairs in assembly: the I and Q floats of four samples
// at a time (SSE, which every amd64 processor has).
//
//go:noescape
func addPairsSSE(acc, a, b []complex64, h float32)

// scale sets acc[i] = h·a[i] for i < len(acc); a must be at least as long.
func scale(acc, a []complex64, h float32) {
	if len(a) < len(acc) {
		panic("demod: scale operand shorter than the accumulator")
	}
	scaleSSE(acc, a, h)
}

// scaleSSE is scale in assembly.
//
//go:noescape
func scaleSSE(acc, a []complex64, h float32)
