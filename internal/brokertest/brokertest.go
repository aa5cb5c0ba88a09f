// Package brokertest runs a real Mosquitto broker on a free local port for
// tests, and a recording MQTT subscriber. It is test support only.
package brokertest

import (
	"errors"
	"fmt"
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

	"github.com/flowiq-gateway/flowiq-gateway/internal/syncbuf"
)

const mosquittoPath = "/usr/sbin/mosquitto"

// NeedMosquitto returns the broker binary, or fails the test: the MQTT
// integration tests never skip. `make test` (its deps target) installs the
// Debian package mosquitto.
func NeedMosquitto(tb testing.TB) string {
	tb.Helper()
	return need(tb, mosquittoPath, "mosquitto")
}

// NeedMosquittoPasswd returns mosquitto_passwd (Debian package mosquitto),
// or fails the test.
func NeedMosquittoPasswd(tb testing.TB) string {
	tb.Helper()
	return need(tb, "/usr/bin/mosquitto_passwd", "mosquitto_passwd")
}

func need(tb testing.TB, path, name string) string {
	tb.Helper()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	tb.Fatalf("%s is not installed (%s, $PATH): run `make test`, or `make deps` to install it (apt-get install mosquitto)", name, path)
	return ""
}

// startAttempts bounds how often Start takes a fresh port when another
// process bound the broker's port first.
const startAttempts = 5

// errPortTaken is Mosquitto failing to bind its port.
var errPortTaken = errors.New("port taken by another process")

// Broker is a real Mosquitto on a free local port, owned by one test.
//
// Between Prepare and Start, and (as far as the kernel allows, see
// holdAgain) while a started broker is down, the port is held by a socket
// that is bound but does not listen: no other process can listen on it or
// use it as the local port of a connection, and clients are refused as by a
// port without a broker. Start releases it just before Mosquitto binds. Should another process win that short race, Start moves
// to a fresh port if none was handed out yet (URL, Port) and fails clearly
// otherwise.
type Broker struct {
	tb    testing.TB
	bin   string
	dir   string
	extra string // appended to mosquitto.conf (listener options, auth)

	mu      sync.Mutex
	port    int
	hold    int  // file descriptor holding port while no broker runs, or -1
	shared  bool // port handed out (URL, Port): it cannot change any more
	started bool // Mosquitto ran on port: a restart must keep it
	cmd     *exec.Cmd
	log     *syncbuf.Buffer
	exited  chan struct{}
}

// holdPort binds a TCP socket to 127.0.0.1:port (0: a free port) without
// listening and returns it with its port. reuse sets SO_REUSEADDR.
func holdPort(port int, reuse bool) (fd, bound int, err error) {
	fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	if reuse {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			syscall.Close(fd)
			return -1, 0, err
		}
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return -1, 0, fmt.Errorf("binding 127.0.0.1:%d: %w", port, err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return -1, 0, err
	}
	return fd, sa.(*syscall.SockaddrInet4).Port, nil
}

// reserveFresh holds a new free port for the broker. Called with b.mu held.
func (b *Broker) reserveFresh() {
	fd, port, err := holdPort(0, false)
	if err != nil {
		b.tb.Fatalf("reserving a local port: %v", err)
	}
	b.hold, b.port = fd, port
}

// release lets go of the held port. Called with b.mu held.
func (b *Broker) release() {
	if b.hold >= 0 {
		syscall.Close(b.hold)
		b.hold = -1
	}
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
	b := &Broker{tb: tb, bin: NeedMosquitto(tb), dir: tb.TempDir(), extra: extra, hold: -1}
	b.mu.Lock()
	b.reserveFresh()
	b.mu.Unlock()
	tb.Cleanup(func() {
		b.halt(syscall.SIGTERM)
		b.mu.Lock()
		b.release()
		b.mu.Unlock()
	})
	return b
}

// URL is the broker's address with the given scheme ("tcp").
func (b *Broker) URL(scheme string) string { return fmt.Sprintf("%s://127.0.0.1:%d", scheme, b.Port()) }

// Port is the broker's TCP port. From now on the broker keeps it.
func (b *Broker) Port() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.shared = true
	return b.port
}

