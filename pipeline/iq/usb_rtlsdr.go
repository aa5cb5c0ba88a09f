//go:build rtlsdr && cgo

package iq

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	rtl "github.com/jpoirier/gortlsdr"
)

// gortlsdr keeps the async callback in a package variable, so a process can
// stream from one dongle at a time.
var (
	usbMu     sync.Mutex
	usbActive bool
)

const (
	// 64 KiB per USB transfer (a multiple of 512 as librtlsdr requires):
	// 20 ms at 1.6 MS/s. 32 of them buffer 0.65 s of a slow reader.
	usbChunkBytes = 64 << 10
	usbChunks     = 32
	usbAsyncBufs  = 16
	// How long Close waits for librtlsdr to end the async read.
	usbCancelWait = 3 * time.Second
)

type usbSource struct {
	*sampleReader
	ctx      context.Context
	dev      *rtl.Context
	q        *chunkQueue
	info     Info
	log      *slog.Logger
	done     chan struct{} // closed when ReadAsync has returned
	stop     func() bool
	once     sync.Once
	cerr     error
	mu       sync.Mutex
	closing  bool
	reported uint64 // dropped bytes already logged
}

func openUSB(ctx context.Context, sel string, opts Options) (Source, error) {
	name := "rtlsdr://" + sel
	o, err := opts.radioDefaults(name)
	if err != nil {
		return nil, err
	}
	auto, tenths, _ := ParseGain(o.Gain) // validated by radioDefaults
	log := o.logger()

	usbMu.Lock()
	if usbActive {
		usbMu.Unlock()
		return nil, fmt.Errorf("%s: %w: this process already streams from a USB RTL-SDR (one at a time)", name, ErrDeviceBusy)
	}
	usbActive = true
	usbMu.Unlock()
	release := func() {
		usbMu.Lock()
		usbActive = false
		usbMu.Unlock()
	}

	devs := make([]usbDevice, rtl.GetDeviceCount())
	for i := range devs {
		m, p, s, _ := rtl.GetDeviceUsbStrings(i)
		devs[i] = usbDevice{Index: i, Manufacturer: m, Product: p, Serial: s}
	}
	idx, err := selectDevice(sel, devs)
	if err != nil {
		release()
		return nil, err
	}
	name = fmt.Sprintf("rtlsdr://%s (#%d, serial %s)", sel, idx, devs[idx].Serial)
	dev, err := rtl.Open(idx)
	if err != nil {
		release()
		hint, sentinel := usbOpenHint(err.Error())
		switch {
		case sentinel != nil && hint != "":
			return nil, fmt.Errorf("%s: %w: %s: %v", name, sentinel, hint, err)
		case hint != "":
			return nil, fmt.Errorf("%s: cannot open (%s): %w", name, hint, err)
		}
		return nil, fmt.Errorf("%s: cannot open: %w", name, err)
	}
	if err := tune(dev, name, &o, auto, tenths, log); err != nil {
		dev.Close()
		release()
		return nil, err
	}

	s := &usbSource{
		ctx:  ctx,
		dev:  dev,
		q:    newChunkQueue(usbChunks, usbChunkBytes, o.stallTimeout()),
		info: Info{Name: name, Format: CU8, SampleRate: o.SampleRate, CenterHz: o.CenterHz},
		log:  log,
		done: make(chan struct{}),
	}
	s.sampleReader = newSampleReader(s.q, CU8, name, true)
	go s.run()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	s.mu.Lock()
	s.stop = stop
	s.mu.Unlock()
	return s, nil
}

