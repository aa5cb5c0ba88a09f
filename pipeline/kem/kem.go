// Package kem reads Kamstrup KEM and KEM2 key files: the password-encrypted
// XML documents in which utilities hand out meter keys, bare or zipped.
package kem

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Errors callers tell apart with errors.Is. Messages never carry key
// material or the password.
var (
	ErrWrongPassword = errors.New("wrong password or not a KEM file")
	ErrNoKEMInZip    = errors.New("zip holds no .kem file")
	ErrNoKeys        = errors.New("KEM file holds no meter key")
	ErrTruncated     = errors.New("file is truncated")
	// ErrFormat: the file decodes but is not shaped like a KEM file.
	ErrFormat = errors.New("malformed KEM file")
)

// maxFileSize bounds what Open reads and what a zip entry may inflate to;
// real KEM files are a few kilobytes, even for thousands of meters a few MB.
const maxFileSize = 64 << 20

// Meter is one meter of a KEM file.
type Meter struct {
	Serial string   // serial number as printed in the file
	ID     wmbus.ID // the wM-Bus address; meaningful only when HasID
	HasID  bool     // Serial is an 8-digit wM-Bus ID
	Key    [16]byte // AES-128 key (DEK); meaningful only when HasKey
	HasKey bool

	MeterName       string // as in the file: "FLOWIQ 21XX", "MC21"
	Model           string // friendly model name, "" when MeterName is not in the table
	ConsumptionType string // "VolumeCold", "VolumeHeat", …
	ConfigNo        string
	TypeNo          string
	VendorID        string // "KAM"
}

// IDError says why Serial can't be used as a wM-Bus ID; nil when HasID.
func (m Meter) IDError() error {
	if m.HasID {
		return nil
	}
	_, err := wmbus.ParseID(m.Serial)
	if err == nil { // a Meter built by hand without HasID
		return nil
	}
	return fmt.Errorf("serial %q can't be used as a wM-Bus ID: %w", m.Serial, err)
}

// String describes the meter without its key, so that %v and %+v never print
// key material.
func (m Meter) String() string {
	key := "no key"
	if m.HasKey {
		key = "key present"
	}
	name := m.Model
	if name == "" {
		name = m.MeterName
	}
	return fmt.Sprintf("meter %s (%s, %s)", m.Serial, name, key)
}

// GoString keeps %#v from printing the key as well.
func (m Meter) GoString() string { return "kem.Meter{" + m.String() + "}" }

// Open reads and decrypts the KEM file at path (.kem, .zip.kem, .zip, .kem2).
func Open(path, password string) ([]Meter, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // already names the path
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: %w: larger than %d MiB, not a KEM file", path, ErrFormat, maxFileSize>>20)
	}
	ms, err := Parse(data, password)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ms, nil
}

// A zip starts with a local file header, or, when empty, with the end of
// central directory record.
var (
	zipMagic      = []byte("PK\x03\x04")
	emptyZipMagic = []byte("PK\x05\x06")
)

// Parse decrypts a KEM file's bytes: a zip holding one or more .kem/.kem2
// documents, or one such document. It fails with ErrNoKeys when no meter
// has a key, since such a file is of no use for decoding.
func Parse(data []byte, password string) ([]Meter, error) {
	var ms []Meter
	if bytes.HasPrefix(data, zipMagic) || bytes.HasPrefix(data, emptyZipMagic) {
		docs, err := unzip(data)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			m, err := parseDocument(d.data, password)
			if err != nil && len(docs) > 1 { // name the entry only when there is a choice
				return nil, fmt.Errorf("zip entry %q: %w", d.name, err)
			}
			if err != nil {
				return nil, err
			}
			ms = append(ms, m...)
		}
	} else {
		m, err := parseDocument(data, password)
		if err != nil {
			return nil, err
		}
		ms = m
	}
	ms, err := dedupe(ms)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w: it lists no meters", ErrNoKeys)
	}
	for _, m := range ms {
		if m.HasKey {
			return ms, nil
		}
	}
	return nil, fmt.Errorf("%w: none of its %d meters has a DEK", ErrNoKeys, len(ms))
}

