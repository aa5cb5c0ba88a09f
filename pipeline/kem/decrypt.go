package kem

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

var bom = []byte("\xEF\xBB\xBF")

// aes128CBC is the only algorithm KEM files use.
const aes128CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"

// parseDocument decrypts one XML-Encryption document and reads its meters.
func parseDocument(doc []byte, password string) ([]Meter, error) {
	ct, err := cipherValue(doc)
	if err != nil {
		return nil, err
	}
	plain, err := decrypt(ct, password)
	if err != nil {
		return nil, err
	}
	defer clear(plain) // it holds the keys in hex; the Meters have their own copies
	return parseMeters(plain)
}

// cipherValue extracts and base64-decodes the CipherValue of an
// EncryptedData envelope.
func cipherValue(doc []byte) ([]byte, error) {
	doc = bytes.TrimPrefix(doc, bom)
	if bytes.HasPrefix(doc, []byte{0xFF, 0xFE}) || bytes.HasPrefix(doc, []byte{0xFE, 0xFF}) {
		return nil, fmt.Errorf("%w: UTF-16 text; KEM files are UTF-8", ErrFormat)
	}
	d := newDecoder(doc)
	var (
		path   []string // local names of the open elements
		value  strings.Builder
		found  bool
		inCV   bool
		rooted bool
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, envelopeErr(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if !rooted {
				rooted = true
				if t.Name.Local != "EncryptedData" {
					return nil, fmt.Errorf("%w: root element is <%s>, want <EncryptedData>", ErrFormat, clip(t.Name.Local))
				}
			}
			path = append(path, t.Name.Local)
			switch t.Name.Local {
			case "EncryptionMethod":
				if len(path) == 2 {
					if alg := attr(t, "Algorithm"); alg != "" && alg != aes128CBC {
						return nil, fmt.Errorf("%w: encryption algorithm %q, want %s", ErrFormat, clip(alg), aes128CBC)
					}
				}
			case "CipherValue":
				if found {
					return nil, fmt.Errorf("%w: more than one CipherValue", ErrFormat)
				}
				found, inCV = true, true
			}
		case xml.EndElement:
			if t.Name.Local == "CipherValue" {
				inCV = false
			}
			path = path[:len(path)-1]
		case xml.CharData:
			if inCV {
				value.Write(t)
			}
		}
	}
	if !rooted {
		switch t := bytes.TrimSpace(doc); {
		case len(t) == 0:
			return nil, fmt.Errorf("%w: empty file", ErrTruncated)
		case bytes.HasPrefix(t, []byte("<?xml")):
			return nil, fmt.Errorf("%w: XML declaration but no element", ErrTruncated)
		}
		return nil, fmt.Errorf("%w: no XML element in the file", ErrFormat)
	}
	if !found {
		return nil, fmt.Errorf("%w: EncryptedData without CipherValue", ErrFormat)
	}
	return decodeBase64(value.String())
}

// envelopeErr maps an XML error of the envelope: hitting the end of input
// inside an element means the file was cut short.
func envelopeErr(err error) error {
	var se *xml.SyntaxError
	if errors.As(err, &se) && strings.Contains(se.Msg, "unexpected EOF") {
		return fmt.Errorf("%w: XML ends at line %d inside an element", ErrTruncated, se.Line)
	}
	return fmt.Errorf("%w: not XML-Encryption: %v", ErrFormat, err)
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty CipherValue", ErrTruncated)
	}
	if len(s)%4 != 0 {
		return nil, fmt.Errorf("%w: CipherValue has %d base64 characters, not a multiple of 4", ErrTruncated, len(s))
	}
	ct, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: CipherValue is not base64: %v", ErrFormat, err)
	}
	return ct, nil
}

// passwordKey is the KEM key derivation: the password's UTF-8 bytes,
// zero-padded or cut to 16 bytes. The same 16 bytes are the IV.
func passwordKey(password string) [16]byte {
	var k [16]byte
	copy(k[:], password)
	return k
}

// decrypt runs AES-128-CBC with the password key and IV and removes the
// PKCS#7 padding. Bad padding or a plaintext that can't be XML means the
// password is wrong (or the file is not a KEM file): nothing else can tell.
func decrypt(ct []byte, password string) ([]byte, error) {
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: ciphertext is %d bytes, not a multiple of %d", ErrTruncated, len(ct), aes.BlockSize)
	}
	k := passwordKey(password)
	block, err := aes.NewCipher(k[:])
	if err != nil { // unreachable: the key is always 16 bytes
		return nil, err
	}
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, k[:]).CryptBlocks(plain, ct)
	clear(k[:])

	n := int(plain[len(plain)-1])
	if n == 0 || n > aes.BlockSize {
		return nil, ErrWrongPassword
	}
	for _, b := range plain[len(plain)-n:] {
		if int(b) != n {
			return nil, ErrWrongPassword
		}
	}
	plain = plain[:len(plain)-n]
	if !looksLikeXML(plain) {
		return nil, ErrWrongPassword
	}
	return plain, nil
}

// looksLikeXML: valid UTF-8 whose first non-blank character is '<'. Random
// bytes from a wrong key fail this with near certainty even when their
// padding happened to look right.
func looksLikeXML(b []byte) bool {
	b = bytes.TrimLeft(bytes.TrimPrefix(b, bom), " \t\r\n")
	return len(b) > 0 && b[0] == '<' && utf8.Valid(b)
}

// newDecoder returns a strict decoder that accepts only UTF-8 (and its
// ASCII subset) as declared encoding.
func newDecoder(b []byte) *xml.Decoder {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.CharsetReader = func(charset string, r io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "utf-8", "utf8", "us-ascii", "ascii":
			return r, nil
		}
		return nil, fmt.Errorf("encoding %q is not supported, KEM files are UTF-8", clip(charset))
	}
	return d
}

func attr(t xml.StartElement, local string) string {
	for _, a := range t.Attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// clip bounds file-supplied text quoted in error messages.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
