// Package kamstrup turns decrypted Kamstrup application data (full frames,
// CI 0x78, and compact frames, CI 0x79) into meter readings: the format
// table and learned formats, meter models, values and info-code alarms.
package kamstrup

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Quantity names one value a Kamstrup water meter reports.
type Quantity uint8

// The quantities, in the order they are printed. "Day" values cover the last
// day (record storage 2), "month" values the last month (storage 1).
const (
	Total               Quantity = iota // volume register
	Target                              // volume on the target date (1st of the month)
	Flow                                // current flow
	MaxFlow                             // maximum flow, last day
	MinFlow                             // minimum flow, last day
	MaxFlowMonth                        // maximum flow, last month
	MinWaterTemp                        // minimum water temperature, last day
	MinWaterTempMonth                   // minimum water temperature, last month
	MaxWaterTemp                        // maximum water temperature, last day
	AmbientTemp                         // average ambient temperature (Kamstrup record)
	MinAmbientTemp                      // minimum ambient temperature, last day
	MinAmbientTempMonth                 // minimum ambient temperature, last month
	MaxAmbientTempMonth                 // maximum ambient temperature, last month
	NumQuantities
)

// Class is what kind of physical value a quantity is; publishers map it to
// their own vocabulary (device class, unit, state class).
type Class uint8

const (
	Volume      Class = iota // m³
	VolumeFlow               // m³/h
	Temperature              // °C
)

// QuantityInfo describes a quantity: its JSON key (SI-style unit in the
// name), a human name and its class.
type QuantityInfo struct {
	Key   string // e.g. "total_m3"
	Name  string // e.g. "Total volume"
	Class Class
}

// Quantities is the table of every quantity, indexed by Quantity.
var Quantities = [NumQuantities]QuantityInfo{
	Total:               {"total_m3", "Total volume", Volume},
	Target:              {"target_m3", "Target volume", Volume},
	Flow:                {"flow_m3h", "Flow", VolumeFlow},
	MaxFlow:             {"max_flow_m3h", "Max flow (day)", VolumeFlow},
	MinFlow:             {"min_flow_m3h", "Min flow (day)", VolumeFlow},
	MaxFlowMonth:        {"max_flow_month_m3h", "Max flow (month)", VolumeFlow},
	MinWaterTemp:        {"min_water_temperature_c", "Water temperature (day min)", Temperature},
	MinWaterTempMonth:   {"min_water_temperature_month_c", "Water temperature (month min)", Temperature},
	MaxWaterTemp:        {"max_water_temperature_c", "Water temperature (day max)", Temperature},
	AmbientTemp:         {"ambient_temperature_c", "Ambient temperature", Temperature},
	MinAmbientTemp:      {"min_ambient_temperature_c", "Ambient temperature (day min)", Temperature},
	MinAmbientTempMonth: {"min_ambient_temperature_month_c", "Ambient temperature (month min)", Temperature},
	MaxAmbientTempMonth: {"max_ambient_temperature_month_c", "Ambient temperature (month max)", Temperature},
}

// Value is one reported quantity. Known is false when the meter said "not
// measured" (an 8-bit temperature of 127): the entity exists, its state is
// unknown.
type Value struct {
	V     float64
	Known bool
}

// Alarm is one info-code flag.
type Alarm uint8

const (
	Dry Alarm = iota
	Reverse
	Leak
	Burst
	Tamper     // flowIQ 2200 (32-bit info code) only
	LowBattery // flowIQ 2200 (32-bit info code) only
	NumAlarms
)

// AlarmInfo describes an alarm flag: the name printed in "alarms", the JSON
// key stem and a human name.
type AlarmInfo struct {
	Flag string // "DRY"
	Key  string // "dry" → "dry_duration"
	Name string // "Dry"
}

// Alarms is the table of alarm flags, indexed by Alarm.
var Alarms = [NumAlarms]AlarmInfo{
	Dry:        {"DRY", "dry", "Dry"},
	Reverse:    {"REVERSE", "reverse", "Reverse flow"},
	Leak:       {"LEAK", "leak", "Leak"},
	Burst:      {"BURST", "burst", "Burst"},
	Tamper:     {"TAMPER", "tamper", "Tamper"},
	LowBattery: {"LOW_BATTERY", "low_battery", "Low battery"},
}

