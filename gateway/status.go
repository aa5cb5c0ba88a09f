package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Bounds of what the status keeps: a neighbourhood full of meters, a noisy
// band or a long uptime never grow it.
const (
	MaxNearby   = 1000 // meters heard, least recently heard evicted first
	MaxProblems = 100  // newest problems; repeats fold into one entry
	maxModes    = 8    // radio modes counted (C1, T1, …)

	qualitySlot  = 5 * time.Minute // reception quality resolution
	qualitySlots = 288             // 24 h of slots
	intervalRing = 8               // send-interval samples kept per meter
	modeMinutes  = 61              // per-mode frame counts, one per minute

	defaultSilence = 5 * time.Minute // "silent" before the send interval is known
	silentAfter    = 4               // intervals without a telegram: silent
)

// Meter states, as the page and the API show them.
const (
	StateReceiving  = "receiving"
	StateNoTelegram = "no telegram yet"
	StateWrongKey   = "wrong key"
	StateNoKey      = "no key"
	StateAwaiting   = "waiting for a full frame"
	StateSilent     = "silent"
)

// RadioReport is what a radio source can tell beyond the pipeline's frame
// counters: the demodulator's own counters, the noise floor and a spectrum
// of the capture. A source offers it by implementing
// RadioReport() RadioReport; nil fields are not known (yet).
type RadioReport struct {
	Candidates     *int64    `json:"sync_words,omitempty"`
	Corrected      *int64    `json:"corrected_frames,omitempty"`
	CorrectedBits  *int64    `json:"corrected_bits,omitempty"`
	BadCRC         *int64    `json:"crc_failures,omitempty"`
	NoiseFloorDBFS *float64  `json:"noise_floor_dbfs,omitempty"`
	Spectrum       *Spectrum `json:"spectrum,omitempty"`
}

// Spectrum is a power spectrum of the capture: Bins[i] is the level at
// StartHz + i·StepHz.
type Spectrum struct {
	StartHz float64   `json:"start_hz"`
	StepHz  float64   `json:"step_hz"`
	DBFS    []float32 `json:"dbfs"`
}

type radioReporter interface{ RadioReport() RadioReport }

// Status is the gateway's view of what it hears, for the web page: the
// configured meters with their state, values, reception quality and charts,
// every meter nearby, the radio and the recent problems. It is an Output
// (it sees every frame, reading and problem, the meter list and health) and
// keeps everything bounded. The decoding goroutine feeds it without
// allocating once a meter is known; Snapshot and JSON serve readers.
//
// It never holds key material: of a meter list entry it keeps the name,
// model and whether a key is set.
type Status struct {
	now     func() time.Time
	sources []pipeline.Source
	radio   pipeline.RadioOptions
	version string
	charts  *chartStore
	changes atomic.Uint64

	mu        sync.Mutex
	list      *meters.Snapshot
	listPath  string
	mine      map[wmbus.ID]*myMeter
	near      map[wmbus.ID]*nearMeter
	lru       nearMeter // sentinel of the recency list: lru.next is the newest
	problems  [MaxProblems]problem
	pnext     int // next problem slot
	pcount    int
	pindex    map[problemKey]int
	modes     [maxModes]modeCount
	crc       uint64
	frames    uint64 // frames heard, readings produced (Health lags by up to 30 s)
	readings  uint64
	lastFrame time.Time
	pstats    *pipeline.Stats // live counters of the running pipeline
	health    Health
	started   time.Time
	plain     []byte // reused CRC-less copy of a frame
}

// StatusOptions configure a Status.
type StatusOptions struct {
	Sources []pipeline.Source
	Radio   pipeline.RadioOptions
	Version string
	// StateDir keeps the charts across restarts; "" keeps them in memory.
	StateDir string
	Now      func() time.Time // default time.Now
}

