package mbus

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Errors of the record parser; matched with errors.Is.
var (
	ErrTruncated    = errors.New("record cut off")
	ErrReservedDIF  = errors.New("reserved DIF")
	ErrTooManyExt   = errors.New("more than 10 DIFE or VIFE bytes")
	ErrLVAR         = errors.New("reserved LVAR length")
	ErrTrailingData = errors.New("data left over after the last record header")
	ErrValue        = errors.New("record value not decodable")
)

// DataType is the data field of a DIF (its low four bits).
type DataType uint8

const (
	TypeNone DataType = iota
	TypeInt8
	TypeInt16
	TypeInt24
	TypeInt32
	TypeReal32
	TypeInt48
	TypeInt64
	TypeSelection // selection for readout: no data
	TypeBCD2
	TypeBCD4
	TypeBCD6
	TypeBCD8
	TypeLVAR // variable length, first data byte says how long
	TypeBCD12
	TypeSpecial // special functions (0x0F, 0x1F, 0x2F, …)
)

// dataLen is the data length of each fixed-size data type (-1: variable).
var dataLen = [16]int8{0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, -1, 6, -1}

// isBCD marks the BCD data types.
var isBCD = [16]bool{TypeBCD2: true, TypeBCD4: true, TypeBCD6: true, TypeBCD8: true, TypeBCD12: true}

// Function is the DIF function field.
type Function uint8

const (
	Instantaneous Function = iota
	Maximum
	Minimum
	ValueDuringError
)

func (f Function) String() string {
	return [...]string{"instantaneous", "maximum", "minimum", "value during error"}[f&3]
}

// Special DIFs.
const (
	difFill     = 0x2F // idle filler, skipped
	difMfr      = 0x0F // manufacturer-specific data to the end
	difMfrMore  = 0x1F // same, more records in the next telegram
	maxExtBytes = 10   // DIFEs or VIFEs per record (EN 13757-3)
)

// Record is one data record. Its slices alias the bytes being walked.
type Record struct {
	// Head is the record header as sent: DIF, DIFEs, VIF, VIFEs (and a
	// plain-text unit). Kamstrup format signatures are CRCs over these.
	Head     []byte
	Data     []byte
	DIF      byte
	Type     DataType
	Function Function
	Storage  uint64 // storage number (DIF bit 6, then 4 bits per DIFE)
	Tariff   uint32
	Subunit  uint16
	VIF      byte   // with its extension bit; 0 for a manufacturer-data record
	VIFE     []byte // every VIFE, in order
	Unit     Unit   // primary table meaning of VIF
	Ext      byte   // code (without extension bit) after VIF 0xFB/0xFD
	// Mfr is the manufacturer-specific part of the VIF chain kept raw: the
	// VIFEs after VIF 0xFF, or after a 0xFF VIFE ("02 FF 20" → 20,
	// "81 01 E7 FF 0F" → 0F).
	Mfr []byte
	// MfrData marks DIF 0x0F/0x1F: Data is manufacturer data to the end.
	MfrData bool
	// MoreFollows: DIF 0x1F, more records come in the next telegram.
	MoreFollows bool
}

// Iter walks records. The zero Iter is empty.
type Iter struct {
	head, data []byte
	h, d       int
	split      bool
	err        error
}

// Records walks the records of a full frame (headers and data interleaved).
// 0x2F fill bytes are skipped.
func Records(b []byte) Iter { return Iter{head: b, data: b} }

// CompactRecords walks data against heads, a list of record headers
// without data: each record takes the data length its DIF says.
func CompactRecords(heads, data []byte) Iter {
	return Iter{head: heads, data: data, split: true}
}

// Err returns the error that ended the walk, nil at a clean end.
func (it *Iter) Err() error { return it.err }

// Next fills r with the next record and reports whether there was one.
func (it *Iter) Next(r *Record) bool {
	if it.err != nil {
		return false
	}
	if !it.split {
		for it.h < len(it.head) && it.head[it.h] == difFill {
			it.h++
		}
		it.d = it.h
	}
	if it.h >= len(it.head) {
		if it.split && it.d < len(it.data) {
			it.err = fmt.Errorf("%w: %d bytes", ErrTrailingData, len(it.data)-it.d)
		}
		return false
	}
	start := it.h
	n, err := parseHead(it.head[it.h:], r)
	if err != nil {
		it.err = fmt.Errorf("%w (record at offset %d)", err, start)
		return false
	}
	r.Head = it.head[start : start+n]
	it.h += n
	if !it.split {
		it.d = it.h
	}
	if r.MfrData {
		r.Data = it.data[it.d:]
		it.d = len(it.data)
		it.h = len(it.head)
		if it.split && start+n != len(it.head) {
			it.err = fmt.Errorf("%w: record headers after manufacturer data (offset %d)", ErrReservedDIF, start)
			return false
		}
		return true
	}
	dl := int(dataLen[r.Type])
	if dl < 0 { // LVAR
		if it.d >= len(it.data) {
			it.err = fmt.Errorf("%w: no LVAR byte (record at offset %d)", ErrTruncated, start)
			return false
		}
		l, err := lvarLen(it.data[it.d])
		if err != nil {
			it.err = fmt.Errorf("%w (record at offset %d)", err, start)
			return false
		}
		dl = 1 + l
	}
	if len(it.data)-it.d < dl {
		it.err = fmt.Errorf("%w: %d data bytes wanted, %d left (record at offset %d)", ErrTruncated, dl, len(it.data)-it.d, start)
		return false
	}
	r.Data = it.data[it.d : it.d+dl]
	it.d += dl
	if !it.split {
		it.h = it.d
	}
	return true
}

