package meters

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/flowiq-gateway/flowiq-gateway/internal/syncbuf"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// waitFor polls cond: fsnotify runs on real goroutines and syscalls, so the
// watcher is observed with real time and a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// saveByRename writes a new file and renames it over path, as editors do.
func saveByRename(t *testing.T, path, text string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".meters.toml.swp")
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func meterTOML(idText, key string, extra ...string) string {
	s := fmt.Sprintf("[[meter]]\nid = %q\n", idText)
	if key != "" {
		s += fmt.Sprintf("key = %q\n", key)
	}
	for _, e := range extra {
		s += e + "\n"
	}
	return s + "\n"
}

type watchFixture struct {
	path    string
	w       *Watcher
	log     *syncbuf.Buffer
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	updates []Update
}

func startWatcher(t *testing.T, initial string, opts ...func(*Watcher)) *watchFixture {
	t.Helper()
	dir := t.TempDir()
	f := &watchFixture{path: filepath.Join(dir, "meters.toml"), log: &syncbuf.Buffer{}, done: make(chan error, 1)}
	if initial != "" {
		if err := os.WriteFile(f.path, []byte(initial), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w, err := NewWatcher(f.path, slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	w.Debounce = 30 * time.Millisecond
	w.Confirm = 150 * time.Millisecond
	w.DirCheck = 50 * time.Millisecond
	for _, o := range opts {
		o(w)
	}
	w.OnChange(func(u Update) {
		f.mu.Lock()
		f.updates = append(f.updates, u)
		f.mu.Unlock()
	})
	f.w = w
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-f.done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run ended with %v, want context.Canceled", err)
		}
		assertNoKeys(t, f.log.String())
		if t.Failed() {
			t.Logf("log:\n%s", f.log.String())
		}
	})
	return f
}

func (f *watchFixture) running(t *testing.T) {
	t.Helper()
	select {
	case err := <-f.done:
		t.Fatalf("watcher stopped: %v", err)
	default:
	}
}

func hasKey(w *Watcher, idText, key string) bool {
	id, _ := wmbus.ParseID(idText)
	k, ok := w.Current().Key(id)
	if key == "" {
		return !ok
	}
	want, _, _ := parseKey(key)
	return ok && bytes.Equal(k, want[:])
}

func ids(s *Snapshot) string {
	var out []string
	for _, m := range s.Meters {
		out = append(out, m.ID.String())
	}
	return strings.Join(out, " ")
}

func TestWatcherFollowsEdits(t *testing.T) {
	f := startWatcher(t, meterTOML("74493770", key1, `name = "Kitchen"`))
	w := f.w
	if !hasKey(w, "74493770", key1) || w.LoadErr() != nil {
		t.Fatalf("initial load: %v", w.LoadErr())
	}
	// Edits must reach Run through the directory watch, not through its
	// first look at the file: wait until a content-only change (a comment)
	// is logged as a reload, which Run does only once it watches.
	saveByRename(t, f.path, meterTOML("74493770", key1, `name = "Kitchen"`)+"# watched\n")
	waitFor(t, "Run to watch the directory", func() bool {
		return strings.Contains(f.log.String(), "meter list reloaded")
	})

	steps := []struct {
		name  string
		save  func(text string)
		text  string
		ids   string // expected meters
		check func() bool
		log   string // expected in the log after the step
	}{
		{
			name: "add a meter (written in place)",
			save: func(s string) { os.WriteFile(f.path, []byte(s), 0o600) },
			text: meterTOML("74493770", key1, `name = "Kitchen"`) + meterTOML("12345678", key2),
			ids:  "74493770 12345678",
			log:  "change.added=12345678",
		},
		{
			name:  "change a key (saved by rename)",
			text:  meterTOML("74493770", key3, `name = "Kitchen"`) + meterTOML("12345678", key2),
			ids:   "74493770 12345678",
			check: func() bool { return hasKey(w, "74493770", key3) },
			log:   "change.key_changed=74493770",
		},
		{
			name: "remove a meter",
			text: meterTOML("74493770", key3, `name = "Kitchen"`),
			ids:  "74493770",
			log:  "change.removed=12345678",
		},
		{
			name:  "broken file keeps the last good list",
			text:  meterTOML("74493770", key1) + "[[meter]\n",
			ids:   "74493770",
			check: func() bool { return hasKey(w, "74493770", key3) },
			log:   "meters.toml line 5, column 8: expected end of table array name delimiter",
		},
		{
			name:  "fixed file applies",
			text:  meterTOML("74493770", key1) + meterTOML("22222222", key2),
			ids:   "74493770 22222222",
			check: func() bool { return hasKey(w, "74493770", key1) },
			log:   "change.added=22222222",
		},
		{
			name: "duplicate ID skips both entries",
			text: meterTOML("74493770", key1) + meterTOML("22222222", key2) + meterTOML("22222222", key3),
			ids:  "74493770",
			log:  "duplicate meter ID 22222222 in [[meter]] 3, first defined in [[meter]] 2 at line 6; both entries skipped",
		},
		{
			name: "bad key skips that meter",
			text: meterTOML("74493770", key1[:20]) + meterTOML("22222222", key2),
			ids:  "22222222",
			log:  "meters.toml line 3: key of [[meter]] 1 (74493770) must be 32 hex digits, found 16",
		},
		{
			name: "unknown field skips that meter",
			text: meterTOML("74493770", key1) + meterTOML("22222222", "", `kye = "`+key2+`"`),
			ids:  "74493770",
			log:  `unknown field \"kye\" in [[meter]] 2 (22222222) (did you mean \"key\"?)`,
		},
	}
	for _, st := range steps {
		save := st.save
		if save == nil {
			save = func(s string) { saveByRename(t, f.path, s) }
		}
		save(st.text)
		waitFor(t, st.name, func() bool {
			return strings.Contains(f.log.String(), st.log) && ids(w.Current()) == st.ids &&
				(st.check == nil || st.check())
		})
		f.running(t)
	}
	// A meter leaves only after a second read confirms it is gone.
	f.mu.Lock()
	n := len(f.updates)
	last2 := f.updates[n-2].Change.String() + " / " + f.updates[n-1].Change.String()
	f.mu.Unlock()
	if last2 != "added 74493770 / removed 22222222" {
		t.Errorf("last changes = %q", last2)
	}

	// Delete the file: the list stays; re-create it: it applies.
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deletion to be noticed", func() bool {
		return strings.Contains(f.log.String(), "meter list file not found")
	})
	if ids(w.Current()) != "74493770" {
		t.Fatalf("list after deletion = %q", ids(w.Current()))
	}
	os.WriteFile(f.path, []byte(meterTOML("33333333", key2)), 0o600)
	waitFor(t, "the re-created file", func() bool { return ids(w.Current()) == "33333333" })
	f.running(t)
}

