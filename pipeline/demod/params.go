// Package demod finds and demodulates wireless M-Bus C1 (frame formats A and
// B) and T1 frames in a stream of complex baseband samples.
//
// The signal path is a chain of small blocks, each with a Work method:
//
//	Mixer        move the channel to 0 Hz (NCO from a lookup table)
//	Decimator    channel filter: decimating FIR stages (filter.go) down to
//	             about 4 samples per chip
//	Discriminator instantaneous frequency (phase step per sample)
//	detector     per timing phase: 0101 preamble, then the 0x543D sync word
//	decoder      per candidate: carrier offset and timing refinement,
//	             noncoherent matched filter per chip with timing tracking,
//	             C1 NRZ / T1 3-out-of-6 framing, CRC checks with bounded
//	             correction of the least reliable bits, taken only when
//	             clearly the likeliest error (correction.go)
//
// All sizes derive once from Config (sample rate, chip rate, channel); every
// buffer is allocated in New. Work allocates only for frames it reports.
package demod

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Mode is a set of wM-Bus radio modes.
type Mode uint8

// Radio modes. They combine as a set: C1|T1.
const (
	C1 Mode = 1 << iota
	T1
)

func (m Mode) String() string {
	var s []string
	if m&C1 != 0 {
		s = append(s, "C1")
	}
	if m&T1 != 0 {
		s = append(s, "T1")
	}
	if m&^(C1|T1) != 0 {
		s = append(s, fmt.Sprintf("0x%02X", uint8(m&^(C1|T1))))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

// ParseModes reads a list such as "C1,T1" (case-insensitive).
func ParseModes(s string) (Mode, error) {
	var m Mode
	for f := range strings.SplitSeq(s, ",") {
		switch strings.ToUpper(strings.TrimSpace(f)) {
		case "C1", "C":
			m |= C1
		case "T1", "T":
			m |= T1
		case "":
		default:
			return 0, fmt.Errorf("%w: mode %q (want C1 and/or T1)", ErrConfig, strings.TrimSpace(f))
		}
	}
	if m == 0 {
		return 0, fmt.Errorf("%w: no mode in %q (want C1 and/or T1)", ErrConfig, s)
	}
	return m, nil
}

// Defaults for the European 868.95 MHz C1/T1 channel.
const (
	DefaultChannelHz   = 868.95e6
	DefaultChipRate    = 100e3
	DefaultDeviationHz = 47.5e3 // between C1's ±45 kHz and T1's ±50 kHz
	DefaultOffsetRange = 60e3
	DefaultCorrectBits = 2
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("demod: invalid configuration")

// Config describes the capture and what to listen for. Zero fields take the
// defaults above; CenterHz zero means the capture is tuned to the channel.
type Config struct {
	SampleRate  float64 // input samples per second (complex)
	CenterHz    float64 // frequency the capture is tuned to
	ChannelHz   float64 // frequency of the wM-Bus channel
	ChipRate    float64 // chips per second
	DeviationHz float64 // nominal FSK deviation
	Modes       Mode    // modes to decode (C1|T1 when zero)
	// OffsetRangeHz is how far from the channel a transmitter may sit and
	// still be decoded without retuning (dongle and meter crystal errors).
	OffsetRangeHz float64
	// CorrectBits bounds the CRC-aided correction: at most this many of the
	// least reliable bits of a CRC block are flipped when its CRC fails.
	// 0 takes the default; a negative value disables correction.
	CorrectBits int
}

// derived holds every size the signal path needs, computed once.
type derived struct {
	cfg        Config
	decim      int           // input samples per decimated sample
	stages     []stageDesign // channel filter, designed for this capture
	passHz     float64       // channel filter passband edge
	rate       float64       // decimated sample rate
	spc        float64       // decimated samples per chip
	spcI       int           // spc rounded: samples summed per chip in the detector
	mixInc     uint32        // NCO phase step (2^32 = one turn); 0 = no mixing
	maxOffset  float64       // rad per decimated sample allowed for the carrier offset
	dev        float64       // rad per decimated sample of the nominal deviation
	keep       int           // decimated samples kept for frames still arriving
	chunk      int           // decimated samples processed per inner step
	maxChips   int           // longest telegram after the sync, in chips
	correction int           // bits flipped at most per CRC block
}

func (c Config) withDefaults() Config {
	if c.ChannelHz == 0 {
		c.ChannelHz = DefaultChannelHz
	}
	if c.CenterHz == 0 {
		c.CenterHz = c.ChannelHz
	}
	if c.ChipRate == 0 {
		c.ChipRate = DefaultChipRate
	}
	if c.DeviationHz == 0 {
		c.DeviationHz = DefaultDeviationHz
	}
	if c.Modes == 0 {
		c.Modes = C1 | T1
	}
	if c.OffsetRangeHz == 0 {
		c.OffsetRangeHz = DefaultOffsetRange
	}
	if c.CorrectBits == 0 {
		c.CorrectBits = DefaultCorrectBits
	}
	return c
}

func finitePositive(v float64) bool { return v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }

// derive validates c and computes the sizes of the signal path.
func derive(c Config) (derived, error) {
	c = c.withDefaults()
	var d derived
	mhz := func(f float64) string { return fmt.Sprintf("%.4f MHz", f/1e6) }
	switch {
	case !finitePositive(c.SampleRate):
		return d, fmt.Errorf("%w: sample rate %v S/s must be positive", ErrConfig, c.SampleRate)
	case c.SampleRate < 250e3 || c.SampleRate > 20e6:
		return d, fmt.Errorf("%w: sample rate %.0f S/s is outside 0.25–20 MS/s", ErrConfig, c.SampleRate)
	case !finitePositive(c.CenterHz):
		return d, fmt.Errorf("%w: centre frequency %v Hz must be positive", ErrConfig, c.CenterHz)
	case !finitePositive(c.ChannelHz):
		return d, fmt.Errorf("%w: channel frequency %v Hz must be positive", ErrConfig, c.ChannelHz)
	case !finitePositive(c.ChipRate):
		return d, fmt.Errorf("%w: chip rate %v chip/s must be positive", ErrConfig, c.ChipRate)
	case !finitePositive(c.DeviationHz):
		return d, fmt.Errorf("%w: deviation %v Hz must be positive", ErrConfig, c.DeviationHz)
	case !finitePositive(c.OffsetRangeHz):
		return d, fmt.Errorf("%w: offset range %v Hz must be positive", ErrConfig, c.OffsetRangeHz)
	case c.Modes&^(C1|T1) != 0:
		return d, fmt.Errorf("%w: unknown mode bits in %s", ErrConfig, c.Modes)
	case c.CorrectBits > 4:
		return d, fmt.Errorf("%w: correcting %d bits per CRC block would accept too many false frames (at most 4)", ErrConfig, c.CorrectBits)
	}
	spcIn := c.SampleRate / c.ChipRate
	if spcIn < 3 {
		return d, fmt.Errorf("%w: sample rate %.0f S/s gives %.2f samples per chip at %.0f chip/s; need at least 3", ErrConfig, c.SampleRate, spcIn, c.ChipRate)
	}
	// Half the occupied band: carrier offset, deviation and the first
	// modulation sidebands (half the chip rate).
	half := c.OffsetRangeHz + c.DeviationHz + c.ChipRate/2
	shift := c.ChannelHz - c.CenterHz
	if math.Abs(shift)+half > c.SampleRate/2 {
		return d, fmt.Errorf("%w: channel %s ± %.0f kHz (offset range, deviation, sidebands) is outside the captured band %s–%s (centre %s, %.3f MS/s)",
			ErrConfig, mhz(c.ChannelHz), half/1e3, mhz(c.CenterHz-c.SampleRate/2), mhz(c.CenterHz+c.SampleRate/2), mhz(c.CenterHz), c.SampleRate/1e6)
	}
	// Decimate to about four samples per chip: enough for the matched
	// filter and timing, and the decimated band must still hold the
	// carrier offset plus deviation for the discriminator.
	d.decim = max(1, int(spcIn/4))
	for d.decim > 1 && c.SampleRate/float64(d.decim)/2 < c.OffsetRangeHz+c.DeviationHz+c.ChipRate/2 {
		d.decim--
	}
	if c.SampleRate/float64(d.decim)/2 < c.OffsetRangeHz+c.DeviationHz {
		return d, fmt.Errorf("%w: sample rate %.0f S/s cannot hold ±%.0f kHz offset plus ±%.0f kHz deviation", ErrConfig, c.SampleRate, c.OffsetRangeHz/1e3, c.DeviationHz/1e3)
	}
	d.cfg = c
	d.rate = c.SampleRate / float64(d.decim)
	d.passHz = c.OffsetRangeHz + c.DeviationHz + c.ChipRate/2
	d.stages = designChannel(c.SampleRate, d.decim, d.passHz)
	d.spc = d.rate / c.ChipRate
	d.spcI = int(math.Round(d.spc))
	if shift != 0 {
		// Mixing by −shift brings the channel to 0 Hz.
		d.mixInc = uint32(int64(math.Round(-shift/c.SampleRate*(1<<32))) & 0xFFFFFFFF)
	}
	d.maxOffset = 2 * math.Pi * c.OffsetRangeHz / d.rate
	d.dev = 2 * math.Pi * c.DeviationHz / d.rate
	d.correction = max(0, c.CorrectBits)
	// Longest telegram: T1 with L=255 in format A is 290 bytes of 12 chips.
	d.maxChips = 290*12 + 64
	d.keep = int(float64(d.maxChips+256)*d.spc*1.001) + 64
	d.chunk = 4096
	return d, nil
}
