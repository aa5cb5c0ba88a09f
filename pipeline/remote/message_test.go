package remote_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/testvectors"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/remote"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// message is what a receiver publishes for a frame: its FrameInfo JSON.
func message(t testing.TB, hexFrame string, radio wmbus.Radio, at time.Time) ([]byte, []byte) {
	raw, err := hex.DecodeString(hexFrame)
	if err != nil {
		t.Fatal(err)
	}
	plain, _, err := wmbus.Detect(raw)
	if err != nil {
		t.Fatal(err)
	}
	fi := pipeline.Describe(pipeline.Frame{Data: plain, Stripped: true, Radio: radio, Time: at.UTC()}, nil, wmbus.ErrNoKey)
	b, err := json.Marshal(&fi)
	if err != nil {
		t.Fatal(err)
	}
	return b, plain
}

// Every real telegram, as a receiver's message, reads back as the frame
// and radio data the receiver had.
func TestParseReceiverMessages(t *testing.T) {
	var p remote.Parser
	at := time.Date(2026, 12, 1, 7, 59, 58, 123456789, time.UTC)
	for i, h := range testvectors.Frames(t, testvectors.Seed74493770, 35) {
		radio := wmbus.Radio{Mode: "C1", Format: "B", LevelDBFS: -41.5, SNRdB: 17.5, OffsetHz: -3125, Receiver: "cellar"}
		if i%2 == 1 {
			radio = wmbus.Radio{Mode: "C1", Format: "B", DeviceLevel: 188, Receiver: `pit "north"`}
		}
		msg, plain := message(t, h, radio, at)
		var f remote.Frame
		if err := p.Parse("flowiq/frames/0/x", msg, &f); err != nil {
			t.Fatalf("%s: %v", msg, err)
		}
		if !bytes.Equal(f.Data, plain) || !f.Stripped || f.Radio != radio || !f.Time.Equal(at) {
			t.Fatalf("%s\nread %X %v %+v %v", msg, f.Data, f.Stripped, f.Radio, f.Time)
		}
	}
}

func TestParsePayloads(t *testing.T) {
	seed := testvectors.Frames(t, testvectors.Seed74493770, 35)[0]
	raw, _ := hex.DecodeString(seed)
	plain, _, _ := wmbus.Detect(raw)
	for _, c := range []struct {
		name, topic, payload string
		data                 []byte
		stripped             bool
		radio                wmbus.Radio
		err                  error
	}{
		{"plain hex with CRCs, named by topic", "esp32/wmbus", seed + "\n", raw, false, wmbus.Radio{Receiver: "esp32/wmbus"}, nil},
		{"receiver line", "rtl/out", "C1;1;1;2026-12-01 08:00:00.000;97;148;74493770;0x" + seed, raw, false, wmbus.Radio{Mode: "C1", Receiver: "rtl/out"}, nil},
		{"CRC-less hex (detected later)", "a", hex.EncodeToString(plain), plain, false, wmbus.Radio{Receiver: "a"}, nil},
		{"JSON with unknown nested fields", "flowiq/frames/0/x", `{"extra":{"a":[1,2,{"b":null}]},"frame":"` + hex.EncodeToString(plain) + `","ok":true,"n":-1.5e3}`, plain, true, wmbus.Radio{Receiver: "flowiq/frames/0/x"}, nil},
		{"JSON frames are CRC-less", "t", `{"frame":"` + seed + `","receiver":"r"}`, raw, true, wmbus.Radio{Receiver: "r"}, nil},
		{"not hex", "t", "hello", nil, false, wmbus.Radio{}, remote.ErrMessage},
		{"empty", "t", "", nil, false, wmbus.Radio{}, remote.ErrMessage},
		{"empty object", "t", "{}", nil, false, wmbus.Radio{}, remote.ErrMessage},
		{"object without frame", "t", `{"receiver":"x"}`, nil, false, wmbus.Radio{}, remote.ErrMessage},
		{"frame not hex", "t", `{"frame":"zz"}`, nil, false, wmbus.Radio{}, remote.ErrMessage},
		{"frame odd", "t", `{"frame":"234"}`, nil, false, wmbus.Radio{}, remote.ErrMessage},
		{"frame a number", "t", `{"frame":1234}`, nil, false, wmbus.Radio{}, remote.ErrMessage},
		{"level a string", "t", `{"frame":"00","level_dbfs":"loud"}`, nil, false, wmbus.Radio{}, remote.ErrMessage},
		{"bad time", "t", `{"frame":"00","time":"yesterday"}`, nil, false, wmbus.Radio{}, remote.ErrMessage},
		{"truncated", "t", `{"frame":"00"`, nil, false, wmbus.Radio{}, remote.ErrMessage},
		{"data after the object", "t", `{"frame":"00"} {}`, nil, false, wmbus.Radio{}, remote.ErrMessage},
		{"too long", "t", "{" + strings.Repeat(" ", remote.MaxPayload) + "}", nil, false, wmbus.Radio{}, remote.ErrMessage},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p remote.Parser
			var f remote.Frame
			err := p.Parse(c.topic, []byte(c.payload), &f)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("error %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.Data, c.data) || f.Stripped != c.stripped || f.Radio != c.radio {
				t.Fatalf("read %X stripped %v %+v", f.Data, f.Stripped, f.Radio)
			}
		})
	}
}

