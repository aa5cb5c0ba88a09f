package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/flowiq-gateway/flowiq-gateway/gateway"
	"github.com/flowiq-gateway/flowiq-gateway/internal/syncbuf"
	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
	"github.com/flowiq-gateway/flowiq-gateway/settings"
	"github.com/flowiq-gateway/flowiq-gateway/web"
)

var docsScreenshots = flag.Bool("docs-screenshots", false, "write the page's screenshots to docs/ (make screenshots)")

// The bundled recording: six real telegrams of 74493770, demodulated here,
// so the page has measured signal levels to show.
const recording = "../testdata/flowiq2101_74493770_868.95M_1M6.cu8"

// A plaintext frame of a meter of another maker (ITW, water, TPL 0x7A
// without encryption), CRC-less: the nearby list shows every maker.
const foreignFrame = "14449726667788990107" + "7A100000000C1378563412"

const ingressPrefix = "/api/hassio_ingress/t0k3n/"

// gatewayUnderTest runs a real gateway (hex lines on a pipe and the
// bundled recording as inputs, a meter list file, a state directory and
// the status page) behind a proxy that serves it under an ingress-like path
// prefix and records every response body.
type gatewayUnderTest struct {
	g         *gateway.Gateway
	feed      io.WriteCloser
	base      string // the page's URL through the proxy
	responses *syncbuf.Buffer
	meters    string
}

const meterList = `# Meter list of the status page test.
# This comment must survive adding a meter from the page.

[[meter]]
id = "74493770"
name = "Kitchen"   # the meter under the sink
key = "%s"
`

func startGateway(t *testing.T, key744 string) *gatewayUnderTest {
	t.Helper()
	dir := t.TempDir()
	metersPath := filepath.Join(dir, "meters.toml")
	if err := os.WriteFile(metersPath, fmt.Appendf(nil, meterList, key744), 0o600); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	logs := &syncbuf.Buffer{}
	cfg := settings.Config{Inputs: []string{recording, "hex:-"}, MetersPath: metersPath,
		StateDir: filepath.Join(dir, "state"), Web: "127.0.0.1:0", Version: "test"}
	g, err := gateway.New(cfg, gateway.Options{Stdin: pr, Stdout: io.Discard, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		pw.Close()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})

	u := &url.URL{Scheme: "http", Host: g.WebAddr()}
	rec := &syncbuf.Buffer{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.URL.Path = "/" + strings.TrimPrefix(r.In.URL.Path, ingressPrefix)
		},
		ModifyResponse: func(resp *http.Response) error {
			resp.Body = teeBody{resp.Body, rec}
			return nil
		},
	}
	mux := http.NewServeMux()
	mux.Handle(ingressPrefix, proxy)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return &gatewayUnderTest{g: g, feed: pw, base: ts.URL + ingressPrefix, responses: rec, meters: metersPath}
}

type teeBody struct {
	io.ReadCloser
	w io.Writer
}

func (b teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.w.Write(p[:n])
	return n, err
}

func (gw *gatewayUnderTest) send(t *testing.T, frames ...string) {
	t.Helper()
	for _, f := range frames {
		if _, err := io.WriteString(gw.feed, f+"\n"); err != nil {
			t.Fatal(err)
		}
	}
}

// status fetches api/status through the proxy.
func (gw *gatewayUnderTest) status(t *testing.T) gateway.StatusDoc {
	t.Helper()
	resp, err := http.Get(gw.base + "api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d gateway.StatusDoc
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

func (gw *gatewayUnderTest) waitStatus(t *testing.T, what string, ok func(gateway.StatusDoc) bool) gateway.StatusDoc {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := gw.status(t)
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("api/status never showed %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func myMeter(d gateway.StatusDoc, id string) *gateway.MyMeterDoc {
	for i := range d.Meters {
		if d.Meters[i].ID == id {
			return &d.Meters[i]
		}
	}
	return nil
}

// browser starts headless Chromium (Debian's chromium, installed by make
// deps) with a private profile.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run make deps (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-component-update", true), chromedp.WindowSize(1200, 900))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithBrowserOption(chromedp.WithConsolef(t.Logf)))
	t.Cleanup(func() { cancelB(); cancelA() })
	// The first action starts the browser for the life of ctx (a step's
	// timeout must not end it).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// waitJS waits until a JavaScript expression is true in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("the page never showed %s: %v\npage text:\n%s", what, err, text)
	}
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// clearField empties an input, as a user selecting all and deleting.
func clearField(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`(() => { document.querySelector(`+strconv.Quote(sel)+`).value = ""; return true; })()`)(ctx, tg)
		return err
	})
}

