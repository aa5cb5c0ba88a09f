// Package bluetest runs a private dbus-daemon and a test double of BlueZ
// on it: an ObjectManager at /, adapters with StartDiscovery and
// StopDiscovery, devices with Connect and Disconnect, and a GATT
// characteristic with StartNotify, StopNotify and Value notifications as
// PropertiesChanged signals, as bluetoothd exports them. It is test
// support only.
package bluetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// StartBus starts a dbus-daemon of its own on a socket in a temporary
// directory and returns its address; it is stopped when the test ends.
// A missing dbus-daemon fails the test (make deps installs it).
func StartBus(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		tb.Fatalf("dbus-daemon is needed for this test (apt-get install dbus, or make deps): %v", err)
	}
	// A short directory of our own: the socket path must fit in 108 bytes
	// and a D-Bus address cannot hold every character a test name can.
	dir, err := os.MkdirTemp("", "bus")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, busConfig, filepath.Join(dir, "bus")), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file="+conf, "--print-address", "--nofork", "--nopidfile")
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var stderr bytes.Buffer // a warning about fd limits is usual
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting dbus-daemon: %v", err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if tb.Failed() && stderr.Len() > 0 {
			tb.Logf("dbus-daemon said: %s", stderr.String())
		}
	})
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			cmd.Wait()
			tb.Fatalf("dbus-daemon printed no address: %s", stderr.String())
		}
		return a
	case <-time.After(10 * time.Second):
		tb.Fatal("dbus-daemon did not start within 10 s")
	}
	return ""
}

// Names of the objects the double exports.
const (
	AdapterPath = dbus.ObjectPath("/org/bluez/hci0")
	serviceName = "service0010"
	charName    = "char0011"
)

// Device is how a device behaves.
type Device struct {
	Name    string
	Address string
	UUID    string // the characteristic its service has
	// RefuseConnect makes Connect fail the way BlueZ does when the
	// device does not answer (connected to another central).
	RefuseConnect bool
	// NotifyAcquired makes StartNotify fail the way BlueZ does when
	// another program holds the notifications through AcquireNotify.
	NotifyAcquired bool
}

// BlueZ is the double. Its methods are safe for concurrent use.
type BlueZ struct {
	conn *dbus.Conn

	mu      sync.Mutex
	objs    map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	devs    map[dbus.ObjectPath]*Device
	hidden  map[dbus.ObjectPath]*Device // found only by a scan
	notify  chan dbus.ObjectPath        // StartNotify calls
	scans   int
	connect int
}

// New connects to the bus at addr, takes the name org.bluez and exports
// an object manager with no adapter.
func New(tb testing.TB, addr string) *BlueZ {
	tb.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		tb.Fatalf("connecting to %s: %v", addr, err)
	}
	tb.Cleanup(func() { conn.Close() })
	b := &BlueZ{
		conn:   conn,
		objs:   map[dbus.ObjectPath]map[string]map[string]dbus.Variant{},
		devs:   map[dbus.ObjectPath]*Device{},
		hidden: map[dbus.ObjectPath]*Device{},
		notify: make(chan dbus.ObjectPath, 16),
	}
	if err := conn.Export(objectManager{b}, "/", "org.freedesktop.DBus.ObjectManager"); err != nil {
		tb.Fatal(err)
	}
	reply, err := conn.RequestName("org.bluez", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		tb.Fatalf("taking the name org.bluez: %v (%v)", err, reply)
	}
	return b
}

// AddAdapter exports /org/bluez/hci0.
func (b *BlueZ) AddAdapter() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conn.Export(adapter{b}, AdapterPath, "org.bluez.Adapter1")
	b.add(AdapterPath, "org.bluez.Adapter1", map[string]dbus.Variant{
		"Address": dbus.MakeVariant("00:1A:7D:DA:71:13"), "Powered": dbus.MakeVariant(true),
		"Discovering": dbus.MakeVariant(false),
	})
}

// DevicePath is where a device of that address lives.
func DevicePath(address string) dbus.ObjectPath {
	return AdapterPath + "/dev_" + dbus.ObjectPath(strings.ReplaceAll(address, ":", "_"))
}

// CharPath is where the data characteristic of that device lives.
func CharPath(address string) dbus.ObjectPath {
	return DevicePath(address) + "/" + serviceName + "/" + charName
}

// AddDevice makes the device known to BlueZ (as after an earlier scan),
// not connected.
func (b *BlueZ) AddDevice(d Device) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addDevice(d)
}

// HideDevice makes the device appear only when a client scans.
func (b *BlueZ) HideDevice(d Device) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hidden[DevicePath(d.Address)] = &d
}

