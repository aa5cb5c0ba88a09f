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

// FuzzFraming feeds small inputs through a clean modulator so the fuzzer
// spends its time in the framing logic (L field, format A/B blocks, 3-of-6
// decoding, CRC checks and bit correction) rather than on large raw IQ.
// The first byte picks the coding and whether the CRCs are made valid; the
// rest is the frame. Every frame reported must verify on its own terms.
func FuzzFraming(f *testing.F) {
	for i, t := range loadTelegrams(f)[:4] {
		f.Add(append([]byte{byte(i % 3)}, t.Data...))       // valid CRCs
		f.Add(append([]byte{byte(i%3) | 4}, t.Data...))     // raw: CRC bytes as given
		f.Add(append([]byte{byte(i%3) | 8}, t.Data[:9]...)) // cut short
	}
	mod, err := synth.NewModulator(synth.Signal{SampleRate: 1e6, ChipRate: 100e3, DeviationHz: 47e3, OffsetHz: 7e3, Amplitude: 0.3})
	if err != nil {
		f.Fatal(err)
	}
	d, err := demod.New(demod.Config{SampleRate: 1e6})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 2 || len(b) > 300 {
			return
		}
		c := synth.Coding(b[0] % 3)
		frame := append([]byte(nil), b[1:]...)
		var chips []byte
		var err error
		if b[0]&4 == 0 {
			frame[0] = byte(len(frame) - 1)
			chips, err = synth.AppendChips(nil, c, frame, 24)
		} else {
			chips, err = synth.AppendRawChips(nil, c, frame, 24)
		}
		if err != nil {
			return // not encodable in this coding (e.g. too long): nothing to send
		}
		x := mod.AppendSilence(nil, 200)
		x = mod.AppendChips(x, chips)
		if b[0]&8 == 0 {
			x = mod.AppendSilence(x, 200)
		}
		d.Reset()
		out := d.Work(x, nil)
		out = d.Flush(out)
		for _, fr := range out {
			checkFrame(t, fr)
		}
		// A whole frame with valid CRCs on a clean channel is heard, once.
		if b[0]&12 == 0 && len(frame) >= 10 && (len(out) != 1 || !bytes.Equal(out[0].Data, frame)) {
			t.Fatalf("%s frame % X: got %d frames %v", c, frame, len(out), out)
		}
	})
}
