package addon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultSupervisorURL is where an add-on reaches the Supervisor.
const DefaultSupervisorURL = "http://supervisor"

// Sentinel errors of the broker lookup.
var (
	ErrNoToken           = errors.New("SUPERVISOR_TOKEN is not set")
	ErrSupervisorRefused = errors.New("the Supervisor refused the token")
	ErrNoMQTTBroker      = errors.New("no MQTT broker is installed: install the Mosquitto broker add-on or set mqtt_url")
	ErrSupervisor        = errors.New("cannot get the MQTT broker from the Supervisor")
	ErrBrokerURL         = errors.New("invalid MQTT broker URL")
)

// Broker is where to publish and how to log in.
type Broker struct {
	URL      string // tcp://host:port or ssl://host:port (also ws://, wss://)
	Username string
	Password Secret
	Protocol string // MQTT version the Supervisor reports, e.g. "3.1.1"; "" when unknown
	Source   string // "Supervisor" or "add-on options", for log lines
}

func (b Broker) String() string {
	s := b.URL
	if b.Username != "" {
		s += " as " + b.Username
	}
	return s + " (from " + b.Source + ")"
}

// LogValue keeps the password out of the log.
func (b Broker) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", b.URL), slog.String("username", b.Username),
		slog.String("source", b.Source))
}

// SupervisorFromEnv returns the Supervisor's URL ($SUPERVISOR_URL, default
// http://supervisor) and the add-on's token ($SUPERVISOR_TOKEN).
func SupervisorFromEnv() (baseURL, token string) {
	baseURL = os.Getenv("SUPERVISOR_URL")
	if baseURL == "" {
		baseURL = DefaultSupervisorURL
	}
	return baseURL, os.Getenv("SUPERVISOR_TOKEN")
}

// supervisorTimeout bounds one request; the Supervisor answers locally.
const supervisorTimeout = 15 * time.Second

