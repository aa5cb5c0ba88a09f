package iq

import (
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"strings"
)

// Format is the layout of interleaved I/Q samples in a recording or on the wire.
type Format uint8

// Sample formats. The zero value means "not given": Open infers it from the
// file extension and falls back to CU8, the RTL-SDR native format.
const (
	FormatAuto Format = iota
	CU8               // unsigned 8 bit, (v−127.5)/127.5; what rtl_sdr and rtl_tcp deliver
	CS8               // signed 8 bit, v/128
	CS16              // signed 16 bit little-endian, v/32768
	CF32              // float32 little-endian, as is
)

// formatSpec describes one format; the table below is the single place
// that knows sizes, names, extensions and converters.
type formatSpec struct {
	name    string
	size    int      // bytes per complex sample (I and Q)
	exts    []string // file extensions that imply this format
	convert func(dst []complex64, src []byte) int
}

var formatTable = [...]formatSpec{
	FormatAuto: {name: "auto"},
	CU8:        {name: "cu8", size: 2, exts: []string{".cu8"}, convert: convertCU8},
	CS8:        {name: "cs8", size: 2, exts: []string{".cs8"}, convert: convertCS8},
	CS16:       {name: "cs16", size: 4, exts: []string{".cs16"}, convert: convertCS16},
	CF32:       {name: "cf32", size: 8, exts: []string{".cf32", ".cfile", ".fc32"}, convert: convertCF32},
}

func (f Format) valid() bool { return f > FormatAuto && int(f) < len(formatTable) }

// String returns the usual short name ("cu8", "cs16", ...).
func (f Format) String() string {
	if int(f) < len(formatTable) {
		return formatTable[f].name
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// SampleSize returns the bytes one complex sample takes, 0 for FormatAuto.
func (f Format) SampleSize() int {
	if int(f) < len(formatTable) {
		return formatTable[f].size
	}
	return 0
}

// Convert converts whole samples from src into dst and returns how many it
// wrote: min(len(dst), len(src)/SampleSize). It allocates nothing.
func (f Format) Convert(dst []complex64, src []byte) int {
	if !f.valid() {
		return 0
	}
	return formatTable[f].convert(dst, src)
}

// ParseFormat accepts "cu8", "cs8", "cs16", "cf32" (any case) and "" or
// "auto" for FormatAuto.
func ParseFormat(s string) (Format, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return FormatAuto, nil
	}
	for i, spec := range formatTable {
		if spec.name == t {
			return Format(i), nil
		}
	}
	return FormatAuto, fmt.Errorf("%w %q: use cu8, cs8, cs16 or cf32", ErrFormat, s)
}

// formatFromExt returns the format a file name implies, or FormatAuto.
func formatFromExt(path string) Format {
	ext := strings.ToLower(filepath.Ext(path))
	for i, spec := range formatTable {
		for _, e := range spec.exts {
			if e == ext {
				return Format(i)
			}
		}
	}
	return FormatAuto
}

// Lookup tables: one float per byte value beats a subtract and a multiply
// per component, and 2×1 KiB stays in L1.
var cu8LUT, cs8LUT [256]float32

func init() {
	for i := range 256 {
		cu8LUT[i] = (float32(i) - 127.5) / 127.5
		cs8LUT[i] = float32(int8(uint8(i))) / 128
	}
}

func convertCU8(dst []complex64, src []byte) int { return convertLUT8(dst, src, &cu8LUT) }
func convertCS8(dst []complex64, src []byte) int { return convertLUT8(dst, src, &cs8LUT) }

// The loops below advance slices under a length condition so the compiler
// drops every bounds check from the body.
func convertLUT8(dst []complex64, src []byte, lut *[256]float32) int {
	n := min(len(dst), len(src)/2)
	for d := dst[:n]; len(d) > 0 && len(src) >= 2; d, src = d[1:], src[2:] {
		d[0] = complex(lut[src[0]], lut[src[1]])
	}
	return n
}

// cs16 converts by multiplication: a 65536-entry table (256 KiB) would spill
// out of L1/L2 and lose to one int→float conversion.
func convertCS16(dst []complex64, src []byte) int {
	const scale = 1.0 / 32768
	n := min(len(dst), len(src)/4)
	for d := dst[:n]; len(d) > 0 && len(src) >= 4; d, src = d[1:], src[4:] {
		re := int16(uint16(src[0]) | uint16(src[1])<<8)
		im := int16(uint16(src[2]) | uint16(src[3])<<8)
		d[0] = complex(float32(re)*scale, float32(im)*scale)
	}
	return n
}

func convertCF32(dst []complex64, src []byte) int {
	n := min(len(dst), len(src)/8)
	for d := dst[:n]; len(d) > 0 && len(src) >= 8; d, src = d[1:], src[8:] {
		re := math.Float32frombits(binary.LittleEndian.Uint32(src[0:4]))
		im := math.Float32frombits(binary.LittleEndian.Uint32(src[4:8]))
		d[0] = complex(re, im)
	}
	return n
}
