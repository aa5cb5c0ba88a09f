package discovery

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

const (
	meterCfgTopic   = "homeassistant/device/kamstrup_74493770/config"
	meterStateTopic = "flowiq/74493770/state"
	meterAvailTopic = "flowiq/74493770/availability"
	gwCfgTopic      = "homeassistant/device/flowiq_gateway/config"
	gwAvailTopic    = "flowiq/status"
	gwStateTopic    = "flowiq/gateway/state"
)

var allTopics = []string{"homeassistant/#", "flowiq/#"}

// retainedSnapshot connects a fresh subscriber and returns what the broker
// holds retained, topic → payload.
func retainedSnapshot(t *testing.T, url string) map[string]received {
	t.Helper()
	s := subscribe(t, url, allTopics...)
	s.sync()
	out := map[string]received{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		if m.retained {
			out[m.topic] = m
		}
	}
	return out
}

// waitRetained polls fresh snapshots until cond holds.
func waitRetained(t *testing.T, url, what string, cond func(map[string]received) bool) map[string]received {
	t.Helper()
	var snap map[string]received
	waitFor(t, 20*time.Second, what, func() bool {
		snap = retainedSnapshot(t, url)
		return cond(snap)
	})
	return snap
}

func stateOf(t *testing.T, snap map[string]received, topic string) map[string]any {
	t.Helper()
	m, ok := snap[topic]
	if !ok {
		return nil
	}
	var v map[string]any
	if err := json.Unmarshal(m.payload, &v); err != nil {
		t.Fatalf("%s: %s: %v", topic, m.payload, err)
	}
	return v
}

func componentKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var c DeviceConfig
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	var keys []string
	for k := range c.Components {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestIntegrationVectors(t *testing.T) {
	b := startBroker(t, "")
	p, _, _ := runPublisher(t, testConfig(b.url("tcp")))
	rs := vectorReadings(t)
	for _, r := range rs {
		p.Publish(r)
	}
	last := int(rs[len(rs)-1].AccessNumber)
	snap := waitRetained(t, b.url("tcp"), "retained discovery and the last state of 74493770", func(s map[string]received) bool {
		st, ok := s[meterStateTopic]
		_, cfg := s[meterCfgTopic]
		return ok && cfg && accessNumber(t, st.payload) == last
	})
	want := []string{"alarm_burst", "alarm_dry", "alarm_history", "alarm_leak", "alarm_reverse", "ambient_temperature",
		"info_code", "last_seen", "min_water_temperature", "target", "total"}
	if got := componentKeys(t, snap[meterCfgTopic].payload); !slices.Equal(got, want) {
		t.Errorf("entities %q, want %q", got, want)
	}
	// The retained config is exactly the pure function's output.
	wantCfg := must(t)(MeterConfig(testSiteNoVersion(t, "test"), Meter{ID: rs[0].ID}, rs[0].Model, FeaturesOf(&rs[0])))
	if string(snap[meterCfgTopic].payload) != string(wantCfg.Payload) {
		t.Errorf("retained config differs from MeterConfig:\n%s\n%s", snap[meterCfgTopic].payload, wantCfg.Payload)
	}
	st := stateOf(t, snap, meterStateTopic)
	if st["total_m3"] != 8.915 || st["target_m3"] != 8.533 {
		t.Errorf("state totals: %v", st)
	}
	if a, _ := st["alarms"].([]any); !slices.Contains(a, any("DRY")) {
		t.Errorf("DRY alarm not on: %v", st["alarms"])
	}
	if st["dry_duration"] != "4-7 days" {
		t.Errorf("dry_duration %v", st["dry_duration"])
	}
	for topic, want := range map[string]string{gwAvailTopic: Online, meterAvailTopic: Online} {
		if m, ok := snap[topic]; !ok || string(m.payload) != want {
			t.Errorf("%s = %q (retained %v), want %q", topic, m.payload, ok, want)
		}
	}
	if _, ok := snap[gwCfgTopic]; !ok {
		t.Errorf("gateway discovery not retained")
	}
	if _, ok := snap[gwStateTopic]; !ok {
		t.Errorf("gateway state not retained")
	}
}

// waitOnline returns once the publisher has connected and made its first
// announcement (the gateway's "online" goes out first), so later counts
// of messages are not mixed with it.
func waitOnline(t *testing.T, url string) {
	t.Helper()
	s := subscribe(t, url, gwAvailTopic)
	waitFor(t, 10*time.Second, "gateway online", func() bool {
		m, ok := s.last(gwAvailTopic)
		return ok && string(m.payload) == Online
	})
}

// testSiteNoVersion is the site a publisher with SWVersion v uses.
func testSiteNoVersion(t *testing.T, v string) Site {
	s, err := Site{SWVersion: v}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIntegrationBrokerRestart(t *testing.T) {
	b := startBroker(t, "")
	p, lb, _ := runPublisher(t, testConfig(b.url("tcp")))
	rs := vectorReadings(t)
	for _, r := range rs[:10] {
		p.Publish(r)
	}
	waitRetained(t, b.url("tcp"), "state before the restart", func(s map[string]received) bool {
		st, ok := s[meterStateTopic]
		return ok && accessNumber(t, st.payload) == int(rs[9].AccessNumber)
	})
	b.kill()
	// Mid-stream: the radio keeps delivering while the broker is gone and
	// Publish must not block.
	start := time.Now()
	for _, r := range rs[10:] {
		p.Publish(r)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Publish blocked for %v with the broker down", d)
	}
	waitFor(t, 10*time.Second, "the publisher to notice the lost connection", func() bool {
		return strings.Contains(lb.String(), "connection to MQTT broker lost")
	})
	b.start() // same port, persistence off: nothing retained survives
	last := int(rs[len(rs)-1].AccessNumber)
	snap := waitRetained(t, b.url("tcp"), "re-published discovery and the latest state after the restart", func(s map[string]received) bool {
		st, ok := s[meterStateTopic]
		_, cfg := s[meterCfgTopic]
		_, gw := s[gwCfgTopic]
		return ok && cfg && gw && accessNumber(t, st.payload) == last
	})
	if string(snap[gwAvailTopic].payload) != Online {
		t.Errorf("gateway availability after restart: %q", snap[gwAvailTopic].payload)
	}
	if stateOf(t, snap, meterStateTopic)["total_m3"] != 8.915 {
		t.Errorf("state after restart: %s", snap[meterStateTopic].payload)
	}
}

func TestIntegrationReannounce(t *testing.T) {
	b := startBroker(t, "")
	p, _, _ := runPublisher(t, testConfig(b.url("tcp")))
	live := subscribe(t, b.url("tcp"), meterCfgTopic, meterStateTopic)
	waitOnline(t, b.url("tcp"))
	p.Publish(vectorReadings(t)[0])
	waitFor(t, 10*time.Second, "first announcement", func() bool { return len(live.all(meterCfgTopic)) > 0 })
	n := len(live.all(meterCfgTopic))
	ns := len(live.all(meterStateTopic))
	// Home Assistant restarts: it publishes its birth message.
	sent := time.Now()
	live.client.Publish("homeassistant/status", 1, false, Online).Wait()
	waitFor(t, 10*time.Second, "re-announcement after homeassistant/status online", func() bool {
		return len(live.all(meterCfgTopic)) > n && len(live.all(meterStateTopic)) > ns
	})
	// The delay is part of the contract (HA needs a moment to subscribe).
	if got := live.all(meterCfgTopic)[n].at.Sub(sent); got < reannounceMin {
		t.Errorf("re-announced %v after online, want at least %v", got, reannounceMin)
	}
	// "offline" is not a reason to announce.
	m := len(live.all(meterCfgTopic))
	live.client.Publish("homeassistant/status", 1, false, "offline").Wait()
	p.Publish(vectorReadings(t)[1]) // a new state; discovery must not repeat
	waitFor(t, 10*time.Second, "next state", func() bool { return len(live.all(meterStateTopic)) > ns+1 })
	time.Sleep(reannounceMin + reannounceJit) // window in which a wrong re-announce would land
	if got := len(live.all(meterCfgTopic)); got != m {
		t.Errorf("discovery published %d more times after offline / an unchanged reading", got-m)
	}
}

func TestIntegrationMeterRemoved(t *testing.T) {
	b := startBroker(t, "")
	p, lb, _ := runPublisher(t, testConfig(b.url("tcp")))
	other := vectorReadings(t)[0]
	other.ID = 0x11111111
	p.SetMeters([]Meter{{ID: 0x74493770}, {ID: other.ID, Name: "Garden"}})
	p.Publish(vectorReadings(t)[0])
	p.Publish(other)
	otherCfg := "homeassistant/device/kamstrup_11111111/config"
	waitRetained(t, b.url("tcp"), "both meters announced", func(s map[string]received) bool {
		_, a := s[meterCfgTopic]
		_, o := s[otherCfg]
		_, av := s[meterAvailTopic]
		return a && o && av
	})
	// A meter not in the list is not published.
	stranger := other
	stranger.ID = 0x22222222
	p.Publish(stranger)

	live := subscribe(t, b.url("tcp"), meterCfgTopic)
	live.sync()
	live.reset()
	p.SetMeters([]Meter{{ID: other.ID, Name: "Garden shed"}})
	waitFor(t, 10*time.Second, "empty config for the removed meter", func() bool {
		m, ok := live.last(meterCfgTopic)
		return ok && len(m.payload) == 0
	})
	snap := waitRetained(t, b.url("tcp"), "removed meter gone, renamed meter re-announced", func(s map[string]received) bool {
		var c DeviceConfig
		m, ok := s[otherCfg]
		return ok && json.Unmarshal(m.payload, &c) == nil && c.Device.Name == "Garden shed"
	})
	for _, topic := range []string{meterCfgTopic, meterAvailTopic, meterStateTopic,
		"homeassistant/device/kamstrup_22222222/config", "flowiq/22222222/state"} {
		if m, ok := snap[topic]; ok {
			t.Errorf("%s still retained: %q", topic, m.payload)
		}
	}
	if !strings.Contains(lb.String(), "meter not in the meter list") {
		t.Errorf("unlisted meter not logged")
	}
}

func TestIntegrationGatewayStopped(t *testing.T) {
	b := startBroker(t, "")
	p, _, stop := runPublisher(t, testConfig(b.url("tcp")))
	p.SetGatewayState(GatewayState{TelegramsReceived: 3, TelegramsDecoded: 2, TelegramsFailed: 1, SDR: "ok"})
	waitRetained(t, b.url("tcp"), "gateway online", func(s map[string]received) bool {
		st := stateOf(t, s, gwStateTopic)
		return string(s[gwAvailTopic].payload) == Online && st != nil && st["telegrams_decoded"] == 2.0
	})
	stop()
	snap := retainedSnapshot(t, b.url("tcp"))
	if m, ok := snap[gwAvailTopic]; !ok || string(m.payload) != Offline {
		t.Errorf("after shutdown %s = %q (retained %v), want %q", gwAvailTopic, m.payload, ok, Offline)
	}
}

func TestIntegrationMeterSilence(t *testing.T) {
	b := startBroker(t, "")
	cfg := testConfig(b.url("tcp"))
	cfg.MeterTimeout = 500 * time.Millisecond
	p, _, _ := runPublisher(t, cfg)
	live := subscribe(t, b.url("tcp"), meterAvailTopic)
	waitOnline(t, b.url("tcp"))
	p.Publish(vectorReadings(t)[0])
	waitFor(t, 10*time.Second, "online, then offline after the timeout", func() bool {
		var seq []string
		for _, m := range live.all(meterAvailTopic) {
			seq = append(seq, string(m.payload))
		}
		i := slices.Index(seq, Online)
		return i >= 0 && slices.Index(seq[i:], Offline) > 0
	})
	p.Publish(vectorReadings(t)[1])
	waitFor(t, 10*time.Second, "online again", func() bool {
		m, ok := live.last(meterAvailTopic)
		return ok && string(m.payload) == Online
	})
}

func TestIntegrationLowerTotalNotPublished(t *testing.T) {
	b := startBroker(t, "")
	p, lb, _ := runPublisher(t, testConfig(b.url("tcp")))
	live := subscribe(t, b.url("tcp"), meterStateTopic)
	waitOnline(t, b.url("tcp"))
	rs := vectorReadings(t)
	p.Publish(rs[0])
	waitFor(t, 10*time.Second, "first state", func() bool { return len(live.all(meterStateTopic)) >= 1 })
	lower := rs[1]
	lower.Set(kamstrup.Total, kamstrup.Value{V: 8.000, Known: true})
	p.Publish(lower)
	higher := rs[2]
	higher.Set(kamstrup.Total, kamstrup.Value{V: 8.916, Known: true})
	// Let the lower one be processed on its own before the next arrives.
	waitFor(t, 10*time.Second, "warning about the lower total", func() bool {
		return strings.Contains(lb.String(), "total volume lower than the last published one")
	})
	p.Publish(higher)
	waitFor(t, 10*time.Second, "the higher state", func() bool {
		m, ok := live.last(meterStateTopic)
		return ok && jsonField(t, m.payload, "total_m3") == 8.916
	})
	for _, m := range live.all(meterStateTopic) {
		if jsonField(t, m.payload, "total_m3") == 8.0 {
			t.Errorf("lower total published: %s", m.payload)
		}
	}
	if !strings.Contains(lb.String(), "level=WARN") {
		t.Errorf("lower total not logged at warn:\n%s", lb.String())
	}
}

// Readings of many meters while no broker is reachable: Publish returns at
// once, the log says why nothing goes out, and the newest reading of each
// meter is delivered when the broker appears.
func TestIntegrationUnreachableThenUp(t *testing.T) {
	needMosquitto(t)
	port := freePort(t)
	b := &broker{tb: t, bin: needMosquitto(t), dir: t.TempDir(), port: port}
	t.Cleanup(b.stop)
	p, lb, _ := runPublisher(t, testConfig(b.url("tcp")))
	rs := vectorReadings(t)
	start := time.Now()
	for i := range 5000 {
		r := rs[i%len(rs)]
		r.ID = wmbus.ID(0x10000000 + i%50)
		r.AccessNumber = uint8(i)
		p.Publish(r)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("5000 Publish calls took %v with no broker", d)
	}
	waitFor(t, 10*time.Second, "an 'unreachable' log line", func() bool { return strings.Contains(lb.String(), "broker unreachable") })
	b.start()
	waitRetained(t, b.url("tcp"), "the newest reading of every meter", func(s map[string]received) bool {
		for m := range 50 {
			id := wmbus.ID(0x10000000 + m)
			st, ok := s["flowiq/"+id.String()+"/state"]
			// the last i with i%50 == m is 4950+m
			if !ok || accessNumber(t, st.payload) != (4950+m)&0xFF {
				return false
			}
		}
		return true
	})
}

// A meter removed from the list while the gateway was down still has its
// retained device from the earlier run: the next run removes it, and
// leaves devices of other gateways alone.
func TestIntegrationLeftoverDeviceRemoved(t *testing.T) {
	b := startBroker(t, "")
	rs := vectorReadings(t)
	other := rs[0]
	other.ID = 0x11111111
	p, _, stop := runPublisher(t, testConfig(b.url("tcp")))
	p.Publish(rs[0])
	p.Publish(other)
	foreignCfg := "homeassistant/device/kamstrup_33333333/config"
	foreign := must(t)(MeterConfig(Site{DiscoveryPrefix: "homeassistant", BaseTopic: "other", GatewayID: "other_gateway"},
		Meter{ID: 0x33333333}, "flowIQ 2101", FeaturesOf(&rs[0])))
	live := subscribe(t, b.url("tcp"))
	live.client.Publish(foreignCfg, 1, true, foreign.Payload).Wait()
	waitRetained(t, b.url("tcp"), "first run announced both meters", func(s map[string]received) bool {
		_, a := s[meterCfgTopic]
		_, o := s["homeassistant/device/kamstrup_11111111/config"]
		return a && o
	})
	stop()

	p, _, _ = runPublisher(t, testConfig(b.url("tcp")))
	p.SetMeters([]Meter{{ID: other.ID}})
	snap := waitRetained(t, b.url("tcp"), "leftover device of 74493770 removed", func(s map[string]received) bool {
		_, a := s[meterCfgTopic]
		_, st := s[meterStateTopic]
		return !a && !st
	})
	for _, topic := range []string{"homeassistant/device/kamstrup_11111111/config", foreignCfg} {
		if _, ok := snap[topic]; !ok {
			t.Errorf("%s removed, must stay", topic)
		}
	}
}
