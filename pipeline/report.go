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
// Problems without a meter (bad input lines) are grouped by kind alone.
// Whatever arrives, the Reporter stays bounded: it remembers at most
// MaxProblemKeys meter/kind pairs, and logs at most BurstPerKind new lines
// per kind a minute, the rest summed up in one line.
type Reporter struct {
	Log *slog.Logger
	// Known tells whether a meter is in the meter list; unknown meters'
	// missing keys are expected (neighbours) and logged at debug level
	// after the first notice.
	Known func(wmbus.ID) bool
	Every time.Duration // default 10 minutes
	Now   func() time.Time

	mu     sync.Mutex
	seen   map[problemKey]*problemCount
	budget map[string]*kindBudget
}

// Bounds of the Reporter.
const (
	// MaxProblemKeys bounds the remembered meter/kind pairs. When full,
	// pairs last logged more than Every ago go first (they would be logged
	// afresh anyway), then the one logged longest ago.
	MaxProblemKeys = 512
	// BurstPerKind is how many lines one kind may log per BurstWindow;
	// beyond it the problems are counted and summed up once the window
	// has passed. A flood of made-up meter IDs thus costs a few log lines.
	BurstPerKind = 20
	BurstWindow  = time.Minute
	maxKindText  = 60
)

type problemKey struct {
	id    wmbus.ID
	hasID bool
	kind  string
}

type problemCount struct {
	last       time.Time
	suppressed int
}

type kindBudget struct {
	start time.Time
	used  int
	over  int
}

// problemKinds classifies errors by their sentinel, in order; the level is
// what a user should see for a meter in the meter list.
var problemKinds = []struct {
	err   error
	kind  string
	level slog.Level
}{
	{ErrUnencryptedKeyed, "possible spoofing", slog.LevelWarn},
	{ErrReplayed, "replayed", slog.LevelWarn},
	{ErrDuplicate, "heard twice", slog.LevelInfo},
	{wmbus.ErrWrongKey, "wrong key", slog.LevelWarn},
	{wmbus.ErrNoKey, "no key", slog.LevelWarn},
	{kamstrup.ErrAwaitingFullFrame, "waiting for full frame", slog.LevelInfo},
	{kamstrup.ErrDataCRC, "compact data CRC", slog.LevelWarn},
	{wmbus.ErrPayloadCRC, "corrupted", slog.LevelWarn},
	{wmbus.ErrBlockCRC, "corrupted", slog.LevelWarn},
	{wmbus.ErrHexLine, "bad input line", slog.LevelWarn},
	{ErrLineTooLong, "line too long", slog.LevelWarn},
	{ErrInternal, "internal", slog.LevelError},
}

// classify returns err's kind and level; unclassified errors are grouped
// by their innermost cause, which carries no line number or bytes.
func classify(err error) (string, slog.Level) {
	for _, k := range problemKinds {
		if errors.Is(err, k.err) {
			return k.kind, k.level
		}
	}
	inner := err
	for {
		u := errors.Unwrap(inner)
		if u == nil {
			break
		}
		inner = u
	}
	text := inner.Error()
	if len(text) > maxKindText {
		text = text[:maxKindText]
	}
	return "other: " + text, slog.LevelWarn
}

// Report logs err according to the policy above.
func (r *Reporter) Report(err error) {
	if err == nil {
		return
	}
	kind, level := classify(err)
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
	key := problemKey{id: id, hasID: hasID, kind: kind}
	t := now()
	r.mu.Lock()
	if r.seen == nil {
		r.seen = map[problemKey]*problemCount{}
		r.budget = map[string]*kindBudget{}
	}
	c := r.seen[key]
	if c != nil && t.Sub(c.last) < every {
		c.suppressed++
		r.mu.Unlock()
		return
	}
	b := r.budget[kind]
	if b == nil {
		if len(r.budget) >= MaxProblemKeys {
			clear(r.budget) // only with absurdly many kinds: start over
		}
		b = &kindBudget{start: t}
		r.budget[kind] = b
	}
	overflow := 0
	if t.Sub(b.start) >= BurstWindow {
		overflow, b.start, b.used, b.over = b.over, t, 0, 0
	}
	if b.used >= BurstPerKind {
		b.over++
		r.mu.Unlock()
		return
	}
	b.used++
	repeats := 0
	if c == nil {
		if len(r.seen) >= MaxProblemKeys {
			r.evict(t, every)
		}
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

	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	if overflow > 0 {
		log.Warn("more problems of this kind were not logged (log rate limit)", "kind", kind, "not_logged", overflow, "per", BurstWindow)
	}
	attrs := []any{}
	if repeats > 0 {
		attrs = append(attrs, "repeated", repeats)
	}
	if hint := hintFor(kind, hasID && r.Known != nil && r.Known(id)); hint != "" {
		attrs = append(attrs, "hint", hint)
	}
	log.Log(context.Background(), level, err.Error(), attrs...)
}

// evict makes room in seen: first every pair not logged for a while, and
// if none is, the one logged longest ago.
func (r *Reporter) evict(t time.Time, every time.Duration) {
	var oldest problemKey
	var oldestAt time.Time
	first := true
	for k, c := range r.seen {
		if t.Sub(c.last) >= every {
			delete(r.seen, k)
			continue
		}
		if first || c.last.Before(oldestAt) {
			oldest, oldestAt, first = k, c.last, false
		}
	}
	if len(r.seen) >= MaxProblemKeys {
		delete(r.seen, oldest)
	}
}

// Flush logs what was held back: the repeats of each problem since it was
// last logged, and the problems the rate limit left out. Call it when the
// input ends, so that nothing goes uncounted.
func (r *Reporter) Flush() {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	r.mu.Lock()
	type held struct {
		key problemKey
		n   int
	}
	var repeats []held
	for k, c := range r.seen {
		if c.suppressed > 0 {
			repeats = append(repeats, held{k, c.suppressed})
			c.suppressed = 0
		}
	}
	over := map[string]int{}
	for kind, b := range r.budget {
		if b.over > 0 {
			over[kind] = b.over
			b.over = 0
		}
	}
	r.mu.Unlock()
	for _, h := range repeats {
		attrs := []any{"kind", h.key.kind, "repeated", h.n}
		if h.key.hasID {
			attrs = append(attrs, "meter", h.key.id.String())
		}
		log.Warn("problem repeated since it was last logged", attrs...)
	}
	for kind, n := range over {
		log.Warn("more problems of this kind were not logged (log rate limit)", "kind", kind, "not_logged", n)
	}
}

// Problems returns how many meter/kind pairs the Reporter remembers.
func (r *Reporter) Problems() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
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
	case "possible spoofing":
		return "someone may be sending telegrams in this meter's name; only telegrams that verify with its key are used"
	case "replayed":
		return "an old telegram of this meter was sent again; only newer ones are used"
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
