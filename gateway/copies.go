package gateway

import (
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
)

// dedupHold is how long the first copy of a telegram waits for the copies
// other receivers heard: MQTT receivers' copies arrive within milliseconds
// of each other, so a second costs little delay and catches them all.
// (A variable only so that tests can wait less.)
var dedupHold = time.Second

// dedupFor returns copy detection when the inputs can hear one telegram
// more than once: several inputs, or an MQTT input fed by receivers.
func dedupFor(inputs []string) *pipeline.Dedup {
	if len(inputs) > 1 || (len(inputs) == 1 && pipeline.IsRemote(inputs[0])) {
		return &pipeline.Dedup{Hold: dedupHold}
	}
	return nil
}
