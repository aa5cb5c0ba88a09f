// Package bluez receives the notifications of a Bluetooth LE GATT
// characteristic through BlueZ over D-Bus: it finds the device by name
// prefix or address (scanning when BlueZ does not know it yet), connects,
// enables notifications and hands over every notified value in order
// until the device goes away. It says which part is missing when it
// cannot: the D-Bus, BlueZ, an adapter, the device, the characteristic.
package bluez

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// D-Bus names of BlueZ (doc/org.bluez.*.rst in BlueZ).
const (
	Service          = "org.bluez"
	IfaceAdapter     = "org.bluez.Adapter1"
	IfaceDevice      = "org.bluez.Device1"
	IfaceChar        = "org.bluez.GattCharacteristic1"
	IfaceProps       = "org.freedesktop.DBus.Properties"
	IfaceObjects     = "org.freedesktop.DBus.ObjectManager"
	errNotPermitted  = "org.bluez.Error.NotPermitted"
	errAlreadyConned = "org.bluez.Error.AlreadyConnected"
)

// What can be wrong. Errors returned by Stream wrap one of them.
var (
	ErrNoBus            = errors.New("cannot reach the D-Bus")
	ErrNoBlueZ          = errors.New("BlueZ (org.bluez) is not on the D-Bus")
	ErrNoAdapter        = errors.New("no usable Bluetooth adapter")
	ErrNoDevice         = errors.New("no such Bluetooth device in range")
	ErrUnreachable      = errors.New("the device does not accept a connection")
	ErrInUse            = errors.New("another program holds the device's notifications")
	ErrNoCharacteristic = errors.New("the device has no data characteristic")
	ErrGone             = errors.New("the device went away")
)

// Config says what to connect to.
type Config struct {
	// BusAddress is the D-Bus to use ("unix:path=…"); empty means the
	// system bus (which honours DBUS_SYSTEM_BUS_ADDRESS).
	BusAddress string
	// Adapter is the adapter's name ("hci0"); empty takes the first one.
	Adapter string
	// Device is an address (AA:BB:CC:DD:EE:FF) or a name prefix, matched
	// without regard to case.
	Device string
	// UUIDs are the characteristic UUIDs to subscribe to, the first one
	// found wins.
	UUIDs []string
	// DiscoveryTimeout bounds the scan for a device BlueZ does not know
	// (default 30 s); ConnectTimeout bounds Connect and the service
	// resolution after it (default 30 s).
	DiscoveryTimeout time.Duration
	ConnectTimeout   time.Duration
	// Logger gets progress lines at debug level; nil: slog.Default().
	Logger *slog.Logger
}

// Info describes a subscription that is up.
type Info struct {
	Adapter        string // "hci0"
	Address        string
	Name           string
	Characteristic string // its UUID
	Connected      bool   // whether Stream connected the device itself
}

// IsAddress reports whether s is a Bluetooth address (six hex pairs
// separated by colons).
func IsAddress(s string) bool {
	if len(s) != 17 {
		return false
	}
	for i := 0; i < 17; i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
		} else if !strings.ContainsRune("0123456789abcdefABCDEF", rune(c)) {
			return false
		}
	}
	return true
}

type objects = map[dbus.ObjectPath]map[string]map[string]dbus.Variant

