package web_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/gateway"
	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
	"github.com/flowiq-gateway/flowiq-gateway/settings"
)

// BenchmarkStatusUnderLoad runs a whole gateway with the status page while
// 330 meters are heard at 100 frames/s (hex lines: a real encrypted
// telegram with the ID and access number replaced), all of them in the
// meter list, and times GET api/status over HTTP. It reports the heap the
// gateway grew by from the first round of all 330 meters to the end.
func BenchmarkStatusUnderLoad(b *testing.B) {
	const meters, rate = 330, 100
	plain, _, err := wmbus.Detect(mustDecode(b, testvectors.Frames(b, testvectors.Seed74493770, 35)[0]))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	var list strings.Builder
	frames := make([][]byte, meters)
	for i := range frames {
		f := append([]byte(nil), plain...)
		id := fmt.Sprintf("2%07d", i)
		fmt.Fprintf(&list, "[[meter]]\nid = %q\n", id)
		for j := range 4 {
			f[4+j] = (id[6-2*j]-'0')<<4 | (id[7-2*j] - '0')
		}
		frames[i] = f
	}
	metersPath := filepath.Join(dir, "meters.toml")
	if err := os.WriteFile(metersPath, []byte(list.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	pr, pw := io.Pipe()
	cfg := settings.Config{Inputs: []string{"hex:-"}, MetersPath: metersPath, StateDir: filepath.Join(dir, "state"), Web: "127.0.0.1:0"}
	g, err := gateway.New(cfg, gateway.Options{Stdin: pr, Stdout: io.Discard, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); pw.Close(); <-done }()

	sent := 0
	send := func() {
		f := frames[sent%meters]
		f[12] = byte(sent / meters) // the access number counts up per round
		if _, err := io.WriteString(pw, hex.EncodeToString(f)+"\n"); err != nil {
			b.Error(err)
		}
		sent++
	}
	for range meters {
		send()
	}
	for g.Status().Snapshot().Radio.Frames < meters {
		time.Sleep(10 * time.Millisecond)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		t := time.NewTicker(time.Second / rate)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				send()
			}
		}
	}()
	url := "http://" + g.WebAddr() + "/api/status"
	var size int64
	for b.Loop() {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		size, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	close(stop)
	<-fed
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(size)/1024, "KiB/status")
	b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/(1<<20), "MiB-grown")
	b.ReportMetric(float64(sent), "frames")
}

func mustDecode(tb testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
