package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/flowiq-gateway/flowiq-gateway/internal/atomicfile"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// state is what the gateway keeps across restarts in its state directory:
// the learned compact-frame formats (formats.txt) and the newest reading of
// each meter in its one JSON encoding (last-readings.json). It is the only
// place last readings are kept. It keeps only meters in the meter list, so
// that made-up meter IDs from the air cannot fill the disk.
type state struct {
	log         *slog.Logger
	dec         *kamstrup.Decoder
	listed      func(wmbus.ID) bool
	formatsPath string
	path        string
	restored    []kamstrup.Reading // what load found, for the outputs

	mu    sync.Mutex
	byID  map[wmbus.ID][]byte
	dirty bool
}

func newState(dir string, dec *kamstrup.Decoder, listed func(wmbus.ID) bool, log *slog.Logger) *state {
	s := &state{log: log, dec: dec, listed: listed, formatsPath: filepath.Join(dir, "formats.txt"),
		path: filepath.Join(dir, "last-readings.json"), byID: map[wmbus.ID][]byte{}}
	if err := dec.Load(s.formatsPath); err != nil {
		log.Warn("learned formats not (all) loaded; what is missing is learned again from full frames", "err", err, "loaded", dec.Learned())
	} else if n := dec.Learned(); n > 0 {
		log.Info("learned formats loaded", "file", s.formatsPath, "formats", n)
	}
	var err error
	if s.restored, err = s.load(); err != nil {
		log.Warn("last readings not (all) restored", "err", err)
	}
	return s
}

func (s *state) put(r *kamstrup.Reading) {
	if !s.listed(r.ID) {
		return
	}
	s.mu.Lock()
	s.byID[r.ID], s.dirty = r.AppendJSON(s.byID[r.ID][:0]), true
	s.mu.Unlock()
}

// load reads the saved readings; a missing file is a first start.
func (s *state) load() ([]kamstrup.Reading, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	out := make([]kamstrup.Reading, 0, len(raw))
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for i, m := range raw {
		r, err := kamstrup.ParseReading(m)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s entry %d: %w", s.path, i+1, err))
			continue
		}
		if !s.listed(r.ID) {
			s.dirty = true // written back without it
			continue
		}
		s.byID[r.ID] = r.AppendJSON(nil)
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// save writes what changed: learned formats, and the readings atomically.
func (s *state) save() {
	if s.dec.Dirty() {
		if err := s.dec.Save(s.formatsPath); err != nil {
			s.log.Warn("saving learned formats", "err", err)
		}
	}
	if err := s.saveReadings(); err != nil {
		s.log.Warn("saving last readings", "err", err)
	}
}

func (s *state) saveReadings() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	ids := make([]wmbus.ID, 0, len(s.byID))
	for id := range s.byID {
		if !s.listed(id) { // left the meter list
			delete(s.byID, id)
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var buf bytes.Buffer
	buf.WriteString("[\n")
	for i, id := range ids {
		buf.Write(s.byID[id])
		if i < len(ids)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("]\n")
	s.dirty = false
	s.mu.Unlock()
	if err := atomicfile.Write(s.path, buf.Bytes(), 0o600); err != nil {
		s.mu.Lock()
		s.dirty = true // the next save tries again
		s.mu.Unlock()
		return err
	}
	return nil
}
