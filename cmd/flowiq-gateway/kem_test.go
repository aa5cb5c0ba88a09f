package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

const (
	kemTestFile     = "../../testdata/kem/synthetic_test.zip.kem"
	kemTestPassword = "TestPass123"
	kemTestKey1     = "000102030405060708090A0B0C0D0E0F" // synthetic_test.json
	kemTestKey2     = "F0E1D2C3B4A5968778695A4B3C2D1E0F"
)

// runKEMCommand runs "flowiq-gateway kem args…" in-process.
func runKEMCommand(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	code = execute(context.Background(), e, append([]string{"kem"}, args...))
	return code, out.String(), errb.String()
}

// unsetKEMPassword clears KEM_PASSWORD for one test (restored afterwards).
func unsetKEMPassword(t *testing.T) {
	t.Setenv(kemPasswordEnv, "")
	os.Unsetenv(kemPasswordEnv)
}

func assertNoKEMKeys(t *testing.T, s string) {
	t.Helper()
	for _, k := range []string{kemTestKey1, kemTestKey2} {
		if strings.Contains(strings.ToUpper(s), k) {
			t.Errorf("key printed without --show-keys:\n%s", s)
		}
	}
}

func TestKEMList(t *testing.T) {
	unsetKEMPassword(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(kemTestPassword+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{kemTestFile, "--password", kemTestPassword},
		{"--password", kemTestPassword, kemTestFile},
		{"-password=" + kemTestPassword, kemTestFile},
		{kemTestFile, "--password-file", pwFile},
		{"--password-file", pwFile, "--", kemTestFile},
	} {
		code, out, errOut := runKEMCommand(t, args...)
		if code != 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
			continue
		}
		for _, want := range []string{"synthetic_test.zip.kem: 2 meters", "12345678", "87654321", "flowIQ 2101", "FLOWIQ 21XX", "VolumeCold"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q: output lacks %q:\n%s", args, want, out)
			}
		}
		if n := strings.Count(out, "  yes  "); n != 2 {
			t.Errorf("%q: %d meters marked as having a key, want 2:\n%s", args, n, out)
		}
		assertNoKEMKeys(t, out+errOut)
	}
}

func TestKEMPasswordFromEnv(t *testing.T) {
	t.Setenv(kemPasswordEnv, kemTestPassword)
	code, out, errOut := runKEMCommand(t, kemTestFile)
	if code != 0 || !strings.Contains(out, "12345678") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A flag wins over the environment.
	if code, _, _ := runKEMCommand(t, kemTestFile, "--password", "wrong"); code != 1 {
		t.Errorf("--password wrong with a right $%s: exit %d, want 1", kemPasswordEnv, code)
	}
}

func TestKEMShowKeys(t *testing.T) {
	unsetKEMPassword(t)
	code, out, errOut := runKEMCommand(t, kemTestFile, "--password", kemTestPassword, "--show-keys")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, line := range []string{"12345678  flowIQ 2101  " + kemTestKey1, "87654321  flowIQ 2101  " + kemTestKey2} {
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}
}

func TestKEMErrors(t *testing.T) {
	unsetKEMPassword(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"wrong password", []string{kemTestFile, "--password", "TestPass124"}, 1,
			"flowiq-gateway kem: " + kemTestFile + ": wrong password or not a KEM file (passwords are case-sensitive; only the first 16 bytes count)\n"},
		{"missing file", []string{filepath.Join(dir, "nope.kem"), "--password", "x"}, 1, "no such file or directory"},
		{"no file", []string{"--password", "x"}, 2, "no KEM file given"},
		{"two files", []string{"a.kem", "b.kem", "--password", "x"}, 2, "one KEM file at a time, got 2: a.kem b.kem"},
		{"no password", []string{kemTestFile}, 2, "no password: use --password-file F, $KEM_PASSWORD or --password P"},
		{"both passwords", []string{kemTestFile, "--password", "x", "--password-file", empty}, 2, "either --password or --password-file"},
		{"empty password file", []string{kemTestFile, "--password-file", empty}, 1, "first line is empty"},
		{"missing password file", []string{kemTestFile, "--password-file", filepath.Join(dir, "nope")}, 1, "password file: open"},
		{"unknown flag", []string{kemTestFile, "--pasword", "x"}, 2, "flag provided but not defined: -pasword"},
		{"merge without a path", []string{kemTestFile, "--password", kemTestPassword, "--merge"}, 2, "flag needs an argument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runKEMCommand(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.code, errOut)
			}
			if !strings.Contains(errOut, c.stderr) {
				t.Errorf("stderr %q lacks %q", errOut, c.stderr)
			}
			if c.code != 0 && out != "" {
				t.Errorf("stdout %q on failure", out)
			}
			assertNoKEMKeys(t, out+errOut)
		})
	}
}

