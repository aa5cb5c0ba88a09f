package kamstrup

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// ErrReadingJSON marks a reading that cannot be read back from its JSON.
var ErrReadingJSON = errors.New("not a reading")

// ParseReading reads back what MarshalJSON wrote, so that the last reading
// of each meter can be kept across restarts in the same form it is
// published in. Fields it does not know are ignored.
func ParseReading(b []byte) (Reading, error) {
	var m map[string]json.RawMessage
	var r Reading
	if err := json.Unmarshal(b, &m); err != nil {
		return r, fmt.Errorf("%w: %v", ErrReadingJSON, err)
	}
	str := func(k string) string {
		var s string
		if v, ok := m[k]; ok {
			_ = json.Unmarshal(v, &s)
		}
		return s
	}
	hexByte := func(k string) (uint8, error) {
		v, err := strconv.ParseUint(strings.TrimPrefix(str(k), "0x"), 16, 8)
		if err != nil {
			return 0, fmt.Errorf("%w: %s %q", ErrReadingJSON, k, str(k))
		}
		return uint8(v), nil
	}
	id, err := wmbus.ParseID(str("id"))
	if err != nil {
		return r, fmt.Errorf("%w: %v", ErrReadingJSON, err)
	}
	r.ID = id
	man := str("manufacturer")
	if len(man) != 3 {
		return r, fmt.Errorf("%w: manufacturer %q", ErrReadingJSON, man)
	}
	r.Manufacturer = wmbus.Manufacturer(uint16(man[0]-64)<<10 | uint16(man[1]-64)<<5 | uint16(man[2]-64))
	if r.Version, err = hexByte("version"); err != nil {
		return r, err
	}
	if r.DeviceType, err = hexByte("device_type"); err != nil {
		return r, err
	}
	r.Model = str("model")
	if str("kind") == "compact" {
		r.Kind = Compact
	}
	if v, ok := m["access_number"]; ok {
		var n uint8
		if err := json.Unmarshal(v, &n); err != nil {
			return r, fmt.Errorf("%w: access_number: %v", ErrReadingJSON, err)
		}
		r.AccessNumber = n
	}
	if s := str("time"); s != "" {
		if r.Time, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return r, fmt.Errorf("%w: time: %v", ErrReadingJSON, err)
		}
	}
	for q := range NumQuantities {
		v, ok := m[Quantities[q].Key]
		if !ok {
			continue
		}
		var f *float64
		if err := json.Unmarshal(v, &f); err != nil {
			return r, fmt.Errorf("%w: %s: %v", ErrReadingJSON, Quantities[q].Key, err)
		}
		if f == nil {
			r.Set(q, Value{})
		} else {
			r.Set(q, Value{V: *f, Known: true})
		}
	}
	if s := str("target_date"); s != "" {
		if r.TargetDate, err = time.Parse(time.DateOnly, s); err != nil {
			return r, fmt.Errorf("%w: target_date: %v", ErrReadingJSON, err)
		}
	}
	if v, ok := m["info_code"]; ok {
		if err := json.Unmarshal(v, &r.Info.Raw); err != nil {
			return r, fmt.Errorf("%w: info_code: %v", ErrReadingJSON, err)
		}
		// Only the 16-bit layout carries 30-day history fields.
		r.Info.Bits = 32
		if _, ok := m[Alarms[Dry].Key+"_duration"]; ok {
			r.Info.Bits = 16
		}
	}
	if s := str("manufacturer_data"); s != "" {
		if r.ManufacturerData, err = hex.DecodeString(s); err != nil {
			return r, fmt.Errorf("%w: manufacturer_data: %v", ErrReadingJSON, err)
		}
	}
	r.Radio.Mode, r.Radio.Format = str("mode"), str("frame_format")
	parseReceiver(m, &r.Radio)
	return r, parseReceivers(m, &r)
}

// parseReceivers reads the list of receivers that heard the telegram.
func parseReceivers(m map[string]json.RawMessage, r *Reading) error {
	v, ok := m["receivers"]
	if !ok {
		return nil
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		return fmt.Errorf("%w: receivers: %v", ErrReadingJSON, err)
	}
	r.Receivers = make([]wmbus.Radio, len(list))
	for i, x := range list {
		parseReceiver(x, &r.Receivers[i])
	}
	return nil
}

// parseReceiver reads what appendReceiver wrote.
func parseReceiver(m map[string]json.RawMessage, r *wmbus.Radio) {
	if v, ok := m["device_level"]; ok {
		_ = json.Unmarshal(v, &r.DeviceLevel)
	}
	if v, ok := m["receiver"]; ok {
		_ = json.Unmarshal(v, &r.Receiver)
	}
	// rssi_dbfs: the level's name in state files of earlier versions.
	for k, dst := range map[string]*float64{"rssi_dbfs": &r.LevelDBFS, "level_dbfs": &r.LevelDBFS, "snr_db": &r.SNRdB, "offset_hz": &r.OffsetHz} {
		if v, ok := m[k]; ok {
			_ = json.Unmarshal(v, dst)
		}
	}
}
