package mbus

import (
	"testing"
)

var recordSeeds = []string{
	kamFull,
	"2F2F0C1427048502046D32371F1502FD1700002F2F2F2F2F2F2F2F2F2F2F2F2F",
	"04FF23000000000413AEAC0000441364A80000426C812A023B000092013BEF01A2013B000006FF1B067000097000A1015B0C91015B14A1016713",
	"C48F621301000000", "0D13C23412", "047C0541424344450100000000", "0F010203",
}

// FuzzRecords walks arbitrary bytes as a full frame and reads every value.
func FuzzRecords(f *testing.F) {
	for _, s := range recordSeeds {
		f.Add(mustHex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		it := Records(b)
		var r Record
		total := 0
		for it.Next(&r) {
			total += len(r.Head) + len(r.Data)
			if len(r.Head) == 0 && !r.MfrData {
				t.Fatal("empty header")
			}
			_, _ = r.Scaled()
			_, _ = r.Uint()
			_, _ = r.Date(nil)
		}
		if total > len(b) {
			t.Fatalf("records cover %d of %d bytes", total, len(b))
		}
	})
}

// FuzzCompactRecords walks data against arbitrary record headers.
func FuzzCompactRecords(f *testing.F) {
	f.Add(mustHex(f, "02FF2004134413A1015B8101E7FF0F"), mustHex(f, "4100D322000055210000211C"))
	f.Add(mustHex(f, "04FF234413523B06FF1B426C61675167023B04138101E7FF0F"), mustHex(f, "0008000000000000000008900008F0FFC12B0A1B23001F0F000013"))
	f.Fuzz(func(t *testing.T, heads, data []byte) {
		n, herr := CheckHeads(heads)
		it := CompactRecords(heads, data)
		var r Record
		got := 0
		for it.Next(&r) {
			got++
			_, _ = r.Scaled()
		}
		if herr == nil && it.Err() == nil && got != n {
			t.Fatalf("%d records walked, CheckHeads counts %d", got, n)
		}
		if herr != nil && it.Err() == nil {
			t.Fatalf("CheckHeads: %v, walk fine", herr)
		}
	})
}
