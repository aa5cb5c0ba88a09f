package remote

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Spec is an MQTT input: mqtt://[user:pass@]host[:port]/TOPIC-FILTER, or
// mqtts:// for TLS. The filter is used as typed, + and # included; a query
// ?client_id=NAME fixes the client ID (default: derived from the host name
// and the filter, the same every start, so the broker keeps the session).
type Spec struct {
	Broker   string // tcp://host:port or ssl://host:port
	User     string
	Password string
	Filter   string
	ClientID string
}

// Prefixes of MQTT inputs.
const (
	Prefix    = "mqtt://"
	PrefixTLS = "mqtts://"
)

// IsSpec reports whether an input spec is an MQTT input.
func IsSpec(s string) bool { return strings.HasPrefix(s, Prefix) || strings.HasPrefix(s, PrefixTLS) }

// ParseSpec reads an MQTT input spec.
func ParseSpec(spec string) (Spec, error) {
	bad := func(why string) (Spec, error) {
		return Spec{}, fmt.Errorf("input %q: %s (want mqtt://[user:pass@]host:port/TOPIC-FILTER, e.g. mqtt://broker:1883/flowiq/frames/#)", redact(spec), why)
	}
	u, err := url.Parse(spec)
	if err != nil {
		return bad("not a URL")
	}
	var s Spec
	port := "1883"
	switch u.Scheme {
	case "mqtt":
		s.Broker = "tcp://"
	case "mqtts":
		s.Broker, port = "ssl://", "8883"
	default:
		return bad("unknown scheme")
	}
	if u.Hostname() == "" {
		return bad("no broker host")
	}
	if u.Port() != "" {
		port = u.Port()
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("port " + port + " is not 1–65535")
		}
	}
	s.Broker += u.Hostname() + ":" + port
	if strings.Contains(u.Hostname(), ":") {
		s.Broker = strings.Replace(s.Broker, u.Hostname(), "["+u.Hostname()+"]", 1)
	}
	if u.User != nil {
		s.User = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	// The filter is the raw path: '#' would end a URL's path, so take it
	// from the spec itself.
	rest := spec[strings.Index(spec, "://")+3:]
	slash := strings.IndexByte(rest, '/')
	if slash < 0 || slash == len(rest)-1 {
		return bad("no topic filter after the host")
	}
	s.Filter = rest[slash+1:]
	if q := strings.LastIndex(s.Filter, "?client_id="); q >= 0 {
		s.Filter, s.ClientID = s.Filter[:q], s.Filter[q+len("?client_id="):]
	}
	if err := checkFilter(s.Filter); err != nil {
		return bad(err.Error())
	}
	if s.ClientID == "" {
		host, _ := os.Hostname()
		h := fnv.New32a()
		h.Write([]byte(s.Broker + " " + s.Filter))
		s.ClientID = fmt.Sprintf("flowiq-in-%s-%08x", host, h.Sum32())
		if len(s.ClientID) > 64 {
			s.ClientID = s.ClientID[len(s.ClientID)-64:]
		}
	}
	return s, nil
}

// checkFilter checks an MQTT topic filter: + alone in its level, # alone
// and last.
func checkFilter(f string) error {
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case strings.Contains(l, "#") && (l != "#" || i != len(levels)-1):
			return fmt.Errorf("topic filter %q: # must be a whole level and the last", f)
		case strings.Contains(l, "+") && l != "+":
			return fmt.Errorf("topic filter %q: + must be a whole level", f)
		}
	}
	return nil
}

// redact hides a password in an input spec for messages.
func redact(spec string) string {
	if u, err := url.Parse(spec); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return spec
}

// Source subscribes to frames with QoS 1 in a persistent session (clean
// session off, a fixed client ID): frames published while the decoder is
// away wait in the broker and arrive when it is back.
type Source struct {
	Spec Spec
	// Status, when set, hears the receivers' online/offline status when
	// the filter is a frames filter (<base>/frames/…): retained ones at
	// start, then every change.
	Status func(receiver, status string)

	mu     sync.Mutex
	parser Parser
	frame  Frame
}

// Name is the spec without the password.
func (s *Source) Name() string {
	n := "mqtt://"
	if strings.HasPrefix(s.Spec.Broker, "ssl://") {
		n = "mqtts://"
	}
	if s.Spec.User != "" {
		n += s.Spec.User + "@"
	}
	return n + s.Spec.Broker[strings.Index(s.Spec.Broker, "://")+3:] + "/" + s.Spec.Filter
}

// How the source talks to the broker.
const (
	connectTimeout    = 10 * time.Second
	maxReconnectAfter = 5 * time.Second
	keepAlive         = 30 * time.Second
)

