package vw1871

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

var testTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// Every real frame, with noise between frames, cut into two chunks at
// every position of the stream.
func TestParserEveryCut(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	stream, wants, garbage := buildStream(t, rng, realFrames(t), 40)
	for cut := 0; cut <= len(stream); cut++ {
		p := NewParser(ParserOptions{})
		got := collect(p, stream[:cut], stream[cut:])
		checkFrames(t, got, wants)
		st := p.Stats()
		if st != (Stats{Frames: int64(len(wants)), Garbage: int64(garbage), Bytes: int64(len(stream))}) {
			t.Fatalf("cut at %d: stats %+v, want %d frames and %d garbage bytes", cut, st, len(wants), garbage)
		}
	}
}

// Chunks of the sizes BLE notifications have (20–244 bytes), of one byte,
// and of random sizes, and one big chunk.
func TestParserChunkings(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	stream, wants, garbage := buildStream(t, rng, realFrames(t), 300)
	split := func(lo, hi int) [][]byte {
		var cs [][]byte
		for rest := stream; len(rest) > 0; {
			n := min(lo+rng.IntN(hi-lo+1), len(rest))
			cs = append(cs, rest[:n])
			rest = rest[n:]
		}
		return cs
	}
	for _, tc := range []struct {
		name   string
		chunks [][]byte
	}{
		{"notifications", split(20, 244)},
		{"bytes", split(1, 1)},
		{"random", split(1, 2*MaxRecord)},
		{"whole", [][]byte{stream}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 20; i++ {
				p := NewParser(ParserOptions{})
				checkFrames(t, collect(p, tc.chunks...), wants)
				if st := p.Stats(); st.Garbage != int64(garbage) || st.Dropped() != 0 {
					t.Fatalf("stats %+v, want %d garbage bytes and no drops", st, garbage)
				}
			}
		})
	}
}

// A record cut anywhere (a capture's seam, a reconnect) and followed by a
// whole one: the cut one is counted, never decoded, and the next one comes
// out. Cut records before the end of a stream are counted too.
func TestParserCutRecords(t *testing.T) {
	frames := realFrames(t)
	for _, pair := range [][2]int{{0, 1}, {1, 0}, {12, 11}, {11, 12}, {0, 0}} {
		a := record(frames[pair[0]].formatB, 7, 200)
		b := record(frames[pair[1]].formatB, 8, 201)
		for k := 1; k < len(a); k++ {
			stream := append(append(append([]byte{}, a[:k]...), b...), a[:k]...)
			p := NewParser(ParserOptions{})
			got := collect(p, stream)
			if len(got) != 1 || !bytes.Equal(got[0].Data, frames[pair[1]].stripped) || got[0].Counter != 8 || got[0].Position != int64(k) {
				t.Fatalf("%s cut after %d bytes, then %s: got %d frames %+v", frames[pair[0]].name, k, frames[pair[1]].name, len(got), got)
			}
			st := p.Stats()
			wantDrops := int64(0)
			if k >= syncLen {
				wantDrops = 2
			}
			if st.Dropped() != wantDrops || st.BadFrameCRC != 0 || st.BadTrailerCRC != 0 {
				t.Fatalf("cut after %d: stats %+v, want %d dropped as cut or bad length", k, st, wantDrops)
			}
			if st.Frames != 1 || st.Bytes != int64(len(stream)) {
				t.Fatalf("cut after %d: stats %+v", k, st)
			}
		}
	}
}