// lvarLen returns the number of data bytes after an LVAR byte.
func lvarLen(l byte) (int, error) {
	switch {
	case l <= 0xBF: // ASCII string
		return int(l), nil
	case l >= 0xC0 && l <= 0xC9, l >= 0xD0 && l <= 0xD9: // ± BCD, 2 digits a byte
		return int(l & 0x0F), nil
	case l >= 0xE0 && l <= 0xEF: // binary number
		return int(l - 0xE0), nil
	case l >= 0xF0 && l <= 0xF4: // binary number, 4·(l−0xEC) bytes
		return 4 * int(l-0xEC), nil
	}
	return 0, fmt.Errorf("%w 0x%02X", ErrLVAR, l)
}

// parseHead reads DIF, DIFEs, VIF and VIFEs from b into r and returns
// their length.
func parseHead(b []byte, r *Record) (int, error) {
	*r = Record{}
	dif := b[0]
	r.DIF = dif
	r.Type = DataType(dif & 0x0F)
	if r.Type == TypeSpecial {
		switch dif {
		case difMfr, difMfrMore:
			r.MfrData, r.MoreFollows = true, dif == difMfrMore
			return 1, nil
		}
		return 0, fmt.Errorf("%w 0x%02X", ErrReservedDIF, dif)
	}
	r.Function = Function(dif >> 4 & 3)
	r.Storage = uint64(dif >> 6 & 1)
	i := 1
	for ext := dif&0x80 != 0; ext; i++ {
		if i > maxExtBytes {
			return 0, ErrTooManyExt
		}
		if i >= len(b) {
			return 0, fmt.Errorf("%w: DIFE missing", ErrTruncated)
		}
		e := b[i]
		k := uint(i - 1)
		r.Storage |= uint64(e&0x0F) << (1 + 4*k)
		r.Tariff |= uint32(e>>4&3) << (2 * k)
		r.Subunit |= uint16(e>>6&1) << k
		ext = e&0x80 != 0
	}
	if i >= len(b) {
		return 0, fmt.Errorf("%w: VIF missing", ErrTruncated)
	}
	vif := b[i]
	r.VIF = vif
	r.Unit = UnitOf(vif)
	i++
	if r.Unit.Kind == KindPlainText {
		// The unit follows as length-prefixed ASCII.
		if i >= len(b) || len(b)-i-1 < int(b[i]) {
			return 0, fmt.Errorf("%w: plain-text unit", ErrTruncated)
		}
		i += 1 + int(b[i])
	}
	vifeStart := i
	mfrFrom := -1
	if r.Unit.Kind == KindManufacturer {
		mfrFrom = i
	}
	for ext, n := vif&0x80 != 0, 0; ext; n++ {
		if n >= maxExtBytes {
			return 0, ErrTooManyExt
		}
		if i >= len(b) {
			return 0, fmt.Errorf("%w: VIFE missing", ErrTruncated)
		}
		e := b[i]
		if n == 0 && (r.Unit.Kind == KindExtFB || r.Unit.Kind == KindExtFD) {
			r.Ext = e & 0x7F
		}
		i++
		if e&0x7F == 0x7F && mfrFrom < 0 {
			mfrFrom = i // manufacturer-specific VIFEs follow
		}
		ext = e&0x80 != 0
	}
	r.VIFE = b[vifeStart:i]
	if mfrFrom >= 0 {
		r.Mfr = b[mfrFrom:i]
	}
	return i, nil
}

// Uint returns the data of a binary-integer record as an unsigned
// little-endian number (status words, info codes).
func (r *Record) Uint() (uint64, error) {
	switch r.Type {
	case TypeInt8, TypeInt16, TypeInt24, TypeInt32, TypeInt48, TypeInt64:
		var v uint64
		for i := len(r.Data) - 1; i >= 0; i-- {
			v = v<<8 | uint64(r.Data[i])
		}
		return v, nil
	}
	return 0, fmt.Errorf("%w: data type %d is not a binary integer", ErrValue, r.Type)
}

