package kem

import (
	"archive/zip"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

const (
	realFile     = "../../testdata/kem/synthetic_test.zip.kem"
	realJSON     = "../../testdata/kem/synthetic_test.json"
	testPassword = "TestPass123"
)

// --- building KEM files the way Kamstrup's tool does ---

// pkcs7 pads b to a whole number of AES blocks.
func pkcs7(b []byte) []byte {
	n := aes.BlockSize - len(b)%aes.BlockSize
	return append(append([]byte(nil), b...), bytes.Repeat([]byte{byte(n)}, n)...)
}

// encryptRaw encrypts already padded plaintext with the password key and IV.
func encryptRaw(t testing.TB, padded []byte, password string) []byte {
	t.Helper()
	var k [16]byte
	copy(k[:], password)
	block, err := aes.NewCipher(k[:])
	if err != nil {
		t.Fatal(err)
	}
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, k[:]).CryptBlocks(ct, padded)
	return ct
}

// envelope wraps ciphertext in the XML-Encryption document of a .kem file.
func envelope(ct []byte, withBOM bool) []byte {
	var b bytes.Buffer
	if withBOM {
		b.WriteString("\xEF\xBB\xBF")
	}
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><EncryptedData Type="http://www.w3.org/2001/04/xmlenc#aes128-cbc" xmlns="http://www.w3.org/2001/04/xmlenc#"><EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc" /><CipherData><CipherValue>`)
	b.WriteString(base64.StdEncoding.EncodeToString(ct))
	b.WriteString(`</CipherValue></CipherData></EncryptedData>`)
	return b.Bytes()
}

// encryptDoc makes a bare .kem document: XML → PKCS#7 → AES-CBC → base64 → envelope.
func encryptDoc(t testing.TB, plainXML, password string, withBOM bool) []byte {
	t.Helper()
	return envelope(encryptRaw(t, pkcs7([]byte(plainXML)), password), withBOM)
}

type entry struct {
	name string
	data []byte
}

func zipOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		w, err := zw.Create(e.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func mustKey(s string) [16]byte {
	var k [16]byte
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		panic(err)
	}
	return k
}

func mustID(s string) wmbus.ID {
	id, err := wmbus.ParseID(s)
	if err != nil {
		panic(err)
	}
	return id
}

const (
	keyA      = "00112233445566778899AABBCCDDEEFF"
	keyB      = "A0B1C2D3E4F5061728394A5B6C7D8E9F"
	keyBLower = "a0b1c2d3e4f5061728394a5b6c7d8e9f" // keys come in either case
)

const kemV1 = `<?xml version="1.0" encoding="utf-8"?>
<MetersInOrder orderid="4711" schemaVersion="2.0">
  <Meter>
    <MeterNo>74493770</MeterNo>
    <SerialNo>74493770</SerialNo>
    <EncKeys><DEK>` + keyA + `</DEK><GPK1 /></EncKeys>
    <MeterName>FLOWIQ 21XX</MeterName>
    <ConsumptionType>VolumeCold</ConsumptionType>
    <ConfigNo>0100200013333</ConfigNo>
    <ProgramNo />
    <TypeNo>02179C0H806</TypeNo>
    <VendorId>KAM</VendorId>
  </Meter>
  <Meter>
    <SerialNo>65432109</SerialNo>
    <EncKeys><DEK>` + keyBLower + `</DEK></EncKeys>
    <MeterName>MC21</MeterName>
    <ConsumptionType>VolumeHeat</ConsumptionType>
    <ConfigNo>0100200023533</ConfigNo>
    <TypeNo>02146C0K879</TypeNo>
    <VendorId>KAM</VendorId>
  </Meter>
</MetersInOrder>`

var wantV1 = []Meter{
	{Serial: "74493770", ID: mustID("74493770"), HasID: true, Key: mustKey(keyA), HasKey: true,
		MeterName: "FLOWIQ 21XX", Model: "flowIQ 2101", ConsumptionType: "VolumeCold",
		ConfigNo: "0100200013333", TypeNo: "02179C0H806", VendorID: "KAM"},
	{Serial: "65432109", ID: mustID("65432109"), HasID: true, Key: mustKey(keyB), HasKey: true,
		MeterName: "MC21", Model: "MULTICAL 21", ConsumptionType: "VolumeHeat",
		ConfigNo: "0100200023533", TypeNo: "02146C0K879", VendorID: "KAM"},
}

