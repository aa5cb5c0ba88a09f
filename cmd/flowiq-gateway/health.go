package main

import (
	"context"
	"fmt"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/addon"
	"github.com/flowiq-gateway/flowiq-gateway/gateway"
)

func init() {
	register(&command{
		name:    "health",
		summary: "exit 0 while the running gateway is healthy (inputs receiving or being reopened, broker connected), 1 if not",
		run:     runHealth,
	})
}

// runHealth is the image's HEALTHCHECK. It reads the health file the
// running gateway keeps; the verdict is gateway.HealthReport.Check.
func runHealth(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "health",
		"usage: flowiq-gateway health [--file FILE]\n"+
			"\nExits 0 while the running gateway is healthy, 1 when an input keeps failing after\n"+
			"being reopened, the broker has been away too long, or the gateway stopped updating\n"+
			"its health. A stalled input that the gateway is still reopening counts as healthy.")
	file := fs.String("file", addon.HealthFile(), "the health `file` the gateway writes (--health-file of run and addon; default $"+addon.HealthFileEnv+")")
	l := gateway.DefaultHealthLimits
	fs.DurationVar(&l.MaxAge, "max-age", l.MaxAge, "a health file older than this means the gateway hangs")
	fs.DurationVar(&l.BrokerGrace, "broker-grace", l.BrokerGrace, "how long the broker may be away before the gateway counts as unhealthy")
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	h, err := gateway.ReadHealth(*file)
	if err == nil {
		err = h.Check(time.Now(), l)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "healthy:", h)
	return nil
}
