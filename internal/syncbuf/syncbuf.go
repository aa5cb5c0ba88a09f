// Package syncbuf is a bytes buffer safe for concurrent writers, for tests
// that capture what goroutines log or print.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects writes from any goroutine.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
