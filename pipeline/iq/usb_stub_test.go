//go:build !rtlsdr || !cgo

package iq

import (
	"context"
	"errors"
	"testing"
)

func TestUSBWithoutSupport(t *testing.T) {
	_, err := Open(context.Background(), "rtlsdr://0", Options{})
	if !errors.Is(err, ErrNoUSBSupport) {
		t.Fatalf("Open = %v, want ErrNoUSBSupport", err)
	}
	const want = `input "rtlsdr://0": this build has no USB RTL-SDR support; rebuild with -tags rtlsdr (needs librtlsdr-dev) or use rtltcp://host:port`
	if err.Error() != want {
		t.Fatalf("message %q\nwant     %q", err, want)
	}
}