// NewStatus returns an empty status; charts saved in the state directory
// are loaded (a damaged file is reported and started afresh).
func NewStatus(o StatusOptions) (*Status, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Status{now: o.Now, sources: o.Sources, radio: o.Radio, version: o.Version,
		mine: map[wmbus.ID]*myMeter{}, near: map[wmbus.ID]*nearMeter{}, pindex: map[problemKey]int{},
		started: o.Now(), plain: make([]byte, 0, 256)}
	s.lru.next, s.lru.prev = &s.lru, &s.lru
	var err error
	s.charts, err = openCharts(o.StateDir)
	return s, err
}

// myMeter is one meter of the meter list.
type myMeter struct {
	id              wmbus.ID
	name, model     string
	hasKey, enabled bool
	heard           bool
	telegrams       uint64
	lastSeen        time.Time
	radio           wmbus.Radio // of the last telegram (mode interned)
	problem         string      // "", StateWrongKey, StateNoKey, StateAwaiting
	reading         []byte      // the last reading, kamstrup.Reading.AppendJSON
	readingAt       time.Time
	lastAcc         uint8
	lastAccAt       time.Time
	hasAcc          bool
	phase           int8 // access number mod 8 of full frames; -1 unknown
	intervals       [intervalRing]float32
	nIntervals      int
	quality         [qualitySlots]qualitySlotCount
	receivers       []receiverStat // at most maxReceivers
}

type qualitySlotCount struct {
	slot          uint32 // time / qualitySlot
	got, expected uint16
}

// nearMeter is one meter heard, any manufacturer, in a recency list.
type nearMeter struct {
	id               wmbus.ID
	manufacturer     string
	version, devType string
	kamstrup         bool
	encrypted        int8 // -1 unknown, 0 no, 1 yes
	telegrams        uint64
	lastSeen         time.Time
	radio            wmbus.Radio
	prev, next       *nearMeter
}

type problemKey struct {
	id   wmbus.ID
	kind string
}

type problem struct {
	key   problemKey
	kind  string
	hasID bool
	first time.Time
	last  time.Time
	count int
	text  string
}

type modeCount struct {
	mode   string
	minute [modeMinutes]struct{ n, count uint32 }
}

// Name implements Output.
func (s *Status) Name() string { return "status page" }

// Changes counts the updates so far; a reader polls it to know when to
// send the status again.
func (s *Status) Changes() uint64 { return s.changes.Load() }

// SetMeters follows the meter list: meters added appear (no telegram
// yet), meters removed disappear.
func (s *Status) SetMeters(l *meters.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list, s.listPath = l, l.Path
	keep := make(map[wmbus.ID]bool, len(l.Meters))
	for _, m := range l.Meters {
		keep[m.ID] = true
		my := s.mine[m.ID]
		if my == nil {
			my = &myMeter{id: m.ID, phase: -1}
			s.mine[m.ID] = my
		}
		my.name, my.model, my.hasKey, my.enabled = m.Name, m.Model, m.HasKey, m.Enabled
		if my.hasKey && my.problem == StateNoKey {
			my.problem = ""
		}
	}
	for id := range s.mine {
		if !keep[id] {
			delete(s.mine, id)
		}
	}
	s.charts.keepOnly(keep)
	s.changes.Add(1)
}

// SetPipelineStats hands over the running pipeline's live counters
// (reopens, failing inputs and their last error).
func (s *Status) SetPipelineStats(p *pipeline.Stats) {
	s.mu.Lock()
	s.pstats = p
	s.mu.Unlock()
}

// SetHealth implements the health part of an Output.
func (s *Status) SetHealth(h Health) {
	s.mu.Lock()
	s.health = h
	s.mu.Unlock()
	s.changes.Add(1)
}

// Restore shows a meter's last reading from before a restart.
func (s *Status) Restore(r kamstrup.Reading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if my := s.mine[r.ID]; my != nil && my.reading == nil {
		my.reading, my.readingAt = r.AppendJSON(nil), r.Time
	}
}

