package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Reporter logs the problems of a pipeline. Every problem is counted; the
// first of a kind for a meter is logged at once, and repeats of it (a
// neighbour's meter every 16 s, a wrong key on every telegram) are folded
// into one line per Every, with the count, instead of flooding the log.
type Reporter struct {
	Log *slog.Logger
	// Known tells whether a meter is in the meter list; unknown meters'
	// missing keys are expected (neighbours) and logged at debug level
	// after the first notice.
	Known func(wmbus.ID) bool
	Every time.Duration // default 10 minutes
	Now   func() time.Time

	mu   sync.Mutex
	seen map[problemKey]*problemCount
}

type problemKey struct {
	id   wmbus.ID
	kind string
}

type problemCount struct {
	last       time.Time
	suppressed int
}

// problemKinds classifies errors by their sentinel, in order; the level is
// what a user should see for a meter in the meter list.
var problemKinds = []struct {
	err   error
	kind  string
	level slog.Level
}{
	{wmbus.ErrWrongKey, "wrong key", slog.LevelWarn},
	{wmbus.ErrNoKey, "no key", slog.LevelWarn},
	{kamstrup.ErrAwaitingFullFrame, "waiting for full frame", slog.LevelInfo},
	{kamstrup.ErrDataCRC, "compact data CRC", slog.LevelWarn},
	{wmbus.ErrPayloadCRC, "corrupted", slog.LevelWarn},
	{wmbus.ErrBlockCRC, "corrupted", slog.LevelWarn},
	{wmbus.ErrHexLine, "bad input line", slog.LevelWarn},
	{ErrInternal, "internal", slog.LevelError},
}

// Report logs err according to the policy above.
func (r *Reporter) Report(err error) {
	if err == nil {
		return
	}
	kind, level := "other", slog.LevelWarn
	for _, k := range problemKinds {
		if errors.Is(err, k.err) {
			kind, level = k.kind, k.level
			break
		}
	}
	id, hasID := wmbus.ErrorMeter(err)
	if hasID && kind == "no key" && r.Known != nil && !r.Known(id) {
		level = slog.LevelInfo
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	every := r.Every
	if every <= 0 {
		every = 10 * time.Minute
	}
	key := problemKey{id, kind}
	if !hasID {
		key.kind += ": " + err.Error() // input problems without a meter: each text its own
	}
	r.mu.Lock()
	if r.seen == nil {
		r.seen = map[problemKey]*problemCount{}
	}
	c := r.seen[key]
	t := now()
	if c != nil && t.Sub(c.last) < every {
		c.suppressed++
		r.mu.Unlock()
		return
	}
	repeats := 0
	if c == nil {
		c = &problemCount{}
		r.seen[key] = c
	} else {
		repeats = c.suppressed
		if level == slog.LevelInfo && kind == "no key" {
			level = slog.LevelDebug // a neighbour's meter: said once at info
		}
	}
	c.last, c.suppressed = t, 0
	r.mu.Unlock()

	msg := err.Error()
	attrs := []any{}
	if repeats > 0 {
		attrs = append(attrs, "repeated", repeats)
	}
	if hint := hintFor(kind, hasID && r.Known != nil && r.Known(id)); hint != "" {
		attrs = append(attrs, "hint", hint)
	}
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	log.Log(context.Background(), level, msg, attrs...)
}

func hintFor(kind string, known bool) string {
	switch kind {
	case "wrong key":
		return "check this meter's key in the meter list (32 hex digits from the utility or the KEM file)"
	case "no key":
		if known {
			return "add the meter's key to the meter list"
		}
		return "not in the meter list; add it with its key to receive it"
	case "waiting for full frame":
		return "a full frame comes every 8th telegram (about 2 minutes); queued frames decode then"
	}
	return ""
}

// ProblemKind names the kind of a problem ("wrong key", "corrupted",
// "waiting for full frame", …), as the log and the status page group them.
func ProblemKind(err error) string {
	for _, k := range problemKinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return "other"
}
