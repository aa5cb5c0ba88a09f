package discovery

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
)

// The broker's certificate is signed by the trusted CA but names another
// host, or has expired: each is reported as what it is, not as an
// untrusted CA.
func TestIntegrationTLSHostnameAndExpiry(t *testing.T) {
	brokertest.NeedMosquitto(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { // the broker may drop root privileges
		t.Fatal(err)
	}
	now := time.Now()
	ca, caKey := writeCert(t, dir, "ca", &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	server := func(name string, serial int64, dns []string, ips []net.IP, notAfter time.Time) {
		writeCert(t, dir, name, &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-24 * time.Hour), NotAfter: notAfter, DNSNames: dns, IPAddresses: ips,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, caKey)
	}
	server("other-host", 2, []string{"broker.example"}, nil, now.Add(time.Hour))
	server("expired", 3, nil, []net.IP{net.IPv4(127, 0, 0, 1)}, now.Add(-time.Hour))

	for _, c := range []struct{ cert, want string }{
		{"other-host", "TLS error: the broker's certificate does not match its host name (127.0.0.1)"},
		{"expired", "TLS error: the broker's certificate has expired or is not valid yet"},
	} {
		b := brokertest.Start(t, "certfile "+filepath.Join(dir, c.cert+".pem")+"\nkeyfile "+filepath.Join(dir, c.cert+".key")+"\n")
		cfg := testConfig(b.URL("ssl"))
		cfg.CAFile = filepath.Join(dir, "ca.pem")
		_, lb, stop := runPublisher(t, cfg)
		brokertest.WaitFor(t, 10*time.Second, "a TLS log line for "+c.cert, func() bool {
			return strings.Contains(lb.String(), c.want)
		})
		stop()
		if strings.Contains(lb.String(), "not signed by a trusted CA") {
			t.Errorf("%s reported as an untrusted CA:\n%s", c.cert, lb.String())
		}
	}
}

// The waits between connection attempts double while the broker is down,
// and start afresh after a good connection: a broker that comes back
// after a flap is reconnected to at once, not after the doubled wait.
func TestReconnectBackoffResetsAfterGoodConnection(t *testing.T) {
	b := brokertest.Prepare(t, "")
	cfg := testConfig(b.URL("tcp"))
	cfg.ReconnectMax = 8 * time.Second
	cfg.ConnectTimeout = time.Second
	log, lb := newLog()
	p, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var waits []time.Duration
	p.onWait = func(d time.Duration) { mu.Lock(); waits = append(waits, d); mu.Unlock() }
	connected := func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.connected }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Down at first: 1 s, then 2 s.
	brokertest.WaitFor(t, 10*time.Second, "two failed attempts", func() bool { mu.Lock(); defer mu.Unlock(); return len(waits) >= 2 })
	b.Start()
	brokertest.WaitFor(t, 15*time.Second, "the connection", connected)
	mu.Lock()
	before := len(waits)
	grown := waits[before-1]
	mu.Unlock()
	if grown < 2*time.Second {
		t.Fatalf("waits %v did not grow while the broker was down", waits)
	}
	b.Stop() // the flap
	brokertest.WaitFor(t, 10*time.Second, "the next wait", func() bool { mu.Lock(); defer mu.Unlock(); return len(waits) > before })
	mu.Lock()
	after := waits[before]
	mu.Unlock()
	if after != time.Second {
		t.Errorf("wait after a good connection %v, want 1 s again (waits %v)", after, waits)
	}
	b.Start()
	brokertest.WaitFor(t, 10*time.Second, "the reconnection", connected)
	if !strings.Contains(lb.String(), "connection to MQTT broker lost; reconnecting") {
		t.Errorf("the loss was not logged:\n%s", lb.String())
	}
}

// Shutdown with a frozen broker: Run returns within shutdownTimeout (plus
// the quiesce), whatever the broker does.
func TestRunStopsWithFrozenBroker(t *testing.T) {
	b := brokertest.Start(t, "")
	log, _ := newLog()
	q, err := New(testConfig(b.URL("tcp")), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	brokertest.WaitFor(t, 10*time.Second, "the connection", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.connected })
	b.Freeze()
	for _, r := range vectorReadings(t) {
		q.Publish(r) // waits for acknowledgements that never come
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case <-done:
		t.Logf("Run returned %v after cancel", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("Run still busy 5 s after its context ended")
	}
}
