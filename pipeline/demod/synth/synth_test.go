package synth

import (
	"bytes"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

func frameOf(n int) []byte {
	f := make([]byte, n)
	f[0] = byte(n - 1)
	for i := 1; i < n; i++ {
		f[i] = byte(i*37 + 11)
	}
	return f
}

// Encoding and the link layer's own stripping are inverse, for both formats
// and for format B frames with one and with two CRC blocks.
func TestAppendEncodedRoundTrip(t *testing.T) {
	for _, n := range []int{10, 11, 26, 27, 100, 126, 127, 200, 253} {
		for _, f := range []wmbus.Format{wmbus.FormatA, wmbus.FormatB} {
			frame := frameOf(n)
			raw, err := AppendEncoded(nil, frame, f)
			if f == wmbus.FormatB && n > 252 {
				if err == nil {
					t.Errorf("%d bytes format B: no error", n)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%d bytes %s: %v", n, f, err)
			}
			if want := wmbus.EncodedLen(raw[0], f); len(raw) != want {
				t.Errorf("%d bytes %s: %d on air, EncodedLen says %d", n, f, len(raw), want)
			}
			back, err := wmbus.AppendStripped(nil, raw, f)
			if err != nil || !bytes.Equal(back, frame) {
				t.Errorf("%d bytes %s: round trip %v", n, f, err)
			}
		}
	}
	if _, err := AppendEncoded(nil, []byte{5, 1, 2}, wmbus.FormatA); err == nil {
		t.Error("short frame: no error")
	}
}

func TestChipsLayout(t *testing.T) {
	frame := frameOf(20)
	for _, c := range []Coding{C1A, C1B, T1} {
		chips, err := AppendChips(nil, c, frame, 0)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := AppendEncoded(nil, frame, c.Format())
		pre := 32
		perByte, sync := 8, 32
		if c == T1 {
			pre, perByte, sync = 38, 12, 10
		}
		if want := pre + sync + perByte*len(raw) + 4; len(chips) != want {
			t.Errorf("%s: %d chips, want %d", c, len(chips), want)
		}
		// The 16 chips ending the sync read 0x543D (with the preamble tail for T1).
		var w uint32
		end := pre + 16
		if c == T1 {
			end = pre + 10
		}
		for _, b := range chips[end-16 : end] {
			w = w<<1 | uint32(b)
		}
		if w != 0x543D {
			t.Errorf("%s: sync reads %04X", c, w)
		}
		if c == T1 {
			// Every 6-chip group has three ones.
			for i := pre + sync; i+6 <= len(chips)-4; i += 6 {
				ones := 0
				for _, b := range chips[i : i+6] {
					ones += int(b)
				}
				if ones != 3 {
					t.Fatalf("T1 group at chip %d has %d ones", i, ones)
				}
			}
		}
	}
}

// The instantaneous frequency of the modulated signal is offset ± deviation,
// and a run of n chips takes n/chip rate seconds including the ppm error.
func TestModulatorFrequencyAndTiming(t *testing.T) {
	const fs = 1.6e6
	m, err := NewModulator(Signal{SampleRate: fs, ChipRate: 100e3, DeviationHz: 45e3, OffsetHz: -20e3, ChipErrorPPM: 100, Amplitude: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	ones := bytes.Repeat([]byte{1}, 100)
	zeros := bytes.Repeat([]byte{0}, 100)
	x := m.AppendChips(nil, ones)
	x = m.AppendChips(x, zeros)
	freq := func(a, b int) float64 {
		var acc complex128
		for i := a + 1; i < b; i++ {
			acc += complex128(x[i] * complex(real(x[i-1]), -imag(x[i-1])))
		}
		return math.Atan2(imag(acc), real(acc)) * fs / (2 * math.Pi)
	}
	n := len(x) / 2
	if f := freq(10, n-10); math.Abs(f-25e3) > 50 {
		t.Errorf("1 chips at %.0f Hz, want 25000", f)
	}
	if f := freq(n+10, len(x)-10); math.Abs(f+65e3) > 50 {
		t.Errorf("0 chips at %.0f Hz, want −65000", f)
	}
	want := 200 * fs / (100e3 * (1 + 100e-6))
	if math.Abs(float64(len(x))-want) > 2 {
		t.Errorf("%d samples for 200 chips, want %.1f", len(x), want)
	}
	for _, v := range x {
		if a := math.Hypot(float64(real(v)), float64(imag(v))); math.Abs(a-0.5) > 1e-4 {
			t.Fatalf("amplitude %.5f, want 0.5", a)
		}
	}
}

// The added noise has the variance the Eb/N0 definition asks for.
func TestNoiseVariance(t *testing.T) {
	const fs, ebn0 = 1.6e6, 10.0
	s2 := NoiseVariance(0.09, fs, 100e3, ebn0)
	if want := 0.09 * 16 / 10; math.Abs(s2-want) > 1e-12 {
		t.Fatalf("variance %.5f, want %.5f", s2, want)
	}
	x := make([]complex64, 400000)
	AddNoise(x, s2, rand.New(rand.NewPCG(1, 2)))
	var p float64
	for _, v := range x {
		p += float64(real(v)*real(v) + imag(v)*imag(v))
	}
	if p /= float64(len(x)); math.Abs(p/s2-1) > 0.01 {
		t.Errorf("measured variance %.5f, want %.5f", p, s2)
	}
}

func TestCU8(t *testing.T) {
	x := []complex64{0, complex(1, -1), complex(2, -2), complex(0.5, -0.25)}
	b := AppendCU8(nil, x)
	want := []byte{128, 128, 255, 0, 255, 0, 191, 96}
	if !bytes.Equal(b, want) {
		t.Errorf("cu8 % X, want % X", b, want)
	}
	Quantise(x)
	for i, v := range x {
		back := complex((float32(b[2*i])-127.5)/127.5, (float32(b[2*i+1])-127.5)/127.5)
		if v != back {
			t.Errorf("sample %d: quantised %v, cu8 reads back %v", i, v, back)
		}
	}
}

// An interferer puts its power where it was asked to.
func TestAddInterferer(t *testing.T) {
	const rate = 1.6e6
	for _, in := range []Interferer{
		{OffsetHz: 250e3, Amplitude: 0.5},
		{OffsetHz: -650e3, Amplitude: 0.1, ChipRate: 100e3, DeviationHz: 50e3},
	} {
		x := make([]complex64, 16000)
		AddInterferer(x, rate, in, rand.New(rand.NewPCG(1, 2)))
		var p float64
		// Mean frequency from the phase steps: the carrier.
		var f float64
		for i := 1; i < len(x); i++ {
			p += float64(real(x[i])*real(x[i]) + imag(x[i])*imag(x[i]))
			f += cmplx.Phase(complex128(x[i]*complex(real(x[i-1]), -imag(x[i-1])))) * rate / (2 * math.Pi)
		}
		p /= float64(len(x) - 1)
		f /= float64(len(x) - 1)
		if math.Abs(p-in.Amplitude*in.Amplitude) > 1e-3 || math.Abs(f-in.OffsetHz) > 3e3 {
			t.Errorf("%+v: power %.4f, mean frequency %.0f Hz", in, p, f)
		}
		if in.ChipRate != 0 {
			continue
		}
		// A carrier keeps its amplitude and frequency sample by sample.
		step := 2 * math.Pi * in.OffsetHz / rate
		for i := 1; i < len(x); i++ {
			d := cmplx.Phase(complex128(x[i])*cmplx.Conj(complex128(x[i-1]))) - step
			if a := cmplx.Abs(complex128(x[i])); math.Abs(a-in.Amplitude) > 1e-5 || math.Abs(math.Remainder(d, 2*math.Pi)) > 1e-5 {
				t.Fatalf("%+v: sample %d has amplitude %.6f, phase step off by %.2g rad", in, i, a, d)
			}
		}
	}
}

// AddChips lays a second transmission over a capture: where both are on
// the air the samples are the sum of the two, elsewhere each alone, and
// what falls outside the capture is left out.
func TestAddChipsOverlaps(t *testing.T) {
	sig := Signal{SampleRate: 1.6e6, ChipRate: 100e3, DeviationHz: 45e3, OffsetHz: 10e3, Amplitude: 0.5}
	chips := []byte{0, 1, 0, 1, 1, 1, 0, 0, 1, 0}
	a, _ := NewModulator(sig)
	alone := a.AppendChips(nil, chips) // 160 samples
	for _, at := range []int{-50, 0, 70, 200} {
		base, _ := NewModulator(Signal{SampleRate: 1.6e6, ChipRate: 100e3, DeviationHz: 45e3, OffsetHz: -30e3, Amplitude: 0.2})
		x := base.AppendChips(nil, append(chips, chips...)) // 320 samples
		orig := append([]complex64(nil), x...)
		b, _ := NewModulator(sig)
		if end := b.AddChips(x, at, chips); end != at+len(alone) {
			t.Errorf("at %d: end %d, want %d", at, end, at+len(alone))
		}
		for i := range x {
			want := orig[i]
			if k := i - at; k >= 0 && k < len(alone) {
				want += alone[k]
			}
			if cmplx.Abs(complex128(x[i]-want)) > 1e-6 {
				t.Fatalf("at %d: sample %d is %v, want %v", at, i, x[i], want)
			}
		}
	}
}