// click clicks an element in the page's own script: the tables are
// rebuilt on every update, so a node found a moment earlier may be gone.
func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		ok, err := chromedp.Evaluate[bool](`(() => { const e = document.querySelector(`+strconv.Quote(sel)+`); if (!e) return false; e.click(); return true; })()`)(ctx, tg)
		if err == nil && !ok {
			html, _ := chromedp.Evaluate[string](`document.querySelector("main").outerHTML`)(ctx, tg)
			err = fmt.Errorf("no %s in the page:\n%s", sel, html)
		}
		return err
	})
}

func vectorKey(t *testing.T, prefix string) string {
	t.Helper()
	for _, v := range testvectors.Load(t) {
		if strings.HasPrefix(v.Name, prefix) && v.Key != nil {
			return *v.Key
		}
	}
	t.Fatalf("no key for %s", prefix)
	return ""
}

func vectorFrame(t *testing.T, name string) string {
	t.Helper()
	for _, v := range testvectors.Load(t) {
		if v.Name == name {
			return v.Frame
		}
	}
	t.Fatalf("no vector %s", name)
	return ""
}

// frameID is the meter ID in a hex frame's link-layer header.
func frameID(t *testing.T, frame string) string {
	b, err := hex.DecodeString(frame)
	if err != nil || len(b) < 8 {
		t.Fatalf("frame %s: %v", frame, err)
	}
	return wmbus.ID(uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24).String()
}

