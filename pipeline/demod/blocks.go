package demod

import (
	"math"
)

// ncoBits is the size of the NCO table: 2^10 entries give spurs below −60 dBc,
// far under the noise of an 8-bit capture.
const ncoBits = 10

var ncoTable = func() (t [1 << ncoBits]complex64) {
	for i := range t {
		s, c := math.Sincos(2 * math.Pi * float64(i) / float64(len(t)))
		t[i] = complex(float32(c), float32(s))
	}
	return t
}()

// Mixer multiplies the signal by e^(jθ), θ stepping by a fixed amount per
// sample, to move a channel that is off the tuned centre to 0 Hz. The phase
// is a 32-bit accumulator indexing a sine table, so it never drifts.
type Mixer struct {
	phase, inc uint32
}

// NewMixer returns a mixer shifting by shiftHz at sampleRate.
func NewMixer(shiftHz, sampleRate float64) *Mixer {
	return &Mixer{inc: uint32(int64(math.Round(shiftHz/sampleRate*(1<<32))) & 0xFFFFFFFF)}
}

// Work writes in shifted in frequency to out (len(out) ≥ len(in); in and out
// may be the same slice) and returns the number of samples written.
func (m *Mixer) Work(in, out []complex64) int {
	out = out[:len(in)]
	p, inc := m.phase, m.inc
	for i, v := range in {
		r := ncoTable[p>>(32-ncoBits)]
		out[i] = complex(real(v)*real(r)-imag(v)*imag(r), real(v)*imag(r)+imag(v)*real(r))
		p += inc
	}
	m.phase = p
	return len(in)
}

// Discriminator turns complex samples into instantaneous frequency: the
// angle of z[n]·conj(z[n−1]) in radians per sample, in (−π, π]. The
// previous sample carries across calls.
type Discriminator struct {
	prev complex64
}

// Work writes one phase step per input sample to out (len(out) ≥ len(in)).
func (d *Discriminator) Work(in []complex64, out []float32) int {
	out = out[:len(in)]
	pr, pi := real(d.prev), imag(d.prev)
	for i, v := range in {
		vr, vi := real(v), imag(v)
		out[i] = fastAtan2(vi*pr-vr*pi, vr*pr+vi*pi)
		pr, pi = vr, vi
	}
	d.prev = complex(pr, pi)
	return len(in)
}

// fastAtan2 approximates atan2(y, x) within 0.004 rad. Octant folding is
// done on the float bit patterns, so noise, which makes every branch a coin
// toss, costs no mispredictions. The discriminator needs the full ±π
// range: a carrier 60 kHz off plus 50 kHz deviation turns up to 1.7 rad per
// sample at 400 kS/s, beyond the reach of a cross-product discriminator.
func fastAtan2(y, x float32) float32 {
	bx := math.Float32bits(x) &^ signBit
	by := math.Float32bits(y) &^ signBit
	// swap: all ones when |y| > |x| (positive floats order like integers).
	swap := uint32(int32(bx-by) >> 31)
	mn := math.Float32frombits(bx ^ (bx^by)&^swap)
	mx := math.Float32frombits(by ^ (bx^by)&^swap)
	a := mn / (mx + 1e-30)
	r := a * (math.Pi/4 + 0.273*(1-a))
	// |y| > |x|: π/2 − r.
	s := float32(swap & 1)
	r = s*math.Pi/2 + (1-2*s)*r
	// x < 0: π − r.
	s = float32(math.Float32bits(x) >> 31)
	r = s*math.Pi + (1-2*s)*r
	// y < 0: −r.
	return math.Float32frombits(math.Float32bits(r) ^ math.Float32bits(y)&signBit)
}

const signBit = 1 << 31