// BrokerFromSupervisor asks the Supervisor for the MQTT broker it provides
// (GET <baseURL>/services/mqtt with the add-on's bearer token). Errors wrap
// ErrNoToken, ErrSupervisorRefused (HTTP 401/403), ErrNoMQTTBroker (no
// broker add-on), or ErrSupervisor (anything else), and never contain the
// token or the broker password.
func BrokerFromSupervisor(ctx context.Context, baseURL, token string) (Broker, error) {
	if token == "" {
		return Broker{}, fmt.Errorf("%w: not running as a Home Assistant add-on? set mqtt_url to name a broker", ErrNoToken)
	}
	if baseURL == "" {
		baseURL = DefaultSupervisorURL
	}
	endpoint := strings.TrimRight(baseURL, "/") + "/services/mqtt"
	ctx, cancel := context.WithTimeout(ctx, supervisorTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return Broker{}, fmt.Errorf("%w: SUPERVISOR_URL %q: %w", ErrSupervisor, baseURL, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Broker{}, fmt.Errorf("%w: cannot reach the Supervisor at %s: %w", ErrSupervisor, baseURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Broker{}, fmt.Errorf("%w: reading %s: %w", ErrSupervisor, endpoint, err)
	}

	var answer struct {
		Result  string `json:"result"`
		Message string `json:"message"`
		Data    struct {
			Host     string      `json:"host"`
			Port     json.Number `json:"port"`
			SSL      bool        `json:"ssl"`
			Username string      `json:"username"`
			Password string      `json:"password"`
			Protocol string      `json:"protocol"`
		} `json:"data"`
	}
	jsonErr := json.Unmarshal(body, &answer)
	// The Supervisor's own message, quoted only from error answers: a
	// success body holds the broker password.
	said := func() string {
		if jsonErr != nil || answer.Message == "" {
			return ""
		}
		return " (Supervisor: " + answer.Message + ")"
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return Broker{}, fmt.Errorf("%w (HTTP %d)%s", ErrSupervisorRefused, resp.StatusCode, said())
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotFound:
		// What the Supervisor answers when no add-on provides MQTT.
		return Broker{}, fmt.Errorf("%w%s", ErrNoMQTTBroker, said())
	case resp.StatusCode != http.StatusOK:
		return Broker{}, fmt.Errorf("%w: HTTP %d from %s%s", ErrSupervisor, resp.StatusCode, endpoint, said())
	case jsonErr != nil:
		return Broker{}, fmt.Errorf("%w: %s did not answer JSON", ErrSupervisor, endpoint)
	case answer.Result != "ok":
		return Broker{}, fmt.Errorf("%w: result %q", ErrSupervisor, answer.Result)
	}
	d := answer.Data
	if d.Host == "" {
		return Broker{}, fmt.Errorf("%w (the Supervisor reports no broker host)", ErrNoMQTTBroker)
	}
	port, err := strconv.Atoi(d.Port.String())
	if err != nil || port < 1 || port > 65535 {
		return Broker{}, fmt.Errorf("%w: broker port %q is not a port number", ErrSupervisor, d.Port)
	}
	scheme := "tcp"
	if d.SSL {
		scheme = "ssl"
	}
	return Broker{
		URL:      scheme + "://" + net.JoinHostPort(d.Host, strconv.Itoa(port)),
		Username: d.Username,
		Password: Secret(d.Password),
		Protocol: d.Protocol,
		Source:   "Supervisor",
	}, nil
}

// Broker returns the broker named in the options (mqtt_url) and true, or
// false when the Supervisor's broker is to be used.
func (o Options) Broker() (Broker, bool) {
	if o.MQTTURL == "" {
		return Broker{}, false
	}
	return Broker{URL: o.MQTTURL, Username: o.MQTTUsername, Password: o.MQTTPassword, Source: OptionsSource}, true
}

// ResolveBroker picks the broker: mqtt_url from the options when set, else
// the Supervisor's. mqtt_username and mqtt_password, when set, replace the
// Supervisor's credentials (a login of your own on the Mosquitto add-on).
func ResolveBroker(ctx context.Context, o Options, baseURL, token string) (Broker, error) {
	if b, ok := o.Broker(); ok {
		return b, nil
	}
	b, err := BrokerFromSupervisor(ctx, baseURL, token)
	if err != nil {
		return Broker{}, err
	}
	if o.MQTTUsername != "" {
		b.Username, b.Password = o.MQTTUsername, o.MQTTPassword
		b.Source = "Supervisor, credentials from add-on options"
	}
	return b, nil
}

// brokerSchemes maps the schemes a user may write to the ones the MQTT
// client speaks, with their default ports.
var brokerSchemes = map[string]struct {
	scheme string
	port   string
}{
	"tcp": {"tcp", "1883"}, "mqtt": {"tcp", "1883"},
	"ssl": {"ssl", "8883"}, "tls": {"ssl", "8883"}, "mqtts": {"ssl", "8883"},
	"ws": {"ws", "80"}, "wss": {"wss", "443"},
}

// normalizeBrokerURL accepts "host", "host:port" or scheme://host[:port]
// and returns scheme://host:port with a scheme the MQTT client knows.
// Credentials in the URL are refused: they belong in mqtt_username and
// mqtt_password, where the password is masked. Errors never repeat a
// password.
func normalizeBrokerURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "tcp://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: not a URL like tcp://192.168.1.10:1883", ErrBrokerURL)
	}
	if u.User != nil {
		return "", fmt.Errorf("%w: %s holds a user name or password; put them in mqtt_username and mqtt_password", ErrBrokerURL, redactURL(s))
	}
	sc, ok := brokerSchemes[strings.ToLower(u.Scheme)]
	if !ok {
		return "", fmt.Errorf("%w: %s: scheme %q is not one of tcp, mqtt, ssl, mqtts, ws, wss", ErrBrokerURL, s, u.Scheme)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("%w: %s has no host", ErrBrokerURL, s)
	}
	port := u.Port()
	if port == "" {
		port = sc.port
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("%w: %s: port must be a number from 1 to 65535", ErrBrokerURL, s)
	}
	out := sc.scheme + "://" + net.JoinHostPort(u.Hostname(), port)
	if sc.scheme == "ws" || sc.scheme == "wss" {
		out += u.EscapedPath()
	}
	return out, nil
}

// redactURL hides a password in a URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if strings.Contains(s, "@") {
			return "(a URL with credentials)"
		}
		return s
	}
	return u.Redacted()
}