// Frame implements frameWatcher: every frame heard, any manufacturer.
func (s *Status) Frame(f pipeline.Frame, t *wmbus.Telegram, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.countMode(f.Radio.Mode, f.Time)
	s.frames++
	s.lastFrame = f.Time
	var id wmbus.ID
	var acc uint8
	hasAcc := false
	switch {
	case t != nil:
		id, acc, hasAcc = t.Meter(), t.AccessNumber(), true
	case errors.Is(err, wmbus.ErrNoKey), errors.Is(err, wmbus.ErrWrongKey),
		errors.Is(err, wmbus.ErrUnsupportedCI), errors.Is(err, wmbus.ErrUnsupportedSecurity):
		// The link layer verified: the header is the meter's.
		var ok bool
		id, ok = wmbus.ErrorMeter(err)
		if !ok {
			return
		}
		acc, hasAcc = s.rawAccess(f)
	default:
		return // damaged: counted with the problems, the ID may be noise
	}
	s.changes.Add(1)
	s.hearNearby(id, f, t, err)
	my := s.mine[id]
	if my == nil {
		return
	}
	my.heard = true
	my.telegrams++
	my.lastSeen = f.Time
	my.radio.Mode = s.modes[s.modeIndex(f.Radio.Mode)].mode
	if f.Radio.Measured() || f.Radio.DeviceLevel != 0 {
		my.radio = f.Radio // text input has no level: the last measured stays
		my.radio.Mode = s.modes[s.modeIndex(f.Radio.Mode)].mode
	}
	switch {
	case t != nil:
		if my.problem != StateAwaiting {
			my.problem = ""
		}
	case errors.Is(err, wmbus.ErrWrongKey):
		my.problem = StateWrongKey
	case errors.Is(err, wmbus.ErrNoKey):
		my.problem = StateNoKey
	}
	if hasAcc {
		my.countTelegram(f.Time, acc)
	}
	if f.Radio.Measured() {
		s.charts.signal(id, f.Time, f.Radio)
	}
}

// rawAccess reads the access number of a frame that did not parse into a
// telegram (no key, wrong key): the extended link layer's, else the TPL's.
func (s *Status) rawAccess(f pipeline.Frame) (uint8, bool) {
	data := f.Data
	if !f.Stripped {
		plain, _, err := wmbus.AppendDetect(s.plain[:0], f.Data)
		if err != nil {
			return 0, false
		}
		s.plain, data = plain, plain
	}
	if len(data) < 13 {
		return 0, false
	}
	switch ci := data[10]; {
	case ci >= 0x8C && ci <= 0x8F:
		return data[12], true
	case ci == 0x7A:
		return data[11], true
	case ci == 0x72 && len(data) > 19:
		return data[19], true
	}
	return 0, false
}

// hearNearby counts a frame for the nearby list; a meter seen for the
// first time is described once (pipeline.Describe), evicting the least
// recently heard meter when the list is full.
func (s *Status) hearNearby(id wmbus.ID, f pipeline.Frame, t *wmbus.Telegram, err error) {
	n := s.near[id]
	if n == nil {
		fi := pipeline.Describe(f, t, err)
		if len(s.near) >= MaxNearby {
			n = s.lru.prev // the oldest is reused
			n.unlink()
			delete(s.near, n.id)
			*n = nearMeter{}
		} else {
			n = &nearMeter{}
		}
		n.id = id
		n.manufacturer, n.version, n.devType = fi.Manufacturer, fi.Version, fi.DeviceType
		n.kamstrup = fi.Manufacturer == wmbus.KAM.String() || fi.Manufacturer == wmbus.KAW.String()
		s.near[id] = n
	} else {
		n.unlink()
	}
	s.lru.pushFront(n)
	n.telegrams++
	n.lastSeen = f.Time
	n.radio.Mode = s.modes[s.modeIndex(f.Radio.Mode)].mode
	if f.Radio.Measured() || f.Radio.DeviceLevel != 0 {
		n.radio = f.Radio
		n.radio.Mode = s.modes[s.modeIndex(f.Radio.Mode)].mode
	}
	switch {
	case t != nil && t.Security == wmbus.SecurityNone:
		n.encrypted = 0
	case t != nil, errors.Is(err, wmbus.ErrNoKey), errors.Is(err, wmbus.ErrWrongKey):
		n.encrypted = 1
	default:
		n.encrypted = -1
	}
}

