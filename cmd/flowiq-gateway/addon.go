package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/flowiq-gateway/flowiq-gateway/addon"
)

func init() {
	register(&command{
		name:    "addon",
		summary: "the Home Assistant add-on: options from /data/options.json, broker from the Supervisor, then run",
		run:     runAddon,
	})
}

// runAddon is the add-on's entry point; addon.Configure says how flags,
// options and meters.toml combine.
func runAddon(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "addon",
		"usage: flowiq-gateway addon [--options FILE] [--data DIR] [--config-dir DIR] [run flags]\n"+
			"\nRuns the gateway as the Home Assistant add-on: options from --options, the MQTT\n"+
			"broker from the Supervisor ($SUPERVISOR_URL, $SUPERVISOR_TOKEN), meters from the\n"+
			"options, the kem_file and "+addon.MeterListName+" in --config-dir. Flags override the options.")
	paths := addon.DefaultPaths()
	fs.StringVar(&paths.Options, "options", paths.Options, "the add-on options `file` the Supervisor writes")
	fs.StringVar(&paths.Data, "data", paths.Data, "persistent `directory`: learned compact-frame formats and each meter's last reading go to its state/ folder")
	fs.StringVar(&paths.Config, "config-dir", paths.Config, "the add-on's config `directory`: "+addon.MeterListName+" and KEM files")
	fs.StringVar(&paths.Share, "share", paths.Share, "the shared `directory` a kem_file may also be in")
	fs.StringVar(&paths.Health, "health-file", paths.Health, "`file` where the gateway keeps its health for the health command (default $"+addon.HealthFileEnv+"; empty: none)")
	var rf radioFlags
	rf.register(fs)
	mqttURL := fs.String("mqtt", "", "MQTT broker `URL`, instead of mqtt_url and the Supervisor's broker (the options' mqtt_username and mqtt_password apply)")
	level := fs.String("log-level", "", "log level: trace, debug, info, warning, error (default: the log_level option)")
	if err := rf.parse(e, fs, args); err != nil {
		return err
	}
	opts, problems := addon.LoadOptionsKeeping(paths.Options, paths.Data)
	lvl := opts.LogLevel
	if *level != "" {
		l, err := addon.ParseLevel(*level)
		if err != nil {
			return fmt.Errorf("--log-level: %w", err)
		}
		lvl = l
	}
	log := addon.NewLogger(e.stderr, lvl)
	log.Info("flowIQ Gateway add-on", "version", version, "options", opts)
	for _, p := range problems {
		if errors.Is(p, addon.ErrOptionsFile) {
			log.Error(p.Error() + "; running with the default options (no meters)")
			continue
		}
		log.Warn(p.Error())
	}
	flags := rf.layer()
	flags.MQTT.URL = *mqttURL
	cfg, err := addon.Configure(ctx, log, opts, paths, flags, version)
	if err != nil {
		return err
	}
	cfg.LogFrames = log.Enabled(ctx, slog.LevelDebug)
	return runGateway(ctx, e, log, cfg)
}
