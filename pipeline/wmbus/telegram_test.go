package wmbus

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"strings"
	"testing"
)

// vector is one telegram of the project's test vectors.
type vector = testvectors.Vector

func loadVectors(t testing.TB) []vector {
	t.Helper()
	return testvectors.Load(t)
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keyOf(t testing.TB, v vector) KeyFunc {
	if v.Key == nil {
		return nil
	}
	k := mustHex(t, *v.Key)
	return func(ID) ([]byte, bool) { return k, true }
}

func TestParseVectors(t *testing.T) {
	var p Parser
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			frame := mustHex(t, v.Frame)
			var tg Telegram
			if err := p.Parse(frame, keyOf(t, v), &tg); err != nil {
				t.Fatal(err)
			}
			if tg.Header.C != 0x44 || tg.ELL.CI != 0x8D || !tg.ELL.HasSN {
				t.Fatalf("header %+v ELL %+v", tg.Header, tg.ELL)
			}
			if got := tg.Header.Manufacturer.String(); got != "KAM" && got != "KAW" {
				t.Errorf("manufacturer %s", got)
			}
			if tg.AppCI != 0x78 && tg.AppCI != 0x79 {
				t.Errorf("app CI %#x", tg.AppCI)
			}
			if plain, _, err := Detect(frame); err != nil {
				t.Error(err)
			} else if acc, ok := PeekAccessNumber(plain); !ok || acc != tg.AccessNumber() {
				t.Errorf("peeked access number %d %v, parsed %d", acc, ok, tg.AccessNumber())
			}
			wantSec := SecurityNone
			if v.Key != nil {
				wantSec = SecurityELLCTR
			}
			if tg.Security != wantSec {
				t.Errorf("security %v, want %v", tg.Security, wantSec)
			}
			if v.Plaintext != "" {
				// plaintext_after_sn = payload CRC ‖ CI ‖ application data
				got := append([]byte{byte(tg.ELL.PayloadCRC), byte(tg.ELL.PayloadCRC >> 8), tg.AppCI}, tg.App...)
				if want := mustHex(t, v.Plaintext); !bytes.Equal(got, want) {
					t.Errorf("plaintext %X\nwant      %X", got, want)
				}
			}
			wantFormat := FormatNone
			if strings.HasPrefix(v.Name, "flowiq") || strings.HasPrefix(v.Name, "synthetic") {
				wantFormat = FormatB
			}
			if tg.Format != wantFormat {
				t.Errorf("format %s, want %s", tg.Format, wantFormat)
			}
		})
	}
}

const (
	seedFrame = "25442D2C703749741F168D20B4231B02216F07DDD3EFA318553DDFEE5134DB3985C5DB84A7E6"
	seedKey   = "44E9112D06BD762EC2BFECE57E487C9B"
)

