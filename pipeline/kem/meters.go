package kem

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// formats maps the plaintext's root element to the element that holds one
// meter: KEM v1 lists <Meter>s in <MetersInOrder>, KEM2 <Device>s in <Devices>.
var formats = map[string]string{
	"MetersInOrder": "Meter",
	"Devices":       "Device",
}

// fields says where each Meter text field comes from, in order of
// preference; names are matched without namespace and ignoring case, the
// nearest element in the meter's subtree wins. KEM v1 and KEM2 spell some
// of them differently.
var fields = []struct {
	names []string
	field func(*Meter) *string
}{
	{[]string{"SerialNo", "SerialNumber", "MeterNo", "MeterNumber"}, func(m *Meter) *string { return &m.Serial }},
	{[]string{"MeterName", "DeviceName", "ProductName"}, func(m *Meter) *string { return &m.MeterName }},
	{[]string{"ConsumptionType"}, func(m *Meter) *string { return &m.ConsumptionType }},
	{[]string{"ConfigNo", "ConfigNumber"}, func(m *Meter) *string { return &m.ConfigNo }},
	{[]string{"TypeNo", "TypeNumber"}, func(m *Meter) *string { return &m.TypeNo }},
	{[]string{"VendorId", "Vendor"}, func(m *Meter) *string { return &m.VendorID }},
}

// models maps a KEM MeterName (upper case, blanks and dashes removed) to the
// model name the rest of the gateway uses.
var models = map[string]string{
	"FLOWIQ21XX": "flowIQ 2101",
	"FLOWIQ2101": "flowIQ 2101",
	"FLOWIQ2102": "flowIQ 2102",
	"FLOWIQ22XX": "flowIQ 2200",
	"FLOWIQ2200": "flowIQ 2200",
	"FLOWIQ31XX": "flowIQ 3100",
	"FLOWIQ3100": "flowIQ 3100",
	"MC21":       "MULTICAL 21",
	"MULTICAL21": "MULTICAL 21",
	"KWM2210":    "flowIQ 2200",
	"KWM2230":    "KWM 2230",
	"KWM2231":    "KWM 2231",
	"KWM3230":    "KWM 3230",
}

// ModelName returns the friendly model for a KEM MeterName, or "" when the
// name is not in the table.
func ModelName(meterName string) string {
	k := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '-', '_':
			return -1
		}
		return r
	}, strings.ToUpper(meterName))
	return models[k]
}

// node is a parsed XML element: local name, attributes, its own text.
type node struct {
	name  string
	attrs []xml.Attr
	text  string
	kids  []*node
}

const maxDepth = 32 // KEM documents nest four or five levels

// parseTree reads the decrypted XML into a tree. Error messages carry line
// numbers only: the decoder's own messages may quote text, and the text
// around a syntax error may be a key.
func parseTree(plain []byte) (*node, error) {
	d := newDecoder(plain)
	var stack []*node
	var text [][]byte // own character data of each open element
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("%w: decrypted content is not well-formed XML (line %d)", ErrFormat, se.Line)
			}
			return nil, fmt.Errorf("%w: decrypted content is not well-formed XML", ErrFormat)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) == maxDepth {
				return nil, fmt.Errorf("%w: decrypted XML nests deeper than %d elements", ErrFormat, maxDepth)
			}
			n := &node{name: t.Name.Local, attrs: t.Attr}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			}
			stack = append(stack, n)
			text = append(text, nil)
		case xml.EndElement:
			n := stack[len(stack)-1]
			n.text = strings.TrimSpace(string(text[len(text)-1]))
			stack, text = stack[:len(stack)-1], text[:len(text)-1]
			if len(stack) == 0 {
				return n, nil // whatever follows the root is not ours to read
			}
		case xml.CharData:
			if len(text) > 0 {
				text[len(text)-1] = append(text[len(text)-1], t...)
			}
		}
	}
	// The decoder reports unclosed elements as a syntax error, so only a
	// document without any element gets here.
	return nil, fmt.Errorf("%w: decrypted content holds no XML element", ErrFormat)
}

