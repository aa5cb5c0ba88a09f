package demod_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod/synth"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// FuzzDemodulator feeds arbitrary cu8 bytes to the demodulator (1 MS/s,
// small enough for the fuzzer to reach the decoder): it must never panic,
// and every frame it reports must be a well-formed, CRC-verified frame.
// The seeds are real telegrams, so mutations land inside the decoder.
func FuzzDemodulator(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 9))
	tels := loadTelegrams(f)
	for i, c := range codings {
		x := scene{Rate: 1e6, Offset: 10e3, Dev: 47e3, EbN0: 18, Gap: 10, Quantise: true}.render(f, rng, chipsOf(f, c, tels[i*7%len(tels)], 32))
		f.Add(synth.AppendCU8(nil, x))
	}
	f.Add(make([]byte, 4000))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := demod.New(demod.Config{SampleRate: 1e6})
		if err != nil {
			t.Fatal(err)
		}
		x := cu8(b)
		var out []demod.Frame
		// Odd block sizes: state must carry across calls.
		for len(x) > 0 {
			n := min(len(x), 777)
			out = d.Work(x[:n], out)
			x = x[n:]
		}
		out = d.Flush(out)
		for _, fr := range out {
			checkFrame(t, fr)
		}
	})
}

// checkFrame verifies a reported frame on its own terms: L matches, the
// mode and format agree, and the bytes re-encode to a frame whose CRCs
// verify and strip back to the same bytes.
func checkFrame(t *testing.T, fr demod.Frame) {
	t.Helper()
	if len(fr.Data) < 10 || int(fr.Data[0]) != len(fr.Data)-1 {
		t.Fatalf("frame % X: L does not count the bytes after it", fr.Data)
	}
	switch {
	case fr.Mode == demod.T1 && fr.Format == wmbus.FormatA:
	case fr.Mode == demod.C1 && (fr.Format == wmbus.FormatA || fr.Format == wmbus.FormatB):
	default:
		t.Fatalf("frame % X: mode %s with format %s", fr.Data, fr.Mode, fr.Format)
	}
	raw, err := synth.AppendEncoded(nil, fr.Data, fr.Format)
	if err != nil {
		t.Fatalf("frame % X: %v", fr.Data, err)
	}
	back, err := wmbus.AppendStripped(nil, raw, fr.Format)
	if err != nil || !bytes.Equal(back, fr.Data) {
		t.Fatalf("frame % X: re-encoded frame does not verify: %v", fr.Data, err)
	}
}