func TestParseErrors(t *testing.T) {
	raw := mustHex(t, seedFrame)
	key := mustHex(t, seedKey)
	good := func(ID) ([]byte, bool) { return key, true }
	wrong := func(ID) ([]byte, bool) { k := bytes.Clone(key); k[0] ^= 1; return k, true }
	none := func(ID) ([]byte, bool) { return nil, false }
	plain, _, err := Detect(raw)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(b []byte, f func([]byte)) []byte { c := bytes.Clone(b); f(c); return c }
	formatA := encode(plain, FormatA)

	tests := []struct {
		name string
		in   []byte
		keys KeyFunc
		want error
		msg  string
	}{
		{"wrong key", raw, wrong, ErrWrongKey, "meter 74493770: wrong key (payload CRC mismatch)"},
		{"wrong key, CRC-less", plain, wrong, ErrWrongKey, "meter 74493770: wrong key"},
		{"no key", raw, none, ErrNoKey, "meter 74493770: no key"},
		{"nil key func", raw, nil, ErrNoKey, "meter 74493770: no key"},
		{"bad key length", raw, func(ID) ([]byte, bool) { return key[:15], true }, ErrKeySize, "meter 74493770: key is not 16 bytes"},
		{"flipped bit, format B", mod(raw, func(b []byte) { b[25] ^= 0x04 }), good, ErrPayloadCRC, "meter 74493770: payload CRC mismatch"},
		{"flipped bit, CRC-less", mod(plain, func(b []byte) { b[30] ^= 0x80 }), good, ErrPayloadCRC, "frame corrupted"},
		{"flipped bit, format A", mod(formatA, func(b []byte) { b[30] ^= 0x01 }), good, ErrBlockCRC, "block CRC mismatch in block 3"},
		{"flipped bit in format B CRC", mod(raw, func(b []byte) { b[len(b)-1] ^= 0x01 }), good, ErrBlockCRC, "format B CRC"},
		{"truncated", raw[:30], good, ErrShort, "meter 74493770: frame too short: L=37 but only 29 bytes follow it (truncated)"},
		{"truncated header", raw[:6], good, ErrShort, "frame too short"},
		{"leftover CRC bytes", append(bytes.Clone(plain), 0xAB, 0xCD), good, ErrCRCLayout, "leftover link-layer CRC bytes"},
		{"unsupported CI", mod(plain, func(b []byte) { b[10] = 0xA0 }), good, ErrUnsupportedCI, "unsupported CI 0xA0"},
		{"ELL cut off", mod(plain[:14], func(b []byte) { b[0] = 13 }), good, ErrShort, "extended link layer cut off"},
		{"ELL encryption 3", mod(plain, func(b []byte) { b[16] = 0x61 }), good, ErrUnsupportedSecurity, "ELL encryption 3"},
	}
	var p Parser
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tg Telegram
			err := p.Parse(tc.in, tc.keys, &tg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q lacks %q", err, tc.msg)
			}
			if strings.Contains(strings.ToUpper(err.Error()), seedKey) {
				t.Errorf("error leaks the key")
			}
		})
	}
	// A wrong key that decrypts the CI to something plausible must still be
	// caught, as corruption at worst: never a telegram.
	var tg Telegram
	if err := p.Parse(raw, good, &tg); err != nil || tg.Format != FormatB {
		t.Fatalf("good key: %v", err)
	}
	// Once a key has verified for the meter, a damaged frame is reported
	// as damage even when its CI decrypts to garbage.
	ciFlip := mod(raw, func(b []byte) { b[19] ^= 0x40 })
	if err := p.Parse(ciFlip, good, &tg); !errors.Is(err, ErrPayloadCRC) {
		t.Fatalf("CI flip after a verified key: %v", err)
	}
	var fresh Parser
	if err := fresh.Parse(ciFlip, good, &tg); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("CI flip on a fresh parser: %v", err)
	}
	if id, ok := ErrorMeter(fresh.Parse(raw, wrong, &tg)); !ok || id.String() != "74493770" {
		t.Fatalf("ErrorMeter = %v %v", id, ok)
	}
}

func TestParseForm(t *testing.T) {
	raw := mustHex(t, seedFrame)
	key := mustHex(t, seedKey)
	keys := KeyFunc(func(ID) ([]byte, bool) { return key, true })
	plain, _, _ := Detect(raw)
	var p Parser
	var tg Telegram
	for _, tc := range []struct {
		in []byte
		f  Format
	}{{raw, FormatB}, {plain, FormatNone}, {encode(plain, FormatA), FormatA}} {
		if err := p.ParseForm(tc.in, tc.f, keys, &tg); err != nil || tg.Format != tc.f || tg.AppCI != 0x79 {
			t.Errorf("%s: %v", tc.f, err)
		}
	}
	if err := p.ParseForm(raw, FormatA, keys, &tg); !errors.Is(err, ErrLength) || !strings.HasPrefix(err.Error(), "meter 74493770: ") {
		t.Errorf("B frame as A: %v", err)
	}
	if err := p.ParseForm(raw[:5], FormatNone, keys, &tg); !errors.Is(err, ErrLength) && !errors.Is(err, ErrShort) {
		t.Errorf("short: %v", err)
	}
}

func TestParseFormatA(t *testing.T) {
	raw := mustHex(t, seedFrame)
	key := mustHex(t, seedKey)
	plain, _, _ := Detect(raw)
	var p Parser
	var tg Telegram
	if err := p.Parse(encode(plain, FormatA), func(ID) ([]byte, bool) { return key, true }, &tg); err != nil {
		t.Fatal(err)
	}
	if tg.Format != FormatA || tg.AppCI != 0x79 || tg.Security != SecurityELLCTR || tg.AccessNumber() != 0xB4 {
		t.Fatalf("%+v", tg)
	}
}

// ctrEncrypt is the reference: crypto/cipher's own CTR.
func ctrEncrypt(t *testing.T, key, iv, b []byte) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	cipher.NewCTR(blk, iv).XORKeyStream(b, b)
}

