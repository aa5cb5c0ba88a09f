package discovery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/flowiq-gateway/flowiq-gateway/internal/backoff"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Timing of the publisher's own work.
const (
	publishTimeout  = 5 * time.Second       // one batch of acknowledgements
	shutdownTimeout = 2 * time.Second       // the last readings and the final "offline", together
	reconnectMin    = time.Second           // first wait before reconnecting (at most ReconnectMax), after a good connection too
	warnEvery       = 10 * time.Minute      // repeats of the same per-meter warning
	reannounceMin   = time.Second           // after Home Assistant says "online"…
	reannounceJit   = time.Second           // …plus up to this much, so many devices do not burst at once
	connErrEvery    = time.Minute           // repeats of the same connection error
	maxCheckEvery   = 30 * time.Second      // silence check period cap
	minCheckEvery   = 50 * time.Millisecond // and floor
	quiesceMillis   = 250                   // paho Disconnect quiesce
	haStatusQoS     = 1
	messageQoS      = 1
	stateBufferSize = 512 // bytes; a reading's JSON fits
	// maxIgnoredLogged: unlisted meters named at info level, per list.
	maxIgnoredLogged = 20
)

// Publisher sends readings to Home Assistant. Publish never blocks: the
// latest reading of each meter waits in a bounded set of slots and one
// goroutine (Run) turns them into discovery, state and availability
// messages whenever the broker is reachable. Every (re)connection and every
// "online" from Home Assistant re-announces everything known.
type Publisher struct {
	cfg    resolved
	site   Site
	log    *slog.Logger
	client mqtt.Client
	wake   chan struct{}
	lost   chan struct{}       // a connection ended: the connect loop takes over
	onWait func(time.Duration) // tests: each wait of the connect loop

	mu            sync.Mutex // guards the fields up to the next comment
	slots         map[wmbus.ID]*slot
	order         []wmbus.ID        // meters with a reading waiting, oldest first
	dropped       uint64            // readings refused because MaxMeters was reached
	ignored       map[wmbus.ID]bool // unlisted meters already logged
	list          map[wmbus.ID]Meter
	listSet       bool
	listDirty     bool
	gw            GatewayState
	gwDirty       bool
	resync        bool // re-announce everything on the next flush
	connected     bool
	lastConnErr   string
	lastConnErrAt time.Time
	// leftover: meters this gateway announced earlier (retained configs
	// found on the broker), checked against the meter list.
	leftover map[wmbus.ID]bool
	rx       map[wmbus.ID]*receptionState // reception quality (reception.go)

	// Owned by the Run goroutine.
	meters                                 map[wmbus.ID]*meterState
	removals                               map[wmbus.ID]bool
	batch                                  []slot
	out                                    []outMsg
	gwAnnounced, gwStateSent, gwOnlineSent bool
	gwState                                []byte
	drainReq                               chan chan struct{}
	drainers                               []chan struct{}
}

// slot holds the newest not yet processed reading of one meter.
type slot struct {
	r      kamstrup.Reading
	md     []byte // own copy of ManufacturerData: the caller may reuse its buffer
	at     time.Time
	queued bool
}

// meterState is what has been published for one meter.
type meterState struct {
	meter    Meter
	model    string // decoder's
	feats    Features
	state    []byte // last accepted state JSON
	total    float64
	hasTotal bool
	lastSeen time.Time
	seen     bool
	avail    string // last availability decided: "", Online, Offline

	discDirty, stateDirty, availDirty bool
	announced                         bool // a discovery config exists on the broker
	lastWarn                          time.Time
	suppressed                        int
}

type outMsg struct {
	m      Message
	qos    byte
	onFail func()
	tok    mqtt.Token
}

