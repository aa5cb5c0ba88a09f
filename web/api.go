package web

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeBody(w, code, b)
}

func writeBody(w http.ResponseWriter, code int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	b, err := s.cfg.Model.AppendStatus(nil)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
		return
	}
	writeBody(w, http.StatusOK, b)
}

func (s *Server) charts(w http.ResponseWriter, _ *http.Request) {
	b, err := s.cfg.Model.AppendCharts(nil)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
		return
	}
	writeBody(w, http.StatusOK, b)
}

// keepAlive: a comment line this often keeps proxies from closing an idle
// event stream.
const keepAlive = 15 * time.Second

// events streams the status as server-sent events: at once, then whenever
// it changed, at most once per EventEvery.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming not supported", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(s.cfg.EventEvery)
	defer tick.Stop()
	var buf []byte
	last, sent := ^uint64(0), time.Now()
	for {
		if n := s.cfg.Model.Changes(); n != last {
			var err error
			buf = append(buf[:0], "event: status\ndata: "...)
			if buf, err = s.cfg.Model.AppendStatus(buf); err != nil {
				s.cfg.Log.Error("status", "err", err)
				return
			}
			buf = append(buf, "\n\n"...)
			if _, err := w.Write(buf); err != nil {
				return
			}
			fl.Flush()
			last, sent = n, time.Now()
		} else if time.Since(sent) > keepAlive {
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
			sent = time.Now()
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// AddMeter is the body of POST api/meters. Key is 32 hex digits (spaces
// allowed), or empty for a meter that sends in plain text.
type AddMeter struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Key  string `json:"key"`
}

// maxName bounds a meter name (Home Assistant's device name).
const maxName = 100

// addMeter validates the meter, saves it to the meter list (keeping the
// file's comments) and applies the list at once. Each field's problem is
// reported under its name; the key itself is never echoed.
func (s *Server) addMeter(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]any{"error": "send the meter as application/json"})
		return
	}
	var in AddMeter
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "the body is not a meter: want {\"id\":\"8 digits\",\"name\":\"…\",\"key\":\"32 hex digits\"}"})
		return
	}
	m, errs := validate(in)
	if len(errs) > 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": errs})
		return
	}
	defer clear(m.Key[:])
	if s.cfg.MetersPath == "" {
		writeJSON(w, http.StatusConflict, map[string]any{"error": "no meter list file to save to: start the gateway with --meters FILE"})
		return
	}
	added, _, err := meters.Upsert(s.cfg.MetersPath, []meters.Meter{m})
	if err != nil {
		s.cfg.Log.Warn("adding a meter from the status page", "meter", m.ID.String(), "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "saving the meter list: " + err.Error()})
		return
	}
	if s.cfg.Reload != nil {
		if err := s.cfg.Reload(); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "the meter list was saved but does not load: " + err.Error()})
			return
		}
	}
	s.cfg.Log.Info("meter saved from the status page", "meter", m.ID.String(), "name", m.Name, "added", len(added) > 0)
	writeJSON(w, http.StatusOK, map[string]any{"id": m.ID.String(), "added": len(added) > 0})
}

// validate checks each field with the project's one ID and key parsers.
func validate(in AddMeter) (meters.Meter, map[string]string) {
	errs := map[string]string{}
	m := meters.Meter{Name: strings.TrimSpace(in.Name), Enabled: true, HasKey: true}
	var err error
	if m.ID, err = wmbus.ParseID(in.ID); err != nil {
		errs["id"] = "the meter ID " + err.Error()
	}
	// No key: a meter that sends in plain text (an encrypted one then
	// shows "no key" on the page).
	if strings.Trim(in.Key, " \t") == "" {
		m.HasKey = false
	} else if m.Key, err = wmbus.ParseKey(in.Key); err != nil {
		errs["key"] = "the key " + err.Error()
	}
	switch {
	case utf8.RuneCountInString(m.Name) > maxName:
		errs["name"] = "the name is longer than 100 characters"
	case !utf8.ValidString(m.Name) || strings.IndexFunc(m.Name, unicode.IsControl) >= 0:
		errs["name"] = "the name has a control character or is not valid UTF-8"
	}
	return m, errs
}
