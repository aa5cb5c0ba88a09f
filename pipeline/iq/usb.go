package iq

import (
	"fmt"
	"strconv"
	"strings"
)

// usbDevice is what librtlsdr reports about a connected dongle.
type usbDevice struct {
	Index                 int
	Manufacturer, Product string
	Serial                string
}

// selectDevice resolves "rtlsdr://X" to a device index the way rtl_sdr's -d
// does: X is an index when it is a plain number below the device count
// (without leading zeros, so the common serial "00000001" stays a serial),
// otherwise a serial. Empty X means index 0.
func selectDevice(sel string, devs []usbDevice) (int, error) {
	name := "rtlsdr://" + sel
	if len(devs) == 0 {
		return 0, fmt.Errorf("%s: %w (is it plugged in? in a container or VM, is USB passthrough on and the device mapped into it?)", name, ErrNoDevice)
	}
	if sel == "" {
		return 0, nil
	}
	if allDigits(sel) && (sel == "0" || sel[0] != '0') {
		if i, err := strconv.Atoi(sel); err == nil && i < len(devs) {
			return i, nil
		}
	}
	for _, d := range devs {
		if d.Serial == sel {
			return d.Index, nil
		}
	}
	if allDigits(sel) && (sel == "0" || sel[0] != '0') {
		return 0, fmt.Errorf("%s: %w: no device %s and no serial %q; present: %s", name, ErrSerialUnknown, sel, sel, listDevices(devs))
	}
	return 0, fmt.Errorf("%s: %w %q; present: %s", name, ErrSerialUnknown, sel, listDevices(devs))
}

func listDevices(devs []usbDevice) string {
	parts := make([]string, len(devs))
	for i, d := range devs {
		serial := d.Serial
		if serial == "" {
			serial = "(none)"
		}
		parts[i] = fmt.Sprintf("#%d serial %s (%s %s)", d.Index, serial, d.Manufacturer, d.Product)
	}
	return strings.Join(parts, ", ")
}

// nearestGain picks the supported tuner gain closest to want (tenths of dB);
// librtlsdr rejects or rounds others differently per tuner.
func nearestGain(want int, gains []int) (int, bool) {
	if len(gains) == 0 {
		return 0, false
	}
	best := gains[0]
	for _, g := range gains[1:] {
		if abs(g-want) < abs(best-want) {
			best = g
		}
	}
	return best, true
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// usbOpenHint explains the librtlsdr open failures a user can fix. gortlsdr
// maps libusb codes to fixed messages, so the message is all there is.
func usbOpenHint(msg string) (hint string, sentinel error) {
	switch {
	case strings.Contains(msg, "busy"):
		return "another program (rtl_tcp, rtl_433, rtl_sdr, a second gateway) is using it, or the kernel DVB driver " +
			"holds it (usb_claim_interface error -6): stop that program, or run `sudo rmmod dvb_usb_rtl28xxu` and blacklist it", ErrDeviceBusy
	case strings.Contains(msg, "access denied"):
		return "no permission to open the USB device: install the rtl-sdr udev rules or add the user to the plugdev group", nil
	case strings.Contains(msg, "no such device"):
		return "the dongle disappeared (unplugged or reset)", ErrNoDevice
	case strings.Contains(msg, "input/output"):
		return "the kernel DVB driver may hold it (try `sudo rmmod dvb_usb_rtl28xxu`), or replug the dongle", nil
	}
	return "", nil
}
