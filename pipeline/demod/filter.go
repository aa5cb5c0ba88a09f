package demod

import (
	"fmt"
	"math"
)

// Channel filter design.
//
// The channel filter brings the capture down to about four samples per
// chip and removes everything outside the channel before it can alias into
// it. It is a cascade of decimating FIR stages, each a Kaiser-windowed sinc
// designed in derive from the configuration:
//
//   - the last stage keeps the passband (carrier offset range + deviation +
//     half the chip rate, ±157.5 kHz by default) and stops from the output
//     rate minus the passband edge (±242.5 kHz at 400 kS/s): nothing from
//     the stopband can land in the passband after decimation;
//   - earlier stages only have to keep what the later stages pass, so their
//     transition bands are wide and they are short. A decimate-by-2 stage is
//     made symmetric about a quarter of its input rate, which makes it a
//     half-band filter: every other tap is zero and is skipped.
//
// At 1.6 MS/s this is two half-band stages (1.6 M → 800 k → 400 kS/s); at
// 2.4 MS/s a decimate-by-3 stage and the same last half-band.

// filterAttenDB is the stopband attenuation each stage is designed for. An
// 8-bit dongle has about 48 dB of dynamic range, so a neighbour at full
// scale is 60 dB below it once filtered.
const filterAttenDB = 50

// maxStageTaps bounds the length of one stage (a very high input rate
// would rather decimate in more stages).
const maxStageTaps = 255

// stageDesign is one decimating stage of the channel filter.
type stageDesign struct {
	factor     int
	inRate     float64
	passHz     float64 // passband edge
	stopHz     float64 // stopband edge
	taps       []float64
	attenDB    float64 // design target
	transition float64 // (stop−pass)/inRate
}

// kaiserLowpass designs a linear-phase low-pass of odd length at rate fs
// with passband edge pass, stopband edge stop and attenuation atten dB
// (Kaiser's formulas for the window and the length). Taps sum to 1.
func kaiserLowpass(fs, pass, stop, atten float64) []float64 {
	dw := 2 * math.Pi * (stop - pass) / fs
	n := int(math.Ceil((atten-7.95)/(2.285*dw))) + 1
	n |= 1 // odd: a centre tap, integer delay
	n = min(n, maxStageTaps)
	var beta float64
	switch {
	case atten > 50:
		beta = 0.1102 * (atten - 8.7)
	case atten >= 21:
		beta = 0.5842*math.Pow(atten-21, 0.4) + 0.07886*(atten-21)
	}
	fc := (pass + stop) / 2 / fs // cycles per sample
	h := make([]float64, n)
	mid := float64(n-1) / 2
	i0b := besselI0(beta)
	var sum float64
	for i := range h {
		x := float64(i) - mid
		s := 2 * fc
		if x != 0 {
			s = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
		}
		r := x / mid
		w := besselI0(beta*math.Sqrt(math.Max(0, 1-r*r))) / i0b
		h[i] = s * w
		sum += h[i]
	}
	for i := range h {
		h[i] /= sum
	}
	// A half-band design (fc = 1/4) has exact zeros every other tap; make
	// them exact so that they are skipped, and drop zero end taps.
	if math.Abs(fc-0.25) < 1e-12 {
		for i := range h {
			if x := int(math.Round(float64(i) - mid)); x != 0 && x%2 == 0 {
				h[i] = 0
			}
		}
		if h[0] == 0 {
			h = h[1 : len(h)-1]
		}
	}
	return h
}

// besselI0 is the modified Bessel function of the first kind, order 0.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < 1e-12*sum {
			break
		}
	}
	return sum
}

// stageFactors splits a decimation into stages: the largest factors first,
// so that the sharp last stage runs at the lowest rate, and a last factor
// of 2 where possible (a half-band).
func stageFactors(decim int) []int {
	var f []int
	twos := 0
	for decim%2 == 0 && decim > 1 {
		twos++
		decim /= 2
	}
	for p := 3; decim > 1; p += 2 {
		for decim%p == 0 {
			f = append(f, p)
			decim /= p
		}
	}
	for range twos {
		f = append(f, 2)
	}
	return f
}

// designChannel designs the stages decimating rate by decim with passband
// edge pass.
func designChannel(rate float64, decim int, pass float64) []stageDesign {
	if decim <= 1 {
		return nil
	}
	out := rate / float64(decim)
	// The last stage stops where the stopband would alias into the
	// passband after decimation.
	lastStop := out - pass
	var st []stageDesign
	in := rate
	factors := stageFactors(decim)
	for i, f := range factors {
		o := in / float64(f)
		s := stageDesign{factor: f, inRate: in, passHz: pass, attenDB: filterAttenDB}
		if i == len(factors)-1 {
			s.stopHz = lastStop
		} else {
			// Keep [−lastStop, lastStop] free of aliases; what lands
			// between the passband and lastStop the later stages remove.
			s.stopHz = o - lastStop
			if f == 2 {
				s.passHz = lastStop // symmetric about in/4: half-band
			}
		}
		s.taps = kaiserLowpass(in, s.passHz, s.stopHz, s.attenDB)
		s.transition = (s.stopHz - s.passHz) / in
		st = append(st, s)
		in = o
	}
	return st
}

// delayOf is the group delay of the cascade in input samples.
func delayOf(st []stageDesign) float64 {
	var delay float64
	scale := 1.0
	for _, s := range st {
		delay += float64(len(s.taps)-1) / 2 * scale
		scale *= float64(s.factor)
	}
	return delay
}

