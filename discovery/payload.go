// Package discovery publishes meter readings to Home Assistant over MQTT:
// device-based discovery payloads (pure functions over a Site, a Meter and
// the Features a meter has shown), and the Publisher that keeps them, the
// state and the availability right through broker and Home Assistant
// restarts.
package discovery

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Origin URL published in every discovery payload ("o").
const projectURL = "https://github.com/flowiq-gateway/flowiq-gateway"

// Site is everything a payload is built from besides the meter: topics and
// the gateway's own identity. Build it with Config.Site or fill it and call
// Normalize.
type Site struct {
	DiscoveryPrefix string // "homeassistant"
	BaseTopic       string // "flowiq"
	GatewayID       string // device identifier and discovery object id
	GatewayName     string
	SWVersion       string // empty: not published
	// StatusTopic is where Home Assistant publishes its birth ("online")
	// message. It is not derived from the discovery prefix: Home Assistant
	// keeps "homeassistant/status" whatever prefix it discovers under.
	StatusTopic string
	// ConfigurationURL is the devices' link to where they are configured
	// (the add-on's page, "homeassistant://hassio/addon/<slug>/info");
	// empty: not published.
	ConfigurationURL string
}

// Defaults for an empty Site field.
const (
	DefaultDiscoveryPrefix = "homeassistant"
	DefaultBaseTopic       = "flowiq"
	DefaultGatewayID       = "flowiq_gateway"
	DefaultGatewayName     = "flowIQ Gateway"
	DefaultStatusTopic     = "homeassistant/status"
)

// Availability payloads.
const (
	Online  = "online"
	Offline = "offline"
)

