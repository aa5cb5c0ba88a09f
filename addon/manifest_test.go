package addon

import (
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The add-on's files sit at the repository root, one level up; the shared
// schema sits beside the repository.
const (
	repoRoot     = ".."
	manifestPath = "../config.yaml"
	schemaPath   = "../testdata/schemas/addon-config.schema.json"
)

// loadYAMLAsJSON reads a YAML file into the values encoding/json would
// produce for the same document, which is what both validators expect.
func loadYAMLAsJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out map[string]any
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatalf("the add-on schema: %v", err)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// clone deep-copies a JSON value.
func clone(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	j, _ := json.Marshal(v)
	var out map[string]any
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestManifestMatchesSchema(t *testing.T) {
	schema := loadSchema(t)
	manifest := loadYAMLAsJSON(t, manifestPath)
	for _, e := range validateJSONSchema(schema, manifest, "$") {
		t.Error(e)
	}

	// What issue 6 requires of the manifest, beyond the schema.
	want := map[string]any{
		"name": "flowIQ Gateway", "version": "0.2.0", "slug": "flowiq_gateway",
		"url":  "https://github.com/flowiq-gateway/flowiq-gateway",
		"arch": []any{"aarch64", "amd64"}, "init": false, "usb": true, "udev": true,
		"services": []any{"mqtt:need"}, "startup": nil, "boot": nil,
		// No prebuilt image until a release publishes one: the Supervisor
		// builds from the Dockerfile (TestReleaseImageName).
		"image": nil, "homeassistant": "2025.10.0",
	}
	for k, v := range want {
		if !reflect.DeepEqual(manifest[k], v) {
			t.Errorf("config.yaml %s = %#v, want %#v", k, manifest[k], v)
		}
	}
	if m, _ := manifest["map"].([]any); len(m) == 0 || m[0] != "addon_config:rw" {
		t.Errorf("config.yaml map = %v, want addon_config:rw first", manifest["map"])
	}
}

// The validator must be able to fail: each mutation breaks one rule.
func TestSchemaValidatorRejects(t *testing.T) {
	schema := loadSchema(t)
	base := loadYAMLAsJSON(t, manifestPath)
	cases := []struct {
		name   string
		mutate func(m map[string]any)
		want   string
	}{
		{"unknown key", func(m map[string]any) { m["colour"] = "blue" }, `property "colour" is not allowed`},
		{"missing slug", func(m map[string]any) { delete(m, "slug") }, `required property "slug" is missing`},
		{"arch enum", func(m map[string]any) { m["arch"] = []any{"amd64", "riscv64"} }, `$.arch[1]: riscv64 is not one of`},
		{"bool type", func(m map[string]any) { m["usb"] = "yes" }, `$.usb: want type boolean, got string`},
		{"services pattern", func(m map[string]any) { m["services"] = []any{"mqtt:must"} }, `$.services[0]: "mqtt:must" does not match`},
		{"map oneOf", func(m map[string]any) { m["map"] = []any{"addon_config:rw", map[string]any{"type": "share"}} }, `$.map: matches 0 of oneOf`},
		{"map object form", func(m map[string]any) { m["map"] = []any{map[string]any{"type": "nowhere"}} }, `$.map: matches 0 of oneOf`},
		{"ingress_port maximum", func(m map[string]any) { m["ingress_port"] = 70000.0 }, `above the maximum`},
		{"timeout integer", func(m map[string]any) { m["timeout"] = 1.5 }, `want type integer, got number`},
		{"ports anyOf", func(m map[string]any) { m["ports"] = map[string]any{"80/tcp": "x"} }, `matches none of anyOf`},
		{"apparmor type list", func(m map[string]any) { m["apparmor"] = 3.0 }, `want type string or boolean`},
		{"email format", func(m map[string]any) { m["codenotary"] = "not an address" }, `is not a valid email`},
	}
	for _, c := range cases {
		m := clone(t, base)
		c.mutate(m)
		errs := validateJSONSchema(schema, m, "$")
		if !strings.Contains(strings.Join(errs, "\n"), c.want) {
			t.Errorf("%s: errors %q lack %q", c.name, errs, c.want)
		}
	}
	bad := map[string]any{"type": "object", "unevaluatedProperties": false}
	if errs := validateJSONSchema(bad, map[string]any{}, "$"); len(errs) != 1 {
		t.Errorf("an unsupported keyword passed: %v", errs)
	}
}

func manifestSchemaAndOptions(t *testing.T) (schema, options map[string]any) {
	t.Helper()
	m := loadYAMLAsJSON(t, manifestPath)
	schema, ok1 := m["schema"].(map[string]any)
	options, ok2 := m["options"].(map[string]any)
	if !ok1 || !ok2 {
		t.Fatal("config.yaml lacks schema or options")
	}
	return schema, options
}

func TestOptionsSatisfySchema(t *testing.T) {
	schema, options := manifestSchemaAndOptions(t)
	for _, e := range checkHASchema(schema) {
		t.Error("schema:", e)
	}
	for _, e := range checkHAOptions(schema, options) {
		t.Error("options:", e)
	}

	// The fixtures are realistic: the good one fits the schema, the bad
	// meter list does not (the Supervisor would refuse the bad ID).
	for name, wantOK := range map[string]bool{"options-full.json": true, "options-bad-meters.json": false, "options-bad-settings.json": false} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		var o map[string]any
		if err := json.Unmarshal(data, &o); err != nil {
			t.Fatal(err)
		}
		errs := checkHAOptions(schema, o)
		if (len(errs) == 0) != wantOK {
			t.Errorf("%s: schema check gave %v, want ok=%v", name, errs, wantOK)
		}
	}
}

// The defaults in config.yaml are the package's Defaults().
func TestManifestOptionsAreDefaults(t *testing.T) {
	_, options := manifestSchemaAndOptions(t)
	data, err := json.Marshal(options)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "options.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	o, errs := LoadOptions(path)
	if len(errs) != 0 {
		t.Fatalf("the default options have problems: %v", errs)
	}
	if !reflect.DeepEqual(o, Defaults()) {
		t.Errorf("config.yaml's options give %v, Defaults() is %v", o, Defaults())
	}
}

// The checker must be able to fail.
func TestHASchemaCheckerRejects(t *testing.T) {
	schema, options := manifestSchemaAndOptions(t)
	cases := []struct {
		name   string
		mutate func(s, o map[string]any)
		want   string
	}{
		{"ppm range", func(s, o map[string]any) { o["radio"].(map[string]any)["ppm"] = 250.0 }, "radio.ppm: 250 does not fit int(-200,200): above 200"},
		{"ppm whole", func(s, o map[string]any) { o["radio"].(map[string]any)["ppm"] = 1.5 }, "not a whole number"},
		{"sample rate list", func(s, o map[string]any) { o["radio"].(map[string]any)["sample_rate"] = "3.2M" }, "not one of"},
		{"bad meter id", func(s, o map[string]any) { o["meters"] = []any{map[string]any{"id": "123"}} }, "meters[0].id: 123 does not fit"},
		{"meter missing id", func(s, o map[string]any) { o["meters"] = []any{map[string]any{"name": "x"}} }, "meters[0].id: missing"},
		{"meters not a list", func(s, o map[string]any) { o["meters"] = "74493770" }, "meters: want a list"},
		{"missing option", func(s, o map[string]any) { delete(o, "log_level") }, "log_level: missing"},
		{"unknown option", func(s, o map[string]any) { o["colour"] = "blue" }, "colour: not in the schema"},
		{"text for int", func(s, o map[string]any) { o["radio"].(map[string]any)["ppm"] = "5" }, "not a whole number"},
		{"bad rule", func(s, o map[string]any) { s["discovery_prefix"] = "string" }, "not in the Supervisor's schema language"},
		{"negative str bound", func(s, o map[string]any) { s["discovery_prefix"] = "str(-1,)" }, "not in the Supervisor's schema language"},
		{"group in group", func(s, o map[string]any) {
			s["radio"].(map[string]any)["advanced"] = map[string]any{"x": "int"}
		}, "a group inside a group"},
		{"two-element list", func(s, o map[string]any) { s["meters"] = []any{"str", "int"} }, "exactly one element"},
	}
	for _, c := range cases {
		s, o := clone(t, schema), clone(t, options)
		c.mutate(s, o)
		errs := append(checkHASchema(s), checkHAOptions(s, o)...)
		if !strings.Contains(strings.Join(errs, "\n"), c.want) {
			t.Errorf("%s: errors %q lack %q", c.name, errs, c.want)
		}
	}
	// The Supervisor's grammar: a few rules in and out.
	for rule, ok := range map[string]bool{
		"str": true, "str?": true, "str(3,)": true, "password?": true, "int(-200,200)": true, "float(0.5,2)": true,
		"port": true, "url?": true, "email": true, "bool": true, "device(subsystem=tty)": true, "match(^a$)?": true,
		"list(a|b)": true, "integer": false, "str(a,b)": false, "device(tty)": false, "": false, "?": false, "match(": false,
	} {
		if _, err := parseHARule(rule); (err == nil) != ok {
			t.Errorf("parseHARule(%q): %v, want ok=%v", rule, err, ok)
		}
	}
}

func TestEveryOptionIsTranslated(t *testing.T) {
	schema, _ := manifestSchemaAndOptions(t)
	tr := loadYAMLAsJSON(t, filepath.Join(repoRoot, "translations", "en.yaml"))
	conf, ok := tr["configuration"].(map[string]any)
	if !ok {
		t.Fatal("translations/en.yaml has no configuration block")
	}
	checkTranslations(t, schema, conf, "configuration")
}

// checkTranslations: every option (and field of a group or list of groups)
// has a name and a description, and nothing is translated that does not
// exist.
func checkTranslations(t *testing.T, schema, conf map[string]any, path string) {
	t.Helper()
	for _, k := range sortedKeys(schema) {
		entry, ok := conf[k].(map[string]any)
		p := path + "." + k
		if !ok {
			t.Errorf("%s: no translation", p)
			continue
		}
		for _, f := range []string{"name", "description"} {
			if s, _ := entry[f].(string); strings.TrimSpace(s) == "" {
				t.Errorf("%s.%s is missing or empty", p, f)
			}
		}
		for f := range entry {
			if f != "name" && f != "description" && f != "fields" {
				t.Errorf("%s.%s is not a translation key", p, f)
			}
		}
		sub, isGroup := schema[k].(map[string]any)
		if l, isList := schema[k].([]any); isList && len(l) == 1 {
			sub, isGroup = l[0].(map[string]any)
		}
		fields, hasFields := entry["fields"].(map[string]any)
		switch {
		case isGroup && !hasFields:
			t.Errorf("%s: the fields of the group have no translations", p)
		case isGroup:
			checkTranslations(t, sub, fields, p+".fields")
		case hasFields:
			t.Errorf("%s: fields translated for an option that has none", p)
		}
	}
	for k := range conf {
		if _, ok := schema[k]; !ok {
			t.Errorf("%s.%s translates an option that does not exist", path, k)
		}
	}
}

// The Supervisor takes every file named config.* (json, yaml, yml) for an
// add-on; only the root config.yaml may carry the name.
func TestNoOtherConfigFiles(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		if strings.HasPrefix(strings.ToLower(d.Name()), "config.") && rel != "config.yaml" {
			t.Errorf("%s: only the add-on manifest may be named config.*; rename it", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// goBuildLine returns the go build command of text with its -o argument
// replaced, so the Dockerfile and the script can be compared.
func goBuildLine(t *testing.T, name, text string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^(?:RUN\s+)?(CGO_ENABLED=1 go build .*?)\s*(?:\\)?$`)
	m := re.FindAllStringSubmatch(text, -1)
	if len(m) != 1 {
		t.Fatalf("%s: want one go build line, found %d", name, len(m))
	}
	return regexp.MustCompile(`-o \S+`).ReplaceAllString(m[0][1], "-o OUT")
}

func TestDockerfile(t *testing.T) {
	df := readRepoFile(t, "Dockerfile")
	script := readRepoFile(t, "scripts/build-addon-binary.sh")
	manifest := loadYAMLAsJSON(t, manifestPath)

	// The script builds exactly as the image does.
	image, local := goBuildLine(t, "Dockerfile", df), goBuildLine(t, "build-addon-binary.sh", script)
	if image != local {
		t.Errorf("the go build lines differ:\nDockerfile: %s\nscript:     %s", image, local)
	}
	for _, flag := range []string{"CGO_ENABLED=1", "-tags rtlsdr", "-trimpath", `-ldflags "-s -w"`, "./cmd/flowiq-gateway"} {
		if !strings.Contains(image, flag) {
			t.Errorf("the go build line lacks %s: %s", flag, image)
		}
	}

	// Go of the build image is a pinned patch release of go.mod's series.
	gomod := readRepoFile(t, "go.mod")
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)(\.\d+)?$`).FindStringSubmatch(gomod)
	if goVersion == nil || !regexp.MustCompile(`(?m)^ARG GO_IMAGE=golang:`+regexp.QuoteMeta(goVersion[1])+`\.\d+-bookworm$`).MatchString(df) {
		t.Errorf("GO_IMAGE is not a pinned golang:%v.N-bookworm", goVersion)
	}
	if !regexp.MustCompile(`(?m)^ARG BASE_IMAGE=ghcr\.io/home-assistant/base-debian:bookworm-\d{4}\.\d+\.\d+$`).MatchString(df) {
		t.Error("BASE_IMAGE is not a pinned Home Assistant Debian base")
	}
	for _, line := range regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1) {
		if strings.Contains(line[1], ":latest") {
			t.Errorf("unpinned image %s", line[1])
		}
	}

	// librtlsdr detaches the kernel driver; the release is pinned by checksum.
	for _, want := range []string{"-DDETACH_KERNEL_DRIVER=ON", "sha256sum -c", "ARG RTLSDR_SHA256="} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}

	// Labels: type, version as in config.yaml, one arch label per arch.
	if !strings.Contains(df, `ARG BUILD_VERSION=`+manifest["version"].(string)+"\n") || !strings.Contains(df, `io.hass.version="${BUILD_VERSION}"`) {
		t.Error("io.hass.version does not follow config.yaml's version")
	}
	if !strings.Contains(df, `io.hass.type="addon"`) {
		t.Error("io.hass.type label missing")
	}
	// The architecture label comes from the Supervisor's build argument.
	if !strings.Contains(df, "ARG BUILD_ARCH=") || !strings.Contains(df, `io.hass.arch="${BUILD_ARCH}"`) {
		t.Error("io.hass.arch does not follow BUILD_ARCH")
	}
	// Nothing only BuildKit understands: the Supervisor may build with the
	// plain builder, where these fail or silently mean something else.
	for _, re := range []string{`(?m)^#\s*syntax=`, `\$\{?TARGET(ARCH|PLATFORM|OS|VARIANT)\b`, `\$\{?BUILD(PLATFORM|ARCH_DOCKER)\b`,
		`(?m)^\s*RUN\s+--`, `(?m)^\s*(COPY|ADD)\s+.*--(link|chmod|parents|exclude)\b`, `(?m)^\s*RUN\s.*<<-?\s*['"]?\w+`} {
		if m := regexp.MustCompile(re).FindString(df); m != "" {
			t.Errorf("Dockerfile uses a BuildKit-only feature: %q", m)
		}
	}
	// The gateway and the health check agree on the health file.
	if !strings.Contains(df, "\nENV "+HealthFileEnv+"="+DefaultHealthFile+"\n") {
		t.Errorf("the image does not set %s=%s", HealthFileEnv, DefaultHealthFile)
	}
	// The health check runs the health command with exec form.
	if !regexp.MustCompile(`(?m)^HEALTHCHECK (--\S+ )*\\?\s*CMD \["/usr/bin/flowiq-gateway", "health"\]`).MatchString(strings.ReplaceAll(df, "\\\n    ", "")) {
		t.Error("no HEALTHCHECK running flowiq-gateway health")
	}
	if !strings.Contains(df, `ENTRYPOINT ["/usr/bin/flowiq-gateway"]`) || !strings.Contains(df, `CMD ["addon"]`) {
		t.Error("the image does not run flowiq-gateway addon")
	}
}

// TestMakeBuildsAddonBinary: compiling the image's build step (cgo, the
// rtlsdr tag, librtlsdr; about two minutes cold) is no unit test. `make
// test` runs it in build-tags through scripts/build-addon-binary.sh, which
// also checks that the binary links librtlsdr exactly when the command uses
// the USB driver. This keeps that step from dropping out of make test.
func TestMakeBuildsAddonBinary(t *testing.T) {
	mk := readRepoFile(t, "Makefile")
	target := func(name string) string {
		m := regexp.MustCompile(`(?ms)^` + regexp.QuoteMeta(name) + `:([^\n]*)\n((?:\t[^\n]*\n)*)`).FindStringSubmatch(mk)
		if m == nil {
			t.Fatalf("Makefile has no %s target", name)
		}
		return m[1] + "\n" + m[2]
	}
	if !regexp.MustCompile(`\bbuild-tags\b`).MatchString(strings.SplitN(target("test"), "\n", 2)[0]) {
		t.Error("make test does not depend on build-tags")
	}
	if recipe := target("build-tags"); !regexp.MustCompile(`(?m)^\t(?:bash )?scripts/build-addon-binary\.sh `).MatchString(recipe) {
		t.Errorf("make build-tags does not run scripts/build-addon-binary.sh unconditionally:\n%s", recipe)
	}
	script := readRepoFile(t, "scripts/build-addon-binary.sh")
	for _, want := range []string{"go list -deps -tags rtlsdr", "github.com/jpoirier/gortlsdr", "librtlsdr.so"} {
		if !strings.Contains(script, want) {
			t.Errorf("build-addon-binary.sh does not check the librtlsdr link (%s missing)", want)
		}
	}
}

func TestDocsCoverOptions(t *testing.T) {
	docs := readRepoFile(t, "DOCS.md")
	schema, _ := manifestSchemaAndOptions(t)
	var names []string
	var walk func(s map[string]any)
	walk = func(s map[string]any) {
		for k, v := range s {
			names = append(names, k)
			if l, ok := v.([]any); ok && len(l) == 1 {
				v = l[0]
			}
			if g, ok := v.(map[string]any); ok {
				walk(g)
			}
		}
	}
	walk(schema)
	for _, n := range names {
		if !strings.Contains(docs, "`"+n+"`") {
			t.Errorf("DOCS.md does not describe `%s`", n)
		}
	}
	for _, want := range []string{"Energy", "listen", "KEM", "USB", "Mosquitto"} {
		if !strings.Contains(docs, want) {
			t.Errorf("DOCS.md never mentions %s", want)
		}
	}
	// The defaults DOCS.md states are config.yaml's.
	_, options := manifestSchemaAndOptions(t)
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)`(?: → `([a-z_]+)`)? \\| ([^|]+) \\|")
	seen := 0
	table := docs[strings.Index(docs, "\n## Options\n")+1:]
	table = table[:strings.Index(table, "\n## ")]
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		v, ok := options[m[1]]
		if g, isGroup := v.(map[string]any); isGroup && m[2] != "" {
			v, ok = g[m[2]]
		} else if m[2] != "" {
			continue // a field of a list (meters)
		}
		want := "empty"
		if ok {
			if l, isList := v.([]any); !isList || len(l) > 0 {
				want = "`" + fmt.Sprint(v) + "`"
			}
		}
		if got := strings.TrimSpace(m[3]); got != want {
			t.Errorf("DOCS.md: %s %s default %s, config.yaml %s", m[1], m[2], got, want)
		}
		seen++
	}
	if seen < 15 {
		t.Errorf("DOCS.md's option table has %d rows with defaults", seen)
	}
	changelog := readRepoFile(t, "CHANGELOG.md")
	if !strings.Contains(changelog, "## "+loadYAMLAsJSON(t, manifestPath)["version"].(string)) {
		t.Error("CHANGELOG.md has no entry for the manifest's version")
	}
}

func TestImages(t *testing.T) {
	for _, c := range []struct {
		name   string
		square bool
		minW   int
	}{{"icon.png", true, 128}, {"logo.png", false, 200}} {
		f, err := os.Open(filepath.Join(repoRoot, c.name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		b := img.Bounds()
		if c.square != (b.Dx() == b.Dy()) || b.Dx() < c.minW {
			t.Errorf("%s is %dx%d", c.name, b.Dx(), b.Dy())
		}
		if opaqueShare(img) < 0.1 {
			t.Errorf("%s is (almost) empty", c.name)
		}
	}
}

func opaqueShare(img image.Image) float64 {
	b := img.Bounds()
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if _, _, _, a := img.At(x, y).RGBA(); a > 0x8000 {
				n++
			}
		}
	}
	return float64(n) / float64(b.Dx()*b.Dy())
}
