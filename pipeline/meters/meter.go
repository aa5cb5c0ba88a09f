// Package meters is the meter list: a TOML file of meters and their AES keys
// (plus the gateway's radio and MQTT settings), validated strictly and
// reloaded live when it changes.
package meters

import "github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"

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
