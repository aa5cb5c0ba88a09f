package discovery

import (
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
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

// configuration_url and sw_version reach Home Assistant on both devices
// when set, and stay out when not.
func TestDeviceLinks(t *testing.T) {
	const link = "homeassistant://hassio/addon/local_flowiq_gateway/info"
	s, err := Site{ConfigurationURL: link, SWVersion: "0.2.0"}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	f := Features{Quantities: 1 << kamstrup.Total, Version: 0x3A, HasVersion: true}
	meter := decodeConfig(t, must(t)(MeterConfig(s, Meter{ID: 0x52525252}, "flowIQ 2200", f)))
	gw := decodeConfig(t, must(t)(GatewayConfig(s)))
	if meter.Device.ConfigurationURL != link || gw.Device.ConfigurationURL != link {
		t.Errorf("configuration_url: meter %q, gateway %q", meter.Device.ConfigurationURL, gw.Device.ConfigurationURL)
	}
	if meter.Device.SWVersion != "0x3A" || gw.Device.SWVersion != "0.2.0" {
		t.Errorf("sw_version: meter %q, gateway %q", meter.Device.SWVersion, gw.Device.SWVersion)
	}
	plain := must(t)(MeterConfig(testSite(t), Meter{ID: 0x52525252}, "flowIQ 2200", Features{Quantities: 1 << kamstrup.Total}))
	if strings.Contains(string(plain.Payload), "configuration_url") || strings.Contains(string(plain.Payload), "\"sw_version\"") {
		t.Errorf("unset links published: %s", plain.Payload)
	}
}