// Each damage is counted under its own reason, and the next frame still
// comes out.
func TestParserDropReasons(t *testing.T) {
	frames := realFrames(t)
	good := record(frames[0].formatB, 1, 180)
	damagedFrame := append([]byte{}, frames[1].formatB...)
	damagedFrame[20] ^= 0x01 // the record's CRC is computed over the damage
	badLen := append([]byte{}, frames[1].formatB...)
	badLen[0] = 5
	for _, tc := range []struct {
		name   string
		rec    []byte
		damage func(r []byte)
		want   Stats
		reason error
	}{
		{"bad frame CRC", record(damagedFrame, 2, 190), nil, Stats{BadFrameCRC: 1}, ErrFrameCRC},
		{"bad trailer CRC", record(frames[1].formatB, 2, 190), func(r []byte) { r[len(r)-6] ^= 0x80 }, Stats{BadTrailerCRC: 1}, ErrTrailerCRC},
		{"damaged data", record(frames[1].formatB, 2, 190), func(r []byte) { r[30] ^= 0x10 }, Stats{BadTrailerCRC: 1}, ErrTrailerCRC},
		{"damaged level", record(frames[1].formatB, 2, 190), func(r []byte) { r[levelOffset]++ }, Stats{BadTrailerCRC: 1}, ErrTrailerCRC},
		{"no end marker", record(frames[1].formatB, 2, 190), func(r []byte) { r[len(r)-1] = 0 }, Stats{Cut: 1}, ErrCut},
		{"bad length", record(badLen, 2, 190), nil, Stats{BadLength: 1}, ErrLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.damage != nil {
				tc.damage(tc.rec)
			}
			stream := append(append(append([]byte{}, good...), tc.rec...), good...)
			var reasons []error
			var positions []int64
			p := NewParser(ParserOptions{OnDrop: func(reason error, pos int64) {
				reasons = append(reasons, reason)
				positions = append(positions, pos)
			}})
			got := collect(p, stream)
			if len(reasons) != 1 || reasons[0] != tc.reason || positions[0] != int64(len(good)) {
				t.Fatalf("OnDrop heard %v at %v, want %v at %d", reasons, positions, tc.reason, len(good))
			}
			if len(got) != 2 || !bytes.Equal(got[0].Data, frames[0].stripped) || !bytes.Equal(got[1].Data, frames[0].stripped) {
				t.Fatalf("got %d frames, want the 2 good ones", len(got))
			}
			st := p.Stats()
			tc.want.Frames, tc.want.Bytes = 2, int64(len(stream))
			tc.want.Garbage = st.Garbage // checked below
			if st != tc.want {
				t.Fatalf("stats %+v, want %+v", st, tc.want)
			}
			if st.Garbage != int64(len(tc.rec)-syncLen) {
				t.Fatalf("garbage %d, want the %d bytes of the dropped record after its sync", st.Garbage, len(tc.rec)-syncLen)
			}
		})
	}
}

// KeepCRC hands over the format-B frame as sent.
func TestParserKeepCRC(t *testing.T) {
	frames := realFrames(t)
	var stream []byte
	for i, f := range frames {
		stream = append(stream, record(f.formatB, uint16(i), 170)...)
	}
	got := collect(NewParser(ParserOptions{KeepCRC: true}), stream)
	if len(got) != len(frames) {
		t.Fatalf("%d frames, want %d", len(got), len(frames))
	}
	for i, g := range got {
		if g.Stripped || !bytes.Equal(g.Data, frames[i].formatB) {
			t.Fatalf("%s: got %X stripped=%v, want %X", frames[i].name, g.Data, g.Stripped, frames[i].formatB)
		}
		if s, f, err := wmbus.Detect(g.Data); err != nil || f != wmbus.FormatB || !bytes.Equal(s, frames[i].stripped) {
			t.Fatalf("%s: handed-over frame does not detect as format B: %v %v", frames[i].name, f, err)
		}
	}
}

// A stream of garbage neither grows the parser nor allocates, and every
// byte is counted.
func TestParserGarbageBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	junk := noise(rng, 1<<16)
	p := NewParser(ParserOptions{})
	emit := func(Frame) { t.Fatal("a frame out of garbage") }
	allocs := testing.AllocsPerRun(50, func() { p.Feed(junk, testTime, emit) })
	p.Flush(testTime, emit)
	if allocs != 0 {
		t.Fatalf("%v allocations per chunk of garbage", allocs)
	}
	if st := p.Stats(); st.Garbage != 51*int64(len(junk)) || st.Garbage != st.Bytes {
		t.Fatalf("stats %+v, want all %d bytes garbage", st, 51*len(junk))
	}
}

// Steady state allocates nothing per frame.
func TestParserNoAllocs(t *testing.T) {
	stream, chunks := benchStream(t)
	p := NewParser(ParserOptions{})
	n := 0
	emit := func(Frame) { n++ }
	allocs := testing.AllocsPerRun(20, func() {
		for _, c := range chunks {
			p.Feed(c, testTime, emit)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per stream of %d bytes", allocs, len(stream))
	}
	if n == 0 || int64(n) != p.Stats().Frames || p.Stats().Dropped() != 0 {
		t.Fatalf("%d frames, stats %+v", n, p.Stats())
	}
}

func benchStream(tb testing.TB) ([]byte, [][]byte) {
	rng := rand.New(rand.NewPCG(7, 8))
	stream, _, _ := buildStream(tb, rng, realFrames(tb), 8)
	var chunks [][]byte
	for rest := stream; len(rest) > 0; {
		n := min(20+rng.IntN(225), len(rest))
		chunks = append(chunks, rest[:n])
		rest = rest[n:]
	}
	return stream, chunks
}

// BenchmarkParser feeds real frames in notification-sized chunks.
func BenchmarkParser(b *testing.B) {
	stream, chunks := benchStream(b)
	p := NewParser(ParserOptions{})
	emit := func(Frame) {}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, c := range chunks {
			p.Feed(c, testTime, emit)
		}
	}
	b.StopTimer()
	st := p.Stats()
	if st.Dropped() != 0 {
		b.Fatalf("stats %+v", st)
	}
	b.ReportMetric(float64(st.Frames)/b.Elapsed().Seconds(), "frames/s")
}
