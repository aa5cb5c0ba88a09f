package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

func init() {
	register(&command{
		name:    "listen",
		summary: "print every wM-Bus frame heard (any manufacturer); decode meters with keys in --meters",
		run:     runListen,
	})
}

func runListen(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "listen")
	var rf radioFlags
	rf.register(fs)
	metersPath := fs.String("meters", "", "meter list `file`: frames of meters with keys there are decoded too")
	asJSON := fs.Bool("json", false, "print one JSON object per frame; the hex is in \"frame\", readings in \"readings\"")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: flowiq-gateway listen [--input SPEC] [--rate 1.6M] [--center 868.95M] [--meters FILE] [--json]")
		fmt.Fprintln(fs.Output(), "\nEach line: time, mode, frame format, level, SNR, carrier offset, manufacturer, ID,")
		fmt.Fprintln(fs.Output(), "version, device type, encrypted or not, and the frame in hex without link-layer CRCs.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := rf.parse(e, fs, args); err != nil {
		return err
	}
	log, err := newLogger(e, *level)
	if err != nil {
		return err
	}
	var list *meters.Snapshot
	var fileRadio meters.Radio
	if *metersPath != "" {
		if list, err = meters.Load(*metersPath); err != nil {
			return err
		}
		for _, p := range list.Problems {
			log.Warn("meter list", "problem", p)
		}
		fileRadio = list.Radio
	}
	input, ro, err := rf.resolve(fileRadio)
	if err != nil {
		return err
	}
	src, err := pipeline.NewSource(input, e.stdin, ro)
	if err != nil {
		return err
	}
	pr := &framePrinter{e: e, json: *asJSON}
	p := &pipeline.Pipeline{
		Source:  src,
		Decoder: kamstrup.NewDecoder(),
		Keys:    list.Key,
		Frame:   pr.frame,
		Reading: pr.reading,
		Problem: func(err error) {
			if !pr.problem(err) {
				log.Warn(err.Error())
			}
		},
		Log: log,
	}
	log.Info("listening", "input", src.Name())
	err = p.Run(ctx)
	pr.flush()
	return err
}

// framePrinter prints each frame once its readings (if any) are known: the
// pipeline reports a frame before decoding it.
type framePrinter struct {
	e        *env
	json     bool
	pending  bool
	f        listenFrame
	readings []json.RawMessage
	text     []byte
}

// listenFrame is the JSON form of one frame heard.
type listenFrame struct {
	Time         string            `json:"time"`
	Mode         string            `json:"mode,omitempty"`
	Format       string            `json:"frame_format"`
	LevelDBFS    *float64          `json:"level_dbfs,omitempty"`
	SNRdB        *float64          `json:"snr_db,omitempty"`
	OffsetHz     *int              `json:"offset_hz,omitempty"`
	Position     int64             `json:"position"`
	Manufacturer string            `json:"manufacturer,omitempty"`
	ID           string            `json:"id,omitempty"`
	Version      string            `json:"version,omitempty"`
	DeviceType   string            `json:"device_type,omitempty"`
	Encrypted    *bool             `json:"encrypted,omitempty"`
	Decode       string            `json:"decode_error,omitempty"`
	Frame        string            `json:"frame"`
	Readings     []json.RawMessage `json:"readings,omitempty"`
}

func (p *framePrinter) frame(f pipeline.Frame, t *wmbus.Telegram, err error) {
	p.flush()
	data, format := f.Data, f.Radio.Format
	if format == "" { // text input: it may carry link-layer CRCs
		if plain, ff, derr := wmbus.Detect(f.Data); derr == nil {
			data, format = plain, ff.String()
		}
	}
	lf := listenFrame{Time: f.Time.Format(time.RFC3339Nano), Mode: f.Radio.Mode, Format: format,
		Position: f.Position, Frame: hex.EncodeToString(data)}
	if f.Radio.LevelDBFS != 0 || f.Radio.SNRdB != 0 {
		lvl, snr, off := round1(f.Radio.LevelDBFS), round1(f.Radio.SNRdB), int(f.Radio.OffsetHz)
		lf.LevelDBFS, lf.SNRdB, lf.OffsetHz = &lvl, &snr, &off
	}
	h, herr := frameHeader(f, t)
	if herr == nil {
		lf.Manufacturer, lf.ID = h.Manufacturer.String(), h.ID.String()
		lf.Version, lf.DeviceType = fmt.Sprintf("0x%02X", h.Version), fmt.Sprintf("0x%02X", h.DeviceType)
	}
	switch {
	case t != nil:
		enc := t.Security != wmbus.SecurityNone
		lf.Encrypted = &enc
	case errors.Is(err, wmbus.ErrNoKey), errors.Is(err, wmbus.ErrWrongKey):
		enc := true
		lf.Encrypted = &enc
	}
	if err != nil && !errors.Is(err, wmbus.ErrNoKey) {
		lf.Decode = err.Error()
	}
	p.f, p.pending, p.readings = lf, true, p.readings[:0]
}

// problem attaches a telegram's error to the frame being printed and
// reports whether it did; a frame without a key is normal here and only
// shows as "encrypted". Anything else is the caller's to log.
func (p *framePrinter) problem(err error) bool {
	if errors.Is(err, wmbus.ErrNoKey) {
		return true // the frame line says "encrypted"
	}
	id, ok := wmbus.ErrorMeter(err)
	if !p.pending || !ok || id.String() != p.f.ID {
		return false
	}
	if p.f.Decode == "" {
		p.f.Decode = err.Error()
	}
	return true
}

func (p *framePrinter) reading(r *kamstrup.Reading) {
	if p.json {
		b, err := json.Marshal(r)
		if err == nil {
			p.readings = append(p.readings, b)
		}
		return
	}
	p.text = appendReadable(append(p.text, "    "...), r)
	p.text = append(p.text, '\n')
}

func (p *framePrinter) flush() {
	if !p.pending {
		return
	}
	p.pending = false
	f := &p.f
	if p.json {
		f.Readings = p.readings
		b, _ := json.Marshal(f)
		fmt.Fprintf(p.e.stdout, "%s\n", b)
		return
	}
	line := f.Time[11:min(len(f.Time), 23)] + " " + pad(f.Mode, 2) + " " + pad(f.Format, 4)
	if f.LevelDBFS != nil {
		line += fmt.Sprintf(" %6.1f dBFS SNR %4.1f dB %+7d Hz", *f.LevelDBFS, *f.SNRdB, *f.OffsetHz)
	}
	if f.ID != "" {
		line += " " + f.Manufacturer + " " + f.ID + " v" + f.Version[2:] + " t" + f.DeviceType[2:]
	}
	switch {
	case f.Encrypted == nil:
		line += " ?"
	case *f.Encrypted:
		line += " encrypted"
	default:
		line += " plain"
	}
	line += " " + f.Frame
	if f.Decode != "" {
		line += "\n    ! " + f.Decode
	}
	fmt.Fprintln(p.e.stdout, line)
	if len(p.text) > 0 {
		p.e.stdout.Write(p.text)
		p.text = p.text[:0]
	}
}

func pad(s string, n int) string {
	for len(s) < n {
		s += " "
	}
	return s
}