// Stream connects to the device and calls chunk with every value the
// characteristic notifies, in order, from one goroutine; the slice is the
// callee's. ready is called once notifications are on. Stream returns
// ctx.Err() when ctx ends (after stopping notifications and, if it
// connected the device, disconnecting it), or an error wrapping one of
// the Err values above.
func Stream(ctx context.Context, cfg Config, ready func(Info), chunk func([]byte)) error {
	if cfg.DiscoveryTimeout <= 0 {
		cfg.DiscoveryTimeout = 30 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	q := newQueue(4096)
	var conn *dbus.Conn
	var err error
	// No dbus.WithContext: the connection must outlive ctx for the calls
	// that clean up (StopNotify, Disconnect).
	opts := []dbus.ConnOption{dbus.WithSignalHandler(q)}
	if cfg.BusAddress != "" {
		conn, err = dbus.Connect(cfg.BusAddress, opts...)
	} else {
		conn, err = dbus.ConnectSystemBus(opts...)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		bus := "the system bus"
		if cfg.BusAddress != "" {
			bus = cfg.BusAddress
		}
		return fmt.Errorf("%w at %s (in the Home Assistant add-on: host_dbus: true): %v", ErrNoBus, bus, err)
	}
	defer conn.Close()
	s := &session{ctx: ctx, cfg: cfg, conn: conn, q: q, log: cfg.Logger}
	err = s.run(ready, chunk)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

type session struct {
	ctx  context.Context
	cfg  Config
	conn *dbus.Conn
	q    *queue
	log  *slog.Logger

	adapter dbus.ObjectPath
	device  dbus.ObjectPath
	char    dbus.ObjectPath
}

func (s *session) call(ctx context.Context, path dbus.ObjectPath, method string, args ...any) *dbus.Call {
	return s.conn.Object(Service, path).CallWithContext(ctx, method, 0, args...)
}

func (s *session) managedObjects() (objects, error) {
	var objs objects
	if err := s.call(s.ctx, "/", IfaceObjects+".GetManagedObjects").Store(&objs); err != nil {
		return nil, fmt.Errorf("%w: listing its objects: %v", ErrNoBlueZ, err)
	}
	return objs, nil
}

func (s *session) run(ready func(Info), chunk func([]byte)) error {
	var has bool
	if err := s.conn.BusObject().CallWithContext(s.ctx, "org.freedesktop.DBus.NameHasOwner", 0, Service).Store(&has); err != nil {
		return fmt.Errorf("%w: %v", ErrNoBus, err)
	}
	if !has {
		return fmt.Errorf("%w: is bluetoothd running? (in the Home Assistant add-on: host_dbus: true)", ErrNoBlueZ)
	}
	// Listen before looking, so nothing happens unseen in between.
	if err := s.conn.AddMatchSignalContext(s.ctx, dbus.WithMatchSender(Service)); err != nil {
		return fmt.Errorf("%w: subscribing to BlueZ's signals: %v", ErrNoBus, err)
	}
	if err := s.conn.AddMatchSignalContext(s.ctx, dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, Service)); err != nil {
		return fmt.Errorf("%w: %v", ErrNoBus, err)
	}
	objs, err := s.managedObjects()
	if err != nil {
		return err
	}
	if err := s.pickAdapter(objs); err != nil {
		return err
	}
	dev, err := s.findDevice(objs)
	if err != nil {
		return err
	}
	info := Info{Adapter: pathBase(s.adapter), Address: str(dev["Address"]), Name: str(dev["Name"])}
	if connected, _ := dev["Connected"].Value().(bool); !connected {
		if err := s.connect(); err != nil {
			return err
		}
		info.Connected = true
		defer s.disconnect()
	}
	if resolved, _ := dev["ServicesResolved"].Value().(bool); !resolved || info.Connected {
		if err := s.waitResolved(); err != nil {
			return err
		}
	}
	if objs, err = s.managedObjects(); err != nil {
		return err
	}
	if info.Characteristic, err = s.findChar(objs); err != nil {
		return err
	}
	if err := s.call(s.ctx, s.char, IfaceChar+".StartNotify").Err; err != nil {
		var de dbus.Error
		if errors.As(err, &de) && de.Name == errNotPermitted {
			return fmt.Errorf("%w (%v): stop the other program (a bridge script?) that reads %s", ErrInUse, err, s.cfg.Device)
		}
		return fmt.Errorf("enabling notifications on %s: %w", s.char, err)
	}
	defer s.stopNotify()
	ready(info)
	return s.pump(chunk)
}

func (s *session) pickAdapter(objs objects) error {
	var all []dbus.ObjectPath
	for p, ifs := range objs {
		if _, ok := ifs[IfaceAdapter]; ok {
			all = append(all, p)
		}
	}
	slices.Sort(all)
	if len(all) == 0 {
		return fmt.Errorf("%w: BlueZ has no adapter (is one plugged in, and not blocked by rfkill?)", ErrNoAdapter)
	}
	s.adapter = all[0]
	if s.cfg.Adapter != "" {
		s.adapter = ""
		for _, p := range all {
			if pathBase(p) == s.cfg.Adapter {
				s.adapter = p
			}
		}
		if s.adapter == "" {
			names := make([]string, len(all))
			for i, p := range all {
				names[i] = pathBase(p)
			}
			return fmt.Errorf("%w: no adapter %s; BlueZ has %s", ErrNoAdapter, s.cfg.Adapter, strings.Join(names, ", "))
		}
	}
	if powered, _ := objs[s.adapter][IfaceAdapter]["Powered"].Value().(bool); !powered {
		err := s.call(s.ctx, s.adapter, IfaceProps+".Set", IfaceAdapter, "Powered", dbus.MakeVariant(true)).Err
		if err != nil {
			return fmt.Errorf("%w: %s is powered off and could not be switched on: %v", ErrNoAdapter, pathBase(s.adapter), err)
		}
		s.log.Info("bluetooth adapter switched on", "adapter", pathBase(s.adapter))
	}
	return nil
}

// matches reports whether a device's properties are the wanted device on
// our adapter.
func (s *session) matches(props map[string]dbus.Variant) bool {
	if a, _ := props["Adapter"].Value().(dbus.ObjectPath); a != s.adapter {
		return false
	}
	want := s.cfg.Device
	if IsAddress(want) {
		return strings.EqualFold(str(props["Address"]), want)
	}
	for _, k := range []string{"Name", "Alias"} {
		if n := str(props[k]); len(n) >= len(want) && strings.EqualFold(n[:len(want)], want) {
			return true
		}
	}
	return false
}

func (s *session) findDevice(objs objects) (map[string]dbus.Variant, error) {
	known := map[dbus.ObjectPath]map[string]dbus.Variant{}
	for p, ifs := range objs {
		if d, ok := ifs[IfaceDevice]; ok {
			known[p] = d
			if s.matches(d) {
				s.device = p
				return d, nil
			}
		}
	}
	// Not known yet: scan.
	s.log.Debug("bluetooth: scanning", "adapter", pathBase(s.adapter), "device", s.cfg.Device)
	_ = s.call(s.ctx, s.adapter, IfaceAdapter+".SetDiscoveryFilter", map[string]dbus.Variant{"Transport": dbus.MakeVariant("le")}).Err
	if err := s.call(s.ctx, s.adapter, IfaceAdapter+".StartDiscovery").Err; err != nil {
		return nil, fmt.Errorf("%w: %s cannot scan: %v", ErrNoAdapter, pathBase(s.adapter), err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 2*time.Second)
		defer cancel()
		_ = s.call(ctx, s.adapter, IfaceAdapter+".StopDiscovery").Err
	}()
	deadline := time.NewTimer(s.cfg.DiscoveryTimeout)
	defer deadline.Stop()
	for {
		sig, err := s.next(deadline.C)
		if err != nil {
			return nil, err
		}
		if sig == nil {
			var seen []string
			for _, d := range known {
				if a, _ := d["Adapter"].Value().(dbus.ObjectPath); a == s.adapter {
					seen = append(seen, fmt.Sprintf("%s %q", str(d["Address"]), str(d["Name"])))
				}
			}
			slices.Sort(seen)
			return nil, fmt.Errorf("%w: nothing named %s* or with that address answered a %v scan on %s (devices seen: %s); is it powered and near, or connected to another phone or computer? (it then stops advertising)",
				ErrNoDevice, s.cfg.Device, s.cfg.DiscoveryTimeout, pathBase(s.adapter), orNone(seen))
		}
		switch {
		case sig.Name == IfaceObjects+".InterfacesAdded" && len(sig.Body) == 2:
			p, _ := sig.Body[0].(dbus.ObjectPath)
			ifs, _ := sig.Body[1].(map[string]map[string]dbus.Variant)
			if d, ok := ifs[IfaceDevice]; ok {
				known[p] = d
			}
		case sig.Name == IfaceProps+".PropertiesChanged" && len(sig.Body) >= 2:
			if d, ok := known[sig.Path]; ok && sig.Body[0] == IfaceDevice {
				changed, _ := sig.Body[1].(map[string]dbus.Variant)
				for k, v := range changed {
					d[k] = v
				}
			}
		default:
			continue
		}
		for p, d := range known {
			if s.matches(d) {
				s.device = p
				return d, nil
			}
		}
	}
}

func (s *session) connect() error {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ConnectTimeout)
	defer cancel()
	err := s.call(ctx, s.device, IfaceDevice+".Connect").Err
	var de dbus.Error
	switch {
	case err == nil, errors.As(err, &de) && de.Name == errAlreadyConned:
		return nil
	case s.ctx.Err() != nil:
		return s.ctx.Err()
	case ctx.Err() != nil:
		err = fmt.Errorf("no answer within %v", s.cfg.ConnectTimeout)
	}
	return fmt.Errorf("%w: %s: %v; it takes one connection at a time: is it connected to another phone or computer? Else it may be out of range or its battery low",
		ErrUnreachable, s.device, err)
}

