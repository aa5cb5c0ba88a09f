package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// lastReadings keeps the newest reading of each meter, in its published
// JSON form, and saves them in the state directory so that a restart
// starts from what was known (see discovery.Publisher.Restore).
type lastReadings struct {
	path  string
	mu    sync.Mutex
	byID  map[wmbus.ID][]byte
	dirty bool
}

func newLastReadings(path string) *lastReadings {
	return &lastReadings{path: path, byID: map[wmbus.ID][]byte{}}
}

func (l *lastReadings) put(r *kamstrup.Reading) {
	b, err := r.MarshalJSON()
	if err != nil {
		return
	}
	l.mu.Lock()
	l.byID[r.ID], l.dirty = b, true
	l.mu.Unlock()
}

// load reads the saved readings; a missing file is a first start.
func (l *lastReadings) load() ([]kamstrup.Reading, error) {
	b, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", l.path, err)
	}
	out := make([]kamstrup.Reading, 0, len(raw))
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for i, m := range raw {
		r, err := kamstrup.ParseReading(m)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s entry %d: %w", l.path, i+1, err))
			continue
		}
		l.byID[r.ID] = bytes.Clone(m)
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// save writes the readings atomically when something changed.
func (l *lastReadings) save() error {
	l.mu.Lock()
	if !l.dirty {
		l.mu.Unlock()
		return nil
	}
	ids := make([]wmbus.ID, 0, len(l.byID))
	for id := range l.byID {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var buf bytes.Buffer
	buf.WriteString("[\n")
	for i, id := range ids {
		buf.Write(l.byID[id])
		if i < len(ids)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("]\n")
	l.dirty = false
	l.mu.Unlock()
	tmp, err := os.CreateTemp(filepath.Dir(l.path), ".last-readings-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), l.path)
}
