// Package mbus reads M-Bus application data records (EN 13757-3): DIF,
// DIFEs, VIF, VIFEs and data, as wireless OMS meters send them. It walks a
// byte slice without allocating, and can walk a compact frame's data
// against a separate list of record headers.
package mbus

// Kind is the physical quantity a primary VIF describes.
type Kind uint8

const (
	KindUnknown               Kind = iota
	KindEnergy                     // Wh
	KindEnergyJ                    // J
	KindVolume                     // m³
	KindMass                       // kg
	KindOnTime                     // duration, Unit gives s/min/h/d
	KindOperatingTime              // duration
	KindPower                      // W
	KindPowerJh                    // J/h
	KindVolumeFlow                 // m³/h
	KindVolumeFlowMin              // m³/min
	KindVolumeFlowSec              // m³/s
	KindMassFlow                   // kg/h
	KindFlowTemperature            // °C
	KindReturnTemperature          // °C
	KindTemperatureDifference      // K
	KindExternalTemperature        // °C
	KindPressure                   // bar
	KindDate                       // type G (2 bytes)
	KindDateTime                   // type F (4 bytes)
	KindHCA                        // heat cost allocator units
	KindAveragingDuration          // duration
	KindActualityDuration          // duration
	KindFabricationNumber
	KindEnhancedID
	KindBusAddress
	KindExtFB        // VIF 0xFB: the first VIFE is a code of extension table FB (Record.Ext)
	KindExtFD        // VIF 0xFD: the first VIFE is a code of extension table FD (Record.Ext)
	KindPlainText    // VIF 0x7C: unit given as text in the header
	KindAny          // VIF 0x7E
	KindManufacturer // VIF 0x7F: manufacturer-specific (Record.Mfr)
	KindReserved
)

var kindNames = [...]string{
	KindUnknown: "unknown", KindEnergy: "energy", KindEnergyJ: "energy", KindVolume: "volume",
	KindMass: "mass", KindOnTime: "on time", KindOperatingTime: "operating time", KindPower: "power",
	KindPowerJh: "power", KindVolumeFlow: "volume flow", KindVolumeFlowMin: "volume flow",
	KindVolumeFlowSec: "volume flow", KindMassFlow: "mass flow", KindFlowTemperature: "flow temperature",
	KindReturnTemperature: "return temperature", KindTemperatureDifference: "temperature difference",
	KindExternalTemperature: "external temperature", KindPressure: "pressure", KindDate: "date",
	KindDateTime: "date and time", KindHCA: "HCA units", KindAveragingDuration: "averaging duration",
	KindActualityDuration: "actuality duration", KindFabricationNumber: "fabrication number",
	KindEnhancedID: "enhanced identification", KindBusAddress: "bus address", KindExtFB: "extension FB",
	KindExtFD: "extension FD", KindPlainText: "plain-text unit", KindAny: "any VIF",
	KindManufacturer: "manufacturer specific", KindReserved: "reserved",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Unit is what a primary VIF says: the quantity, the power of ten the
// value is scaled by, and the unit symbol after scaling.
type Unit struct {
	Kind Kind
	Exp  int8   // value = raw × 10^Exp in Symbol
	Sym  string // "m³", "m³/h", "°C", "s", …
}

// vifRange is one row of the primary VIF table: VIF&mask == val selects it,
// the low bits n = VIF&^mask give the exponent n+base (or, for durations,
// the time unit).
type vifRange struct {
	mask, val byte
	kind      Kind
	base      int8
	sym       string
	duration  bool // low two bits select s/min/h/d instead of an exponent
}

// vifTable is the primary VIF table of EN 13757-3 (extension bit removed).
var vifTable = []vifRange{
	{0x78, 0x00, KindEnergy, -3, "Wh", false},
	{0x78, 0x08, KindEnergyJ, 0, "J", false},
	{0x78, 0x10, KindVolume, -6, "m³", false},
	{0x78, 0x18, KindMass, -3, "kg", false},
	{0x7C, 0x20, KindOnTime, 0, "", true},
	{0x7C, 0x24, KindOperatingTime, 0, "", true},
	{0x78, 0x28, KindPower, -3, "W", false},
	{0x78, 0x30, KindPowerJh, 0, "J/h", false},
	{0x78, 0x38, KindVolumeFlow, -6, "m³/h", false},
	{0x78, 0x40, KindVolumeFlowMin, -7, "m³/min", false},
	{0x78, 0x48, KindVolumeFlowSec, -9, "m³/s", false},
	{0x78, 0x50, KindMassFlow, -3, "kg/h", false},
	{0x7C, 0x58, KindFlowTemperature, -3, "°C", false},
	{0x7C, 0x5C, KindReturnTemperature, -3, "°C", false},
	{0x7C, 0x60, KindTemperatureDifference, -3, "K", false},
	{0x7C, 0x64, KindExternalTemperature, -3, "°C", false},
	{0x7C, 0x68, KindPressure, -3, "bar", false},
	{0x7F, 0x6C, KindDate, 0, "", false},
	{0x7F, 0x6D, KindDateTime, 0, "", false},
	{0x7F, 0x6E, KindHCA, 0, "", false},
	{0x7F, 0x6F, KindReserved, 0, "", false},
	{0x7C, 0x70, KindAveragingDuration, 0, "", true},
	{0x7C, 0x74, KindActualityDuration, 0, "", true},
	{0x7F, 0x78, KindFabricationNumber, 0, "", false},
	{0x7F, 0x79, KindEnhancedID, 0, "", false},
	{0x7F, 0x7A, KindBusAddress, 0, "", false},
	{0x7F, 0x7B, KindExtFB, 0, "", false},
	{0x7F, 0x7C, KindPlainText, 0, "", false},
	{0x7F, 0x7D, KindExtFD, 0, "", false},
	{0x7F, 0x7E, KindAny, 0, "", false},
	{0x7F, 0x7F, KindManufacturer, 0, "", false},
}

var durationSym = [4]string{"s", "min", "h", "d"}

// units is vifTable expanded into a lookup table indexed by VIF&0x7F.
var units = func() (t [128]Unit) {
	for v := range t {
		for _, r := range vifTable {
			if byte(v)&r.mask != r.val {
				continue
			}
			n := byte(v) &^ r.mask
			u := Unit{Kind: r.kind, Sym: r.sym}
			if r.duration {
				u.Sym = durationSym[n]
			} else if r.mask != 0x7F {
				u.Exp = r.base + int8(n)
			}
			t[v] = u
			break
		}
	}
	return t
}()

// UnitOf returns the primary table entry of a VIF (extension bit ignored).
func UnitOf(vif byte) Unit { return units[vif&0x7F] }