// New checks cfg and prepares a publisher; Run connects. log may be nil.
func New(cfg Config, log *slog.Logger) (*Publisher, error) {
	rc, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	p := &Publisher{
		cfg:      rc,
		site:     rc.site,
		log:      log.With("component", "mqtt"),
		wake:     make(chan struct{}, 1),
		lost:     make(chan struct{}, 1),
		drainReq: make(chan chan struct{}),
		slots:    make(map[wmbus.ID]*slot),
		meters:   make(map[wmbus.ID]*meterState),
		removals: make(map[wmbus.ID]bool),
		ignored:  make(map[wmbus.ID]bool),
		leftover: make(map[wmbus.ID]bool),
		gw:       GatewayState{SDR: "unknown"},
		gwDirty:  true,
	}
	o := mqtt.NewClientOptions().
		AddBroker(rc.broker.String()).
		SetClientID(rc.ClientID).
		SetUsername(rc.Username).
		SetPassword(rc.Password).
		SetProtocolVersion(4). // no silent fallback to 3.1: a refusal is reported as it is
		SetCleanSession(true).
		SetOrderMatters(false).
		SetWill(p.site.GatewayAvailabilityTopic(), Offline, messageQoS, true).
		// Reconnecting is the connect loop's (Run): its backoff starts
		// afresh after every good connection, so a flapping broker is
		// back within a second instead of paho's doubled wait.
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(rc.ConnectTimeout).
		// A broker that stops reading (frozen) fails writes instead of
		// blocking publications for paho's default 30 s.
		SetWriteTimeout(publishTimeout).
		SetKeepAlive(30 * time.Second).
		SetOnConnectHandler(p.onConnect).
		SetConnectionLostHandler(p.onLost).
		SetConnectionNotificationHandler(p.onNotification)
	if rc.tls != nil {
		o.SetTLSConfig(rc.tls)
	}
	p.client = mqtt.NewClient(o)
	return p, nil
}

// Connected reports whether the broker connection is up (paho reconnects
// by itself; this is for health checks).
func (p *Publisher) Connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected
}

// Site returns the topics and identity the publisher uses.
func (p *Publisher) Site() Site { return p.site }

// Publish queues r and returns at once. Only the newest reading per meter
// is kept until it is sent, so a slow or absent broker loses nothing that
// is still true. It does not allocate once a meter has a slot.
func (p *Publisher) Publish(r kamstrup.Reading) { p.publishAt(r, time.Now()) }

// Restore hands over a meter's last reading from before a restart: it is
// announced and published like a new one (so a broker without persistence
// gets it back, and a later lower total is still caught), but the meter
// counts as last heard at the reading's own time, so one that stays silent
// turns unavailable after MeterTimeout as before.
func (p *Publisher) Restore(r kamstrup.Reading) {
	at := r.Time
	if at.IsZero() {
		at = time.Now().Add(-p.cfg.MeterTimeout)
	}
	p.publishAt(r, at)
}

func (p *Publisher) publishAt(r kamstrup.Reading, now time.Time) {
	p.mu.Lock()
	if p.listSet {
		if m, ok := p.list[r.ID]; !ok || m.Disabled {
			first := !p.ignored[r.ID] && len(p.ignored) < p.cfg.MaxMeters
			if first {
				p.ignored[r.ID] = true
			}
			n := len(p.ignored)
			p.mu.Unlock()
			if first {
				// Said at info for the first few (neighbours); a flood of
				// made-up IDs goes to debug.
				lvl := slog.LevelInfo
				if n > maxIgnoredLogged {
					lvl = slog.LevelDebug
				}
				p.log.Log(context.Background(), lvl, "meter not in the meter list (or disabled); its readings are not published", "meter", r.ID.String())
			}
			return
		}
	}
	s := p.slots[r.ID]
	if s == nil {
		if len(p.slots) >= p.cfg.MaxMeters {
			p.dropped++
			n := p.dropped
			p.mu.Unlock()
			if n&(n-1) == 0 { // 1, 2, 4, 8…: visible without flooding
				p.log.Warn("too many meters; reading dropped", "meter", r.ID.String(), "max_meters", p.cfg.MaxMeters, "dropped_total", n)
			}
			return
		}
		s = &slot{}
		p.slots[r.ID] = s
	}
	s.md = append(s.md[:0], r.ManufacturerData...)
	s.r = r
	s.r.ManufacturerData = s.md
	s.at = now
	if !s.queued {
		s.queued = true
		p.order = append(p.order, r.ID)
	}
	p.mu.Unlock()
	p.signal()
}

