package semcache

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// The in-process store's prefilter: a SimHash (random-hyperplane) signature
// per entry, scanned by Hamming distance before any exact dot product.
//
// Each stored vector gets a 256-bit signature: the signs of 256 coordinates
// of a fixed pseudo-random rotation of the vector (three rounds of seeded
// random sign flips and a fast Walsh–Hadamard transform over the vector
// zero-padded to a power of two, the structured rotation FALCONN uses; it
// costs O(d log d), not the O(256·d) of dense Gaussian hyperplanes). Two
// unit vectors at angle θ differ in each bit with probability θ/π, so their
// Hamming distance is about Binomial(256, θ/π): at cosine 0.95 about 26 bits,
// two unrelated vectors about 128.
//
// A lookup at minSim considers only entries within hammingBound(minSim) bits
// of the query (a vector exactly at minSim is farther with probability below
// prefilterTail), keeps the prefilterK nearest of those, and ranks them by
// their exact cosine similarity on the stored float32 vector. The prefilter
// can only MISS an entry (the request then goes upstream); it never lets a
// candidate below minSim through, since every candidate's similarity is the
// exact dot product. Recall drops when more than prefilterK live entries lie
// within the bound of a query (a partition crowded with near-duplicates of
// it): then only the prefilterK nearest signatures are ranked. Small
// partitions (exactScanBelow) and low thresholds (a bound of half the bits
// or more, about minSim < 0.5) are scanned exactly, as before.
// TestSemIndexRecall measures recall on planted near-duplicates.

const (
	sigBits  = 256
	sigWords = sigBits / 64
	// prefilterK bounds how many entries one lookup ranks exactly.
	prefilterK = 128
	// prefilterTail is the chance a vector exactly at minSim falls outside
	// the Hamming bound (under the random-hyperplane model).
	prefilterTail = 1e-9
	// simhashSeed fixes the rotation: signatures are comparable across
	// stores and runs.
	simhashSeed = 0x5eca_c4e1_d00d_f00d
	hashRounds  = 3
)

// exactScanBelow: partitions with fewer entries are scanned exactly (the
// prefilter would not save work). A variable so tests can force the index.
var exactScanBelow = 1024

type signature [sigWords]uint64

// simhasher computes signatures of vectors of one dimension.
type simhasher struct {
	dim   int
	n     int         // padded length: a power of two ≥ max(dim, sigBits)
	signs [][]float32 // hashRounds × n of ±1
	// scratch: *[]float32 of length n, for sign.
	scratch sync.Pool
}

// simhashers holds one simhasher per dimension (*simhasher by int), shared
// by every partition: they are fixed by the seed.
var simhashers sync.Map

func simhasherFor(dim int) *simhasher {
	if h, ok := simhashers.Load(dim); ok {
		return h.(*simhasher)
	}
	h, _ := simhashers.LoadOrStore(dim, newSimhasher(dim))
	return h.(*simhasher)
}

func newSimhasher(dim int) *simhasher {
	n := sigBits
	for n < dim {
		n <<= 1
	}
	rng := rand.New(rand.NewPCG(simhashSeed, uint64(n)))
	h := &simhasher{dim: dim, n: n, signs: make([][]float32, hashRounds)}
	h.scratch.New = func() any { b := make([]float32, n); return &b }
	for r := range h.signs {
		s := make([]float32, n)
		for i := range s {
			if rng.Uint64()&1 == 0 {
				s[i] = 1
			} else {
				s[i] = -1
			}
		}
		h.signs[r] = s
	}
	return h
}

// sign returns v's signature; buf is scratch of length h.n (nil: a pooled
// one).
func (h *simhasher) sign(v []float32, buf []float32) signature {
	if len(buf) < h.n {
		p := h.scratch.Get().(*[]float32)
		defer h.scratch.Put(p)
		buf = *p
	}
	x := buf[:h.n]
	copy(x, v)
	clear(x[len(v):])
	for _, s := range h.signs {
		for i := range x {
			x[i] *= s[i]
		}
		fwht(x)
	}
	// Take sigBits coordinates spread over the padded length.
	step := h.n / sigBits
	var sig signature
	for b := 0; b < sigBits; b++ {
		if x[b*step] > 0 {
			sig[b>>6] |= 1 << (b & 63)
		}
	}
	return sig
}

// fwht is the unnormalised fast Walsh–Hadamard transform, in place; len(x)
// is a power of two, at least 4. The first two levels go together.
func fwht(x []float32) {
	n := len(x)
	for i := 0; i+4 <= n; i += 4 {
		y := x[i : i+4 : i+4]
		a, b, c, d := y[0]+y[1], y[0]-y[1], y[2]+y[3], y[2]-y[3]
		y[0], y[1], y[2], y[3] = a+c, b+d, a-c, b-d
	}
	for h := 4; h < n; h <<= 1 {
		for i := 0; i < n; i += h << 1 {
			a, b := x[i:i+h], x[i+h:i+2*h]
			b = b[:len(a)]
			for j := range a {
				u, v := a[j], b[j]
				a[j], b[j] = u+v, u-v
			}
		}
	}
}

