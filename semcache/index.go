package semcache

import (
	"hash/maphash"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The in-process store's prefilter: a SimHash (random-hyperplane) signature
// per entry, scanned by Hamming distance before any exact dot product.
//
// Each stored vector gets a 512-bit signature: the signs of 512 coordinates
// of a fixed pseudo-random rotation of the vector (three rounds of seeded
// random sign flips and a fast Walsh–Hadamard transform over the vector
// zero-padded to a power of two, the structured rotation FALCONN uses; it
// costs O(d log d), not the O(512·d) of dense Gaussian hyperplanes). Two
// unit vectors at angle θ differ in each bit with probability θ/π, so their
// Hamming distance over k bits is about Binomial(k, θ/π).
//
// A lookup at minSim scans the first 64 bits of every signature (kept in a
// slice of their own: 8 bytes an entry) and drops an entry beyond the
// 64-bit bound, which unrelated entries mostly are; the rest are measured on
// the first 256 bits, then on all 512, each against its bound (each bound is
// passed by a vector exactly at minSim except with probability
// prefilterTail/3). The prefilterK nearest of those are ranked by their
// exact cosine similarity on the stored float32 vector. Several stages
// because a short pass is cheap but loose (at minSim 0.95 the 256-bit bound
// lets through about 9% of a partition whose entries are 0.67 similar to
// the query), while 512 bits separate 0.95 from 0.67 by about 8 standard
// deviations (about 1 in 100,000 passes).
//
// The prefilter can only MISS an entry (the request then goes upstream); it
// never lets a candidate below minSim through, since every candidate's
// similarity is the exact dot product. Recall drops when more than
// prefilterK live entries lie within the bound of a query (a partition
// crowded with near-duplicates of it): then only the prefilterK nearest
// signatures are ranked. Small partitions (exactScanBelow) and low
// thresholds (a 512-bit bound of half the bits or more, about minSim < 0.5)
// are scanned exactly. TestSemIndexRecall measures recall on planted
// near-duplicates.

const (
	sigBits  = 512
	sigWords = sigBits / 64
	// firstBits of each signature are scanned first (the first half).
	firstBits = sigBits / 2
	// prefilterK bounds how many entries one lookup ranks exactly.
	prefilterK = 128
	// prefilterTail bounds the chance a vector exactly at minSim falls
	// outside the Hamming bounds (under the random-hyperplane model): half
	// for each stage.
	prefilterTail = 1e-9
	// simhashSeed fixes the rotation: signatures are comparable across
	// stores and runs.
	simhashSeed = 0x5eca_c4e1_d00d_f00d
	hashRounds  = 3
)

// exactScanBelow: partitions with fewer entries are scanned exactly (the
// prefilter would not save work). A variable so tests can force the index.
var exactScanBelow = 32

// half is one half of a signature: 256 bits.
type half [sigWords / 2]uint64

// signature is a vector's 512 bits: lo is scanned first.
type signature struct{ lo, hi half }

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
	for b := 0; b < firstBits; b++ {
		if x[b*step] > 0 {
			sig.lo[b>>6] |= 1 << (b & 63)
		}
		if x[(b+firstBits)*step] > 0 {
			sig.hi[b>>6] |= 1 << (b & 63)
		}
	}
	return sig
}