// SetGatewayState replaces the gateway's health; it is published soon.
func (p *Publisher) SetGatewayState(g GatewayState) {
	p.mu.Lock()
	p.gw = g
	p.gwDirty = true
	p.mu.Unlock()
	p.signal()
}

// SetMeters replaces the meter list. From the first call on, only listed,
// enabled meters are published; a meter that left the list (or was
// disabled) loses its device, state and availability; a renamed one is
// re-announced. Before the first call every meter is published.
func (p *Publisher) SetMeters(ms []Meter) {
	l := make(map[wmbus.ID]Meter, len(ms))
	for _, m := range ms {
		if _, dup := l[m.ID]; dup {
			p.log.Warn("meter listed twice; the last entry wins", "meter", m.ID.String())
		}
		l[m.ID] = m
	}
	p.mu.Lock()
	p.list = l
	p.listSet = true
	p.listDirty = true
	clear(p.ignored)
	p.mu.Unlock()
	p.signal()
}

func (p *Publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Publisher) requestResync() {
	p.mu.Lock()
	p.resync = true
	p.mu.Unlock()
	p.signal()
}

// Run connects and publishes until ctx ends, then marks the gateway offline
// (retained) and disconnects. Connection problems are logged and retried,
// never returned.
func (p *Publisher) Run(ctx context.Context) error {
	p.log.Info("connecting to MQTT broker", "broker", p.cfg.broker.Redacted(), "client_id", p.cfg.ClientID,
		"user", p.cfg.Username, "tls", p.cfg.tls != nil)
	connDone := make(chan struct{})
	go func() { defer close(connDone); p.connectLoop(ctx) }()
	check := min(max(p.cfg.MeterTimeout/4, minCheckEvery), maxCheckEvery)
	tick := time.NewTicker(check)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-connDone
			p.stop()
			return nil
		case ch := <-p.drainReq:
			p.drainers = append(p.drainers, ch)
		case <-p.wake:
		case <-tick.C:
		}
		p.flushUntil(time.Now(), time.Now().Add(publishTimeout), ctx.Done())
		p.answerDrainers()
	}
}

// connectLoop connects, and after every lost connection or failed attempt
// connects again, waiting reconnectMin, doubling up to ReconnectMax; a
// good connection starts the waits afresh. Attempts and losses are
// logged by onNotification and onLost.
func (p *Publisher) connectLoop(ctx context.Context) {
	retry := backoff.Backoff{Min: min(reconnectMin, p.cfg.ReconnectMax), Max: p.cfg.ReconnectMax}
	for {
		tok := p.client.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return
		}
		if tok.Error() == nil {
			retry.Reset()
			select {
			case <-p.lost:
			case <-ctx.Done():
				return
			}
		}
		wait := retry.Next()
		if p.onWait != nil {
			p.onWait(wait)
		}
		if !backoff.Wait(ctx, wait) {
			return
		}
	}
}

// stop sends what is still queued and the gateway's "offline", then
// disconnects — all within shutdownTimeout, whatever the broker does (a
// frozen broker answers nothing; its last will then says "offline").
// The work runs apart so that no paho call can hold the shutdown.
func (p *Publisher) stop() {
	deadline := time.Now().Add(shutdownTimeout)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.flushUntil(time.Now(), deadline, nil)
		p.shutdown(deadline)
	}()
	t := time.NewTimer(shutdownTimeout + quiesceMillis*time.Millisecond + 100*time.Millisecond)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		p.log.Warn("MQTT broker did not answer in time; stopping without it (its last will marks the gateway offline)")
	}
}