// Normalize fills defaults and checks that every topic part is usable: MQTT
// wildcards, empty levels or an object id outside [A-Za-z0-9_-] would make
// Home Assistant ignore the device without a word.
func (s Site) Normalize() (Site, error) {
	if s.DiscoveryPrefix == "" {
		s.DiscoveryPrefix = DefaultDiscoveryPrefix
	}
	if s.BaseTopic == "" {
		s.BaseTopic = DefaultBaseTopic
	}
	if s.GatewayID == "" {
		s.GatewayID = DefaultGatewayID
	}
	if s.GatewayName == "" {
		s.GatewayName = DefaultGatewayName
	}
	if s.StatusTopic == "" {
		s.StatusTopic = DefaultStatusTopic
	}
	for _, t := range [...]struct{ what, v string }{{"discovery prefix", s.DiscoveryPrefix}, {"base topic", s.BaseTopic},
		{"status topic", s.StatusTopic}} {
		if err := checkTopic(t.v); err != nil {
			return s, fmt.Errorf("%w: %s %q: %w", ErrConfig, t.what, t.v, err)
		}
	}
	if !validObjectID(s.GatewayID) {
		return s, fmt.Errorf("%w: gateway ID %q: use only letters, digits, '_' and '-'", ErrConfig, s.GatewayID)
	}
	if u := s.ConfigurationURL; u != "" && !hasAnyPrefix(u, "homeassistant://", "http://", "https://") {
		// Home Assistant rejects the whole device config over a bad link.
		return s, fmt.Errorf("%w: configuration URL %q: want homeassistant://, http:// or https://", ErrConfig, u)
	}
	return s, nil
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func checkTopic(t string) error {
	if strings.ContainsAny(t, "+#\x00") {
		return fmt.Errorf("contains an MQTT wildcard or NUL")
	}
	if strings.HasPrefix(t, "/") || strings.HasSuffix(t, "/") || strings.Contains(t, "//") {
		return fmt.Errorf("has an empty topic level")
	}
	return nil
}

func validObjectID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Topics. The gateway's availability doubles as its MQTT last will.

// GatewayAvailabilityTopic carries "online"/"offline" for the whole gateway.
func (s Site) GatewayAvailabilityTopic() string { return s.BaseTopic + "/status" }

// GatewayStateTopic carries the GatewayState JSON.
func (s Site) GatewayStateTopic() string { return s.BaseTopic + "/gateway/state" }

// MeterStateTopic carries the reading JSON (kamstrup.Reading.MarshalJSON).
func (s Site) MeterStateTopic(id wmbus.ID) string { return s.BaseTopic + "/" + id.String() + "/state" }

// MeterAvailabilityTopic carries "online"/"offline" for one meter.
func (s Site) MeterAvailabilityTopic(id wmbus.ID) string {
	return s.BaseTopic + "/" + id.String() + "/availability"
}

// HAStatusTopic is where Home Assistant announces its own birth and death.
func (s Site) HAStatusTopic() string { return s.StatusTopic }

// DeviceConfigTopic is the device-based discovery topic of one device.
func (s Site) DeviceConfigTopic(objectID string) string {
	return s.DiscoveryPrefix + "/device/" + objectID + "/config"
}

// GatewayDeviceID is the gateway's device identifier (what meters name as
// via_device).
func (s Site) GatewayDeviceID() string { return s.GatewayID }

// MeterDeviceID is a meter's device identifier and discovery object id.
func MeterDeviceID(id wmbus.ID) string { return "kamstrup_" + id.String() }

// Meter is the meter list's view of one meter, as far as Home Assistant is
// concerned.
type Meter struct {
	ID       wmbus.ID
	Name     string // empty: "Kamstrup <model> <id>"
	Disabled bool   // a disabled meter is treated as removed
}

// Message is one MQTT publication.
type Message struct {
	Topic   string
	Payload []byte
	Retain  bool
}

// Features is what a meter has shown it reports; entities exist only for
// these. The Publisher keeps the union over all readings of a meter so an
// entity, once announced, stays.
type Features struct {
	Quantities uint32 // bit q: kamstrup.Quantity q
	Alarms     uint8  // bit a: kamstrup.Alarm a is carried by the info code
	History    uint8  // bit a: the info code carries a 30-day history for a
	InfoCode   bool
	Radio      bool // signal level known (the reading came from the receiver)
	Time       bool
	TargetDate bool
	// Version is the meter's version byte from the link-layer header,
	// published as the device's sw_version; every reading carries one.
	Version    uint8
	HasVersion bool
	Reception  bool // reception quality known (reception.go)
}

// FeaturesOf reads the features off one reading.
func FeaturesOf(r *kamstrup.Reading) Features {
	var f Features
	for q := range kamstrup.NumQuantities {
		if r.Has(q) {
			f.Quantities |= 1 << q
		}
	}
	f.InfoCode = r.Info.Bits != 0
	for a := range kamstrup.NumAlarms {
		if r.Info.Supports(a) {
			f.Alarms |= 1 << a
		}
		if _, ok := r.Info.Duration(a); ok {
			f.History |= 1 << a
		}
	}
	// the reading JSON has level_dbfs only when the radio mode is known.
	f.Radio = r.Radio.Mode != ""
	f.Time = !r.Time.IsZero()
	f.TargetDate = !r.TargetDate.IsZero()
	f.Version, f.HasVersion = r.Version, true
	return f
}

// Union is every feature of f or g; the version is g's when it has one
// (the newer reading's: a firmware change re-announces the device).
func (f Features) Union(g Features) Features {
	u := Features{
		Quantities: f.Quantities | g.Quantities,
		Alarms:     f.Alarms | g.Alarms,
		History:    f.History | g.History,
		InfoCode:   f.InfoCode || g.InfoCode,
		Radio:      f.Radio || g.Radio,
		Time:       f.Time || g.Time,
		TargetDate: f.TargetDate || g.TargetDate,
		Version:    f.Version, HasVersion: f.HasVersion,
		Reception: f.Reception || g.Reception,
	}
	if g.HasVersion {
		u.Version, u.HasVersion = g.Version, true
	}
	return u
}

// Covers reports whether f already has every feature of g.
func (f Features) Covers(g Features) bool { return f.Union(g) == f }

// Device is the "dev" object.
type Device struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer,omitempty"`
	Model        string   `json:"model,omitempty"`
	SerialNumber string   `json:"serial_number,omitempty"`
	SWVersion    string   `json:"sw_version,omitempty"`
	ViaDevice    string   `json:"via_device,omitempty"`
	// ConfigurationURL: Home Assistant shows it as the device page's
	// "Visit" link; homeassistant:// paths open inside the frontend.
	ConfigurationURL string `json:"configuration_url,omitempty"`
}

// Origin is the "o" object.
type Origin struct {
	Name      string `json:"name"`
	SWVersion string `json:"sw,omitempty"`
	URL       string `json:"url"`
}

// Availability is one entry of an "availability" list.
type Availability struct {
	Topic string `json:"topic"`
}