// KEM2 with a default namespace, keys as Name/Value pairs, one meter
// without a key and one whose serial is no wM-Bus ID.
const kemV2 = `<?xml version="1.0" encoding="utf-8"?>
<Devices xmlns="urn:kamstrup:kem2" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Version="2">
  <Device>
    <SerialNumber>12003400</SerialNumber>
    <MeterName>KWM2210</MeterName>
    <ConsumptionType>VolumeCold</ConsumptionType>
    <ConfigNo>0200300011111</ConfigNo>
    <TypeNo>KWM2210A0C1</TypeNo>
    <VendorId>KAW</VendorId>
    <Keys>
      <Key><Name>GPK1</Name><Value></Value></Key>
      <Key><Name>DEK</Name><Value>` + keyB + `</Value></Key>
    </Keys>
  </Device>
  <Device>
    <SerialNumber>55550001</SerialNumber>
    <MeterName>FLOWIQ 31XX</MeterName>
    <Keys><Key><Name>DEK</Name><Value /></Key></Keys>
  </Device>
  <Device>
    <SerialNumber>K-7781</SerialNumber>
    <MeterName>Other meter</MeterName>
    <Keys><Key><Name>DEK</Name><Value>` + keyA + `</Value></Key></Keys>
  </Device>
</Devices>`

var wantV2 = []Meter{
	{Serial: "12003400", ID: mustID("12003400"), HasID: true, Key: mustKey(keyB), HasKey: true,
		MeterName: "KWM2210", Model: "flowIQ 2200", ConsumptionType: "VolumeCold",
		ConfigNo: "0200300011111", TypeNo: "KWM2210A0C1", VendorID: "KAW"},
	{Serial: "55550001", ID: mustID("55550001"), HasID: true, MeterName: "FLOWIQ 31XX", Model: "flowIQ 3100"},
	{Serial: "K-7781", Key: mustKey(keyA), HasKey: true, MeterName: "Other meter"},
}

// KEM2 with prefixed names and keys as attributes.
const kemV2Prefixed = `<k:Devices xmlns:k="urn:kamstrup:kem2"><k:Device>
<k:SerialNumber>12003400</k:SerialNumber><k:DeviceName>flowIQ 2200</k:DeviceName>
<k:Keys><k:Key Name="DEK" Value="` + keyB + `"/></k:Keys></k:Device></k:Devices>`

var wantV2Prefixed = []Meter{
	{Serial: "12003400", ID: mustID("12003400"), HasID: true, Key: mustKey(keyB), HasKey: true,
		MeterName: "flowIQ 2200", Model: "flowIQ 2200"},
}

// --- the real test file ---

func TestRealFile(t *testing.T) {
	var want struct {
		Password string `json:"password"`
		Meters   []struct {
			Serial string `json:"serial"`
			Key    string `json:"key"`
		} `json:"meters"`
	}
	b, err := os.ReadFile(realJSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if want.Password != testPassword || len(want.Meters) != 2 {
		t.Fatalf("%s changed: password or meter count differ from what this test expects", realJSON)
	}

	got, err := Open(realFile, want.Password)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want.Meters) {
		t.Fatalf("got %d meters, want %d", len(got), len(want.Meters))
	}
	for i, w := range want.Meters {
		g := got[i]
		if g.Serial != w.Serial || !g.HasID || g.ID.String() != w.Serial {
			t.Errorf("meter %d: serial %q ID %v (HasID %v), want %s", i, g.Serial, g.ID, g.HasID, w.Serial)
		}
		if !g.HasKey || g.Key != mustKey(w.Key) {
			t.Errorf("meter %s: key differs from %s", w.Serial, realJSON) // never print keys
		}
		if g.MeterName != "FLOWIQ 21XX" || g.Model != "flowIQ 2101" || g.VendorID != "KAM" ||
			g.ConsumptionType != "VolumeCold" || g.TypeNo != "02179C0H806" || len(g.ConfigNo) != 13 {
			t.Errorf("meter %s: %q %q %q %q %q %q", w.Serial, g.MeterName, g.Model, g.VendorID, g.ConsumptionType, g.TypeNo, g.ConfigNo)
		}
	}
}

