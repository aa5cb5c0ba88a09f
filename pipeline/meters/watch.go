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
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// DefaultDebounce is how long the watcher waits after the last file event
// before reloading: editors write, rename and chmod in quick bursts.
const DefaultDebounce = 250 * time.Millisecond

// DefaultConfirm is how long a meter must stay out of the file, over a
// second read, before the watcher lets it go: an editor that truncates the
// file and then writes it must not make Home Assistant delete devices.
const DefaultConfirm = 3 * time.Second

// DefaultDirCheck is how often Run checks that the directory it watches is
// still the one at the file's path (it may be moved away and created anew,
// which file events do not tell).
const DefaultDirCheck = time.Second

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
//
// Removing needs certainty: a file that reads as empty (no meters) after
// one that had meters is a fault and is logged, never applied; a meter
// missing from a good read stays in force until a second read at least
// Confirm later still lacks it.
type Watcher struct {
	// Debounce overrides DefaultDebounce, Confirm DefaultConfirm and
	// DirCheck DefaultDirCheck; set them before Run.
	Debounce, Confirm, DirCheck time.Duration

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
	// held: meters missing from the file, kept in force until confirmed
	// gone, with the time of the first read that lacked them.
	held map[wmbus.ID]time.Time
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
	for _, p := range s.Problems {
		w.log.Warn("meter list entry skipped", "err", p)
	}
	if s.Len() == 0 && w.base.Len() > 0 {
		w.loaded = false // read it again on the next event
		w.log.Error("meter list now holds no meters; taken for a fault (a file being written?), keeping the current list; to remove meters for good, delete their entries one by one or set enabled = false",
			"meters", w.base.Len())
		return fmt.Errorf("meter list: %w", ErrEmptyList)
	}
	w.sum, w.loaded = sum, true
	s = w.holdRemoved(s, time.Now())
	w.base = s
	w.apply(s, why)
	return nil
}

// ErrEmptyList marks a meter list that lost all its meters at once.
var ErrEmptyList = errors.New("the file holds no meters although it did before")

// holdRemoved returns s with the meters of the list in force that s lacks
// added back, unless a read at least Confirm ago lacked them too.
func (w *Watcher) holdRemoved(s *Snapshot, now time.Time) *Snapshot {
	confirm := w.confirm()
	var keep []Meter
	for _, m := range w.base.Meters {
		if _, ok := s.Meter(m.ID); ok {
			continue
		}
		since, held := w.held[m.ID]
		if held && now.Sub(since) >= confirm {
			delete(w.held, m.ID)
			w.log.Info("meter still missing from the meter list on a second read; removing it", "meter", m.ID.String())
			continue
		}
		if !held {
			if w.held == nil {
				w.held = make(map[wmbus.ID]time.Time)
			}
			w.held[m.ID] = now
			w.log.Info("meter missing from the meter list; kept until a second read confirms it", "meter", m.ID.String(), "in", confirm)
		}
		keep = append(keep, m)
	}
	for id := range w.held {
		if _, ok := s.Meter(id); ok {
			delete(w.held, id) // back in the file
		}
	}
	if len(keep) == 0 {
		return s
	}
	w.loaded = false // the confirming read must not be skipped as unchanged
	out := newSnapshot(s.Path, append(slices.Clone(s.Meters), keep...))
	out.Radio, out.MQTT, out.Problems = s.Radio, s.MQTT, s.Problems
	return out
}

func (w *Watcher) confirm() time.Duration {
	if w.Confirm > 0 {
		return w.Confirm
	}
	return DefaultConfirm
}

// holding reports whether meters wait for a confirming read.
func (w *Watcher) holding() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.held) > 0
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
// old one. When the directory disappears or is replaced (moved away and
// created again), Run says so, keeps the list in force and watches the new
// directory as soon as it is there. Errors of single events are logged; Run
// returns only when ctx ends or watching cannot start at all.
func (w *Watcher) Run(ctx context.Context) error {
	dir := filepath.Dir(w.path)
	check := w.DirCheck
	if check <= 0 {
		check = DefaultDirCheck
	}
	for first := true; ; first = false {
		if !first {
			w.log.Warn("meter list directory disappeared or was replaced; keeping the current list until it is back", "dir", dir, "meters", w.Current().Len())
			if err := waitForDir(ctx, dir, check); err != nil {
				return err
			}
			w.log.Info("meter list directory is back; watching it again", "dir", dir)
		}
		err := w.watchDir(ctx, dir, check)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, errDirChanged) {
			if first {
				return err
			}
			w.log.Error("meter list: watching again failed; retrying", "err", err)
			if err := sleep(ctx, check); err != nil {
				return err
			}
		}
	}
}

var errDirChanged = errors.New("directory changed")

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func waitForDir(ctx context.Context, dir string, every time.Duration) error {
	for {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return nil
		}
		if err := sleep(ctx, every); err != nil {
			return err
		}
	}
}

// watchDir follows dir until ctx ends or dir is no longer the directory
// it started with (errDirChanged).
func (w *Watcher) watchDir(ctx context.Context, dir string, check time.Duration) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("meter list: watch: %w", err)
	}
	defer fw.Close()
	orig, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("meter list: watch %s: %w", dir, err)
	}
	if err := fw.Add(dir); err != nil {
		return fmt.Errorf("meter list: watch %s: %w", dir, err)
	}
	// Anything that happened before the watch began.
	_ = w.reload("reloaded")

	debounce := w.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	confirm := time.NewTimer(time.Hour)
	confirm.Stop()
	defer confirm.Stop()
	armConfirm := func() {
		if w.holding() {
			confirm.Reset(w.confirm())
		}
	}
	armConfirm()
	tick := time.NewTicker(check)
	defer tick.Stop()
	sameDir := func() bool {
		fi, err := os.Stat(dir)
		return err == nil && os.SameFile(fi, orig)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-fw.Events:
			if !ok {
				return errDirChanged
			}
			if filepath.Clean(ev.Name) == dir && !sameDir() {
				return errDirChanged
			}
			if filepath.Base(ev.Name) != w.file {
				continue
			}
			timer.Reset(debounce)
		case err, ok := <-fw.Errors:
			if !ok {
				return errDirChanged
			}
			// An overflow means events were lost: reload to be sure.
			w.log.Warn("meter list watch error; reloading", "err", err)
			timer.Reset(debounce)
		case <-tick.C:
			if !sameDir() {
				return errDirChanged
			}
		case <-timer.C:
			_ = w.reload("reloaded")
			armConfirm()
		case <-confirm.C:
			_ = w.reload("reloaded")
			armConfirm()
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
