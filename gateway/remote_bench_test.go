package gateway

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
	"github.com/flowiq-gateway/flowiq-gateway/internal/loadgen"
	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
)

// counting counts the frames a source hands on.
type counting struct {
	pipeline.Source
	n atomic.Int64
}

func (c *counting) Run(ctx context.Context, h pipeline.Handler) error {
	f := h.Frame
	h.Frame = func(x pipeline.Frame) { c.n.Add(1); f(x) }
	return c.Source.Run(ctx, h)
}

// BenchmarkMQTTIngest: 100,000 meters, each telegram heard by 3
// receivers, waiting in a real Mosquitto for the decoder's persistent
// session; the decoder takes them on one core (GOMAXPROCS 1) through the
// MQTT input, copy detection (1 s hold) and the link layer. Reported:
// frames/s until every frame was decoded or recognised as a copy
// (including the last hold), ingest-frames/s until the last frame left
// the broker, and the heap the decoder grew by per meter.
//
// Two brokers: Mosquitto's defaults (as Home Assistant's Mosquitto add-on
// runs it: 20 messages in flight per client, so on a busy machine the
// round trip bounds the rate), and 1000 in flight.
func BenchmarkMQTTIngest(b *testing.B) {
	for _, c := range []struct{ name, conf string }{
		{"mosquitto-defaults", ""},
		{"max_inflight_messages=1000", "max_inflight_messages 1000\n"},
	} {
		b.Run(c.name, func(b *testing.B) { benchmarkIngest(b, c.conf) })
	}
}

func benchmarkIngest(b *testing.B, conf string) {
	const meters, receivers = 100_000, 3
	// The load waits in the broker for the decoder: no limit on the queue.
	broker := brokertest.Start(b, "max_queued_messages 0\n"+conf)
	msgs, err := loadgen.Town{Template: testvectors.Frames(b, testvectors.Seed74493770, 35)[0],
		Meters: meters, Receivers: receivers}.Messages()
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		clientID := fmt.Sprintf("bench-decoder-%d", i)
		spec := fmt.Sprintf("mqtt://127.0.0.1:%d/flowiq/frames/#?client_id=%s", broker.Port(), clientID)
		session(b, broker.URL("tcp"), clientID, "flowiq/frames/#")
		if err := loadgen.Publish(broker.URL("tcp"), msgs, 4, 512); err != nil {
			b.Fatal(err)
		}
		src, err := pipeline.NewSource(spec, nil, pipeline.RadioOptions{})
		if err != nil {
			b.Fatal(err)
		}
		in := &counting{Source: src}
		p := &pipeline.Pipeline{Sources: []pipeline.Source{in}, Decoder: kamstrup.NewDecoder(),
			Dedup: &pipeline.Dedup{Hold: dedupHold}, Problem: func(error) {}}
		total := int64(len(msgs))

		prev := runtime.GOMAXPROCS(1)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		cpu0 := cpuTime()
		start := time.Now()
		go func() { _ = p.Run(ctx); close(done) }()
		var ingested time.Duration
		for s := p.Stats(); s.Frames.Load()+s.Copies.Load() < total; {
			if ingested == 0 && in.n.Load() == total {
				ingested = time.Since(start)
			}
			time.Sleep(time.Millisecond)
		}
		elapsed := time.Since(start)
		cpu := cpuTime() - cpu0
		runtime.GC()
		runtime.ReadMemStats(&after)
		cancel()
		<-done
		runtime.GOMAXPROCS(prev)

		if ingested == 0 {
			ingested = elapsed
		}
		s := p.Stats()
		if s.Frames.Load() != meters || s.Copies.Load() != meters*(receivers-1) {
			b.Fatalf("%d frames decoded, %d copies; want %d and %d", s.Frames.Load(), s.Copies.Load(), meters, meters*(receivers-1))
		}
		b.ReportMetric(float64(total)/elapsed.Seconds(), "frames/s")
		b.ReportMetric(float64(total)/ingested.Seconds(), "ingest-frames/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/frame")
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/meters, "heap-bytes/meter")
		runtime.KeepAlive(p)
	}
}

// session makes the decoder's persistent session and subscription, so the
// broker keeps what is published before it connects.
func session(tb testing.TB, url, clientID, filter string) {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).SetCleanSession(false))
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		tb.Fatal(t.Error())
	}
	if t := c.Subscribe(filter, 1, nil); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		tb.Fatal(t.Error())
	}
	c.Disconnect(100)
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
