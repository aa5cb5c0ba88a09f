package demod

import (
	"math"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// CRC-aided correction of C1 blocks.
//
// A block whose CRC fails is repaired by flipping at most d.correction of
// its least reliable bits, the cheapest set whose syndrome matches. That is
// only safe when the set is clearly the most likely error pattern: this
// CRC has codewords of weight 2 (x^151 ≡ 1 modulo its polynomial, so two
// errors 151 bits apart cancel) and, over the few hundred bits of a block,
// many of weight 3 and 4. A single real error at a bit that does not look
// weak then has an alias 151 bits away that does, and flipping the alias
// makes the CRC match on a wrong frame; and two real errors 151 bits apart
// pass the CRC unseen, corrected or not. So every accepted set (the empty
// one too, for a block whose CRC matched as received) is compared with the
// cheapest other ways, over the whole block, to explain the same syndrome:
// the set with one bit replaced by its alias, any single bit, any pair, and
// the set plus two weak bits that cancel. The accepted set must be more
// likely than each by correctMarginLLR (in log-likelihood, from the chips'
// reliabilities and the frame's noise), else the block is left failed.

// The candidate bits are at most correctCandidates of the block's least
// reliable ones, and only those weaker than correctWeak times the block's
// mean reliability: a strong chip that is wrong means more errors than the
// bound, and flipping weak ones would then forge a CRC match.
var (
	correctCandidates = 12
	correctWeak       = 0.35
	// correctMarginLLR: the accepted set must be e^5 ≈ 150 times as likely
	// as any alternative (on the scale of clearlyBest, which overstates
	// weak chips' reliability somewhat). Measured at 8–10 dB Eb/N0, where
	// most frames need correction: 5 leaves about one wrong frame in
	// 1500 sent (there were six) and costs 0.1 dB of sensitivity; 8 leaves
	// none in 1500 and costs 0.3 dB.
	correctMarginLLR = 5.0
)

// maxBlockBits is the longest CRC block in bits (format B's first block:
// 126 bytes and the CRC).
const maxBlockBits = 128 * 8

// corrector holds the tables and scratch of the correction, sized once.
type corrector struct {
	poly   uint16   // x^16 mod the CRC polynomial: the syndrome of a block's last data bit
	bitSyn []uint16 // syndrome of each bit of the block (index: chip − first)
	bySyn  []uint16 // per syndrome, 1 + the least reliable bit (chip − first) having it, 0 for none
	order  []int    // candidate chip indices, least reliable first
	synd   []uint16 // syndrome of each candidate
}

func (f *corrector) init() {
	// CRC of the one-bit message 1 without the final XOR is x^16 mod g.
	f.poly = wmbus.CRC([]byte{1}) ^ 0xFFFF
	f.bitSyn = make([]uint16, maxBlockBits)
	f.bySyn = make([]uint16, 1<<16)
	f.order = make([]int, 0, correctCandidates)
	f.synd = make([]uint16, 0, correctCandidates)
}

// syndromes fills bitSyn for the chips [first, last) of block b: what
// flipping that bit alone does to the CRC check. The CRC is linear: a data
// bit with e bits after it in the data adds x^(e+16) mod g, a bit of the
// CRC field its own weight.
func (f *corrector) syndromes(b block, first, last int) {
	crc := b.crc * 8
	for k := crc; k < last; k++ {
		f.bitSyn[k-first] = 1 << uint(crc+15-k)
	}
	r := f.poly
	for k := crc - 1; k >= first; k-- {
		f.bitSyn[k-first] = r
		if r&0x8000 != 0 {
			r = r<<1 ^ f.poly
		} else {
			r <<= 1
		}
	}
}

// correctBlock makes block b's CRC check by flipping at most d.correction of
// its least reliable bits (never the L byte, which fixed the frame length)
// when that set is clearly the most likely error; it returns the number of
// bits flipped.
func (dc *decoder) correctBlock(b block) (int, bool) {
	raw := dc.raw
	syn := wmbus.CRC(raw[b.start:b.crc]) ^ (uint16(raw[b.crc])<<8 | uint16(raw[b.crc+1]))
	if syn == 0 {
		return 0, true
	}
	first, last := max(b.start, 1)*8, (b.crc+2)*8
	f := &dc.fix
	f.syndromes(b, first, last)
	dc.weakBits(first, last)
	f.synd = f.synd[:0]
	for _, k := range f.order {
		f.synd = append(f.synd, f.bitSyn[k-first])
	}
	set, cost, solutions := dc.cheapestFlips(syn)
	// Two solutions among the candidates: ambiguous for certain.
	if set[0] < 0 || solutions > 1 || !dc.clearlyBest(set, cost, syn, first, last) {
		return 0, false
	}
	flipped := 0
	for _, k := range set {
		if k < 0 {
			break
		}
		raw[k/8] ^= 1 << uint(7-k%8)
		dc.soft[k] = -dc.soft[k]
		flipped++
	}
	return flipped, true
}

// surelyClean is for a C1 frame whose CRCs all matched as received: a
// block is refused when two of its weak chips have the same syndrome, so
// that two errors there would have cancelled in the CRC as well (the
// correction's check, for no flips).
func (dc *decoder) surelyClean(nBytes int, format wmbus.Format) bool {
	dc.blocks = appendBlocks(dc.blocks[:0], nBytes, format)
	none := [4]int{-1, -1, -1, -1}
	for _, b := range dc.blocks {
		first, last := max(b.start, 1)*8, (b.crc+2)*8
		dc.fix.syndromes(b, first, last)
		if !dc.clearlyBest(none, 0, 0, first, last) {
			return false
		}
	}
	return true
}

// weakBits fills fix.order with the block's least reliable chips in
// [first, last) that are clearly weaker than a typical chip.
func (dc *decoder) weakBits(first, last int) {
	var mean float64
	for _, v := range dc.soft[first:last] {
		mean += math.Abs(float64(v))
	}
	limit := float32(correctWeak * mean / float64(last-first))
	f := &dc.fix
	f.order = f.order[:0]
	for k := first; k < last; k++ {
		if float32(math.Abs(float64(dc.soft[k]))) < limit {
			f.order = insertByReliability(f.order, k, dc.soft, correctCandidates)
		}
	}
}

// cheapestFlips searches the candidate sets of up to d.correction bits
// whose syndromes add up to syn and returns the cheapest (chip indices,
// −1 after the last), its cost (Σ|soft|) and how many sets matched.
func (dc *decoder) cheapestFlips(syn uint16) (set [4]int, cost float32, solutions int) {
	f := &dc.fix
	best, bestCost := [4]int{-1, -1, -1, -1}, float32(math.Inf(1))
	c := func(i int) float32 { return float32(math.Abs(float64(dc.soft[f.order[i]]))) }
	try := func(s uint16, sum float32, idx [4]int) {
		if s == syn {
			solutions++
			if sum < bestCost {
				best, bestCost = idx, sum
			}
		}
	}
	nc, lim := len(f.synd), dc.d.correction
	for i := range nc {
		try(f.synd[i], c(i), [4]int{i, -1, -1, -1})
		for j := i + 1; j < nc && lim >= 2; j++ {
			s2, c2 := f.synd[i]^f.synd[j], c(i)+c(j)
			try(s2, c2, [4]int{i, j, -1, -1})
			for k := j + 1; k < nc && lim >= 3; k++ {
				s3, c3 := s2^f.synd[k], c2+c(k)
				try(s3, c3, [4]int{i, j, k, -1})
				for l := k + 1; l < nc && lim >= 4; l++ {
					try(s3^f.synd[l], c3+c(l), [4]int{i, j, k, l})
				}
			}
		}
	}
	for n, i := range best {
		if i >= 0 {
			set[n] = f.order[i]
		} else {
			set[n] = -1
		}
	}
	return set, bestCost, solutions
}

// clearlyBest compares the flip set (chip indices, −1 after the last; cost
// Σ|soft|) with the other cheap explanations of syndrome syn over the whole
// block [first, last): each flipped bit replaced by another with the same
// syndrome, any single bit, any pair. With syn 0 and no flips it checks a
// block whose CRC matched as received against two errors that cancel. With noise energy N per chip, a chip of soft value
// v is wrong with log-likelihood ratio about 2|v|/N.
func (dc *decoder) clearlyBest(set [4]int, cost float32, syn uint16, first, last int) bool {
	f := &dc.fix
	in := func(k int) bool { return k == set[0] || k == set[1] || k == set[2] || k == set[3] }
	r := func(k int) float64 { return math.Abs(float64(dc.soft[k])) }
	alt := math.Inf(1)
	n := 0
	for _, k := range set {
		if k >= 0 {
			n++
		}
	}
	// at(s) is the least reliable bit with syndrome s so far, or −1.
	at := func(s uint16) int { return int(f.bySyn[s]) - 1 + first }
	for k := first; k < last; k++ {
		s := f.bitSyn[k-first]
		if s == syn && !(n == 1 && in(k)) {
			alt = math.Min(alt, r(k))
		}
		for _, x := range set {
			if x >= 0 && !in(k) && s == f.bitSyn[x-first] {
				alt = math.Min(alt, float64(cost)-r(x)+r(k))
			}
		}
		if j := at(s); j < first || r(k) < r(j) {
			f.bySyn[s] = uint16(k - first + 1)
		}
	}
	pair := math.Inf(1) // two more errors that cancel: the cheapest two bits of one syndrome
	for k := first; k < last; k++ {
		s := f.bitSyn[k-first]
		if j := at(syn ^ s); j >= first && j != k && !(n == 2 && in(k) && in(j)) {
			alt = math.Min(alt, r(k)+r(j))
		}
		if j := at(s); j != k && !in(k) && !in(j) {
			pair = math.Min(pair, r(k)+r(j))
		}
	}
	alt = math.Min(alt, float64(cost)+pair)
	for k := first; k < last; k++ {
		f.bySyn[f.bitSyn[k-first]] = 0
	}
	_, noise := dc.energies()
	if noise <= 0 {
		return alt > float64(cost)
	}
	return 2*(alt-float64(cost))/noise >= correctMarginLLR
}

// insertByReliability keeps order as the (at most limit) chip indices with
// the smallest |soft|, sorted ascending.
func insertByReliability(order []int, k int, soft []float32, limit int) []int {
	r := math.Abs(float64(soft[k]))
	if len(order) == limit && r >= math.Abs(float64(soft[order[limit-1]])) {
		return order
	}
	if len(order) < limit {
		order = append(order, k)
	}
	i := len(order) - 1
	for ; i > 0 && math.Abs(float64(soft[order[i-1]])) > r; i-- {
		order[i] = order[i-1]
	}
	order[i] = k
	return order
}
