package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// DecodeOptions configure Decode.
type DecodeOptions struct {
	Meters      *meters.Snapshot // keys of the meters it lists; may be nil
	FallbackKey []byte           // for every meter not in Meters
	// FormatsPath holds learned compact-frame formats: read at start,
	// written when formats were learned.
	FormatsPath string
	JSON        bool // readings as JSON lines, else key=value lines
	Stdout      io.Writer
	Stderr      io.Writer // one line per telegram that failed
}

// DecodeResult counts what Decode did.
type DecodeResult struct{ Total, Failed int }

// Decode decodes telegrams written as hex: args when there are any, else
// the lines of in. Compact frames still waiting for a full frame at the end
// count as failed.
func Decode(ctx context.Context, args []string, in io.Reader, o DecodeOptions) (DecodeResult, error) {
	dec := kamstrup.NewDecoder()
	if o.FormatsPath != "" {
		if err := dec.Load(o.FormatsPath); err != nil {
			return DecodeResult{}, err
		}
	}
	keys := func(id wmbus.ID) ([]byte, bool) {
		if k, ok := o.Meters.Key(id); ok {
			return k, true
		}
		return o.FallbackKey, o.FallbackKey != nil
	}
	res, err := decodeAll(ctx, args, in, keys, dec, o)
	if n := dec.Pending(); n > 0 {
		fmt.Fprintf(o.Stderr, "%d compact frame(s) still waiting for a full frame of their format\n", n)
		res.Failed += n
	}
	if o.FormatsPath != "" && dec.Dirty() {
		err = errors.Join(err, dec.Save(o.FormatsPath))
	}
	return res, err
}

// decodeAll decodes every telegram. Output is buffered and flushed
// whenever the input has nothing more at hand, so a pipe stays interactive
// and a file is fast.
func decodeAll(ctx context.Context, args []string, in io.Reader, keys wmbus.KeyFunc, dec *kamstrup.Decoder, o DecodeOptions) (DecodeResult, error) {
	out := bufio.NewWriterSize(o.Stdout, 64<<10)
	d := &decodeRun{o: o, keys: keys, dec: dec, out: out}
	defer out.Flush()
	if len(args) > 0 {
		for i, a := range args {
			if ctx.Err() != nil {
				break
			}
			d.line("argument "+strconv.Itoa(i+1), []byte(a))
		}
		return d.res, nil
	}
	lr := pipeline.NewLineReader(in)
	for ctx.Err() == nil {
		if !lr.Buffered() {
			if err := out.Flush(); err != nil {
				return d.res, err
			}
		}
		text, n, err := lr.Next()
		switch {
		case errors.Is(err, io.EOF):
			return d.res, nil
		case errors.Is(err, pipeline.ErrLineTooLong):
			d.res.Total++
			d.fail("input", err)
			continue
		case err != nil:
			return d.res, fmt.Errorf("reading stdin: %w", err)
		}
		d.where = append(append(d.where[:0], "line "...), strconv.FormatInt(n, 10)...)
		d.line(string(d.where), text)
	}
	return d.res, nil
}

type decodeRun struct {
	o      DecodeOptions
	keys   wmbus.KeyFunc
	dec    *kamstrup.Decoder
	out    *bufio.Writer
	parser wmbus.Parser
	tg     wmbus.Telegram
	frame  []byte
	buf    []byte
	where  []byte
	res    DecodeResult
}

// line decodes one input line; where names it in messages.
func (d *decodeRun) line(where string, s []byte) {
	s = trimSpace(s)
	if len(s) == 0 || s[0] == '#' {
		return
	}
	d.res.Total++
	var err error
	d.frame, _, err = wmbus.AppendHexLine(d.frame[:0], string(s))
	if err != nil {
		d.fail(where, err)
		return
	}
	if err := d.parser.Parse(d.frame, d.keys, &d.tg); err != nil {
		d.fail(where, err)
		return
	}
	readings, err := d.dec.Decode(&d.tg, time.Time{}, wmbus.Radio{})
	for i := range readings {
		if d.o.JSON {
			d.buf = readings[i].AppendJSON(d.buf[:0])
		} else {
			d.buf = readings[i].AppendText(d.buf[:0])
		}
		d.out.Write(append(d.buf, '\n'))
	}
	switch {
	case err == nil:
	case errors.Is(err, kamstrup.ErrAwaitingFullFrame) && !errors.Is(err, kamstrup.ErrQueueFull) && !isJoined(err):
		// Kept by the decoder: counted as failed only if still waiting at the end.
		fmt.Fprintf(d.o.Stderr, "%s: %v\n", where, err)
	default:
		d.fail(where, err)
	}
}

func isJoined(err error) bool {
	_, ok := err.(interface{ Unwrap() []error })
	return ok
}

// fail prints err, one line per error it joins.
func (d *decodeRun) fail(where string, err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if e != nil {
				d.fail(where, e)
			}
		}
		return
	}
	d.res.Failed++
	fmt.Fprintf(d.o.Stderr, "%s: %v\n", where, err)
}

func trimSpace(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