func (p *Publisher) shutdown(deadline time.Time) {
	if p.client.IsConnectionOpen() {
		t := p.client.Publish(p.site.GatewayAvailabilityTopic(), messageQoS, true, Offline)
		if !t.WaitTimeout(max(time.Until(deadline), 0)) {
			p.log.Warn("gateway offline status not acknowledged before shutdown; the broker's last will covers it")
		} else if err := t.Error(); err != nil {
			p.log.Warn("publishing gateway offline status", "err", err)
		}
	}
	p.client.Disconnect(quiesceMillis)
	p.log.Info("disconnected from MQTT broker")
}

// onConnect runs in a paho goroutine after every (re)connection.
func (p *Publisher) onConnect(c mqtt.Client) {
	p.mu.Lock()
	p.connected = true
	p.lastConnErr = ""
	p.mu.Unlock()
	p.log.Info("connected to MQTT broker", "broker", p.cfg.broker.Redacted())
	// Clean session: subscriptions do not survive a reconnect.
	t := c.Subscribe(p.site.HAStatusTopic(), haStatusQoS, p.onHAStatus)
	if !t.WaitTimeout(publishTimeout) || t.Error() != nil {
		p.log.Warn("subscribing to Home Assistant status failed; entities may vanish after a Home Assistant restart until the next reconnect",
			"topic", p.site.HAStatusTopic(), "err", t.Error())
	}
	// Retained configs of meters this gateway announced before (perhaps in
	// an earlier run): one removed from the list meanwhile is removed.
	t = c.Subscribe(p.site.DeviceConfigTopic("+"), messageQoS, p.onRetainedConfig)
	if !t.WaitTimeout(publishTimeout) || t.Error() != nil {
		p.log.Warn("subscribing to discovery configs failed; meters removed while the gateway was down keep their device",
			"err", t.Error())
	}
	p.requestResync()
}

// onRetainedConfig notes meters whose retained discovery config names this
// gateway as via_device.
func (p *Publisher) onRetainedConfig(_ mqtt.Client, m mqtt.Message) {
	if !m.Retained() || len(m.Payload()) == 0 {
		return // live echo of our own publications, or a removal
	}
	var cfg struct {
		Dev struct {
			Identifiers []string `json:"identifiers"`
			Via         string   `json:"via_device"`
		} `json:"dev"`
	}
	if json.Unmarshal(m.Payload(), &cfg) != nil || cfg.Dev.Via != p.site.GatewayDeviceID() || len(cfg.Dev.Identifiers) == 0 {
		return
	}
	ident, ok := strings.CutPrefix(cfg.Dev.Identifiers[0], "kamstrup_")
	if !ok {
		return
	}
	id, err := wmbus.ParseID(ident)
	if err != nil || MeterDeviceID(id) != cfg.Dev.Identifiers[0] {
		return
	}
	p.mu.Lock()
	if len(p.leftover) < p.cfg.MaxMeters {
		p.leftover[id] = true
	}
	p.mu.Unlock()
	p.signal()
}

func (p *Publisher) onLost(_ mqtt.Client, err error) {
	p.mu.Lock()
	p.connected = false
	p.mu.Unlock()
	p.log.Warn("connection to MQTT broker lost; reconnecting", "err", err)
	select {
	case p.lost <- struct{}{}:
	default:
	}
}

// onHAStatus: Home Assistant (re)started and forgot everything not
// retained; announce again after a short random delay.
func (p *Publisher) onHAStatus(_ mqtt.Client, m mqtt.Message) {
	if string(m.Payload()) != Online {
		return
	}
	d := reannounceMin + rand.N(reannounceJit)
	p.log.Info("Home Assistant is online; re-announcing", "in", d.Round(time.Millisecond))
	time.AfterFunc(d, p.requestResync)
}

