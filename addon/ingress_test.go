package addon

import (
	"context"
	"log/slog"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/settings"
	"github.com/flowiq-gateway/flowiq-gateway/web"
)

// The status page is served on the manifest's ingress port, to the
// Supervisor's ingress proxy only.
func TestIngressPage(t *testing.T) {
	m := loadYAMLAsJSON(t, manifestPath)
	// ingress_port left out means the Supervisor's default, 8099.
	if port, set := m["ingress_port"]; m["ingress"] != true || (set && port != float64(IngressPort)) || (!set && IngressPort != 8099) || m["panel_icon"] == nil || m["panel_title"] == nil {
		t.Errorf("config.yaml ingress: %v, port %v (want %d), icon %v, title %v",
			m["ingress"], m["ingress_port"], IngressPort, m["panel_icon"], m["panel_title"])
	}
	dir := t.TempDir()
	flags := settings.Layer{Name: "flags", MQTT: meters.MQTT{URL: "tcp://127.0.0.1:1"}}
	cfg, err := Configure(context.Background(), slog.New(slog.DiscardHandler), Options{}, Paths{Data: dir, Config: dir}, flags, "test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Web != ":8099" || cfg.WebPeer != web.IngressPeer || web.IngressPeer != "172.30.32.2" {
		t.Errorf("web %q for peer %q; want :8099 for 172.30.32.2", cfg.Web, cfg.WebPeer)
	}
}
