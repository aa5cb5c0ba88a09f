package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/flowiq-gateway/flowiq-gateway/gateway"
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
		k, err := wmbus.ParseKey(*keyHex)
		if err != nil {
			fmt.Fprintf(e.stderr, "flowiq-gateway decode: --key %v\n", err)
			return errUsage
		}
		fallback = k[:]
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

	res, err := gateway.Decode(ctx, telegrams, e.stdin, gateway.DecodeOptions{
		Keys: keys, Decoder: dec, JSON: *asJSON, Stdout: e.stdout, Stderr: e.stderr})
	if n := dec.Pending(); n > 0 {
		fmt.Fprintf(e.stderr, "%d compact frame(s) still waiting for a full frame of their format\n", n)
		res.Failed += n
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
	if res.Failed > 0 {
		return fmt.Errorf("%d of %d telegrams not decoded", res.Failed, res.Total)
	}
	return nil
}
