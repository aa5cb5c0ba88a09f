package demod_test

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/demod"
)

const iqDir = "../../testdata/iq"

// readCU8 loads an RTL-SDR cu8 recording as complex samples ((b−127.5)/127.5).
func readCU8(tb testing.TB, path string) []complex64 {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read recording: %v", err)
	}
	return cu8(b)
}

func cu8(b []byte) []complex64 {
	x := make([]complex64, len(b)/2)
	for i := range x {
		x[i] = complex((float32(b[2*i])-127.5)/127.5, (float32(b[2*i+1])-127.5)/127.5)
	}
	return x
}

type recordings struct {
	Recordings []struct {
		File       string  `json:"file"`
		SampleRate float64 `json:"sample_rate"`
		CenterHz   float64 `json:"center_hz"`
		Frames     []struct {
			Mode   string  `json:"mode"`
			TimeS  float64 `json:"approx_time_s"`
			Offset float64 `json:"carrier_offset_hz"`
			Frame  string  `json:"frame"`
		} `json:"frames"`
	} `json:"recordings"`
}

// decodeAll runs a whole recording through a demodulator in blocks of
// blockLen samples (odd sizes exercise telegrams straddling Work calls).
func decodeAll(tb testing.TB, cfg demod.Config, x []complex64, blockLen int) ([]demod.Frame, *demod.Demodulator) {
	tb.Helper()
	d, err := demod.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	var out []demod.Frame
	for len(x) > 0 {
		n := min(blockLen, len(x))
		out = d.Work(x[:n], out)
		x = x[n:]
	}
	return d.Flush(out), d
}

func TestRealRecordings(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(iqDir, "recordings.json"))
	if err != nil {
		t.Fatal(err)
	}
	var recs recordings
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs.Recordings) == 0 {
		t.Fatal("recordings.json lists no recordings")
	}
	for _, r := range recs.Recordings {
		x := readCU8(t, filepath.Join(iqDir, r.File))
		for _, blockLen := range []int{len(x), 65536, 12345, 1001} {
			cfg := demod.Config{SampleRate: r.SampleRate, CenterHz: r.CenterHz, ChannelHz: 868.95e6}
			frames, d := decodeAll(t, cfg, x, blockLen)
			if len(frames) != len(r.Frames) {
				t.Errorf("%s (blocks of %d): %d frames, want %d; stats %+v", r.File, blockLen, len(frames), len(r.Frames), d.Stats())
			}
			for i, want := range r.Frames {
				if i >= len(frames) {
					break
				}
				got := frames[i]
				if h := hex.EncodeToString(got.Data); h != want.Frame {
					t.Errorf("%s frame %d:\n got %s\nwant %s", r.File, i, h, want.Frame)
				}
				if got.Mode.String() != want.Mode {
					t.Errorf("%s frame %d: mode %s, want %s", r.File, i, got.Mode, want.Mode)
				}
				if ts := float64(got.Position) / r.SampleRate; ts < want.TimeS-0.01 || ts > want.TimeS+0.01 {
					t.Errorf("%s frame %d at %.4f s, want about %.4f s", r.File, i, ts, want.TimeS)
				}
				wantOff := want.Offset
				if r.CenterHz != 868.95e6 {
					wantOff -= 868.95e6 - r.CenterHz
				}
				if d := got.OffsetHz - wantOff; d < -3000 || d > 3000 {
					t.Errorf("%s frame %d: offset %.0f Hz, want about %.0f", r.File, i, got.OffsetHz, wantOff)
				}
				if blockLen == len(x) {
					t.Logf("%s: %s %s level %.1f dBFS SNR %.1f dB offset %.0f Hz at %d corrected %d", r.File, got.Mode, got.Format, got.LevelDBFS, got.SNRdB, got.OffsetHz, got.Position, got.Corrected)
				}
			}
		}
	}
}
