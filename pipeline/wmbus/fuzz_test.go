package wmbus

import (
	"bytes"
	"testing"
)

func seedFrames(f *testing.F) [][]byte {
	var out [][]byte
	for _, v := range loadVectors(f) {
		out = append(out, mustHex(f, v.Frame))
	}
	out = append(out, mustHex(f, omsFrame))
	return out
}

// FuzzDetect: any bytes either give a CRC-less frame consistent with its
// L byte, or an error; stripping in the detected format agrees.
func FuzzDetect(f *testing.F) {
	for _, fr := range seedFrames(f) {
		f.Add(fr)
		plain, _, _ := Detect(fr)
		f.Add(encode(plain, FormatA))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		plain, form, err := Detect(b)
		if err != nil {
			return
		}
		if int(plain[0]) != len(plain)-1 {
			t.Fatalf("L=%d for %d bytes", plain[0], len(plain))
		}
		again, err := AppendStripped(nil, b, form)
		if err != nil || !bytes.Equal(again, plain) {
			t.Fatalf("AppendStripped(%s) = %X %v, Detect gave %X", form, again, err, plain)
		}
		if _, err := ParseHeader(plain); err != nil {
			t.Fatalf("header of detected frame: %v", err)
		}
	})
}

// FuzzParse drives the ELL and TPL paths (with and without a key) through
// the full parser.
func FuzzParse(f *testing.F) {
	for _, fr := range seedFrames(f) {
		f.Add(fr, true)
		f.Add(fr, false)
	}
	key := mustHex(f, seedKey)
	f.Fuzz(func(t *testing.T, b []byte, withKey bool) {
		var keys KeyFunc
		if withKey {
			keys = func(ID) ([]byte, bool) { return key, true }
		}
		var p Parser
		var tg Telegram
		in := bytes.Clone(b)
		if err := p.Parse(b, keys, &tg); err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if !bytes.Equal(in, b) {
			t.Fatal("Parse modified its input")
		}
		if tg.AppCI == 0 || len(tg.App) > len(b) {
			t.Fatalf("telegram %+v", tg)
		}
	})
}

// FuzzELL fuzzes what follows an ELL CI behind a fixed, valid header.
func FuzzELL(f *testing.F) {
	for _, fr := range seedFrames(f) {
		plain, _, err := Detect(fr)
		if err == nil && len(plain) > 11 && plain[10] >= 0x8C && plain[10] <= 0x8F {
			f.Add(plain[10], plain[11:])
		}
	}
	key := mustHex(f, seedKey)
	keys := KeyFunc(func(ID) ([]byte, bool) { return key, true })
	hdr := mustHex(f, "00442D2C703749741F16")
	var p Parser
	f.Fuzz(func(t *testing.T, ci byte, rest []byte) {
		if len(rest) > 200 {
			return
		}
		fr := append(append(bytes.Clone(hdr), 0x8C|ci&3), rest...)
		fr[0] = byte(len(fr) - 1)
		var tg Telegram
		if err := p.Parse(fr, keys, &tg); err == nil && tg.ELL.CI == 0 {
			t.Fatal("ELL not recorded")
		}
	})
}

// FuzzTPL fuzzes a TPL header and data, short or long, mode 5 or not.
func FuzzTPL(f *testing.F) {
	oms, _, _ := Detect(mustHex(f, omsFrame))
	f.Add(true, oms[11:])
	f.Add(false, []byte{0x21, 0x43, 0x65, 0x87, 0x2D, 0x2C, 0x1B, 0x07, 0x55, 0x00, 0x10, 0x05, 1, 2, 3})
	key := mustHex(f, omsKey)
	keys := KeyFunc(func(ID) ([]byte, bool) { return key, true })
	var p Parser
	f.Fuzz(func(t *testing.T, short bool, rest []byte) {
		if len(rest) > 200 {
			return
		}
		ci := byte(0x72)
		if short {
			ci = 0x7A
		}
		fr := append(append(bytes.Clone(oms[:10]), ci), rest...)
		fr[0] = byte(len(fr) - 1)
		var tg Telegram
		if err := p.Parse(fr, keys, &tg); err == nil {
			if tg.TPL.CI != ci || (tg.TPL.Mode() == 5 && tg.TPL.Config>>4&0xF != 0 && !bytes.HasPrefix(tg.App, []byte{0x2F, 0x2F})) {
				t.Fatalf("%+v", tg)
			}
		}
	})
}

func FuzzHexLine(f *testing.F) {
	f.Add("T1;1;1;2019-04-11 10:31:34.000;97;148;94623155;0x2544")
	f.Add("25 44|2d_2c")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseHexLine(s)
		if err == nil && len(b) == 0 {
			t.Fatal("empty telegram accepted")
		}
	})
}