// hammingBound is the largest Hamming distance the prefilter accepts at
// minSim: the smallest h with P(Binomial(sigBits, θ/π) > h) ≤ prefilterTail
// for θ = arccos(minSim). It is sigBits (everything passes) when minSim ≤ 0.
func hammingBound(minSim float64) int {
	if c := lastBound.Load(); c != nil && c.minSim == minSim {
		return c.bound
	}
	b := computeHammingBound(minSim)
	lastBound.Store(&boundMemo{minSim, b})
	return b
}

// lastBound memoises the last hammingBound: callers use one threshold or a
// few.
var lastBound atomic.Pointer[boundMemo]

type boundMemo struct {
	minSim float64
	bound  int
}

func computeHammingBound(minSim float64) int {
	if minSim <= 0 || math.IsNaN(minSim) {
		return sigBits
	}
	if minSim >= 1 {
		minSim = 1
	}
	p := math.Acos(minSim) / math.Pi
	if p <= 0 {
		return 0
	}
	// Sum the upper tail P(X > k) from k = n down, the pmf in log space by
	// its recurrence: pmf(k-1) = pmf(k) · k/(n-k+1) · (1-p)/p.
	const n = sigBits
	logPmf := float64(n) * math.Log(p) // pmf(n) = p^n
	lqp := math.Log1p(-p) - math.Log(p)
	tail := 0.0 // P(X > k)
	for k := n; k > 0; k-- {
		tail += math.Exp(logPmf) // now P(X > k-1)
		if tail > prefilterTail {
			return k
		}
		logPmf += math.Log(float64(k)/float64(n-k+1)) + lqp
	}
	return 0
}

// prefilter puts in nn the (at most prefilterK) live entries of p whose
// signatures are nearest to qs, within bound bits.
func (p *memPart) prefilter(qs signature, bound int, now time.Time, nn *nearest) {
	q0, q1, q2, q3 := qs[0], qs[1], qs[2], qs[3]
	limit := bound // accept d ≤ limit
	for i := range p.sigs {
		s := &p.sigs[i]
		d := bits.OnesCount64(s[0]^q0) + bits.OnesCount64(s[1]^q1) +
			bits.OnesCount64(s[2]^q2) + bits.OnesCount64(s[3]^q3)
		if d > limit {
			continue
		}
		me := p.slots[i]
		if !me.expires.IsZero() && !now.Before(me.expires) {
			continue
		}
		nn.add(d, int32(i))
		if nn.full() {
			// Ties with the worst lose: it has the earlier slot.
			limit = min(bound, nn.worst()-1)
		}
	}
}

// hit is a candidate of a lookup: an entry and its exact similarity.
type hit struct {
	e   *memEntry
	sim float64
}

// better orders hits: the more similar first, ties the newer first.
func better(a, b hit) bool {
	if a.sim != b.sim {
		return a.sim > b.sim
	}
	return a.e.e.Created.After(b.e.e.Created)
}

// insertHit adds h to top (sorted best first, at most MaxCandidates).
func insertHit(top []hit, h hit) []hit {
	if len(top) == MaxCandidates && !better(h, top[len(top)-1]) {
		return top
	}
	j := len(top)
	if j < MaxCandidates {
		top = append(top, h)
	} else {
		j--
	}
	for j > 0 && better(h, top[j-1]) {
		top[j] = top[j-1]
		j--
	}
	top[j] = h
	return top
}

// nearest keeps the prefilterK entries of smallest Hamming distance: a
// max-heap on distance (ties: the later slot is the worse).
type nearest struct {
	n int
	h [prefilterK]near
}

type near struct {
	d    int32
	slot int32
}

func (a near) worse(b near) bool { return a.d > b.d || (a.d == b.d && a.slot > b.slot) }

func (h *nearest) full() bool    { return h.n == prefilterK }
func (h *nearest) worst() int    { return int(h.h[0].d) }
func (h *nearest) items() []near { return h.h[:h.n] }

func (h *nearest) add(d int, slot int32) {
	x := near{int32(d), slot}
	if h.n < prefilterK {
		i := h.n
		h.n++
		for i > 0 {
			parent := (i - 1) / 2
			if !x.worse(h.h[parent]) {
				break
			}
			h.h[i] = h.h[parent]
			i = parent
		}
		h.h[i] = x
		return
	}
	if !h.h[0].worse(x) {
		return
	}
	i := 0
	for {
		c := 2*i + 1
		if c >= prefilterK {
			break
		}
		if c+1 < prefilterK && h.h[c+1].worse(h.h[c]) {
			c++
		}
		if !h.h[c].worse(x) {
			break
		}
		h.h[i] = h.h[c]
		i = c
	}
	h.h[i] = x
}
