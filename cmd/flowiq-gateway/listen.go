package main

import (
	"context"

	"github.com/flowiq-gateway/flowiq-gateway/gateway"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/settings"
)

func init() {
	register(&command{
		name:    "listen",
		summary: "print every wM-Bus frame heard (any manufacturer); decode meters with keys in --meters",
		run:     runListen,
	})
}

func runListen(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "listen",
		"usage: flowiq-gateway listen [--input SPEC] [--rate 1.6M] [--center 868.95M] [--meters FILE] [--json]\n"+
			"\nEach line: time, mode, frame format, level, SNR, carrier offset, manufacturer, ID,\n"+
			"version, device type, encrypted or not, and the frame in hex without link-layer CRCs.")
	var rf radioFlags
	rf.register(fs)
	metersPath := fs.String("meters", "", "meter list `file`: frames of meters with keys there are decoded too")
	asJSON := fs.Bool("json", false, "print one JSON object per frame; the hex is in \"frame\", readings in \"readings\"")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := rf.parse(e, fs, args); err != nil {
		return err
	}
	log, err := newLogger(e, *level)
	if err != nil {
		return err
	}
	layers := []settings.Layer{rf.layer()}
	var list *meters.Snapshot
	if *metersPath != "" {
		if list, err = meters.Load(*metersPath); err != nil {
			return err
		}
		for _, p := range list.Problems {
			log.Warn("meter list", "problem", p)
		}
		layers = append(layers, settings.Layer{Name: *metersPath, Radio: list.Radio})
	}
	cfg, err := settings.Resolve(version, layers...)
	if err != nil {
		return err
	}
	return gateway.Listen(ctx, cfg.Inputs, cfg.Radio, list, *asJSON, gateway.Options{Stdin: e.stdin, Stdout: e.stdout, Log: log})
}
