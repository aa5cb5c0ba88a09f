package addon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
)

const (
	testToken    = "supervisor-token-0123456789abcdef"
	brokerSecret = "mosquitto-pw-fedcba9876543210"
)

// fakeSupervisor answers GET /services/mqtt like the Supervisor: it checks
// the bearer token, then replies with status and body.
func fakeSupervisor(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodGet || r.URL.Path != "/services/mqtt" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"result":"error","message":"unexpected request"}`)
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"result":"error","message":"Invalid token"}`)
			return
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func mqttAnswer(host string, port int, ssl bool) string {
	return fmt.Sprintf(`{"result":"ok","data":{"addon":"core_mosquitto","host":%q,"port":%d,"ssl":%t,"protocol":"3.1.1","username":"addons","password":%q}}`,
		host, port, ssl, brokerSecret)
}

func TestBrokerFromSupervisor(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		body     string
		token    string
		want     Broker
		sentinel error
		text     string
	}{
		{name: "tcp", status: 200, body: mqttAnswer("core-mosquitto", 1883, false), token: testToken,
			want: Broker{URL: "tcp://core-mosquitto:1883", Username: "addons", Password: brokerSecret, Protocol: "3.1.1", Source: "Supervisor"}},
		{name: "ssl", status: 200, body: mqttAnswer("core-mosquitto", 8883, true), token: testToken,
			want: Broker{URL: "ssl://core-mosquitto:8883", Username: "addons", Password: brokerSecret, Protocol: "3.1.1", Source: "Supervisor"}},
		{name: "ipv6 host", status: 200, body: mqttAnswer("fd00::1", 1883, false), token: testToken,
			want: Broker{URL: "tcp://[fd00::1]:1883", Username: "addons", Password: brokerSecret, Protocol: "3.1.1", Source: "Supervisor"}},
		{name: "port as text, no login", status: 200, body: `{"result":"ok","data":{"host":"core-mosquitto","port":"1883","ssl":false}}`, token: testToken,
			want: Broker{URL: "tcp://core-mosquitto:1883", Source: "Supervisor"}},
		{name: "wrong token", status: 200, body: mqttAnswer("core-mosquitto", 1883, false), token: "not-the-token",
			sentinel: ErrSupervisorRefused, text: "the Supervisor refused the token (HTTP 401) (Supervisor: Invalid token)"},
		{name: "forbidden", status: 403, body: `{"result":"error","message":"Forbidden"}`, token: testToken,
			sentinel: ErrSupervisorRefused, text: "HTTP 403"},
		{name: "no broker add-on", status: 400, body: `{"result":"error","message":"Service not enabled"}`, token: testToken,
			sentinel: ErrNoMQTTBroker, text: "no MQTT broker is installed: install the Mosquitto broker add-on or set mqtt_url (Supervisor: Service not enabled)"},
		{name: "not found", status: 404, body: `404: Not Found`, token: testToken,
			sentinel: ErrNoMQTTBroker, text: "install the Mosquitto broker add-on"},
		{name: "empty host", status: 200, body: `{"result":"ok","data":{}}`, token: testToken,
			sentinel: ErrNoMQTTBroker, text: "no broker host"},
		{name: "server error", status: 502, body: `bad gateway`, token: testToken,
			sentinel: ErrSupervisor, text: "HTTP 502"},
		{name: "not JSON", status: 200, body: `<html>` + brokerSecret, token: testToken,
			sentinel: ErrSupervisor, text: "did not answer JSON"},
		{name: "result error", status: 200, body: `{"result":"error","data":{"password":"` + brokerSecret + `"}}`, token: testToken,
			sentinel: ErrSupervisor, text: `result "error"`},
		{name: "bad port", status: 200, body: mqttAnswer("core-mosquitto", 70000, false), token: testToken,
			sentinel: ErrSupervisor, text: "not a port number"},
		{name: "no token", status: 200, body: mqttAnswer("core-mosquitto", 1883, false), token: "",
			sentinel: ErrNoToken, text: "set mqtt_url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, calls := fakeSupervisor(t, c.status, c.body)
			got, err := BrokerFromSupervisor(context.Background(), srv.URL+"/", c.token)
			if c.sentinel == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					t.Errorf("got %#v, want %#v", got, c.want)
				}
				return
			}
			if !errors.Is(err, c.sentinel) || !strings.Contains(err.Error(), c.text) {
				t.Errorf("error %v, want %v containing %q", err, c.sentinel, c.text)
			}
			if got != (Broker{}) {
				t.Errorf("a broker with an error: %#v", got)
			}
			for _, secret := range []string{testToken, brokerSecret, "not-the-token"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error repeats a secret: %v", err)
				}
			}
			if c.sentinel == ErrNoToken && calls.Load() != 0 {
				t.Error("asked the Supervisor without a token")
			}
		})
	}
}

func TestBrokerFromSupervisorUnreachable(t *testing.T) {
	srv, _ := fakeSupervisor(t, 200, "")
	url := srv.URL
	srv.Close()
	_, err := BrokerFromSupervisor(context.Background(), url, testToken)
	if !errors.Is(err, ErrSupervisor) || !strings.Contains(err.Error(), "cannot reach the Supervisor at "+url) {
		t.Errorf("error %v", err)
	}

	// Cancellation stops a Supervisor that never answers.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = BrokerFromSupervisor(ctx, hang.URL, testToken)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want a deadline", err)
	}
}