func TestRealFileWrongPassword(t *testing.T) {
	for _, pw := range []string{"", "TestPass12", "testpass123", "TestPass124", "TestPass123 ", "a much longer password"} {
		_, err := Open(realFile, pw)
		if !errors.Is(err, ErrWrongPassword) {
			t.Errorf("password %q: err %v, want ErrWrongPassword", pw, err)
			continue
		}
		if !strings.Contains(err.Error(), "wrong password or not a KEM file") || !strings.Contains(err.Error(), "synthetic_test.zip.kem") {
			t.Errorf("password %q: message %q should name the file and the cause", pw, err)
		}
	}
}

// --- round trips of files built here ---

func TestRoundTrip(t *testing.T) {
	docs := []struct {
		name, file, xml string
		want            []Meter
	}{
		{"v1", "0A1B2C3D-0000-4000-8000-000000000001.kem", kemV1, wantV1},
		{"v2", "0A1B2C3D-0000-4000-8000-000000000002.kem2", kemV2, wantV2},
		{"v2 prefixed", "export.KEM2", kemV2Prefixed, wantV2Prefixed},
	}
	for _, d := range docs {
		for _, withBOM := range []bool{false, true} {
			for _, zipped := range []bool{false, true} {
				name := fmt.Sprintf("%s/bom=%v/zip=%v", d.name, withBOM, zipped)
				t.Run(name, func(t *testing.T) {
					data := encryptDoc(t, d.xml, "Secret-42", withBOM)
					if zipped {
						// Kamstrup's zips carry the schema next to the document.
						data = zipOf(t, entry{"KEM.xsd", []byte("<xs:schema/>")}, entry{d.file, data})
					}
					got, err := Parse(data, "Secret-42")
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, d.want) {
						t.Errorf("meters differ:\n got %v\nwant %v", got, d.want)
					}
					if _, err := Parse(data, "Secret-43"); !errors.Is(err, ErrWrongPassword) {
						t.Errorf("wrong password: err %v, want ErrWrongPassword", err)
					}
				})
			}
		}
	}
}

func TestOpenExtensions(t *testing.T) {
	dir := t.TempDir()
	bare := encryptDoc(t, kemV1, "pw", true)
	zipped := zipOf(t, entry{"x.kem", bare})
	for name, data := range map[string][]byte{"a.kem": bare, "b.kem2": bare, "c.zip.kem": zipped, "d.zip": zipped, "e.kem": zipped} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Open(p, "pw")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, wantV1) {
			t.Errorf("%s: meters differ", name)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing.kem"), "pw"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err %v, want fs.ErrNotExist", err)
	}
}

func TestPasswordKey(t *testing.T) {
	// Bytes beyond 16 don't count, shorter passwords are zero-padded.
	long := "0123456789abcdefIGNORED"
	data := encryptDoc(t, kemV1, long, false)
	for _, pw := range []string{long, "0123456789abcdef", "0123456789abcdefOTHER"} {
		if _, err := Parse(data, pw); err != nil {
			t.Errorf("password %q: %v", pw, err)
		}
	}
	// UTF-8 bytes, not characters: "ü" is two bytes.
	data = encryptDoc(t, kemV1, "grüß", false)
	if _, err := Parse(data, "grüß"); err != nil {
		t.Errorf("UTF-8 password: %v", err)
	}
	if _, err := Parse(data, "gruss"); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("err %v, want ErrWrongPassword", err)
	}
}

func TestMultipleDocumentsInZip(t *testing.T) {
	data := zipOf(t,
		entry{"b.kem2", encryptDoc(t, kemV2Prefixed, "pw", false)},
		entry{"a.kem", encryptDoc(t, kemV1, "pw", false)},
		entry{"c.kem", encryptDoc(t, kemV1, "pw", true)}, // exact repeat: dropped
	)
	got, err := Parse(data, "pw")
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]Meter(nil), wantV1...), wantV2Prefixed...)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("meters differ:\n got %v\nwant %v", got, want)
	}
}