func TestParseAllocatesNothing(t *testing.T) {
	msg, _ := message(t, testvectors.Frames(t, testvectors.Seed74493770, 35)[0],
		wmbus.Radio{Mode: "C1", Format: "B", LevelDBFS: -41.5, SNRdB: 17.25, OffsetHz: -3125, Receiver: "cellar"}, time.Now())
	var p remote.Parser
	var f remote.Frame
	parse := func() {
		if err := p.Parse("flowiq/frames/0/cellar", msg, &f); err != nil {
			t.Fatal(err)
		}
	}
	parse()
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	if n := testing.AllocsPerRun(100, parse); n != 0 {
		t.Errorf("%.1f allocations per message", n)
	}
}

func BenchmarkParse(b *testing.B) {
	msg, _ := message(b, testvectors.Frames(b, testvectors.Seed74493770, 35)[0],
		wmbus.Radio{Mode: "C1", Format: "B", LevelDBFS: -41.5, SNRdB: 17.25, OffsetHz: -3125, Receiver: "cellar"}, time.Now())
	var p remote.Parser
	var f remote.Frame
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse("flowiq/frames/0/cellar", msg, &f); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParse: no payload makes the parser panic; what it accepts is a frame,
// and a receiver's time reads back as the time package reads it.
func FuzzParse(f *testing.F) {
	for i, h := range testvectors.Frames(f, testvectors.Seed74493770, 35)[:4] {
		msg, _ := message(f, h, wmbus.Radio{Mode: "C1", Format: "B", LevelDBFS: -41.5 - float64(i), SNRdB: 17, Receiver: "r"}, time.Now())
		f.Add("flowiq/frames/0/r", msg)
		f.Add("esp", []byte(h))
	}
	f.Add("t", []byte(`{"frame":"00","time":"2026-12-01T08:00:00.5+01:00","x":[{},[],"\u00e9"]}`))
	f.Add("t", []byte(`{"frame":"0011","receiver":"a\"b","level_dbfs":-1e2}`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		var p remote.Parser
		var fr remote.Frame
		if err := p.Parse(topic, payload, &fr); err != nil {
			if !errors.Is(err, remote.ErrMessage) {
				t.Fatalf("error %v is not ErrMessage", err)
			}
			return
		}
		if len(fr.Data) == 0 || (fr.Radio.Receiver == "" && topic != "") {
			t.Fatalf("accepted %q as %+v", payload, fr)
		}
		if isJSON := bytes.HasPrefix(bytes.TrimSpace(payload), []byte("{")); fr.Stripped != isJSON {
			t.Fatalf("stripped %v for %q", fr.Stripped, payload)
		}
		if !fr.Time.IsZero() {
			var m struct{ Time string }
			if json.Unmarshal(payload, &m) == nil && m.Time != "" {
				if want, err := time.Parse(time.RFC3339Nano, m.Time); err == nil && !want.Equal(fr.Time) {
					t.Fatalf("time %q read as %v, want %v", m.Time, fr.Time, want)
				}
			}
		}
	})
}
