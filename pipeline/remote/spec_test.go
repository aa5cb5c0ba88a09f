package remote

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for _, c := range []struct {
		spec, broker, user, pass, filter, client, err string
	}{
		{spec: "mqtt://broker:1883/flowiq/frames/#", broker: "tcp://broker:1883", filter: "flowiq/frames/#"},
		{spec: "mqtt://broker/flowiq/frames/3/#", broker: "tcp://broker:1883", filter: "flowiq/frames/3/#"},
		{spec: "mqtts://u:p%40ss@broker:8884/+/wmbus?client_id=dec1", broker: "ssl://broker:8884", user: "u", pass: "p@ss", filter: "+/wmbus", client: "dec1"},
		{spec: "mqtt://[::1]:1883/a", broker: "tcp://[::1]:1883", filter: "a"},
		{spec: "mqtt://broker:1883", err: "no topic filter"},
		{spec: "mqtt://broker:1883/", err: "no topic filter"},
		{spec: "mqtt:///flowiq/#", err: "no broker host"},
		{spec: "mqtt://b/flowiq/#/x", err: "# must be a whole level and the last"},
		{spec: "mqtt://b/flowiq/a+", err: "+ must be a whole level"},
		{spec: "mqtt://u:secret@b:99999999/x", err: "port 99999999"},
	} {
		s, err := ParseSpec(c.spec)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.spec, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%s: error shows the password: %v", c.spec, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.spec, err)
			continue
		}
		if s.Broker != c.broker || s.User != c.user || s.Password != c.pass || s.Filter != c.filter {
			t.Errorf("%s: %+v", c.spec, s)
		}
		if c.client != "" && s.ClientID != c.client {
			t.Errorf("%s: client ID %q", c.spec, s.ClientID)
		}
		again, _ := ParseSpec(c.spec)
		if s.ClientID == "" || again.ClientID != s.ClientID || len(s.ClientID) > 64 {
			t.Errorf("%s: client ID %q, then %q: want one fixed ID", c.spec, s.ClientID, again.ClientID)
		}
		if src := (&Source{Spec: s}); strings.Contains(src.Name(), c.pass) && c.pass != "" {
			t.Errorf("name %q shows the password", src.Name())
		}
	}
}

func TestShardAndTopics(t *testing.T) {
	if Shard("74493770") != "0" || Shard("1234567A") != "a" || Shard("") != "_" {
		t.Error("shard is the last digit of the meter ID")
	}
	if FrameTopic("flowiq", Shard("74493773"), "pit") != "flowiq/frames/3/pit" || FramesFilter("flowiq", "3") != "flowiq/frames/3/#" {
		t.Error("topics")
	}
	for _, bad := range []string{"", "a/b", "a+", "#", strings.Repeat("x", 65)} {
		if CheckName("receiver name", bad) == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	for _, bad := range []string{"", "/a", "a/", "a/+"} {
		if CheckBase(bad) == nil {
			t.Errorf("base %q accepted", bad)
		}
	}
}

// The buffer keeps the newest frames; frames refused by a broken
// connection go back to its front, in order.
func TestPublisherBuffer(t *testing.T) {
	p, err := NewPublisher(PublisherConfig{Broker: "tcp://127.0.0.1:1", Name: "r", Buffer: 5, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		p.Send("t", []byte(fmt.Sprint(i)))
	}
	if p.Waiting() != 5 || p.Dropped() != 3 {
		t.Fatalf("waiting %d dropped %d", p.Waiting(), p.Dropped())
	}
	out := p.take(nil)
	if got := payloads(out); got != "34567" {
		t.Fatalf("took %s", got)
	}
	p.Send("t", []byte("8"))
	p.putBack(out[:2])
	if got := payloads(p.take(nil)); got != "348" {
		t.Fatalf("after putting back: %s", got)
	}
}

func payloads(ms []message) string {
	s := ""
	for _, m := range ms {
		s += string(m.payload)
	}
	return s
}
