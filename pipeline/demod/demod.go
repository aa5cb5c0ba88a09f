package demod

import (
	"math"
	"math/bits"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Frame is one telegram heard on the air, link-layer CRCs verified.
type Frame struct {
	Mode   Mode         // C1 or T1
	Format wmbus.Format // frame format on the air (T1 is always A)
	// Data is the frame without link-layer CRCs, L = len(Data)−1.
	Data      []byte
	LevelDBFS float64 // mean signal power over the frame, dB relative to full scale
	// SNRdB is the chip energy over noise density (Eb/N0 of one chip) as
	// the matched filter measured it.
	SNRdB    float64
	OffsetHz float64 // carrier offset from the channel frequency
	Position int64   // input sample index where the 0x543D sync word starts
	// Corrected is the number of bits the CRC-aided correction flipped.
	Corrected int
}

// Stats counts what the demodulator did, for diagnostics, the health
// sensor and the status page.
type Stats struct {
	Samples       int64 // input samples consumed
	Candidates    int   // sync words found
	Frames        int   // frames reported
	FramesC1A     int   // of which C1, frame format A
	FramesC1B     int   // C1, frame format B
	FramesT1      int   // T1
	Corrected     int   // frames that needed bit correction
	BitsCorrected int   // bits the CRC-aided correction flipped in reported frames
	BadCRC        int   // candidates whose CRC failed beyond correction
	BadCoding     int   // candidates with an impossible L or 3-of-6 group
	Truncated     int   // candidates cut off by the end of the stream
}

// phaseState is the detector of one timing phase: every spcI-th tick.
type phaseState struct {
	prev   float32     // previous chip sum, for the difference sign
	diff   uint32      // signs of chip differences; a preamble alternates
	ring   [32]float32 // last chip sums
	rp     uint8       // ring write position
	active bool        // a preamble was seen; looking for the sync word
	dc     float32     // chip sum of the carrier offset, from the preamble
	bits   uint32      // hard chips against dc
	since  int         // chips since the preamble was last seen
}

// candidate is a sync word waiting for the rest of its telegram.
type candidate struct {
	end   float64 // decimated sample index (absolute) where the sync word ends
	dc    float32 // chip sum of the carrier offset
	score float32 // soft match of the sync pattern, to pick between phases
	need  int     // chips after end needed before decoding can proceed
}

// Demodulator finds C1 and T1 frames in a complex sample stream. It is not
// safe for concurrent use; run one per stream.
type Demodulator struct {
	d     derived
	mix   *Mixer
	dec   *Decimator
	disc  Discriminator
	mixed []complex64 // mixer output for one chunk

	// History of the decimated stream. Index i holds absolute sample base+i.
	z    []complex64 // decimated samples
	f    []float32   // discriminator output
	n    int
	base int64

	tick   float64 // absolute position of the next detector tick
	step   float64 // ticks are spc/spcI apart; each phase sees one per chip
	phase  int
	phases []phaseState

	pend    []candidate
	doneEnd float64 // end of the last frame reported: syncs before it are echoes

	dc    decoder
	stats Stats

	spec *spectrumMeter
	view *radioView // what other goroutines read; kept across Reset
}

// New validates cfg and allocates every buffer the stream needs.
func New(cfg Config) (*Demodulator, error) {
	d, err := derive(cfg)
	if err != nil {
		return nil, err
	}
	m := &Demodulator{
		d:      d,
		dec:    newDecimator(d.stages, d.decim),
		step:   d.spc / float64(d.spcI),
		phases: make([]phaseState, d.spcI),
		pend:   make([]candidate, 0, 16),
	}
	if d.mixInc != 0 {
		m.mix = &Mixer{inc: d.mixInc}
		m.mixed = make([]complex64, d.chunk*d.decim)
	}
	// Room for several chunks beyond what must be kept, so that the history
	// moves down rarely (once per 8 chunks at least).
	size := d.keep + max(8*d.chunk, d.keep) + 1
	m.z = make([]complex64, size)
	m.f = make([]float32, size)
	m.tick = float64(d.spcI)
	m.dc.init(&m.d)
	m.spec = newSpectrumMeter(d.cfg.SampleRate, d.cfg.CenterHz)
	m.view = &radioView{}
	m.view.spectrum.PowerDBFS = make([]float32, 0, SpectrumBins)
	m.view.spectrum.Peaks = make([]Peak, 0, MaxPeaks)
	return m, nil
}

// Config returns the configuration with its defaults filled in.
func (m *Demodulator) Config() Config { return m.d.cfg }

// DecimatedRate is the sample rate after the channel filter.
func (m *Demodulator) DecimatedRate() float64 { return m.d.rate }

// Reset forgets the stream so far (for a new recording). The buffers are
// kept: only the state that carries across Work calls is cleared.
func (m *Demodulator) Reset() {
	m.dec = newDecimator(m.d.stages, m.d.decim)
	if m.mix != nil {
		m.mix.phase = 0
	}
	m.disc = Discriminator{}
	m.n, m.base = 0, 0
	m.tick, m.phase = float64(m.d.spcI), 0
	clear(m.phases)
	m.pend, m.doneEnd = m.pend[:0], 0
	m.stats = Stats{}
	m.spec = newSpectrumMeter(m.d.cfg.SampleRate, m.d.cfg.CenterHz)
	v := m.view
	v.mu.Lock()
	v.stats = Stats{}
	v.spectrum.PowerDBFS = v.spectrum.PowerDBFS[:0]
	v.spectrum.Peaks = v.spectrum.Peaks[:0]
	v.mu.Unlock()
}

// Work consumes in, appends the frames completed so far to out and returns
// it. Telegrams may straddle calls; each is reported once.
func (m *Demodulator) Work(in []complex64, out []Frame) []Frame {
	m.spec.work(in, m.stats.Samples, m.view, m.stats.Samples+int64(len(in)))
	m.stats.Samples += int64(len(in))
	defer m.publishStats()
	perChunk := m.d.chunk * m.d.decim
	for len(in) > 0 {
		blk := in[:min(len(in), perChunk)]
		in = in[len(blk):]
		if m.mix != nil {
			m.mix.Work(blk, m.mixed)
			blk = m.mixed[:len(blk)]
		}
		m.makeRoom()
		got := m.dec.Work(blk, m.z[m.n:])
		m.disc.Work(m.z[m.n:m.n+got], m.f[m.n:])
		m.n += got
		m.detect()
		out = m.decodePending(out, false)
	}
	return out
}

// Flush decodes what can still be decoded at the end of a stream and
// appends it to out.
func (m *Demodulator) Flush(out []Frame) []Frame {
	defer m.publishStats()
	return m.decodePending(out, true)
}

// makeRoom keeps the history below its capacity: the oldest samples go once
// no pending candidate needs them.
func (m *Demodulator) makeRoom() {
	if m.n+m.d.chunk+1 <= len(m.z) {
		return
	}
	// Without pending candidates only the detector's look-back matters: a
	// future candidate needs 48 chips before its sync end. Keeping just
	// that makes the move cheap in the steady state.
	drop := m.n - int(64*m.d.spc) - 8
	for _, c := range m.pend {
		// A candidate needs its preamble, 48 chips before the sync end.
		first := int(c.end-float64(m.base)-48*m.d.spc) - 2
		drop = min(drop, first)
	}
	if drop <= 0 {
		// Only a candidate far older than keep could block this; give it up.
		m.stats.Truncated += len(m.pend)
		m.pend = m.pend[:0]
		drop = m.n - m.d.keep
	}
	copy(m.z, m.z[drop:m.n])
	copy(m.f, m.f[drop:m.n])
	m.n -= drop
	m.base += int64(drop)
}

// detect runs the per-phase preamble and sync detectors over new samples.
func (m *Demodulator) detect() {
	k := m.d.spcI
	f := m.f
	base := float64(m.base)
	limit := float64(m.base + int64(m.n))
	for m.tick < limit {
		i := int(m.tick - base)
		if i < k-1 {
			m.tick += m.step
			continue
		}
		var s float32
		for _, v := range f[i-k+1 : i+1] {
			s += v
		}
		p := &m.phases[m.phase]
		p.diff = p.diff<<1 | b2u(s > p.prev)
		p.prev = s
		p.ring[p.rp&31] = s
		p.rp++
		if a := p.diff & 0xFFFF; a == 0xAAAA || a == 0x5555 {
			m.armPhase(p)
		} else if p.active {
			p.bits = p.bits<<1 | b2u(s > p.dc)
			p.since++
			if bits.OnesCount32(p.bits^syncPattern) <= 3 {
				m.found(p, m.tick)
				p.active = false
			} else if p.since > 64 {
				p.active = false
			}
		}
		m.tick += m.step
		m.phase++
		if m.phase == len(m.phases) {
			m.phase = 0
		}
	}
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// armPhase takes the carrier offset from the last 16 preamble chips (their
// mean: the 0101 pattern is balanced) and re-decides the ring's chips with it.
func (m *Demodulator) armPhase(p *phaseState) {
	var sum float32
	for j := range 16 {
		sum += p.ring[(p.rp-1-uint8(j))&31]
	}
	p.dc = sum / 16
	p.bits = 0
	for j := 31; j >= 0; j-- {
		p.bits = p.bits<<1 | b2u(p.ring[(p.rp-1-uint8(j))&31] > p.dc)
	}
	p.active = true
	p.since = 0
}

// found records a sync word whose last chip sum ended at tick t. The same
// sync is seen by neighbouring phases: keep the best-matching one.
func (m *Demodulator) found(p *phaseState, t float64) {
	end := math.Floor(t) + 1
	if end <= m.doneEnd {
		return
	}
	var score float32
	for j := range syncChips {
		v := p.ring[(p.rp-1-uint8(j))&31] - p.dc
		if syncPattern>>uint(j)&1 == 0 {
			v = -v
		}
		score += v
	}
	c := candidate{end: end, dc: p.dc, score: score, need: 28}
	if n := len(m.pend); n > 0 && math.Abs(m.pend[n-1].end-end) < m.d.spc {
		if m.pend[n-1].score < score {
			m.pend[n-1] = c
		}
		return
	}
	if len(m.pend) == cap(m.pend) {
		// More overlapping candidates than any real signal makes: the
		// oldest is noise or already decoded.
		copy(m.pend, m.pend[1:])
		m.pend = m.pend[:len(m.pend)-1]
		m.stats.Truncated++
	}
	m.stats.Candidates++
	m.pend = append(m.pend, c)
}

// decodePending tries every candidate whose telegram is complete; at the
// end of the stream (final) it tries them all with what there is.
func (m *Demodulator) decodePending(out []Frame, final bool) []Frame {
	avail := float64(m.base + int64(m.n))
	keep := m.pend[:0]
	for _, c := range m.pend {
		if c.end <= m.doneEnd {
			continue // inside a frame already reported
		}
		if !final && c.end+float64(c.need)*m.d.spc*1.001+2*m.d.spc+4 > avail {
			keep = append(keep, c)
			continue
		}
		res := m.dc.decode(m, &c, final)
		switch res.status {
		case statusNeedMore:
			keep = append(keep, c)
			continue
		case statusFrame:
			m.doneEnd = res.end
			m.stats.Frames++
			switch {
			case res.frame.Mode == T1:
				m.stats.FramesT1++
			case res.frame.Format == wmbus.FormatA:
				m.stats.FramesC1A++
			default:
				m.stats.FramesC1B++
			}
			if res.frame.Corrected > 0 {
				m.stats.Corrected++
				m.stats.BitsCorrected += res.frame.Corrected
			}
			out = append(out, res.frame)
		case statusBadCRC:
			m.stats.BadCRC++
		case statusBadCoding:
			m.stats.BadCoding++
		case statusTruncated:
			m.stats.Truncated++
		}
	}
	// Candidates inside the frame just reported are its echoes.
	n := 0
	for _, c := range keep {
		if c.end > m.doneEnd {
			keep[n] = c
			n++
		}
	}
	m.pend = keep[:n]
	return out
}