func (b *BlueZ) addDevice(d Device) {
	p := DevicePath(d.Address)
	b.devs[p] = &d
	b.conn.Export(device{b, p}, p, "org.bluez.Device1")
	b.add(p, "org.bluez.Device1", map[string]dbus.Variant{
		"Address": dbus.MakeVariant(d.Address), "Name": dbus.MakeVariant(d.Name), "Alias": dbus.MakeVariant(d.Name),
		"Adapter": dbus.MakeVariant(AdapterPath), "Connected": dbus.MakeVariant(false),
		"ServicesResolved": dbus.MakeVariant(false), "RSSI": dbus.MakeVariant(int16(-60)),
	})
}

// add exports an interface's properties and announces it.
func (b *BlueZ) add(p dbus.ObjectPath, iface string, props map[string]dbus.Variant) {
	if b.objs[p] == nil {
		b.objs[p] = map[string]map[string]dbus.Variant{}
		b.conn.Export(properties{b, p}, p, "org.freedesktop.DBus.Properties")
	}
	b.objs[p][iface] = props
	b.conn.Emit("/", "org.freedesktop.DBus.ObjectManager.InterfacesAdded", p, map[string]map[string]dbus.Variant{iface: props})
}

// remove drops an object and announces it.
func (b *BlueZ) remove(p dbus.ObjectPath) {
	ifs, ok := b.objs[p]
	if !ok {
		return
	}
	var names []string
	for iface := range ifs {
		names = append(names, iface)
		b.conn.Export(nil, p, iface)
	}
	b.conn.Export(nil, p, "org.freedesktop.DBus.Properties")
	delete(b.objs, p)
	b.conn.Emit("/", "org.freedesktop.DBus.ObjectManager.InterfacesRemoved", p, names)
}

// set changes properties and signals the change.
func (b *BlueZ) set(p dbus.ObjectPath, iface string, changed map[string]dbus.Variant) {
	if props := b.objs[p][iface]; props != nil {
		for k, v := range changed {
			props[k] = v
		}
	}
	b.conn.Emit(p, "org.freedesktop.DBus.Properties.PropertiesChanged", iface, changed, []string{})
}

// Notify sends value as a notification of the device's characteristic.
func (b *BlueZ) Notify(address string, value []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.set(CharPath(address), "org.bluez.GattCharacteristic1", map[string]dbus.Variant{"Value": dbus.MakeVariant(value)})
}

// Subscribed waits for a StartNotify and returns the characteristic's path.
func (b *BlueZ) Subscribed(ctx context.Context) (dbus.ObjectPath, error) {
	select {
	case p := <-b.notify:
		return p, nil
	case <-ctx.Done():
		return "", fmt.Errorf("no StartNotify: %w", ctx.Err())
	}
}

// DropConnection disconnects the device as a device out of range does:
// Connected false, its services gone.
func (b *BlueZ) DropConnection(address string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.disconnect(DevicePath(address))
}

// Vanish removes the device from BlueZ (as when BlueZ forgets a device
// that went away); it comes back when a client scans.
func (b *BlueZ) Vanish(address string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := DevicePath(address)
	d := b.devs[p]
	if d == nil {
		return
	}
	b.remove(CharPath(address))
	b.remove(DevicePath(address) + "/" + serviceName)
	b.remove(p)
	b.conn.Export(nil, p, "org.bluez.Device1")
	delete(b.devs, p)
	b.hidden[p] = d
}

// Counts returns how many scans and connects clients started.
func (b *BlueZ) Counts() (scans, connects int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.scans, b.connect
}

func (b *BlueZ) disconnect(p dbus.ObjectPath) {
	d := b.devs[p]
	if d == nil {
		return
	}
	b.set(p, "org.bluez.Device1", map[string]dbus.Variant{"Connected": dbus.MakeVariant(false), "ServicesResolved": dbus.MakeVariant(false)})
	b.remove(CharPath(d.Address))
	b.remove(p + "/" + serviceName)
}

func bluezErr(name, msg string) *dbus.Error {
	return &dbus.Error{Name: "org.bluez.Error." + name, Body: []any{msg}}
}

type objectManager struct{ b *BlueZ }

func (o objectManager) GetManagedObjects() (map[dbus.ObjectPath]map[string]map[string]dbus.Variant, *dbus.Error) {
	o.b.mu.Lock()
	defer o.b.mu.Unlock()
	out := map[dbus.ObjectPath]map[string]map[string]dbus.Variant{}
	for p, ifs := range o.b.objs {
		out[p] = map[string]map[string]dbus.Variant{}
		for iface, props := range ifs {
			c := map[string]dbus.Variant{}
			for k, v := range props {
				c[k] = v
			}
			out[p][iface] = c
		}
	}
	return out, nil
}

