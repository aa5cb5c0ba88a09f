package pipeline

import (
	"hash/maphash"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// Dedup turns the copies of one telegram — heard by several receivers, or
// by one through two paths — into one frame for the decoder.
//
// A copy is the same CRC-less frame (same meter, access number and
// payload) arriving within Window of the first. The first copy is held for
// Hold so that the copies of the other receivers can join it; then it goes
// to the decoder once, heard by the receiver that heard it best, with the
// list of every receiver that heard it. A copy arriving after the hold
// (a receiver whose buffered frames arrive after a broker restart) is
// counted and dropped: it never gives a second reading.
//
// Memory: for each telegram of the last Window one 64-bit hash in a map
// and a ring (about 40 bytes); a meter sending every 16 s keeps
// Window/16 s of them. Frames wait only for Hold.
type Dedup struct {
	Window time.Duration // default DedupWindow
	Hold   time.Duration // 0: decode at once, without waiting for copies
	// MaxTracked bounds the telegrams remembered (default 1<<22); past it
	// the oldest are forgotten early.
	MaxTracked int

	seed    maphash.Seed
	start   time.Time
	seen    map[uint64]uint32 // hash → arrival, seconds since start
	ring    []tracked         // FIFO by arrival, for expiry
	rhead   int
	rlen    int
	waiting map[uint64]uint64 // hash → sequence number of its pending group
	groups  []Group           // ring of pending groups; reused
	ghead   uint64            // sequence number of the oldest pending group
	gtail   uint64            // sequence number the next group gets
	scratch []byte
	stats   DedupStats
}

// DedupWindow is how long a telegram is remembered by default: long
// enough for the copies of receivers that reconnect after a broker restart,
// far shorter than the 256 telegrams (over an hour) after which a meter's
// access number comes round again.
const DedupWindow = 2 * time.Minute

// DedupStats counts what Dedup saw.
type DedupStats struct {
	Unique    int64 // telegrams handed on
	Joined    int64 // copies that joined a held frame
	Late      int64 // copies that arrived after their frame was handed on
	Forgotten int64 // telegrams forgotten before their window ended (MaxTracked)
}

type tracked struct {
	hash uint64
	at   uint32
}

// Group is one telegram and every copy of it: Frame carries the best
// copy's radio data, Radios every copy's, in arrival order. Valid until
// the next call of Offer or Due.
type Group struct {
	Frame  Frame
	Radios []wmbus.Radio
	due    time.Time
	data   []byte
}

// Stats returns the counters.
func (d *Dedup) Stats() DedupStats { return d.stats }

// Tracked returns how many telegrams are remembered.
func (d *Dedup) Tracked() int { return len(d.seen) }

func (d *Dedup) init(now time.Time) {
	if d.seen != nil {
		return
	}
	if d.Window <= 0 {
		d.Window = DedupWindow
	}
	if d.MaxTracked <= 0 {
		d.MaxTracked = 1 << 22
	}
	d.seed = maphash.MakeSeed()
	d.start = now
	d.seen = map[uint64]uint32{}
	d.waiting = map[uint64]uint64{}
	d.ring = make([]tracked, 64)
	d.groups = make([]Group, 16)
}

// Offer takes a frame that arrived at now; its Data is copied when kept.
// It reports whether the frame was a copy of one already offered.
func (d *Dedup) Offer(f Frame, now time.Time) (dup bool) {
	d.init(now)
	sec := uint32(now.Sub(d.start) / time.Second)
	d.expire(sec)
	data := f.Data
	if !f.Stripped {
		// Text input may carry link-layer CRCs; copies from receivers
		// that removed them must look the same.
		if plain, ff, err := wmbus.AppendDetect(d.scratch[:0], f.Data); err == nil {
			d.scratch = plain
			data, f.Stripped = plain, true
			if f.Radio.Format == "" {
				f.Radio.Format = ff.String()
			}
		}
	}
	h := maphash.Bytes(d.seed, data)
	if _, ok := d.seen[h]; ok {
		if seq, ok := d.waiting[h]; ok {
			g := &d.groups[seq%uint64(len(d.groups))]
			if f.Radio.Better(g.Frame.Radio) {
				g.Frame.Radio = f.Radio
			}
			// A receiver that hands the same telegram over twice (MQTT's
			// QoS 1 may deliver a message again) is listed once.
			if !g.heardBy(f.Radio.Receiver) {
				g.Radios = append(g.Radios, f.Radio)
			}
			d.stats.Joined++
		} else {
			d.stats.Late++
		}
		return true
	}
	d.track(h, sec)
	g := d.push()
	g.data = append(g.data[:0], data...)
	g.Frame = f
	g.Frame.Data = g.data
	g.Radios = append(g.Radios[:0], f.Radio)
	g.due = now.Add(d.Hold)
	d.waiting[h] = d.gtail - 1
	return false
}

// heardBy reports whether the receiver is already among the group's.
func (g *Group) heardBy(receiver string) bool {
	for _, r := range g.Radios {
		if r.Receiver == receiver {
			return true
		}
	}
	return false
}

// Due returns the oldest held frame whose hold has passed at now, or nil.
func (d *Dedup) Due(now time.Time) *Group {
	if d.ghead == d.gtail {
		return nil
	}
	g := &d.groups[d.ghead%uint64(len(d.groups))]
	if g.due.After(now) {
		return nil
	}
	delete(d.waiting, maphash.Bytes(d.seed, g.data))
	d.ghead++
	d.stats.Unique++
	return g
}

// Next returns when the oldest held frame is due; false when none is held.
func (d *Dedup) Next() (time.Time, bool) {
	if d.ghead == d.gtail {
		return time.Time{}, false
	}
	return d.groups[d.ghead%uint64(len(d.groups))].due, true
}

// push appends a pending group, growing the ring when it is full.
func (d *Dedup) push() *Group {
	n := uint64(len(d.groups))
	if d.gtail-d.ghead == n {
		bigger := make([]Group, 2*n)
		for s := d.ghead; s < d.gtail; s++ {
			bigger[s%(2*n)] = d.groups[s%n]
		}
		d.groups = bigger
		n *= 2
	}
	g := &d.groups[d.gtail%n]
	d.gtail++
	return g
}

// track remembers a telegram's hash, forgetting the oldest past MaxTracked.
func (d *Dedup) track(h uint64, sec uint32) {
	if d.rlen == d.MaxTracked {
		d.forget()
		d.stats.Forgotten++
	}
	if d.rlen == len(d.ring) {
		bigger := make([]tracked, min(2*len(d.ring), d.MaxTracked))
		for i := range d.rlen {
			bigger[i] = d.ring[(d.rhead+i)%len(d.ring)]
		}
		d.ring, d.rhead = bigger, 0
	}
	d.ring[(d.rhead+d.rlen)%len(d.ring)] = tracked{h, sec}
	d.rlen++
	d.seen[h] = sec
}

// expire forgets the telegrams that arrived more than Window ago; one
// still held waits for its hold to end first.
func (d *Dedup) expire(sec uint32) {
	win := uint32((d.Window + time.Second - 1) / time.Second)
	for d.rlen > 0 {
		t := d.ring[d.rhead]
		if sec-t.at <= win {
			return
		}
		if _, held := d.waiting[t.hash]; held {
			return
		}
		d.forget()
	}
}

func (d *Dedup) forget() {
	t := d.ring[d.rhead]
	delete(d.seen, t.hash)
	d.rhead = (d.rhead + 1) % len(d.ring)
	d.rlen--
}
