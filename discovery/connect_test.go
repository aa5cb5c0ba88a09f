package discovery

import (
	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"

	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty URL", Config{}, "broker URL is empty"},
		{"scheme", Config{URL: "http://broker:1883"}, `scheme "http"`},
		{"no port", Config{URL: "tcp://broker"}, "no port"},
		{"no host", Config{URL: "tcp://:1883"}, "no host"},
		{"credentials in URL", Config{URL: "tcp://user:s3cret@broker:1883"}, "carries credentials"},
		{"CA on plain", Config{URL: "tcp://broker:1883", CAFile: notPEM}, "is not TLS"},
		{"CA missing", Config{URL: "ssl://broker:8883", CAFile: filepath.Join(dir, "nope.pem")}, "no such file"},
		{"CA not PEM", Config{URL: "ssl://broker:8883", CAFile: notPEM}, "no PEM certificate"},
		{"gateway ID", Config{URL: "tcp://broker:1883", GatewayID: "my gateway"}, "gateway ID"},
		{"base topic", Config{URL: "tcp://broker:1883", BaseTopic: "flowiq/#"}, "base topic"},
		{"negative timeout", Config{URL: "tcp://broker:1883", MeterTimeout: -time.Second}, "meter timeout"},
		{"unparsable", Config{URL: "tcp://user:s3cret@[::1"}, "not a URL"},
	}
	for _, c := range cases {
		_, err := New(c.cfg, nil)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrConfig mentioning %q", c.name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error leaks the password: %v", c.name, err)
		}
	}
	for _, u := range []string{"tcp://h:1883", "mqtt://h:1883", "ssl://h:8883", "tls://h:8883", "mqtts://h:8883", "ws://h:9001/mqtt", "wss://h/mqtt"} {
		if _, err := New(Config{URL: u}, nil); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// Publish is on the radio path: no allocation once the meter has a slot,
// and no waiting for anything.
func TestPublishDoesNotAllocate(t *testing.T) {
	p, err := New(Config{URL: "tcp://127.0.0.1:1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := radioReading(t)
	r.ManufacturerData = []byte{1, 2, 3}
	p.Publish(r)
	if n := testing.AllocsPerRun(1000, func() { p.Publish(r) }); n != 0 {
		t.Errorf("Publish allocates %v times per call", n)
	}
	// The caller may reuse its buffer: the queued copy must not change.
	r.ManufacturerData[0] = 9
	p.mu.Lock()
	got := p.slots[r.ID].r.ManufacturerData[0]
	p.mu.Unlock()
	if got != 1 {
		t.Errorf("queued reading shares the caller's buffer")
	}
}

func TestPublishBounded(t *testing.T) {
	log, lb := newLog()
	p, err := New(Config{URL: "tcp://127.0.0.1:1", MaxMeters: 4}, log)
	if err != nil {
		t.Fatal(err)
	}
	r := radioReading(t)
	for i := range 10 {
		r.ID = wmbus.ID(0x10000000 + i)
		p.Publish(r)
	}
	p.mu.Lock()
	slots, dropped := len(p.slots), p.dropped
	p.mu.Unlock()
	if slots != 4 || dropped != 6 {
		t.Errorf("slots %d dropped %d, want 4 and 6", slots, dropped)
	}
	if !strings.Contains(lb.String(), "too many meters") {
		t.Errorf("drop not logged")
	}
}

func TestDescribeConnError(t *testing.T) {
	_, dnsErr := net.LookupHost("no-such-host.invalid")
	cases := []struct {
		err  error
		want string
	}{
		{dnsErr, "host name not found"},
		{x509.UnknownAuthorityError{}, "not signed by a trusted CA"},
		{x509.HostnameError{}, "does not match its host name"},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, "broker unreachable"},
	}
	for _, c := range cases {
		if got := describeConnError(c.err); !strings.Contains(got, c.want) {
			t.Errorf("%v: %q, want %q", c.err, got, c.want)
		}
	}
}

func TestIntegrationCredentials(t *testing.T) {
	passwd := brokertest.NeedMosquittoPasswd(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	if out, err := exec.Command(passwd, "-b", "-c", pwFile, "gateway", "right-pass").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	b := brokertest.Start(t, "allow_anonymous false\npassword_file "+pwFile+"\n")

	cfg := testConfig(b.URL("tcp"))
	cfg.Username, cfg.Password = "gateway", "wrong-pass"
	_, lb, stop := runPublisher(t, cfg)
	brokertest.WaitFor(t, 10*time.Second, "a credentials log line", func() bool {
		return strings.Contains(lb.String(), "broker refused the credentials (not authorised)")
	})
	stop()
	if strings.Contains(lb.String(), "wrong-pass") {
		t.Errorf("password in the log:\n%s", lb.String())
	}

	cfg.Password = "right-pass"
	p, _, _ := runPublisher(t, cfg)
	p.Publish(vectorReadings(t)[0])
	// The test subscriber has no account, so look at the publisher's side.
	brokertest.WaitFor(t, 10*time.Second, "connection with the right password", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.connected
	})
}

// writeCert writes a PEM certificate (and key) signed by parent (self when
// nil) and returns it.
func writeCert(t *testing.T, dir, name string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o644); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestIntegrationTLS(t *testing.T) {
	brokertest.NeedMosquitto(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { // the broker may drop root privileges
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	ca, caKey := writeCert(t, dir, "ca", caTmpl, nil, nil)
	writeCert(t, dir, "other-ca", &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	writeCert(t, dir, "server", &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, caKey)
	b := brokertest.Start(t, "certfile "+filepath.Join(dir, "server.pem")+"\nkeyfile "+filepath.Join(dir, "server.key")+"\n")

	cfg := testConfig(b.URL("ssl"))
	cfg.CAFile = filepath.Join(dir, "other-ca.pem")
	_, lb, stop := runPublisher(t, cfg)
	brokertest.WaitFor(t, 10*time.Second, "a TLS log line", func() bool {
		return strings.Contains(lb.String(), "TLS error: the broker's certificate is not signed by a trusted CA")
	})
	stop()

	// Plain MQTT against the TLS port.
	_, lb, stop = runPublisher(t, testConfig(b.URL("tcp")))
	brokertest.WaitFor(t, 10*time.Second, "a log line for plain MQTT on a TLS port", func() bool {
		s := lb.String()
		return strings.Contains(s, "broker unreachable") || strings.Contains(s, "connecting to the MQTT broker failed")
	})
	stop()

	cfg.CAFile = filepath.Join(dir, "ca.pem")
	p, _, _ := runPublisher(t, cfg)
	p.Publish(vectorReadings(t)[0])
	brokertest.WaitFor(t, 10*time.Second, "a TLS connection with the right CA", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.connected
	})
}
