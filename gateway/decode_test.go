package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/internal/cputime"
	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

func seedKey(tb testing.TB) []byte {
	tb.Helper()
	var key []byte
	for _, v := range testvectors.Load(tb) {
		if strings.HasPrefix(v.Name, testvectors.Seed74493770) && v.Key != nil {
			k, err := wmbus.ParseKey(*v.Key)
			if err != nil {
				tb.Fatal(err)
			}
			key = k[:]
		}
	}
	return key
}

// The 35 real telegrams of meter 74493770 decode, through the one reading
// encoding, to 8.915 m³; junk and an over-long line are reported by line
// number and the lines after them still decode.
func TestDecodeLines(t *testing.T) {
	frames := testvectors.Frames(t, testvectors.Seed74493770, 35)
	in := "# a comment\nnot hex\n" + strings.Repeat("F", pipeline.MaxLine+10) + "\n" + strings.Join(frames, "\n") + "\n"
	var out, errs bytes.Buffer
	res, err := Decode(context.Background(), nil, strings.NewReader(in), DecodeOptions{
		FallbackKey: seedKey(t), JSON: true, Stdout: &out, Stderr: &errs})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if res.Total != 37 || len(lines) < 30 {
		t.Fatalf("total %d, %d readings; stderr:\n%s", res.Total, len(lines), errs.String())
	}
	for _, want := range []string{"line 2: ", "line 3: line too long (over 1048576 bytes); skipped"} {
		if !strings.Contains(errs.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs.String())
		}
	}
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if last["total_m3"] != 8.915 || last["id"] != "74493770" {
		t.Errorf("last reading %v", last)
	}
	r, err := kamstrup.ParseReading([]byte(lines[len(lines)-1]))
	if err != nil || string(r.AppendJSON(nil)) != lines[len(lines)-1] {
		t.Errorf("the reading does not read back as itself: %v", err)
	}
}

// BenchmarkDecodeJSON is `decode --json` without the process: hex line in,
// JSON line out, on the real MULTICAL 21 telegrams.
func BenchmarkDecodeJSON(b *testing.B) {
	var frames []string
	for _, v := range testvectors.Load(b) {
		if strings.HasPrefix(v.Name, "wmbusmeters-") && v.Key == nil && v.ExpectError == "" {
			frames = append(frames, v.Frame)
		}
	}
	var in strings.Builder
	for i := range b.N {
		in.WriteString(frames[i%len(frames)])
		in.WriteByte('\n')
	}
	var out, errs bytes.Buffer
	out.Grow(b.N * 400)
	b.ResetTimer()
	cpu := cputime.Seconds()
	res, err := Decode(context.Background(), nil, strings.NewReader(in.String()), DecodeOptions{
		JSON: true, Stdout: &out, Stderr: &errs})
	if err != nil || res.Failed > 0 {
		b.Fatal(err, errs.String())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "telegrams/s")
	if cpu := cputime.Seconds() - cpu; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu, "telegrams/cpu-s")
	}
}