// Component is one entity in "cmps".
type Component struct {
	Platform         string         `json:"p"`
	Name             string         `json:"name,omitempty"`
	UniqueID         string         `json:"unique_id,omitempty"`
	DefaultEntityID  string         `json:"default_entity_id,omitempty"`
	DeviceClass      string         `json:"device_class,omitempty"`
	Unit             string         `json:"unit_of_measurement,omitempty"`
	StateClass       string         `json:"state_class,omitempty"`
	Precision        *int           `json:"suggested_display_precision,omitempty"`
	EntityCategory   string         `json:"entity_category,omitempty"`
	EnabledByDefault *bool          `json:"enabled_by_default,omitempty"`
	Icon             string         `json:"icon,omitempty"`
	StateTopic       string         `json:"state_topic,omitempty"`
	ValueTemplate    string         `json:"value_template,omitempty"`
	PayloadOn        string         `json:"payload_on,omitempty"`
	PayloadOff       string         `json:"payload_off,omitempty"`
	Availability     []Availability `json:"availability,omitempty"`
	AvailabilityMode string         `json:"availability_mode,omitempty"`
	PayloadAvailable string         `json:"payload_available,omitempty"`
	PayloadNotAvail  string         `json:"payload_not_available,omitempty"`
}

// DeviceConfig is a device-based discovery payload. Keys shared by every
// component (state topic, availability) sit at the top level.
type DeviceConfig struct {
	Device           Device               `json:"dev"`
	Origin           Origin               `json:"o"`
	Components       map[string]Component `json:"cmps"`
	StateTopic       string               `json:"state_topic,omitempty"`
	Availability     []Availability       `json:"availability,omitempty"`
	AvailabilityMode string               `json:"availability_mode,omitempty"`
	QoS              int                  `json:"qos"`
}

// recipe is how one kind of value looks in Home Assistant. Units are fixed
// here forever: changing one would break long-term statistics.
type recipe struct {
	platform    string
	deviceClass string
	unit        string
	stateClass  string
	precision   int // suggested display precision; -1: none
	icon        string
	// suffix is the unit suffix of the reading's JSON key, stripped to get
	// the stable entity id ("total_m3" → "total").
	suffix string
}

// classRecipes maps each kamstrup.Class to Home Assistant's vocabulary.
var classRecipes = map[kamstrup.Class]recipe{
	kamstrup.Volume:      {"sensor", "water", "m³", "total_increasing", 3, "", "_m3"},
	kamstrup.VolumeFlow:  {"sensor", "volume_flow_rate", "m³/h", "measurement", 3, "", "_m3h"},
	kamstrup.Temperature: {"sensor", "temperature", "°C", "measurement", 0, "", "_c"},
}

// stateClassOverride: the target-date volume restarts its meaning every
// month, so it is a "total", not an ever-increasing counter.
var stateClassOverride = map[kamstrup.Quantity]string{
	kamstrup.Target: "total",
}

// alarmClasses: binary sensor device class per alarm flag.
var alarmClasses = [kamstrup.NumAlarms]string{
	kamstrup.Dry:        "problem",
	kamstrup.Reverse:    "problem",
	kamstrup.Leak:       "moisture",
	kamstrup.Burst:      "moisture",
	kamstrup.Tamper:     "tamper",
	kamstrup.LowBattery: "battery",
}

// quantityRecipe returns the recipe and the stable entity id of q.
func quantityRecipe(q kamstrup.Quantity) (recipe, string) {
	qi := kamstrup.Quantities[q]
	rc := classRecipes[qi.Class]
	if sc, ok := stateClassOverride[q]; ok {
		rc.stateClass = sc
	}
	return rc, strings.TrimSuffix(qi.Key, rc.suffix)
}

// numberTemplate reads key, unknown when absent or null.
func numberTemplate(key string) string {
	return "{{ value_json." + key + " if value_json." + key + " is defined else none }}"
}

func alarmTemplate(flag string) string {
	return "{{ ('ON' if '" + flag + "' in value_json.alarms else 'OFF') if value_json.alarms is defined else none }}"
}

// historyTemplate lists the alarms with a non-empty 30-day history,
// "dry 4-7 days, leak 1-8 hours", or "none".
func historyTemplate(keys []string) string {
	return "{% if value_json.info_code is defined %}{% set ns = namespace(h=[]) %}" +
		"{% for k in ['" + strings.Join(keys, "','") + "'] %}" +
		"{% set d = value_json[k ~ '_duration'] | default('none') %}" +
		"{% if d != 'none' %}{% set ns.h = ns.h + [k ~ ' ' ~ d] %}{% endif %}{% endfor %}" +
		"{{ ns.h | join(', ') if ns.h else 'none' }}{% else %}{{ none }}{% endif %}"
}

