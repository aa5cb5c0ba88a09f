package meters

import (
	"fmt"
	"slices"
)

// Overlay returns base with extra meters (from the add-on's options) added.
// On a conflicting ID the extra entry wins and a warning says so — except
// that an extra entry without a key keeps the key the base entry has, so a
// meter named in the options may take its key from the file. base is not
// modified; a nil base is an empty list.
func Overlay(base *Snapshot, extra []Meter) (*Snapshot, []string) {
	if base == nil {
		base = newSnapshot("", nil)
	}
	if len(extra) == 0 {
		return base, nil
	}
	meters := slices.Clone(base.Meters)
	var warnings []string
	seen := make(map[int]bool, len(extra)) // indexes in meters already taken by an extra entry
	for _, e := range extra {
		if e.Name == "" {
			e.Name = e.ID.String()
		}
		i := slices.IndexFunc(meters, func(m Meter) bool { return m.ID == e.ID })
		if i < 0 {
			seen[len(meters)] = true
			meters = append(meters, e)
			continue
		}
		if _, dup := seen[i]; dup {
			warnings = append(warnings, fmt.Sprintf("meter %s is listed twice in %s; the later entry is used", e.ID, src(e)))
		} else {
			warnings = append(warnings, fmt.Sprintf("meter %s from %s overrides the entry at %s", e.ID, src(e), src(meters[i])))
		}
		seen[i] = true
		if !e.HasKey && meters[i].HasKey {
			e.Key, e.HasKey = meters[i].Key, true
		}
		meters[i] = e
	}
	s := newSnapshot(base.Path, meters)
	s.Radio, s.MQTT, s.Problems = base.Radio, base.MQTT, base.Problems
	return s, warnings
}

func src(m Meter) string {
	if m.Source == "" {
		return "the add-on options"
	}
	return m.Source
}
