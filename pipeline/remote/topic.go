// Package remote carries frames over MQTT: receivers anywhere publish the
// CRC-checked frames they hear, one decoder (or several, split by shard)
// subscribes and decodes them. The broker is the bus; MQTT's own QoS 1 and
// persistent sessions make delivery reliable.
//
// Topics:
//
//	<base>/frames/<shard>/<receiver>   one JSON message per frame (QoS 1)
//	<base>/receivers/<receiver>/status online / offline (retained, last will)
//
// <shard> is the last digit of the meter ID, so a decoder subscribed to
// <base>/frames/3/# gets every frame of the meters ending in 3, from every
// receiver. A frame message is the pipeline's FrameInfo JSON — the same
// object `listen --json` prints — with the receiver's name.
package remote

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultBase is the base topic when none is given.
const DefaultBase = "flowiq"

// Shards is how many shards there are: the last digit of a meter ID.
const Shards = 10

// FrameTopic is where a receiver publishes the frames of a meter.
func FrameTopic(base, shard, receiver string) string {
	return base + "/frames/" + shard + "/" + receiver
}

// FramesFilter is the subscription for every frame of one shard ("" = all).
func FramesFilter(base, shard string) string {
	if shard == "" {
		return base + "/frames/#"
	}
	return base + "/frames/" + shard + "/#"
}

// StatusTopic carries a receiver's online/offline status, retained.
func StatusTopic(base, receiver string) string {
	return base + "/receivers/" + receiver + "/status"
}

// Status payloads.
const (
	Online  = "online"
	Offline = "offline"
)

// Shard returns the shard of a meter ID as printed ("74493770" → "0").
func Shard(id string) string {
	if id == "" {
		return "_"
	}
	return strings.ToLower(id[len(id)-1:])
}

// ErrName marks a receiver or base topic name that cannot be a topic level.
var ErrName = errors.New("not usable in an MQTT topic")

// CheckName checks a receiver name: one topic level, no wildcards.
func CheckName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s: %w: empty", what, ErrName)
	case strings.ContainsAny(s, "/+#\x00"):
		return fmt.Errorf("%s %q: %w: it may not contain /, + or #", what, s, ErrName)
	case len(s) > 64:
		return fmt.Errorf("%s %q: %w: longer than 64 bytes", what, s, ErrName)
	}
	return nil
}

// CheckBase checks a base topic: levels without wildcards.
func CheckBase(s string) error {
	if s == "" || strings.ContainsAny(s, "+#\x00") || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") {
		return fmt.Errorf("base topic %q: %w: want levels like flowiq or home/water, without + or #", s, ErrName)
	}
	return nil
}