func (n *nearMeter) unlink() {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}

func (l *nearMeter) pushFront(n *nearMeter) {
	n.prev, n.next = l, l.next
	l.next.prev = n
	l.next = n
}

// countMode counts a frame for its radio mode's frames per minute. Modes
// are interned: a text input's mode is a substring of its line.
func (s *Status) countMode(mode string, at time.Time) {
	m := &s.modes[s.modeIndex(mode)]
	minute := uint32(at.Unix() / 60)
	c := &m.minute[minute%modeMinutes]
	if c.n != minute {
		c.n, c.count = minute, 0
	}
	c.count++
}

// modeIndex returns the slot of a mode: slot 0 is text input without a
// mode; a new mode takes a free slot, and when all are taken the last slot
// counts every other mode.
func (s *Status) modeIndex(mode string) int {
	if mode == "" {
		return 0
	}
	last := len(s.modes) - 1
	for i := 1; i <= last; i++ {
		switch s.modes[i].mode {
		case mode:
			return i
		case "":
			s.modes[i].mode = strings.Clone(mode)
			if i == last {
				s.modes[i].mode = "other"
			}
			return i
		}
	}
	return last
}

// countTelegram folds one telegram's access number into the reception
// quality: the number counts up by one per telegram sent (8 bits,
// wrapping), so the gap since the last one says how many were sent.
func (m *myMeter) countTelegram(at time.Time, acc uint8) {
	expected := 1
	if m.hasAcc {
		d := int(acc - m.lastAcc)
		if d == 0 {
			return // the same telegram again (two receivers, a repeater)
		}
		elapsed := at.Sub(m.lastAccAt).Seconds()
		if iv := m.interval(); iv > 0 && elapsed > 128*iv {
			// Long silence: the counter may have wrapped; the time says
			// how often, the gap says the rest.
			if k := math.Round((elapsed/iv - float64(d)) / 256); k > 0 {
				d += 256 * int(k)
			}
		}
		if d <= intervalRing && elapsed >= float64(d) { // under 1 s: a replay, not the air
			m.intervals[m.nIntervals%intervalRing] = float32(elapsed / float64(d))
			m.nIntervals++
		}
		expected = d
	}
	m.lastAcc, m.lastAccAt, m.hasAcc = acc, at, true
	slot := uint32(at.Unix() / int64(qualitySlot/time.Second))
	q := &m.quality[slot%qualitySlots]
	if q.slot != slot {
		*q = qualitySlotCount{slot: slot}
	}
	if q.got < math.MaxUint16 {
		q.got++
	}
	q.expected = uint16(min(int(q.expected)+expected, math.MaxUint16))
}

// interval is the median of the recent send intervals, seconds; 0 unknown.
func (m *myMeter) interval() float64 {
	n := min(m.nIntervals, intervalRing)
	if n == 0 {
		return 0
	}
	var v [intervalRing]float32
	copy(v[:], m.intervals[:n])
	slices.Sort(v[:n])
	return float64(v[n/2])
}

// quality is the share (%) of telegrams received over the last window,
// and false when nothing was expected in it.
func (m *myMeter) qualityOver(now time.Time, window time.Duration) (float64, bool) {
	cur := uint32(now.Unix() / int64(qualitySlot/time.Second))
	n := uint32(window / qualitySlot)
	var got, exp int
	for _, q := range m.quality {
		if q.expected > 0 && q.slot <= cur && cur-q.slot < n {
			got += int(q.got)
			exp += int(q.expected)
		}
	}
	if exp == 0 {
		return 0, false
	}
	return math.Round(1000*float64(got)/float64(exp)) / 10, true
}

