package addon

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/discovery"
)

// The public add-on linter's rules beyond the schema (the same rules as
// the project's addon-lint.py): a key that restates the schema's default,
// and the deprecations it reports. Each returns one message per finding.

// restatedDefaults walks the schema's properties (nested ones too) and
// reports every key whose value equals the schema's default.
func restatedDefaults(schema map[string]any, v any, path string) []string {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	props, _ := schema["properties"].(map[string]any)
	var out []string
	for _, name := range sortedKeys(props) {
		sub, _ := props[name].(map[string]any)
		val, present := obj[name]
		if !present {
			continue
		}
		if def, has := sub["default"]; has && reflect.DeepEqual(val, def) {
			out = append(out, fmt.Sprintf("%s.%s should be removed, it uses a default value", path, name))
		}
		out = append(out, restatedDefaults(sub, val, path+"."+name)...)
	}
	return out
}

// lintRule is one of the linter's checks on the manifest.
type lintRule struct {
	name  string
	check func(m map[string]any) bool // true: the manifest breaks the rule
}

func truthy(v any) bool { b, _ := v.(bool); return b }

func strList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

var lintRules = []lintRule{
	{"architecture no longer supported since Home Assistant 2025.12 (armhf, armv7, i386)", func(m map[string]any) bool {
		return slices.ContainsFunc(strList(m["arch"]), func(a string) bool { return a == "armhf" || a == "armv7" || a == "i386" })
	}},
	{"'webui' should be removed, Ingress is enabled", func(m map[string]any) bool { return truthy(m["ingress"]) && m["webui"] != nil }},
	{"'ingress_port' 0 is only for host networking", func(m map[string]any) bool {
		p, ok := m["ingress_port"].(float64)
		return truthy(m["ingress"]) && !truthy(m["host_network"]) && ok && p == 0
	}},
	{"'full_access' together with devices/gpio/uart/usb", func(m map[string]any) bool {
		if !truthy(m["full_access"]) {
			return false
		}
		for _, k := range []string{"devices", "gpio", "uart", "usb"} {
			if _, ok := m[k]; ok {
				return true
			}
		}
		return false
	}},
	{"'watchdog' is obsolete: use a Docker HEALTHCHECK", func(m map[string]any) bool { return m["watchdog"] != nil && m["watchdog"] != "" }},
	{"'codenotary' is deprecated", func(m map[string]any) bool { _, ok := m["codenotary"]; return ok }},
	{"'auto_uart' is deprecated", func(m map[string]any) bool { _, ok := m["auto_uart"]; return ok }},
	{"'devices' uses the deprecated 'host:container' format", func(m map[string]any) bool {
		return slices.ContainsFunc(strList(m["devices"]), func(d string) bool { return strings.Contains(d, ":") })
	}},
	{"'tmpfs' must be a boolean", func(m map[string]any) bool { _, isBool := m["tmpfs"].(bool); return m["tmpfs"] != nil && !isBool }},
	{"'map' uses the old 'config' folder", func(m map[string]any) bool {
		return slices.ContainsFunc(strList(m["map"]), func(s string) bool { return strings.Split(s, ":")[0] == "config" })
	}},
}

func lintManifest(schema, m map[string]any) []string {
	out := restatedDefaults(schema, m, "$")
	for _, r := range lintRules {
		if r.check(m) {
			out = append(out, r.name)
		}
	}
	return out
}

func TestManifestLint(t *testing.T) {
	for _, e := range lintManifest(loadSchema(t), loadYAMLAsJSON(t, manifestPath)) {
		t.Errorf("config.yaml: %s", e)
	}
}

// Each rule must be able to fail.
func TestManifestLintRejects(t *testing.T) {
	schema := loadSchema(t)
	base := loadYAMLAsJSON(t, manifestPath)
	cases := []struct {
		mutate func(m map[string]any)
		want   string
	}{
		{func(m map[string]any) { m["startup"] = "application" }, "$.startup should be removed"},
		{func(m map[string]any) { m["boot"] = "auto" }, "$.boot should be removed"},
		{func(m map[string]any) { m["apparmor"] = true }, "$.apparmor should be removed"},
		{func(m map[string]any) { m["ingress"], m["ingress_port"] = true, 8099.0 }, "$.ingress_port should be removed"},
		{func(m map[string]any) { m["arch"] = []any{"amd64", "armv7"} }, "no longer supported"},
		{func(m map[string]any) { m["ingress"], m["webui"] = true, "http://[HOST]:[PORT:80]" }, "'webui' should be removed"},
		{func(m map[string]any) { m["ingress"], m["ingress_port"] = true, 0.0 }, "'ingress_port' 0"},
		{func(m map[string]any) { m["full_access"] = true }, "'full_access' together"},
		{func(m map[string]any) { m["watchdog"] = "tcp://[HOST]:[PORT:80]" }, "'watchdog' is obsolete"},
		{func(m map[string]any) { m["codenotary"] = "dev@example.com" }, "'codenotary' is deprecated"},
		{func(m map[string]any) { m["auto_uart"] = true }, "'auto_uart' is deprecated"},
		{func(m map[string]any) { m["devices"] = []any{"/dev/ttyUSB0:/dev/ttyUSB0"} }, "'host:container'"},
		{func(m map[string]any) { m["tmpfs"] = "size=10m" }, "'tmpfs' must be a boolean"},
		{func(m map[string]any) { m["map"] = []any{"config:rw"} }, "old 'config' folder"},
	}
	for _, c := range cases {
		m := clone(t, base)
		c.mutate(m)
		if errs := lintManifest(schema, m); !strings.Contains(strings.Join(errs, "\n"), c.want) {
			t.Errorf("mutation for %q: findings %q", c.want, errs)
		}
	}
}

// payloadMinimumHA: the Home Assistant release that first understands a
// discovery key. An older one drops the key without a word.
var payloadMinimumHA = map[string]string{
	`"cmps":`:              "2024.11.0", // device-based discovery
	`"default_entity_id":`: "2025.10.0", // replaces object_id
}

// TestMinimumHomeAssistant: config.yaml's homeassistant is at least the
// newest release any discovery key the gateway publishes needs.
func TestMinimumHomeAssistant(t *testing.T) {
	s, err := discovery.Site{}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	gw, err := discovery.GatewayConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	need := "0.0.0"
	var keys []string
	for k, v := range payloadMinimumHA {
		if strings.Contains(string(gw.Payload), k) {
			keys = append(keys, k)
			if versionLess(need, v) {
				need = v
			}
		}
	}
	sort.Strings(keys)
	if len(keys) != len(payloadMinimumHA) {
		t.Errorf("the gateway payload uses only %v of %d keys in the table; keep the table current", keys, len(payloadMinimumHA))
	}
	have, _ := loadYAMLAsJSON(t, manifestPath)["homeassistant"].(string)
	if versionLess(have, need) {
		t.Errorf("config.yaml homeassistant %q, but the payloads need %s", have, need)
	}
	if !versionLess("2025.9.4", "2025.10.0") || versionLess("2025.10.0", "2025.10.0") {
		t.Error("versionLess is wrong")
	}
}

// versionLess compares Home Assistant versions YYYY.M.P numerically.
func versionLess(a, b string) bool {
	pa, pb := regexp.MustCompile(`\d+`).FindAllString(a, 3), regexp.MustCompile(`\d+`).FindAllString(b, 3)
	for i := 0; i < 3; i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}