// dedupe drops exact repeats of a meter (a zip may carry overlapping
// documents) and rejects a serial listed twice with different keys.
func dedupe(ms []Meter) ([]Meter, error) {
	seen := make(map[string]int, len(ms))
	out := ms[:0]
	for _, m := range ms {
		i, ok := seen[m.Serial]
		if !ok {
			seen[m.Serial] = len(out)
			out = append(out, m)
			continue
		}
		if out[i].HasKey != m.HasKey || out[i].Key != m.Key {
			return nil, fmt.Errorf("%w: meter %s is listed twice with different keys", ErrFormat, m.Serial)
		}
	}
	return out, nil
}

type document struct {
	name string
	data []byte
}

// unzip returns the .kem and .kem2 entries of a zip, in name order.
func unzip(data []byte) ([]document, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		// The local header magic was there, so a missing central
		// directory means the file was cut short.
		return nil, fmt.Errorf("%w: zip archive: %v", ErrTruncated, err)
	}
	var docs []document
	var others []string
	budget := int64(maxFileSize) // for all entries together, not each
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		ext := strings.ToLower(path.Ext(f.Name))
		if ext != ".kem" && ext != ".kem2" || strings.HasPrefix(f.Name, "__MACOSX/") {
			others = append(others, f.Name)
			continue
		}
		b, err := readEntry(f, budget)
		if err != nil {
			return nil, err
		}
		budget -= int64(len(b))
		docs = append(docs, document{name: f.Name, data: b})
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%w (it holds %s)", ErrNoKEMInZip, listNames(others))
	}
	sort.Slice(docs, func(i, j int) bool { return docs[i].name < docs[j].name })
	return docs, nil
}

// readEntry inflates one entry, at most budget bytes: what is left of
// maxFileSize for the whole archive, so that many entries cannot add up
// to gigabytes.
func readEntry(f *zip.File, budget int64) ([]byte, error) {
	tooBig := func() error {
		return fmt.Errorf("zip entry %q: %w: the .kem entries inflate to more than %d MiB in all, not a KEM file", f.Name, ErrFormat, maxFileSize>>20)
	}
	if f.UncompressedSize64 > uint64(budget) {
		return nil, tooBig()
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("zip entry %q: %w", f.Name, zipErr(err))
	}
	defer rc.Close()
	// The header's size can lie; the limit holds regardless.
	b, err := io.ReadAll(io.LimitReader(rc, budget+1))
	if err != nil {
		return nil, fmt.Errorf("zip entry %q: %w", f.Name, zipErr(err))
	}
	if int64(len(b)) > budget {
		return nil, tooBig()
	}
	return b, nil
}

// zipErr classifies an entry read error: a short or corrupt stream is a
// truncated file, an unsupported method is a format problem.
func zipErr(err error) error {
	switch {
	case errors.Is(err, zip.ErrAlgorithm):
		return fmt.Errorf("%w: %v", ErrFormat, err)
	default:
		return fmt.Errorf("%w: %v", ErrTruncated, err)
	}
}

// listNames renders a zip's other entries for an error message, bounded so
// a hostile archive can't produce a megabyte of error text.
func listNames(names []string) string {
	if len(names) == 0 {
		return "nothing"
	}
	const max = 8
	var b strings.Builder
	for i, n := range names {
		if i == max {
			fmt.Fprintf(&b, " and %d more", len(names)-max)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if len(n) > 80 {
			n = n[:80] + "…"
		}
		fmt.Fprintf(&b, "%q", n)
	}
	return b.String()
}

// Usable returns the meters of a KEM file that can go into a meter list —
// those with a wM-Bus ID and a key — named source in messages, and a
// message for each meter that can't.
func Usable(ms []Meter, source string) ([]meters.Meter, []string) {
	out := make([]meters.Meter, 0, len(ms))
	var skipped []string
	for _, m := range ms {
		switch {
		case !m.HasID:
			skipped = append(skipped, fmt.Sprintf("%s: meter %s skipped: %v", source, m.Serial, m.IDError()))
		case !m.HasKey:
			skipped = append(skipped, fmt.Sprintf("%s: meter %s skipped: the file has no key for it", source, m.Serial))
		default:
			out = append(out, meters.Meter{ID: m.ID, Key: m.Key, HasKey: true, Model: m.Model, Enabled: true, Source: source})
		}
	}
	return out, skipped
}