// differenceTemplate is a − b rounded to digits decimals, unknown unless
// both are numbers (absent or null when the meter did not measure).
func differenceTemplate(a, b string, digits int) string {
	return "{{ ((value_json." + a + " - value_json." + b + ") | round(" + strconv.Itoa(digits) + ")) if value_json." + a +
		" is number and value_json." + b + " is number else none }}"
}

// removedLastSeen is the component key of an entity earlier versions
// announced and this one removes.
const removedLastSeen = "last_seen"

// meterVersion is the device's sw_version: the version byte as the
// reading JSON writes it ("0x1F").
func meterVersion(f Features) string {
	if !f.HasVersion {
		return ""
	}
	const hex = "0123456789ABCDEF"
	return string([]byte{'0', 'x', hex[f.Version>>4], hex[f.Version&15]})
}

func ptr[T any](v T) *T { return &v }

// meterName is the device name Home Assistant shows.
func meterName(m Meter, model string) string {
	if m.Name != "" {
		return m.Name
	}
	if model == "" {
		return "Kamstrup " + m.ID.String()
	}
	return "Kamstrup " + model + " " + m.ID.String()
}

// meterModel is the reading's model (the meter list's override is already
// applied to it, once, by the gateway); an unknown model is left out rather
// than published as "unknown".
func meterModel(decoded string) string {
	if decoded == "unknown" {
		return ""
	}
	return decoded
}

// origin is the "o" object of every payload.
func (s Site) origin() Origin {
	return Origin{Name: "flowiq-gateway", SWVersion: s.SWVersion, URL: projectURL}
}

// MeterConfig builds the discovery payload of one meter: one entity per
// feature f holds. decodedModel is the decoder's model name.
func MeterConfig(s Site, m Meter, decodedModel string, f Features) (Message, error) {
	id := m.ID.String()
	dev := MeterDeviceID(m.ID)
	model := meterModel(decodedModel)
	cfg := DeviceConfig{
		Device: Device{
			Identifiers:      []string{dev},
			Name:             meterName(m, model),
			Manufacturer:     "Kamstrup",
			Model:            model,
			SerialNumber:     id,
			SWVersion:        meterVersion(f),
			ViaDevice:        s.GatewayDeviceID(),
			ConfigurationURL: s.ConfigurationURL,
		},
		Origin:           s.origin(),
		Components:       make(map[string]Component, 24),
		StateTopic:       s.MeterStateTopic(m.ID),
		Availability:     []Availability{{s.GatewayAvailabilityTopic()}, {s.MeterAvailabilityTopic(m.ID)}},
		AvailabilityMode: "all",
		QoS:              1,
	}
	add := func(key string, c Component) {
		c.UniqueID = dev + "_" + key
		c.DefaultEntityID = c.Platform + "." + dev + "_" + key
		cfg.Components[key] = c
	}
	addValues(add, f)
	addAlarms(add, f)
	addDiagnostics(add, s, m.ID, f)
	if f.Time {
		// Version 0.1.0 announced a "Last seen" sensor; a component with
		// only its platform removes it from Home Assistant.
		cfg.Components[removedLastSeen] = Component{Platform: "sensor"}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return Message{}, fmt.Errorf("meter %s: discovery payload: %w", id, err)
	}
	return Message{Topic: s.DeviceConfigTopic(dev), Payload: b, Retain: true}, nil
}

// adder adds one component under its key.
type adder func(key string, c Component)

