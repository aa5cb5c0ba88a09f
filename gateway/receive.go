package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/remote"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Receive is the receiver role: it runs the inputs and publishes every
// CRC-checked frame to the broker for a decoder elsewhere, with no keys
// and no decoding beyond the link layer. It runs until ctx ends or the
// inputs (recordings, files) end and their frames are acknowledged.
func Receive(ctx context.Context, inputs []string, ro pipeline.RadioOptions, pc remote.PublisherConfig, o Options) error {
	pc.Log = o.Log
	pub, err := remote.NewPublisher(pc)
	if err != nil {
		return err
	}
	srcs, err := openSources(inputs, o.Stdin, ro, o.Log)
	if err != nil {
		return err
	}
	// The publisher outlives the inputs: it sends what they heard last.
	pubCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = pub.Run(pubCtx) }()
	defer func() { stop(); wg.Wait() }()

	p := &pipeline.Pipeline{
		Sources: srcs,
		Decoder: kamstrup.NewDecoder(),
		Frame: func(f pipeline.Frame, t *wmbus.Telegram, err error) {
			f.Radio.Receiver = pc.Name
			if !errors.Is(err, wmbus.ErrNoKey) {
				err = nil // the decoder says what else is wrong, with its keys
			}
			publishFrame(pub, f, t, err, o)
		},
		// A receiver has no keys: what is wrong with a telegram ("no
		// key", …) is the decoder's to report; its inputs' trouble is its own.
		Problem: func(err error) {
			if _, ok := wmbus.ErrorMeter(err); ok {
				o.Log.Debug(err.Error())
			} else {
				o.Log.Warn(err.Error())
			}
		},
		Log: o.Log,
	}
	o.Log.Info("receiving", "input", inputNames(srcs), "publishing", pub.String())
	runErr := p.Run(ctx)
	if ctx.Err() == nil { // the inputs ended: let their frames reach the broker
		fctx, cancel := context.WithTimeout(ctx, drainTimeout)
		if err := pub.Flush(fctx); err != nil {
			o.Log.Warn("not every frame reached the broker before exit", "err", err)
		}
		cancel()
	}
	stop()
	wg.Wait() // the offline status is out
	s := p.Stats()
	o.Log.Info("stopped", "frames", s.Frames.Load(), "published", pub.Sent(), "dropped", pub.Dropped())
	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, io.EOF) {
		return runErr
	}
	return nil
}

// publishFrame sends one frame as its FrameInfo JSON, when its link-layer
// CRCs checked: a demodulator checked them already; text input is checked
// here.
func publishFrame(pub *remote.Publisher, f pipeline.Frame, t *wmbus.Telegram, err error, o Options) {
	if !f.Stripped {
		plain, ff, err := wmbus.Detect(f.Data)
		if err != nil {
			o.Log.Warn("frame not published", "err", err, "frame", fmt.Sprintf("%X", f.Data))
			return
		}
		f.Data, f.Stripped = plain, true
		if f.Radio.Format == "" {
			f.Radio.Format = ff.String()
		}
	}
	f.Time = f.Time.UTC()
	fi := pipeline.Describe(f, t, err)
	if fi.ID == "" {
		o.Log.Warn("frame not published: no link-layer header", "frame", fi.Frame)
		return
	}
	b, err := json.Marshal(&fi)
	if err != nil {
		o.Log.Error("frame not published", "err", err)
		return
	}
	pub.Send(pub.Topic(fi.ID), b)
}