// tune sets rate, correction, frequency, gain and AGC, naming the setting
// the dongle refused; o.SampleRate becomes what the dongle really runs at.
func tune(dev *rtl.Context, name string, o *Options, auto bool, tenths int, log *slog.Logger) error {
	fail := func(what string, err error) error {
		return fmt.Errorf("%s: %s: %w", name, what, err)
	}
	if err := dev.SetSampleRate(int(math.Round(o.SampleRate))); err != nil {
		return fail(fmt.Sprintf("sample rate %g not accepted (the RTL2832 does 225–300 kS/s and 0.9–3.2 MS/s)", o.SampleRate), err)
	}
	if got := float64(dev.GetSampleRate()); got > 0 && math.Abs(got-o.SampleRate) >= 1 {
		log.Warn("dongle adjusted the sample rate", "source", name, "asked", o.SampleRate, "got", got)
		o.SampleRate = got
	}
	if err := dev.SetFreqCorrection(o.PPM); err != nil {
		return fail(fmt.Sprintf("ppm correction %d", o.PPM), err)
	}
	if err := dev.SetCenterFreq(int(math.Round(o.CenterHz))); err != nil {
		return fail(fmt.Sprintf("centre frequency %g Hz not accepted by the tuner", o.CenterHz), err)
	}
	if err := dev.SetTunerGainMode(!auto); err != nil {
		return fail("gain mode", err)
	}
	if !auto {
		gains, err := dev.GetTunerGains()
		if err != nil {
			return fail("reading the tuner's gains", err)
		}
		g, ok := nearestGain(tenths, gains)
		if !ok {
			return fail("manual gain", fmt.Errorf("%w: the %s tuner reports no gain steps; use auto", ErrGain, dev.GetTunerType()))
		}
		if g != tenths {
			log.Info("using the nearest supported tuner gain", "source", name, "asked_db", float64(tenths)/10, "gain_db", float64(g)/10)
		}
		if err := dev.SetTunerGain(g); err != nil {
			return fail(fmt.Sprintf("gain %.1f dB", float64(g)/10), err)
		}
	}
	if err := dev.SetAgcMode(o.AGC); err != nil {
		return fail("AGC mode", err)
	}
	if err := dev.ResetBuffer(); err != nil {
		return fail("resetting the USB buffer", err)
	}
	return nil
}

// run streams until CancelAsync or a USB failure; the callback copies each
// transfer out of librtlsdr's buffer before returning.
func (s *usbSource) run() {
	defer close(s.done)
	err := s.dev.ReadAsync(func(b []byte) { s.q.push(b) }, nil, usbAsyncBufs, usbChunkBytes)
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	switch {
	case closing:
		s.q.end(fmt.Errorf("%s: %w", s.info.Name, ErrClosed))
	case err != nil:
		s.q.end(fmt.Errorf("%s: USB streaming stopped (dongle unplugged?): %w: %w", s.info.Name, ErrDisconnected, err))
	default:
		s.q.end(fmt.Errorf("%s: USB streaming stopped (dongle unplugged?): %w", s.info.Name, ErrDisconnected))
	}
}

func (s *usbSource) Read(dst []complex64) (int, error) {
	n, err := s.sampleReader.Read(dst)
	if d := s.q.Dropped(); d != s.reported {
		s.log.Warn("samples dropped: the reader is too slow for the sample rate", "source", s.info.Name,
			"dropped_samples", (d-s.reported)/2, "total", d/2)
		s.reported = d
	}
	if err != nil && s.ctx.Err() != nil {
		err = fmt.Errorf("%s: %w", s.info.Name, context.Cause(s.ctx))
	}
	return n, err
}

func (s *usbSource) Info() Info { return s.info }

func (s *usbSource) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closing = true
		if s.stop != nil {
			s.stop()
		}
		s.mu.Unlock()
		// librtlsdr ignores a cancel that comes before the async read is
		// running, so repeat it until the read returns.
		deadline := time.Now().Add(usbCancelWait)
		for stopped := false; !stopped; {
			s.dev.CancelAsync()
			select {
			case <-s.done:
				stopped = true
			case <-time.After(50 * time.Millisecond):
				if time.Now().After(deadline) {
					// Closing under a running transfer would crash
					// libusb; leave the device open instead.
					s.cerr = fmt.Errorf("%s: USB read did not stop within %v; device left open", s.info.Name, usbCancelWait)
					return
				}
			}
		}
		err := s.dev.Close()
		usbMu.Lock()
		usbActive = false
		usbMu.Unlock()
		if err != nil {
			s.cerr = fmt.Errorf("%s: closing: %w", s.info.Name, err)
		}
	})
	return s.cerr
}
