package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
)

type recordingList struct {
	Recordings []struct {
		File       string
		SampleRate float64 `json:"sample_rate"`
		CenterHz   float64 `json:"center_hz"`
		Frames     []struct{ Mode, Frame string }
	}
}

// Acceptance: listen finds every frame of the real recordings with valid
// CRCs — both T1 frames at 1.6 MS/s, and the one at 2.4 MS/s tuned
// 325 kHz below the channel — and prints it with its fields.
func TestListenRealRecordings(t *testing.T) {
	b, err := os.ReadFile("../../testdata/iq/recordings.json")
	if err != nil {
		t.Fatal(err)
	}
	var rl recordingList
	if err := json.Unmarshal(b, &rl); err != nil {
		t.Fatal(err)
	}
	for _, rec := range rl.Recordings {
		t.Run(rec.File, func(t *testing.T) {
			var out, errb output
			e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
			args := []string{"listen", "--json", "--input", "../../testdata/iq/" + rec.File,
				"--rate", "2400k", "--center", "868.625M"}
			if rec.SampleRate == 1.6e6 {
				args = args[:4]
			}
			if code := execute(context.Background(), e, args); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != len(rec.Frames) {
				t.Fatalf("%d frames printed, want %d:\n%s", len(lines), len(rec.Frames), out.String())
			}
			for i, l := range lines {
				var f pipeline.FrameInfo
				if err := json.Unmarshal([]byte(l), &f); err != nil {
					t.Fatal(err)
				}
				want := rec.Frames[i]
				if f.Frame != want.Frame || f.Mode != want.Mode || f.Format != "A" || f.ID == "" || f.LevelDBFS == nil {
					t.Errorf("frame %d = %s\nwant %s %s", i, l, want.Mode, want.Frame)
				}
			}
		})
	}
}

func TestListenDecodesMetersWithKeys(t *testing.T) {
	var out, errb output
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	code := execute(context.Background(), e, []string{"listen", "--input", "../../testdata/flowiq2101_74493770_868.95M_1M6.cu8",
		"--meters", "../../testdata/demo-meters.toml"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	text := out.String()
	if n := strings.Count(text, "KAM 74493770 v1F t16 encrypted"); n != 6 {
		t.Errorf("%d frame lines, want 6:\n%s", n, text)
	}
	if n := strings.Count(text, "total_m3=8.915"); n != 6 {
		t.Errorf("%d decoded readings, want 6:\n%s", n, text)
	}
	if strings.Contains(strings.ToUpper(text+errb.String()), "44E9112D") {
		t.Error("key printed")
	}
}
