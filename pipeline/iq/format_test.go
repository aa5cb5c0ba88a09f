package iq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

func TestConvertKnownValues(t *testing.T) {
	f32 := func(vs ...float32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	}
	s16 := func(vs ...int16) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		}
		return b
	}
	tests := []struct {
		format Format
		in     []byte
		want   []complex64
	}{
		{CU8, []byte{0, 255, 127, 128}, []complex64{complex(-1, 1), complex(-0.5/127.5, 0.5/127.5)}},
		{CU8, []byte{64, 191}, []complex64{complex((64-127.5)/127.5, (191-127.5)/127.5)}},
		{CS8, []byte{0x80, 0x7f, 0, 0xff}, []complex64{complex(-1, 127.0/128), complex(0, -1.0/128)}},
		{CS16, s16(-32768, 32767, 0, -1), []complex64{complex(-1, 32767.0/32768), complex(0, -1.0/32768)}},
		{CS16, []byte{0x00, 0x40, 0x00, 0xc0}, []complex64{complex(0.5, -0.5)}}, // little-endian
		{CF32, f32(0.25, -0.75, 1e-3, 3), []complex64{complex(0.25, -0.75), complex(1e-3, 3)}},
	}
	for _, tt := range tests {
		dst := make([]complex64, len(tt.want)+3)
		n := tt.format.Convert(dst, tt.in)
		if n != len(tt.want) {
			t.Fatalf("%s: converted %d samples, want %d", tt.format, n, len(tt.want))
		}
		for i, w := range tt.want {
			if d := dst[i] - w; math.Abs(float64(real(d))) > 1e-7 || math.Abs(float64(imag(d))) > 1e-7 {
				t.Errorf("%s % x: sample %d = %v, want %v", tt.format, tt.in, i, dst[i], w)
			}
		}
	}
}

func TestConvertCU8Symmetric(t *testing.T) {
	// (v−127.5)/127.5 has no DC bias: v and 255−v are exact opposites.
	for v := range 256 {
		if cu8LUT[v] != -cu8LUT[255-v] {
			t.Fatalf("cu8 %d → %v, %d → %v", v, cu8LUT[v], 255-v, cu8LUT[255-v])
		}
	}
}

func TestConvertLimits(t *testing.T) {
	for _, f := range []Format{CU8, CS8, CS16, CF32} {
		src := make([]byte, 10*f.SampleSize()+f.SampleSize()-1) // trailing partial sample
		if n := f.Convert(make([]complex64, 4), src); n != 4 {
			t.Errorf("%s: short dst converted %d, want 4", f, n)
		}
		if n := f.Convert(make([]complex64, 100), src); n != 10 {
			t.Errorf("%s: converted %d whole samples, want 10", f, n)
		}
	}
	if n := FormatAuto.Convert(make([]complex64, 4), make([]byte, 8)); n != 0 {
		t.Errorf("FormatAuto converted %d", n)
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"cu8": CU8, "CS8": CS8, " cs16 ": CS16, "cf32": CF32, "": FormatAuto, "auto": FormatAuto} {
		got, err := ParseFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"u8", "s16le", "cu16", "complex"} {
		if _, err := ParseFormat(in); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseFormat(%q) error = %v, want ErrFormat", in, err)
		}
	}
	for path, want := range map[string]Format{"a.cu8": CU8, "x/B.CS16": CS16, "c.cs8": CS8, "d.cf32": CF32, "e.cfile": CF32, "f.raw": FormatAuto, "g": FormatAuto} {
		if got := formatFromExt(path); got != want {
			t.Errorf("formatFromExt(%q) = %v, want %v", path, got, want)
		}
	}
}

// randomRecording returns n samples of random bytes in format f.
func randomRecording(f Format, n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n*f.SampleSize())
	if f == CF32 {
		for i := 0; i < len(b); i += 4 {
			binary.LittleEndian.PutUint32(b[i:], math.Float32bits(float32(r.NormFloat64())))
		}
		return b
	}
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// readAll drains r with reads of varying size.
func readAll(t *testing.T, r interface {
	Read([]complex64) (int, error)
}, sizes []int) ([]complex64, error) {
	t.Helper()
	var out []complex64
	buf := make([]complex64, 5000)
	for i := 0; ; i++ {
		n, err := r.Read(buf[:sizes[i%len(sizes)]])
		out = append(out, buf[:n]...)
		if err != nil {
			return out, err
		}
		if i > 1e6 {
			t.Fatal("reader never ends")
		}
	}
}

func TestSampleReaderSplitReads(t *testing.T) {
	wrappers := map[string]func(io.Reader) io.Reader{
		"whole":   func(r io.Reader) io.Reader { return r },
		"onebyte": iotest.OneByteReader,
		"half":    iotest.HalfReader,
		"dataerr": iotest.DataErrReader,
		"odd":     func(r io.Reader) io.Reader { return &chunkedReader{r: r, sizes: []int{3, 7, 1, 5, 11, 13}} },
	}
	for _, f := range []Format{CU8, CS8, CS16, CF32} {
		raw := randomRecording(f, 3001, uint64(f))
		want := make([]complex64, 3001)
		f.Convert(want, raw)
		for wname, wrap := range wrappers {
			sr := newSampleReader(wrap(bytes.NewReader(raw)), f, "test", false)
			got, err := readAll(t, sr, []int{1, 7, 1000, 2, 4096})
			if err != io.EOF {
				t.Errorf("%s/%s: ended with %v, want io.EOF", f, wname, err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s/%s: got %d samples, want %d", f, wname, len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s/%s: sample %d = %v, want %v", f, wname, i, got[i], want[i])
				}
			}
		}
	}
}

