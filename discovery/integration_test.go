package discovery

import (
	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"

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

// retainedSnapshot returns what the broker holds retained, topic → payload.
func retainedSnapshot(t *testing.T, url string) map[string]brokertest.Message {
	t.Helper()
	return brokertest.Retained(t, url, allTopics...)
}

// waitRetained polls fresh snapshots until cond holds.
func waitRetained(t *testing.T, url, what string, cond func(map[string]brokertest.Message) bool) map[string]brokertest.Message {
	t.Helper()
	return brokertest.WaitRetained(t, url, what, cond, allTopics...)
}

func stateOf(t *testing.T, snap map[string]brokertest.Message, topic string) map[string]any {
	t.Helper()
	m, ok := snap[topic]
	if !ok {
		return nil
	}
	var v map[string]any
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		t.Fatalf("%s: %s: %v", topic, m.Payload, err)
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
	b := brokertest.Start(t, "")
	p, _, _ := runPublisher(t, testConfig(b.URL("tcp")))
	rs := vectorReadings(t)
	for _, r := range rs {
		p.Publish(r)
	}
	last := int(rs[len(rs)-1].AccessNumber)
	snap := waitRetained(t, b.URL("tcp"), "retained discovery, availability and the last state of 74493770", func(s map[string]brokertest.Message) bool {
		st, ok := s[meterStateTopic]
		_, cfg := s[meterCfgTopic]
		_, avail := s[meterAvailTopic]
		return ok && cfg && avail && accessNumber(t, st.Payload) == last
	})
	want := []string{"alarm_burst", "alarm_dry", "alarm_history", "alarm_leak", "alarm_reverse", "ambient_temperature",
		"info_code", "last_seen", "min_water_temperature", "month_consumption", "reception", "target", "total"}
	if got := componentKeys(t, snap[meterCfgTopic].Payload); !slices.Equal(got, want) {
		t.Errorf("entities %q, want %q", got, want)
	}
	// The retained config is exactly the pure function's output.
	wantCfg := must(t)(MeterConfig(testSiteNoVersion(t, "test"), Meter{ID: rs[0].ID}, rs[0].Model, FeaturesOf(&rs[0])))
	if string(snap[meterCfgTopic].Payload) != string(wantCfg.Payload) {
		t.Errorf("retained config differs from MeterConfig:\n%s\n%s", snap[meterCfgTopic].Payload, wantCfg.Payload)
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
		if m, ok := snap[topic]; !ok || string(m.Payload) != want {
			t.Errorf("%s = %q (retained %v), want %q", topic, m.Payload, ok, want)
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
	s := brokertest.Subscribe(t, url, gwAvailTopic)
	brokertest.WaitFor(t, 10*time.Second, "gateway online", func() bool {
		m, ok := s.Last(gwAvailTopic)
		return ok && string(m.Payload) == Online
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
	b := brokertest.Start(t, "")
	p, lb, _ := runPublisher(t, testConfig(b.URL("tcp")))
	rs := vectorReadings(t)
	for _, r := range rs[:10] {
		p.Publish(r)
	}
	waitRetained(t, b.URL("tcp"), "state before the restart", func(s map[string]brokertest.Message) bool {
		st, ok := s[meterStateTopic]
		return ok && accessNumber(t, st.Payload) == int(rs[9].AccessNumber)
	})
	b.Kill()
	// Mid-stream: the radio keeps delivering while the broker is gone and
	// Publish must not block.
	start := time.Now()
	for _, r := range rs[10:] {
		p.Publish(r)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Publish blocked for %v with the broker down", d)
	}
	brokertest.WaitFor(t, 10*time.Second, "the publisher to notice the lost connection", func() bool {
		return strings.Contains(lb.String(), "connection to MQTT broker lost")
	})
	b.Start() // same port, persistence off: nothing retained survives
	last := int(rs[len(rs)-1].AccessNumber)
	snap := waitRetained(t, b.URL("tcp"), "re-published discovery and the latest state after the restart", func(s map[string]brokertest.Message) bool {
		st, ok := s[meterStateTopic]
		_, cfg := s[meterCfgTopic]
		_, gw := s[gwCfgTopic]
		return ok && cfg && gw && accessNumber(t, st.Payload) == last
	})
	if string(snap[gwAvailTopic].Payload) != Online {
		t.Errorf("gateway availability after restart: %q", snap[gwAvailTopic].Payload)
	}
	if stateOf(t, snap, meterStateTopic)["total_m3"] != 8.915 {
		t.Errorf("state after restart: %s", snap[meterStateTopic].Payload)
	}
}

func TestIntegrationReannounce(t *testing.T) {
	b := brokertest.Start(t, "")
	p, lb, _ := runPublisher(t, testConfig(b.URL("tcp")))
	live := brokertest.Subscribe(t, b.URL("tcp"), meterCfgTopic, meterStateTopic)
	waitOnline(t, b.URL("tcp"))
	p.Publish(vectorReadings(t)[0])
	brokertest.WaitFor(t, 10*time.Second, "first announcement", func() bool { return len(live.All(meterCfgTopic)) > 0 })
	n := len(live.All(meterCfgTopic))
	ns := len(live.All(meterStateTopic))
	// Home Assistant restarts: it publishes its birth message.
	sent := time.Now()
	live.Client().Publish("homeassistant/status", 1, false, Online).Wait()
	brokertest.WaitFor(t, 10*time.Second, "re-announcement after homeassistant/status online", func() bool {
		return len(live.All(meterCfgTopic)) > n && len(live.All(meterStateTopic)) > ns
	})
	// The delay is part of the contract (HA needs a moment to subscribe).
	if got := live.All(meterCfgTopic)[n].At.Sub(sent); got < reannounceMin {
		t.Errorf("re-announced %v after online, want at least %v", got, reannounceMin)
	}
	// "offline" is not a reason to announce.
	m := len(live.All(meterCfgTopic))
	live.Client().Publish("homeassistant/status", 1, false, "offline").Wait()
	p.Publish(vectorReadings(t)[1]) // a new state; discovery must not repeat
	brokertest.WaitFor(t, 10*time.Second, "next state", func() bool { return len(live.All(meterStateTopic)) > ns+1 })
	// No event marks a re-announce that does not happen: a wrong one would
	// land within the re-announce delay, the behaviour under test, so the
	// test waits out that window once.
	time.Sleep(reannounceMin + reannounceJit)
	if got := len(live.All(meterCfgTopic)); got != m {
		t.Errorf("discovery published %d more times after offline / an unchanged reading", got-m)
	}
	if n := strings.Count(lb.String(), "re-announcing"); n != 1 {
		t.Errorf("%d re-announces scheduled, want 1 (for the one online):\n%s", n, lb.String())
	}
}

func TestIntegrationMeterRemoved(t *testing.T) {
	b := brokertest.Start(t, "")
	p, lb, _ := runPublisher(t, testConfig(b.URL("tcp")))
	other := vectorReadings(t)[0]
	other.ID = 0x11111111
	p.SetMeters([]Meter{{ID: 0x74493770}, {ID: other.ID, Name: "Garden"}})
	p.Publish(vectorReadings(t)[0])
	p.Publish(other)
	otherCfg := "homeassistant/device/kamstrup_11111111/config"
	waitRetained(t, b.URL("tcp"), "both meters announced", func(s map[string]brokertest.Message) bool {
		_, a := s[meterCfgTopic]
		_, o := s[otherCfg]
		_, av := s[meterAvailTopic]
		return a && o && av
	})
	// A meter not in the list is not published.
	stranger := other
	stranger.ID = 0x22222222
	p.Publish(stranger)

	live := brokertest.Subscribe(t, b.URL("tcp"), meterCfgTopic)
	live.Sync()
	live.Reset()
	p.SetMeters([]Meter{{ID: other.ID, Name: "Garden shed"}})
	brokertest.WaitFor(t, 10*time.Second, "empty config for the removed meter", func() bool {
		m, ok := live.Last(meterCfgTopic)
		return ok && len(m.Payload) == 0
	})
	snap := waitRetained(t, b.URL("tcp"), "removed meter gone, renamed meter re-announced", func(s map[string]brokertest.Message) bool {
		var c DeviceConfig
		m, ok := s[otherCfg]
		return ok && json.Unmarshal(m.Payload, &c) == nil && c.Device.Name == "Garden shed"
	})
	for _, topic := range []string{meterCfgTopic, meterAvailTopic, meterStateTopic,
		"homeassistant/device/kamstrup_22222222/config", "flowiq/22222222/state"} {
		if m, ok := snap[topic]; ok {
			t.Errorf("%s still retained: %q", topic, m.Payload)
		}
	}
	if !strings.Contains(lb.String(), "meter not in the meter list") {
		t.Errorf("unlisted meter not logged")
	}
}

func TestIntegrationGatewayStopped(t *testing.T) {
	b := brokertest.Start(t, "")
	p, _, stop := runPublisher(t, testConfig(b.URL("tcp")))
	p.SetGatewayState(GatewayState{TelegramsReceived: 3, TelegramsDecoded: 2, TelegramsFailed: 1, SDR: "ok"})
	waitRetained(t, b.URL("tcp"), "gateway online", func(s map[string]brokertest.Message) bool {
		st := stateOf(t, s, gwStateTopic)
		return string(s[gwAvailTopic].Payload) == Online && st != nil && st["telegrams_decoded"] == 2.0
	})
	stop()
	snap := retainedSnapshot(t, b.URL("tcp"))
	if m, ok := snap[gwAvailTopic]; !ok || string(m.Payload) != Offline {
		t.Errorf("after shutdown %s = %q (retained %v), want %q", gwAvailTopic, m.Payload, ok, Offline)
	}
}

func TestIntegrationMeterSilence(t *testing.T) {
	b := brokertest.Start(t, "")
	cfg := testConfig(b.URL("tcp"))
	cfg.MeterTimeout = 500 * time.Millisecond
	p, _, _ := runPublisher(t, cfg)
	live := brokertest.Subscribe(t, b.URL("tcp"), meterAvailTopic)
	waitOnline(t, b.URL("tcp"))
	p.Publish(vectorReadings(t)[0])
	brokertest.WaitFor(t, 10*time.Second, "online, then offline after the timeout", func() bool {
		var seq []string
		for _, m := range live.All(meterAvailTopic) {
			seq = append(seq, string(m.Payload))
		}
		i := slices.Index(seq, Online)
		return i >= 0 && slices.Index(seq[i:], Offline) > 0
	})
	p.Publish(vectorReadings(t)[1])
	brokertest.WaitFor(t, 10*time.Second, "online again", func() bool {
		m, ok := live.Last(meterAvailTopic)
		return ok && string(m.Payload) == Online
	})
}

func TestIntegrationLowerTotalNotPublished(t *testing.T) {
	b := brokertest.Start(t, "")
	p, lb, _ := runPublisher(t, testConfig(b.URL("tcp")))
	live := brokertest.Subscribe(t, b.URL("tcp"), meterStateTopic)
	waitOnline(t, b.URL("tcp"))
	rs := vectorReadings(t)
	p.Publish(rs[0])
	brokertest.WaitFor(t, 10*time.Second, "first state", func() bool { return len(live.All(meterStateTopic)) >= 1 })
	lower := rs[1]
	lower.Set(kamstrup.Total, kamstrup.Value{V: 8.000, Known: true})
	p.Publish(lower)
	higher := rs[2]
	higher.Set(kamstrup.Total, kamstrup.Value{V: 8.916, Known: true})
	// Let the lower one be processed on its own before the next arrives.
	brokertest.WaitFor(t, 10*time.Second, "warning about the lower total", func() bool {
		return strings.Contains(lb.String(), "total volume lower than the last published one")
	})
	p.Publish(higher)
	brokertest.WaitFor(t, 10*time.Second, "the higher state", func() bool {
		m, ok := live.Last(meterStateTopic)
		return ok && jsonField(t, m.Payload, "total_m3") == 8.916
	})
	for _, m := range live.All(meterStateTopic) {
		if jsonField(t, m.Payload, "total_m3") == 8.0 {
			t.Errorf("lower total published: %s", m.Payload)
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
	b := brokertest.Prepare(t, "")
	p, lb, _ := runPublisher(t, testConfig(b.URL("tcp")))
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
	brokertest.WaitFor(t, 10*time.Second, "an 'unreachable' log line", func() bool { return strings.Contains(lb.String(), "broker unreachable") })
	b.Start()
	waitRetained(t, b.URL("tcp"), "the newest reading of every meter", func(s map[string]brokertest.Message) bool {
		for m := range 50 {
			id := wmbus.ID(0x10000000 + m)
			st, ok := s["flowiq/"+id.String()+"/state"]
			// the last i with i%50 == m is 4950+m
			if !ok || accessNumber(t, st.Payload) != (4950+m)&0xFF {
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
	b := brokertest.Start(t, "")
	rs := vectorReadings(t)
	other := rs[0]
	other.ID = 0x11111111
	p, _, stop := runPublisher(t, testConfig(b.URL("tcp")))
	p.Publish(rs[0])
	p.Publish(other)
	foreignCfg := "homeassistant/device/kamstrup_33333333/config"
	foreign := must(t)(MeterConfig(Site{DiscoveryPrefix: "homeassistant", BaseTopic: "other", GatewayID: "other_gateway"},
		Meter{ID: 0x33333333}, "flowIQ 2101", FeaturesOf(&rs[0])))
	live := brokertest.Subscribe(t, b.URL("tcp"))
	live.Client().Publish(foreignCfg, 1, true, foreign.Payload).Wait()
	waitRetained(t, b.URL("tcp"), "first run announced both meters", func(s map[string]brokertest.Message) bool {
		_, a := s[meterCfgTopic]
		_, o := s["homeassistant/device/kamstrup_11111111/config"]
		return a && o
	})
	stop()

	p, _, _ = runPublisher(t, testConfig(b.URL("tcp")))
	p.SetMeters([]Meter{{ID: other.ID}})
	snap := waitRetained(t, b.URL("tcp"), "leftover device of 74493770 removed", func(s map[string]brokertest.Message) bool {
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