type properties struct {
	b *BlueZ
	p dbus.ObjectPath
}

func (o properties) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	o.b.mu.Lock()
	defer o.b.mu.Unlock()
	v, ok := o.b.objs[o.p][iface][name]
	if !ok {
		return dbus.Variant{}, &dbus.Error{Name: "org.freedesktop.DBus.Error.InvalidArgs", Body: []any{"no such property " + name}}
	}
	return v, nil
}

func (o properties) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	o.b.mu.Lock()
	defer o.b.mu.Unlock()
	out := map[string]dbus.Variant{}
	for k, v := range o.b.objs[o.p][iface] {
		out[k] = v
	}
	return out, nil
}

func (o properties) Set(iface, name string, v dbus.Variant) *dbus.Error {
	o.b.mu.Lock()
	defer o.b.mu.Unlock()
	if _, ok := o.b.objs[o.p][iface][name]; !ok {
		return &dbus.Error{Name: "org.freedesktop.DBus.Error.InvalidArgs", Body: []any{"no such property " + name}}
	}
	o.b.set(o.p, iface, map[string]dbus.Variant{name: v})
	return nil
}

type adapter struct{ b *BlueZ }

func (a adapter) SetDiscoveryFilter(map[string]dbus.Variant) *dbus.Error { return nil }

func (a adapter) StartDiscovery() *dbus.Error {
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	a.b.scans++
	a.b.set(AdapterPath, "org.bluez.Adapter1", map[string]dbus.Variant{"Discovering": dbus.MakeVariant(true)})
	for p, d := range a.b.hidden {
		delete(a.b.hidden, p)
		a.b.addDevice(*d)
	}
	return nil
}

func (a adapter) StopDiscovery() *dbus.Error {
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	a.b.set(AdapterPath, "org.bluez.Adapter1", map[string]dbus.Variant{"Discovering": dbus.MakeVariant(false)})
	return nil
}

type device struct {
	b *BlueZ
	p dbus.ObjectPath
}

func (o device) Connect() *dbus.Error {
	b := o.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.connect++
	d := b.devs[o.p]
	if d == nil {
		return &dbus.Error{Name: "org.freedesktop.DBus.Error.UnknownObject", Body: []any{"no such device"}}
	}
	if d.RefuseConnect {
		return bluezErr("Failed", "le-connection-abort-by-local")
	}
	b.set(o.p, "org.bluez.Device1", map[string]dbus.Variant{"Connected": dbus.MakeVariant(true)})
	svc := o.p + "/" + serviceName
	b.add(svc, "org.bluez.GattService1", map[string]dbus.Variant{
		"UUID": dbus.MakeVariant("49535343-fe7d-4ae5-8fa9-9fafd205e455"), "Device": dbus.MakeVariant(o.p), "Primary": dbus.MakeVariant(true),
	})
	ch := CharPath(d.Address)
	b.conn.Export(characteristic{b, ch, d}, ch, "org.bluez.GattCharacteristic1")
	b.add(ch, "org.bluez.GattCharacteristic1", map[string]dbus.Variant{
		"UUID": dbus.MakeVariant(d.UUID), "Service": dbus.MakeVariant(svc), "Notifying": dbus.MakeVariant(false),
		"Value": dbus.MakeVariant([]byte{}), "Flags": dbus.MakeVariant([]string{"notify", "write-without-response"}),
	})
	b.set(o.p, "org.bluez.Device1", map[string]dbus.Variant{"ServicesResolved": dbus.MakeVariant(true)})
	return nil
}

func (o device) Disconnect() *dbus.Error {
	o.b.mu.Lock()
	defer o.b.mu.Unlock()
	o.b.disconnect(o.p)
	return nil
}

type characteristic struct {
	b *BlueZ
	p dbus.ObjectPath
	d *Device
}

func (c characteristic) StartNotify() *dbus.Error {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.d.NotifyAcquired {
		return bluezErr("NotPermitted", "Notify acquired")
	}
	c.b.set(c.p, "org.bluez.GattCharacteristic1", map[string]dbus.Variant{"Notifying": dbus.MakeVariant(true)})
	select {
	case c.b.notify <- c.p:
	default:
	}
	return nil
}

func (c characteristic) StopNotify() *dbus.Error {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if _, ok := c.b.objs[c.p]; ok {
		c.b.set(c.p, "org.bluez.GattCharacteristic1", map[string]dbus.Variant{"Notifying": dbus.MakeVariant(false)})
	}
	return nil
}

// Connected reports the device's Connected property.
func (b *BlueZ) Connected(address string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, _ := b.objs[DevicePath(address)]["org.bluez.Device1"]["Connected"].Value().(bool)
	return c
}