// DurationText names the 3-bit "how long in the last 30 days" classes.
var DurationText = [8]string{"none", "1-8 hours", "9-24 hours", "2-3 days", "4-7 days", "8-14 days", "15-21 days", "22-31 days"}

// InfoCode is the meter's status word and the layout it came in.
type InfoCode struct {
	Raw  uint32
	Bits uint8 // 16 (02 FF 20) or 32 (04 FF 23); 0 = not reported
}

// infoLayout says, for one info-code width, where each alarm's "active now"
// bit and 30-day history field sit (-1: not carried), and which bits are
// neither (reported raw as other flags).
type infoLayout struct {
	active  [NumAlarms]int8
	history [NumAlarms]int8
	known   uint32
}

var infoLayouts = map[uint8]infoLayout{
	16: {
		active:  [NumAlarms]int8{0, 1, 2, 3, -1, -1},
		history: [NumAlarms]int8{4, 7, 10, 13, -1, -1},
		known:   0xFFFF,
	},
	32: {
		active:  [NumAlarms]int8{0, 1, 2, 3, 4, 5},
		history: [NumAlarms]int8{-1, -1, -1, -1, -1, -1},
		known:   0x3F,
	},
}

// Supports reports whether this info code carries alarm a at all.
func (c InfoCode) Supports(a Alarm) bool {
	l, ok := infoLayouts[c.Bits]
	return ok && l.active[a] >= 0
}

// Active reports whether alarm a is active now.
func (c InfoCode) Active(a Alarm) bool {
	l, ok := infoLayouts[c.Bits]
	return ok && l.active[a] >= 0 && c.Raw>>uint(l.active[a])&1 != 0
}

// Duration returns the 30-day duration class (0–7, see DurationText) of
// alarm a, and false when this info code has no history for it.
func (c InfoCode) Duration(a Alarm) (uint8, bool) {
	l, ok := infoLayouts[c.Bits]
	if !ok || l.history[a] < 0 {
		return 0, false
	}
	return uint8(c.Raw>>uint(l.history[a])) & 7, true
}

// Other returns the bits this project has no name for, raw.
func (c InfoCode) Other() uint32 {
	l := infoLayouts[c.Bits]
	return c.Raw &^ l.known
}

// FrameKind tells a full frame from a compact one.
type FrameKind uint8

const (
	Full FrameKind = iota
	Compact
)

func (k FrameKind) String() string {
	if k == Compact {
		return "compact"
	}
	return "full"
}

// Reading is one decoded telegram of one meter.
type Reading struct {
	ID           wmbus.ID
	Manufacturer wmbus.Manufacturer
	Version      uint8
	DeviceType   uint8
	Model        string // "flowIQ 2101"; "unknown" when the version is not in the table
	Kind         FrameKind
	AccessNumber uint8
	Time         time.Time // when it was received
	// Radio is how the telegram was heard: by the receiver that heard it
	// best when several did.
	Radio wmbus.Radio
	// Receivers are every receiver that heard the telegram, in the order
	// their copies arrived; empty when frames come from one unnamed source.
	Receivers []wmbus.Radio

	values  [NumQuantities]Value
	present uint32 // bit q set: quantity q was reported

	TargetDate time.Time // zero when not reported
	Info       InfoCode
	// ManufacturerData holds manufacturer-specific records kept raw
	// (e.g. 06 FF 1B), data bytes only, in frame order.
	ManufacturerData []byte
	// Unmapped counts records the telegram carried that have no place in
	// a Reading (a record kind this package does not know).
	Unmapped int
}

// Set records quantity q.
func (r *Reading) Set(q Quantity, v Value) {
	r.values[q] = v
	r.present |= 1 << q
}

// Get returns quantity q and whether the telegram reported it.
func (r *Reading) Get(q Quantity) (Value, bool) {
	return r.values[q], r.present&(1<<q) != 0
}