// Int returns the data of an integer or BCD record as a signed number.
func (r *Record) Int() (int64, error) {
	switch {
	case r.Type >= TypeInt8 && r.Type <= TypeInt64 && r.Type != TypeReal32:
		u, _ := r.Uint()
		bits := uint(8 * len(r.Data))
		return int64(u<<(64-bits)) >> (64 - bits), nil
	case isBCD[r.Type]:
		return bcd(r.Data)
	case r.Type == TypeLVAR && len(r.Data) > 0:
		l, d := r.Data[0], r.Data[1:]
		switch {
		case l >= 0xC0 && l <= 0xC9:
			return bcd(d)
		case l >= 0xD0 && l <= 0xD9:
			v, err := bcd(d)
			return -v, err
		case l >= 0xE0 && l <= 0xE8:
			var v uint64
			for i := len(d) - 1; i >= 0; i-- {
				v = v<<8 | uint64(d[i])
			}
			if len(d) == 0 {
				return 0, nil
			}
			bits := uint(8 * len(d))
			return int64(v<<(64-bits)) >> (64 - bits), nil
		}
	}
	return 0, fmt.Errorf("%w: data type %d is not an integer", ErrValue, r.Type)
}

// bcd decodes little-endian packed BCD; a top nibble F means negative.
func bcd(b []byte) (int64, error) {
	var v int64
	neg := false
	for i := len(b) - 1; i >= 0; i-- {
		hi, lo := b[i]>>4, b[i]&0x0F
		if i == len(b)-1 && hi == 0x0F {
			neg, hi = true, 0
		}
		if hi > 9 || lo > 9 {
			return 0, fmt.Errorf("%w: %X is not BCD", ErrValue, b)
		}
		v = v*100 + int64(hi)*10 + int64(lo)
	}
	if neg {
		v = -v
	}
	return v, nil
}

// Float returns the numeric value unscaled: integers, BCD and 32-bit reals.
func (r *Record) Float() (float64, error) {
	if r.Type == TypeReal32 {
		if len(r.Data) != 4 {
			return 0, fmt.Errorf("%w: real needs 4 bytes", ErrValue)
		}
		u := uint32(r.Data[0]) | uint32(r.Data[1])<<8 | uint32(r.Data[2])<<16 | uint32(r.Data[3])<<24
		v := float64(math.Float32frombits(u))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			// No reading is infinite; NaN/Inf mark a value the meter could not give.
			return 0, fmt.Errorf("%w: real %X is not a finite number", ErrValue, r.Data)
		}
		return v, nil
	}
	v, err := r.Int()
	return float64(v), err
}

// pow10 covers every exponent the primary VIF table produces.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// Scaled returns the value in Unit.Sym: raw × 10^Unit.Exp. Negative
// exponents divide, so 8915 × 10⁻³ prints as 8.915.
func (r *Record) Scaled() (float64, error) {
	v, err := r.Float()
	if err != nil {
		return 0, err
	}
	return Scale(v, r.Unit.Exp), nil
}

// Scale multiplies v by 10^exp, dividing for negative exponents so that
// decimal readings stay exact in print.
func Scale(v float64, exp int8) float64 {
	switch {
	case exp < 0 && int(-exp) < len(pow10):
		return v / pow10[-exp]
	case exp >= 0 && int(exp) < len(pow10):
		return v * pow10[exp]
	}
	return v * math.Pow10(int(exp))
}

// Date decodes a type G date (2 bytes) or type F date and time (4 bytes),
// in loc (nil: UTC). Years are 2000 + the 7-bit year field.
func (r *Record) Date(loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	d := r.Data
	switch len(d) {
	case 2:
		day, month := int(d[0]&0x1F), int(d[1]&0x0F)
		year := 2000 + int(d[0]&0xE0>>5|d[1]&0xF0>>1)
		if !validDate(year, month, day) {
			return time.Time{}, fmt.Errorf("%w: %X is no type G date", ErrValue, d)
		}
		return time.Date(year, time.Month(month), day, 0, 0, 0, 0, loc), nil
	case 4:
		if d[0]&0x80 != 0 {
			return time.Time{}, fmt.Errorf("%w: type F date marked invalid", ErrValue)
		}
		minute, hour := int(d[0]&0x3F), int(d[1]&0x1F)
		day, month := int(d[2]&0x1F), int(d[3]&0x0F)
		year := 2000 + int(d[2]&0xE0>>5|d[3]&0xF0>>1)
		if !validDate(year, month, day) || minute > 59 || hour > 23 {
			return time.Time{}, fmt.Errorf("%w: %X is no type F date", ErrValue, d)
		}
		return time.Date(year, time.Month(month), day, hour, minute, 0, 0, loc), nil
	}
	return time.Time{}, fmt.Errorf("%w: %d bytes are no date", ErrValue, len(d))
}

func validDate(y, m, d int) bool {
	return m >= 1 && m <= 12 && d >= 1 && d <= time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// CheckHeads verifies that heads is a well-formed list of record headers
// without data (a compact frame format) and returns how many records it has.
func CheckHeads(heads []byte) (int, error) {
	n := 0
	var r Record
	for off := 0; off < len(heads); n++ {
		l, err := parseHead(heads[off:], &r)
		if err != nil {
			return n, fmt.Errorf("%w (record header at offset %d)", err, off)
		}
		if r.MfrData && off+l != len(heads) {
			return n, fmt.Errorf("%w: record headers after manufacturer data (offset %d)", ErrReservedDIF, off)
		}
		off += l
	}
	return n, nil
}
