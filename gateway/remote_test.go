package gateway

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
	"github.com/flowiq-gateway/flowiq-gateway/internal/syncbuf"
	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors/sent"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/remote"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
	"github.com/flowiq-gateway/flowiq-gateway/settings"
)

// otherMeters returns CRC-less frames of n meters other than 74493770
// (its telegram with other addresses): receivers publish them, the
// decoder has no key for them. Their IDs end in every digit.
func otherMeters(t *testing.T, n int) (frames []string, ids []string) {
	t.Helper()
	raw, _ := hex.DecodeString(sent.Seed74493770(t)[0])
	plain, _, err := wmbus.Detect(raw)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		f := append([]byte(nil), plain...)
		id := fmt.Sprintf("%08d", 10000000+i*1111)
		b, _ := hex.DecodeString(id)
		f[4], f[5], f[6], f[7] = b[3], b[2], b[1], b[0]
		frames = append(frames, hex.EncodeToString(f))
		ids = append(ids, id)
	}
	return frames, ids
}

// recorder is a gateway output that keeps every reading and the meters of
// every frame the decoder saw.
type recorder struct {
	mu       sync.Mutex
	readings []kamstrup.Reading
	frames   map[string]int // meter ID → frames decoded or tried
	offline  []string       // receivers reported offline
}

func (r *recorder) Name() string { return "test recorder" }
func (r *recorder) Reading(x *kamstrup.Reading) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *x
	c.Receivers = append([]wmbus.Radio(nil), x.Receivers...)
	r.readings = append(r.readings, c)
}
func (r *recorder) Frame(f pipeline.Frame, t *wmbus.Telegram, err error) {
	fi := pipeline.Describe(f, t, err)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frames == nil {
		r.frames = map[string]int{}
	}
	r.frames[fi.ID]++
}
func (r *recorder) Problem(err error) {
	if errors.Is(err, pipeline.ErrReceiverOffline) {
		r.mu.Lock()
		r.offline = append(r.offline, err.Error())
		r.mu.Unlock()
	}
}
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.readings)
}

// startDecoder runs a gateway fed by an MQTT input, publishing to Home
// Assistant on the same broker; it knows the key of meter 74493770.
func startDecoder(t *testing.T, ctx context.Context, b *brokertest.Broker, filter, clientID string) *recorder {
	t.Helper()
	cfg, err := settings.Resolve("test", settings.Layer{Name: "test",
		Inputs: []string{"mqtt://127.0.0.1:" + fmt.Sprint(b.Port()) + "/" + filter + "?client_id=" + clientID + "-in"},
		MQTT:   meters.MQTT{URL: b.URL("tcp"), ClientID: clientID}})
	if err != nil {
		t.Fatal(err)
	}
	var key [16]byte
	copy(key[:], seedKey(t))
	cfg.Overlay = []meters.Meter{{ID: 0x74493770, Name: "Kitchen", Key: key, HasKey: true, Enabled: true}}
	log := &syncbuf.Buffer{}
	g, err := New(cfg, Options{Log: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	g.AddOutput(rec)
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("decoder: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("decoder did not stop")
		}
		if t.Failed() {
			t.Logf("decoder %s log:\n%s", clientID, log)
		}
	})
	// The persistent session exists once the subscription is made.
	brokertest.WaitFor(t, 15*time.Second, "decoder subscribed", func() bool {
		return strings.Contains(b.Log(), clientID+"-in")
	})
	return rec
}

// startReceiver runs the receiver role in-process on the hex lines of in.
func startReceiver(t *testing.T, ctx context.Context, b *brokertest.Broker, name string, in io.Reader) chan error {
	t.Helper()
	done := make(chan error, 1)
	log := &syncbuf.Buffer{}
	go func() {
		done <- Receive(ctx, []string{"hex:-"}, pipeline.RadioOptions{},
			remote.PublisherConfig{Broker: b.URL("tcp"), Name: name},
			Options{Stdin: in, Log: slog.New(slog.NewTextHandler(log, nil))})
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("receiver %s log:\n%s", name, log)
		}
	})
	return done
}

