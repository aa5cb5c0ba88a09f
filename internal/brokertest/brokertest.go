// Package brokertest runs a real Mosquitto broker on a free local port for
// tests, and a recording MQTT subscriber. It is test support only.
package brokertest

import (
	"fmt"
	"github.com/flowiq-gateway/flowiq-gateway/internal/syncbuf"
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

// NeedMosquitto returns the broker binary. It skips when the broker is not installed, except in CI where
// a missing broker must fail the build instead of hiding the tests.
func NeedMosquitto(tb testing.TB) string {
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

// Broker is a real Mosquitto on a free local port, owned by one test.
type Broker struct {
	tb    testing.TB
	bin   string
	dir   string
	port  int
	extra string // appended to mosquitto.conf (listener options, auth)

	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *syncbuf.Buffer
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

// Start starts Mosquitto with `listener PORT 127.0.0.1`, persistence
// off, plus extra config lines; anonymous access unless extra says
// otherwise.
func Start(tb testing.TB, extra string) *Broker {
	tb.Helper()
	b := Prepare(tb, extra)
	b.Start()
	return b
}

// Prepare returns a broker on a free port without starting it (a test of a
// broker that appears late); Start starts it, Stop runs at cleanup.
func Prepare(tb testing.TB, extra string) *Broker {
	tb.Helper()
	b := &Broker{tb: tb, bin: NeedMosquitto(tb), dir: tb.TempDir(), port: freePort(tb), extra: extra}
	tb.Cleanup(b.Stop)
	return b
}

// URL is the broker's address with the given scheme ("tcp").
func (b *Broker) URL(scheme string) string { return fmt.Sprintf("%s://127.0.0.1:%d", scheme, b.port) }

// Start (re)starts the broker on its port and waits until it accepts
// connections.
func (b *Broker) Start() {
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
	log := &syncbuf.Buffer{}
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
			b.tb.Fatalf("mosquitto exited:\n%s", b.Log())
		default:
		}
		if time.Now().After(deadline) {
			b.tb.Fatalf("mosquitto did not accept connections on port %d: %v\n%s", b.port, err, b.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log is what the broker printed.
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.log == nil {
		return ""
	}
	return b.log.String()
}

// Kill stops the broker the hard way (no clean goodbye to clients).
func (b *Broker) Kill() { b.halt(syscall.SIGKILL) }

// Stop ends the broker cleanly.
func (b *Broker) Stop() { b.halt(syscall.SIGTERM) }

func (b *Broker) halt(sig syscall.Signal) {
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

// Message is one message a test subscriber saw.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
	At       time.Time
}

// Subscriber is a plain paho client recording everything under its
// filters.
type Subscriber struct {
	tb     testing.TB
	client mqtt.Client
	mu     sync.Mutex
	msgs   []Message
	marker string
}

var subCount int

func Subscribe(tb testing.TB, url string, filters ...string) *Subscriber {
	tb.Helper()
	subCount++
	s := &Subscriber{tb: tb, marker: fmt.Sprintf("test/marker/%d/%d", time.Now().UnixNano(), subCount)}
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

func (s *Subscriber) record(_ mqtt.Client, m mqtt.Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, Message{m.Topic(), append([]byte(nil), m.Payload()...), m.Retained(), time.Now()})
	s.mu.Unlock()
}

// Sync returns once every retained message due at subscription has
// arrived: the broker delivers them before a message published afterwards.
func (s *Subscriber) Sync() {
	s.tb.Helper()
	s.client.Publish(s.marker, 1, false, "sync").Wait()
	WaitFor(s.tb, 10*time.Second, "subscriber sync marker", func() bool {
		_, ok := s.Last(s.marker)
		return ok
	})
	s.mu.Lock()
	kept := s.msgs[:0]
	for _, m := range s.msgs {
		if m.Topic != s.marker {
			kept = append(kept, m)
		}
	}
	s.msgs = kept
	s.mu.Unlock()
}

func (s *Subscriber) Reset() {
	s.mu.Lock()
	s.msgs = nil
	s.mu.Unlock()
}

func (s *Subscriber) All(topic string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.msgs {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

func (s *Subscriber) Last(topic string) (Message, bool) {
	all := s.All(topic)
	if len(all) == 0 {
		return Message{}, false
	}
	return all[len(all)-1], true
}

// WaitFor polls cond until it holds or the deadline passes.
func WaitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Client is the subscriber's MQTT client, for extra subscriptions or
// publications of a test.
func (s *Subscriber) Client() mqtt.Client { return s.client }

// Retained connects a fresh subscriber to filters and returns what the
// broker holds retained under them, topic → message.
func Retained(tb testing.TB, url string, filters ...string) map[string]Message {
	tb.Helper()
	s := Subscribe(tb, url, filters...)
	s.Sync()
	defer s.client.Disconnect(0)
	out := map[string]Message{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		if m.Retained {
			out[m.Topic] = m
		}
	}
	return out
}

// WaitRetained polls Retained until cond holds (20 s at most) and returns
// the snapshot that satisfied it.
func WaitRetained(tb testing.TB, url, what string, cond func(map[string]Message) bool, filters ...string) map[string]Message {
	tb.Helper()
	var snap map[string]Message
	WaitFor(tb, 20*time.Second, what, func() bool {
		snap = Retained(tb, url, filters...)
		return cond(snap)
	})
	return snap
}

// Port is the broker's TCP port.
func (b *Broker) Port() int { return b.port }
