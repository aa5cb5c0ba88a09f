package wmbus

// Radio is what a receiver measured of one frame; every source attaches it
// to the frames it delivers. Zero for telegrams that arrived as text.
type Radio struct {
	Mode      string  // "C1", "T1"
	Format    string  // link-layer frame format "A", "B" or "none"
	LevelDBFS float64 // signal level, dB relative to full scale
	SNRdB     float64
	OffsetHz  float64 // carrier offset from the channel
	// DeviceLevel is the level a receiver reports in its own unscaled
	// units, larger = stronger (a VW1871's header byte); 0 = none.
	DeviceLevel int
}

// Measured reports whether the level, SNR and offset come from this
// gateway's demodulator.
func (r Radio) Measured() bool { return r.LevelDBFS != 0 || r.SNRdB != 0 }
