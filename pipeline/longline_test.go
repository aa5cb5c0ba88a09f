package pipeline

import (
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
)

// A 2 MiB line in the middle of a hex:tcp feed: it is skipped with its
// line number and the limit, the connection stays, and every good line
// after it decodes.
func TestLongLineInTCPFeedKeepsTheRest(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	frames := chronological(t)
	lines := make([]string, len(frames))
	for i, f := range frames {
		lines[i] = strings.ToUpper(hexOf(f.Data))
	}
	var conns atomic.Int32
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				io.WriteString(c, strings.Join(lines[:10], "\n")+"\n")
				io.WriteString(c, strings.Repeat("A1", 1<<20)+"\n") // 2 MiB of hex digits
				io.WriteString(c, strings.Join(lines[10:], "\n")+"\n")
				<-done // the bridge stays connected
			}()
		}
	}()
	src, err := NewSource("hex:tcp://"+l.Addr().String(), nil, RadioOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var c collected
	p := c.pipeline(src, keyOf(t))
	runUntil(t, p, 10*time.Second, func() bool { return p.Stats().Readings.Load() >= 35 })
	if conns.Load() != 1 || p.Stats().Reopens.Load() != 0 {
		t.Errorf("%d connections, %d reopens: the long line cost the connection", conns.Load(), p.Stats().Reopens.Load())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.problems) != 1 || !errors.Is(c.problems[0], ErrLineTooLong) || !strings.Contains(c.problems[0].Error(), "line 11") ||
		!strings.Contains(c.problems[0].Error(), "1048576") {
		t.Errorf("problems %v, want line 11 too long, with the limit", c.problems)
	}
	if v, _ := c.readings[34].Get(kamstrup.Total); v.V != 8.915 {
		t.Errorf("last total %v", v)
	}
}

// hex:tcp without a port can never connect: refused at once, not retried.
func TestHexTCPWithoutPort(t *testing.T) {
	for _, spec := range []string{"hex:tcp://bridge.local", "hex:tcp://192.168.1.50", "hex:tcp://bridge.local:"} {
		_, err := NewSource(spec, nil, RadioOptions{})
		if err == nil || !strings.Contains(err.Error(), "want hex:tcp://host:port") || !strings.Contains(err.Error(), spec) {
			t.Errorf("%s: %v", spec, err)
		}
	}
	if _, err := NewSource("hex:tcp://bridge.local:9000", nil, RadioOptions{}); err != nil {
		t.Error(err)
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