// parseMeters reads the meters of a decrypted KEM v1 or KEM2 document.
func parseMeters(plain []byte) ([]Meter, error) {
	root, err := parseTree(plain)
	if err != nil {
		return nil, err
	}
	item, ok := formats[root.name]
	if !ok {
		return nil, fmt.Errorf("%w: decrypted XML has root <%s>, want <MetersInOrder> (KEM) or <Devices> (KEM2)", ErrFormat, clip(root.name))
	}
	var ms []Meter
	for i, n := range collect(root, item) {
		m, err := meterFrom(n)
		if err != nil {
			return nil, fmt.Errorf("<%s> #%d: %w", item, i+1, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// collect returns the elements named item below root, not looking inside
// the ones found.
func collect(root *node, item string) []*node {
	var out []*node
	var walk func(*node)
	walk = func(n *node) {
		for _, k := range n.kids {
			if strings.EqualFold(k.name, item) {
				out = append(out, k)
			} else {
				walk(k)
			}
		}
	}
	walk(root)
	return out
}

func meterFrom(n *node) (Meter, error) {
	var m Meter
	for _, f := range fields {
		for _, name := range f.names {
			if e := nearest(n, name); e != nil && e.text != "" {
				*f.field(&m) = e.text
				break
			}
		}
	}
	if m.Serial == "" {
		return m, fmt.Errorf("%w: meter without SerialNo/SerialNumber", ErrFormat)
	}
	m.Model = ModelName(m.MeterName)
	if id, err := wmbus.ParseID(m.Serial); err == nil {
		m.ID, m.HasID = id, true
	}
	key, err := dek(n)
	if err != nil {
		return m, fmt.Errorf("meter %s: %w", clip(m.Serial), err)
	}
	if key != "" {
		if err := parseKey(&m.Key, key); err != nil {
			return m, fmt.Errorf("meter %s: %w", clip(m.Serial), err)
		}
		m.HasKey = true
	}
	return m, nil
}

// nearest finds the shallowest element of that name below n (breadth
// first), so a meter's own fields win over any nested element's.
func nearest(n *node, name string) *node {
	level := n.kids
	for len(level) > 0 {
		var next []*node
		for _, k := range level {
			if strings.EqualFold(k.name, name) {
				return k
			}
			next = append(next, k.kids...)
		}
		level = next
	}
	return nil
}

// dek finds a meter's data encryption key in any of the shapes KEM files
// use: <DEK>hex</DEK> (KEM v1, inside <EncKeys>), <X><Name>DEK</Name>
// <Value>hex</Value></X> (KEM2) or <X Name="DEK" Value="hex"/>. Empty values
// mean no key; two different non-empty ones are an error.
func dek(n *node) (string, error) {
	var found string
	add := func(v string) error {
		v = strings.TrimSpace(v)
		switch {
		case v == "":
		case found == "":
			found = v
		case !strings.EqualFold(found, v):
			return fmt.Errorf("%w: two different DEKs", ErrFormat)
		}
		return nil
	}
	var walk func(*node) error
	walk = func(e *node) error {
		for _, k := range e.kids {
			if strings.EqualFold(k.name, "DEK") {
				if err := add(k.text); err != nil {
					return err
				}
			}
			if name := child(k, "Name"); name != nil && strings.EqualFold(name.text, "DEK") {
				if v := child(k, "Value"); v != nil {
					if err := add(v.text); err != nil {
						return err
					}
				}
			}
			if strings.EqualFold(attrValue(k, "Name"), "DEK") {
				v := attrValue(k, "Value")
				if v == "" {
					v = k.text
				}
				if err := add(v); err != nil {
					return err
				}
			}
			if err := walk(k); err != nil {
				return err
			}
		}
		return nil
	}
	return found, walk(n)
}

func child(n *node, name string) *node {
	for _, k := range n.kids {
		if strings.EqualFold(k.name, name) {
			return k
		}
	}
	return nil
}

func attrValue(n *node, name string) string {
	for _, a := range n.attrs {
		if strings.EqualFold(a.Name.Local, name) {
			return a.Value
		}
	}
	return ""
}

// parseKey reads a DEK with the one key parser; line breaks inside the
// XML text are blanks too. Errors describe the shape, never the digits.
func parseKey(dst *[16]byte, s string) error {
	k, err := wmbus.ParseKey(strings.NewReplacer("\r", " ", "\n", " ").Replace(s))
	if err != nil {
		return fmt.Errorf("%w: DEK %v", ErrFormat, err)
	}
	*dst = k
	return nil
}
