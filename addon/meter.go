package addon

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// decodeMeters reads the meters option; every bad entry is reported and
// skipped, the others are kept in order.
func (o *Options) decodeMeters(raw json.RawMessage) []error {
	if string(raw) == "null" {
		return nil
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return []error{&OptionError{Option: "meters", Err: fmt.Errorf("%w: want a list of meters, got %s", ErrBadOption, jsonKind(raw))}}
	}
	var errs []error
	first := make(map[wmbus.ID]int, len(entries))
	for i, e := range entries {
		n := i + 1
		m, err := parseMeterEntry(n, e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := first[m.ID]; dup {
			errs = append(errs, &MeterError{Entry: n, ID: m.ID.String(), Field: "id",
				Err: fmt.Errorf("%w: entry %d has the same ID", ErrDuplicateID, prev)})
			continue
		}
		first[m.ID] = n
		o.meters = append(o.meters, m)
	}
	return errs
}

// parseMeterEntry validates one entry of the meters list. n is its 1-based
// position. Errors never contain the key, nor an invalid ID's text (a key
// pasted into the ID field must not end up in the log).
func parseMeterEntry(n int, raw json.RawMessage) (meters.Meter, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return meters.Meter{}, &MeterError{Entry: n, Err: fmt.Errorf("%w: want an entry with id and key, got %s", ErrBadOption, jsonKind(raw))}
	}
	str := func(name string) (string, error) {
		v, ok := fields[name]
		if !ok || string(v) == "null" {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("%w: want text, got %s", ErrBadOption, jsonKind(v))
		}
		return strings.TrimSpace(s), nil
	}

	m := meters.Meter{Enabled: true, Source: OptionsSource}
	idText, err := str("id")
	if err != nil {
		return m, &MeterError{Entry: n, Field: "id", Err: fmt.Errorf("%w: %w", ErrBadMeterID, err)}
	}
	if m.ID, err = parseMeterID(idText); err != nil {
		return m, &MeterError{Entry: n, Field: "id", Err: err}
	}
	id := m.ID.String()
	for _, f := range [...]struct {
		name string
		dst  *string
	}{{"name", &m.Name}, {"model", &m.Model}} {
		if *f.dst, err = str(f.name); err != nil {
			return m, &MeterError{Entry: n, ID: id, Field: f.name, Err: err}
		}
	}
	keyText, err := str("key")
	if err != nil {
		return m, &MeterError{Entry: n, ID: id, Field: "key", Err: fmt.Errorf("%w: %w", ErrBadKey, err)}
	}
	if keyText != "" {
		if m.Key, err = wmbus.ParseKey(keyText); err != nil {
			return m, &MeterError{Entry: n, ID: id, Field: "key", Err: fmt.Errorf("%w: %w", ErrBadKey, err)}
		}
		m.HasKey = true
	}
	return m, nil
}

// parseMeterID checks the 8 decimal digits printed on the meter. Its errors
// describe the text without quoting it.
func parseMeterID(s string) (wmbus.ID, error) {
	id, err := wmbus.ParseID(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBadMeterID, err)
	}
	return id, nil
}

// Merge combines two meter lists keyed by meter ID: primary (the add-on
// options) and secondary (the TOML meter list in the config folder, a KEM
// file). On an ID in both, the primary entry wins and a warning wrapping
// ErrMeterConflict says so, with one exception that is not a conflict: a
// primary entry without a key takes the secondary entry's key (and its name
// or model where the primary has none). That is how a meter listed in the
// options gets its key from a KEM file. Merge chains:
// Merge(Merge(options, toml), kem). The result lists primary's meters first,
// then the new ones of secondary, each in its order.
func Merge(primary, secondary []meters.Meter) ([]meters.Meter, []error) {
	out := make([]meters.Meter, 0, len(primary)+len(secondary))
	at := make(map[wmbus.ID]int, len(primary)+len(secondary))
	var warnings []error
	add := func(m meters.Meter) {
		i, dup := at[m.ID]
		if !dup {
			at[m.ID] = len(out)
			out = append(out, m)
			return
		}
		p := &out[i]
		if p.HasKey || !m.HasKey {
			warnings = append(warnings, fmt.Errorf("%w: meter %s is in %s and in %s; using the entry from %s",
				ErrMeterConflict, m.ID, p.Source, m.Source, p.Source))
			return
		}
		p.Key, p.HasKey = m.Key, true
		if p.Name == "" {
			p.Name = m.Name
		}
		if p.Model == "" {
			p.Model = m.Model
		}
		p.Source += " (key from " + m.Source + ")"
	}
	for _, m := range primary {
		add(m)
	}
	for _, m := range secondary {
		add(m)
	}
	return out, warnings
}

// MissingKeys returns one error (wrapping ErrNoKey) per enabled meter
// without a key, so the log says why its readings never appear.
func MissingKeys(list []meters.Meter) []error {
	var errs []error
	for _, m := range list {
		if m.Enabled && !m.HasKey {
			errs = append(errs, fmt.Errorf("meter %s (%s): %w: enter its key in the add-on options or add a KEM file that lists it", m.ID, m.Source, ErrNoKey))
		}
	}
	return errs
}