// Has reports whether the telegram reported quantity q.
func (r *Reading) Has(q Quantity) bool { return r.present&(1<<q) != 0 }

// ActiveAlarms returns the flags active now, in table order.
func (r *Reading) ActiveAlarms() []string {
	out := []string{}
	for a := range NumAlarms {
		if r.Info.Active(a) {
			out = append(out, Alarms[a].Flag)
		}
	}
	return out
}

// MarshalJSON is AppendJSON for encoding/json.
func (r Reading) MarshalJSON() ([]byte, error) { return r.AppendJSON(make([]byte, 0, 512)), nil }

// AppendJSON appends the reading's one JSON encoding — used for MQTT state,
// JSON lines, the state file and every API — as one flat object: identity,
// frame, every reported value in SI-style units (unit in the key), alarms
// and radio data. Unknown values are null; unreported ones are absent.
// ParseReading reads it back.
func (r *Reading) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":"`...)
	b = r.ID.Append(b)
	b = append(b, `","manufacturer":"`...)
	b = append(b, r.Manufacturer.String()...)
	b = append(b, `","model":`...)
	b = appendJSONString(b, r.Model)
	b = append(b, `,"version":"0x`...)
	b = appendHexByte(b, r.Version)
	b = append(b, `","device_type":"0x`...)
	b = appendHexByte(b, r.DeviceType)
	b = append(b, `","kind":"`...)
	b = append(b, r.Kind.String()...)
	b = append(b, `","access_number":`...)
	b = strconv.AppendUint(b, uint64(r.AccessNumber), 10)
	if !r.Time.IsZero() {
		b = append(b, `,"time":"`...)
		b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	for q := range NumQuantities {
		v, ok := r.Get(q)
		if !ok {
			continue
		}
		b = append(b, ',', '"')
		b = append(b, Quantities[q].Key...)
		b = append(b, '"', ':')
		if v.Known {
			b = strconv.AppendFloat(b, v.V, 'f', -1, 64)
		} else {
			b = append(b, "null"...)
		}
	}
	if !r.TargetDate.IsZero() {
		b = append(b, `,"target_date":"`...)
		b = r.TargetDate.AppendFormat(b, time.DateOnly)
		b = append(b, '"')
	}
	b = r.Info.appendJSON(b)
	if len(r.ManufacturerData) > 0 {
		b = append(b, `,"manufacturer_data":"`...)
		b = hex.AppendEncode(b, r.ManufacturerData)
		b = append(b, '"')
	}
	if r.Unmapped > 0 {
		b = append(b, `,"unmapped_records":`...)
		b = strconv.AppendInt(b, int64(r.Unmapped), 10)
	}
	if r.Radio.Mode != "" {
		b = append(b, `,"mode":`...)
		b = appendJSONString(b, r.Radio.Mode)
	}
	if r.Radio.Format != "" {
		b = append(b, `,"frame_format":`...)
		b = appendJSONString(b, r.Radio.Format)
	}
	b = appendReceiver(b, &r.Radio)
	if len(r.Receivers) > 0 {
		b = append(b, `,"receivers":[`...)
		for i := range r.Receivers {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"receiver":`...)
			b = appendJSONString(b, r.Receivers[i].Receiver)
			b = appendReceiver(b, &wmbus.Radio{LevelDBFS: r.Receivers[i].LevelDBFS,
				SNRdB: r.Receivers[i].SNRdB, OffsetHz: r.Receivers[i].OffsetHz, DeviceLevel: r.Receivers[i].DeviceLevel})
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendReceiver appends what a receiver measured and its name, each field
// only when known.
func appendReceiver(b []byte, r *wmbus.Radio) []byte {
	if r.Measured() {
		b = append(b, `,"level_dbfs":`...)
		b = strconv.AppendFloat(b, round1(r.LevelDBFS), 'f', -1, 64)
		b = append(b, `,"snr_db":`...)
		b = strconv.AppendFloat(b, round1(r.SNRdB), 'f', -1, 64)
		b = append(b, `,"offset_hz":`...)
		b = strconv.AppendFloat(b, float64(int64(r.OffsetHz)), 'f', -1, 64)
	}
	if r.DeviceLevel != 0 {
		b = append(b, `,"device_level":`...)
		b = strconv.AppendInt(b, int64(r.DeviceLevel), 10)
	}
	if r.Receiver != "" {
		b = append(b, `,"receiver":`...)
		b = appendJSONString(b, r.Receiver)
	}
	return b
}

// AppendText appends the reading as one line of key=value pairs for people
// (decode and listen without --json); the same fields as AppendJSON.
func (r *Reading) AppendText(b []byte) []byte {
	b = append(b, r.ID.String()...)
	b = append(b, ' ')
	b = append(b, r.Manufacturer.String()...)
	b = append(b, ' ')
	b = strconv.AppendQuote(b, r.Model)
	b = append(b, ' ')
	b = append(b, r.Kind.String()...)
	b = append(b, " access="...)
	b = strconv.AppendUint(b, uint64(r.AccessNumber), 10)
	for q := range NumQuantities {
		v, ok := r.Get(q)
		if !ok {
			continue
		}
		b = append(b, ' ')
		b = append(b, Quantities[q].Key...)
		b = append(b, '=')
		if v.Known {
			b = strconv.AppendFloat(b, v.V, 'f', -1, 64)
		} else {
			b = append(b, "unknown"...)
		}
	}
	if !r.TargetDate.IsZero() {
		b = append(b, " target_date="...)
		b = r.TargetDate.AppendFormat(b, time.DateOnly)
	}
	if r.Info.Bits != 0 {
		b = fmt.Appendf(b, " info_code=0x%0*X alarms=", r.Info.Bits/4, r.Info.Raw)
		if a := r.ActiveAlarms(); len(a) > 0 {
			b = append(b, strings.Join(a, ",")...)
		} else {
			b = append(b, "none"...)
		}
		for a := range NumAlarms {
			if dur, ok := r.Info.Duration(a); ok && dur != 0 {
				b = append(b, ' ')
				b = append(b, Alarms[a].Key...)
				b = append(b, "_duration="...)
				b = strconv.AppendQuote(b, DurationText[dur])
			}
		}
		if o := r.Info.Other(); o != 0 {
			b = fmt.Appendf(b, " other_flags=0x%X", o)
		}
	}
	if len(r.ManufacturerData) > 0 {
		b = append(b, " manufacturer_data="...)
		b = hex.AppendEncode(b, r.ManufacturerData)
	}
	if r.Radio.Format != "" {
		b = append(b, " frame_format="...)
		b = append(b, r.Radio.Format...)
	}
	return b
}

// appendJSON appends the info code's fields: the raw code, the active
// alarms, each alarm's 30-day history where the layout has one, and bits
// without a name.
func (c InfoCode) appendJSON(b []byte) []byte {
	if c.Bits == 0 {
		return b
	}
	b = append(b, `,"info_code":`...)
	b = strconv.AppendUint(b, uint64(c.Raw), 10)
	b = append(b, `,"alarms":[`...)
	n := 0
	for a := range NumAlarms {
		if c.Active(a) {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, Alarms[a].Flag...)
			b = append(b, '"')
			n++
		}
	}
	b = append(b, ']')
	for a := range NumAlarms {
		if d, ok := c.Duration(a); ok {
			b = append(b, ',', '"')
			b = append(b, Alarms[a].Key...)
			b = append(b, `_duration":"`...)
			b = append(b, DurationText[d]...)
			b = append(b, '"')
		}
	}
	if o := c.Other(); o != 0 {
		b = append(b, `,"other_flags":`...)
		b = strconv.AppendUint(b, uint64(o), 10)
	}
	return b
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		default:
			b = append(b, c)
		}
		i++
	}
	return append(b, '"')
}

func appendHexByte(b []byte, v uint8) []byte {
	const digits = "0123456789ABCDEF"
	return append(b, digits[v>>4], digits[v&15])
}

func round1(v float64) float64 {
	if v < 0 {
		return -float64(int64(-v*10+0.5)) / 10
	}
	return float64(int64(v*10+0.5)) / 10
}
