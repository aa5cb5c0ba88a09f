package gateway

import (
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
)

// demodView is a source that demodulates IQ samples itself
// (pipeline.RadioSource): its demodulator's counters and spectrum.
type demodView interface {
	Radio() (demod.Stats, demod.Spectrum, bool)
}

// radioReportOf is what a source can tell of the radio, and false when it
// tells nothing (text inputs, a VW1871).
func radioReportOf(src pipeline.Source) (RadioReport, bool) {
	switch r := src.(type) {
	case radioReporter:
		return r.RadioReport(), true
	case demodView:
		st, sp, ok := r.Radio()
		if !ok {
			return RadioReport{}, false
		}
		return demodReport(st, sp), true
	}
	return RadioReport{}, false
}

// demodReport turns the demodulator's own view into the status page's.
func demodReport(st demod.Stats, sp demod.Spectrum) RadioReport {
	i64 := func(v int) *int64 { n := int64(v); return &n }
	rep := RadioReport{Candidates: i64(st.Candidates), Corrected: i64(st.Corrected),
		CorrectedBits: i64(st.BitsCorrected), BadCRC: i64(st.BadCRC)}
	if sp.Valid() {
		floor := sp.NoiseFloorDBFS
		rep.NoiseFloorDBFS = &floor
		rep.Spectrum = &Spectrum{StartHz: sp.CenterHz - sp.SampleRate/2, StepHz: sp.BinHz, DBFS: sp.PowerDBFS}
	}
	return rep
}
