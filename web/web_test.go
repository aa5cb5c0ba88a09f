package web_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/gateway"
	"github.com/flowiq-gateway/flowiq-gateway/web"
)

func TestListenAddr(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"8080", "127.0.0.1:8080", ""},
		{":8080", "127.0.0.1:8080", ""},
		{"0.0.0.0:8080", "0.0.0.0:8080", ""},
		{"[::1]:80", "[::1]:80", ""},
		{"localhost:9", "localhost:9", ""},
		{"", "", "no address"},
		{"host:", "", "want [HOST]:PORT or PORT"},
	}
	for _, tc := range tests {
		got, err := web.ListenAddr(tc.in)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// server is a status page over a real, empty Status and a meter list file.
func server(t testing.TB, peer string) (http.Handler, string) {
	t.Helper()
	st, err := gateway.NewStatus(gateway.StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "meters.toml")
	if err := os.WriteFile(path, []byte("# my meters\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := web.New(web.Config{Addr: "127.0.0.1:0", Peer: peer, Model: st, MetersPath: path, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s.Handler(), path
}

const goodKey = "000102030405060708090A0B0C0D0E0F"

func TestAccessRules(t *testing.T) {
	h, _ := server(t, web.IngressPeer)
	hOpen, path := server(t, "")
	body := `{"id":"12345678","name":"Garden","key":"` + goodKey + `"}`
	tests := []struct {
		name    string
		h       http.Handler
		method  string
		path    string
		peer    string
		headers map[string]string
		code    int
	}{
		{"ingress proxy reads", h, "GET", "/api/status", web.IngressPeer + ":41000", nil, 200},
		{"anyone else is refused", h, "GET", "/api/status", "172.30.32.1:41000", nil, 403},
		{"even the page", h, "GET", "/", "10.0.0.5:41000", nil, 403},
		{"standalone page", hOpen, "GET", "/", "127.0.0.1:5000", nil, 200},
		{"POST without the header", hOpen, "POST", "/api/meters", "127.0.0.1:5000",
			map[string]string{"Content-Type": "application/json"}, 403},
		{"POST from another site", hOpen, "POST", "/api/meters", "127.0.0.1:5000",
			map[string]string{"Content-Type": "application/json", web.RequestHeader: "1", "Sec-Fetch-Site": "cross-site"}, 403},
		{"POST as a form", hOpen, "POST", "/api/meters", "127.0.0.1:5000",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded", web.RequestHeader: "1"}, 415},
		{"POST from the page", hOpen, "POST", "/api/meters", "127.0.0.1:5000",
			map[string]string{"Content-Type": "application/json", web.RequestHeader: "1", "Sec-Fetch-Site": "same-origin"}, 200},
		{"ingress POST from the proxy", h, "POST", "/api/meters", web.IngressPeer + ":41000",
			map[string]string{"Content-Type": "application/json", web.RequestHeader: "1", "Sec-Fetch-Site": "same-origin"}, 200},
		{"no DELETE", hOpen, "DELETE", "/api/meters", "127.0.0.1:5000", map[string]string{web.RequestHeader: "1"}, 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(body))
			r.RemoteAddr = tc.peer
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			tc.h.ServeHTTP(w, r)
			if w.Code != tc.code {
				t.Errorf("%s %s from %s: %d %s, want %d", tc.method, tc.path, tc.peer, w.Code, w.Body, tc.code)
			}
			if strings.Contains(strings.ToUpper(w.Body.String()), goodKey) {
				t.Errorf("the response holds the key: %s", w.Body)
			}
			if csp := w.Header().Get("Content-Security-Policy"); w.Code != 403 && !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
		})
	}
	if b, _ := os.ReadFile(path); !strings.HasPrefix(string(b), "# my meters\n") || !strings.Contains(string(b), `id = "12345678"`) {
		t.Errorf("meter list after the page's POST:\n%s", b)
	}
}

func TestAddMeterErrors(t *testing.T) {
	h, path := server(t, "")
	tests := []struct {
		name, body string
		code       int
		fields     map[string]string // field → part of its error
	}{
		{"all wrong", `{"id":"74A9","name":"x\u0007","key":"` + goodKey[:30] + `"}`, 400,
			map[string]string{"id": "must be 8 digits", "key": "must be 32 hex digits, found 30", "name": "control character"}},
		{"key with a letter beyond F", `{"id":"12345678","name":"ok","key":"` + goodKey[:31] + `G"}`, 400,
			map[string]string{"key": "not a hex digit at position 32"}},
		{"missing ID", `{"name":"ok","key":"` + goodKey + `"}`, 400, map[string]string{"id": "is missing"}},
		{"long name", `{"id":"12345678","name":"` + strings.Repeat("é", 101) + `","key":"` + goodKey + `"}`, 400,
			map[string]string{"name": "longer than 100"}},
		{"not JSON", `id=12345678`, 400, nil},
		{"unknown field", `{"id":"12345678","key":"` + goodKey + `","keys":"x"}`, 400, nil},
		{"grouped key", `{"id":"12345678","name":"Garden","key":"00010203 04050607 08090A0B 0C0D0E0F"}`, 200, nil},
		{"plain-text meter without key", `{"id":"23813076","name":"Hall"}`, 200, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api/meters", strings.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set(web.RequestHeader, "1")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			b, _ := io.ReadAll(w.Body)
			if w.Code != tc.code {
				t.Fatalf("%d %s, want %d", w.Code, b, tc.code)
			}
			var out struct {
				Errors map[string]string `json:"errors"`
				Error  string            `json:"error"`
			}
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			for f, want := range tc.fields {
				if !strings.Contains(out.Errors[f], want) {
					t.Errorf("error of %s: %q, want %q", f, out.Errors[f], want)
				}
			}
			if len(out.Errors) != len(tc.fields) {
				t.Errorf("errors %v, want only %v", out.Errors, tc.fields)
			}
			if tc.code == 400 && tc.fields == nil && out.Error == "" {
				t.Errorf("no error text: %s", b)
			}
			if strings.Contains(strings.ToUpper(string(b)), goodKey[:16]) {
				t.Errorf("the response echoes the key: %s", b)
			}
		})
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `key = "0001 0203 0405 0607 0809 0A0B 0C0D 0E0F"`) || !strings.Contains(string(b), "id = \"23813076\"\nname = \"Hall\"\n") {
		t.Errorf("meter list:\n%s", b)
	}
}

// FuzzAddMeter: whatever is posted, the server answers with JSON, never
// panics, and never says back what was sent as a key.
func FuzzAddMeter(f *testing.F) {
	f.Add(`{"id":"12345678","name":"Garden","key":"` + goodKey + `"}`)
	f.Add(`{"id":"1234567\u0000","key":"ZZ"}`)
	f.Add(`{"id":12345678}`)
	f.Add(`[]`)
	h, _ := server(f, "")
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/api/meters", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(web.RequestHeader, "1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%d: not JSON: %s", w.Code, w.Body)
		}
		var in struct{ Key string }
		if json.Unmarshal([]byte(body), &in) == nil && len(in.Key) >= 8 && strings.Contains(w.Body.String(), in.Key) {
			t.Fatalf("the key comes back: %s", w.Body)
		}
	})
}
