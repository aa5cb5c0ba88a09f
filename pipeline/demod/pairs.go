package demod

// addPairsGo is the portable addPairs, and the reference its assembly
// version is tested against.
func addPairsGo(acc, a, b []complex64, h float32) {
	a, b = a[:len(acc)], b[:len(acc)]
	for i := range acc {
		x, y := a[i], b[i]
		acc[i] += complex(h*(real(x)+real(y)), h*(imag(x)+imag(y)))
	}
}

// scaleGo is the portable scale.
func scaleGo(acc, a []complex64, h float32) {
	a = a[:len(acc)]
	for i, v := range a {
		acc[i] = complex(h*real(v), h*imag(v))
	}
}
