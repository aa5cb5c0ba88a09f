package discovery

import "errors"

// Sentinel errors, for errors.Is.
var (
	// ErrConfig: the publisher configuration is unusable (bad URL, CA file,
	// topic or identifier).
	ErrConfig = errors.New("mqtt configuration")
	// ErrClosed: the publisher has shut down.
	ErrClosed = errors.New("publisher closed")
)