func TestSupervisorFromEnv(t *testing.T) {
	t.Setenv("SUPERVISOR_URL", "")
	t.Setenv("SUPERVISOR_TOKEN", "tok")
	if u, tok := SupervisorFromEnv(); u != "http://supervisor" || tok != "tok" {
		t.Errorf("got %q %q", u, tok)
	}
	t.Setenv("SUPERVISOR_URL", "http://127.0.0.1:9")
	if u, _ := SupervisorFromEnv(); u != "http://127.0.0.1:9" {
		t.Errorf("got %q", u)
	}
}

func TestResolveBroker(t *testing.T) {
	srv, calls := fakeSupervisor(t, 200, mqttAnswer("core-mosquitto", 1883, false))

	// mqtt_url wins; the Supervisor is not asked.
	o := Defaults()
	o.MQTTURL, o.MQTTUsername, o.MQTTPassword = "tcp://10.0.0.2:1883", "me", "mine"
	b, err := ResolveBroker(context.Background(), o, srv.URL, testToken)
	if err != nil || b != (Broker{URL: "tcp://10.0.0.2:1883", Username: "me", Password: "mine", Source: OptionsSource}) || calls.Load() != 0 {
		t.Errorf("override: %#v, %v, %d calls", b, err, calls.Load())
	}

	// No mqtt_url: the Supervisor's broker, with the user's own login.
	o.MQTTURL = ""
	b, err = ResolveBroker(context.Background(), o, srv.URL, testToken)
	if err != nil || b.URL != "tcp://core-mosquitto:1883" || b.Username != "me" || b.Password != "mine" || calls.Load() != 1 {
		t.Errorf("credentials override: %#v, %v", b, err)
	}

	// Nothing set: the Supervisor's broker as it is.
	b, err = ResolveBroker(context.Background(), Defaults(), srv.URL, testToken)
	if err != nil || b.Username != "addons" || b.Password != brokerSecret {
		t.Errorf("supervisor: %#v, %v", b, err)
	}
	if s := b.String(); strings.Contains(s, brokerSecret) || s != "tcp://core-mosquitto:1883 as addons (from Supervisor)" {
		t.Errorf("String() = %q", s)
	}
	if s := fmt.Sprintf("%v %+v %#v", b, b, b); strings.Contains(s, brokerSecret) {
		t.Errorf("fmt prints the password: %s", s)
	}

	// Errors pass through.
	if _, err := ResolveBroker(context.Background(), Defaults(), srv.URL, "wrong"); !errors.Is(err, ErrSupervisorRefused) {
		t.Errorf("error %v", err)
	}
}

func TestNormalizeBrokerURL(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{"core-mosquitto", "tcp://core-mosquitto:1883", ""},
		{"192.168.1.10:1884", "tcp://192.168.1.10:1884", ""},
		{"mqtt://broker.local", "tcp://broker.local:1883", ""},
		{"MQTTS://broker.local", "ssl://broker.local:8883", ""},
		{"tls://broker.local:8884", "ssl://broker.local:8884", ""},
		{"ssl://[fd00::2]", "ssl://[fd00::2]:8883", ""},
		{"ws://broker.local:9001/mqtt", "ws://broker.local:9001/mqtt", ""},
		{"wss://broker.local", "wss://broker.local:443", ""},
		{"http://broker.local", "", `scheme "http"`},
		{"tcp://:1883", "", "has no host"},
		{"tcp://broker.local:0", "", "port must be"},
		{"tcp://broker.local:port", "", "not a URL"},
		{"tcp://u:topsecret@broker.local", "", "put them in mqtt_username"},
	}
	for _, c := range cases {
		got, err := normalizeBrokerURL(c.in)
		if c.err == "" {
			if err != nil || got != c.want {
				t.Errorf("normalizeBrokerURL(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrBrokerURL) || !strings.Contains(err.Error(), c.err) {
			t.Errorf("normalizeBrokerURL(%q) error %v, want %q", c.in, err, c.err)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error repeats the password: %v", err)
		}
	}
}

// TestSupervisorBrokerConnects: the broker the fake Supervisor names, with
// its credentials, is one a real Mosquitto accepts; a wrong password is
// refused.
func TestSupervisorBrokerConnects(t *testing.T) {
	port := startMosquitto(t, "addons", brokerSecret)
	srv, _ := fakeSupervisor(t, 200, mqttAnswer("127.0.0.1", port, false))
	b, err := BrokerFromSupervisor(context.Background(), srv.URL, testToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(b); err != nil {
		t.Fatalf("connect to %v: %v", b, err)
	}
	b.Password = "wrong"
	if err := connect(b); err == nil {
		t.Fatal("the broker accepted a wrong password")
	}
}

func connect(b Broker) error {
	opts := mqtt.NewClientOptions().AddBroker(b.URL).SetUsername(b.Username).SetPassword(string(b.Password)).
		SetClientID("addon-test").SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetConnectRetry(false)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return errors.New("timeout")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	c.Disconnect(100)
	return nil
}

// startMosquitto runs a Mosquitto that requires user/password on a free
// local port, for the life of the test.
func startMosquitto(t *testing.T, user, password string) int {
	t.Helper()
	pwfile := filepath.Join(t.TempDir(), "passwd")
	if out, err := exec.Command(brokertest.NeedMosquittoPasswd(t), "-c", "-b", pwfile, user, password).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	return brokertest.Start(t, "allow_anonymous false\npassword_file "+pwfile+"\n").Port()
}
