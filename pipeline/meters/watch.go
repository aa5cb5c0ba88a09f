package meters

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long the watcher waits after the last file event
// before reloading: editors write, rename and chmod in quick bursts.
const DefaultDebounce = 250 * time.Millisecond

// Update is delivered to OnChange callbacks after the current list changed.
type Update struct {
	Old, New *Snapshot
	Change   Change
}

// Watcher keeps the current meter list and reloads it when the file changes.
//
// A bad edit never breaks it: a file that does not parse keeps the last good
// list; a deleted file keeps the last list until the file is back; entries
// that fail validation are skipped and logged. If the very first load fails
// (missing or unparsable file), the watcher starts with an empty list, logs
// why, and picks the file up as soon as it is fixed — so the gateway starts
// anyway. LoadErr reports that error to a caller that wants to show it.
type Watcher struct {
	// Debounce overrides DefaultDebounce; set it before Run.
	Debounce time.Duration

	path string
	file string // base name, for filtering events
	log  *slog.Logger

	cur atomic.Pointer[Snapshot] // base with overlay applied: the hot path reads this

	mu        sync.Mutex // serialises reloads and guards the fields below
	base      *Snapshot  // last good snapshot of the file alone
	overlay   []Meter
	sum       [32]byte // of the last file content applied, to skip no-op events
	loaded    bool     // sum is valid
	loadErr   error
	warnedPub bool // the world-readable warning was given for the current mode
	subs      []func(Update)
}

// NewWatcher loads path and returns a watcher for it; call Run to follow
// changes. It fails only when path can never be watched (empty, or its
// directory does not exist); a missing or broken file is logged and retried.
func NewWatcher(path string, log *slog.Logger) (*Watcher, error) {
	if path == "" {
		return nil, errors.New("meter list: no file given")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("meter list %s: %w", path, err)
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil {
		return nil, fmt.Errorf("meter list %s: %w", path, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("meter list %s: %s is not a directory", path, filepath.Dir(abs))
	}
	w := &Watcher{path: abs, file: filepath.Base(abs), log: log.With("file", abs)}
	w.base = newSnapshot(abs, nil)
	w.cur.Store(w.base)
	w.loadErr = w.reload("initial load")
	return w, nil
}

// Current is the list in force. Lock-free; never nil.
func (w *Watcher) Current() *Snapshot { return w.cur.Load() }

// LoadErr is the error of the most recent load attempt, nil if it succeeded.
func (w *Watcher) LoadErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.loadErr
}

// OnChange registers fn to be called after every change of the current list,
// in the goroutine that reloaded: keep it short, and do not call Reload or
// SetOverlay from it. Register before Run.
func (w *Watcher) OnChange(fn func(Update)) {
	w.mu.Lock()
	w.subs = append(w.subs, fn)
	w.mu.Unlock()
}

// SetOverlay replaces the meters laid over the file (the add-on's options).
// They stay applied across reloads.
func (w *Watcher) SetOverlay(extra []Meter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.overlay = append([]Meter(nil), extra...)
	w.apply(w.base, "overlay")
}

// Reload reads the file now (SIGHUP). It returns the load error, if any; the
// list in force is unchanged then.
func (w *Watcher) Reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.loaded = false // an explicit reload re-reads even identical content
	err := w.reloadLocked("reload")
	w.loadErr = err
	return err
}

func (w *Watcher) reload(why string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.reloadLocked(why)
	w.loadErr = err
	return err
}

func (w *Watcher) reloadLocked(why string) error {
	data, err := os.ReadFile(w.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			w.log.Warn("meter list file not found; keeping the current list until it appears",
				"meters", w.Current().Len())
		} else {
			w.log.Error("meter list unreadable; keeping the current list", "err", err, "meters", w.Current().Len())
		}
		w.loaded = false
		return fmt.Errorf("meter list: %w", err)
	}
	w.checkMode()
	sum := sha256.Sum256(data)
	if w.loaded && sum == w.sum {
		return nil // an event without a content change (chmod, touch)
	}
	s, err := Parse(data, w.file)
	clear(data) // the file holds keys; do not leave copies around longer than needed
	if err != nil {
		w.log.Error("meter list not loaded; keeping the last good list",
			"err", err, "meters", w.Current().Len())
		return err
	}
	s.Path = w.path
	w.sum, w.loaded = sum, true
	for _, p := range s.Problems {
		w.log.Warn("meter list entry skipped", "err", p)
	}
	w.base = s
	w.apply(s, why)
	return nil
}

// apply installs base+overlay, logs what changed and tells subscribers.
func (w *Watcher) apply(base *Snapshot, why string) {
	next, warnings := Overlay(base, w.overlay)
	for _, msg := range warnings {
		w.log.Warn(msg)
	}
	old := w.cur.Swap(next)
	c := Diff(old, next)
	w.log.Info("meter list "+why, "meters", next.Len(), "problems", len(next.Problems), "change", c)
	if c.Empty() {
		return
	}
	u := Update{Old: old, New: next, Change: c}
	for _, fn := range w.subs {
		fn(u)
	}
}

// checkMode warns once per state when the file is readable by everyone.
func (w *Watcher) checkMode() {
	fi, err := os.Stat(w.path)
	if err != nil {
		return
	}
	public := fi.Mode().Perm()&0o004 != 0
	if public && !w.warnedPub {
		w.log.Warn("meter list is readable by every user but holds AES keys; run chmod 600 on it",
			"mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	w.warnedPub = public
}

// Run follows the file until ctx ends. It watches the directory, not the
// file, because editors save by writing a new file and renaming it over the
// old one. Errors of single events are logged; Run returns only when ctx ends
// or the directory cannot be watched.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("meter list: watch: %w", err)
	}
	defer fw.Close()
	dir := filepath.Dir(w.path)
	if err := fw.Add(dir); err != nil {
		return fmt.Errorf("meter list: watch %s: %w", dir, err)
	}
	// Anything that happened between NewWatcher and now.
	_ = w.reload("reloaded")

	debounce := w.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("meter list: watcher closed")
			}
			if filepath.Base(ev.Name) != w.file {
				continue
			}
			timer.Reset(debounce)
		case err, ok := <-fw.Errors:
			if !ok {
				return errors.New("meter list: watcher closed")
			}
			// An overflow means events were lost: reload to be sure.
			w.log.Warn("meter list watch error; reloading", "err", err)
			timer.Reset(debounce)
		case <-timer.C:
			_ = w.reload("reloaded")
		}
	}
}

// ReloadOnSIGHUP reloads w on every SIGHUP until ctx ends.
func ReloadOnSIGHUP(ctx context.Context, w *Watcher) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			w.log.Info("SIGHUP: reloading meter list")
			_ = w.Reload()
		}
	}
}
