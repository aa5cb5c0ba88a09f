package discovery

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config configures a Publisher. Zero values take the documented defaults.
type Config struct {
	// URL of the broker: tcp://, mqtt://, ssl://, tls://, mqtts://, ws:// or
	// wss://, with host and port ("tcp://core-mosquitto:1883").
	URL      string
	Username string
	Password string // never logged
	ClientID string // default "flowiq-<GatewayID>"
	// CAFile is a PEM file of CA certificates the broker's certificate must
	// chain to (ssl/tls/mqtts/wss only); empty: the system roots.
	CAFile string

	DiscoveryPrefix string // default "homeassistant"
	// StatusTopic is Home Assistant's birth topic, watched for "online" to
	// announce everything again. Default "homeassistant/status" whatever the
	// discovery prefix: Home Assistant does not derive one from the other.
	StatusTopic string
	BaseTopic   string // default "flowiq"
	// Retain publishes meter and gateway state retained; nil means true.
	Retain *bool
	// MeterTimeout: a meter silent this long is marked unavailable
	// (Kamstrup meters send every 16 s). Default 10 minutes.
	MeterTimeout time.Duration

	GatewayID   string // device identifier; default "flowiq_gateway"
	GatewayName string // default "flowIQ Gateway"
	SWVersion   string // published in the origin and gateway device when set
	// ConfigurationURL links every device to where it is configured (the
	// add-on's page); empty: no link.
	ConfigurationURL string

	// ReconnectMax caps the wait between reconnect attempts: 1 s, doubling
	// up to it, and 1 s again after a good connection. Default 1 minute.
	ReconnectMax time.Duration
	// ConnectTimeout bounds one connection attempt. Default 10 s.
	ConnectTimeout time.Duration
	// MaxMeters bounds how many distinct meters are kept (queue slots and
	// state); readings of further meters are dropped with a warning.
	// Default 1024.
	MaxMeters int
}

// Defaults.
const (
	DefaultMeterTimeout   = 10 * time.Minute
	DefaultReconnectMax   = time.Minute
	DefaultConnectTimeout = 10 * time.Second
	DefaultMaxMeters      = 1024
)

// tlsSchemes are the URL schemes paho opens with TLS.
var schemes = map[string]bool{ // scheme → uses TLS
	"tcp": false, "mqtt": false, "ws": false,
	"ssl": true, "tls": true, "mqtts": true, "wss": true,
}

// resolved is a checked Config with defaults applied.
type resolved struct {
	Config
	site   Site
	broker *url.URL
	tls    *tls.Config // nil: plain
	retain bool
}

func (c Config) resolve() (resolved, error) {
	r := resolved{Config: c, retain: c.Retain == nil || *c.Retain}
	var err error
	r.site, err = Site{DiscoveryPrefix: c.DiscoveryPrefix, BaseTopic: c.BaseTopic, GatewayID: c.GatewayID,
		GatewayName: c.GatewayName, SWVersion: c.SWVersion, StatusTopic: c.StatusTopic,
		ConfigurationURL: c.ConfigurationURL}.Normalize()
	if err != nil {
		return r, err
	}
	if c.URL == "" {
		return r, fmt.Errorf("%w: broker URL is empty", ErrConfig)
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		// url.Parse quotes the whole URL, which may hold a password.
		return r, fmt.Errorf("%w: broker URL %q: not a URL", ErrConfig, redact(c.URL))
	}
	useTLS, ok := schemes[u.Scheme]
	if !ok {
		return r, fmt.Errorf("%w: broker URL %q: scheme %q, want tcp, mqtt, ssl, tls, mqtts, ws or wss", ErrConfig, u.Redacted(), u.Scheme)
	}
	if u.Hostname() == "" {
		return r, fmt.Errorf("%w: broker URL %q has no host", ErrConfig, u.Redacted())
	}
	if u.Port() == "" && (u.Scheme != "ws" && u.Scheme != "wss") {
		return r, fmt.Errorf("%w: broker URL %q has no port (1883 plain, 8883 TLS)", ErrConfig, u.Redacted())
	}
	if u.User != nil {
		// Credentials belong in Username/Password, where they stay out of logs.
		return r, fmt.Errorf("%w: broker URL %q carries credentials; set the user name and password separately", ErrConfig, u.Redacted())
	}
	r.broker = u
	if c.CAFile != "" && !useTLS {
		return r, fmt.Errorf("%w: CA file %q given but broker URL %q is not TLS (use ssl:// or wss://)", ErrConfig, c.CAFile, u.Redacted())
	}
	if useTLS {
		r.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return r, fmt.Errorf("%w: CA file: %w", ErrConfig, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return r, fmt.Errorf("%w: CA file %q holds no PEM certificate", ErrConfig, c.CAFile)
			}
			r.tls.RootCAs = pool
		}
	}
	if r.ClientID == "" {
		r.ClientID = "flowiq-" + r.site.GatewayID
	}
	if r.MeterTimeout == 0 {
		r.MeterTimeout = DefaultMeterTimeout
	}
	if r.ReconnectMax == 0 {
		r.ReconnectMax = DefaultReconnectMax
	}
	if r.ConnectTimeout == 0 {
		r.ConnectTimeout = DefaultConnectTimeout
	}
	if r.MaxMeters == 0 {
		r.MaxMeters = DefaultMaxMeters
	}
	for _, d := range [...]struct {
		what string
		v    time.Duration
	}{{"meter timeout", r.MeterTimeout}, {"reconnect max", r.ReconnectMax}, {"connect timeout", r.ConnectTimeout}} {
		if d.v < 0 {
			return r, fmt.Errorf("%w: %s %v is negative", ErrConfig, d.what, d.v)
		}
	}
	if r.MaxMeters < 0 {
		return r, fmt.Errorf("%w: max meters %d is negative", ErrConfig, r.MaxMeters)
	}
	return r, nil
}

// redact hides anything between "//" and "@" of an unparsable URL.
func redact(s string) string {
	if i, j := strings.Index(s, "//"), strings.LastIndex(s, "@"); i >= 0 && j > i {
		return s[:i+2] + "xxxxx" + s[j:]
	}
	return s
}