// onNotification turns paho's connection attempts into clear log lines.
func (p *Publisher) onNotification(_ mqtt.Client, n mqtt.ConnectionNotification) {
	var err error
	switch n := n.(type) {
	case mqtt.ConnectionNotificationFailed:
		err = n.Reason
	case mqtt.ConnectionNotificationBrokerFailed:
		err = n.Reason
	default:
		return
	}
	msg := describeConnError(err)
	now := time.Now()
	p.mu.Lock()
	repeat := msg == p.lastConnErr && now.Sub(p.lastConnErrAt) < connErrEvery
	if !repeat {
		p.lastConnErr, p.lastConnErrAt = msg, now
	}
	p.mu.Unlock()
	lvl := slog.LevelError
	if repeat {
		lvl = slog.LevelDebug
	}
	p.log.Log(context.Background(), lvl, msg, "broker", p.cfg.broker.Redacted(), "user", p.cfg.Username, "err", err)
}

// describeConnError names what went wrong with a connection attempt.
func describeConnError(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
		recErr    tls.RecordHeaderError
		alert     tls.AlertError
		dnsErr    *net.DNSError
		opErr     *net.OpError
		urlErr    *url.Error
	)
	switch {
	case errors.Is(err, packets.ErrorRefusedNotAuthorised), errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return "broker refused the credentials (not authorised): check the MQTT user name and password"
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return "broker rejected the client ID: set another one"
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		return "broker refused the connection: server unavailable"
	case errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return "broker refused MQTT 3.1.1"
	// Go wraps every verification failure in a CertificateVerificationError:
	// look for the specific cause first.
	case errors.As(err, &hostErr):
		return "TLS error: the broker's certificate does not match its host name (" + hostErr.Host + "): connect by a name the certificate lists"
	case errors.As(err, &certErr) && certErr.Reason == x509.Expired:
		return "TLS error: the broker's certificate has expired or is not valid yet (check its dates and this machine's clock)"
	case errors.As(err, &certErr):
		return "TLS error: the broker's certificate is invalid: " + certErr.Error()
	case errors.As(err, &unknownCA):
		return "TLS error: the broker's certificate is not signed by a trusted CA (check the CA file)"
	case errors.As(err, &verifyErr):
		return "TLS error: the broker's certificate does not verify: " + verifyErr.Err.Error()
	case errors.As(err, &recErr):
		return "TLS error: the broker did not answer with TLS (plain MQTT port? use tcp://)"
	case errors.As(err, &alert):
		return "TLS error: the broker aborted the handshake"
	case errors.As(err, &dnsErr):
		return "broker unreachable: host name not found"
	case errors.As(err, &opErr), errors.As(err, &urlErr), errors.Is(err, packets.ErrorNetworkError):
		return "broker unreachable"
	}
	return "connecting to the MQTT broker failed"
}

// flushUntil turns queued input into messages and publishes what is
// dirty, waiting for acknowledgements until deadline or until stop closes.
func (p *Publisher) flushUntil(now, deadline time.Time, stop <-chan struct{}) {
	p.mu.Lock()
	resync := p.resync
	p.resync = false
	connected := p.connected
	var list map[wmbus.ID]Meter
	listSet := p.listSet
	if p.listDirty {
		list = p.list
		p.listDirty = false
	}
	var leftover []wmbus.ID
	// An empty list removes no device left from an earlier run: it is far
	// more likely a list that could not be read than the wish to delete
	// every meter from Home Assistant.
	if listSet && len(p.list) > 0 {
		for id := range p.leftover {
			if m, ok := p.list[id]; !ok || m.Disabled {
				leftover = append(leftover, id)
			}
		}
		clear(p.leftover)
	}
	if p.gwDirty {
		if b, err := p.gw.MarshalState(); err != nil {
			p.log.Error("gateway state", "err", err)
		} else {
			p.gwState = b
			p.gwStateSent = false
		}
		p.gwDirty = false
	}
	// The batch's buffers are reused from flush to flush.
	if n := len(p.order); cap(p.batch) < n {
		p.batch = append(p.batch[:cap(p.batch)], make([]slot, n-cap(p.batch))...)
	}
	p.batch = p.batch[:len(p.order)]
	n := 0
	for _, id := range p.order {
		s := p.slots[id]
		if s == nil { // freed by a meter list change while queued
			continue
		}
		b := &p.batch[n]
		n++
		s.queued = false
		b.r, b.at = s.r, s.at
		b.md = append(b.md[:0], s.md...)
	}
	p.batch = p.batch[:n]
	p.order = p.order[:0]
	p.mu.Unlock()

	if list != nil {
		p.applyList(list, now)
	}
	for _, id := range leftover {
		if p.meters[id] == nil && !p.removals[id] {
			p.removals[id] = true
			p.log.Info("meter not in the list; removing its device left from an earlier run", "meter", id.String())
		}
	}
	for i := range p.batch {
		s := &p.batch[i]
		s.r.ManufacturerData = s.md
		p.accept(&s.r, s.at, listSet)
	}
	p.checkSilence(now)
	if resync {
		p.gwAnnounced, p.gwStateSent, p.gwOnlineSent = false, false, false
		for _, m := range p.meters {
			m.discDirty, m.stateDirty, m.availDirty = m.feats != (Features{}), m.state != nil, m.avail != ""
		}
		p.resyncReception()
	}
	if !connected {
		return
	}
	p.send(deadline, stop)
}

