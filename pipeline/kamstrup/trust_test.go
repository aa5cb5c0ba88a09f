package kamstrup

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// layout returns a full frame's records with n volume records: n distinct
// record layouts for n = 1, 2, …
func layout(n int) []byte {
	return bytes.Repeat([]byte{0x04, 0x13, 0x01, 0x00, 0x00, 0x00}, n)
}

func fullFrame(id wmbus.ID, records []byte) *wmbus.Telegram {
	return &wmbus.Telegram{Header: wmbus.Header{Manufacturer: wmbus.KAM, ID: id, Version: 0x1F, DeviceType: 0x16}, AppCI: 0x78, App: records}
}

// A frame that did not pass a key check and is not from a listed meter
// still decodes, but teaches nothing.
func TestLearnOnlyFromTrustedTelegrams(t *testing.T) {
	d := NewDecoder()
	d.Trust = func(t *wmbus.Telegram) bool { return t.Security != wmbus.SecurityNone || t.Meter() == 0x11112222 }
	rs, err := d.Decode(fullFrame(0x99998888, layout(3)), time.Time{}, wmbus.Radio{})
	if err != nil || len(rs) != 1 {
		t.Fatalf("untrusted full frame: %v, %d readings", err, len(rs))
	}
	if d.Learned() != 0 || d.Dirty() {
		t.Fatalf("learned %d from an untrusted frame", d.Learned())
	}
	if _, err := d.Decode(fullFrame(0x11112222, layout(3)), time.Time{}, wmbus.Radio{}); err != nil || d.Learned() != 1 {
		t.Fatalf("listed meter: %v, learned %d", err, d.Learned())
	}
	tg := fullFrame(0x77776666, layout(4))
	tg.Security = wmbus.SecurityELLCTR
	if _, err := d.Decode(tg, time.Time{}, wmbus.Radio{}); err != nil || d.Learned() != 2 {
		t.Fatalf("key-verified: %v, learned %d", err, d.Learned())
	}
}

// However many layouts arrive, at most MaxLearned are kept, and the ones
// in use stay.
func TestLearnedFormatsBounded(t *testing.T) {
	d := NewDecoder()
	if _, err := d.Decode(fullFrame(0x11112222, layout(1)), time.Time{}, wmbus.Radio{}); err != nil {
		t.Fatal(err)
	}
	for n := 2; n <= 5*MaxLearned; n++ {
		if _, err := d.Decode(fullFrame(wmbus.ID(n), layout(n)), time.Time{}, wmbus.Radio{}); err != nil {
			t.Fatal(err)
		}
		if n%10 == 0 { // the meter of layout 1 keeps sending
			if _, err := d.Decode(fullFrame(0x11112222, layout(1)), time.Time{}, wmbus.Radio{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if d.Learned() != MaxLearned {
		t.Fatalf("%d learned, want %d", d.Learned(), MaxLearned)
	}
	sig := wmbus.CRC([]byte{0x04, 0x13})
	compact := []byte{byte(sig), byte(sig >> 8), 0, 0, 0x02, 0, 0, 0}
	c := wmbus.CRCUpdate(wmbus.CRCUpdate(0, []byte{0x04, 0x13}), compact[4:])
	compact[2], compact[3] = byte(^c), byte(^c>>8)
	tg := fullFrame(0x11112222, compact)
	tg.AppCI = 0x79
	if rs, err := d.Decode(tg, time.Time{}, wmbus.Radio{}); err != nil || len(rs) != 1 {
		t.Errorf("the format in use was forgotten: %v", err)
	}
	path := filepath.Join(t.TempDir(), "formats.txt")
	if err := d.Save(path); err != nil {
		t.Fatal(err)
	}
	d2 := NewDecoder()
	if err := d2.Load(path); err != nil || d2.Learned() != MaxLearned {
		t.Fatalf("reload: %v, %d learned", err, d2.Learned())
	}
}

// One bad line costs that line, not the file.
func TestLoadKeepsGoodLines(t *testing.T) {
	good := func(heads string) string {
		h, _ := hex.DecodeString(heads)
		c := wmbus.CRC(h)
		return strings.ToUpper(hex.EncodeToString([]byte{byte(c), byte(c >> 8)})) + " " + heads
	}
	text := "# formats\n" + good("0413") + "\nzz not a format\n" + good("04134413") + "\n0000 2F2F\n"
	path := filepath.Join(t.TempDir(), "formats.txt")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	d := NewDecoder()
	err := d.Load(path)
	if !errors.Is(err, ErrFormatsFile) || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "line 5") {
		t.Errorf("error %v, want lines 3 and 5 named", err)
	}
	if d.Learned() != 2 {
		t.Errorf("%d formats kept, want the 2 good ones", d.Learned())
	}
	if !d.Dirty() {
		t.Error("the file is not marked to be written back without its bad lines")
	}
}

// A failed save leaves no temporary file and keeps the formats to save.
func TestSaveFailureKeepsDirty(t *testing.T) {
	d := NewDecoder()
	if _, err := d.Decode(fullFrame(0x11112222, layout(2)), time.Time{}, wmbus.Radio{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// A directory where the file should be: the rename fails after the
	// temporary file was written.
	path := filepath.Join(dir, "formats.txt")
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := d.Save(path); err == nil {
		t.Fatal("save over a directory succeeded")
	}
	if !d.Dirty() {
		t.Error("a failed save cleared the dirty flag")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}

// FuzzReadFormats: any formats file gives formats that pass the checks, or
// errors, never a panic; a good line survives bad ones around it.
func FuzzReadFormats(f *testing.F) {
	f.Add([]byte("EB61 02FF2004134413A1015B8101E7FF0F\n"))
	f.Add([]byte("zz\n0000 2F2F\n# c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _ := readFormats(bytes.NewReader(b))
		d := NewDecoder()
		for _, h := range got {
			d.learn(h)
		}
		if d.Learned() > MaxLearned {
			t.Fatalf("%d learned", d.Learned())
		}
		withGood := append([]byte("60BD 0413\n"), b...) // a good line first
		if got, _ := readFormats(bytes.NewReader(withGood)); len(got) == 0 {
			t.Fatalf("the good line was lost to %q", b)
		}
	})
}
