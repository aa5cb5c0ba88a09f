package discovery

import (
	"encoding/json"
	"fmt"
	"time"
)

// GatewayState is the gateway's own health, published as JSON on the
// gateway state topic. The caller owns the numbers (it sees the radio);
// counters may restart at zero after a restart, which total_increasing
// handles.
type GatewayState struct {
	TelegramsReceived uint64    `json:"telegrams_received"`
	TelegramsDecoded  uint64    `json:"telegrams_decoded"`
	TelegramsFailed   uint64    `json:"telegrams_failed"`
	SDR               string    `json:"sdr"` // e.g. "ok", "no samples for 10s"
	LastTelegram      time.Time `json:"last_telegram,omitzero"`
}

// MarshalState is the JSON published on the gateway state topic.
func (g GatewayState) MarshalState() ([]byte, error) {
	if g.SDR == "" {
		g.SDR = "unknown"
	}
	g.LastTelegram = g.LastTelegram.UTC()
	return json.Marshal(g)
}

// gatewayEntity is one row of the gateway's entity table.
type gatewayEntity struct {
	key, name, deviceClass, stateClass, icon, field string
}

// gatewayEntities are read from GatewayState's JSON; the connectivity
// sensor is added separately because it reads the availability topic.
var gatewayEntities = []gatewayEntity{
	{"telegrams_received", "Telegrams received", "", "total_increasing", "mdi:radio-tower", "telegrams_received"},
	{"telegrams_decoded", "Telegrams decoded", "", "total_increasing", "mdi:check-circle-outline", "telegrams_decoded"},
	{"telegrams_failed", "Telegrams failed", "", "total_increasing", "mdi:alert-circle-outline", "telegrams_failed"},
	{"sdr", "SDR health", "", "", "mdi:antenna", "sdr"},
	{"last_telegram", "Last telegram", "timestamp", "", "", "last_telegram"},
}

// GatewayConfig builds the gateway's own discovery payload.
func GatewayConfig(s Site) (Message, error) {
	dev := s.GatewayDeviceID()
	cfg := DeviceConfig{
		Device: Device{
			Identifiers:      []string{dev},
			Name:             s.GatewayName,
			Manufacturer:     "flowiq-gateway",
			Model:            "wM-Bus gateway",
			SWVersion:        s.SWVersion,
			ConfigurationURL: s.ConfigurationURL,
		},
		Origin:     s.origin(),
		Components: make(map[string]Component, len(gatewayEntities)+1),
		QoS:        1,
	}
	// No availability on the connectivity sensor itself: when the gateway
	// is gone it must read "disconnected", not "unavailable".
	cfg.Components["status"] = Component{
		Platform:        "binary_sensor",
		Name:            "Status",
		UniqueID:        dev + "_status",
		DefaultEntityID: "binary_sensor." + dev + "_status",
		DeviceClass:     "connectivity",
		EntityCategory:  "diagnostic",
		StateTopic:      s.GatewayAvailabilityTopic(),
		PayloadOn:       Online,
		PayloadOff:      Offline,
	}
	avail := []Availability{{s.GatewayAvailabilityTopic()}}
	for _, e := range gatewayEntities {
		cfg.Components[e.key] = Component{
			Platform:        "sensor",
			Name:            e.name,
			UniqueID:        dev + "_" + e.key,
			DefaultEntityID: "sensor." + dev + "_" + e.key,
			DeviceClass:     e.deviceClass,
			StateClass:      e.stateClass,
			EntityCategory:  "diagnostic",
			Icon:            e.icon,
			StateTopic:      s.GatewayStateTopic(),
			ValueTemplate:   numberTemplate(e.field),
			Availability:    avail,
		}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return Message{}, fmt.Errorf("gateway discovery payload: %w", err)
	}
	return Message{Topic: s.DeviceConfigTopic(dev), Payload: b, Retain: true}, nil
}
