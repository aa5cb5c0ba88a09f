package brokertest

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// takenPort listens on a free port for the life of the test, as another
// process would.
func takenPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// fatalTB records the first Fatal and ends the goroutine like testing.T.
type fatalTB struct {
	testing.TB
	fatal chan string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatal(args ...any) { f.fatal <- fmt.Sprint(args...); runtime.Goexit() }

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fatal <- fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// startFails runs b.Start, which must fail the test with a message
// containing want.
func startFails(t *testing.T, b *Broker, want string) {
	t.Helper()
	ft := &fatalTB{TB: t, fatal: make(chan string, 1)}
	b.tb = ft
	done := make(chan struct{})
	go func() { defer close(done); b.Start() }()
	<-done
	select {
	case msg := <-ft.fatal:
		if !strings.Contains(msg, want) {
			t.Errorf("Start failed with %q, want it to mention %q", msg, want)
		}
	default:
		t.Errorf("Start succeeded on a taken port; want a failure mentioning %q", want)
	}
	b.tb = t
}

func TestPreparedPortRefusesUntilStart(t *testing.T) {
	b := Prepare(t, "")
	addr := fmt.Sprintf("127.0.0.1:%d", b.Port())
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("a connection to the held port of a broker not started yet was accepted")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial before Start: %v, want connection refused", err)
	}
	// Nobody else can listen on it meanwhile.
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Fatal("another listener took the held port")
	}
	b.Start()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dial after Start: %v", err)
	}
	c.Close()
}

func TestStartMovesOffATakenPort(t *testing.T) {
	b := Prepare(t, "")
	b.mu.Lock()
	b.release()
	taken := takenPort(t)
	b.port = taken // another process won the race for the port
	b.mu.Unlock()
	b.Start()
	if b.Port() == taken {
		t.Fatalf("the broker claims port %d, held by another listener", taken)
	}
	s := Subscribe(t, b.URL("tcp"), "x")
	s.Sync()
}

func TestStartKeepsAHandedOutPort(t *testing.T) {
	b := Prepare(t, "")
	b.mu.Lock()
	b.release()
	b.port = takenPort(t)
	b.shared = true // a client was told the URL
	b.mu.Unlock()
	startFails(t, b, "already handed out")
}

func TestRestartSamePort(t *testing.T) {
	b := Start(t, "")
	port := b.Port()
	Subscribe(t, b.URL("tcp"), "x").Sync()
	b.Kill() // the subscriber's connection lingers in TIME_WAIT on the port
	b.Start()
	if b.Port() != port {
		t.Fatalf("restarted on port %d, want %d", b.Port(), port)
	}
	Subscribe(t, b.URL("tcp"), "x").Sync()
}

func TestStoppedBrokerHoldsItsPort(t *testing.T) {
	b := Start(t, "")
	b.Stop() // no client connected: nothing lingers, the port is held fully
	if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", b.Port())); err == nil {
		l.Close()
		t.Fatal("another listener took the port of a stopped broker")
	}
	b.Start()
	Subscribe(t, b.URL("tcp"), "x").Sync()
}

func TestRestartOnTakenPortFails(t *testing.T) {
	b := Start(t, "")
	b.Stop()
	b.mu.Lock()
	b.release()
	b.mu.Unlock()
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", b.Port()))
	if err != nil {
		t.Fatalf("taking the stopped broker's port: %v", err)
	}
	defer l.Close()
	startFails(t, b, "must keep its port")
}