// Reading implements Output.
func (s *Status) Reading(r *kamstrup.Reading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readings++
	my := s.mine[r.ID]
	if my == nil {
		return
	}
	my.reading, my.readingAt = r.AppendJSON(my.reading[:0]), r.Time
	my.hearReceivers(r)
	if my.problem == StateAwaiting {
		my.problem = ""
	}
	if r.Kind == kamstrup.Full {
		my.phase = int8(r.AccessNumber & 7)
	}
	if v, ok := r.Get(kamstrup.Total); ok && v.Known {
		s.charts.volume(r.ID, r.Time, v.V)
	}
	s.changes.Add(1)
}

// Problem implements problemWatcher. A missing key of a meter that is not
// in the list is no problem (a neighbour's meter: it shows in Nearby).
func (s *Status) Problem(err error) {
	id, hasID := wmbus.ErrorMeter(err)
	kind := pipeline.ProblemKind(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if isCRC(err) {
		s.crc++
	}
	my := s.mine[id]
	if hasID && my == nil && errors.Is(err, wmbus.ErrNoKey) {
		return
	}
	if my != nil && errors.Is(err, kamstrup.ErrAwaitingFullFrame) {
		my.problem = StateAwaiting
	}
	now := s.now()
	key := problemKey{id, kind}
	if !hasID {
		key = problemKey{0, kind + ": " + err.Error()} // without a meter, each text its own
	}
	if i, ok := s.pindex[key]; ok {
		p := &s.problems[i]
		p.last = now
		p.count++
		s.changes.Add(1)
		return
	}
	i := s.pnext
	if old := &s.problems[i]; old.count > 0 {
		delete(s.pindex, old.key)
	}
	s.problems[i] = problem{key: key, kind: kind, hasID: hasID, first: now, last: now, count: 1, text: err.Error()}
	s.pindex[key] = i
	s.pnext = (i + 1) % MaxProblems
	s.pcount = min(s.pcount+1, MaxProblems)
	s.changes.Add(1)
}

func isCRC(err error) bool {
	return errors.Is(err, wmbus.ErrPayloadCRC) || errors.Is(err, wmbus.ErrBlockCRC) ||
		errors.Is(err, wmbus.ErrCRCLayout) || errors.Is(err, kamstrup.ErrDataCRC)
}

// Run saves the charts now and then and when ctx ends.
func (s *Status) Run(ctx context.Context) error {
	t := time.NewTicker(housekeepingEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.charts.save()
		case <-t.C:
			_ = s.charts.save() // reported by the next save's error at exit if it persists
		}
	}
}

// ReceptionQuality calls f for each meter of the list with the share (%)
// of its telegrams received over the last hour and 24 hours (ok false:
// nothing expected yet).
func (s *Status) ReceptionQuality(f func(id wmbus.ID, hour, day float64, ok bool)) {
	s.mu.Lock()
	now := s.now()
	type q struct {
		id        wmbus.ID
		hour, day float64
		ok        bool
	}
	qs := make([]q, 0, len(s.mine))
	for id, my := range s.mine {
		h, ok := my.qualityOver(now, time.Hour)
		d, _ := my.qualityOver(now, 24*time.Hour)
		qs = append(qs, q{id, h, d, ok})
	}
	s.mu.Unlock()
	for _, x := range qs {
		f(x.id, x.hour, x.day, x.ok)
	}
}

// The status as JSON (GET api/status).

// StatusDoc is the whole status, as the API sends it.
type StatusDoc struct {
	Time      time.Time    `json:"time"`
	Version   string       `json:"version"`
	MeterList MeterListDoc `json:"meter_list"`
	Meters    []MyMeterDoc `json:"meters"`
	Nearby    []NearbyDoc  `json:"nearby"`
	Radio     RadioDoc     `json:"radio"`
	Problems  []ProblemDoc `json:"problems"`
}

// MeterListDoc says where meters added from the page are saved.
type MeterListDoc struct {
	Path     string `json:"path,omitempty"`
	Writable bool   `json:"writable"`
}

