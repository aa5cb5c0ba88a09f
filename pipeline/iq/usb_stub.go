//go:build !rtlsdr || !cgo

package iq

import (
	"context"
	"fmt"
)

func openUSB(_ context.Context, sel string, _ Options) (Source, error) {
	return nil, fmt.Errorf("input %q: %w", "rtlsdr://"+sel, ErrNoUSBSupport)
}
