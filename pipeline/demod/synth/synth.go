// Package synth is a wM-Bus C1/T1 modulator for tests, benchmarks and the
// bundled recording. It turns link-layer frames into chips (preamble, sync,
// NRZ or 3-out-of-6 coding, CRCs) and chips into continuous-phase FSK
// samples with a chosen deviation, carrier offset and chip-rate error, then
// adds white Gaussian noise at a given Eb/N0 and quantises to 8-bit cu8.
// Production code never imports it; it exists so that the demodulator can be
// measured against signals whose truth is known exactly.
//
// Everything is deterministic for a given *rand.Rand seed.
package synth

import (
	"errors"
	"fmt"
	"math"
	"math/cmplx"
	"math/rand/v2"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Coding selects the on-air form of a telegram.
type Coding uint8

const (
	C1A Coding = iota // C1, frame format A, NRZ
	C1B               // C1, frame format B, NRZ
	T1                // T1, frame format A, 3-out-of-6
)

func (c Coding) String() string {
	switch c {
	case C1A:
		return "C1-A"
	case C1B:
		return "C1-B"
	case T1:
		return "T1"
	}
	return fmt.Sprintf("Coding(%d)", uint8(c))
}

// Format is the link-layer frame format the coding uses.
func (c Coding) Format() wmbus.Format {
	if c == C1B {
		return wmbus.FormatB
	}
	return wmbus.FormatA
}

// Sync words (chips after the preamble, most significant first).
const (
	syncC1   = 0x543D // first C1 sync word; the T1 sync reads the same with the preamble tail
	syncC1A  = 0x54CD // second C1 word: frame format A
	syncC1B  = 0x543D // second C1 word: frame format B
	syncT1   = 0x03D  // 0000111101, 10 chips
	syncT1N  = 10
	minPreC1 = 32 // chips: n ≥ 16 "01" pairs
	minPreT1 = 38 // chips: n ≥ 19 pairs
)

// threeOfSix is the 3-out-of-6 code of the nibbles 0..F (EN 13757-4).
var threeOfSix = [16]byte{0x16, 0x0D, 0x0E, 0x0B, 0x1C, 0x19, 0x1A, 0x13, 0x2C, 0x25, 0x26, 0x23, 0x34, 0x31, 0x32, 0x29}

// ErrFrame reports a frame the modulator cannot encode.
var ErrFrame = errors.New("synth: frame cannot be encoded")

// AppendEncoded appends the on-air bytes of frame (CRC-less form, L = bytes
// after L) in format f with its link-layer CRCs inserted. Format B rewrites L
// to count the CRCs.
func AppendEncoded(dst, frame []byte, f wmbus.Format) ([]byte, error) {
	if len(frame) < 10 || int(frame[0]) != len(frame)-1 {
		return dst, fmt.Errorf("%w: want the CRC-less form with L = len−1 and at least 10 bytes, got %d bytes with L=%d", ErrFrame, len(frame), firstByte(frame))
	}
	start := len(dst)
	switch f {
	case wmbus.FormatA:
		for off := 0; off < len(frame); {
			n := 16
			if off == 0 {
				n = 10
			}
			n = min(n, len(frame)-off)
			dst = append(dst, frame[off:off+n]...)
			dst = appendCRC(dst, frame[off:off+n])
			off += n
		}
	case wmbus.FormatB:
		total := len(frame) + 2
		if total > 128 {
			total += 2
		}
		if total > 256 {
			return dst, fmt.Errorf("%w: %d bytes do not fit format B", ErrFrame, len(frame))
		}
		dst = append(dst, frame...)
		dst[start] = byte(total - 1)
		if total <= 128 {
			dst = appendCRC(dst, dst[start:])
			break
		}
		// First block: bytes 0..125, its CRC, then the rest with its own CRC.
		rest := append([]byte(nil), dst[start+126:]...)
		dst = appendCRC(dst[:start+126], dst[start:start+126])
		dst = append(dst, rest...)
		dst = appendCRC(dst, rest)
	default:
		return dst, fmt.Errorf("%w: format %s has no CRCs to add", ErrFrame, f)
	}
	return dst, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

func appendCRC(dst, block []byte) []byte {
	c := wmbus.CRC(block)
	return append(dst, byte(c>>8), byte(c))
}

// AppendChips appends the chips (one byte each, 0 or 1) of a whole telegram:
// preamble of pre chips ("01" pairs; raised to the mode's minimum), sync
// words, and the encoded frame. frame is the CRC-less form.
func AppendChips(dst []byte, c Coding, frame []byte, pre int) ([]byte, error) {
	raw, err := AppendEncoded(nil, frame, c.Format())
	if err != nil {
		return dst, err
	}
	return AppendRawChips(dst, c, raw, pre)
}

// AppendRawChips is AppendChips for bytes that already carry their CRCs
// (for example a format B frame as received over the air).
func AppendRawChips(dst []byte, c Coding, raw []byte, pre int) ([]byte, error) {
	minPre := minPreC1
	if c == T1 {
		minPre = minPreT1
	}
	pre = max(pre, minPre)
	pre += pre & 1
	for i := range pre {
		dst = append(dst, byte(i&1))
	}
	switch c {
	case C1A, C1B:
		second := uint32(syncC1A)
		if c == C1B {
			second = syncC1B
		}
		dst = appendBits(dst, syncC1<<16|second, 32)
		for _, b := range raw {
			dst = appendBits(dst, uint32(b), 8)
		}
	case T1:
		dst = appendBits(dst, syncT1, syncT1N)
		for _, b := range raw {
			dst = appendBits(dst, uint32(threeOfSix[b>>4])<<6|uint32(threeOfSix[b&15]), 12)
		}
	default:
		return dst, fmt.Errorf("%w: unknown coding %s", ErrFrame, c)
	}
	// A short postamble keeps the last chip clean of the ramp-down.
	dst = append(dst, 0, 1, 0, 1)
	return dst, nil
}

func appendBits(dst []byte, v uint32, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>uint(i)&1))
	}
	return dst
}

