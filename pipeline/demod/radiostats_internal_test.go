package demod

import "testing"

// BenchmarkSpectrumMeter is the spectrum's cost per input sample at
// 1.6 MS/s (8 transforms of 256 points a second); compare with the
// ns/sample of BenchmarkThroughput.
func BenchmarkSpectrumMeter(b *testing.B) {
	const rate = 1.6e6
	s := newSpectrumMeter(rate, 868.95e6)
	v := &radioView{}
	in := make([]complex64, 1<<16)
	for i := range in {
		in[i] = complex(float32(i%7)-3, float32(i%5)-2)
	}
	var pos int64
	b.ReportAllocs()
	for range b.N {
		s.work(in, pos, v, pos+int64(len(in)))
		pos += int64(len(in))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/sample")
}