// addValues adds a sensor per quantity the meter reported, the month's
// consumption and the target date.
func addValues(add adder, f Features) {
	for q := range kamstrup.NumQuantities {
		if f.Quantities&(1<<q) == 0 {
			continue
		}
		rc, key := quantityRecipe(q)
		qi := kamstrup.Quantities[q]
		c := Component{
			Platform:      rc.platform,
			Name:          qi.Name,
			DeviceClass:   rc.deviceClass,
			Unit:          rc.unit,
			StateClass:    rc.stateClass,
			Icon:          rc.icon,
			ValueTemplate: numberTemplate(qi.Key),
		}
		if rc.precision >= 0 {
			c.Precision = ptr(rc.precision)
		}
		add(key, c)
	}
	if f.Quantities&(1<<kamstrup.Total) != 0 && f.Quantities&(1<<kamstrup.Target) != 0 {
		// The month so far: total minus the volume on the target date. It
		// falls back to about zero when the meter moves its target date on,
		// which total_increasing takes as a new cycle: the recorder's sums
		// stay right across months.
		rc := classRecipes[kamstrup.Volume]
		add("month_consumption", Component{
			Platform:      rc.platform,
			Name:          "Consumption this month",
			DeviceClass:   rc.deviceClass,
			Unit:          rc.unit,
			StateClass:    "total_increasing",
			Precision:     ptr(rc.precision),
			Icon:          "mdi:calendar-month",
			ValueTemplate: differenceTemplate(kamstrup.Quantities[kamstrup.Total].Key, kamstrup.Quantities[kamstrup.Target].Key, rc.precision),
		})
	}
	if f.TargetDate {
		add("target_date", Component{
			Platform:      "sensor",
			Name:          "Target date",
			DeviceClass:   "date",
			ValueTemplate: numberTemplate("target_date"),
		})
	}
}

// addAlarms adds a problem sensor per alarm and the 30-day history.
func addAlarms(add adder, f Features) {
	var history []string
	for a := range kamstrup.NumAlarms {
		ai := kamstrup.Alarms[a]
		if f.Alarms&(1<<a) != 0 {
			add("alarm_"+ai.Key, Component{
				Platform:      "binary_sensor",
				Name:          ai.Name,
				DeviceClass:   alarmClasses[a],
				ValueTemplate: alarmTemplate(ai.Flag),
			})
		}
		if f.History&(1<<a) != 0 {
			history = append(history, ai.Key)
		}
	}
	if len(history) > 0 {
		add("alarm_history", Component{
			Platform:       "sensor",
			Name:           "Alarm history (30 days)",
			EntityCategory: "diagnostic",
			Icon:           "mdi:history",
			ValueTemplate:  historyTemplate(history),
		})
	}
}

// addDiagnostics adds the diagnostic entities: info code, signal level,
// reception and reception quality.
func addDiagnostics(add adder, s Site, id wmbus.ID, f Features) {
	if f.InfoCode {
		add("info_code", Component{
			Platform:       "sensor",
			Name:           "Info code",
			EntityCategory: "diagnostic",
			Icon:           "mdi:information-outline",
			ValueTemplate:  numberTemplate("info_code"),
		})
	}
	if f.Radio {
		// The receiver measures dBFS, not dBm: the unit says dB so Home
		// Assistant accepts it without pretending to be calibrated.
		add("rssi", Component{
			Platform:         "sensor",
			Name:             "Signal level",
			DeviceClass:      "signal_strength",
			Unit:             "dB",
			StateClass:       "measurement",
			Precision:        ptr(1),
			EntityCategory:   "diagnostic",
			EnabledByDefault: ptr(false),
			ValueTemplate:    numberTemplate("level_dbfs"),
		})
	}
	// Whether the meter is heard: the meter's availability topic, which
	// changes only when it falls silent or comes back. A "last seen"
	// timestamp would change with every telegram and write a state row
	// every 16 s per meter into the recorder; the reading's time stays in
	// the state JSON for templates.
	add("reception", Component{
		Platform:       "binary_sensor",
		Name:           "Reception",
		DeviceClass:    "connectivity",
		EntityCategory: "diagnostic",
		StateTopic:     s.MeterAvailabilityTopic(id),
		PayloadOn:      Online,
		PayloadOff:     Offline,
		Availability:   []Availability{{s.GatewayAvailabilityTopic()}},
	})
	if f.Reception {
		add("reception_quality", receptionComponent(s, id))
	}
}

// RemoveMeter is the empty retained config that removes a meter's device.
func RemoveMeter(s Site, id wmbus.ID) Message {
	return Message{Topic: s.DeviceConfigTopic(MeterDeviceID(id)), Retain: true}
}

// ClearMeterAvailability deletes a removed meter's retained availability.
func ClearMeterAvailability(s Site, id wmbus.ID) Message {
	return Message{Topic: s.MeterAvailabilityTopic(id), Retain: true}
}

// ClearMeterState deletes a removed meter's retained state.
func ClearMeterState(s Site, id wmbus.ID) Message {
	return Message{Topic: s.MeterStateTopic(id), Retain: true}
}
