package wmbus

// Radio is what a receiver measured of one frame; every source attaches it
// to the frames it delivers. Zero for telegrams that arrived as text.
type Radio struct {
	Mode      string  // "C1", "T1"
	Format    string  // link-layer frame format "A", "B" or "none"
	LevelDBFS float64 // signal level, dB relative to full scale
	SNRdB     float64
	OffsetHz  float64 // carrier offset from the channel
}
