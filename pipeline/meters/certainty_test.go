package meters

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

func (f *watchFixture) removals() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, u := range f.updates {
		for _, id := range u.Change.Removed {
			out = append(out, id.String())
		}
	}
	return out
}

// An editor that truncates the file and writes it a moment later: for that
// moment the file is empty, which is a fault, not "remove every meter".
func TestTruncateThenWriteRemovesNothing(t *testing.T) {
	both := meterTOML("74493770", key1) + meterTOML("22222222", key2)
	f := startWatcher(t, both)
	w := f.w
	for range 3 {
		if err := os.WriteFile(f.path, nil, 0o600); err != nil { // truncate
			t.Fatal(err)
		}
		waitFor(t, "the empty file to be noticed", func() bool {
			return strings.Contains(f.log.String(), "meter list now holds no meters; taken for a fault")
		})
		if ids(w.Current()) != "74493770 22222222" {
			t.Fatalf("the empty file changed the list to %q", ids(w.Current()))
		}
		// Comments only: no meters either.
		if err := os.WriteFile(f.path, []byte("# meters\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * w.Debounce)
		if err := os.WriteFile(f.path, []byte(both), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * w.Confirm)
	if r := f.removals(); len(r) != 0 {
		t.Errorf("removed %v", r)
	}
	if ids(w.Current()) != "74493770 22222222" {
		t.Errorf("list %q", ids(w.Current()))
	}
}

// A meter missing from one read stays until a second read, Confirm later,
// still lacks it; one that comes back in between was never removed.
func TestRemovalNeedsSecondRead(t *testing.T) {
	both := meterTOML("74493770", key1) + meterTOML("22222222", key2)
	f := startWatcher(t, both, func(w *Watcher) { w.Confirm = time.Second })
	w := f.w
	saveByRename(t, f.path, meterTOML("74493770", key1))
	waitFor(t, "the missing meter to be noticed", func() bool {
		return strings.Contains(f.log.String(), "meter missing from the meter list; kept until a second read confirms it")
	})
	if ids(w.Current()) != "74493770 22222222" || !hasKey(w, "22222222", key2) {
		t.Fatalf("removed at once: %q", ids(w.Current()))
	}
	saveByRename(t, f.path, both) // back before the second read
	time.Sleep(2 * w.Confirm)
	if r := f.removals(); len(r) != 0 {
		t.Fatalf("removed %v although it came back", r)
	}
	saveByRename(t, f.path, meterTOML("74493770", key1))
	start := time.Now()
	waitFor(t, "the removal", func() bool { return ids(w.Current()) == "74493770" })
	if d := time.Since(start); d < w.Confirm {
		t.Errorf("removed after %v, before the second read", d)
	}
	if r := f.removals(); len(r) != 1 || r[0] != "22222222" {
		t.Errorf("removals %v", r)
	}
}

// The directory of the meter list is moved away and created again with a
// corrected key: the watcher says so, follows the new directory, and the
// next telegram decodes with the new key.
func TestWatcherFollowsReplacedDirectory(t *testing.T) {
	f := startWatcher(t, meterTOML("74493770", key2)) // the wrong key
	w := f.w
	frame, err := hex.DecodeString(testvectors.Frames(t, testvectors.Seed74493770, 35)[0])
	if err != nil {
		t.Fatal(err)
	}
	var p wmbus.Parser
	var tg wmbus.Telegram
	keys := func(id wmbus.ID) ([]byte, bool) { return w.Current().Key(id) }
	if err := p.Parse(frame, keys, &tg); err == nil {
		t.Fatal("the telegram decodes with the wrong key")
	}
	dir := filepath.Dir(f.path)
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir + ".old") })
	waitFor(t, "the move to be noticed", func() bool {
		return strings.Contains(f.log.String(), "meter list directory disappeared or was replaced")
	})
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.path, []byte(meterTOML("74493770", key1)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the corrected key", func() bool { return hasKey(w, "74493770", key1) })
	if !strings.Contains(f.log.String(), "meter list directory is back; watching it again") {
		t.Error("the log does not say the directory is watched again")
	}
	if err := p.Parse(frame, keys, &tg); err != nil {
		t.Fatalf("the next telegram: %v", err)
	}
	// And edits in the new directory are followed.
	saveByRename(t, f.path, meterTOML("74493770", key1)+meterTOML("33333333", key3))
	waitFor(t, "an edit in the new directory", func() bool { return hasKey(w, "33333333", key3) })
	f.running(t)
}
