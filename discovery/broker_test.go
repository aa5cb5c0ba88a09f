package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

const mosquittoPath = "/usr/sbin/mosquitto"

// needMosquitto skips when the broker is not installed, except in CI where
// a missing broker must fail the build instead of hiding the tests.
func needMosquitto(tb testing.TB) string {
	tb.Helper()
	path := mosquittoPath
	if _, err := os.Stat(path); err != nil {
		p, lerr := exec.LookPath("mosquitto")
		if lerr != nil {
			if os.Getenv("CI") == "true" {
				tb.Fatalf("mosquitto not installed (%s, $PATH) and CI=true: the MQTT integration tests must run in CI", mosquittoPath)
			}
			tb.Skipf("mosquitto not installed (%s, $PATH): MQTT integration tests skipped", mosquittoPath)
		}
		path = p
	}
	return path
}

// broker is a real Mosquitto on a free local port, owned by one test.
type broker struct {
	tb    testing.TB
	bin   string
	dir   string
	port  int
	extra string // appended to mosquitto.conf (listener options, auth)

	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *lockedWriter
	exited chan struct{}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startBroker starts Mosquitto with `listener PORT 127.0.0.1`, persistence
// off, plus extra config lines; anonymous access unless extra says
// otherwise.
func startBroker(tb testing.TB, extra string) *broker {
	tb.Helper()
	b := &broker{tb: tb, bin: needMosquitto(tb), dir: tb.TempDir(), port: freePort(tb), extra: extra}
	b.start()
	tb.Cleanup(b.stop)
	return b
}

func (b *broker) url(scheme string) string { return fmt.Sprintf("%s://127.0.0.1:%d", scheme, b.port) }

func (b *broker) start() {
	b.tb.Helper()
	conf := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nlog_dest stderr\n", b.port)
	if os.Getuid() == 0 {
		// Started as root, Mosquitto drops to user "mosquitto", which
		// cannot read the test's private temporary files.
		conf += "user root\n"
	}
	if !strings.Contains(b.extra, "allow_anonymous") {
		conf += "allow_anonymous true\n"
	}
	conf += b.extra
	path := filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		b.tb.Fatal(err)
	}
	cmd := exec.Command(b.bin, "-c", path)
	log := &lockedWriter{w: &bytes.Buffer{}}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		b.tb.Fatalf("starting mosquitto: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.mu.Lock()
	b.cmd, b.log, b.exited = cmd, log, exited
	b.mu.Unlock()
	// The port may still be held briefly after a restart; poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			b.tb.Fatalf("mosquitto exited:\n%s", b.logText())
		default:
		}
		if time.Now().After(deadline) {
			b.tb.Fatalf("mosquitto did not accept connections on port %d: %v\n%s", b.port, err, b.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *broker) logText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.log == nil {
		return ""
	}
	return b.log.String()
}

// kill stops the broker the hard way (no clean goodbye to clients).
func (b *broker) kill() { b.halt(syscall.SIGKILL) }

func (b *broker) stop() { b.halt(syscall.SIGTERM) }

func (b *broker) halt(sig syscall.Signal) {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// received is one message a test subscriber saw.
type received struct {
	topic    string
	payload  []byte
	retained bool
	at       time.Time
}

// subscriber is a plain paho client recording everything under its
// filters.
type subscriber struct {
	tb     testing.TB
	client mqtt.Client
	mu     sync.Mutex
	msgs   []received
	marker string
}

var subCount int

func subscribe(tb testing.TB, url string, filters ...string) *subscriber {
	tb.Helper()
	subCount++
	s := &subscriber{tb: tb, marker: fmt.Sprintf("test/marker/%d/%d", time.Now().UnixNano(), subCount)}
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("test-sub-%d-%d", os.Getpid(), subCount)).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true)
	s.client = mqtt.NewClient(o)
	if t := s.client.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		tb.Fatalf("test subscriber: connect %s: %v", url, t.Error())
	}
	tb.Cleanup(func() { s.client.Disconnect(0) })
	filters = append(filters, s.marker)
	subs := make(map[string]byte, len(filters))
	for _, f := range filters {
		subs[f] = 1
	}
	if t := s.client.SubscribeMultiple(subs, s.record); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		tb.Fatalf("test subscriber: subscribe: %v", t.Error())
	}
	return s
}

func (s *subscriber) record(_ mqtt.Client, m mqtt.Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, received{m.Topic(), append([]byte(nil), m.Payload()...), m.Retained(), time.Now()})
	s.mu.Unlock()
}

// sync returns once every retained message due at subscription has
// arrived: the broker delivers them before a message published afterwards.
func (s *subscriber) sync() {
	s.tb.Helper()
	s.client.Publish(s.marker, 1, false, "sync").Wait()
	waitFor(s.tb, 10*time.Second, "subscriber sync marker", func() bool {
		_, ok := s.last(s.marker)
		return ok
	})
	s.mu.Lock()
	kept := s.msgs[:0]
	for _, m := range s.msgs {
		if m.topic != s.marker {
			kept = append(kept, m)
		}
	}
	s.msgs = kept
	s.mu.Unlock()
}

func (s *subscriber) reset() {
	s.mu.Lock()
	s.msgs = nil
	s.mu.Unlock()
}

func (s *subscriber) all(topic string) []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []received
	for _, m := range s.msgs {
		if m.topic == topic {
			out = append(out, m)
		}
	}
	return out
}

func (s *subscriber) last(topic string) (received, bool) {
	all := s.all(topic)
	if len(all) == 0 {
		return received{}, false
	}
	return all[len(all)-1], true
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer collects a publisher's log lines.
type logBuffer struct{ lockedWriter }

func newLog() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{lockedWriter{w: &bytes.Buffer{}}}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// runPublisher starts a publisher on cfg and stops it at cleanup.
func runPublisher(tb testing.TB, cfg Config) (*Publisher, *logBuffer, context.CancelFunc) {
	tb.Helper()
	log, lb := newLog()
	p, err := New(cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			tb.Errorf("Run did not return after cancel")
		}
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			tb.Logf("publisher log:\n%s", lb.String())
		}
	})
	return p, lb, stop
}

func testConfig(url string) Config {
	return Config{URL: url, ReconnectMax: 300 * time.Millisecond, ConnectTimeout: 2 * time.Second,
		MeterTimeout: time.Hour, SWVersion: "test"}
}

func jsonField(tb testing.TB, b []byte, key string) any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatalf("%s: %v", b, err)
	}
	return m[key]
}

func accessNumber(tb testing.TB, b []byte) int {
	v, ok := jsonField(tb, b, "access_number").(float64)
	if !ok {
		tb.Fatalf("no access_number in %s", b)
	}
	return int(v)
}
