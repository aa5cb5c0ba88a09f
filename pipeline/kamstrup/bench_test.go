package kamstrup

import (
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

type mixFrame struct {
	frame []byte
	keys  wmbus.KeyFunc
}

// benchMix is every real encrypted telegram of the vectors, as captured:
// the seed meter's 35 (format B, 29 compact and 6 full), two MULTICAL 21
// and a flowIQ 2200 (CRC-less), plus the synthetic meter's pair.
func benchMix(t testing.TB) []mixFrame {
	var mix []mixFrame
	for _, v := range loadVectors(t) {
		if v.Key == nil || v.ExpectError != "" {
			continue
		}
		mix = append(mix, mixFrame{mustHex(t, v.Frame), keysOf(t, v)})
	}
	if len(mix) < 40 {
		t.Fatalf("mix of %d", len(mix))
	}
	return mix
}

// BenchmarkDecodeMix is the whole per-telegram path: CRC check and strip,
// AES-CTR, payload CRC, records (or compact format and data CRC), reading.
func BenchmarkDecodeMix(b *testing.B) {
	mix := benchMix(b)
	var p wmbus.Parser
	var tg wmbus.Telegram
	d := NewDecoder()
	now := time.Now()
	for _, m := range mix { // warm: ciphers cached, formats learned
		if err := p.Parse(m.frame, m.keys, &tg); err != nil {
			b.Fatal(err)
		}
		if _, err := d.Decode(&tg, now, wmbus.Radio{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		m := &mix[i]
		if i++; i == len(mix) {
			i = 0
		}
		if err := p.Parse(m.frame, m.keys, &tg); err != nil {
			b.Fatal(err)
		}
		if _, err := d.Decode(&tg, now, wmbus.Radio{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "telegrams/s")
}

// BenchmarkDecodeCompact is the decoder alone on the seed meter's compact frame.
func BenchmarkDecodeCompact(b *testing.B) {
	benchOne(b, "flowiq2101-74493770-accB4")
}

// BenchmarkDecodeFull is the decoder alone on the seed meter's full frame.
func BenchmarkDecodeFull(b *testing.B) {
	benchOne(b, "flowiq2101-74493770-accB5")
}

func benchOne(b *testing.B, name string) {
	var p wmbus.Parser
	var tg wmbus.Telegram
	for _, v := range loadVectors(b) {
		if strings.HasPrefix(v.Name, name) {
			if err := p.Parse(mustHex(b, v.Frame), keysOf(b, v), &tg); err != nil {
				b.Fatal(err)
			}
			break
		}
	}
	d := NewDecoder()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(&tg, time.Time{}, wmbus.Radio{}); err != nil {
			b.Fatal(err)
		}
	}
}