// --- errors ---

func TestErrors(t *testing.T) {
	real, err := os.ReadFile(realFile)
	if err != nil {
		t.Fatal(err)
	}
	noKeys := `<MetersInOrder><Meter><SerialNo>12345678</SerialNo><EncKeys><DEK /></EncKeys></Meter></MetersInOrder>`
	noMeters := `<MetersInOrder orderid=""></MetersInOrder>`
	conflict := `<MetersInOrder><Meter><SerialNo>12345678</SerialNo><EncKeys><DEK>` + keyA + `</DEK></EncKeys></Meter>` +
		`<Meter><SerialNo>12345678</SerialNo><EncKeys><DEK>` + keyB + `</DEK></EncKeys></Meter></MetersInOrder>`
	badHex := `<MetersInOrder><Meter><SerialNo>12345678</SerialNo><EncKeys><DEK>` + keyA[:30] + `ZZ</DEK></EncKeys></Meter></MetersInOrder>`
	shortKey := `<MetersInOrder><Meter><SerialNo>12345678</SerialNo><EncKeys><DEK>` + keyA[:30] + `</DEK></EncKeys></Meter></MetersInOrder>`
	twoKeys := `<Devices><Device><SerialNumber>12345678</SerialNumber><DEK>` + keyA + `</DEK>` +
		`<Keys><Key><Name>DEK</Name><Value>` + keyB + `</Value></Key></Keys></Device></Devices>`
	malformed := `<MetersInOrder><Meter><SerialNo>12345678</SerialNo><EncKeys><DEK>` + keyA + `</EncKeys></Meter></MetersInOrder>`
	entity := `<MetersInOrder><Meter><SerialNo>1</SerialNo><EncKeys><DEK>&` + keyA + `;</DEK></EncKeys></Meter></MetersInOrder>`
	env := func(ct string) []byte {
		return []byte(`<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#"><CipherData><CipherValue>` + ct + `</CipherValue></CipherData></EncryptedData>`)
	}

	cases := []struct {
		name string
		data []byte
		want error
		msg  string // part of the message
	}{
		{"zip without kem", zipOf(t, entry{"KEM.xsd", nil}, entry{"readme.txt", []byte("hi")}), ErrNoKEMInZip, `zip holds no .kem file (it holds "KEM.xsd", "readme.txt")`},
		{"empty zip", zipOf(t), ErrNoKEMInZip, "it holds nothing"},
		{"no keys", encryptDoc(t, noKeys, "pw", true), ErrNoKeys, "none of its 1 meters has a DEK"},
		{"no meters", encryptDoc(t, noMeters, "pw", false), ErrNoKeys, "lists no meters"},
		{"no keys zipped", zipOf(t, entry{"k.kem", encryptDoc(t, noKeys, "pw", false)}), ErrNoKeys, ""},
		{"truncated zip", real[:len(real)-1], ErrTruncated, "zip"},
		{"empty file", nil, ErrTruncated, "empty file"},
		{"ciphertext not whole blocks", env(base64.StdEncoding.EncodeToString(make([]byte, 40))), ErrTruncated, "40 bytes, not a multiple of 16"},
		{"base64 cut", env("AAAAAAAAAAAAAAAAAAAAAA"), ErrTruncated, "not a multiple of 4"},
		{"empty CipherValue", env(""), ErrTruncated, "empty CipherValue"},
		{"base64 invalid", env("AAAA!AAA"), ErrFormat, "not base64"},
		{"no CipherValue", []byte(`<EncryptedData><CipherData/></EncryptedData>`), ErrFormat, "without CipherValue"},
		{"plain XML", []byte(kemV1), ErrFormat, "root element is <MetersInOrder>, want <EncryptedData>"},
		{"not XML", []byte("just some text"), ErrFormat, ""},
		{"UTF-16", []byte("\xFF\xFE<\x00"), ErrFormat, "UTF-16"},
		{"other algorithm", []byte(`<EncryptedData><EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc"/><CipherData><CipherValue>AAAA</CipherValue></CipherData></EncryptedData>`), ErrFormat, "aes256-cbc"},
		{"other encoding", []byte(`<?xml version="1.0" encoding="ISO-8859-1"?><EncryptedData/>`), ErrFormat, "ISO-8859-1"},
		{"other root", encryptDoc(t, `<Orders><Meter/></Orders>`, "pw", false), ErrFormat, "root <Orders>"},
		{"serial missing", encryptDoc(t, `<Devices><Device><Keys/></Device></Devices>`, "pw", false), ErrFormat, "<Device> #1: malformed KEM file: meter without SerialNo"},
		{"conflicting keys", encryptDoc(t, conflict, "pw", false), ErrFormat, "meter 12345678 is listed twice with different keys"},
		{"bad hex", encryptDoc(t, badHex, "pw", false), ErrFormat, "meter 12345678: malformed KEM file: DEK has a character that is not a hex digit"},
		{"short key", encryptDoc(t, shortKey, "pw", false), ErrFormat, "DEK must be 32 hex digits, found 30"},
		{"two keys", encryptDoc(t, twoKeys, "pw", false), ErrFormat, "two different DEKs"},
		{"malformed plaintext", encryptDoc(t, malformed, "pw", false), ErrFormat, "not well-formed XML (line 1)"},
		{"entity in plaintext", encryptDoc(t, entity, "pw", false), ErrFormat, "not well-formed XML"},
		{"padding zero", envelope(encryptRaw(t, append([]byte("<MetersInOrder/>"), make([]byte, 16)...), "pw"), false), ErrWrongPassword, ""},
		{"padding 17", envelope(encryptRaw(t, append([]byte("<MetersInOrder/>"), bytes.Repeat([]byte{17}, 16)...), "pw"), false), ErrWrongPassword, ""},
		{"padding inconsistent", envelope(encryptRaw(t, []byte("<MetersInOrder/>\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x01\x02"), "pw"), false), ErrWrongPassword, ""},
		{"plaintext not XML", encryptDoc(t, "MetersInOrder, but not XML", "pw", false), ErrWrongPassword, ""},
		{"plaintext not UTF-8", encryptDoc(t, "<MetersInOrder>\xff</MetersInOrder>", "pw", false), ErrWrongPassword, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ms, err := Parse(c.data, "pw")
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if ms != nil {
				t.Errorf("got %d meters along with the error", len(ms))
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("message %q does not contain %q", err, c.msg)
			}
			assertNoKey(t, err.Error())
		})
	}
}

