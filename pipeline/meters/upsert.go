package meters

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/flowiq-gateway/flowiq-gateway/internal/atomicfile"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Upsert adds meters to the list at path or updates the key, name and model
// of meters already there (the KEM importer). It edits the text: comments,
// other entries and the order stay as they are; a changed value replaces the
// old value on its line, a new meter is appended as a [[meter]] table. Empty
// Name/Model and HasKey == false leave those fields alone; Enabled is never
// touched. The result is parsed before it is written, atomically (temporary
// file and rename in the same directory) and with the file's mode (0600 for
// a new file). A file that does not parse is not touched.
func Upsert(path string, entries []Meter) (added, updated []wmbus.ID, err error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real // replace the file, not the link
	}
	name := filepath.Base(path)
	mode := fs.FileMode(0o600)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if fi, err := os.Stat(path); err == nil {
			mode = fi.Mode().Perm()
		}
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	default:
		return nil, nil, fmt.Errorf("meter list: %w", err)
	}
	defer clear(data)

	out, added, updated, err := upsertText(data, name, entries)
	if err != nil {
		return nil, nil, err
	}
	defer clear(out)
	if len(added)+len(updated) == 0 {
		return nil, nil, nil
	}
	if err := atomicfile.Write(path, out, mode); err != nil {
		return nil, nil, fmt.Errorf("meter list %s: %w", name, err)
	}
	return added, updated, nil
}

// upsertText is Upsert without the file system.
func upsertText(data []byte, name string, entries []Meter) (out []byte, added, updated []wmbus.ID, err error) {
	list, err := meterTables(data, name)
	if err != nil {
		return nil, nil, nil, err
	}
	lay := scanLayout(data)
	at := map[wmbus.ID][]int{} // ID → ordinals of the tables with it
	for i, t := range list {
		if id, ok := anyID(t["id"]); ok {
			at[id] = append(at[id], i)
		}
	}
	var edits []textEdit
	var tail strings.Builder
	seen := map[wmbus.ID]bool{}
	entries = slices.Clone(entries)
	for k := range entries {
		entries[k].Name = strings.TrimSpace(entries[k].Name)
		entries[k].Model = strings.TrimSpace(entries[k].Model)
	}
	for _, e := range entries {
		if seen[e.ID] {
			return nil, nil, nil, fmt.Errorf("meter list not updated: meter %s given twice", e.ID)
		}
		seen[e.ID] = true
		switch idx := at[e.ID]; len(idx) {
		case 0:
			appendMeter(&tail, e)
			added = append(added, e.ID)
		case 1:
			ed, err := editMeter(data, name, lay, idx[0], list[idx[0]], e)
			if err != nil {
				return nil, nil, nil, err
			}
			if len(ed) > 0 {
				edits = append(edits, ed...)
				updated = append(updated, e.ID)
			}
		default:
			return nil, nil, nil, fmt.Errorf("meter list %s not updated: meter %s is listed %d times; remove the duplicates first", name, e.ID, len(idx))
		}
	}
	out = applyEdits(data, edits, tail.String())
	if err := readsBack(out, name, entries); err != nil {
		return nil, nil, nil, err
	}
	return out, added, updated, nil
}

// meterTables decodes the list's [[meter]] tables.
func meterTables(data []byte, name string) ([]map[string]any, error) {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, fmt.Errorf("meter list not updated: %w", syntaxError(data, name, err))
	}
	switch v := doc["meter"].(type) {
	case nil:
		return nil, nil
	case []map[string]any:
		return v, nil
	}
	return nil, fmt.Errorf("meter list %s not updated: meters must be [[meter]] tables to be edited", name)
}

// textEdit replaces data[start:end] with text.
type textEdit struct {
	start, end int
	text       string
}

// appendMeter writes a new [[meter]] table.
func appendMeter(tail *strings.Builder, e Meter) {
	tail.WriteString("\n[[meter]]\n")
	fmt.Fprintf(tail, "id = %q\n", e.ID.String())
	name := e.Name
	if name == "" {
		name = e.ID.String()
	}
	fmt.Fprintf(tail, "name = %s\n", tomlQuote(name))
	if e.HasKey {
		fmt.Fprintf(tail, "key = %q\n", formatKey(e.Key))
	}
	if e.Model != "" {
		fmt.Fprintf(tail, "model = %s\n", tomlQuote(e.Model))
	}
}

