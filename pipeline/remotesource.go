package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/remote"
)

// remoteSource adapts an MQTT subscription (receivers' frame messages,
// ESP32 bridges' hex lines) to a Source.
type remoteSource struct{ s *remote.Source }

func newRemoteSource(spec string) (Source, error) {
	sp, err := remote.ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return remoteSource{&remote.Source{Spec: sp}}, nil
}

// ErrReceiverOffline marks a receiver whose status says it is not
// publishing (its last will, or a clean stop).
var ErrReceiverOffline = errors.New("no frames from a receiver")

// IsRemote reports whether an input spec is an MQTT subscription, whose
// frames come from receivers elsewhere.
func IsRemote(spec string) bool { return remote.IsSpec(spec) }

func (r remoteSource) Name() string { return r.s.Name() }
func (r remoteSource) Live() bool   { return true }

// Run implements Source. A frame keeps the time its receiver heard it.
func (r remoteSource) Run(ctx context.Context, h Handler) error {
	// A receiver gone offline is reported like a stalled dongle.
	r.s.Status = func(receiver, status string) {
		if status != remote.Online {
			h.Skip(fmt.Errorf("%s: %w: receiver %s is %s", r.s.Name(), ErrReceiverOffline, receiver, status))
		}
	}
	return r.s.Run(ctx, func(f remote.Frame) {
		if f.Time.IsZero() {
			f.Time = time.Now()
		}
		h.Frame(Frame{Data: f.Data, Stripped: f.Stripped, Radio: f.Radio, Time: f.Time})
	}, h.Skip)
}
