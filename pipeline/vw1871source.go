package pipeline

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/vw1871"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// vw1871Source adapts a VW1871 concentrator's stream (file, stdin, TCP,
// serial or Bluetooth) to a Source. Its frames arrive CRC-checked.
type vw1871Source struct{ s *vw1871.Source }

func newVW1871Source(spec string, stdin io.Reader, log *slog.Logger) (Source, error) {
	sp, err := vw1871.ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return vw1871Source{vw1871.New(sp, vw1871.Config{Stdin: stdin, Logger: log})}, nil
}

func isVW1871(spec string) bool { return strings.HasPrefix(spec, vw1871.Prefix) }

func (v vw1871Source) Name() string { return v.s.Name() }
func (v vw1871Source) Live() bool   { return v.s.Live() }

// Run implements Source. The device receives C1 frames and forwards them
// in frame format B.
func (v vw1871Source) Run(ctx context.Context, h Handler) error {
	return v.s.Run(ctx, func(f vw1871.Frame) {
		h.Frame(Frame{Data: f.Data, Stripped: f.Stripped, Time: f.Time, Position: f.Position,
			Radio: wmbus.Radio{Mode: "C1", Format: "B", DeviceLevel: int(f.Level)}})
	}, h.Skip)
}
