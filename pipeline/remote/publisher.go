package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/flowiq-gateway/flowiq-gateway/internal/backoff"
)

// PublisherConfig says where a receiver publishes.
type PublisherConfig struct {
	Broker   string // paho broker URL: tcp://host:1883, ssl://, ws://
	User     string
	Password string
	Base     string // base topic, default DefaultBase
	Name     string // the receiver's name: a topic level
	// Buffer bounds the frames kept while the broker is away (default
	// DefaultBuffer); past it the oldest are dropped, and counted.
	Buffer int
	Log    *slog.Logger
}

// DefaultBuffer is how many frames a receiver keeps while the broker is
// away: a few hours of a busy neighbourhood, a few hundred KB.
const DefaultBuffer = 20000

// batch bounds the frames in flight at once.
const batch = 64

type message struct {
	topic   string
	payload []byte
}

// Publisher sends a receiver's frames with QoS 1. Frames wait in a
// bounded queue until the broker has acknowledged them; while the broker
// is away the queue keeps the newest frames, and they go out on
// reconnect. Its session is persistent (clean session off, client ID
// flowiq-rx-NAME), so messages in flight when the connection broke are
// sent again by the MQTT client itself. The receiver's status is retained:
// online while connected, offline at shutdown and, as its last will, when
// it vanishes.
type Publisher struct {
	cfg    PublisherConfig
	client mqtt.Client

	mu      sync.Mutex
	queue   []message // ring
	head, n int
	dropped int64
	flying  int // taken from the queue, not yet acknowledged
	wake    chan struct{}
	up      chan struct{} // signalled on each (re)connection
	sent    int64
}

// NewPublisher checks the configuration; Run connects.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Base == "" {
		cfg.Base = DefaultBase
	}
	if err := CheckBase(cfg.Base); err != nil {
		return nil, err
	}
	if err := CheckName("receiver name", cfg.Name); err != nil {
		return nil, err
	}
	if cfg.Broker == "" {
		return nil, errors.New("no broker: give --mqtt tcp://host:1883")
	}
	if !strings.Contains(cfg.Broker, "://") {
		cfg.Broker = "tcp://" + cfg.Broker // host:port, as people type it
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	p := &Publisher{cfg: cfg, queue: make([]message, cfg.Buffer),
		wake: make(chan struct{}, 1), up: make(chan struct{}, 1)}
	status := StatusTopic(cfg.Base, cfg.Name)
	o := mqtt.NewClientOptions().AddBroker(cfg.Broker).SetClientID("flowiq-rx-"+cfg.Name).
		SetUsername(cfg.User).SetPassword(cfg.Password).
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(maxReconnectAfter).
		SetConnectTimeout(connectTimeout).SetKeepAlive(keepAlive).
		SetBinaryWill(status, []byte(Offline), 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			cfg.Log.Warn("broker connection lost; keeping frames until it is back", "err", err, "buffer", cfg.Buffer)
		}).
		SetOnConnectHandler(func(c mqtt.Client) {
			cfg.Log.Info("connected to the broker", "broker", cfg.Broker, "frames_waiting", p.Waiting())
			c.Publish(status, 1, true, Online)
			select {
			case p.up <- struct{}{}:
			default:
			}
		})
	o.SetStore(copyingStore{mqtt.NewMemoryStore()})
	p.client = mqtt.NewClient(o)
	return p, nil
}

// copyingStore keeps its own copies of messages and hands out copies.
// After a reconnection the MQTT client marks each stored message as a
// duplicate and sends it again; a message published at that very moment
// is also on its way out, and sharing one object between the two would
// race.
type copyingStore struct{ mqtt.Store }

func (s copyingStore) Put(key string, cp packets.ControlPacket) { s.Store.Put(key, copyPublish(cp)) }
func (s copyingStore) Get(key string) packets.ControlPacket     { return copyPublish(s.Store.Get(key)) }

func copyPublish(cp packets.ControlPacket) packets.ControlPacket {
	if p, ok := cp.(*packets.PublishPacket); ok {
		c := *p
		return &c
	}
	return cp
}

// Topic is where a frame of the meter with this ID goes.
func (p *Publisher) Topic(id string) string { return FrameTopic(p.cfg.Base, Shard(id), p.cfg.Name) }