// Signal describes the transmitter as the receiver sees it.
type Signal struct {
	SampleRate   float64 // samples per second of the capture
	ChipRate     float64 // nominal chips per second (100 000 for C1/T1)
	DeviationHz  float64 // FSK deviation; a 1 chip is the higher frequency
	OffsetHz     float64 // carrier frequency relative to the capture centre
	ChipErrorPPM float64 // transmitter clock error: the actual chip rate is ChipRate·(1+ppm·1e-6)
	Amplitude    float64 // complex amplitude (full scale is 1)
}

// Modulator writes continuous-phase FSK. The phase carries over from one
// telegram to the next and across silence, like a free-running oscillator.
type Modulator struct {
	s     Signal
	phase float64 // radians
}

// NewModulator checks s and returns a modulator for it.
func NewModulator(s Signal) (*Modulator, error) {
	if !(s.SampleRate > 0) || !(s.ChipRate > 0) || s.ChipRate*2 > s.SampleRate {
		return nil, fmt.Errorf("synth: sample rate %.0f and chip rate %.0f: need at least 2 samples per chip", s.SampleRate, s.ChipRate)
	}
	if math.Abs(s.OffsetHz)+s.DeviationHz >= s.SampleRate/2 {
		return nil, fmt.Errorf("synth: offset %.0f Hz ± deviation %.0f Hz is outside the %.0f S/s band", s.OffsetHz, s.DeviationHz, s.SampleRate)
	}
	if s.Amplitude == 0 {
		s.Amplitude = 0.5
	}
	return &Modulator{s: s}, nil
}

// Signal returns the modulator's parameters.
func (m *Modulator) Signal() Signal { return m.s }

// SamplesFor returns how many samples n chips occupy.
func (m *Modulator) SamplesFor(n int) int {
	return int(math.Ceil(float64(n) * m.s.SampleRate / m.chipRate()))
}

func (m *Modulator) chipRate() float64 { return m.s.ChipRate * (1 + m.s.ChipErrorPPM*1e-6) }

// AppendSilence appends n samples of unmodulated nothing (zeros).
func (m *Modulator) AppendSilence(dst []complex64, n int) []complex64 {
	for range n {
		dst = append(dst, 0)
	}
	return dst
}

// AppendChips appends the FSK samples of chips. The phase is integrated
// exactly, so a chip boundary inside a sample interval contributes its share
// of each frequency.
func (m *Modulator) AppendChips(dst []complex64, chips []byte) []complex64 {
	dt := 1 / m.s.SampleRate
	tc := 1 / m.chipRate()
	w := func(chip byte) float64 {
		f := m.s.OffsetHz - m.s.DeviationHz
		if chip != 0 {
			f = m.s.OffsetHz + m.s.DeviationHz
		}
		return 2 * math.Pi * f
	}
	total := float64(len(chips)) * tc
	a := m.s.Amplitude
	for t := 0.0; t < total; t += dt {
		// Phase at the sample instant, then advance over [t, t+dt).
		s, c := math.Sincos(m.phase)
		dst = append(dst, complex(float32(a*c), float32(a*s)))
		end := t + dt
		for u := t; u < end; {
			k := int(u / tc)
			if k >= len(chips) {
				m.phase += 2 * math.Pi * m.s.OffsetHz * (end - u)
				break
			}
			next := math.Min(float64(k+1)*tc, end)
			if next <= u { // rounding at a boundary
				next = math.Nextafter(u, math.Inf(1))
			}
			m.phase += w(chips[k]) * (next - u)
			u = next
		}
		if m.phase > math.Pi || m.phase < -math.Pi {
			m.phase = math.Remainder(m.phase, 2*math.Pi)
		}
	}
	return dst
}

