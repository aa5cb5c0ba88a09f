// Package web serves the gateway's status page and its JSON API: what the
// gateway hears (my meters, nearby meters, the radio, charts, problems),
// live over server-sent events, and adding a meter with its key to the
// meter list. The page is plain HTML, CSS and JavaScript embedded in the
// binary; every URL is relative, so it works under Home Assistant's
// ingress path prefix as well as at the root of its own port.
//
// API (paths relative to the page):
//
//	GET  api/status   the whole status (JSON)
//	GET  api/charts   per listed meter: total volume (7 days), signal per telegram
//	GET  api/events   server-sent events: "status" with the status JSON on change
//	POST api/meters   {"id","name","key"} → 200 {"id","added"} or 400 {"errors":{field: text}}
//
// No key ever leaves the gateway: the status knows only whether a meter
// has one, and a key posted is written to the meter list and forgotten.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"
)

//go:embed assets
var assets embed.FS

// Model is what the page shows; the gateway's Status implements it.
type Model interface {
	AppendStatus(b []byte) ([]byte, error)
	AppendCharts(b []byte) ([]byte, error)
	// Changes counts updates; the event stream sends the status again when
	// it moved.
	Changes() uint64
}

// Config is a web server's configuration.
type Config struct {
	// Addr to listen on. A bare port or ":port" binds the loopback
	// interface only; another host is the user's explicit choice.
	Addr string
	// Peer, when set, is the only client address allowed (Home
	// Assistant's ingress proxy, 172.30.32.2); everyone else gets 403.
	Peer  string
	Model Model
	// MetersPath is the meter list file that POST api/meters edits; ""
	// refuses adding meters (there is no file to keep them in).
	MetersPath string
	// Reload applies the edited meter list at once (the watcher's Reload);
	// nil leaves it to the file watcher.
	Reload func() error
	Log    *slog.Logger
	// EventEvery is how often the event stream checks for changes
	// (default 1 s).
	EventEvery time.Duration
}

// IngressPeer is the address of the Supervisor's ingress proxy, the only
// client Home Assistant's documentation allows an ingress add-on to serve.
const IngressPeer = "172.30.32.2"

// Server is the status page's HTTP server.
type Server struct {
	cfg Config
	ln  net.Listener
	mux *http.ServeMux
}

// New checks cfg and binds the address, so a busy port is reported before
// the gateway starts.
func New(cfg Config) (*Server, error) {
	if cfg.Model == nil {
		return nil, errors.New("web: no model")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.EventEvery <= 0 {
		cfg.EventEvery = time.Second
	}
	addr, err := ListenAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s := &Server{cfg: cfg, ln: ln}
	s.routes()
	return s, nil
}

// ListenAddr turns --web's value into a listen address: a bare port or
// ":port" means the loopback interface.
func ListenAddr(a string) (string, error) {
	if a == "" {
		return "", errors.New("web: no address")
	}
	if _, _, err := net.SplitHostPort(a); err != nil {
		a = ":" + a // a bare port
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || port == "" {
		return "", fmt.Errorf("web address %q: want [HOST]:PORT or PORT", a)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Name implements the gateway's Output.
func (s *Server) Name() string { return "web " + s.ln.Addr().String() }

// Handler is the server's handler (the page, its assets and the API).
func (s *Server) Handler() http.Handler { return s.guard(s.mux) }

// Run serves until ctx ends; open event streams are ended with it.
func (s *Server) Run(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelDebug),
	}
	host, _, _ := net.SplitHostPort(s.ln.Addr().String())
	if ip := net.ParseIP(host); s.cfg.Peer == "" && (ip == nil || !ip.IsLoopback()) {
		s.cfg.Log.Warn("the status page is reachable from the network: anyone who can reach it can see your meters and add meters", "addr", s.ln.Addr().String())
	}
	s.cfg.Log.Info("status page", "url", "http://"+s.ln.Addr().String()+"/")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("web: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	s.mux.Handle("GET /", files)
	s.mux.HandleFunc("GET /api/status", s.status)
	s.mux.HandleFunc("GET /api/charts", s.charts)
	s.mux.HandleFunc("GET /api/events", s.events)
	s.mux.HandleFunc("POST /api/meters", s.addMeter)
}

// guard applies the access rules to every request: the ingress peer check,
// protection of changing requests against cross-site use, and headers that
// keep the page from loading anything from elsewhere.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Peer != "" {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil || host != s.cfg.Peer {
				http.Error(w, "forbidden: only Home Assistant's ingress may connect", http.StatusForbidden)
				return
			}
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Home Assistant shows the page in a frame of its own origin.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if msg := crossSite(r); msg != "" {
				writeJSON(w, http.StatusForbidden, map[string]any{"error": msg})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// RequestHeader must accompany every changing request. A page of another
// site cannot send a custom header without a CORS preflight, which this
// server never grants, so a request carrying it came from a page of this
// origin (or from a program the user runs).
const RequestHeader = "X-Flowiq-Request"

// crossSite says why a changing request is refused, or "".
func crossSite(r *http.Request) string {
	if r.Header.Get(RequestHeader) == "" {
		return "missing " + RequestHeader + " header (changing requests must come from the status page)"
	}
	// Browsers say where a request comes from; only this origin may change
	// anything (Home Assistant's ingress serves page and API from one origin).
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return "cross-site request refused"
	}
	return ""
}
