package remote_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/remote"
)

// A receiver started before its broker keeps what it hears and delivers it
// once the broker is up, then says it is online.
func TestPublisherBrokerLate(t *testing.T) {
	b := brokertest.Prepare(t, "")
	p, err := remote.NewPublisher(remote.PublisherConfig{Broker: fmt.Sprintf("127.0.0.1:%d", b.Port()), Name: "late",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for i := range 5 {
		p.Send(p.Topic(fmt.Sprintf("7449377%d", i)), []byte(fmt.Sprint(i)))
	}
	time.Sleep(300 * time.Millisecond)
	if p.Waiting() != 5 || p.Sent() != 0 {
		t.Fatalf("before the broker: %d waiting, %d sent", p.Waiting(), p.Sent())
	}
	b.Start()
	brokertest.WaitFor(t, 15*time.Second, "5 frames acknowledged", func() bool { return p.Sent() == 5 && p.Waiting() == 0 })
	brokertest.WaitRetained(t, b.URL("tcp"), "online status", func(m map[string]brokertest.Message) bool {
		return string(m[remote.StatusTopic("flowiq", "late")].Payload) == remote.Online
	}, remote.StatusTopic("flowiq", "late"))
}