// Acceptance: 3 receivers each fed the same 35 telegrams of meter 74493770
// plus other meters' frames; one decoder with the key: one reading and one
// state message per telegram, the retained state 8.915 m³, and the reading
// lists the 3 receivers.
func TestThreeReceiversOneDecoder(t *testing.T) {
	defer func(h time.Duration) { dedupHold = h }(dedupHold)
	dedupHold = 500 * time.Millisecond // in step with the states below, 35 holds in a row
	b := brokertest.Start(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	states := brokertest.Subscribe(t, b.URL("tcp"), "flowiq/74493770/state")
	rec := startDecoder(t, ctx, b, "flowiq/frames/#", "dec")
	others, _ := otherMeters(t, 35)
	var lines []string
	for i, f := range sent.Seed74493770(t) {
		lines = append(lines, f, others[i])
	}
	names := []string{"cellar", "garage", "attic"}
	var ends []chan error
	var pipes []*io.PipeWriter
	for _, n := range names {
		r, w := io.Pipe()
		pipes = append(pipes, w)
		ends = append(ends, startReceiver(t, ctx, b, n, r))
	}
	// Each telegram goes to all receivers once the state of the one
	// before is out (a real meter sends every 16 s, far slower).
	for i := 0; i < len(lines); i += 2 {
		feed(t, pipes, lines[i:i+2], 0)
		brokertest.WaitFor(t, 15*time.Second, fmt.Sprintf("state message %d", i/2+1), func() bool {
			return len(states.All("flowiq/74493770/state")) >= i/2+1
		})
	}
	for _, w := range pipes {
		w.Close()
	}
	for i, e := range ends {
		select {
		case err := <-e:
			if err != nil {
				t.Fatalf("receiver %s: %v", names[i], err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("receiver %s did not finish", names[i])
		}
	}
	brokertest.WaitFor(t, 15*time.Second, "35 readings", func() bool { return rec.count() >= 35 })
	brokertest.WaitFor(t, 15*time.Second, "35 state messages", func() bool {
		return len(states.All("flowiq/74493770/state")) >= 35
	})
	time.Sleep(2 * dedupHold) // a duplicate would come now
	states.Sync()
	if n := rec.count(); n != 35 {
		t.Fatalf("%d readings, want 35", n)
	}
	if n := len(states.All("flowiq/74493770/state")); n != 35 {
		t.Fatalf("%d state messages, want 35", n)
	}
	checkOnePerTelegram(t, rec)
	for _, r := range rec.readings {
		var heard []string
		for _, x := range r.Receivers {
			heard = append(heard, x.Receiver)
		}
		sort.Strings(heard)
		if fmt.Sprint(heard) != "[attic cellar garage]" {
			t.Fatalf("reading %d heard by %v", r.AccessNumber, heard)
		}
	}
	retained := brokertest.Retained(t, b.URL("tcp"), "flowiq/74493770/state")
	var last map[string]any
	if err := json.Unmarshal(retained["flowiq/74493770/state"].Payload, &last); err != nil {
		t.Fatal(err)
	}
	if last["total_m3"] != 8.915 {
		t.Errorf("retained state total %v, want 8.915", last["total_m3"])
	}
	if rs, _ := last["receivers"].([]any); len(rs) != 3 {
		t.Errorf("retained state lists receivers %v", last["receivers"])
	}
	status := brokertest.Retained(t, b.URL("tcp"), "flowiq/receivers/+/status")
	for _, n := range names {
		if got := string(status[remote.StatusTopic("flowiq", n)].Payload); got != remote.Offline {
			t.Errorf("receiver %s status %q after it stopped, want offline", n, got)
		}
	}
	brokertest.WaitFor(t, 10*time.Second, "the decoder reporting the receivers offline", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.offline) == len(names)
	})
}

// Acceptance: the broker (with persistence, as Home Assistant's Mosquitto
// add-on runs it) stops and restarts while two receivers publish: every
// frame heard during the outage arrives after reconnect, no reading lost,
// none duplicated.
func TestBrokerRestartLosesNothing(t *testing.T) {
	dir := t.TempDir()
	b := brokertest.Start(t, fmt.Sprintf("persistence true\npersistence_location %s/\n", dir))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := startDecoder(t, ctx, b, "flowiq/frames/#", "dec")
	frames := sent.Seed74493770(t)
	var pipes []*io.PipeWriter
	for _, n := range []string{"north", "south"} {
		r, w := io.Pipe()
		pipes = append(pipes, w)
		startReceiver(t, ctx, b, n, r)
	}
	send := func(from, to int) { feed(t, pipes, frames[from:to], 20*time.Millisecond) }
	send(0, 10)
	brokertest.WaitFor(t, 15*time.Second, "10 readings before the outage", func() bool { return rec.count() >= 10 })
	b.Stop()
	send(10, 25) // heard while the broker is down
	time.Sleep(500 * time.Millisecond)
	if n := rec.count(); n != 10 {
		t.Fatalf("%d readings while the broker was down, want the 10 from before", n)
	}
	b.Start()
	send(25, 35)
	brokertest.WaitFor(t, 30*time.Second, "35 readings", func() bool { return rec.count() >= 35 })
	time.Sleep(2 * dedupHold)
	if n := rec.count(); n != 35 {
		t.Fatalf("%d readings, want 35", n)
	}
	checkOnePerTelegram(t, rec)
	for _, w := range pipes {
		w.Close()
	}
}

// Acceptance: two decoders with disjoint shard filters (meters whose ID
// ends in 0–4, and in 5–9): every meter is decoded by exactly one of them.
func TestShardedDecoders(t *testing.T) {
	b := brokertest.Start(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// One decoder takes shards 0–4 through five subscriptions' worth of
	// inputs, the other 5–9.
	var recs [2]*recorder
	for i := range recs {
		recs[i] = startShardDecoder(t, ctx, b, i*5, i*5+5, fmt.Sprintf("dec%d", i))
	}
	others, ids := otherMeters(t, 30)
	lines := append(sent.Seed74493770(t), others...)
	done := startReceiver(t, ctx, b, "cellar", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"74493770": 35}
	for _, id := range ids {
		want[id] = 1
	}
	brokertest.WaitFor(t, 20*time.Second, "every frame at a decoder", func() bool {
		n := 0
		for _, r := range recs {
			r.mu.Lock()
			for _, c := range r.frames {
				n += c
			}
			r.mu.Unlock()
		}
		return n >= len(lines)
	})
	time.Sleep(2 * dedupHold)
	for id, n := range want {
		a, b := recs[0].frames[id], recs[1].frames[id]
		shard := int(id[len(id)-1] - '0')
		mine, other := a, b
		if shard >= 5 {
			mine, other = b, a
		}
		if mine != n || other != 0 {
			t.Errorf("meter %s (shard %d): %d frames at its decoder, %d at the other; want %d and 0", id, shard, mine, other, n)
		}
	}
	if n := recs[0].count(); n != 35 || recs[1].count() != 0 {
		t.Errorf("readings %d and %d, want 35 and 0", n, recs[1].count())
	}
}

// checkOnePerTelegram checks that the readings are the 35 telegrams, each
// once, in order (their access numbers, which repeat across the captures,
// in sequence).
func checkOnePerTelegram(t *testing.T, rec *recorder) {
	t.Helper()
	var want, got []byte
	for _, h := range sent.Seed74493770(t) {
		raw, _ := hex.DecodeString(h)
		plain, _, _ := wmbus.Detect(raw)
		acc, _ := wmbus.PeekAccessNumber(plain)
		want = append(want, acc)
	}
	rec.mu.Lock()
	for _, r := range rec.readings {
		got = append(got, r.AccessNumber)
	}
	rec.mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("readings of access numbers\n%v\nwant one per telegram\n%v", got, want)
	}
}

// feed writes each line to every receiver's input, gap apart.
func feed(t *testing.T, pipes []*io.PipeWriter, lines []string, gap time.Duration) {
	t.Helper()
	for _, l := range lines {
		for _, w := range pipes {
			if _, err := io.WriteString(w, l+"\n"); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(gap)
	}
}

// startShardDecoder runs a decoder with one MQTT input per shard in
// [from, to).
func startShardDecoder(t *testing.T, ctx context.Context, b *brokertest.Broker, from, to int, id string) *recorder {
	t.Helper()
	var inputs []string
	for s := from; s < to; s++ {
		inputs = append(inputs, fmt.Sprintf("mqtt://127.0.0.1:%d/%s?client_id=%s-%d", b.Port(), remote.FramesFilter("flowiq", fmt.Sprint(s)), id, s))
	}
	cfg, err := settings.Resolve("test", settings.Layer{Name: "test", Inputs: inputs})
	if err != nil {
		t.Fatal(err)
	}
	var key [16]byte
	copy(key[:], seedKey(t))
	cfg.Overlay = []meters.Meter{{ID: 0x74493770, Key: key, HasKey: true, Enabled: true}}
	g, err := New(cfg, Options{Stdout: io.Discard, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{frames: map[string]int{}}
	g.AddOutput(rec)
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() { <-done })
	brokertest.WaitFor(t, 15*time.Second, "decoder subscribed", func() bool {
		return strings.Contains(b.Log(), fmt.Sprintf("%s-%d", id, to-1))
	})
	return rec
}

// A decoder that was away (restarted, updated) gets the frames published
// meanwhile: its subscription is a persistent session with a fixed client
// ID, and the broker keeps them.
func TestDecoderAwayGetsFramesLater(t *testing.T) {
	b := brokertest.Start(t, "")
	first, stopFirst := context.WithCancel(context.Background())
	startDecoder(t, first, b, "flowiq/frames/#", "dec")
	stopFirst()
	brokertest.WaitFor(t, 15*time.Second, "the decoder gone", func() bool {
		return strings.Contains(b.Log(), "Client dec-in disconnected") || strings.Contains(b.Log(), "Client dec-in closed its connection")
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lines := sent.Seed74493770(t)
	if err := <-startReceiver(t, ctx, b, "cellar", strings.NewReader(strings.Join(lines, "\n")+"\n")); err != nil {
		t.Fatal(err)
	}
	rec := startDecoder(t, ctx, b, "flowiq/frames/#", "dec")
	brokertest.WaitFor(t, 15*time.Second, "35 readings", func() bool { return rec.count() >= 35 })
	time.Sleep(2 * dedupHold)
	checkOnePerTelegram(t, rec)
}
