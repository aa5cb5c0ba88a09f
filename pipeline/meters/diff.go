package meters

import (
	"log/slog"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Change is what differs between two snapshots, as lists of meter IDs. It
// says that a key changed, never what it was or became.
type Change struct {
	Added        []wmbus.ID
	Removed      []wmbus.ID
	KeyChanged   []wmbus.ID // key replaced, added or removed
	Renamed      []wmbus.ID
	ModelChanged []wmbus.ID
	Enabled      []wmbus.ID
	Disabled     []wmbus.ID
}

// Diff compares two snapshots; nil means an empty list.
func Diff(old, new *Snapshot) Change {
	var c Change
	if new != nil {
		for i := range new.Meters {
			n := &new.Meters[i]
			o, ok := old.Meter(n.ID)
			if !ok {
				c.Added = append(c.Added, n.ID)
				continue
			}
			if o.HasKey != n.HasKey || o.Key != n.Key {
				c.KeyChanged = append(c.KeyChanged, n.ID)
			}
			if o.Name != n.Name {
				c.Renamed = append(c.Renamed, n.ID)
			}
			if o.Model != n.Model {
				c.ModelChanged = append(c.ModelChanged, n.ID)
			}
			if o.Enabled != n.Enabled {
				if n.Enabled {
					c.Enabled = append(c.Enabled, n.ID)
				} else {
					c.Disabled = append(c.Disabled, n.ID)
				}
			}
		}
	}
	if old != nil {
		for _, o := range old.Meters {
			if _, ok := new.Meter(o.ID); !ok {
				c.Removed = append(c.Removed, o.ID)
			}
		}
	}
	return c
}

// Empty reports whether nothing changed.
func (c Change) Empty() bool {
	return len(c.Added)+len(c.Removed)+len(c.KeyChanged)+len(c.Renamed)+
		len(c.ModelChanged)+len(c.Enabled)+len(c.Disabled) == 0
}

func (c Change) parts() []struct {
	name string
	ids  []wmbus.ID
} {
	return []struct {
		name string
		ids  []wmbus.ID
	}{
		{"added", c.Added}, {"removed", c.Removed}, {"key_changed", c.KeyChanged},
		{"renamed", c.Renamed}, {"model_changed", c.ModelChanged},
		{"enabled", c.Enabled}, {"disabled", c.Disabled},
	}
}

// String is e.g. "added 74493770; key changed 12345678", or "no change".
func (c Change) String() string {
	var b strings.Builder
	for _, p := range c.parts() {
		if len(p.ids) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(strings.ReplaceAll(p.name, "_", " "))
		b.WriteByte(' ')
		b.WriteString(idList(p.ids))
	}
	if b.Len() == 0 {
		return "no change"
	}
	return b.String()
}

// LogValue gives one attribute per non-empty list, e.g. added="74493770 12345678".
func (c Change) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, p := range c.parts() {
		if len(p.ids) > 0 {
			attrs = append(attrs, slog.String(p.name, idList(p.ids)))
		}
	}
	return slog.GroupValue(attrs...)
}

func idList(ids []wmbus.ID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return strings.Join(s, " ")
}
