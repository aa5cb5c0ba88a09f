package vw1871

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
		str  string
		live bool
	}{
		{"capture.bin", Spec{Kind: File, Path: "capture.bin"}, "vw1871:capture.bin", false},
		{"vw1871:/tmp/a b.bin", Spec{Kind: File, Path: "/tmp/a b.bin"}, "vw1871:/tmp/a b.bin", false},
		{"-", Spec{Kind: Stdin}, "vw1871:-", false},
		{"tcp://192.168.1.20:8880", Spec{Kind: TCP, Addr: "192.168.1.20:8880"}, "vw1871:tcp://192.168.1.20:8880", true},
		{"tcp://[::1]:23", Spec{Kind: TCP, Addr: "[::1]:23"}, "vw1871:tcp://[::1]:23", true},
		{"serial:/dev/ttyUSB0", Spec{Kind: Serial, Path: "/dev/ttyUSB0", Baud: 115200}, "vw1871:serial:/dev/ttyUSB0@115200", true},
		{"serial:/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0@9600", Spec{Kind: Serial, Path: "/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0", Baud: 9600},
			"vw1871:serial:/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0@9600", true},
		{"ble://VW1871", Spec{Kind: BLE, Device: "VW1871"}, "vw1871:ble://VW1871", true},
		{"ble://", Spec{Kind: BLE, Device: "VW1871"}, "vw1871:ble://VW1871", true},
		{"ble://C8:2E:18:42:7A:01?adapter=hci1", Spec{Kind: BLE, Device: "C8:2E:18:42:7A:01", Adapter: "hci1"}, "vw1871:ble://C8:2E:18:42:7A:01?adapter=hci1", true},
	} {
		got, err := ParseSpec(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str || got.Live() != tc.live {
			t.Errorf("ParseSpec(%q) = %+v %v, String %q, Live %v; want %+v %q %v", tc.in, got, err, got.String(), got.Live(), tc.want, tc.str, tc.live)
		}
		if again, err := ParseSpec(got.String()); err != nil || again != got {
			t.Errorf("%q does not parse back: %+v %v", got.String(), again, err)
		}
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tc := range []struct{ in, saying string }{
		{"", "say where the stream comes from"},
		{"vw1871:", "say where the stream comes from"},
		{"tcp://host", "want tcp://host:port"},
		{"tcp://:80", "want tcp://host:port"},
		{"tcp://host:http", "is not a number"},
		{"tcp://host:70000", "is not a number from 1 to 65535"},
		{"serial:", "give the device"},
		{"serial:/dev/ttyUSB0@fast", "must be a number"},
		{"serial:/dev/ttyUSB0@12345", "unsupported baud rate 12345 (supported: 1200,"},
		{"ble://VW1871?adapter=usb", `adapter "usb"`},
		{"ble://VW1871?pin=1234", `unknown option "pin"`},
		{"ble://bad name", "want ble://NAME-PREFIX"},
		{"udp://host:1", "unknown scheme"},
	} {
		_, err := ParseSpec(tc.in)
		if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tc.saying) || !strings.Contains(err.Error(), `"vw1871:`) {
			t.Errorf("ParseSpec(%q): %v, want an error naming the spec and saying %q", tc.in, err, tc.saying)
		}
	}
}
