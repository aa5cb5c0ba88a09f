package addon

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The release workflow and config.yaml agree: it publishes the image name
// config.yaml uses (or will use: until a release exists config.yaml has no
// image and the Supervisor builds locally), for exactly config.yaml's
// architectures, passing the Supervisor's build arguments, on version tags.
func TestReleaseWorkflow(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, ".github", "workflows", "release.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		On struct {
			Push struct {
				Tags []string `yaml:"tags"`
			} `yaml:"push"`
		} `yaml:"on"`
		Env  map[string]string `yaml:"env"`
		Jobs map[string]struct {
			Strategy struct {
				Matrix struct {
					Include []map[string]string `yaml:"include"`
				} `yaml:"matrix"`
			} `yaml:"strategy"`
			Steps []struct {
				Run string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	manifest := loadYAMLAsJSON(t, manifestPath)
	const image = "ghcr.io/flowiq-gateway/{arch}-flowiq-gateway"
	if wf.Env["IMAGE"] != image {
		t.Errorf("the workflow publishes %q, want %q", wf.Env["IMAGE"], image)
	}
	if img, ok := manifest["image"]; ok && img != wf.Env["IMAGE"] {
		t.Errorf("config.yaml image %q is not what the release publishes (%q)", img, wf.Env["IMAGE"])
	}
	if len(wf.On.Push.Tags) == 0 {
		t.Error("the workflow does not run on version tags")
	}
	var arches []string
	var runs strings.Builder
	for _, j := range wf.Jobs {
		for _, inc := range j.Strategy.Matrix.Include {
			arches = append(arches, inc["arch"])
		}
		for _, s := range j.Steps {
			runs.WriteString(s.Run + "\n")
		}
	}
	slices.Sort(arches)
	want := strList(manifest["arch"])
	slices.Sort(want)
	if !slices.Equal(arches, want) {
		t.Errorf("the workflow builds %v, config.yaml lists %v", arches, want)
	}
	for _, s := range []string{"DOCKER_BUILDKIT=0 docker build", `--build-arg "BUILD_ARCH=$ARCH"`, `--build-arg "BUILD_VERSION=$VERSION"`,
		"docker push", "make test", `"v$version" != "$GITHUB_REF_NAME"`} {
		if !strings.Contains(runs.String(), s) {
			t.Errorf("the workflow never runs %q", s)
		}
	}
	docs := readRepoFile(t, "DOCS.md")
	if _, ok := manifest["image"]; !ok && !strings.Contains(docs, "builds the add-on on your device") {
		t.Error("config.yaml names no image, but DOCS.md does not say the add-on is built on the device")
	}
	if !strings.Contains(docs, strings.ReplaceAll(image, "{arch}", "aarch64")) {
		t.Error("DOCS.md does not name the published image")
	}
}
