// Package loadgen makes MQTT load like a town of receivers: the frame
// messages of many meters, each telegram heard by several receivers, and a
// fast QoS 1 publisher for them. It is test and benchmark support only.
package loadgen

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/remote"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Message is one MQTT message.
type Message struct {
	Topic   string
	Payload []byte
}

// Town says what to generate.
type Town struct {
	Template  string // a real telegram (hex, with or without CRCs) whose ID and access number are varied
	Meters    int
	Receivers int // copies of each telegram
	Telegrams int // telegrams per meter (access numbers 0, 1, …)
	Base      string
}

// Messages returns every receiver's message of every telegram, in the
// order a town would send them: telegram by telegram, each heard by every
// receiver in turn.
func (t Town) Messages() ([]Message, error) {
	raw, err := hex.DecodeString(t.Template)
	if err != nil {
		return nil, err
	}
	plain, _, err := wmbus.Detect(raw)
	if err != nil {
		return nil, err
	}
	accAt, ok := wmbus.AccessNumberAt(plain)
	if !ok {
		return nil, fmt.Errorf("template has no access number")
	}
	base := t.Base
	if base == "" {
		base = remote.DefaultBase
	}
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	out := make([]Message, 0, t.Meters*t.Receivers*max(t.Telegrams, 1))
	for k := range max(t.Telegrams, 1) {
		for m := range t.Meters {
			f := append([]byte(nil), plain...)
			id := fmt.Sprintf("%08d", m)
			b, _ := hex.DecodeString(id)
			f[4], f[5], f[6], f[7] = b[3], b[2], b[1], b[0]
			f[accAt] = byte(k)
			for r := range t.Receivers {
				name := fmt.Sprintf("rx%02d", r)
				fi := pipeline.Describe(pipeline.Frame{Data: f, Stripped: true, Time: at,
					Radio: wmbus.Radio{Mode: "C1", Format: "B", LevelDBFS: -40 - float64(r), SNRdB: 20 - float64(r), OffsetHz: 1200, Receiver: name}}, nil, wmbus.ErrNoKey)
				p, err := json.Marshal(&fi)
				if err != nil {
					return nil, err
				}
				out = append(out, Message{remote.FrameTopic(base, remote.Shard(id), name), p})
			}
		}
	}
	return out, nil
}

// Publish sends the messages with QoS 1 over clients connections (each
// with its share, in order), keeping up to window unacknowledged per
// connection, and returns when the broker has acknowledged them all.
func Publish(broker string, msgs []Message, clients, window int) error {
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	per := (len(msgs) + clients - 1) / clients
	for c := range clients {
		part := msgs[min(c*per, len(msgs)):min((c+1)*per, len(msgs))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("loadgen-%d-%d", time.Now().UnixNano(), c)).
				SetCleanSession(true).SetMaxResumePubInFlight(window)
			cl := mqtt.NewClient(o)
			if t := cl.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
				errs <- fmt.Errorf("load generator: connect: %v", t.Error())
				return
			}
			defer cl.Disconnect(100)
			tokens := make([]mqtt.Token, 0, window)
			for i, m := range part {
				tokens = append(tokens, cl.Publish(m.Topic, 1, false, m.Payload))
				if len(tokens) == window || i == len(part)-1 {
					for _, t := range tokens {
						if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
							errs <- fmt.Errorf("load generator: publish: %v", t.Error())
							return
						}
					}
					tokens = tokens[:0]
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
