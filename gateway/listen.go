package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Listen prints every frame heard, any manufacturer, with the readings of
// the meters that list has keys for: one line per frame (JSON with asJSON).
func Listen(ctx context.Context, inputs []string, ro pipeline.RadioOptions, list *meters.Snapshot, asJSON bool, o Options) error {
	srcs, err := openSources(inputs, o.Stdin, ro, o.Log)
	if err != nil {
		return err
	}
	pr := &framePrinter{w: o.Stdout, json: asJSON}
	p := &pipeline.Pipeline{
		Sources: srcs,
		Decoder: kamstrup.NewDecoder(),
		Keys:    list.Key,
		Frame:   pr.frame,
		Reading: pr.reading,
		Problem: func(err error) {
			if !pr.problem(err) {
				o.Log.Warn(err.Error())
			}
		},
		Log: o.Log,
	}
	o.Log.Info("listening", "input", inputNames(srcs))
	err = p.Run(ctx)
	pr.flush()
	return err
}

// framePrinter prints each frame once its readings (if any) are known: the
// pipeline reports a frame before decoding it.
type framePrinter struct {
	w        io.Writer
	json     bool
	pending  bool
	f        pipeline.FrameInfo
	readings []json.RawMessage
	text     []byte
	line     []byte
}

func (p *framePrinter) frame(f pipeline.Frame, t *wmbus.Telegram, err error) {
	p.flush()
	p.f, p.pending, p.readings = pipeline.Describe(f, t, err), true, p.readings[:0]
}

// problem attaches a telegram's error to the frame being printed and
// reports whether it did; a frame without a key is normal here and only
// shows as "encrypted". Anything else is the caller's to log.
func (p *framePrinter) problem(err error) bool {
	if errors.Is(err, wmbus.ErrNoKey) {
		return true
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
		p.readings = append(p.readings, r.AppendJSON(nil))
		return
	}
	p.text = r.AppendText(append(p.text, "    "...))
	p.text = append(p.text, '\n')
}

func (p *framePrinter) flush() {
	if !p.pending {
		return
	}
	p.pending = false
	if p.json {
		out := struct {
			pipeline.FrameInfo
			Readings []json.RawMessage `json:"readings,omitempty"`
		}{p.f, p.readings}
		b, err := json.Marshal(out)
		if err != nil {
			slog.Error("printing frame", "err", err)
			return
		}
		p.w.Write(append(b, '\n'))
		return
	}
	p.line = append(p.f.AppendText(p.line[:0]), '\n')
	p.line = append(p.line, p.text...)
	p.text = p.text[:0]
	p.w.Write(p.line)
}
