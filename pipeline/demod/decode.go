package demod

import (
	"bytes"
	"errors"
	"math"
	"math/cmplx"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

type status uint8

const (
	statusNeedMore status = iota
	statusFrame
	statusBadCRC
	statusBadCoding
	statusTruncated
)

type result struct {
	status status
	frame  Frame
	end    float64 // absolute decimated index where the frame ends
}

// Timing loop gain: the fraction of the measured timing error corrected at
// each chip transition. Small enough to average noise over tens of
// transitions, large enough to follow a 100 ppm clock (0.0004 samples per
// chip) with negligible lag.
const timingGain = 0.12

// decoder demodulates one telegram from the history once its sync word is
// known. All buffers are sized for the longest telegram in init.
type decoder struct {
	d *derived

	wc, wd float64     // tone centre and half spacing, rad per decimated sample
	tabP   []complex64 // e^(−j(wc+wd)m): matched filter of a 1 chip
	tabM   []complex64 // e^(−j(wc−wd)m): matched filter of a 0 chip
	soft   []float32   // |C1|²−|C0|² per chip
	taus   []float64   // chip start per chip (local index)
	raw    []byte      // on-air bytes
	out    []byte      // CRC-less bytes before they are handed out
	blocks []block     // CRC blocks of raw
	fix    corrector   // CRC-aided correction's tables and scratch
	// Moments of the decided tone's matched filter per tone (0, 1), for
	// the SNR estimate: count, Σ|C|², Σ|C|⁴.
	mom [2][3]float64
}

func (dc *decoder) init(d *derived) {
	dc.d = d
	n := d.spcI + 6
	dc.tabP = make([]complex64, n)
	dc.tabM = make([]complex64, n)
	dc.soft = make([]float32, d.maxChips+64)
	dc.taus = make([]float64, d.maxChips+64)
	dc.raw = make([]byte, 0, 300)
	dc.out = make([]byte, 0, 300)
	dc.blocks = make([]block, 0, 20)
	dc.fix.init()
}

// setTones builds the matched-filter tables for centre wc and deviation wd.
func (dc *decoder) setTones(wc, wd float64) {
	dc.wc, dc.wd = wc, wd
	for m := range dc.tabP {
		s, c := math.Sincos(-(wc + wd) * float64(m))
		dc.tabP[m] = complex(float32(c), float32(s))
		s, c = math.Sincos(-(wc - wd) * float64(m))
		dc.tabM[m] = complex(float32(c), float32(s))
	}
}

// corr is the matched filter over [t, t+length) of z (local sample units),
// each sample weighted by its overlap with the window (only the first and
// the last can be partial), with the tone tables referenced to sample ref.
func (dc *decoder) corr(z []complex64, t, length float64, ref int) (p, q complex64) {
	end := t + length
	n0 := int(math.Floor(t))
	n1 := int(math.Ceil(end)) - 1 // last sample inside the window
	if n1 <= n0 {
		v := z[n0] * complex(float32(length), 0)
		return v * dc.tabP[n0-ref], v * dc.tabM[n0-ref]
	}
	v := z[n0] * complex(float32(float64(n0+1)-t), 0)
	p, q = v*dc.tabP[n0-ref], v*dc.tabM[n0-ref]
	tp, tm := dc.tabP[n0+1-ref:n1-ref], dc.tabM[n0+1-ref:n1-ref]
	for i, v := range z[n0+1 : n1] {
		p += v * tp[i]
		q += v * tm[i]
	}
	v = z[n1] * complex(float32(end-float64(n1)), 0)
	return p + v*dc.tabP[n1-ref], q + v*dc.tabM[n1-ref]
}

func abs2(c complex64) float32 { return real(c)*real(c) + imag(c)*imag(c) }

func mag(c complex64) float32 { return float32(math.Sqrt(float64(abs2(c)))) }

// chip is the soft decision of the chip starting at t: positive for a 1.
func (dc *decoder) chip(z []complex64, t float64) float32 {
	p, q := dc.corr(z, t, dc.d.spc, int(math.Floor(t)))
	return abs2(p) - abs2(q)
}

// patternScore matches the 32 sync chips ending at end against the pattern.
func (dc *decoder) patternScore(z []complex64, end float64) float32 {
	var s float32
	spc := dc.d.spc
	for j := range syncChips {
		v := dc.chip(z, end-float64(j+1)*spc)
		if syncPattern>>uint(j)&1 == 0 {
			v = -v
		}
		s += v
	}
	return s
}

// refineTiming moves end by up to span eighths of a chip to where the sync
// pattern matches best. The match falls off over a chip on either side of
// its peak, so a coarse-to-fine search (steps of half, quarter and eighth
// of a chip, each from the best so far) finds the peak with a few
// evaluations; a parabola through it and its neighbours gives the rest.
func (dc *decoder) refineTiming(z []complex64, end float64, span int) float64 {
	const steps = 8 // evaluations per chip
	h := dc.d.spc / steps
	var sc [2*steps + 1]float32
	var have [2*steps + 1]bool
	score := func(i int) float32 {
		if !have[i+steps] {
			sc[i+steps], have[i+steps] = dc.patternScore(z, end+float64(i)*h), true
		}
		return sc[i+steps]
	}
	best := 0
	for step := steps / 2; step >= 1; step /= 2 {
		for _, c := range [2]int{best - step, best + step} {
			if c >= -span && c <= span && score(c) > score(best) {
				best = c
			}
		}
	}
	t := end + float64(best)*h
	if best > -span && best < span {
		a, b, c := score(best-1), score(best), score(best+1)
		if den := a - 2*b + c; den < 0 {
			t += float64(0.5*(a-c)/den) * h
		}
	}
	return t
}

// refineTones measures the phase advance between the halves of n chips
// (known or decided) starting at taus[0:n] with values given by chipOf, and
// corrects the tone centre and deviation from the 1 and 0 chips apart.
func (dc *decoder) refineTones(z []complex64, n int, tau func(int) float64, one func(int) bool) {
	spc := dc.d.spc
	var acc [2]complex128
	var cnt [2]int
	for k := range n {
		t := tau(k)
		ref := int(math.Floor(t))
		a1, a0 := dc.corr(z, t, spc/2, ref)
		b1, b0 := dc.corr(z, t+spc/2, spc/2, ref)
		if one(k) {
			acc[1] += complex128(b1 * conj(a1))
			cnt[1]++
		} else {
			acc[0] += complex128(b0 * conj(a0))
			cnt[0]++
		}
	}
	if cnt[0] == 0 || cnt[1] == 0 {
		return
	}
	// Residual phase per half chip of each tone → rad per sample.
	r1 := cmplx.Phase(acc[1]) / (spc / 2)
	r0 := cmplx.Phase(acc[0]) / (spc / 2)
	wc := dc.wc + (r1+r0)/2
	wd := dc.wd + (r1-r0)/2
	// A deviation estimate far from nominal is noise, not a transmitter.
	wd = math.Max(0.6*dc.d.dev, math.Min(1.4*dc.d.dev, wd))
	dc.setTones(wc, wd)
}

func conj(c complex64) complex64 { return complex(real(c), -imag(c)) }

// demodChips fills soft[from:to] with tracked chip decisions starting at
// chip start t and returns the start of chip `to`.
func (dc *decoder) demodChips(z []complex64, t float64, from, to int) float64 {
	spc := dc.d.spc
	half := spc / 2
	prev := from > 0 && dc.soft[from-1] > 0
	for k := from; k < to; k++ {
		if t < 0 || t+spc+2 >= float64(len(z)) {
			// The timing ran off the history: no decision possible.
			dc.soft[k], dc.taus[k] = 0, t
			t += spc
			continue
		}
		ref := int(math.Floor(t))
		p, q := dc.corr(z, t, spc, ref)
		ep, eq := abs2(p), abs2(q)
		v := ep - eq
		dc.soft[k] = v
		dc.taus[k] = t
		one := v > 0
		w := float64(max(ep, eq))
		mo := &dc.mom[b2u(one)]
		mo[0]++
		mo[1] += w
		mo[2] += w * w
		next := t + spc
		if k > from && one != prev {
			// At a transition, energy of this chip's tone before the
			// boundary means we are late; of the previous chip's tone
			// after it, early.
			lp, lq := dc.corr(z, t-half, half, int(math.Floor(t-half)))
			rp, rq := dc.corr(z, t, half, ref)
			var late, early, on float32
			if one {
				late, early, on = mag(lp), mag(rq), mag(p)
			} else {
				late, early, on = mag(lq), mag(rp), mag(q)
			}
			if on > 0 {
				e := float64((late - early) / on)
				e = math.Max(-0.5, math.Min(0.5, e))
				next -= timingGain * e * spc
			}
		}
		prev = one
		t = next
	}
	return t
}

// decode demodulates candidate c from the history of m.
func (dc *decoder) decode(m *Demodulator, c *candidate, final bool) result {
	d := dc.d
	spc := d.spc
	z := m.z[:m.n]
	end := c.end - float64(m.base)
	avail := float64(m.n) - 2
	if end-float64(syncChips+1)*spc-1 < 0 {
		return result{status: statusTruncated}
	}
	// The two timing refinements below may move the sync end later by up
	// to a chip and a bit; those samples must exist (a stream can end
	// right after a sync word).
	if end+2*spc > avail {
		return dc.more(c, 2, final)
	}
	dc.setTones(float64(c.dc)/float64(d.spcI), d.dev)
	end = dc.refineTiming(z, end, 8)
	// Known chips of the sync pattern correct the carrier and deviation.
	dc.refineTones(z, syncChips,
		func(k int) float64 { return end - float64(syncChips-k)*spc },
		func(k int) bool { return syncPattern>>uint(syncChips-1-k)&1 == 1 })
	// With the tones right the match is sharper; it moves the timing by
	// a fraction of a chip at most.
	end = dc.refineTiming(z, end, 2)
	if math.Abs(dc.wc) > 1.25*d.maxOffset {
		return result{status: statusBadCoding}
	}

	// Mode: a second C1 sync word, else T1 data right away.
	mode, format := Mode(0), wmbus.FormatA
	start := end
	if d.cfg.Modes&C1 != 0 {
		if end+18*spc > avail {
			return dc.more(c, 18, final)
		}
		mode, format, start = dc.secondSync(z, end)
	}
	if mode == 0 {
		if d.cfg.Modes&T1 == 0 {
			return result{status: statusBadCoding}
		}
		mode = T1
	}
	chipsPerByte := 8
	if mode == T1 {
		chipsPerByte = 12
	}
	offset := int(math.Round((start - end) / spc)) // chips between sync end and data
	if start+float64(chipsPerByte+2)*spc > avail {
		return dc.more(c, offset+chipsPerByte+2, final)
	}
	// The L byte tells how many bytes follow.
	dc.demodChips(z, start, 0, chipsPerByte)
	lbyte, ok := dc.byteAt(mode, 0)
	if !ok {
		return result{status: statusBadCoding}
	}
	nBytes := wmbus.EncodedLen(lbyte, format)
	if nBytes == 0 {
		return result{status: statusBadCoding}
	}
	nChips := nBytes * chipsPerByte
	if start+(float64(nChips)*1.0002+2)*spc > avail {
		return dc.more(c, offset+nChips+2, final)
	}
	var fr Frame
	frameEnd, st := dc.demodFrame(z, start, mode, format, nBytes, &fr)
	if st != statusFrame {
		return result{status: st}
	}
	dc.describe(m, &fr, end, frameEnd)
	return result{status: statusFrame, frame: fr, end: frameEnd + float64(m.base)}
}

// secondSync reads the 16 chips after the first sync word ending at end:
// a second C1 sync word names the frame format and the data follow it;
// anything else leaves mode 0.
func (dc *decoder) secondSync(z []complex64, end float64) (Mode, wmbus.Format, float64) {
	var w uint16
	t := end
	for range 16 {
		w = w<<1 | uint16(b2u(dc.chip(z, t) > 0))
		t += dc.d.spc
	}
	for _, s := range c1Second {
		if onesCount16(w^s.word) <= 2 {
			return C1, s.format, t
		}
	}
	return 0, wmbus.FormatA, end
}

// demodFrame demodulates the nBytes of a telegram starting at chip start
// into fr and returns where its last chip ends. Two passes: the second
// re-estimates the tones from the first pass's decisions over the whole
// frame.
func (dc *decoder) demodFrame(z []complex64, start float64, mode Mode, format wmbus.Format, nBytes int, fr *Frame) (float64, status) {
	nChips := nBytes * 8
	if mode == T1 {
		nChips = nBytes * 12
	}
	tau := func(k int) float64 { return dc.taus[k] }
	one := func(k int) bool { return dc.soft[k] > 0 }
	var st status
	var frameEnd float64
	for pass := range 2 {
		dc.mom = [2][3]float64{}
		frameEnd = dc.demodChips(z, start, 0, nChips)
		st = dc.assemble(mode, format, nBytes, fr)
		if st == statusFrame || pass == 1 {
			break
		}
		dc.refineTones(z, nChips, tau, one)
	}
	if st == statusFrame {
		// The carrier offset reported is measured over the whole frame,
		// its chips now known.
		dc.refineTones(z, nChips, tau, one)
		fr.Mode, fr.Format = mode, format
	}
	return frameEnd, st
}

// describe fills in what the radio saw of a frame whose sync word ended at
// end and whose last chip ended at frameEnd (local decimated indices).
func (dc *decoder) describe(m *Demodulator, fr *Frame, end, frameEnd float64) {
	d := dc.d
	fr.OffsetHz = dc.wc * d.rate / (2 * math.Pi)
	syncStart := end - 16*d.spc
	fr.Position = int64(math.Round((syncStart+float64(m.base))*float64(d.decim) - m.dec.Delay()))
	// Level: mean power over the frame (the channel filter has unity gain).
	var pw float64
	i0, i1 := int(syncStart), min(int(frameEnd), m.n)
	for _, v := range m.z[i0:i1] {
		pw += float64(abs2(v))
	}
	pw /= float64(max(1, i1-i0))
	fr.LevelDBFS = 10 * math.Log10(pw+1e-20)
	fr.SNRdB = dc.snr()
}

func onesCount16(v uint16) int {
	n := 0
	for ; v != 0; v &= v - 1 {
		n++
	}
	return n
}

// more asks to be called again once chips more chips after the sync exist.
func (dc *decoder) more(c *candidate, chips int, final bool) result {
	if final {
		return result{status: statusTruncated}
	}
	c.need = chips
	return result{status: statusNeedMore}
}

// byteAt decodes byte i from the soft chips.
func (dc *decoder) byteAt(mode Mode, i int) (byte, bool) {
	if mode == T1 {
		s := dc.soft[i*12 : i*12+12]
		var hi, lo byte
		for j := range 6 {
			hi = hi<<1 | byte(b2u(s[j] > 0))
			lo = lo<<1 | byte(b2u(s[6+j] > 0))
		}
		h, l := fromSix[hi], fromSix[lo]
		if h == invalidNibble || l == invalidNibble {
			return 0, false
		}
		return h<<4 | l, true
	}
	s := dc.soft[i*8 : i*8+8]
	var b byte
	for _, v := range s {
		b = b<<1 | byte(b2u(v > 0))
	}
	return b, true
}

// assemble turns the soft chips into bytes, checks the CRCs (correcting the
// least reliable bits of C1 blocks within the bound) and fills fr.Data.
func (dc *decoder) assemble(mode Mode, format wmbus.Format, nBytes int, fr *Frame) status {
	dc.raw = dc.raw[:0]
	for i := range nBytes {
		b, ok := dc.byteAt(mode, i)
		if !ok {
			// An invalid 3-of-6 group invalidates its byte and the frame.
			return statusBadCoding
		}
		dc.raw = append(dc.raw, b)
	}
	fr.Corrected = 0
	data, err := wmbus.AppendStripped(dc.out[:0], dc.raw, format)
	if err != nil && mode == C1 && dc.d.correction > 0 && errors.Is(err, wmbus.ErrBlockCRC) {
		dc.blocks = appendBlocks(dc.blocks[:0], nBytes, format)
		fixed := 0
		for _, b := range dc.blocks {
			n, ok := dc.correctBlock(b)
			if !ok {
				return statusBadCRC
			}
			fixed += n
		}
		data, err = wmbus.AppendStripped(dc.out[:0], dc.raw, format)
		fr.Corrected = fixed
	}
	if err != nil {
		return statusBadCRC
	}
	if fr.Corrected == 0 && mode == C1 && dc.d.correction > 0 && !dc.surelyClean(nBytes, format) {
		return statusBadCRC
	}
	// The one allocation per frame: the caller keeps the bytes.
	fr.Data = bytes.Clone(data)
	return statusFrame
}

// snr estimates signal over noise energy from the second and fourth
// moments of the matched filter's output for a constant-envelope signal in
// complex Gaussian noise: M2 = S+N, M4 = S²+4SN+2N². Only the decided tone
// is used, so the leakage of one FSK tone into the other's filter (the
// tones are not orthogonal at h ≈ 0.9) does not cap the estimate, and each
// tone is measured apart because the channel filter passes them with
// different gain far off the channel. With the filter spanning one chip,
// S/N is the chip's Eb/N0.
func (dc *decoder) snr() float64 {
	s, n := dc.energies()
	if n <= 0 {
		return 60 // no measurable noise
	}
	return math.Min(60, 10*math.Log10(math.Max(s/n, 1e-6)))
}

// energies returns the mean signal and noise energy per chip of the
// decided tone's matched filter (the units of soft), from the moments.
func (dc *decoder) energies() (s, n float64) {
	var cnt float64
	for _, mo := range dc.mom {
		if mo[0] == 0 {
			continue
		}
		m2, m4 := mo[1]/mo[0], mo[2]/mo[0]
		st := math.Sqrt(math.Max(0, 2*m2*m2-m4))
		s += st * mo[0]
		n += (m2 - st) * mo[0]
		cnt += mo[0]
	}
	if cnt == 0 {
		return 0, 0
	}
	return s / cnt, n / cnt
}
