package demod

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// toneGain runs a complex tone at f Hz through the channel filter of a
// capture at rate and returns the output power relative to the input in dB
// (aliases included: this is what the detector sees).
func toneGain(dec *Decimator, rate, f float64) float64 {
	const n = 1 << 14
	in := make([]complex64, n)
	s, c := math.Sincos(2 * math.Pi * f / rate)
	z, rot := complex(1, 0), complex(c, s) // a rotator: exact to 1e-12 over n samples
	for i := range in {
		in[i] = complex64(z)
		z *= rot
	}
	out := make([]complex64, n/dec.Factor()+1)
	k := dec.Work(in, out)
	var p float64
	skip := 64 // the filter's start-up
	for _, v := range out[skip:k] {
		p += float64(real(v)*real(v) + imag(v)*imag(v))
	}
	return 10 * math.Log10(p/float64(k-skip)+1e-30)
}

// TestChannelFilterResponse measures the channel filter of every supported
// rate with tones on both sides of the channel, through decimation (so
// aliases count): flat where the signal is (±60 kHz offset plus deviation),
// and at least 45 dB down from the stopband edge, where a neighbour would
// alias into the channel; at 1.6 and 2.4 MS/s the next channel (±250 kHz)
// is 48 dB down and everything beyond ±300 kHz 55 dB.
func TestChannelFilterResponse(t *testing.T) {
	for _, rate := range []float64{1.0e6, 1.2e6, 1.6e6, 2.0e6, 2.048e6, 2.4e6} {
		d, err := derive(Config{SampleRate: rate})
		if err != nil {
			t.Fatal(err)
		}
		var desc []string
		for _, s := range d.stages {
			desc = append(desc, s.String())
		}
		stop := d.rate - d.passHz
		var line strings.Builder
		for f := 0.0; f < rate/2; f += 10e3 {
			var g float64
			for _, sf := range []float64{f, -f} {
				g = toneGain(newDecimator(d.stages, d.decim), rate, sf)
				want := ""
				switch af := math.Abs(sf); {
				case af <= 110e3 && g < -0.5:
					want = "≥ −0.5 dB (passband)"
				case af >= stop && g > -45:
					want = "≤ −45 dB (stopband)"
				case (rate == 1.6e6 || rate == 2.4e6) && af >= 250e3 && g > -48:
					want = "≤ −48 dB (next channel)"
				case (rate == 1.6e6 || rate == 2.4e6) && af >= 300e3 && g > -55:
					want = "≤ −55 dB"
				}
				if want != "" {
					t.Errorf("%.3f MS/s (%s): %+.0f kHz passes at %.1f dB, want %s", rate/1e6, strings.Join(desc, "; "), sf/1e3, g, want)
				}
			}
			if int(f/10e3)%5 == 0 {
				fmt.Fprintf(&line, " %.0fk:%.1f", f/1e3, g) // at −f, like the +f side by symmetry
			}
		}
		t.Logf("%.3f MS/s ÷%d, delay %.0f samples: %s\n  dB at offset:%s", rate/1e6, d.decim, delayOf(d.stages), strings.Join(desc, "; "), line.String())
	}
}

// The filter gives the same output whatever the block sizes it is fed.
func TestDecimatorAcrossCalls(t *testing.T) {
	for _, rate := range []float64{1.6e6, 2.4e6, 2.0e6} {
		d, err := derive(Config{SampleRate: rate})
		if err != nil {
			t.Fatal(err)
		}
		in := make([]complex64, 20000)
		for i := range in {
			in[i] = complex(float32(math.Sin(float64(i)*0.37)), float32(i%13)/13)
		}
		whole := make([]complex64, len(in))
		n := newDecimator(d.stages, d.decim).Work(in, whole)
		dec := newDecimator(d.stages, d.decim)
		var parts []complex64
		buf := make([]complex64, len(in))
		for _, cut := range [][2]int{{0, 1}, {1, 2}, {2, 7}, {7, 5000}, {5000, 5003}, {5003, 20000}} {
			k := dec.Work(in[cut[0]:cut[1]], buf)
			parts = append(parts, buf[:k]...)
		}
		want := (len(in) + d.decim - 1) / d.decim // the first window ends at the first sample
		if n != want || len(parts) != n {
			t.Fatalf("%.1f MS/s: %d and %d outputs, want %d", rate/1e6, n, len(parts), want)
		}
		for i := range n {
			if whole[i] != parts[i] {
				t.Fatalf("%.1f MS/s output %d: %v in one block, %v in pieces", rate/1e6, i, whole[i], parts[i])
			}
		}
	}
}

// BenchmarkChannelFilter is the cost of the channel filter alone.
func BenchmarkChannelFilter(b *testing.B) {
	for _, rate := range []float64{1.6e6, 2.4e6} {
		d, err := derive(Config{SampleRate: rate})
		if err != nil {
			b.Fatal(err)
		}
		dec := newDecimator(d.stages, d.decim)
		in := make([]complex64, 1<<16)
		for i := range in {
			in[i] = complex(float32(i%7)-3, float32(i%5)-2)
		}
		out := make([]complex64, len(in))
		b.Run(fmt.Sprintf("%.1fMSps", rate/1e6), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				dec.Work(in, out)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/sample")
		})
	}
}