func (s *session) disconnect() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 2*time.Second)
	defer cancel()
	_ = s.call(ctx, s.device, IfaceDevice+".Disconnect").Err
}

func (s *session) stopNotify() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 2*time.Second)
	defer cancel()
	_ = s.call(ctx, s.char, IfaceChar+".StopNotify").Err
}

func (s *session) waitResolved() error {
	// The property may have turned true before our look at it.
	var v dbus.Variant
	if err := s.call(s.ctx, s.device, IfaceProps+".Get", IfaceDevice, "ServicesResolved").Store(&v); err == nil {
		if b, _ := v.Value().(bool); b {
			return nil
		}
	}
	deadline := time.NewTimer(s.cfg.ConnectTimeout)
	defer deadline.Stop()
	for {
		sig, err := s.next(deadline.C)
		if err != nil {
			return err
		}
		if sig == nil {
			return fmt.Errorf("%w: connected, but its services were not resolved within %v", ErrUnreachable, s.cfg.ConnectTimeout)
		}
		if err := s.gone(sig); err != nil {
			return err
		}
		if sig.Path == s.device && sig.Name == IfaceProps+".PropertiesChanged" && len(sig.Body) >= 2 && sig.Body[0] == IfaceDevice {
			changed, _ := sig.Body[1].(map[string]dbus.Variant)
			if b, _ := changed["ServicesResolved"].Value().(bool); b {
				return nil
			}
		}
	}
}

