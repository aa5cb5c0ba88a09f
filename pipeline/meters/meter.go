// Package meters is the meter list: a TOML file of meters and their AES keys
// (plus the gateway's radio and MQTT settings), validated strictly and
// reloaded live when it changes.
package meters

import (
	"fmt"
	"log/slog"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Meter is one entry of the meter list.
type Meter struct {
	ID      wmbus.ID
	Name    string   // what Home Assistant calls the device; defaults to the ID
	Key     [16]byte // AES-128 key; meaningful only when HasKey
	HasKey  bool
	Model   string // optional override of the decoded model name
	Enabled bool   // a disabled meter is known but neither decoded nor published
	Source  string // where the entry came from, for messages: "meters.toml:12", "add-on options"
}

// String names the meter without its key, so that printing a Meter with %v
// or %s can never leak the key.
func (m Meter) String() string {
	key := "no key"
	if m.HasKey {
		key = "key set"
	}
	state := "enabled"
	if !m.Enabled {
		state = "disabled"
	}
	return fmt.Sprintf("meter %s %q (%s, %s, from %s)", m.ID, m.Name, key, state, m.Source)
}

// GoString keeps %#v from printing the key bytes.
func (m Meter) GoString() string { return m.String() }

// LogValue keeps slog from printing the key bytes.
func (m Meter) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", m.ID.String()),
		slog.String("name", m.Name),
		slog.Bool("has_key", m.HasKey),
		slog.Bool("enabled", m.Enabled),
		slog.String("source", m.Source),
	)
}
