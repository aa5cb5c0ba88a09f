package kem

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Entries that each stay under the limit but add up past it are refused
// before they are all inflated.
func TestUnzipLimitIsTotal(t *testing.T) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	chunk := make([]byte, 1<<20)
	for i := range 3 {
		w, err := zw.Create(fmt.Sprintf("part%d.kem", i))
		if err != nil {
			t.Fatal(err)
		}
		for range 24 { // 24 MiB each: 72 MiB in all, over the 64 MiB limit
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Parse(b.Bytes(), "pw")
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "in all") || !strings.Contains(err.Error(), "part2.kem") {
		t.Fatalf("err = %v, want the total limit named at the third entry", err)
	}
}