func (s *session) findChar(objs objects) (string, error) {
	var seen []string
	for _, want := range s.cfg.UUIDs {
		var paths []dbus.ObjectPath
		for p, ifs := range objs {
			c, ok := ifs[IfaceChar]
			if !ok || !strings.HasPrefix(string(p), string(s.device)+"/") {
				continue
			}
			if strings.EqualFold(str(c["UUID"]), want) {
				paths = append(paths, p)
			}
		}
		if len(paths) > 0 {
			slices.Sort(paths)
			s.char = paths[0]
			return strings.ToLower(want), nil
		}
	}
	for p, ifs := range objs {
		if c, ok := ifs[IfaceChar]; ok && strings.HasPrefix(string(p), string(s.device)+"/") {
			seen = append(seen, str(c["UUID"]))
		}
	}
	slices.Sort(seen)
	return "", fmt.Errorf("%w: none of %s among its characteristics (%s): is it a VW1871?", ErrNoCharacteristic,
		strings.Join(s.cfg.UUIDs, ", "), orNone(seen))
}

// gone returns an error when sig says the device, its adapter or BlueZ
// went away.
func (s *session) gone(sig *dbus.Signal) error {
	switch sig.Name {
	case IfaceProps + ".PropertiesChanged":
		if sig.Path == s.device && len(sig.Body) >= 2 && sig.Body[0] == IfaceDevice {
			changed, _ := sig.Body[1].(map[string]dbus.Variant)
			if c, ok := changed["Connected"].Value().(bool); ok && !c {
				return fmt.Errorf("%w: %s disconnected", ErrGone, s.cfg.Device)
			}
		}
	case IfaceObjects + ".InterfacesRemoved":
		if len(sig.Body) >= 1 {
			p, _ := sig.Body[0].(dbus.ObjectPath)
			switch {
			case p == s.adapter:
				return fmt.Errorf("%w: adapter %s was removed", ErrGone, pathBase(s.adapter))
			case p == s.device || (s.char != "" && p == s.char):
				return fmt.Errorf("%w: BlueZ removed %s", ErrGone, s.cfg.Device)
			}
		}
	case "org.freedesktop.DBus.NameOwnerChanged":
		if len(sig.Body) == 3 && sig.Body[0] == Service && sig.Body[2] == "" {
			return fmt.Errorf("%w: BlueZ stopped", ErrNoBlueZ)
		}
	}
	return nil
}

// pump hands over notified values until the device goes away.
func (s *session) pump(chunk func([]byte)) error {
	for {
		sig, err := s.next(nil)
		if err != nil {
			return err
		}
		if err := s.gone(sig); err != nil {
			return err
		}
		if sig.Path != s.char || sig.Name != IfaceProps+".PropertiesChanged" || len(sig.Body) < 2 || sig.Body[0] != IfaceChar {
			continue
		}
		changed, _ := sig.Body[1].(map[string]dbus.Variant)
		if v, ok := changed["Value"].Value().([]byte); ok && len(v) > 0 {
			chunk(v)
		}
	}
}

// next returns the next signal, nil when timeout fires, or an error when
// ctx ends or the bus connection is lost.
func (s *session) next(timeout <-chan time.Time) (*dbus.Signal, error) {
	for {
		if sig, ok, closed := s.q.pop(); ok {
			return sig, nil
		} else if closed {
			return nil, fmt.Errorf("%w: the connection to it was lost", ErrNoBus)
		}
		if n := s.q.overflowed(); n > 0 {
			s.log.Warn("bluetooth: notifications arrived faster than they were read; some were lost", "lost", n)
		}
		select {
		case <-s.ctx.Done():
			return nil, s.ctx.Err()
		case <-timeout:
			return nil, nil
		case <-s.q.wake:
		}
	}
}

func pathBase(p dbus.ObjectPath) string {
	s := string(p)
	return s[strings.LastIndexByte(s, '/')+1:]
}

func str(v dbus.Variant) string {
	s, _ := v.Value().(string)
	return s
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