func TestWatcherStartsWithBrokenFile(t *testing.T) {
	f := startWatcher(t, "[[meter]]\nid = \"74493770\"\nkey = \""+key1+"\n")
	var se *SyntaxError
	if err := f.w.LoadErr(); !errors.As(err, &se) || se.Line != 3 {
		t.Fatalf("LoadErr = %v", err)
	}
	if f.w.Current().Len() != 0 {
		t.Fatal("a broken first file must give an empty list")
	}
	if !strings.Contains(f.log.String(), "meters.toml line 3, column 47: strings cannot contain newlines") {
		t.Fatalf("log lacks the position:\n%s", f.log)
	}
	saveByRename(t, f.path, meterTOML("74493770", key1))
	waitFor(t, "the fixed file", func() bool { return hasKey(f.w, "74493770", key1) })
	if f.w.LoadErr() != nil {
		t.Fatalf("LoadErr after the fix = %v", f.w.LoadErr())
	}
}

func TestWatcherStartsWithoutFile(t *testing.T) {
	f := startWatcher(t, "")
	if !errors.Is(f.w.LoadErr(), os.ErrNotExist) || f.w.Current().Len() != 0 {
		t.Fatalf("LoadErr = %v", f.w.LoadErr())
	}
	saveByRename(t, f.path, meterTOML("74493770", key1))
	waitFor(t, "the new file", func() bool { return hasKey(f.w, "74493770", key1) })
}

func TestWatcherOverlayAndPermissions(t *testing.T) {
	f := startWatcher(t, meterTOML("74493770", key1)+meterTOML("11111111", key1))
	if err := os.Chmod(f.path, 0o644); err != nil {
		t.Fatal(err)
	}
	f.w.SetOverlay([]Meter{{ID: 0x11111111, Key: mustKey(t, key2), HasKey: true, Enabled: true, Source: "add-on options"}})
	if !hasKey(f.w, "11111111", key2) {
		t.Fatal("overlay not applied")
	}
	if !strings.Contains(f.log.String(), "meter 11111111 from add-on options overrides the entry at meters.toml:5") {
		t.Fatalf("no override warning:\n%s", f.log)
	}
	saveByRename(t, f.path, meterTOML("74493770", key3)+meterTOML("11111111", key1))
	os.Chmod(f.path, 0o644) // the rename brought a 0600 file; make it public again
	if err := f.w.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", func() bool { return hasKey(f.w, "74493770", key3) })
	if !hasKey(f.w, "11111111", key2) {
		t.Fatal("overlay lost on reload")
	}
	if !strings.Contains(f.log.String(), "readable by every user") {
		t.Fatalf("no permission warning:\n%s", f.log)
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meters.toml")
	os.WriteFile(path, []byte(meterTOML("74493770", key1)), 0o600)
	var log syncbuf.Buffer
	w, err := NewWatcher(path, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// Keep the default action (exit) away even before ReloadOnSIGHUP listens.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ReloadOnSIGHUP(ctx, w); close(done) }()
	defer func() { cancel(); <-done }()

	// No Run: only the signal can make the watcher see this.
	os.WriteFile(path, []byte(meterTOML("74493770", key2)), 0o600)
	// ReloadOnSIGHUP may not listen yet: signal until it says it got one.
	waitFor(t, "ReloadOnSIGHUP to receive SIGHUP", func() bool {
		if strings.Contains(log.String(), "SIGHUP: reloading meter list") {
			return true
		}
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		return false
	})
	waitFor(t, "a reload by SIGHUP", func() bool { return hasKey(w, "74493770", key2) })
}

func TestNewWatcherErrors(t *testing.T) {
	if _, err := NewWatcher("", nil); err == nil {
		t.Fatal("empty path accepted")
	}
	if _, err := NewWatcher(filepath.Join(t.TempDir(), "missing", "meters.toml"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing directory: %v", err)
	}
}
