package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/internal/atomicfile"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Chart sizes per meter: the total volume once per half hour for 7 days,
// and the signal level of each of the last telegrams (about 4½ hours of a
// meter sending every 16 s). A point is 12 or 8 bytes; with every meter of
// a 330-meter list this stays under 7 MB.
const (
	volumeEvery  = 30 * time.Minute
	volumePoints = 7 * 24 * 2
	signalPoints = 1024
	chartsFile   = "charts.bin"
	chartsMagic  = "FIQCHRT1"
)

// VolumePoint is the total volume at a time (the last reading of its
// half hour).
type VolumePoint struct {
	Unix   uint32
	Volume float64 // m³
}

// SignalPoint is one telegram's signal level and SNR, in tenths of a dB.
type SignalPoint struct {
	Unix           uint32
	Level10, SNR10 int16
}

type meterChart struct {
	vol  [volumePoints]VolumePoint
	nvol int // points written, the ring's newest is (nvol-1)%len
	sig  [signalPoints]SignalPoint
	nsig int
}

// chartStore keeps the charts of the listed meters and saves them in the
// state directory in a small binary file (charts.bin): magic, then per
// meter its ID, point counts and points, little-endian.
type chartStore struct {
	path  string
	mu    sync.Mutex
	byID  map[wmbus.ID]*meterChart
	dirty bool
}

func openCharts(dir string) (*chartStore, error) {
	c := &chartStore{byID: map[wmbus.ID]*meterChart{}}
	if dir == "" {
		return c, nil
	}
	c.path = filepath.Join(dir, chartsFile)
	b, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err == nil {
		err = c.decode(b)
	}
	if err != nil {
		c.byID = map[wmbus.ID]*meterChart{}
		return c, fmt.Errorf("charts %s (starting afresh): %w", c.path, err)
	}
	return c, nil
}

func (c *chartStore) chart(id wmbus.ID) *meterChart {
	m := c.byID[id]
	if m == nil {
		m = &meterChart{}
		c.byID[id] = m
	}
	return m
}

// volume records a total; a reading in the same half hour as the newest
// point replaces it.
func (c *chartStore) volume(id wmbus.ID, at time.Time, v float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.chart(id)
	p := VolumePoint{Unix: uint32(at.Unix()), Volume: v}
	if m.nvol > 0 {
		last := &m.vol[(m.nvol-1)%volumePoints]
		if int64(last.Unix)/int64(volumeEvery/time.Second) == int64(p.Unix)/int64(volumeEvery/time.Second) {
			*last = p
			c.dirty = true
			return
		}
	}
	m.vol[m.nvol%volumePoints] = p
	m.nvol++
	c.dirty = true
}

func (c *chartStore) signal(id wmbus.ID, at time.Time, r wmbus.Radio) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.chart(id)
	m.sig[m.nsig%signalPoints] = SignalPoint{Unix: uint32(at.Unix()), Level10: tenths(r.LevelDBFS), SNR10: tenths(r.SNRdB)}
	m.nsig++
	c.dirty = true
}

func tenths(v float64) int16 {
	return int16(max(min(math.Round(v*10), math.MaxInt16), math.MinInt16))
}

// keepOnly forgets the charts of meters that left the list.
func (c *chartStore) keepOnly(ids map[wmbus.ID]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.byID {
		if !ids[id] {
			delete(c.byID, id)
			c.dirty = true
		}
	}
}

// ChartDoc is one meter's charts, oldest point first (GET api/charts).
type ChartDoc struct {
	ID     string       `json:"id"`
	Volume [][2]float64 `json:"volume"` // [unix seconds, m³]
	Signal [][3]float64 `json:"signal"` // [unix seconds, level dBFS, SNR dB]
}

