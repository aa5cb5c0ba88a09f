package addon

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// apparmorParser finds Debian's apparmor_parser (package apparmor).
func apparmorParser(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"apparmor_parser", "/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("apparmor_parser is not installed: run `make test`, or `make deps` to install it (apt-get install apparmor)")
	return ""
}

// TestAppArmorProfile: the profile compiles with the real parser, and it
// grants what the add-on needs and no more where it matters: the dongle,
// /data and /config read-write, /share read-only, the network, /tmp.
func TestAppArmorProfile(t *testing.T) {
	path, err := filepath.Abs(filepath.Join(repoRoot, "apparmor.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(apparmorParser(t), "--skip-kernel-load", "--skip-cache", path).CombinedOutput()
	if err != nil {
		t.Fatalf("apparmor_parser rejects apparmor.txt: %v\n%s", err, out)
	}
	profile := readRepoFile(t, "apparmor.txt")
	rules := map[string]string{}
	for _, line := range strings.Split(profile, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || !strings.HasSuffix(line, ",") {
			continue
		}
		f := strings.Fields(strings.TrimSuffix(line, ","))
		if len(f) == 2 && strings.HasPrefix(f[0], "/") {
			rules[f[0]] = f[1]
		}
	}
	need := []struct{ path, perms string }{
		{"/usr/bin/flowiq-gateway", "rix"},
		{"/usr/local/lib/**", "mr"},
		{"/dev/bus/usb/**", "rw"},
		{"/sys/bus/usb/**", "r"},
		{"/run/udev/**", "r"},
		{"/data/**", "rwk"},
		{"/config/**", "rwk"},
		{"/share/**", "r"},
		{"/tmp/**", "rw"},
		{"/etc/ssl/**", "r"},
		{"/run/dbus/system_bus_socket", "rw"}, // BlueZ, for a VW1871 (host_dbus)
	}
	for _, n := range need {
		if got := rules[n.path]; got != n.perms {
			t.Errorf("%s: %q, want %q", n.path, got, n.perms)
		}
	}
	for _, want := range []string{"network inet stream,", "network inet6 stream,", "deny /share/** wl,",
		"dbus (send, receive) bus=system peer=(name=org.bluez),",
		"signal (send, receive) peer=@{profile_name},", "flags=(attach_disconnected,mediate_deleted)"} {
		if !strings.Contains(profile, want) {
			t.Errorf("apparmor.txt lacks %q", want)
		}
	}
	// Nothing broader than the add-on's own folders is writable.
	for p, perms := range rules {
		if strings.ContainsAny(perms, "wa") && !regexp.MustCompile(`^/(data|config|tmp|dev/bus/usb)/|^/run/dbus/system_bus_socket$`).MatchString(p) {
			t.Errorf("%s is writable (%s)", p, perms)
		}
	}
	if !strings.Contains(profile, "profile "+Slug+" ") {
		t.Errorf("the profile is not named %s", Slug)
	}
}
