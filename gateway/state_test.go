package gateway

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

func reading(id wmbus.ID, total float64) *kamstrup.Reading {
	r := &kamstrup.Reading{ID: id, Manufacturer: wmbus.KAM, Version: 0x1F, DeviceType: 0x16, Time: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	r.Set(kamstrup.Total, kamstrup.Value{V: total, Known: true})
	return r
}

// Only meters in the list reach the state file, whatever is heard; one
// that leaves the list leaves the file at the next save, and one found in
// an old file but no longer listed is not restored.
func TestStateHoldsOnlyListedMeters(t *testing.T) {
	dir := t.TempDir()
	listed := map[wmbus.ID]bool{0x74493770: true, 0x11112222: true}
	isListed := func(id wmbus.ID) bool { return listed[id] }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := newState(dir, kamstrup.NewDecoder(), isListed, log)
	for i := range 1000 {
		s.put(reading(wmbus.ID(0x20000000+i), 1))
	}
	s.put(reading(0x74493770, 8.915))
	s.put(reading(0x11112222, 1.5))
	s.save()
	b, err := os.ReadFile(filepath.Join(dir, "last-readings.json"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"id"`); n != 2 {
		t.Fatalf("%d meters in the state file, want the 2 listed:\n%s", n, b)
	}
	delete(listed, 0x11112222)
	s.put(reading(0x74493770, 8.916)) // something to save
	s.save()
	b, _ = os.ReadFile(filepath.Join(dir, "last-readings.json"))
	if strings.Contains(string(b), "11112222") {
		t.Errorf("a meter that left the list stayed in the state file")
	}
	listed[0x11112222] = true
	delete(listed, 0x74493770)
	again := newState(dir, kamstrup.NewDecoder(), isListed, log)
	if len(again.restored) != 0 {
		t.Errorf("restored %v, a meter no longer listed", again.restored[0].ID)
	}
}

// A save that fails leaves no temporary file behind and tries again next
// time: the readings stay to be saved.
func TestStateFailedSaveKeepsDirty(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := newState(dir, kamstrup.NewDecoder(), func(wmbus.ID) bool { return true }, log)
	// A directory where the file goes: the rename fails after the
	// temporary file was written.
	if err := os.MkdirAll(filepath.Join(dir, "last-readings.json", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	s.put(reading(0x74493770, 8.915))
	if err := s.saveReadings(); err == nil {
		t.Fatal("save over a directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	if err := os.RemoveAll(filepath.Join(dir, "last-readings.json")); err != nil {
		t.Fatal(err)
	}
	if err := s.saveReadings(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "last-readings.json")); err != nil || !strings.Contains(string(b), "8.915") {
		t.Errorf("the retry did not save the reading: %v %s", err, b)
	}
}