// assertNoKey fails if s holds any test key, in either case or as raw bytes.
func assertNoKey(t *testing.T, s string) {
	t.Helper()
	for _, k := range []string{keyA, keyB, keyA[:30], "000102030405060708090A0B0C0D0E0F", "F0E1D2C3B4A5968778695A4B3C2D1E0F"} {
		raw := mustKeyPrefix(k)
		if strings.Contains(strings.ToUpper(s), k) || strings.Contains(s, string(raw)) {
			t.Errorf("key material in %q", s)
		}
	}
}

func mustKeyPrefix(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Every prefix of a real file is reported as truncated, never as a wrong
// password or a crash.
func TestTruncatedEverywhere(t *testing.T) {
	real, err := os.ReadFile(realFile)
	if err != nil {
		t.Fatal(err)
	}
	for n := len(zipMagic); n < len(real); n++ {
		if _, err := Parse(real[:n], testPassword); !errors.Is(err, ErrTruncated) {
			t.Fatalf("zip cut at %d of %d: err %v, want ErrTruncated", n, len(real), err)
		}
	}
	doc := encryptDoc(t, kemV1, "pw", true)
	for n := len(bom) + 1; n < len(doc); n++ {
		if _, err := Parse(doc[:n], "pw"); !errors.Is(err, ErrTruncated) {
			t.Fatalf("document cut at %d of %d (%q…): err %v, want ErrTruncated", n, len(doc), doc[max(0, n-10):n], err)
		}
	}
}

func TestSerialNotAnID(t *testing.T) {
	ms, err := Parse(encryptDoc(t, kemV2, "pw", false), "pw")
	if err != nil {
		t.Fatal(err)
	}
	m := ms[2]
	if m.HasID || m.Serial != "K-7781" {
		t.Fatalf("got %v HasID %v", m.Serial, m.HasID)
	}
	err = m.IDError()
	if err == nil || !strings.Contains(err.Error(), `serial "K-7781" can't be used as a wM-Bus ID`) {
		t.Errorf("IDError() = %v", err)
	}
	if ms[0].IDError() != nil {
		t.Errorf("IDError() of a valid ID = %v", ms[0].IDError())
	}
}

func TestMeterFormattingHidesKey(t *testing.T) {
	for _, m := range wantV1 {
		for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
			s := fmt.Sprintf(f, m)
			assertNoKey(t, s)
			if f == "%v" && s != "meter "+m.Serial+" ("+m.Model+", key present)" {
				t.Errorf("%%v = %q", s)
			}
		}
		assertNoKey(t, fmt.Sprintf("%v", []Meter{m}))
	}
}

