package main

import (
	"context"
	"os"

	"github.com/flowiq-gateway/flowiq-gateway/gateway"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/remote"
	"github.com/flowiq-gateway/flowiq-gateway/settings"
)

func init() {
	register(&command{
		name:    "receive",
		summary: "a receiver near the meters: publish every frame heard to an MQTT broker for a decoder elsewhere (no keys needed)",
		run:     runReceive,
	})
}

func runReceive(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "receive",
		"usage: flowiq-gateway receive --mqtt URL [--name NAME] [--input SPEC] [--base-topic flowiq] [radio flags]\n"+
			"\nEach CRC-checked frame goes to <base>/frames/<last digit of the meter ID>/<name> (QoS 1);\n"+
			"a decoder reads them with --input mqtt://broker:1883/<base>/frames/#.")
	var rf radioFlags
	rf.register(fs)
	host, _ := os.Hostname()
	var pc remote.PublisherConfig
	fs.StringVar(&pc.Broker, "mqtt", "", "MQTT broker `URL` (tcp://host:1883, ssl://host:8883, ws://)")
	fs.StringVar(&pc.User, "mqtt-user", "", "MQTT user name")
	fs.StringVar(&pc.Password, "mqtt-password", "", "MQTT password (prefer $MQTT_PASSWORD)")
	fs.StringVar(&pc.Name, "name", host, "this receiver's `name`: one topic level, shown with every reading it heard")
	fs.StringVar(&pc.Base, "base-topic", remote.DefaultBase, "base `topic`")
	fs.IntVar(&pc.Buffer, "buffer", remote.DefaultBuffer, "frames kept while the broker is away (the newest are kept)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := rf.parse(e, fs, args); err != nil {
		return err
	}
	log, err := newLogger(e, *level)
	if err != nil {
		return err
	}
	if pc.Password == "" {
		pc.Password = os.Getenv("MQTT_PASSWORD")
	}
	cfg, err := settings.Resolve(version, rf.layer())
	if err != nil {
		return err
	}
	return gateway.Receive(ctx, cfg.Inputs, cfg.Radio, pc, gateway.Options{Stdin: e.stdin, Stdout: e.stdout, Log: log})
}
