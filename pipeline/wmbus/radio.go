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
	// Receiver names the receiver that heard the frame when frames come
	// from several ("basement", an MQTT receiver's --name); "" = the only one.
	Receiver string
}

// Measured reports whether the level, SNR and offset come from this
// gateway's demodulator.
func (r Radio) Measured() bool { return r.LevelDBFS != 0 || r.SNRdB != 0 }

// Better reports whether r heard its frame better than o did. SNR decides
// when both were measured (levels in dBFS depend on each dongle's gain and
// are not comparable between receivers); else a receiver's own level; a
// measured copy beats one without measurements.
func (r Radio) Better(o Radio) bool {
	switch {
	case r.Measured() && o.Measured():
		return r.SNRdB > o.SNRdB
	case r.Measured() != o.Measured():
		return r.Measured()
	default:
		return r.DeviceLevel > o.DeviceLevel
	}
}