// MyMeterDoc is one meter of the meter list.
type MyMeterDoc struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Model         string     `json:"model,omitempty"`
	HasKey        bool       `json:"has_key"`
	Enabled       bool       `json:"enabled"`
	State         string     `json:"state"`
	SilentMinutes int        `json:"silent_minutes,omitempty"`
	LastSeen      *time.Time `json:"last_seen,omitempty"`
	Telegrams     uint64     `json:"telegrams"`
	Mode          string     `json:"mode,omitempty"`
	LevelDBFS     *float64   `json:"level_dbfs,omitempty"`
	SNRdB         *float64   `json:"snr_db,omitempty"`
	DeviceLevel   *int       `json:"device_level,omitempty"`
	Reception1h   *float64   `json:"reception_1h_pct,omitempty"`
	Reception24h  *float64   `json:"reception_24h_pct,omitempty"`
	IntervalS     *float64   `json:"interval_s,omitempty"`
	FullPhase     *int       `json:"full_frame_phase,omitempty"`
	NextFullIn    *int       `json:"next_full_frame_in,omitempty"`
	// Receivers that hear the meter (inputs of several receivers), and
	// the one that hears it best.
	Receivers    []ReceiverDoc   `json:"receivers,omitempty"`
	BestReceiver string          `json:"best_receiver,omitempty"`
	Reading      json.RawMessage `json:"reading,omitempty"`
}

// NearbyDoc is one meter heard.
type NearbyDoc struct {
	ID           string    `json:"id"`
	Manufacturer string    `json:"manufacturer"`
	DeviceType   string    `json:"device_type"`
	TypeName     string    `json:"device_type_name,omitempty"`
	Version      string    `json:"version"`
	Encrypted    *bool     `json:"encrypted,omitempty"`
	Kamstrup     bool      `json:"kamstrup"`
	InList       bool      `json:"in_list"`
	Telegrams    uint64    `json:"telegrams"`
	Mode         string    `json:"mode,omitempty"`
	LevelDBFS    *float64  `json:"level_dbfs,omitempty"`
	SNRdB        *float64  `json:"snr_db,omitempty"`
	DeviceLevel  *int      `json:"device_level,omitempty"`
	LastSeen     time.Time `json:"last_seen"`
}

// RadioDoc is the receiver side.
type RadioDoc struct {
	Inputs          []string           `json:"inputs"`
	Settings        map[string]any     `json:"settings,omitempty"`
	State           string             `json:"state"`
	StateDetail     string             `json:"state_detail,omitempty"`
	Frames          uint64             `json:"frames"`
	Readings        uint64             `json:"readings"`
	Failed          uint64             `json:"failed"`
	LastFrame       *time.Time         `json:"last_frame,omitempty"`
	FramesPerMinute map[string]float64 `json:"frames_per_minute"`
	CRCFailures     uint64             `json:"crc_failures"`
	Reopens         uint64             `json:"reopens"` // live inputs reopened after a failure
	Demodulator     *RadioReport       `json:"demodulator,omitempty"`
	UptimeS         int64              `json:"uptime_s"`
}

// ProblemDoc is one recent problem; repeats are counted.
type ProblemDoc struct {
	Time  time.Time `json:"time"`
	First time.Time `json:"first"`
	Meter string    `json:"meter,omitempty"`
	Kind  string    `json:"kind"`
	Text  string    `json:"text"`
	Count int       `json:"count"`
}

// deviceTypes names the wM-Bus device types (EN 13757-3) users meet.
var deviceTypes = map[string]string{
	"0x00": "other", "0x02": "electricity", "0x03": "gas", "0x04": "heat", "0x06": "warm water",
	"0x07": "water", "0x08": "heat cost allocator", "0x0A": "cooling (outlet)", "0x0B": "cooling (inlet)",
	"0x0C": "heat (inlet)", "0x0D": "heat/cooling", "0x15": "hot water", "0x16": "cold water",
	"0x1A": "smoke detector", "0x1B": "room sensor", "0x1C": "gas detector", "0x25": "radio converter",
	"0x31": "communication controller", "0x32": "unidirectional repeater", "0x33": "bidirectional repeater",
}