func TestKEMHelp(t *testing.T) {
	code, _, errOut := runKEMCommand(t, "-h")
	if code != 0 || !strings.Contains(errOut, "usage: flowiq-gateway kem FILE") || !strings.Contains(errOut, "-show-keys") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestKEMMerge(t *testing.T) {
	unsetKEMPassword(t)
	list := filepath.Join(t.TempDir(), "meters.toml")
	const before = `# Our water meters.
# Keys come from the utility.

[[meter]]
id = "87654321" # kitchen
name = "Kitchen"
key = "11111111111111111111111111111111"

[[meter]]
# the garden tap, no key yet
id = "74493770"
name = "Garden"
enabled = false
`
	if err := os.WriteFile(list, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runKEMCommand(t, kemTestFile, "--password", kemTestPassword, "--merge", list)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if want := list + ": added 1 meter (12345678), updated 1 (87654321)\n"; !strings.HasSuffix(out, want) {
		t.Errorf("output %q, want it to end in %q", out, want)
	}
	assertNoKEMKeys(t, out+errOut)

	after, err := os.ReadFile(list)
	if err != nil {
		t.Fatal(err)
	}
	for _, keep := range []string{"# Our water meters.", "# Keys come from the utility.", "# kitchen", "# the garden tap, no key yet", `name = "Kitchen"`, `name = "Garden"`} {
		if !bytes.Contains(after, []byte(keep)) {
			t.Errorf("merge lost %q:\n%s", keep, after)
		}
	}
	snap, err := meters.Load(list)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"12345678": kemTestKey1, "87654321": kemTestKey2} {
		got, ok := snap.Key(mustParseID(t, id))
		if !ok || !strings.EqualFold(hex.EncodeToString(got), want) {
			t.Errorf("meter %s: key not merged", id) // never print keys
		}
	}
	if m, ok := snap.Meter(mustParseID(t, "74493770")); !ok || m.Name != "Garden" || m.Enabled {
		t.Errorf("untouched meter changed: %+v %v", m.Name, m.Enabled)
	}
	if m, ok := snap.Meter(mustParseID(t, "87654321")); !ok || m.Name != "Kitchen" {
		t.Errorf("updated meter lost its name: %q", m.Name)
	}

	// Merging again changes nothing.
	code, out, errOut = runKEMCommand(t, kemTestFile, "--password", kemTestPassword, "--merge", list)
	if code != 0 || !strings.HasSuffix(out, list+": already up to date (2 meters checked)\n") {
		t.Errorf("second merge: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestKEMMergeWrongPasswordLeavesListAlone(t *testing.T) {
	unsetKEMPassword(t)
	list := filepath.Join(t.TempDir(), "meters.toml")
	const before = "# nothing yet\n"
	if err := os.WriteFile(list, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runKEMCommand(t, kemTestFile, "--password", "nope", "--merge", list); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if b, _ := os.ReadFile(list); string(b) != before {
		t.Errorf("meter list changed after a failed import:\n%s", b)
	}
}

func mustParseID(t *testing.T, s string) wmbus.ID {
	t.Helper()
	id, err := wmbus.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
