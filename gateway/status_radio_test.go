package gateway

import (
	"context"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
)

// A radio source shows its demodulator's counters to the status page once
// it has run; a text source shows none.
func TestRadioReportOf(t *testing.T) {
	src, err := pipeline.NewSource("../testdata/flowiq2101_74493770_868.95M_1M6.cu8", nil, pipeline.RadioOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := radioReportOf(src); ok {
		t.Error("a report before the source ran")
	}
	p := &pipeline.Pipeline{Sources: []pipeline.Source{src}, Decoder: kamstrup.NewDecoder()}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep, ok := radioReportOf(src)
	if !ok || rep.Candidates == nil || *rep.Candidates < 6 || rep.BadCRC == nil {
		t.Errorf("report after the bundled recording: %+v", rep)
	}
	hex, err := pipeline.NewSource("hex:-", nil, pipeline.RadioOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := radioReportOf(hex); ok {
		t.Error("a hex input reports a radio")
	}
}

func TestDemodReportSpectrum(t *testing.T) {
	sp := demod.Spectrum{CenterHz: 868.95e6, SampleRate: 1.6e6, BinHz: 6250, PowerDBFS: []float32{-80, -20, -81}, NoiseFloorDBFS: -80}
	rep := demodReport(demod.Stats{Candidates: 3, BitsCorrected: 2}, sp)
	if rep.Spectrum == nil || rep.Spectrum.StartHz != 868.15e6 || rep.Spectrum.StepHz != 6250 || len(rep.Spectrum.DBFS) != 3 ||
		*rep.NoiseFloorDBFS != -80 || *rep.CorrectedBits != 2 {
		t.Errorf("%+v", rep)
	}
	if rep := demodReport(demod.Stats{}, demod.Spectrum{}); rep.Spectrum != nil || rep.NoiseFloorDBFS != nil {
		t.Errorf("an empty spectrum reported: %+v", rep)
	}
}
