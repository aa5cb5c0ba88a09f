// Package sent puts real telegrams in the order their meter sent them, as
// a receiver on the air hears them. It is test support only (apart from
// testvectors because it parses telegrams with pipeline/wmbus, whose own
// tests use testvectors).
package sent

import (
	"cmp"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Seed74493770 returns the 35 telegrams of meter 74493770 (testvectors.Seed74493770) as
// hex in the order the meter sent them (by ELL session number), as a
// receiver on the air hears them: the order the gateway's replay check
// expects of a live source.
func Seed74493770(tb testing.TB) []string {
	tb.Helper()
	var key []byte
	type sent struct {
		sn  uint32
		hex string
	}
	var all []sent
	var p wmbus.Parser
	var tg wmbus.Telegram
	for _, v := range testvectors.Load(tb) {
		if !strings.HasPrefix(v.Name, testvectors.Seed74493770) {
			continue
		}
		if key == nil && v.Key != nil {
			k, err := wmbus.ParseKey(*v.Key)
			if err != nil {
				tb.Fatal(err)
			}
			key = k[:]
		}
		raw, err := hex.DecodeString(v.Frame)
		if err != nil {
			tb.Fatal(err)
		}
		if err := p.Parse(raw, func(wmbus.ID) ([]byte, bool) { return key, true }, &tg); err != nil {
			tb.Fatalf("%s: %v", v.Name, err)
		}
		all = append(all, sent{tg.ELL.SN, v.Frame})
	}
	if len(all) != 35 {
		tb.Fatalf("%d vectors named %s*, want 35", len(all), testvectors.Seed74493770)
	}
	slices.SortStableFunc(all, func(a, b sent) int { return cmp.Compare(a.sn, b.sn) })
	out := make([]string, len(all))
	for i, s := range all {
		out[i] = s.hex
	}
	return out
}
