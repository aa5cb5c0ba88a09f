package vw1871

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// FuzzParser: any stream, cut into chunks anyhow, gives the same frames
// and counts as the stream fed whole; every frame handed over is a
// CRC-checked wM-Bus frame; every byte is accounted for.
func FuzzParser(f *testing.F) {
	frames := realFrames(f)
	rng := rand.New(rand.NewPCG(9, 10))
	stream, _, _ := buildStream(f, rng, frames[:6], 20)
	f.Add(stream, uint64(1))
	f.Add(stream[3:len(stream)-5], uint64(77))
	f.Add(record(frames[0].formatB, 1, 2)[:40], uint64(3))
	f.Add(append(record(frames[1].formatB, 1, 2)[:50], record(frames[2].formatB, 3, 4)...), uint64(5))
	f.Add([]byte{0xFB, 0xFB, 0xFB, 0xF0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81}, uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		whole := NewParser(ParserOptions{})
		want := collect(whole, data)

		rng := rand.New(rand.NewPCG(seed, seed>>7))
		var chunks [][]byte
		for rest := data; len(rest) > 0; {
			n := min(1+rng.IntN(300), len(rest))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		chunked := NewParser(ParserOptions{})
		got := collect(chunked, chunks...)

		if !slices.EqualFunc(got, want, func(a, b Frame) bool {
			return bytes.Equal(a.Data, b.Data) && a.Level == b.Level && a.Counter == b.Counter && a.Position == b.Position
		}) {
			t.Fatalf("chunked: %d frames, whole: %d", len(got), len(want))
		}
		if whole.Stats() != chunked.Stats() {
			t.Fatalf("chunked stats %+v, whole %+v", chunked.Stats(), whole.Stats())
		}
		st := whole.Stats()
		if st.Bytes != int64(len(data)) || st.Frames != int64(len(want)) {
			t.Fatalf("stats %+v for %d bytes, %d frames", st, len(data), len(want))
		}
		for _, g := range want {
			if len(g.Data) < 11 || int(g.Data[0]) != len(g.Data)-1 {
				t.Fatalf("frame %X: L does not match", g.Data)
			}
			rec := data[g.Position:]
			raw := rec[lenOffset : lenOffset+wmbus.EncodedLen(rec[lenOffset], wmbus.FormatB)]
			if s, err := wmbus.AppendStripped(nil, raw, wmbus.FormatB); err != nil || !bytes.Equal(s, g.Data) {
				t.Fatalf("frame at %d does not match the stream there: %v", g.Position, err)
			}
		}
	})
}