// Start (re)starts the broker on its port and waits until it accepts
// connections. A first start moves to a fresh port when another process
// took this one and it was not handed out yet; otherwise a taken port
// fails the test.
func (b *Broker) Start() {
	b.tb.Helper()
	for attempt := 1; ; attempt++ {
		err := b.start()
		if err == nil {
			return
		}
		b.mu.Lock()
		port, shared, started := b.port, b.shared, b.started
		b.mu.Unlock()
		switch {
		case !errors.Is(err, errPortTaken):
			b.tb.Fatal(err)
		case started:
			b.tb.Fatalf("restarting mosquitto: another process took port %d while the broker was down; a restarted broker must keep its port\n%s", port, b.Log())
		case shared:
			b.tb.Fatalf("starting mosquitto: another process took port %d, already handed out to the test (URL, Port)\n%s", port, b.Log())
		case attempt == startAttempts:
			b.tb.Fatalf("starting mosquitto: %d fresh ports in a row were taken by other processes before the broker bound them\n%s", attempt, b.Log())
		}
		b.tb.Logf("mosquitto: port %d was taken by another process; trying a fresh port", port)
		b.mu.Lock()
		b.reserveFresh()
		b.mu.Unlock()
	}
}

// start runs Mosquitto once on b.port and waits for it to listen. It
// returns errPortTaken when Mosquitto could not bind the port.
func (b *Broker) start() error {
	b.mu.Lock()
	port := b.port
	b.mu.Unlock()
	// Mosquitto's own log says when it listens or why it could not: the
	// default log types, stated so that extra cannot lose them.
	conf := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nlog_dest stderr\n", port) +
		"log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
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
		return err
	}
	cmd := exec.Command(b.bin, "-c", path)
	log := &syncbuf.Buffer{}
	cmd.Stderr = log
	exited := make(chan struct{})
	b.mu.Lock()
	b.release() // the short window another process may win; detected below
	err := cmd.Start()
	if err == nil {
		go func() { _ = cmd.Wait(); close(exited) }()
		b.cmd, b.log, b.exited = cmd, log, exited
	}
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("starting mosquitto: %w", err)
	}
	// Mosquitto logs "… running" once its listener is bound; a dial alone
	// could reach another process on the port.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), " running") {
		select {
		case <-exited:
			b.mu.Lock()
			b.cmd = nil
			b.mu.Unlock()
			if strings.Contains(log.String(), "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("mosquitto exited:\n%s", log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mosquitto did not report listening on port %d within 10s:\n%s", port, log)
		}
	}
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		return fmt.Errorf("mosquitto reports listening on port %d but refuses connections: %v\n%s", port, err, log)
	}
	c.Close()
	b.mu.Lock()
	b.started = true
	b.mu.Unlock()
	return nil
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

// Kill stops the broker the hard way (no clean goodbye to clients). The
// port stays held for a restart.
func (b *Broker) Kill() { b.halt(syscall.SIGKILL); b.holdAgain() }

// Stop ends the broker cleanly. The port stays held for a restart.
func (b *Broker) Stop() { b.halt(syscall.SIGTERM); b.holdAgain() }

// Freeze stops the broker process (SIGSTOP) without closing anything: its
// connections stay open and unanswered, as with a hung broker. The test
// ends with it thawed (Thaw), so that it can be stopped.
func (b *Broker) Freeze() {
	b.signal(syscall.SIGSTOP)
	b.tb.Cleanup(b.Thaw)
}

// Thaw continues a frozen broker (SIGCONT); a stopped one stays stopped.
func (b *Broker) Thaw() {
	b.mu.Lock()
	cmd := b.cmd
	b.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
}

func (b *Broker) signal(sig syscall.Signal) {
	b.mu.Lock()
	cmd := b.cmd
	b.mu.Unlock()
	if cmd == nil {
		b.tb.Fatalf("broker not running: cannot send %v", sig)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		b.tb.Fatalf("broker: %v: %v", sig, err)
	}
}

// holdAgain holds the port of a stopped broker until it restarts. Best
// effort: while connections of the broker linger in TIME_WAIT the port can
// only be held with SO_REUSEADDR, which keeps it from being picked as the
// local port of a connection but not from a listener that sets
// SO_REUSEADDR too. Should another process have taken it, the restart says
// so.
func (b *Broker) holdAgain() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hold >= 0 || b.cmd != nil {
		return
	}
	for _, reuse := range []bool{false, true} {
		if fd, _, err := holdPort(b.port, reuse); err == nil {
			b.hold = fd
			return
		}
	}
}

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