// Run connects and hands every frame to frame, and every payload that is
// no frame to skip, until ctx ends. A lost connection is re-established
// by itself; Run returns an error only when the first connection fails.
func (s *Source) Run(ctx context.Context, frame func(Frame), skip func(error)) error {
	handle := func(_ mqtt.Client, m mqtt.Message) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.parser.Parse(m.Topic(), m.Payload(), &s.frame); err != nil {
			skip(fmt.Errorf("%s: topic %s: %w", s.Name(), m.Topic(), err))
			return
		}
		frame(s.frame)
	}
	subscribed := make(chan error, 1)
	o := mqtt.NewClientOptions().AddBroker(s.Spec.Broker).SetClientID(s.Spec.ClientID).
		SetUsername(s.Spec.User).SetPassword(s.Spec.Password).
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(maxReconnectAfter).
		SetConnectTimeout(connectTimeout).SetKeepAlive(keepAlive).SetOrderMatters(true).
		// Messages of the stored session may arrive before the
		// subscription below is renewed: the default handler takes them.
		SetDefaultPublishHandler(handle).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			skip(fmt.Errorf("%s: connection lost, reconnecting: %w", s.Name(), err))
		}).
		SetOnConnectHandler(func(c mqtt.Client) {
			go func() {
				if i := strings.Index(s.Spec.Filter, "/frames/"); i > 0 && s.Status != nil {
					// QoS 0: statuses are retained, never queued in the
					// session, so none arrives before this handler is set.
					t := c.Subscribe(StatusTopic(s.Spec.Filter[:i], "+"), 0, func(_ mqtt.Client, m mqtt.Message) {
						levels := strings.Split(m.Topic(), "/")
						s.Status(levels[len(levels)-2], string(m.Payload()))
					})
					t.Wait()
				}
				t := c.Subscribe(s.Spec.Filter, 1, handle)
				t.Wait()
				if err := t.Error(); err != nil {
					skip(fmt.Errorf("%s: subscribing to %s: %w", s.Name(), s.Spec.Filter, err))
				}
				select {
				case subscribed <- t.Error():
				default:
				}
			}()
		})
	o.SetCustomOpenConnectionFn(dialBuffered)
	c := mqtt.NewClient(o)
	t := c.Connect()
	select {
	case <-t.Done():
	case <-ctx.Done():
		c.Disconnect(0)
		return ctx.Err()
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	defer c.Disconnect(250)
	select {
	case err := <-subscribed:
		if err != nil {
			return fmt.Errorf("%s: subscribing: %w", s.Name(), err)
		}
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(connectTimeout):
		return fmt.Errorf("%s: %w", s.Name(), errors.New("no answer to the subscription"))
	}
	<-ctx.Done()
	return ctx.Err()
}

// dialBuffered opens the broker connection with buffers: the MQTT client
// reads each packet's header a byte at a time and writes each
// acknowledgement on its own, which unbuffered costs a system call or more
// per frame — most of the decoder's time at tens of thousands of frames a
// second.
func dialBuffered(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	d := &net.Dialer{Timeout: o.ConnectTimeout}
	var c net.Conn
	var err error
	switch u.Scheme {
	case "ssl":
		cfg := &tls.Config{ServerName: u.Hostname()}
		if o.TLSConfig != nil {
			cfg = o.TLSConfig.Clone()
		}
		c, err = tls.DialWithDialer(d, "tcp", u.Host, cfg)
	default:
		c, err = d.Dial("tcp", u.Host)
	}
	if err != nil {
		return nil, err
	}
	b := &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10), kick: make(chan struct{}, 1), done: make(chan struct{})}
	go b.flusher()
	return b, nil
}

// bufferedConn reads through a buffer and gathers writes: what is written
// while an earlier write is on its way goes out with the next one, in
// order. A failed write fails every later one, and the read side sees the
// connection closed.
type bufferedConn struct {
	net.Conn
	r    *bufio.Reader
	mu   sync.Mutex
	out  []byte
	err  error
	kick chan struct{}
	done chan struct{}
	once sync.Once
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufferedConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	b.out = append(b.out, p...)
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (b *bufferedConn) flusher() {
	defer close(b.done)
	var spare []byte
	for range b.kick {
		b.mu.Lock()
		out := b.out
		b.out, spare = spare[:0], nil // the two buffers take turns
		b.mu.Unlock()
		if len(out) == 0 {
			spare = out
			continue
		}
		if _, err := b.Conn.Write(out); err != nil {
			b.mu.Lock()
			if b.err == nil {
				b.err = err
			}
			b.mu.Unlock()
			b.Conn.Close()
			for range b.kick {
			}
			return
		}
		spare = out
	}
}

// Close sends what is gathered, then closes.
func (b *bufferedConn) Close() error {
	b.once.Do(func() {
		b.mu.Lock()
		if b.err == nil {
			b.err = net.ErrClosed
		}
		close(b.kick)
		b.mu.Unlock()
	})
	select {
	case <-b.done:
	case <-time.After(time.Second):
	}
	return b.Conn.Close()
}