// Charts returns the charts of the listed meters, volume from the last 7
// days.
func (s *Status) Charts() []ChartDoc {
	s.mu.Lock()
	ids := make([]wmbus.ID, 0, len(s.mine))
	for id := range s.mine {
		ids = append(ids, id)
	}
	now := s.now()
	s.mu.Unlock()
	slices.Sort(ids)
	c := s.charts
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ChartDoc, 0, len(ids))
	since := uint32(now.Add(-7 * 24 * time.Hour).Unix())
	for _, id := range ids {
		d := ChartDoc{ID: id.String(), Volume: [][2]float64{}, Signal: [][3]float64{}}
		if m := c.byID[id]; m != nil {
			for _, p := range m.volumes() {
				if p.Unix >= since {
					d.Volume = append(d.Volume, [2]float64{float64(p.Unix), p.Volume})
				}
			}
			for _, p := range m.signals() {
				d.Signal = append(d.Signal, [3]float64{float64(p.Unix), float64(p.Level10) / 10, float64(p.SNR10) / 10})
			}
		}
		out = append(out, d)
	}
	return out
}

// volumes and signals return the rings' points, oldest first (views into
// the rings when they have not wrapped).
func (m *meterChart) volumes() []VolumePoint {
	return ringOrder(m.vol[:], m.nvol)
}

func (m *meterChart) signals() []SignalPoint {
	return ringOrder(m.sig[:], m.nsig)
}

func ringOrder[T any](ring []T, n int) []T {
	if n <= len(ring) {
		return ring[:n]
	}
	i := n % len(ring)
	return append(slices.Clone(ring[i:]), ring[:i]...)
}

// save writes the charts atomically when they changed.
func (c *chartStore) save() error {
	c.mu.Lock()
	if c.path == "" || !c.dirty {
		c.mu.Unlock()
		return nil
	}
	b := c.encode()
	c.dirty = false
	c.mu.Unlock()
	return atomicfile.Write(c.path, b, 0o600)
}

func (c *chartStore) encode() []byte {
	ids := make([]wmbus.ID, 0, len(c.byID))
	for id := range c.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b := []byte(chartsMagic)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		m := c.byID[id]
		vol, sig := m.volumes(), m.signals()
		b = binary.LittleEndian.AppendUint32(b, uint32(id))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(vol)))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(sig)))
		for _, p := range vol {
			b = binary.LittleEndian.AppendUint32(b, p.Unix)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Volume))
		}
		for _, p := range sig {
			b = binary.LittleEndian.AppendUint32(b, p.Unix)
			b = binary.LittleEndian.AppendUint16(b, uint16(p.Level10))
			b = binary.LittleEndian.AppendUint16(b, uint16(p.SNR10))
		}
	}
	return b
}

var errChartsShort = errors.New("file cut off")

func (c *chartStore) decode(b []byte) error {
	if len(b) < len(chartsMagic)+4 || string(b[:len(chartsMagic)]) != chartsMagic {
		return errors.New("not a charts file of this version")
	}
	b = b[len(chartsMagic):]
	n := binary.LittleEndian.Uint32(b)
	b = b[4:]
	for i := uint32(0); i < n; i++ {
		if len(b) < 8 {
			return errChartsShort
		}
		id := wmbus.ID(binary.LittleEndian.Uint32(b))
		nv, ns := int(binary.LittleEndian.Uint16(b[4:])), int(binary.LittleEndian.Uint16(b[6:]))
		b = b[8:]
		if nv > volumePoints || ns > signalPoints {
			return fmt.Errorf("meter %s: more points than a chart holds", id)
		}
		if len(b) < nv*12+ns*8 {
			return errChartsShort
		}
		m := c.chart(id)
		for j := range nv {
			m.vol[j] = VolumePoint{Unix: binary.LittleEndian.Uint32(b), Volume: math.Float64frombits(binary.LittleEndian.Uint64(b[4:]))}
			b = b[12:]
		}
		for j := range ns {
			m.sig[j] = SignalPoint{Unix: binary.LittleEndian.Uint32(b),
				Level10: int16(binary.LittleEndian.Uint16(b[4:])), SNR10: int16(binary.LittleEndian.Uint16(b[6:]))}
			b = b[8:]
		}
		m.nvol, m.nsig = nv, ns
	}
	if len(b) != 0 {
		return fmt.Errorf("%d bytes after the last chart", len(b))
	}
	return nil
}