func TestELLVariants(t *testing.T) {
	key := mustHex(t, "000102030405060708090A0B0C0D0E0F")
	keys := func(ID) ([]byte, bool) { return key, true }
	app := []byte{0x78, 0x04, 0x13, 0x40, 0xE2, 0x01, 0x00}
	dll := mustHex(t, "002D2C785634121F16")
	build := func(ci byte, withAddr, withSN bool, enc bool) []byte {
		f := append([]byte{0, 0x44}, dll[1:]...)
		f = append(f, ci, 0x20, 0x11)
		addr := []byte{0x2D, 0x2C, 0x99, 0x88, 0x77, 0x66, 0x1B, 0x16}
		if withAddr {
			f = append(f, addr...)
		}
		if withSN {
			sn := []byte{0x34, 0x12, 0x00, 0x00}
			if enc {
				sn[3] = 0x20
			}
			snAt := len(f)
			f = append(f, sn...)
			c := CRC(app)
			payload := append([]byte{byte(c), byte(c >> 8)}, app...)
			if enc {
				iv := make([]byte, 16)
				if withAddr {
					copy(iv, addr)
				} else {
					copy(iv, f[2:10])
				}
				iv[8] = 0x20
				copy(iv[9:13], f[snAt:snAt+4])
				ctrEncrypt(t, key, iv, payload)
			}
			f = append(f, payload...)
		} else {
			f = append(f, app...)
		}
		f[0] = byte(len(f) - 1)
		return f
	}
	tests := []struct {
		ci              byte
		addr, sn, enc   bool
		wantSec         Security
		wantAddressedAt bool
	}{
		{0x8C, false, false, false, SecurityNone, false},
		{0x8D, false, true, false, SecurityNone, false},
		{0x8D, false, true, true, SecurityELLCTR, false},
		{0x8E, true, false, false, SecurityNone, true},
		{0x8F, true, true, true, SecurityELLCTR, true},
	}
	var p Parser
	for _, tc := range tests {
		var tg Telegram
		f := build(tc.ci, tc.addr, tc.sn, tc.enc)
		if err := p.Parse(f, keys, &tg); err != nil {
			t.Fatalf("CI %#x enc %v: %v", tc.ci, tc.enc, err)
		}
		if tg.Security != tc.wantSec || tg.ELL.HasAddress != tc.wantAddressedAt || tg.AppCI != 0x78 || !bytes.Equal(tg.App, app[1:]) {
			t.Errorf("CI %#x: %+v", tc.ci, tg)
		}
		if tc.addr && tg.ELL.Manufacturer != KAM {
			t.Errorf("CI %#x: ELL manufacturer %v", tc.ci, tg.ELL.Manufacturer)
		}
	}
}

// OMS specification volume 2, annex N.2.1: wM-Bus meter with security
// profile A (TPL security mode 5), as sent in frame format A.
const (
	omsFrame = "2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A"
	omsKey   = "0102030405060708090A0B0C0D0E0F11"
)

func TestTPLMode5(t *testing.T) {
	key := mustHex(t, omsKey)
	var p Parser
	var tg Telegram
	if err := p.Parse(mustHex(t, omsFrame), func(ID) ([]byte, bool) { return key, true }, &tg); err != nil {
		t.Fatal(err)
	}
	if tg.Format != FormatA || tg.Security != SecurityTPL5 || tg.AppCI != 0x7A || tg.TPL.Mode() != 5 ||
		tg.TPL.ACC != 0x2A || tg.Header.Manufacturer.String() != "ELS" || tg.Meter().String() != "12345678" {
		t.Fatalf("%+v", tg)
	}
	if !bytes.HasPrefix(tg.App, []byte{0x2F, 0x2F}) || len(tg.App) != 32 {
		t.Fatalf("app %X", tg.App)
	}
	wrong := bytes.Clone(key)
	wrong[15] ^= 0xFF
	err := p.Parse(mustHex(t, omsFrame), func(ID) ([]byte, bool) { return wrong, true }, &tg)
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "meter 12345678: wrong key") {
		t.Fatalf("wrong key: %v", err)
	}
	if err := p.Parse(mustHex(t, omsFrame), nil, &tg); !errors.Is(err, ErrNoKey) {
		t.Fatalf("no key: %v", err)
	}
}