// fwht is the unnormalised fast Walsh–Hadamard transform, in place; len(x)
// is a power of two, at least 8. The first three levels go together, on
// blocks of 8, then the next two on blocks of 32, then one level at a time.
func fwht(x []float32) {
	n := len(x)
	for i := 0; i+8 <= n; i += 8 {
		y := x[i : i+8 : i+8]
		a0, a1, a2, a3 := y[0]+y[1], y[0]-y[1], y[2]+y[3], y[2]-y[3]
		a4, a5, a6, a7 := y[4]+y[5], y[4]-y[5], y[6]+y[7], y[6]-y[7]
		b0, b1, b2, b3 := a0+a2, a1+a3, a0-a2, a1-a3
		b4, b5, b6, b7 := a4+a6, a5+a7, a4-a6, a5-a7
		y[0], y[1], y[2], y[3] = b0+b4, b1+b5, b2+b6, b3+b7
		y[4], y[5], y[6], y[7] = b0-b4, b1-b5, b2-b6, b3-b7
	}
	h := 8
	for ; h*4 <= n; h *= 4 {
		// Two levels (h and 2h) at once: four quarters of each 4h block.
		for i := 0; i < n; i += 4 * h {
			q0 := x[i : i+h : i+h]
			q1 := x[i+h : i+2*h : i+2*h]
			q2 := x[i+2*h : i+3*h : i+3*h]
			q3 := x[i+3*h : i+4*h : i+4*h]
			q1, q2, q3 = q1[:len(q0)], q2[:len(q0)], q3[:len(q0)]
			for j := range q0 {
				a, b, c, d := q0[j], q1[j], q2[j], q3[j]
				u, v, w, z := a+b, a-b, c+d, c-d
				q0[j], q1[j], q2[j], q3[j] = u+w, v+z, u-w, v-z
			}
		}
	}
	for ; h < n; h <<= 1 {
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

// bounds are the prefilter's Hamming bounds at one minSim: the largest
// distance accepted over the first 64 bits, the first 256 and all 512.
type bounds struct{ word, first, total int }

// hammingBound is the prefilter's bounds at minSim: for k = 256 and 512,
// the smallest h with P(Binomial(k, θ/π) > h) ≤ prefilterTail/2 for
// θ = arccos(minSim). They are k (everything passes) when minSim ≤ 0.
func hammingBound(minSim float64) bounds {
	if c := lastBound.Load(); c != nil && c.minSim == minSim {
		return c.b
	}
	b := bounds{computeHammingBound(minSim, 64, prefilterTail/3), computeHammingBound(minSim, firstBits, prefilterTail/3), computeHammingBound(minSim, sigBits, prefilterTail/3)}
	lastBound.Store(&boundMemo{minSim, b})
	return b
}

// lastBound memoises the last hammingBound: callers use one threshold or a
// few.
var lastBound atomic.Pointer[boundMemo]

type boundMemo struct {
	minSim float64
	b      bounds
}

func computeHammingBound(minSim float64, n int, tailP float64) int {
	if minSim <= 0 || math.IsNaN(minSim) {
		return n
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
	logPmf := float64(n) * math.Log(p) // pmf(n) = p^n
	lqp := math.Log1p(-p) - math.Log(p)
	tail := 0.0 // P(X > k)
	for k := n; k > 0; k-- {
		tail += math.Exp(logPmf) // now P(X > k-1)
		if tail > tailP {
			return k
		}
		logPmf += math.Log(float64(k)/float64(n-k+1)) + lqp
	}
	return 0
}

// prefilter puts in nn the (at most prefilterK) live entries of p whose
// signatures are nearest to qs, within b (first the 256-bit bound on the
// first half, then the 512-bit bound on the whole).
func (p *memPart) prefilter(qs signature, b bounds, now time.Time, nn *nearest) {
	q0, q1, q2, q3 := qs.lo[0], qs.lo[1], qs.lo[2], qs.lo[3]
	h0, h1, h2, h3 := qs.hi[0], qs.hi[1], qs.hi[2], qs.hi[3]
	nowNS := now.UnixNano()
	lo := p.lo
	hi, exp := p.hi[:len(lo)], p.exp[:len(lo)]
	limit := b.total // accept d ≤ limit
	for i, w := range p.w0[:len(lo)] {
		if bits.OnesCount64(w^q0) > b.word {
			continue
		}
		s := &lo[i]
		d := bits.OnesCount64(s[0]^q0) + bits.OnesCount64(s[1]^q1) +
			bits.OnesCount64(s[2]^q2) + bits.OnesCount64(s[3]^q3)
		if d > b.first {
			continue
		}
		t := &hi[i]
		d += bits.OnesCount64(t[0]^h0) + bits.OnesCount64(t[1]^h1) +
			bits.OnesCount64(t[2]^h2) + bits.OnesCount64(t[3]^h3)
		if d > limit || exp[i] <= nowNS {
			continue
		}
		nn.add(d, int32(i))
		if nn.full() {
			// Ties with the worst lose: it has the earlier slot.
			limit = min(b.total, nn.worst()-1)
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

// sigMemo remembers the signatures of recently looked-up vectors, so the Put
// that follows a miss (the same vector) does not compute it again. Keyed by
// a 128-bit hash of the normalised vector's bits: a collision could only
// give an entry a wrong signature, which makes the prefilter miss it (a
// cache miss), never a wrong hit. Bounded: cleared when full.
type sigMemo struct {
	mu sync.Mutex
	m  map[[2]uint64]signature
}

const sigMemoMax = 4096

var sigMemoSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func memoKey(v []float32) [2]uint64 {
	var b []byte
	if len(v) > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
	}
	return [2]uint64{maphash.Bytes(sigMemoSeeds[0], b), maphash.Bytes(sigMemoSeeds[1], b)}
}

func (m *sigMemo) put(v []float32, sig signature) {
	k := memoKey(v)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil || len(m.m) >= sigMemoMax {
		m.m = make(map[[2]uint64]signature)
	}
	m.m[k] = sig
}

// take returns and forgets v's remembered signature.
func (m *sigMemo) take(v []float32) (signature, bool) {
	k := memoKey(v)
	m.mu.Lock()
	defer m.mu.Unlock()
	sig, ok := m.m[k]
	if ok {
		delete(m.m, k)
	}
	return sig, ok
}
