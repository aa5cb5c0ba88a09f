package discovery

import (
	"encoding/json"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
)

// The reception quality reaches Home Assistant: a diagnostic sensor joins
// the meter's device, its value is retained on its own topic, and a meter
// removed from the list takes the value with it.
func TestIntegrationReception(t *testing.T) {
	b := brokertest.Start(t, "")
	p, _, _ := runPublisher(t, testConfig(b.URL("tcp")))
	p.SetMeters([]Meter{{ID: 0x74493770, Name: "Kitchen"}})
	p.Publish(vectorReadings(t)[0])
	p.SetReception(0x74493770, Reception{HourPct: 87.5, DayPct: 91.2})
	const topic = "flowiq/74493770/reception"
	snap := waitRetained(t, b.URL("tcp"), "the reception value and sensor", func(s map[string]brokertest.Message) bool {
		var c DeviceConfig
		_, ok := s[topic]
		return ok && json.Unmarshal(s[meterCfgTopic].Payload, &c) == nil && c.Components["reception_quality"].Platform != ""
	})
	if got := stateOf(t, snap, topic); got["reception_1h_pct"] != 87.5 || got["reception_24h_pct"] != 91.2 {
		t.Errorf("%s = %s", topic, snap[topic].Payload)
	}
	var c DeviceConfig
	if err := json.Unmarshal(snap[meterCfgTopic].Payload, &c); err != nil {
		t.Fatal(err)
	}
	rc := c.Components["reception_quality"]
	if rc.StateTopic != topic || rc.Unit != "%" || rc.EntityCategory != "diagnostic" || rc.StateClass != "measurement" ||
		rc.UniqueID != "kamstrup_74493770_reception_quality" || rc.ValueTemplate != numberTemplate("reception_1h_pct") {
		t.Errorf("reception sensor %+v", rc)
	}

	p.SetMeters(nil)
	waitRetained(t, b.URL("tcp"), "the value cleared with the meter", func(s map[string]brokertest.Message) bool {
		_, v := s[topic]
		_, cfg := s[meterCfgTopic]
		return !v && !cfg
	})
}