// editMeter returns the edits that give table i (t, as decoded) e's key,
// name and model, leaving every other byte of the file as it is.
func editMeter(data []byte, name string, lay *layout, i int, t map[string]any, e Meter) ([]textEdit, error) {
	hdr, ok := lay.meterHeader(i)
	if !ok {
		return nil, fmt.Errorf("meter list %s not updated: cannot find the [[meter]] table of meter %s", name, e.ID)
	}
	// Where a missing field goes: after the table's last line.
	insertAt := hdr.end
	for _, it := range lay.items {
		if !it.header && it.index == i && equalPath(it.table, []string{"meter"}) {
			insertAt = it.end
		}
	}
	var edits []textEdit
	set := func(field, value string) {
		if it, ok := lay.meterField(i, field); ok && len(it.path) == 1 {
			edits = append(edits, textEdit{it.vstart, it.vend, value})
			return
		}
		line := field + " = " + value + "\n"
		if insertAt > 0 && data[insertAt-1] != '\n' {
			line = "\n" + line
		}
		edits = append(edits, textEdit{insertAt, insertAt, line})
	}
	if e.HasKey {
		if cur, has := currentKey(t["key"]); !has || cur != e.Key {
			set("key", fmt.Sprintf("%q", formatKey(e.Key)))
		}
	}
	if s, _ := t["name"].(string); e.Name != "" && strings.TrimSpace(s) != e.Name {
		set("name", tomlQuote(e.Name))
	}
	if s, _ := t["model"].(string); e.Model != "" && strings.TrimSpace(s) != e.Model {
		set("model", tomlQuote(e.Model))
	}
	return edits, nil
}

// applyEdits applies the edits in file order and appends tail.
func applyEdits(data []byte, edits []textEdit, tail string) []byte {
	slices.SortStableFunc(edits, func(a, b textEdit) int { return cmp.Compare(a.start, b.start) })
	var b strings.Builder
	prev := 0
	for _, ed := range edits {
		b.Write(data[prev:ed.start])
		b.WriteString(ed.text)
		prev = ed.end
	}
	b.Write(data[prev:])
	if tail != "" {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
			b.WriteByte('\n')
		}
		b.WriteString(tail)
	}
	return []byte(b.String())
}

// readsBack checks the edit before anything is written.
func readsBack(out []byte, name string, entries []Meter) error {
	s, err := Parse(out, name)
	if err != nil {
		return fmt.Errorf("meter list %s not updated: the edited list would not parse: %w", name, err)
	}
	for _, e := range entries {
		m, ok := s.Meter(e.ID)
		if !ok {
			continue // an entry with its own problem (reported when the list loads)
		}
		if e.HasKey && (!m.HasKey || m.Key != e.Key) || e.Name != "" && m.Name != e.Name || e.Model != "" && m.Model != e.Model {
			return fmt.Errorf("meter list %s not updated: meter %s did not read back as written", name, e.ID)
		}
	}
	return nil
}

func anyID(v any) (wmbus.ID, bool) {
	switch x := v.(type) {
	case string:
		id, msg := parseID(x)
		return id, msg == ""
	case int64:
		if x >= 0 && x <= 99999999 {
			id, msg := parseID(fmt.Sprintf("%08d", x))
			return id, msg == ""
		}
	}
	return 0, false
}

func currentKey(v any) ([16]byte, bool) {
	s, ok := v.(string)
	if !ok {
		return [16]byte{}, false
	}
	k, has, msg := parseKey(s)
	return k, has && msg == ""
}

// formatKey writes a key the way the example does: "44E9 112D 06BD …".
func formatKey(k [16]byte) string {
	const digits = "0123456789ABCDEF"
	b := make([]byte, 0, 39)
	for i, c := range k {
		if i > 0 && i%2 == 0 {
			b = append(b, ' ')
		}
		b = append(b, digits[c>>4], digits[c&15])
	}
	return string(b)
}

// tomlQuote writes a TOML basic string (Go's %q escapes differ: \x00 is not TOML).
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
