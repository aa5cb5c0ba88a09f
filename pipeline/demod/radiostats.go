package demod

import (
	"math"
	"math/cmplx"
	"slices"
	"sync"
)

// What the radio sees, for the gateway's health sensor and status page:
// the demodulator's counters (Stats) and an averaged power spectrum of the
// whole capture (Spectrum). Both are plain data; Demodulator.Stats and
// Demodulator.Spectrum return copies and may be called from any goroutine
// while another runs Work.

// Spectrum is an averaged power spectrum of the whole capture (before the
// channel is mixed down), published about once a second.
type Spectrum struct {
	CenterHz   float64 // frequency the capture is tuned to
	SampleRate float64 // samples per second: the span is ±SampleRate/2
	BinHz      float64 // width of one bin
	// PowerDBFS holds one value per bin, lowest frequency first: bin i is
	// centred at CenterHz − SampleRate/2 + i·BinHz. dB relative to a
	// full-scale tone (a full-scale tone in one bin reads 0 dBFS).
	PowerDBFS []float32
	// NoiseFloorDBFS is the median bin: the floor with a few signals on it.
	NoiseFloorDBFS float64
	// Peaks are the strongest local maxima at least PeakMinDB above the
	// floor, strongest first (at most MaxPeaks).
	Peaks    []Peak
	Averaged int   // transforms averaged into this snapshot
	Samples  int64 // input samples consumed when it was published
}

// Peak is one strong signal in the spectrum.
type Peak struct {
	FrequencyHz float64 // absolute frequency of the bin
	OffsetHz    float64 // relative to the tuned centre
	PowerDBFS   float64
	AboveFloor  float64 // dB above the noise floor
}

// Spectrum parameters.
const (
	SpectrumBins   = 256 // bins per transform
	spectrumPerSec = 8   // transforms averaged per snapshot (one snapshot a second)
	MaxPeaks       = 8
	PeakMinDB      = 10
)

// Valid reports whether a snapshot has been published yet.
func (s Spectrum) Valid() bool { return len(s.PowerDBFS) > 0 }

// radioView is the part of a demodulator another goroutine reads.
type radioView struct {
	mu       sync.Mutex
	stats    Stats
	spectrum Spectrum // slices allocated once, overwritten in place
}

// spectrumMeter averages transforms of the input and publishes snapshots.
type spectrumMeter struct {
	rate, center float64
	every        int64 // input samples between transforms
	next         int64 // sample index where the next transform starts
	fill         int
	buf          [SpectrumBins]complex128
	win          [SpectrumBins]float64
	tw           [SpectrumBins / 2]complex128
	acc          [SpectrumBins]float64
	n            int
	db           [SpectrumBins]float32
	sorted       [SpectrumBins]float32
	peaks        [MaxPeaks]Peak
}

func newSpectrumMeter(rate, center float64) *spectrumMeter {
	s := &spectrumMeter{rate: rate, center: center}
	s.every = max(SpectrumBins, int64(rate/spectrumPerSec))
	var sum float64
	for i := range s.win {
		s.win[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/SpectrumBins)
		sum += s.win[i]
	}
	for i := range s.win {
		s.win[i] /= sum // a full-scale tone sums to 1 in its bin
	}
	for i := range s.tw {
		s.tw[i] = cmplx.Exp(complex(0, -2*math.Pi*float64(i)/SpectrumBins))
	}
	return s
}

// work takes what it needs of in, whose first sample has index pos, and
// publishes to v when a second's worth is averaged.
func (s *spectrumMeter) work(in []complex64, pos int64, v *radioView, samples int64) {
	for {
		start := s.next + int64(s.fill)
		if start >= pos+int64(len(in)) {
			return
		}
		i := int(max(0, start-pos))
		k := min(SpectrumBins-s.fill, len(in)-i)
		for j, x := range in[i : i+k] {
			s.buf[s.fill+j] = complex128(x) * complex(s.win[s.fill+j], 0)
		}
		s.fill += k
		if s.fill < SpectrumBins {
			return
		}
		s.fill = 0
		s.next += s.every
		s.transform()
		for b, x := range s.buf {
			s.acc[b] += real(x)*real(x) + imag(x)*imag(x)
		}
		if s.n++; s.n == spectrumPerSec {
			s.publish(v, samples)
			s.n = 0
			s.acc = [SpectrumBins]float64{}
		}
	}
}

// transform is an in-place radix-2 FFT of buf.
func (s *spectrumMeter) transform() {
	x := &s.buf
	const n = SpectrumBins
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		half, step := size/2, n/size
		for start := 0; start < n; start += size {
			for k := range half {
				t := s.tw[k*step] * x[start+k+half]
				x[start+k+half] = x[start+k] - t
				x[start+k] += t
			}
		}
	}
}

func (s *spectrumMeter) publish(v *radioView, samples int64) {
	// Bin order: lowest frequency first (FFT bin N/2 is −rate/2).
	for i := range s.db {
		p := s.acc[(i+SpectrumBins/2)%SpectrumBins] / spectrumPerSec
		s.db[i] = float32(10 * math.Log10(p+1e-30))
	}
	s.sorted = s.db
	slices.Sort(s.sorted[:])
	floor := float64(s.sorted[SpectrumBins/2])
	binHz := s.rate / SpectrumBins
	np := 0
	for i := range s.db {
		p := s.db[i]
		l, r := s.db[(i+SpectrumBins-1)%SpectrumBins], s.db[(i+1)%SpectrumBins]
		if float64(p) < floor+PeakMinDB || p < l || p <= r {
			continue
		}
		off := -s.rate/2 + float64(i)*binHz
		pk := Peak{FrequencyHz: s.center + off, OffsetHz: off, PowerDBFS: float64(p), AboveFloor: float64(p) - floor}
		// Insert by power, keeping the strongest MaxPeaks.
		j := min(np, MaxPeaks-1)
		if np == MaxPeaks && pk.PowerDBFS <= s.peaks[j].PowerDBFS {
			continue
		}
		for ; j > 0 && s.peaks[j-1].PowerDBFS < pk.PowerDBFS; j-- {
			s.peaks[j] = s.peaks[j-1]
		}
		s.peaks[j] = pk
		np = min(np+1, MaxPeaks)
	}
	v.mu.Lock()
	sp := &v.spectrum
	sp.CenterHz, sp.SampleRate, sp.BinHz = s.center, s.rate, binHz
	sp.PowerDBFS = append(sp.PowerDBFS[:0], s.db[:]...)
	sp.NoiseFloorDBFS = floor
	sp.Peaks = append(sp.Peaks[:0], s.peaks[:np]...)
	sp.Averaged = spectrumPerSec
	sp.Samples = samples
	v.mu.Unlock()
}

// Stats returns the counters so far. It may be called from any goroutine.
func (m *Demodulator) Stats() Stats {
	m.view.mu.Lock()
	defer m.view.mu.Unlock()
	return m.view.stats
}

// Spectrum returns a copy of the latest averaged power spectrum of the
// capture (Valid is false before the first second). It may be called from
// any goroutine; the copy is the caller's.
func (m *Demodulator) Spectrum() Spectrum {
	m.view.mu.Lock()
	defer m.view.mu.Unlock()
	s := m.view.spectrum
	s.PowerDBFS = slices.Clone(s.PowerDBFS)
	s.Peaks = slices.Clone(s.Peaks)
	return s
}

// publishStats makes the counters visible to Stats.
func (m *Demodulator) publishStats() {
	m.view.mu.Lock()
	m.view.stats = m.stats
	m.view.mu.Unlock()
}