func TestModelName(t *testing.T) {
	for in, want := range map[string]string{
		"FLOWIQ 21XX": "flowIQ 2101", "flowIQ 21xx": "flowIQ 2101", "MC21": "MULTICAL 21",
		"MULTICAL 21": "MULTICAL 21", "KWM2210": "flowIQ 2200", "KWM 2230": "KWM 2230",
		"FLOWIQ 31XX": "flowIQ 3100", "MULTICAL 403": "", "": "",
	} {
		if got := ModelName(in); got != want {
			t.Errorf("ModelName(%q) = %q, want %q", in, got, want)
		}
	}
}

// --- fuzzing ---

func FuzzParse(f *testing.F) {
	real, err := os.ReadFile(realFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real, testPassword)
	f.Add(real, "wrong")
	f.Add(real[:len(real)/2], testPassword)
	f.Add(encryptDoc(f, kemV1, "pw", true), "pw")
	f.Add(encryptDoc(f, kemV2, "pw", false), "pw")
	f.Add(encryptDoc(f, kemV2Prefixed, "pw", false), "pw")
	f.Add(zipOf(f, entry{"a.kem2", encryptDoc(f, kemV2, "pw", true)}), "pw")
	f.Add(zipOf(f, entry{"a.txt", nil}), "pw")
	f.Add([]byte(kemV1), "")
	f.Fuzz(func(t *testing.T, data []byte, password string) {
		ms, err := Parse(data, password)
		if err != nil {
			if ms != nil {
				t.Fatalf("meters along with error %v", err)
			}
			for _, s := range []error{ErrWrongPassword, ErrNoKEMInZip, ErrNoKeys, ErrTruncated, ErrFormat} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		keys := 0
		for _, m := range ms {
			if m.Serial == "" {
				t.Fatal("meter without serial")
			}
			if m.HasID && m.ID.String() != m.Serial {
				t.Fatalf("ID %v from serial %q", m.ID, m.Serial)
			}
			if m.HasKey {
				keys++
			}
		}
		if keys == 0 {
			t.Fatal("success without any key")
		}
	})
}

// FuzzParseMeters reaches the plaintext parser directly: through Parse
// the fuzzer would have to find valid ciphertext first.
func FuzzParseMeters(f *testing.F) {
	for _, s := range []string{kemV1, kemV2, kemV2Prefixed, "<Devices><Device><SerialNumber>1</SerialNumber></Device></Devices>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, plain []byte) {
		ms, err := parseMeters(plain)
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		for _, m := range ms {
			if m.Serial == "" {
				t.Fatal("meter without serial")
			}
		}
	})
}

func TestZipEntryNamedOnError(t *testing.T) {
	data := zipOf(t,
		entry{"good.kem", encryptDoc(t, kemV1, "pw", false)},
		entry{"other.kem", encryptDoc(t, kemV1, "other", false)},
	)
	_, err := Parse(data, "pw")
	if !errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), `zip entry "other.kem"`) {
		t.Errorf("err %v, want ErrWrongPassword naming other.kem", err)
	}
}

func BenchmarkParse(b *testing.B) {
	real, err := os.ReadFile(realFile)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(real)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(real, testPassword); err != nil {
			b.Fatal(err)
		}
	}
}
