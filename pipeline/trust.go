package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Errors of the trust checks, for errors.Is.
var (
	// ErrUnencryptedKeyed: a telegram for a meter that has a key arrived
	// in plaintext. Anyone with a radio can send such a frame, so it is
	// never believed.
	ErrUnencryptedKeyed = errors.New("unencrypted telegram for a meter that has a key")
	// ErrReplayed: a key-verified telegram whose counters do not move
	// forward: a recording sent again, not news from the meter.
	ErrReplayed = errors.New("replayed telegram")
	// ErrDuplicate: the same telegram heard a second time (two receivers,
	// a repeater); its reading went out already.
	ErrDuplicate = errors.New("telegram heard twice")
)

// spoofError says what ErrUnencryptedKeyed means in the words a user needs,
// and still names the meter for errors.As(*wmbus.MeterError).
type spoofError struct{ me wmbus.MeterError }

func (e *spoofError) Error() string {
	return "unencrypted telegram for meter " + e.me.ID.String() + ", which has a key: ignored — possible spoofing"
}
func (e *spoofError) Unwrap() []error { return []error{&e.me} }

// Replay window. The 29-bit ELL session number (time and session fields)
// only grows, so where it is present a telegram must carry a larger one
// than the last accepted. The 8-bit access number wraps every 256
// telegrams (68 minutes at one per 16 s), so it is compared modulo 256:
// up to half the circle ahead is new, the other half is old; after a
// silence longer than accessWindow the access number alone proves
// nothing and the telegram is taken as new.
const (
	// MaxCounters bounds the per-meter counter records; past it the
	// record heard from longest ago is evicted (that meter's next telegram
	// is then taken as new).
	MaxCounters  = 1024
	accessWindow = 30 * time.Minute
	snMask       = 1<<29 - 1 // the SN without its encryption field
)

type counter struct {
	sn    uint32
	hasSN bool
	acc   uint8
	at    time.Time
}

// counters remembers, per key-verified meter, the newest counters seen.
type counters struct {
	m map[wmbus.ID]counter
}

// check accepts t as new or says why not; it records what it accepts.
func (c *counters) check(t *wmbus.Telegram, at time.Time) error {
	id := t.Meter()
	cur := counter{acc: t.AccessNumber(), at: at}
	if t.ELL.HasSN {
		cur.sn, cur.hasSN = t.ELL.SN&snMask, true
	}
	last, ok := c.m[id]
	if ok {
		switch {
		case cur.hasSN && last.hasSN:
			if cur.sn == last.sn {
				return &wmbus.MeterError{ID: id, Err: fmt.Errorf("%w (session number %07X, access number %d); not published again", ErrDuplicate, cur.sn, cur.acc)}
			}
			if cur.sn < last.sn {
				return &wmbus.MeterError{ID: id, Err: fmt.Errorf("%w: session number %07X is not after the last one heard, %07X; not published — an old telegram sent again", ErrReplayed, cur.sn, last.sn)}
			}
		case at.Sub(last.at) < accessWindow:
			d := cur.acc - last.acc
			if d == 0 {
				return &wmbus.MeterError{ID: id, Err: fmt.Errorf("%w (access number %d); not published again", ErrDuplicate, cur.acc)}
			}
			if d >= 128 {
				return &wmbus.MeterError{ID: id, Err: fmt.Errorf("%w: access number %d is behind the last one heard, %d; not published — an old telegram sent again", ErrReplayed, cur.acc, last.acc)}
			}
		}
	}
	if c.m == nil {
		c.m = make(map[wmbus.ID]counter)
	}
	if !ok && len(c.m) >= MaxCounters {
		c.evictOldest()
	}
	c.m[id] = cur
	return nil
}

func (c *counters) evictOldest() {
	var oldest wmbus.ID
	var at time.Time
	first := true
	for id, x := range c.m {
		if first || x.at.Before(at) {
			oldest, at, first = id, x.at, false
		}
	}
	delete(c.m, oldest)
}

// trusted applies the rule that a keyed meter is only heard through its
// key, then, for telegrams from the air that passed a key check, the
// replay check. Recordings and files are what the user chose to feed in
// (perhaps a second time, or out of order), so they are not held to it.
func (p *Pipeline) trusted(t *wmbus.Telegram, keys wmbus.KeyFunc, f Frame) error {
	if t.Security == wmbus.SecurityNone {
		if _, keyed := keys(t.Meter()); keyed {
			return &spoofError{wmbus.MeterError{ID: t.Meter(), Err: ErrUnencryptedKeyed}}
		}
		return nil
	}
	if !f.Live {
		return nil // a recording or file the user fed in, perhaps again
	}
	return p.counters.check(t, f.Time)
}
