package discovery

import (
	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"

	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// BenchmarkPublishEnqueue is the cost on the radio path: Publish of a known
// meter (no broker involved).
func BenchmarkPublishEnqueue(b *testing.B) {
	p, err := New(Config{URL: "tcp://127.0.0.1:1"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	r := radioReading(b)
	b.ReportAllocs()
	for b.Loop() {
		p.Publish(r)
	}
}

// latencySub receives meter states and measures reading time → arrival.
type latencySub struct {
	mu    sync.Mutex
	lat   []time.Duration
	last  map[string]string // topic → last "time" seen
	count int
	got   chan struct{}
}

func newLatencySub(b *testing.B, url string) *latencySub {
	ls := &latencySub{last: map[string]string{}, got: make(chan struct{}, 1<<16)}
	s := brokertest.Subscribe(b, url)
	if t := s.Client().Subscribe("flowiq/+/state", 1, ls.onMessage); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		b.Fatalf("subscribe: %v", t.Error())
	}
	return ls
}

func (ls *latencySub) onMessage(_ mqtt.Client, m mqtt.Message) {
	now := time.Now()
	var v struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal(m.Payload(), &v) != nil || v.Time.IsZero() {
		return
	}
	ls.mu.Lock()
	ls.lat = append(ls.lat, now.Sub(v.Time))
	ls.last[m.Topic()] = v.Time.UTC().Format(time.RFC3339Nano)
	ls.count++
	ls.mu.Unlock()
	select {
	case ls.got <- struct{}{}:
	default:
	}
}

func (ls *latencySub) reset() {
	ls.mu.Lock()
	ls.lat, ls.count = ls.lat[:0], 0
	clear(ls.last)
	ls.mu.Unlock()
	for len(ls.got) > 0 {
		<-ls.got
	}
}

func (ls *latencySub) report(b *testing.B) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(ls.lat) == 0 {
		b.Fatal("no message brokertest.Message")
	}
	slices.Sort(ls.lat)
	q := func(f float64) float64 { return float64(ls.lat[int(f*float64(len(ls.lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

func benchPublisher(b *testing.B) (*Publisher, *latencySub) {
	br := brokertest.Start(b, "")
	cfg := testConfig(br.URL("tcp"))
	p, _, _ := runPublisher(b, cfg)
	return p, newLatencySub(b, br.URL("tcp"))
}

// BenchmarkBrokerLatency: one reading at a time, from Publish (the
// reading's timestamp) to a subscriber's receipt through a real Mosquitto.
func BenchmarkBrokerLatency(b *testing.B) {
	p, ls := benchPublisher(b)
	r := radioReading(b)
	// Warm up: discovery and availability go out with the first reading.
	r.Time = time.Now()
	p.Publish(r)
	<-ls.got
	ls.reset()
	b.ReportAllocs()
	start := time.Now()
	i := 0
	for b.Loop() {
		i++
		r.AccessNumber = uint8(i)
		r.Time = time.Now()
		p.Publish(r)
		select {
		case <-ls.got:
		case <-time.After(10 * time.Second):
			b.Fatalf("reading %d not brokertest.Message", i)
		}
	}
	b.ReportMetric(float64(i)/time.Since(start).Seconds(), "publishes/s")
	ls.report(b)
}

// BenchmarkBrokerThroughput: bursts of readings of 500 different meters
// (nothing to coalesce), each op waits until the whole burst has arrived at
// a subscriber through a real Mosquitto.
func BenchmarkBrokerThroughput(b *testing.B) {
	const meters = 500
	p, ls := benchPublisher(b)
	r := radioReading(b)
	burst := func(n int) {
		for m := range meters {
			r.ID = wmbus.ID(0x20000000 + m)
			r.AccessNumber = uint8(n)
			r.Time = time.Now()
			p.Publish(r)
		}
		for range meters {
			select {
			case <-ls.got:
			case <-time.After(10 * time.Second):
				b.Fatalf("burst %d not delivered", n)
			}
		}
	}
	burst(0) // discovery and availability of every meter
	ls.reset()
	start := time.Now()
	n := 0
	for b.Loop() {
		n++
		burst(n)
	}
	b.ReportMetric(float64(n*meters)/time.Since(start).Seconds(), "publishes/s")
	ls.report(b)
}
