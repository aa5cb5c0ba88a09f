//go:build !linux

package vw1871

import (
	"errors"
	"os"
)

func openSerial(path string, baud int) (*os.File, error) {
	return nil, errors.New("serial ports are supported on Linux only")
}