func TestTPLLongHeader(t *testing.T) {
	key := mustHex(t, omsKey)
	// Radio module 11223344 (XYZ) carries meter 87654321 (KAM, v1B, water).
	records := append([]byte{0x2F, 0x2F, 0x04, 0x13, 0x08, 0x19, 0x00, 0x00}, bytes.Repeat([]byte{0x2F}, 8)...)
	long := []byte{0x21, 0x43, 0x65, 0x87, 0x2D, 0x2C, 0x1B, 0x07, 0x55, 0x00, 0x10, 0x05}
	iv := []byte{0x2D, 0x2C, 0x21, 0x43, 0x65, 0x87, 0x1B, 0x07}
	iv = append(iv, bytes.Repeat([]byte{0x55}, 8)...)
	blk, _ := aes.NewCipher(key)
	enc := bytes.Clone(records)
	cipher.NewCBCEncrypter(blk, iv).CryptBlocks(enc, enc)
	f := append(mustHex(t, "00441A6744332211010772"), long...)
	f = append(f, enc...)
	f[0] = byte(len(f) - 1)
	var p Parser
	var tg Telegram
	var asked ID
	if err := p.Parse(f, func(id ID) ([]byte, bool) { asked = id; return key, true }, &tg); err != nil {
		t.Fatal(err)
	}
	if asked.String() != "87654321" || tg.Meter() != asked || tg.TPL.Manufacturer != KAM || !bytes.Equal(tg.App, records) {
		t.Fatalf("asked %v, %+v", asked, tg)
	}
	if acc, ok := PeekAccessNumber(f); !ok || acc != 0x55 || acc != tg.AccessNumber() {
		t.Errorf("peeked access number %#x %v", acc, ok)
	}
	if _, ok := PeekAccessNumber(f[:15]); ok {
		t.Error("access number peeked past the end")
	}
	short := bytes.Clone(f[:len(f)-1])
	short[0]--
	if err := p.Parse(short, func(ID) ([]byte, bool) { return key, true }, &tg); !errors.Is(err, ErrShort) {
		t.Fatalf("short TPL: %v", err)
	}
	mode7 := bytes.Clone(f)
	mode7[22] = 0x07
	if err := p.Parse(mode7, func(ID) ([]byte, bool) { return key, true }, &tg); !errors.Is(err, ErrUnsupportedSecurity) {
		t.Fatalf("mode 7: %v", err)
	}
}

func TestParseAllocs(t *testing.T) {
	raw := mustHex(t, seedFrame)
	key := mustHex(t, seedKey)
	keys := KeyFunc(func(ID) ([]byte, bool) { return key, true })
	var p Parser
	var tg Telegram
	if err := p.Parse(raw, keys, &tg); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = p.Parse(raw, keys, &tg) }); n != 0 {
		t.Fatalf("Parse allocates %.1f times per telegram", n)
	}
}

func TestHexLine(t *testing.T) {
	want := mustHex(t, "25442D2C70")
	for _, s := range []string{
		"25442D2C70", "25442d2c70", " 25 44 2D|2c_70 ", "0x25442D2C70",
		"T1;1;1;2019-04-11 10:31:34.000;97;148;94623155;0x25442D2C70",
	} {
		got, err := ParseHexLine(s)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%q: %X %v", s, got, err)
		}
	}
	if _, mode, err := AppendHexLine(nil, "C1;1;1;x;0x25442D2C70"); err != nil || mode != "C1" {
		t.Errorf("mode %q %v", mode, err)
	}
	for _, s := range []string{"", "2544G0", "254", "T1;1;1;2544", "|||"} {
		if _, err := ParseHexLine(s); !errors.Is(err, ErrHexLine) {
			t.Errorf("%q: err %v", s, err)
		}
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf, _, _ = AppendHexLine(buf[:0], "T1;1;0x25442D2C70") }); n != 0 {
		t.Errorf("AppendHexLine allocates %.1f", n)
	}
}

func BenchmarkCRC(b *testing.B) {
	buf := mustHex(b, seedFrame)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		CRC(buf)
	}
}

func BenchmarkParse(b *testing.B) {
	raw := mustHex(b, seedFrame)
	key := mustHex(b, seedKey)
	keys := KeyFunc(func(ID) ([]byte, bool) { return key, true })
	var p Parser
	var tg Telegram
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(raw, keys, &tg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "telegrams/s")
}
