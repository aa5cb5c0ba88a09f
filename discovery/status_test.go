package discovery

import (
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
)

// TestIntegrationCustomPrefixReannounce: with discovery prefix "custom",
// Home Assistant still publishes its birth message on homeassistant/status
// (the MQTT integration's birth topic is its own setting), and that must
// re-announce the devices under custom/; "online" on custom/status, which
// nothing publishes, must not.
func TestIntegrationCustomPrefixReannounce(t *testing.T) {
	b := brokertest.Start(t, "")
	cfg := testConfig(b.URL("tcp"))
	cfg.DiscoveryPrefix = "custom"
	p, _, _ := runPublisher(t, cfg)
	const cfgTopic = "custom/device/kamstrup_74493770/config"
	live := brokertest.Subscribe(t, b.URL("tcp"), cfgTopic, gwAvailTopic)
	waitOnline(t, b.URL("tcp"))
	p.Publish(vectorReadings(t)[0])
	brokertest.WaitFor(t, 10*time.Second, "first announcement under custom/", func() bool { return len(live.All(cfgTopic)) > 0 })
	n := len(live.All(cfgTopic))

	live.Client().Publish("custom/status", 1, false, Online).Wait()
	// No event marks an announcement that does not happen: wait out the
	// re-announce window once.
	time.Sleep(reannounceMin + reannounceJit + 200*time.Millisecond)
	if got := len(live.All(cfgTopic)); got != n {
		t.Errorf("online on custom/status re-announced (%d more); only the birth topic may", got-n)
	}

	live.Client().Publish("homeassistant/status", 1, false, Online).Wait()
	brokertest.WaitFor(t, 10*time.Second, "re-announcement under custom/ after homeassistant/status online", func() bool {
		return len(live.All(cfgTopic)) > n
	})
}

// TestIntegrationStatusTopicSetting: a birth topic set apart (a Home
// Assistant whose MQTT integration uses another one) is the one followed.
func TestIntegrationStatusTopicSetting(t *testing.T) {
	b := brokertest.Start(t, "")
	cfg := testConfig(b.URL("tcp"))
	cfg.StatusTopic = "ha-main/status"
	p, _, _ := runPublisher(t, cfg)
	live := brokertest.Subscribe(t, b.URL("tcp"), meterCfgTopic)
	waitOnline(t, b.URL("tcp"))
	p.Publish(vectorReadings(t)[0])
	brokertest.WaitFor(t, 10*time.Second, "first announcement", func() bool { return len(live.All(meterCfgTopic)) > 0 })
	n := len(live.All(meterCfgTopic))
	live.Client().Publish("ha-main/status", 1, false, Online).Wait()
	brokertest.WaitFor(t, 10*time.Second, "re-announcement after ha-main/status online", func() bool {
		return len(live.All(meterCfgTopic)) > n
	})
}

func TestStatusTopicDefault(t *testing.T) {
	for _, prefix := range []string{"", "homeassistant", "custom", "a/b"} {
		s, err := Site{DiscoveryPrefix: prefix}.Normalize()
		if err != nil {
			t.Fatal(err)
		}
		if s.HAStatusTopic() != "homeassistant/status" {
			t.Errorf("prefix %q: status topic %q, want homeassistant/status", prefix, s.HAStatusTopic())
		}
	}
	for _, bad := range []string{"home/+/status", "status/#", "/status"} {
		if _, err := (Site{StatusTopic: bad}).Normalize(); err == nil {
			t.Errorf("status topic %q accepted", bad)
		}
	}
	if _, err := (Site{ConfigurationURL: "javascript:alert(1)"}).Normalize(); err == nil {
		t.Error("a configuration URL outside homeassistant/http/https accepted")
	}
}
