package pipeline

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// FrameInfo is what can be said of a frame heard, whoever sent it and
// whether or not it decoded: how `listen` prints it, how debug logs show
// it, and how a user finds a meter's ID.
type FrameInfo struct {
	Time         string   `json:"time"`
	Mode         string   `json:"mode,omitempty"`
	Format       string   `json:"frame_format"`
	LevelDBFS    *float64 `json:"level_dbfs,omitempty"`
	SNRdB        *float64 `json:"snr_db,omitempty"`
	OffsetHz     *int     `json:"offset_hz,omitempty"`
	DeviceLevel  int      `json:"device_level,omitempty"`
	Receiver     string   `json:"receiver,omitempty"`
	Position     int64    `json:"position"`
	Manufacturer string   `json:"manufacturer,omitempty"`
	ID           string   `json:"id,omitempty"`
	Version      string   `json:"version,omitempty"`
	DeviceType   string   `json:"device_type,omitempty"`
	AccessNumber *int     `json:"access_number,omitempty"`
	Encrypted    *bool    `json:"encrypted,omitempty"`
	Decode       string   `json:"decode_error,omitempty"`
	Frame        string   `json:"frame"` // hex without link-layer CRCs
}

// Describe says what a frame is: its radio data, its link-layer header
// (from the telegram when it parsed, else read from the bytes, so a meter
// without a key still shows who it is) and the decoding error, if any. A
// missing key is not an error here: the frame shows as encrypted.
func Describe(f Frame, t *wmbus.Telegram, err error) FrameInfo {
	data, format := f.Data, f.Radio.Format
	var herr error
	if !f.Stripped { // text input: it may carry link-layer CRCs
		var plain []byte
		var ff wmbus.Format
		if plain, ff, herr = wmbus.Detect(f.Data); herr == nil {
			data, format = plain, ff.String()
		}
	}
	fi := FrameInfo{Time: f.Time.Format(time.RFC3339Nano), Mode: f.Radio.Mode, Format: format,
		Position: f.Position, Frame: hex.EncodeToString(data), DeviceLevel: f.Radio.DeviceLevel,
		Receiver: f.Radio.Receiver}
	if f.Radio.LevelDBFS != 0 || f.Radio.SNRdB != 0 {
		lvl, snr, off := round1(f.Radio.LevelDBFS), round1(f.Radio.SNRdB), int(f.Radio.OffsetHz)
		fi.LevelDBFS, fi.SNRdB, fi.OffsetHz = &lvl, &snr, &off
	}
	var h wmbus.Header
	switch {
	case t != nil:
		h, herr = t.Header, nil
	case herr == nil:
		h, herr = wmbus.ParseHeader(data)
	}
	if herr == nil {
		if acc, ok := wmbus.PeekAccessNumber(data); ok {
			n := int(acc)
			fi.AccessNumber = &n
		}
		fi.Manufacturer, fi.ID = h.Manufacturer.String(), h.ID.String()
		fi.Version, fi.DeviceType = fmt.Sprintf("0x%02X", h.Version), fmt.Sprintf("0x%02X", h.DeviceType)
	}
	enc := true
	switch {
	case t != nil:
		enc = t.Security != wmbus.SecurityNone
		fi.Encrypted = &enc
	case errors.Is(err, wmbus.ErrNoKey), errors.Is(err, wmbus.ErrWrongKey):
		fi.Encrypted = &enc
	}
	if err != nil && !errors.Is(err, wmbus.ErrNoKey) {
		fi.Decode = err.Error()
	}
	return fi
}

// LogAttrs is the frame as slog attributes.
func (fi *FrameInfo) LogAttrs() []any {
	attrs := []any{"mode", fi.Mode, "format", fi.Format}
	if fi.LevelDBFS != nil {
		attrs = append(attrs, "level_dbfs", *fi.LevelDBFS, "snr_db", *fi.SNRdB, "offset_hz", *fi.OffsetHz)
	}
	if fi.Receiver != "" {
		attrs = append(attrs, "receiver", fi.Receiver)
	}
	if fi.ID != "" {
		attrs = append(attrs, "id", fi.ID, "manufacturer", fi.Manufacturer, "version", fi.Version, "type", fi.DeviceType)
	}
	if fi.Decode != "" {
		attrs = append(attrs, "decode", fi.Decode)
	}
	return attrs
}

// AppendText appends the frame as one line for people: time, mode, format,
// level, SNR, offset, manufacturer, ID, version, type, encryption, hex.
func (fi *FrameInfo) AppendText(b []byte) []byte {
	b = append(b, fi.Time[min(len(fi.Time), 11):min(len(fi.Time), 23)]...)
	b = append(b, ' ')
	b = appendPadded(b, fi.Mode, 2)
	b = append(b, ' ')
	b = appendPadded(b, fi.Format, 4)
	if fi.LevelDBFS != nil {
		b = fmt.Appendf(b, " %6.1f dBFS SNR %4.1f dB %+7d Hz", *fi.LevelDBFS, *fi.SNRdB, *fi.OffsetHz)
	}
	if fi.ID != "" {
		b = append(b, ' ')
		b = append(b, fi.Manufacturer...)
		b = append(b, ' ')
		b = append(b, fi.ID...)
		b = append(b, " v"...)
		b = append(b, fi.Version[2:]...)
		b = append(b, " t"...)
		b = append(b, fi.DeviceType[2:]...)
	}
	switch {
	case fi.Encrypted == nil:
		b = append(b, " ?"...)
	case *fi.Encrypted:
		b = append(b, " encrypted"...)
	default:
		b = append(b, " plain"...)
	}
	if fi.Receiver != "" {
		b = append(b, " @"...)
		b = append(b, fi.Receiver...)
	}
	b = append(b, ' ')
	b = append(b, fi.Frame...)
	if fi.Decode != "" {
		b = append(b, "\n    ! "...)
		b = append(b, fi.Decode...)
	}
	return b
}

func appendPadded(b []byte, s string, n int) []byte {
	b = append(b, s...)
	for i := len(s); i < n; i++ {
		b = append(b, ' ')
	}
	return b
}

func round1(v float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', 1, 64), 64)
	return r
}