// applyList reconciles meter states with a new meter list.
func (p *Publisher) applyList(list map[wmbus.ID]Meter, now time.Time) {
	for id, ms := range p.meters {
		m, ok := list[id]
		if !ok || m.Disabled {
			if ms.announced || ms.state != nil || ms.avail != "" {
				p.removals[id] = true
			}
			delete(p.meters, id)
			p.log.Info("meter removed from the list; removing its device", "meter", id.String())
			continue
		}
		if m != ms.meter {
			ms.meter = m
			ms.discDirty = ms.feats != (Features{})
		}
	}
	for id, m := range list {
		if m.Disabled {
			continue
		}
		delete(p.removals, id)
		if p.meters[id] == nil {
			// Listed but not heard yet: its retained availability from an
			// earlier run turns offline if it stays silent.
			p.meters[id] = &meterState{meter: m, lastSeen: now}
		}
	}
	// Slots of meters no longer published are freed.
	p.mu.Lock()
	for id := range p.slots {
		if m, ok := list[id]; !ok || m.Disabled {
			delete(p.slots, id)
		}
	}
	p.mu.Unlock()
}

// accept folds one reading into its meter's state.
func (p *Publisher) accept(r *kamstrup.Reading, at time.Time, listSet bool) {
	ms := p.meters[r.ID]
	if ms == nil {
		if listSet {
			return // removed from the list after it was queued
		}
		if len(p.meters) >= p.cfg.MaxMeters {
			p.log.Warn("too many meters; reading dropped", "meter", r.ID.String(), "max_meters", p.cfg.MaxMeters)
			return
		}
		ms = &meterState{meter: Meter{ID: r.ID}}
		p.meters[r.ID] = ms
	}
	ms.lastSeen, ms.seen = at, true
	if ms.avail != Online {
		ms.avail, ms.availDirty = Online, true
	}
	if v, ok := r.Get(kamstrup.Total); ok && v.Known {
		if ms.hasTotal && v.V < ms.total {
			p.warnLower(ms, v.V, at)
			return
		}
		ms.total, ms.hasTotal = v.V, true
	}
	b, err := r.MarshalJSON()
	if err != nil {
		p.log.Error("meter state JSON", "meter", r.ID.String(), "err", err)
		return
	}
	ms.state, ms.stateDirty = b, true
	f := ms.feats.Union(FeaturesOf(r))
	if f != ms.feats || r.Model != ms.model {
		ms.feats, ms.model, ms.discDirty = f, r.Model, true
	}
}

func (p *Publisher) warnLower(ms *meterState, v float64, at time.Time) {
	if !ms.lastWarn.IsZero() && at.Sub(ms.lastWarn) < warnEvery {
		ms.suppressed++
		return
	}
	p.log.Warn("total volume lower than the last published one; not published (decode error or meter swap)",
		"meter", ms.meter.ID.String(), "published_m3", ms.total, "received_m3", v, "suppressed_since_last_warning", ms.suppressed)
	ms.lastWarn, ms.suppressed = at, 0
}