// AddChips adds the FSK samples of chips to x from sample at on, as a
// second transmitter on the air at the same time would (a collision), and
// returns the index after its last sample. Samples that would fall outside
// x are left out; the phase still advances over them.
func (m *Modulator) AddChips(x []complex64, at int, chips []byte) int {
	y := m.AppendChips(nil, chips)
	for i, v := range y {
		if j := at + i; j >= 0 && j < len(x) {
			x[j] += v
		}
	}
	return at + len(y)
}

// NoiseVariance is the complex noise variance per sample that gives ebn0dB
// for a signal of the given power (Eb/N0 = P·Tchip/N0, N0 = σ²/fs).
func NoiseVariance(power, sampleRate, chipRate, ebn0dB float64) float64 {
	return power * sampleRate / chipRate / math.Pow(10, ebn0dB/10)
}

// AddNoise adds complex white Gaussian noise of variance sigma2 to x.
func AddNoise(x []complex64, sigma2 float64, rng *rand.Rand) {
	s := math.Sqrt(sigma2 / 2)
	for i := range x {
		x[i] += complex(float32(s*rng.NormFloat64()), float32(s*rng.NormFloat64()))
	}
}

// AppendCU8 appends x as unsigned 8-bit interleaved I/Q (value·127.5+127.5,
// clipped), the RTL-SDR native format.
func AppendCU8(dst []byte, x []complex64) []byte {
	q := func(v float32) byte {
		f := math.Round(float64(v)*127.5 + 127.5)
		return byte(math.Max(0, math.Min(255, f)))
	}
	for _, v := range x {
		dst = append(dst, q(real(v)), q(imag(v)))
	}
	return dst
}

// Quantise rounds x in place to what an 8-bit cu8 recording would hold.
func Quantise(x []complex64) {
	q := func(v float32) float32 {
		f := float64(v)*127.5 + 127.5
		switch {
		case f <= 0:
			f = 0
		case f >= 255:
			f = 255
		default:
			f = float64(int(f + 0.5)) // round half up: f is not negative
		}
		return float32((f - 127.5) / 127.5)
	}
	for i, v := range x {
		x[i] = complex(q(real(v)), q(imag(v)))
	}
}

// Interferer is a transmitter that is not the wanted one: a CW tone, or
// 2-FSK with random chips when ChipRate is set (a neighbour channel's
// meters, an alarm sensor, an RFID reader's carrier). The FSK frequency
// moves between its tones smoothly (two one-pole stages of a fifth of a
// chip, about what a transmitter's Gaussian filter does), so its spectrum
// stays near its tones as a real transmitter's does.
type Interferer struct {
	OffsetHz    float64 // carrier relative to the capture centre (any value: outside ±rate/2 it aliases, as in a real ADC)
	Amplitude   float64 // complex amplitude (full scale is 1)
	ChipRate    float64 // 0 for an unmodulated carrier
	DeviationHz float64 // FSK deviation when ChipRate is set
}

// AddInterferer adds in to x, captured at sampleRate, with a random start
// phase and (for FSK) random chips from rng. The phase is continuous.
func AddInterferer(x []complex64, sampleRate float64, in Interferer, rng *rand.Rand) {
	phase := rng.Float64() * 2 * math.Pi
	if in.ChipRate <= 0 {
		rng.IntN(2) // the draw an FSK interferer makes for its first chip
		addTone(x, sampleRate, in, phase)
		return
	}
	chipLen := sampleRate / in.ChipRate
	alpha := 1 - math.Exp(-1/(0.2*chipLen))
	dev := in.DeviationHz
	next := 0.0
	target := 0.0
	f1, f2 := 0.0, 0.0 // smoothed frequency offsets (two stages)
	for i := range x {
		if float64(i) >= next {
			next += chipLen
			target = dev
			if rng.IntN(2) == 0 {
				target = -dev
			}
			if i == 0 {
				f1, f2 = target, target
			}
		}
		f1 += alpha * (target - f1)
		f2 += alpha * (f1 - f2)
		s, c := math.Sincos(phase)
		x[i] += complex(float32(in.Amplitude*c), float32(in.Amplitude*s))
		phase += 2 * math.Pi * (in.OffsetHz + f2) / sampleRate
		if phase > math.Pi || phase < -math.Pi {
			phase = math.Remainder(phase, 2*math.Pi)
		}
	}
}

// addTone adds a carrier of constant frequency: a rotator, rescaled to its
// amplitude every 1024 samples so that rounding cannot make it drift.
func addTone(x []complex64, sampleRate float64, in Interferer, phase float64) {
	s, c := math.Sincos(2 * math.Pi * in.OffsetHz / sampleRate)
	rot := complex(c, s)
	s, c = math.Sincos(phase)
	z := complex(in.Amplitude*c, in.Amplitude*s)
	for i := range x {
		x[i] += complex64(z)
		z *= rot
		if i&1023 == 1023 {
			z *= complex(in.Amplitude/cmplx.Abs(z), 0)
		}
	}
}
