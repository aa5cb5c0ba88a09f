package demod_test

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod/synth"
)

// The counters and the spectrum are read from another goroutine while the
// demodulator runs (go test -race checks the handover); the spectrum shows
// the neighbour where it is, and the counters add up.
func TestStatsAndSpectrum(t *testing.T) {
	const rate = 1.6e6
	c := newCrowd(t, rate, 868.95e6, 30, 3)
	// Pad to 2.5 s so that at least two snapshots are published.
	c.clean = append(c.clean, make([]complex64, int(2.5*rate)-len(c.clean))...)
	rng := rand.New(rand.NewPCG(4, 4))
	x := c.render(nil, 20, synth.Interferer{OffsetHz: 400e3}, 30, c.unitNoise(rng), rng)
	d, err := demod.New(demod.Config{SampleRate: rate})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spectrum().Valid() {
		t.Error("a spectrum before any sample")
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
				_ = d.Stats()
				_ = d.Spectrum()
			}
		}
	}()
	var frames []demod.Frame
	for i := 0; i < len(x); i += 1 << 16 {
		frames = d.Work(x[i:min(i+1<<16, len(x))], frames)
	}
	frames = d.Flush(frames)
	close(done)
	wg.Wait()

	st := d.Stats()
	if st.Frames != len(frames) || st.FramesC1A+st.FramesC1B+st.FramesT1 != st.Frames || st.Frames < 29 {
		t.Errorf("stats %+v for %d frames", st, len(frames))
	}
	if st.FramesC1A != 10 || st.FramesC1B != 10 || st.FramesT1 != 10 {
		t.Errorf("frames per mode %d/%d/%d, want 10 each", st.FramesC1A, st.FramesC1B, st.FramesT1)
	}
	if st.Samples != int64(len(x)) || st.Candidates < st.Frames {
		t.Errorf("stats %+v", st)
	}
	bits := 0
	for _, f := range frames {
		bits += f.Corrected
	}
	if st.BitsCorrected != bits {
		t.Errorf("%d bits corrected counted, frames say %d", st.BitsCorrected, bits)
	}

	sp := d.Spectrum()
	if !sp.Valid() || len(sp.PowerDBFS) != demod.SpectrumBins || sp.BinHz != rate/demod.SpectrumBins || sp.CenterHz != 868.95e6 {
		t.Fatalf("spectrum %+v", sp)
	}
	if len(sp.Peaks) == 0 {
		t.Fatal("no peaks")
	}
	// The neighbour: 0.9·30/31.6 of full scale at +400 kHz.
	p := sp.Peaks[0]
	want := 20 * math.Log10(0.9*math.Pow(10, 1.5)/(1+math.Pow(10, 1.5)))
	if math.Abs(p.OffsetHz-400e3) > sp.BinHz || math.Abs(p.FrequencyHz-869.35e6) > sp.BinHz || math.Abs(p.PowerDBFS-want) > 2 {
		t.Errorf("strongest peak %+v, want %.1f dBFS at +400 kHz", p, want)
	}
	// The floor: noise and quantisation, far below the neighbour.
	if sp.NoiseFloorDBFS > p.PowerDBFS-40 || sp.NoiseFloorDBFS < -120 {
		t.Errorf("noise floor %.1f dBFS, peak %.1f", sp.NoiseFloorDBFS, p.PowerDBFS)
	}
	for i := 1; i < len(sp.Peaks); i++ {
		if sp.Peaks[i].PowerDBFS > sp.Peaks[i-1].PowerDBFS || sp.Peaks[i].AboveFloor < demod.PeakMinDB {
			t.Errorf("peaks out of order or weak: %+v", sp.Peaks)
		}
	}
	t.Logf("stats %+v; floor %.1f dBFS; peaks %+v", st, sp.NoiseFloorDBFS, sp.Peaks)
	d.Reset()
	if d.Spectrum().Valid() || d.Stats().Samples != 0 {
		t.Error("Reset kept the spectrum or the counters")
	}
}
