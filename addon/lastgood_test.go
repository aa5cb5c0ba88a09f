package addon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A truncated or unreadable options.json after a good one: the meters of
// the last good one are used (so their devices stay), and the problem is
// reported.
func TestOptionsLastGoodCopy(t *testing.T) {
	full, err := os.ReadFile("testdata/options-full.json")
	if err != nil {
		t.Fatal(err)
	}
	truncated, err := os.ReadFile("testdata/options-truncated.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "options.json")

	// First start with an unreadable file and no copy: the defaults.
	if err := os.WriteFile(path, truncated, 0o600); err != nil {
		t.Fatal(err)
	}
	o, errs := LoadOptionsKeeping(path, data)
	if len(o.Meters()) != 0 || len(errs) == 0 || !errors.Is(errs[0], ErrOptionsFile) {
		t.Fatalf("no copy yet: %d meters, %v", len(o.Meters()), errs)
	}

	if err := os.WriteFile(path, full, 0o600); err != nil {
		t.Fatal(err)
	}
	good, errs := LoadOptionsKeeping(path, data)
	if len(errs) != 0 || len(good.Meters()) == 0 {
		t.Fatalf("good file: %d meters, %v", len(good.Meters()), errs)
	}
	fi, err := os.Stat(filepath.Join(data, LastGoodName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("copy: %v %v", err, fi)
	}

	for name, bad := range map[string]func() error{
		"truncated":   func() error { return os.WriteFile(path, truncated, 0o600) },
		"empty":       func() error { return os.WriteFile(path, nil, 0o600) },
		"missing":     func() error { return nil },
		"a directory": func() error { return os.Mkdir(path, 0o700) },
	} {
		os.RemoveAll(path)
		if err := bad(); err != nil {
			t.Fatal(err)
		}
		o, errs := LoadOptionsKeeping(path, data)
		if len(o.Meters()) != len(good.Meters()) || o.Meters()[0].ID != good.Meters()[0].ID {
			t.Errorf("%s: %d meters, want the %d of the last good file", name, len(o.Meters()), len(good.Meters()))
		}
		if len(errs) != 1 || !errors.Is(errs[0], ErrLastGoodOptions) || errors.Is(errs[0], ErrOptionsFile) {
			t.Errorf("%s: errors %v", name, errs)
		}
	}
	// Without a directory nothing is kept or used.
	os.RemoveAll(path)
	if o, _ := LoadOptions(path); len(o.Meters()) != 0 {
		t.Error("LoadOptions used a copy")
	}
}
