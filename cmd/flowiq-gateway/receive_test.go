package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/brokertest"
	"github.com/flowiq-gateway/flowiq-gateway/internal/syncbuf"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/remote"
)

// TestMain lets a test run this very binary as flowiq-gateway, so that a
// process can be killed.
func TestMain(m *testing.M) {
	if os.Getenv("FLOWIQ_GATEWAY_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// A receiver process publishes each frame as a JSON message on
// flowiq/frames/<shard>/<name> and says it is online; killed, its last will
// says offline.
func TestReceiverKilledGoesOffline(t *testing.T) {
	b := brokertest.Start(t, "")
	frames := brokertest.Subscribe(t, b.URL("tcp"), "flowiq/frames/#")
	cmd := exec.Command(os.Args[0], "receive", "--mqtt", b.URL("tcp"), "--name", "pit", "--input", "hex:-")
	cmd.Env = append(os.Environ(), "FLOWIQ_GATEWAY_AS_MAIN=1")
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("receiver stderr:\n%s", stderr)
		}
	})
	status := remote.StatusTopic("flowiq", "pit")
	brokertest.WaitRetained(t, b.URL("tcp"), "receiver online", func(m map[string]brokertest.Message) bool {
		return string(m[status].Payload) == remote.Online
	}, status)
	if _, err := io.WriteString(in, seedFrames(t)[0]+"\n"); err != nil {
		t.Fatal(err)
	}
	topic := remote.FrameTopic("flowiq", "0", "pit")
	brokertest.WaitFor(t, 10*time.Second, "the frame on "+topic, func() bool { return len(frames.All(topic)) == 1 })
	var msg map[string]any
	if err := json.Unmarshal(frames.All(topic)[0].Payload, &msg); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"receiver": "pit", "id": "74493770", "manufacturer": "KAM",
		"access_number": 180.0, "frame_format": "B", "encrypted": true,
		"frame": "23442d2c703749741f168d20b4231b02216f07ddd3efa318553ddfee5134db3985c5db84"} {
		if msg[k] != want {
			t.Errorf("message %s = %v, want %v", k, msg[k], want)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitRetained(t, b.URL("tcp"), "receiver offline (last will)", func(m map[string]brokertest.Message) bool {
		return string(m[status].Payload) == remote.Offline
	}, status)
}

// A receiver with a radio input (the bundled recording) publishes each
// frame the demodulator found, with its level, SNR and carrier offset, and
// exits once the broker has them all.
func TestReceiveRecording(t *testing.T) {
	b := brokertest.Start(t, "")
	frames := brokertest.Subscribe(t, b.URL("tcp"), "flowiq/frames/#")
	var stderr syncbuf.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	code := execute(context.Background(), e, []string{"receive", "--mqtt", b.URL("tcp"), "--name", "recording",
		"--input", addonRecording})
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, &stderr)
	}
	topic := remote.FrameTopic("flowiq", "0", "recording")
	brokertest.WaitFor(t, 10*time.Second, "6 frames", func() bool { return len(frames.All(topic)) >= 6 })
	frames.Sync()
	msgs := frames.All(topic)
	if len(msgs) != 6 {
		t.Fatalf("%d frames published, want the recording's 6", len(msgs))
	}
	for _, m := range msgs {
		var fi map[string]any
		if err := json.Unmarshal(m.Payload, &fi); err != nil {
			t.Fatal(err)
		}
		if fi["mode"] != "C1" || fi["frame_format"] != "B" || fi["id"] != "74493770" || fi["level_dbfs"] == nil || fi["snr_db"] == nil || fi["offset_hz"] == nil {
			t.Errorf("message %s", m.Payload)
		}
	}
}