func TestStatusPageInChromium(t *testing.T) {
	key744 := vectorKey(t, testvectors.Seed74493770)
	keyNew := vectorKey(t, "synthetic-12345678-")
	gw := startGateway(t, key744)
	ctx := browser(t)

	// The recording's six telegrams come first, with measured levels.
	gw.waitStatus(t, "the recording's telegrams", func(d gateway.StatusDoc) bool {
		m := myMeter(d, "74493770")
		return m != nil && m.Telegrams == 6 && m.LevelDBFS != nil
	})
	do(t, ctx, navigate(gw.base))
	waitJS(t, ctx, "the live connection", `document.getElementById("live").textContent === "live"`)
	waitJS(t, ctx, "meter 74493770", `!!document.querySelector('article[data-meter="74493770"]')`)

	// Other meters: plaintext Kamstrup meters, encrypted ones without a key,
	// a meter of another maker, and 12345678 whose key is added below.
	others := []string{foreignFrame, vectorFrame(t, "synthetic-12345678-compact-acc10")}
	for i := 1; i <= 11; i++ {
		if i == 10 {
			continue // 76348799 encrypted again: one of its telegrams is enough
		}
		others = append(others, vectorFrame(t, fmt.Sprintf("wmbusmeters-%d", i)))
	}
	waitJS(t, ctx, "no row for 12345678 before its telegram", `!document.querySelector('#nearby-table tr[data-id="12345678"]')`)
	gw.send(t, others...)
	gw.send(t, testvectors.Frames(t, testvectors.Seed74493770, 35)...)

	// Every meter heard appears, as the telegrams arrive.
	for _, f := range others {
		id := frameID(t, f)
		waitJS(t, ctx, "nearby meter "+id, `!!document.querySelector('#nearby-table tr[data-id="`+id+`"]')`)
	}
	// The recording's 6 telegrams are among the 35: heard twice, counted once.
	d := gw.waitStatus(t, "35 telegrams of 74493770", func(d gateway.StatusDoc) bool {
		m := myMeter(d, "74493770")
		return m != nil && m.Telegrams == 35
	})
	m := myMeter(d, "74493770")
	var r struct {
		Total  float64  `json:"total_m3"`
		Alarms []string `json:"alarms"`
	}
	if err := json.Unmarshal(m.Reading, &r); err != nil {
		t.Fatal(err)
	}
	if r.Total != 8.915 || len(r.Alarms) != 1 || r.Alarms[0] != "DRY" || m.Reception1h == nil || m.State != gateway.StateReceiving {
		t.Errorf("api/status 74493770: total %v alarms %v reception %v state %q; want 8.915, [DRY], a quality, receiving",
			r.Total, r.Alarms, m.Reception1h, m.State)
	}
	card := `document.querySelector('article[data-meter="74493770"]')`
	waitJS(t, ctx, "8.915 m³", card+`.querySelector(".total").textContent.startsWith("8.915")`)
	waitJS(t, ctx, "the DRY alarm", card+`.querySelector(".alarm").textContent === "DRY"`)
	waitJS(t, ctx, "the reception quality", card+`.querySelector(".reception").textContent.includes("% (1 h)")`)
	waitJS(t, ctx, "35 telegrams", card+`.textContent.includes("35")`)

	// Nearby: "not in my list" hides 74493770; Add for 12345678.
	do(t, ctx, click(`button[data-tab="nearby"]`), click(`#not-mine`))
	waitJS(t, ctx, "the filter", `!document.querySelector('#nearby-table tr[data-id="74493770"]')`)
	do(t, ctx, click(`#not-mine`), click(`button[data-add="12345678"]`),
		chromedp.SendKeys(`#add-name`, "Garden tap"), chromedp.SendKeys(`#add-key`, "0123"), click(`#add-form button[type="submit"]`))
	waitJS(t, ctx, "the key's error", `document.getElementById("err-key").textContent.includes("32 hex digits")`)
	grouped := keyNew[:8] + " " + keyNew[8:16] + " " + keyNew[16:24] + " " + keyNew[24:]
	do(t, ctx, clearField(`#add-key`), chromedp.SendKeys(`#add-key`, grouped), click(`#add-form button[type="submit"]`))
	waitJS(t, ctx, "the meter saved", `!document.getElementById("add-done").hidden`)
	if v, _ := chromedp.Run(ctx, chromedp.Value(`#add-key`)); v != "" {
		t.Errorf("the key field still holds %d characters after saving", len(v))
	}
	file, err := os.ReadFile(gw.meters)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# This comment must survive", "# the meter under the sink", `id = "12345678"`, `name = "Garden tap"`} {
		if !bytes.Contains(file, []byte(want)) {
			t.Errorf("meter list after adding lacks %q:\n%s", want, file)
		}
	}

	// The next telegram of 12345678 decodes.
	gw.waitStatus(t, "12345678 in the list", func(d gateway.StatusDoc) bool { m := myMeter(d, "12345678"); return m != nil && m.HasKey })
	gw.send(t, vectorFrame(t, "synthetic-12345678-full-acc11"))
	waitJS(t, ctx, "123.456 m³ of 12345678", `(document.querySelector('article[data-meter="12345678"] .total') || {}).textContent === "123.456 m³"`)

	checkAPIErrors(t, gw, keyNew)
	screenshots(t, ctx)
	fetchEverything(t, gw)

	// No key anywhere: not in the page (inputs included), not in any
	// response the gateway gave.
	dom, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML + [...document.querySelectorAll("input")].map(i => i.value).join("|")`))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{key744, keyNew} {
		for where, text := range map[string]string{"the page's DOM": dom, "the responses": gw.responses.String()} {
			if leak := findKey(text, k); leak != "" {
				t.Errorf("%s contain a key (%s)", where, leak)
			}
		}
	}
	if len(gw.responses.String()) < 10000 {
		t.Errorf("only %d bytes of responses recorded; the key check saw too little", len(gw.responses.String()))
	}
}

// findKey says in which spelling key occurs in text, or "".
func findKey(text, key string) string {
	raw, _ := hex.DecodeString(key)
	flat := strings.NewReplacer(" ", "", "\t", "").Replace(strings.ToLower(text))
	for name, s := range map[string]string{
		"hex": strings.ToLower(key), "base64": strings.ToLower(base64.StdEncoding.EncodeToString(raw)),
		"half of the hex": strings.ToLower(key[:16]), "other half": strings.ToLower(key[16:]),
	} {
		if strings.Contains(flat, s) {
			return name
		}
	}
	return ""
}

// checkAPIErrors: clear errors per field, and no change without the
// header that only the page sends.
func checkAPIErrors(t *testing.T, gw *gatewayUnderTest, key string) {
	t.Helper()
	post := func(body string, header bool) (int, map[string]any) {
		req, _ := http.NewRequest("POST", gw.base+"api/meters", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if header {
			req.Header.Set(web.RequestHeader, "1")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	bad := key[:31] + "G"
	code, out := post(`{"id":"1234567","name":"x","key":"`+bad+`"}`, true)
	errs, _ := out["errors"].(map[string]any)
	if code != 400 || !strings.Contains(fmt.Sprint(errs["id"]), "8 digits") || !strings.Contains(fmt.Sprint(errs["key"]), "not a hex digit at position 32") {
		t.Errorf("bad ID and key: %d %v", code, out)
	}
	if code, _ := post(`{"id":"12345679","name":"x","key":"`+key+`"}`, false); code != 403 {
		t.Errorf("POST without %s: %d, want 403", web.RequestHeader, code)
	}
}

// fetchEverything asks for every page part and API once more, so the key
// check covers them all (the event stream's first event included).
func fetchEverything(t *testing.T, gw *gatewayUnderTest) {
	t.Helper()
	for _, p := range []string{"", "index.html", "app.js", "style.css", "api/status", "api/charts"} {
		resp, err := http.Get(gw.base + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %s", p, resp.Status)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", gw.base+"api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 0, 64<<10)
	for !bytes.Contains(buf, []byte("\n\n")) {
		n, err := resp.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
	}
	if !bytes.HasPrefix(buf, []byte("event: status\ndata: {")) {
		t.Errorf("event stream starts %q", buf[:min(len(buf), 40)])
	}
}

// screenshots takes the page at desktop size (light) and phone size
// (dark), checks they are real pictures, and with -docs-screenshots writes
// them to docs/.
func screenshots(t *testing.T, ctx context.Context) {
	t.Helper()
	shots := map[string][]byte{}
	shoot := func(name string) {
		b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil || img.Bounds().Dx() < 300 {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		shots[name] = b
	}
	dark := func(on bool) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			v := "light"
			if on {
				v = "dark"
			}
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}}})
			return err
		})
	}
	do(t, ctx, chromedp.EmulateViewport(1200, 1000), dark(false), click(`button[data-tab="mine"]`))
	shoot("web-status.png")
	do(t, ctx, click(`button[data-tab="nearby"]`))
	shoot("web-nearby.png")
	do(t, ctx, click(`button[data-tab="radio"]`))
	shoot("web-radio.png")
	do(t, ctx, click(`button[data-tab="charts"]`))
	waitJS(t, ctx, "the charts", `document.querySelectorAll("#charts-body svg.chart").length >= 4`)
	shoot("web-charts.png")
	do(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), dark(true), click(`button[data-tab="mine"]`))
	shoot("web-phone-dark.png")
	if !*docsScreenshots {
		return
	}
	for name, b := range shots {
		if err := os.WriteFile(filepath.Join("..", "docs", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func navigate(url string) chromedp.Action[chromedp.Void] { return chromedp.Navigate(url) }
