package vw1871

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Prefix marks an --input that is a VW1871 stream.
const Prefix = "vw1871:"

// Kind is where a stream comes from.
type Kind uint8

const (
	File   Kind = iota // a captured byte stream
	Stdin              // "-"
	TCP                // a serial-to-TCP bridge
	Serial             // a wired device
	BLE                // Bluetooth LE through BlueZ
)

func (k Kind) String() string {
	return [...]string{"file", "stdin", "tcp", "serial", "ble"}[k]
}

// DefaultBaud is the serial rate used unless the spec names one: the
// factory rate of the transparent-UART modules such devices are built on.
const DefaultBaud = 115200

// DefaultDevice is the name prefix the device advertises (VW1871-<serial>).
const DefaultDevice = "VW1871"

// DataUUIDs are the characteristics the device notifies its stream on,
// in order of preference: Microchip's transparent-UART TX characteristic,
// then the one some firmware uses.
var DataUUIDs = []string{"49535343-1e4d-4bd9-ba61-23c647249616", "0000ff01-0000-1000-8000-00805f9b34fb"}

// Spec is a parsed input spec.
type Spec struct {
	Kind    Kind
	Path    string // File: the file; Serial: the device node
	Addr    string // TCP: host:port
	Baud    int    // Serial
	Device  string // BLE: address or name prefix
	Adapter string // BLE: "hci0"; empty: the first adapter
}

// ErrSpec marks a spec that cannot be parsed.
var ErrSpec = errors.New("bad vw1871 input")

// ParseSpec parses what follows "vw1871:" (the prefix itself is accepted
// too):
//
//	FILE                       a captured byte stream
//	-                          the stream on stdin
//	tcp://host:port            a serial-to-TCP bridge
//	serial:/dev/ttyUSB0[@BAUD] a wired device (default 115200 baud)
//	ble://NAME-OR-ADDRESS[?adapter=hci1]
//	                           Bluetooth LE through BlueZ; an empty name
//	                           means the first device named VW1871…
func ParseSpec(spec string) (Spec, error) {
	s := strings.TrimPrefix(spec, Prefix)
	bad := func(format string, a ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("%w %q: %s", ErrSpec, Prefix+s, fmt.Sprintf(format, a...))
	}
	switch {
	case s == "":
		return bad("say where the stream comes from: vw1871:FILE, vw1871:-, vw1871:tcp://host:port, vw1871:serial:/dev/ttyUSB0 or vw1871:ble://VW1871")
	case s == "-":
		return Spec{Kind: Stdin}, nil
	case strings.HasPrefix(s, "tcp://"):
		addr := strings.TrimPrefix(s, "tcp://")
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			return bad("want tcp://host:port")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("port %q is not a number from 1 to 65535", port)
		}
		return Spec{Kind: TCP, Addr: addr}, nil
	case strings.HasPrefix(s, "serial:"):
		path := strings.TrimPrefix(s, "serial:")
		baud := DefaultBaud
		if i := strings.LastIndexByte(path, '@'); i >= 0 {
			n, err := strconv.Atoi(path[i+1:])
			if err != nil {
				return bad("the baud rate after @ must be a number, like serial:/dev/ttyUSB0@115200")
			}
			if _, ok := baudRates[n]; !ok {
				return bad("unsupported baud rate %d (supported: %s)", n, supportedBauds())
			}
			path, baud = path[:i], n
		}
		if path == "" {
			return bad("give the device, like serial:/dev/ttyUSB0")
		}
		return Spec{Kind: Serial, Path: path, Baud: baud}, nil
	case strings.HasPrefix(s, "ble://"):
		rest := strings.TrimPrefix(s, "ble://")
		sp := Spec{Kind: BLE, Device: rest}
		if i := strings.IndexByte(rest, '?'); i >= 0 {
			q, err := url.ParseQuery(rest[i+1:])
			if err != nil {
				return bad("%v", err)
			}
			for k := range q {
				if k != "adapter" {
					return bad("unknown option %q (known: adapter)", k)
				}
			}
			sp.Device, sp.Adapter = rest[:i], q.Get("adapter")
			if !strings.HasPrefix(sp.Adapter, "hci") {
				return bad("adapter %q: want a name like hci0", sp.Adapter)
			}
		}
		if sp.Device == "" {
			sp.Device = DefaultDevice
		}
		if strings.ContainsAny(sp.Device, "/ ") {
			return bad("want ble://NAME-PREFIX or ble://AA:BB:CC:DD:EE:FF")
		}
		return sp, nil
	case strings.Contains(s, "://"):
		return bad("unknown scheme; vw1871 reads FILE, -, tcp://, serial: and ble://")
	default:
		return Spec{Kind: File, Path: s}, nil
	}
}

// String gives the spec back in its canonical form, "vw1871:…".
func (s Spec) String() string {
	switch s.Kind {
	case Stdin:
		return Prefix + "-"
	case TCP:
		return Prefix + "tcp://" + s.Addr
	case Serial:
		return fmt.Sprintf("%sserial:%s@%d", Prefix, s.Path, s.Baud)
	case BLE:
		out := Prefix + "ble://" + s.Device
		if s.Adapter != "" {
			out += "?adapter=" + s.Adapter
		}
		return out
	default:
		return Prefix + s.Path
	}
}

// Live reports whether the input is a device or a connection (reopened
// when it fails) rather than a recording that ends.
func (s Spec) Live() bool { return s.Kind == TCP || s.Kind == Serial || s.Kind == BLE }