// checkSilence marks meters unavailable after MeterTimeout without a reading.
func (p *Publisher) checkSilence(now time.Time) {
	for _, ms := range p.meters {
		if ms.avail != Offline && now.Sub(ms.lastSeen) > p.cfg.MeterTimeout {
			ms.avail, ms.availDirty = Offline, true
			if ms.seen {
				p.log.Info("meter silent; marking it unavailable", "meter", ms.meter.ID.String(), "silent_for", now.Sub(ms.lastSeen).Round(time.Second))
			}
		}
	}
}

// send publishes everything dirty, then waits for the acknowledgements; a
// failed message stays dirty and goes out on the next flush or reconnect.
func (p *Publisher) send(deadline time.Time, stop <-chan struct{}) {
	out := p.out[:0]
	add := func(m Message, onFail func()) { out = append(out, outMsg{m: m, qos: messageQoS, onFail: onFail}) }
	if !p.gwOnlineSent {
		p.gwOnlineSent = true
		add(Message{Topic: p.site.GatewayAvailabilityTopic(), Payload: []byte(Online), Retain: true}, func() { p.gwOnlineSent = false })
	}
	if !p.gwAnnounced {
		if m, err := GatewayConfig(p.site); err != nil {
			p.log.Error("gateway discovery", "err", err)
		} else {
			p.gwAnnounced = true
			add(m, func() { p.gwAnnounced = false })
		}
	}
	if !p.gwStateSent && p.gwState != nil {
		p.gwStateSent = true
		add(Message{Topic: p.site.GatewayStateTopic(), Payload: p.gwState, Retain: p.cfg.retain}, func() { p.gwStateSent = false })
	}
	p.sendReception(add)
	for id := range p.removals {
		delete(p.removals, id)
		fail := func() { p.removals[id] = true }
		add(RemoveMeter(p.site, id), fail)
		add(ClearMeterAvailability(p.site, id), fail)
		add(ClearMeterState(p.site, id), fail)
	}
	for id, ms := range p.meters {
		if ms.discDirty {
			m, err := MeterConfig(p.site, ms.meter, ms.model, ms.feats)
			if err != nil {
				p.log.Error("meter discovery", "meter", id.String(), "err", err)
			} else {
				ms.discDirty, ms.announced = false, true
				add(m, func() { ms.discDirty = true })
			}
		}
		if ms.stateDirty {
			ms.stateDirty = false
			add(Message{Topic: p.site.MeterStateTopic(id), Payload: ms.state, Retain: p.cfg.retain}, func() { ms.stateDirty = true })
		}
		if ms.availDirty {
			ms.availDirty = false
			add(Message{Topic: p.site.MeterAvailabilityTopic(id), Payload: []byte(ms.avail), Retain: true}, func() { ms.availDirty = true })
		}
	}
	for i := range out {
		o := &out[i]
		o.tok = p.client.Publish(o.m.Topic, o.qos, o.m.Retain, o.m.Payload)
	}
	timer := time.NewTimer(max(time.Until(deadline), 0))
	defer timer.Stop()
	failed := 0
	var firstErr error
	late := false
	for i := range out {
		o := &out[i]
		if !late {
			select {
			case <-o.tok.Done():
			case <-timer.C:
				late = true
			case <-stop:
				late = true
			}
		}
		if !late && o.tok.Error() == nil {
			continue
		}
		o.onFail()
		if failed == 0 {
			firstErr = errors.New("not acknowledged in time")
			if !late {
				firstErr = o.tok.Error()
			}
		}
		failed++
	}
	if failed > 0 {
		p.log.Warn("messages not delivered to the broker; they are sent again after reconnecting", "failed", failed, "of", len(out), "err", firstErr)
	}
	clear(out) // drop references to payloads and tokens
	p.out = out[:0]
}
