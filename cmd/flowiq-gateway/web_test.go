package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
)

// run --web serves the status page on loopback; a telegram heard shows in
// api/status.
func TestRunWeb(t *testing.T) {
	d := startDaemon(t, "run", "--input", "hex:-", "--web", "127.0.0.1:0")
	d.send(testvectors.Frames(t, testvectors.Seed74493770, 35)[0])
	urlRE := regexp.MustCompile(`msg="status page" url=(http://127\.0\.0\.1:[0-9]+/)`)
	var url string
	deadline := time.Now().Add(10 * time.Second)
	for url == "" {
		if m := urlRE.FindStringSubmatch(d.stderr.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no status page URL in the log:\n%s", d.stderr)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for {
		resp, err := http.Get(url + "api/status")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Nearby []struct{ ID string } `json:"nearby"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Nearby) == 1 && st.Nearby[0].ID == "74493770" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("api/status nearby %v, want 74493770", st.Nearby)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
