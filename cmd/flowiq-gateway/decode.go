package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

func init() {
	register(&command{
		name:    "decode",
		summary: "decode wM-Bus telegrams given as hex (arguments, or one per line on stdin)",
		run:     runDecode,
	})
}

func runDecode(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "decode")
	keyHex := fs.String("key", "", "AES-128 `key` (32 hex digits) for every meter not in --meters")
	metersPath := fs.String("meters", "", "meter list `file` (TOML, [[meter]] id/key/name) with the meters' keys")
	asJSON := fs.Bool("json", false, "print one JSON object per reading")
	formatsPath := fs.String("formats", "", "learned compact-frame formats `file`: read at start, written when formats were learned")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: flowiq-gateway decode [--key HEX | --meters FILE] [--json] [--formats FILE] [TELEGRAM...]")
		fmt.Fprintln(w, "\nTelegrams are hex (any case; spaces, '|' and '_' ignored; link-layer CRCs in frame")
		fmt.Fprintln(w, "format A or B, or already removed) or receiver lines \"MODE;CRC;...;0xHEX\". Without")
		fmt.Fprintln(w, "arguments they are read from stdin, one per line; empty lines and # comments are skipped.")
		fmt.Fprintln(w, "Errors go to stderr, one line each; the exit status is 1 if any telegram failed.")
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
	}
	// Flags may come before or after the telegrams.
	var telegrams []string
	for rest := args; ; {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		n := fs.NArg()
		if n == 0 {
			break
		}
		if len(rest) > n && rest[len(rest)-n-1] == "--" {
			telegrams = append(telegrams, fs.Args()...)
			break
		}
		telegrams = append(telegrams, fs.Arg(0))
		rest = fs.Args()[1:]
	}

	var fallback []byte
	if *keyHex != "" {
		k, err := parseKeyFlag(*keyHex)
		if err != nil {
			fmt.Fprintf(e.stderr, "flowiq-gateway decode: --key %v\n", err)
			return errUsage
		}
		fallback = k
	}
	var list *meters.Snapshot
	if *metersPath != "" {
		s, err := meters.Load(*metersPath)
		if err != nil {
			return err
		}
		for _, p := range s.Problems {
			fmt.Fprintf(e.stderr, "warning: %v\n", p)
		}
		list = s
	}
	keys := func(id wmbus.ID) ([]byte, bool) {
		if k, ok := list.Key(id); ok {
			return k, true
		}
		return fallback, fallback != nil
	}

	dec := kamstrup.NewDecoder()
	if *formatsPath != "" {
		if err := dec.Load(*formatsPath); err != nil {
			return err
		}
	}

	d := &decodeRun{e: e, json: *asJSON, keys: keys, dec: dec}
	var err error
	if len(telegrams) > 0 {
		for i, a := range telegrams {
			if ctx.Err() != nil {
				break
			}
			d.line("argument "+strconv.Itoa(i+1), a)
		}
	} else {
		err = d.stream(ctx, e.stdin)
	}

	if n := dec.Pending(); n > 0 {
		fmt.Fprintf(e.stderr, "%d compact frame(s) still waiting for a full frame of their format\n", n)
		d.failed += n
	}
	if *formatsPath != "" && dec.Dirty() {
		if serr := dec.Save(*formatsPath); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if d.failed > 0 {
		return fmt.Errorf("%d of %d telegrams not decoded", d.failed, d.total)
	}
	return nil
}

// parseKeyFlag reads 32 hex digits; the message never repeats them.
func parseKeyFlag(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	if len(s) != 32 {
		return nil, fmt.Errorf("must be 32 hex digits, found %d characters", len(s))
	}
	k, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("has a character that is not a hex digit")
	}
	return k, nil
}

type decodeRun struct {
	e      *env
	json   bool
	keys   wmbus.KeyFunc
	dec    *kamstrup.Decoder
	parser wmbus.Parser
	tg     wmbus.Telegram
	frame  []byte
	out    []byte
	total  int
	failed int
}

func (d *decodeRun) stream(ctx context.Context, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		if ctx.Err() != nil {
			return nil
		}
		d.line("line "+strconv.Itoa(n), sc.Text())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	return nil
}

// line decodes one input line; where names it in messages.
func (d *decodeRun) line(where, s string) {
	s = strings.TrimSpace(s)
	if s == "" || s[0] == '#' {
		return
	}
	d.total++
	var err error
	d.frame, _, err = wmbus.AppendHexLine(d.frame[:0], s)
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
		d.print(&readings[i])
	}
	switch {
	case err == nil:
	case errors.Is(err, kamstrup.ErrAwaitingFullFrame) && !errors.Is(err, kamstrup.ErrQueueFull) && !isJoined(err):
		// Kept by the decoder: counted as failed only if still waiting at the end.
		fmt.Fprintf(d.e.stderr, "%s: %v\n", where, err)
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
	d.failed++
	fmt.Fprintf(d.e.stderr, "%s: %v\n", where, err)
}

func (d *decodeRun) print(r *kamstrup.Reading) {
	if d.json {
		b, err := json.Marshal(r)
		if err != nil {
			fmt.Fprintf(d.e.stderr, "meter %s: %v\n", r.ID, err)
			d.failed++
			return
		}
		d.out = append(append(d.out[:0], b...), '\n')
		d.e.stdout.Write(d.out)
		return
	}
	d.out = r.AppendText(d.out[:0])
	d.out = append(d.out, '\n')
	d.e.stdout.Write(d.out)
}