// Send queues one message; it never blocks. payload is kept as it is.
func (p *Publisher) Send(topic string, payload []byte) {
	p.mu.Lock()
	if p.n == len(p.queue) {
		p.head = (p.head + 1) % len(p.queue)
		p.n--
		p.dropped++
		if p.dropped&(p.dropped-1) == 0 { // 1, 2, 4, 8, …: a long outage does not flood the log
			p.cfg.Log.Warn("frame buffer full while the broker is away: oldest frames dropped", "dropped", p.dropped, "buffer", len(p.queue))
		}
	}
	p.queue[(p.head+p.n)%len(p.queue)] = message{topic, payload}
	p.n++
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Waiting returns how many frames wait for the broker's acknowledgement.
func (p *Publisher) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n + p.flying
}

// Dropped returns how many frames the full buffer lost.
func (p *Publisher) Dropped() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// Run connects and sends until ctx ends, then says offline and leaves.
func (p *Publisher) Run(ctx context.Context) error {
	go p.connect(ctx)
	defer func() {
		if t := p.client.Publish(StatusTopic(p.cfg.Base, p.cfg.Name), 1, true, Offline); !t.WaitTimeout(2 * time.Second) {
			p.cfg.Log.Warn("offline status not acknowledged; the broker's last will says it instead")
		}
		p.client.Disconnect(500)
		if n := p.Waiting(); n > 0 {
			p.cfg.Log.Warn("frames not delivered at shutdown", "frames", n)
		}
	}()
	var out []message
	var tokens []mqtt.Token
	for {
		out = p.take(out[:0])
		if len(out) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-p.wake:
			}
			continue
		}
		for !p.client.IsConnectionOpen() {
			select {
			case <-ctx.Done():
				p.putBack(out)
				return nil
			case <-p.up:
			case <-time.After(time.Second):
			}
		}
		tokens = tokens[:0]
		for _, m := range out {
			tokens = append(tokens, p.client.Publish(m.topic, 1, false, m.payload))
		}
		var failed []message
		for i, t := range tokens {
			select {
			case <-t.Done():
			case <-ctx.Done():
				p.putBack(out[i:])
				return nil
			}
			if t.Error() != nil {
				failed = append(failed, out[i])
			}
		}
		if len(failed) > 0 {
			// Refused while the connection broke: back to the front, sent
			// again once it is up (a copy the broker did get is one the
			// decoder recognises).
			p.putBack(failed)
			select {
			case <-p.up:
			case <-time.After(time.Second):
			case <-ctx.Done():
				return nil
			}
		}
		p.mu.Lock()
		p.sent += int64(len(out) - len(failed))
		p.flying = 0
		p.mu.Unlock()
	}
}

// connect tries until the broker answers, saying why it does not; from
// then on the MQTT client reconnects by itself. Frames wait meanwhile.
func (p *Publisher) connect(ctx context.Context) {
	retry := backoff.Backoff{Min: time.Second, Max: maxReconnectAfter}
	for attempt := 1; ; attempt++ {
		t := p.client.Connect()
		select {
		case <-t.Done():
		case <-ctx.Done():
			return
		}
		if t.Error() == nil {
			return
		}
		if attempt&(attempt-1) == 0 { // 1, 2, 4, 8, …
			p.cfg.Log.Warn("broker not reachable; keeping frames and trying again", "broker", p.cfg.Broker, "err", t.Error(), "attempts", attempt)
		}
		if !backoff.Wait(ctx, retry.Next()) {
			return
		}
	}
}

// take moves up to batch messages from the queue into out.
func (p *Publisher) take(out []message) []message {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.n > 0 && len(out) < batch {
		out = append(out, p.queue[p.head])
		p.queue[p.head] = message{}
		p.head = (p.head + 1) % len(p.queue)
		p.n--
	}
	p.flying = len(out)
	return out
}

// Flush waits until every frame queued has been acknowledged, or ctx ends.
func (p *Publisher) Flush(ctx context.Context) error {
	for {
		p.mu.Lock()
		idle := p.n == 0 && p.flying == 0
		p.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d frames not yet acknowledged by the broker: %w", p.Waiting(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// putBack returns messages to the front of the queue, in order, as far as
// there is room next to the newer ones.
func (p *Publisher) putBack(ms []message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flying = 0
	for i := len(ms) - 1; i >= 0; i-- {
		if p.n == len(p.queue) {
			p.dropped += int64(i + 1)
			return
		}
		p.head = (p.head - 1 + len(p.queue)) % len(p.queue)
		p.queue[p.head] = ms[i]
		p.n++
	}
}

// Sent returns how many frames the broker acknowledged.
func (p *Publisher) Sent() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// String describes the publisher for logs.
func (p *Publisher) String() string {
	return fmt.Sprintf("receiver %s → %s (%s)", p.cfg.Name, p.cfg.Broker, FramesFilter(p.cfg.Base, ""))
}