// Snapshot is the status now.
func (s *Status) Snapshot() StatusDoc {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	d := StatusDoc{Time: now.UTC(), Version: s.version,
		MeterList: MeterListDoc{Path: s.listPath, Writable: s.listPath != ""},
		Meters:    make([]MyMeterDoc, 0, len(s.mine)), Nearby: make([]NearbyDoc, 0, len(s.near)),
		Problems: make([]ProblemDoc, 0, s.pcount)}
	order := s.list.IDs()
	for _, id := range order {
		if my := s.mine[id]; my != nil {
			d.Meters = append(d.Meters, my.doc(now))
		}
	}
	for n := s.lru.next; n != &s.lru; n = n.next {
		_, listed := s.mine[n.id]
		d.Nearby = append(d.Nearby, n.doc(listed))
	}
	for i := range s.pcount {
		p := &s.problems[(s.pnext-1-i+2*MaxProblems)%MaxProblems]
		pd := ProblemDoc{Time: p.last.UTC(), First: p.first.UTC(), Kind: p.kind, Text: p.text, Count: p.count}
		if p.hasID {
			pd.Meter = p.key.id.String()
		}
		d.Problems = append(d.Problems, pd)
	}
	slices.SortStableFunc(d.Problems, func(a, b ProblemDoc) int { return b.Time.Compare(a.Time) })
	d.Radio = s.radioDoc(now)
	return d
}

// AppendStatus appends the status as JSON (GET api/status).
func (s *Status) AppendStatus(b []byte) ([]byte, error) {
	out, err := json.Marshal(s.Snapshot())
	return append(b, out...), err
}

// AppendCharts appends the charts as JSON (GET api/charts).
func (s *Status) AppendCharts(b []byte) ([]byte, error) {
	out, err := json.Marshal(s.Charts())
	return append(b, out...), err
}

func (my *myMeter) doc(now time.Time) MyMeterDoc {
	d := MyMeterDoc{ID: my.id.String(), Name: my.name, Model: my.model, HasKey: my.hasKey,
		Enabled: my.enabled, Telegrams: my.telegrams, Mode: my.radio.Mode}
	if d.Name == "" {
		d.Name = d.ID
	}
	if my.reading != nil {
		d.Reading = json.RawMessage(my.reading)
	}
	iv := my.interval()
	silence := defaultSilence
	if iv > 0 {
		silence = max(time.Duration(silentAfter*iv*float64(time.Second)), 2*time.Minute)
		d.IntervalS = ptrTo(math.Round(iv*10) / 10)
	}
	switch {
	case !my.heard:
		d.State = StateNoTelegram
	case now.Sub(my.lastSeen) > silence:
		d.State = StateSilent
		d.SilentMinutes = int(now.Sub(my.lastSeen) / time.Minute)
	case my.problem != "":
		d.State = my.problem
	default:
		d.State = StateReceiving
	}
	if my.heard {
		t := my.lastSeen.UTC()
		d.LastSeen = &t
		fillRadio(my.radio, &d.LevelDBFS, &d.SNRdB, &d.DeviceLevel)
	}
	d.Receivers, d.BestReceiver = my.receiverDocs()
	if q, ok := my.qualityOver(now, time.Hour); ok {
		d.Reception1h = &q
	}
	if q, ok := my.qualityOver(now, 24*time.Hour); ok {
		d.Reception24h = &q
	}
	if my.phase >= 0 {
		p := int(my.phase)
		d.FullPhase = &p
		if my.hasAcc {
			next := (p - int(my.lastAcc&7) + 8) % 8
			if next == 0 {
				next = 8
			}
			d.NextFullIn = &next
		}
	}
	return d
}