func (s stageDesign) String() string {
	nz := 0
	for _, h := range s.taps {
		if h != 0 {
			nz++
		}
	}
	return fmt.Sprintf("÷%d at %.0f kS/s: %d taps (%d non-zero), pass ±%.1f kHz, stop ±%.1f kHz, %g dB", s.factor, s.inRate/1e3, len(s.taps), nz, s.passHz/1e3, s.stopHz/1e3, s.attenDB)
}

// firStage is one decimating FIR stage at run time. The taps are
// symmetric, so each output folds its window and multiplies once per pair
// of taps; zero taps (half-band) are skipped. The input is kept as its
// polyphase branches (branch r holds samples base+r, base+r+f, … where
// base is the start of the next output's window), so that each tap pair is
// one streaming multiply-add over all the outputs of a block (addPairs).
type firStage struct {
	factor int
	n      int       // taps
	pairs  []float32 // h[j] of the folded non-zero pairs
	offs   []int     // j of each pair (its partner is n−1−j)
	center float32
	branch [][]complex64
	fill   int // samples from base held in the branches
}

func newFIRStage(factor int, taps []float64, maxIn int) *firStage {
	n := len(taps)
	s := &firStage{factor: factor, n: n, center: float32(taps[n/2])}
	for j := range n / 2 {
		if taps[j] != 0 {
			s.pairs = append(s.pairs, float32(taps[j]))
			s.offs = append(s.offs, j)
		}
	}
	per := (n+factor+maxIn)/factor + 1
	for range factor {
		s.branch = append(s.branch, make([]complex64, per))
	}
	s.fill = n - 1 // the stream starts after silence
	return s
}

// work filters in (at most maxIn samples) into out and returns the number
// of outputs.
func (s *firStage) work(in, out []complex64) int {
	n, f := s.n, s.factor
	// Deal the new samples to the branches.
	if f == 2 {
		e, o := s.branch[0], s.branch[1]
		k := s.fill / 2
		if s.fill%2 == 1 && len(in) > 0 {
			o[k] = in[0]
			in = in[1:]
			k++
			s.fill++
		}
		h := len(in) / 2
		e, o = e[k:k+h], o[k:k+h]
		for i := range e {
			e[i], o[i] = in[2*i], in[2*i+1]
		}
		if len(in)%2 == 1 {
			s.branch[0][k+h] = in[len(in)-1]
		}
		s.fill += len(in)
	} else {
		r, k := s.fill%f, s.fill/f
		for _, v := range in {
			s.branch[r][k] = v
			if r++; r == f {
				r = 0
				k++
			}
		}
		s.fill += len(in)
	}
	m := 0 // outputs: windows [j·f, j·f+n) inside the fill
	if s.fill >= n {
		m = (s.fill-n)/f + 1
	}
	if m == 0 {
		return 0
	}
	acc := out[:m]
	mid := n / 2
	scale(acc, s.branch[mid%f][mid/f:], s.center)
	for k, j := range s.offs {
		jb := n - 1 - j
		addPairs(acc, s.branch[j%f][j/f:], s.branch[jb%f][jb/f:], s.pairs[k])
	}
	// The next window starts m·f samples on: drop m from every branch.
	rest := s.fill - m*f
	for r, br := range s.branch {
		copy(br, br[m:m+(rest-r+f-1)/f])
	}
	s.fill = rest
	return m
}

// Decimator is the channel filter: a cascade of decimating FIR stages
// designed from the configuration (see designChannel). Work accepts any
// number of samples; state carries across calls.
type Decimator struct {
	factor int
	stages []*firStage
	tmp    [2][]complex64
	block  int // input samples per internal step
	delay  float64
}

// decimatorBlock is the number of input samples filtered per internal step.
const decimatorBlock = 4096

// NewDecimator returns the channel filter for a capture at sampleRate
// decimating by factor, with passband edge passHz.
func NewDecimator(sampleRate float64, factor int, passHz float64) *Decimator {
	return newDecimator(designChannel(sampleRate, factor, passHz), factor)
}

func newDecimator(st []stageDesign, factor int) *Decimator {
	d := &Decimator{factor: max(1, factor), block: decimatorBlock, delay: delayOf(st)}
	in := d.block
	for _, s := range st {
		d.stages = append(d.stages, newFIRStage(s.factor, s.taps, in))
		in = in/s.factor + 1
	}
	for i := range d.tmp {
		d.tmp[i] = make([]complex64, d.block/2+2)
	}
	return d
}

// Factor returns the decimation factor.
func (d *Decimator) Factor() int { return d.factor }

// Delay returns the filter's group delay in input samples: output sample k
// describes input time k·Factor − Delay.
func (d *Decimator) Delay() float64 { return d.delay }

// Work decimates in into out and returns the number of output samples;
// out needs room for len(in)/Factor+1 samples.
func (d *Decimator) Work(in, out []complex64) int {
	if len(d.stages) == 0 {
		return copy(out, in)
	}
	o := 0
	for len(in) > 0 {
		blk := in[:min(len(in), d.block)]
		in = in[len(blk):]
		src := blk
		for i, s := range d.stages {
			var dst []complex64
			if i == len(d.stages)-1 {
				dst = out[o:]
			} else {
				dst = d.tmp[i&1]
			}
			k := s.work(src, dst)
			src = dst[:k]
		}
		o += len(src)
	}
	return o
}