type chunkedReader struct {
	r     io.Reader
	sizes []int
	i     int
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	n := min(len(p), c.sizes[c.i%len(c.sizes)])
	c.i++
	return c.r.Read(p[:n])
}

func TestSampleReaderTruncated(t *testing.T) {
	raw := randomRecording(CS16, 10, 1)
	sr := newSampleReader(bytes.NewReader(raw[:len(raw)-3]), CS16, "recording x.cs16", false)
	got, err := readAll(t, sr, []int{4})
	if len(got) != 9 {
		t.Errorf("got %d whole samples before the end, want 9", len(got))
	}
	if !errors.Is(err, ErrPartialSample) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error = %v, want ErrPartialSample and io.ErrUnexpectedEOF", err)
	}
	t.Log(err)
}

func TestSampleReaderLiveEOF(t *testing.T) {
	sr := newSampleReader(bytes.NewReader([]byte{1, 2, 3, 4}), CU8, "rtltcp://x:1", true)
	got, err := readAll(t, sr, []int{10})
	if len(got) != 2 || !errors.Is(err, ErrDisconnected) || err == io.EOF {
		t.Fatalf("got %d samples, %v; want 2 and ErrDisconnected", len(got), err)
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestSampleReaderNoProgress(t *testing.T) {
	sr := newSampleReader(emptyReader{}, CU8, "test", false)
	if _, err := sr.Read(make([]complex64, 4)); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("error = %v, want io.ErrNoProgress", err)
	}
}

func TestSampleReaderError(t *testing.T) {
	boom := errors.New("boom")
	sr := newSampleReader(iotest.ErrReader(boom), CU8, "recording y.cu8", false)
	_, err := sr.Read(make([]complex64, 4))
	if !errors.Is(err, boom) || err.Error() != "recording y.cu8: boom" {
		t.Fatalf("error = %v", err)
	}
}

const benchSamples = 1 << 16

func BenchmarkConvert(b *testing.B) {
	for _, f := range []Format{CU8, CS8, CS16, CF32} {
		b.Run(f.String(), func(b *testing.B) {
			src := randomRecording(f, benchSamples, 7)
			dst := make([]complex64, benchSamples)
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				f.Convert(dst, src)
			}
			reportRate(b, benchSamples)
		})
	}
}

// BenchmarkSampleReader measures the whole path from an io.Reader, including
// the copy into the reused byte buffer.
func BenchmarkSampleReader(b *testing.B) {
	for _, f := range []Format{CU8, CS16, CF32} {
		b.Run(f.String(), func(b *testing.B) {
			src := randomRecording(f, benchSamples, 7)
			r := bytes.NewReader(src)
			sr := newSampleReader(r, f, "bench", false)
			dst := make([]complex64, 8192)
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(src)
				for got := 0; got < benchSamples; {
					n, err := sr.Read(dst)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
			reportRate(b, benchSamples)
		})
	}
}

func reportRate(b *testing.B, samplesPerOp int) {
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(samplesPerOp)
	b.ReportMetric(ns, "ns/sample")
	b.ReportMetric(1e3/ns, "MS/s")
}

// FuzzSampleReader feeds arbitrary bytes in arbitrary pieces: whatever the
// split, the samples equal a direct conversion of the whole and a trailing
// partial sample is reported.
func FuzzSampleReader(f *testing.F) {
	f.Add([]byte{0, 255, 127, 128, 1}, uint8(1), []byte{1, 3})
	f.Add(randomRecording(CF32, 9, 3), uint8(4), []byte{5, 1, 9})
	f.Add(randomRecording(CS16, 7, 4), uint8(3), []byte{2})
	f.Fuzz(func(t *testing.T, data []byte, fb uint8, splits []byte) {
		format := Format(1 + fb%4)
		if len(splits) == 0 {
			splits = []byte{1}
		}
		sizes := make([]int, len(splits))
		for i, s := range splits {
			sizes[i] = 1 + int(s)
		}
		sr := newSampleReader(&chunkedReader{r: bytes.NewReader(data), sizes: sizes}, format, "fuzz", false)
		got, err := readAll(t, sr, []int{1, 3, 64})
		want := make([]complex64, len(data)/format.SampleSize())
		format.Convert(want, data)
		if len(got) != len(want) {
			t.Fatalf("%s: %d samples, want %d", format, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] && !(isNaN(got[i]) && isNaN(want[i])) {
				t.Fatalf("%s: sample %d = %v, want %v", format, i, got[i], want[i])
			}
		}
		if partial := len(data)%format.SampleSize() != 0; partial != errors.Is(err, ErrPartialSample) || !partial && err != io.EOF {
			t.Fatalf("%s: %d bytes ended with %v", format, len(data), err)
		}
	})
}

func isNaN(c complex64) bool { return math.IsNaN(float64(real(c))) || math.IsNaN(float64(imag(c))) }