func (n *nearMeter) doc(listed bool) NearbyDoc {
	d := NearbyDoc{ID: n.id.String(), Manufacturer: n.manufacturer, DeviceType: n.devType,
		TypeName: deviceTypes[n.devType], Version: n.version, Kamstrup: n.kamstrup, InList: listed,
		Telegrams: n.telegrams, Mode: n.radio.Mode, LastSeen: n.lastSeen.UTC()}
	if n.encrypted >= 0 {
		d.Encrypted = ptrTo(n.encrypted == 1)
	}
	fillRadio(n.radio, &d.LevelDBFS, &d.SNRdB, &d.DeviceLevel)
	return d
}

func fillRadio(r wmbus.Radio, level, snr **float64, dev **int) {
	if r.Measured() {
		*level = ptrTo(math.Round(r.LevelDBFS*10) / 10)
		*snr = ptrTo(math.Round(r.SNRdB*10) / 10)
	}
	if r.DeviceLevel != 0 {
		*dev = ptrTo(r.DeviceLevel)
	}
}

func ptrTo[T any](v T) *T { return &v }

// radioStallAfter: a live radio that delivered nothing for this long is
// called stalled (a C1 meter nearby sends every 16 s).
const radioStallAfter = 5 * time.Minute

func (s *Status) radioDoc(now time.Time) RadioDoc {
	h := s.health
	d := RadioDoc{Inputs: make([]string, 0, len(s.sources)), Frames: s.frames, Readings: s.readings,
		Failed: h.Failed, CRCFailures: s.crc, FramesPerMinute: map[string]float64{},
		UptimeS: int64(now.Sub(s.started) / time.Second), Settings: radioSettings(s.radio)}
	live := false
	for _, src := range s.sources {
		d.Inputs = append(d.Inputs, src.Name())
		live = live || src.Live()
		if rep, ok := radioReportOf(src); ok {
			d.Demodulator = &rep
		}
	}
	if !s.lastFrame.IsZero() {
		t := s.lastFrame.UTC()
		d.LastFrame = &t
	}
	failing, detail := strings.HasPrefix(h.Source, "input failed"), h.Source
	if p := s.pstats; p != nil {
		d.Reopens = uint64(p.Reopens.Load())
		if failing = !p.Healthy(); failing {
			detail = "input failed"
			if e := p.LastErr.Load(); e != nil {
				detail += ": " + *e
			}
		}
	}
	switch {
	case failing:
		d.State, d.StateDetail = "reconnecting", detail
	case live && !s.lastFrame.IsZero() && now.Sub(s.lastFrame) > radioStallAfter:
		d.State = "stalled"
	case live && s.lastFrame.IsZero() && now.Sub(s.started) > radioStallAfter:
		d.State = "stalled"
	default:
		d.State = "receiving"
	}
	// Frames per minute over the last 5 whole minutes and the current one.
	cur := uint32(now.Unix() / 60)
	for i := range s.modes {
		m := &s.modes[i]
		if m.mode == "" && i > 0 {
			continue
		}
		var n uint32
		for _, c := range m.minute {
			if c.n <= cur && cur-c.n <= 5 {
				n += c.count
			}
		}
		if n == 0 {
			continue
		}
		span := min(now.Sub(s.started).Minutes(), 6)
		name := m.mode
		if name == "" {
			name = "text"
		}
		d.FramesPerMinute[name] = math.Round(float64(n)/max(span, 1)*10) / 10
	}
	return d
}

// formatHz writes a frequency or rate the way the settings are typed.
func formatHz(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func radioSettings(r pipeline.RadioOptions) map[string]any {
	m := map[string]any{}
	add := func(k string, v float64) {
		if v != 0 {
			m[k] = formatHz(v)
		}
	}
	add("sample_rate", r.IQ.SampleRate)
	add("center", r.IQ.CenterHz)
	add("channel", r.Demod.ChannelHz)
	if r.IQ.Gain != "" {
		m["gain"] = r.IQ.Gain
	}
	if r.IQ.PPM != 0 {
		m["ppm"] = r.IQ.PPM
	}
	if r.Demod.Modes != 0 {
		m["modes"] = r.Demod.Modes.String()
	}
	return m
}
