package meters

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpsert(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meters.toml")
	orig := `# My meters. Keep this comment.
[mqtt]
url = "tcp://broker:1883"   # the broker

[[meter]]
id = "74493770"   # kitchen
name = "Kitchen"
key = "` + key1 + `"   # from the supplier's mail

# The garden meter has no key yet.
[[meter]]
id = "22222222"
enabled = false
`
	if err := os.WriteFile(path, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	added, updated, err := Upsert(path, []Meter{
		{ID: id(t, "74493770"), Key: mustKey(t, key2), HasKey: true}, // key changes, name kept
		{ID: id(t, "22222222"), Name: "Garden", Key: mustKey(t, key3), HasKey: true, Model: "flowIQ 2200"},
		{ID: id(t, "33333333"), Name: `Cellar "A"`, Key: mustKey(t, key1), HasKey: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ids := idList(added); ids != "33333333" {
		t.Errorf("added = %s", ids)
	}
	if ids := idList(updated); ids != "74493770 22222222" {
		t.Errorf("updated = %s", ids)
	}
	data, _ := os.ReadFile(path)
	text := string(data)
	want := `# My meters. Keep this comment.
[mqtt]
url = "tcp://broker:1883"   # the broker

[[meter]]
id = "74493770"   # kitchen
name = "Kitchen"
key = "A1B2 C3D4 E5F6 0718 293A 4B5C 6D7E 8F90"   # from the supplier's mail

# The garden meter has no key yet.
[[meter]]
id = "22222222"
enabled = false
key = "0F1E 2D3C 4B5A 6978 8796 A5B4 C3D2 E1F0"
name = "Garden"
model = "flowIQ 2200"

[[meter]]
id = "33333333"
name = "Cellar \"A\""
key = "44E9 112D 06BD 762E C2BF ECE5 7E48 7C9B"
`
	if text != want {
		t.Fatalf("file:\n%s\nwant:\n%s", text, want)
	}
	s, err := Load(path)
	if err != nil || len(s.Problems) != 0 {
		t.Fatal(err, s.Problems)
	}
	if g, _ := s.Meter(id(t, "22222222")); g.Key != mustKey(t, key3) || !hasSnapKey(s, "74493770", key2) || !hasSnapKey(s, "33333333", key1) {
		t.Fatal("keys did not read back")
	}
	if m, _ := s.Meter(id(t, "22222222")); m.Enabled || m.Name != "Garden" {
		t.Fatalf("garden = %v", m)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %o, want the original 0640", fi.Mode().Perm())
	}
	// Nothing left behind, and a repeated import changes nothing.
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d files", len(entries))
	}
	added, updated, err = Upsert(path, []Meter{{ID: id(t, "33333333"), Key: mustKey(t, key1), HasKey: true}})
	if err != nil || len(added)+len(updated) != 0 {
		t.Fatalf("repeat: %v %v %v", added, updated, err)
	}
}

func hasSnapKey(s *Snapshot, idText, key string) bool {
	i, _ := parseID(idText)
	k, ok := s.Key(i)
	want, _, _ := parseKey(key)
	return ok && string(k) == string(want[:])
}

func TestUpsertNewFileAndRefusals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meters.toml")
	added, _, err := Upsert(path, []Meter{{ID: id(t, "74493770"), Key: mustKey(t, key1), HasKey: true}})
	if err != nil || idList(added) != "74493770" {
		t.Fatal(added, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("new file mode = %o, want 0600", fi.Mode().Perm())
	}
	if s, err := Load(path); err != nil || !hasSnapKey(s, "74493770", key1) {
		t.Fatal(err)
	}

	broken := "[[meter]]\nid = \"74493770\"\nkey = \"" + key1 + "\n"
	os.WriteFile(path, []byte(broken), 0o600)
	_, _, err = Upsert(path, []Meter{{ID: id(t, "74493770"), Key: mustKey(t, key2), HasKey: true}})
	if err == nil || !strings.Contains(err.Error(), "line 3, column 47") {
		t.Fatalf("broken file: %v", err)
	}
	assertNoKeys(t, err.Error())
	if data, _ := os.ReadFile(path); string(data) != broken {
		t.Fatal("a broken file was modified")
	}

	dup := meterTOML("74493770", key1) + meterTOML("74493770", key2)
	os.WriteFile(path, []byte(dup), 0o600)
	if _, _, err = Upsert(path, []Meter{{ID: id(t, "74493770"), Key: mustKey(t, key3), HasKey: true}}); err == nil {
		t.Fatal("duplicate entries edited")
	}
	assertNoKeys(t, err.Error())
}
