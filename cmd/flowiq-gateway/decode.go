package main

import (
	"context"
	"fmt"

	"github.com/flowiq-gateway/flowiq-gateway/gateway"
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
	fs := newFlags(e, "decode",
		"usage: flowiq-gateway decode [--key HEX | --meters FILE] [--json] [--formats FILE] [TELEGRAM...]\n"+
			"\nTelegrams are hex (any case; spaces, '|' and '_' ignored; link-layer CRCs in frame\n"+
			"format A or B, or already removed) or receiver lines \"MODE;CRC;...;0xHEX\". Without\n"+
			"arguments they are read from stdin, one per line; empty lines and # comments are skipped.\n"+
			"Errors go to stderr, one line each; the exit status is 1 if any telegram failed.")
	keyHex := fs.String("key", "", "AES-128 `key` (32 hex digits) for every meter not in --meters")
	metersPath := fs.String("meters", "", "meter list `file` (TOML, [[meter]] id/key/name) with the meters' keys")
	asJSON := fs.Bool("json", false, "print one JSON object per reading")
	formatsPath := fs.String("formats", "", "learned compact-frame formats `file`: read at start, written when formats were learned")
	telegrams, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	o := gateway.DecodeOptions{JSON: *asJSON, FormatsPath: *formatsPath, Stdout: e.stdout, Stderr: e.stderr}
	if *keyHex != "" {
		k, err := wmbus.ParseKey(*keyHex)
		if err != nil {
			fmt.Fprintf(e.stderr, "flowiq-gateway decode: --key %v\n", err)
			return errUsage
		}
		o.FallbackKey = k[:]
	}
	if *metersPath != "" {
		if o.Meters, err = meters.Load(*metersPath); err != nil {
			return err
		}
		for _, p := range o.Meters.Problems {
			fmt.Fprintf(e.stderr, "warning: %v\n", p)
		}
	}
	res, err := gateway.Decode(ctx, telegrams, e.stdin, o)
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
