package tokenizer

import (
	"math"
	"strings"
)

const noRank = math.MaxUint32

// smallPiece is the piece length up to which the simple quadratic merge
// (tiktoken's own loop) beats the heap.
const smallPiece = 64

// scratch holds per-goroutine buffers reused across calls (via sync.Pool).
type scratch struct {
	parts []part
	// heap merge state
	next, prev []int32
	rk         []uint32
	heap       []uint64
	// count cache: pieces that are not single tokens -> token count
	cache [cacheSize]cacheEntry
}

type part struct {
	start int32
	rank  uint32
}

const (
	cacheSize     = 4096
	cacheMaxPiece = 48
)

type cacheEntry struct {
	key   string
	count int32
}

func (v *vocab) rankOf(s string, a, b int) uint32 {
	r := v.rank(s[a:b])
	if r < 0 {
		return noRank
	}
	return uint32(r)
}

// mergeSmall runs tiktoken's byte_pair_merge literally on a short piece:
// repeatedly merge the adjacent pair whose concatenation has the lowest
// rank, leftmost first. It returns the part boundaries (last one = len).
func (v *vocab) mergeSmall(piece string, parts []part) []part {
	parts = parts[:0]
	minR, minI := uint32(noRank), -1
	for i := 0; i < len(piece)-1; i++ {
		r := v.rankOf(piece, i, i+2)
		if r < minR {
			minR, minI = r, i
		}
		parts = append(parts, part{int32(i), r})
	}
	parts = append(parts, part{int32(len(piece) - 1), noRank}, part{int32(len(piece)), noRank})
	getRank := func(i int) uint32 {
		if i+3 < len(parts) {
			return v.rankOf(piece, int(parts[i].start), int(parts[i+3].start))
		}
		return noRank
	}
	for minR != noRank {
		i := minI
		if i > 0 {
			parts[i-1].rank = getRank(i - 1)
		}
		parts[i].rank = getRank(i)
		parts = append(parts[:i+1], parts[i+2:]...)
		minR, minI = noRank, -1
		for j := 0; j < len(parts)-1; j++ {
			if parts[j].rank < minR {
				minR, minI = parts[j].rank, j
			}
		}
	}
	return parts
}

// 4-ary min-heap of (rank<<32 | start) keys: the minimum is the lowest
// rank, and among equal ranks the leftmost pair, exactly tiktoken's choice.
func heapUp(h []uint64, i int) {
	x := h[i]
	for i > 0 {
		p := (i - 1) / 4
		if h[p] <= x {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = x
}

func heapDown(h []uint64, i int) {
	n := len(h)
	x := h[i]
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		end := min(c+4, n)
		for k := c + 1; k < end; k++ {
			if h[k] < h[m] {
				m = k
			}
		}
		if h[m] >= x {
			break
		}
		h[i] = h[m]
		i = m
	}
	h[i] = x
}

// mergeLarge computes the same result as mergeSmall in O(n log n) with a
// doubly linked list of parts and a lazy-deletion binary heap. It calls
// emit(start, end) for every final part in order.
func (v *vocab) mergeLarge(piece string, sc *scratch, emit func(a, b int)) {
	n := len(piece)
	if cap(sc.next) < n+1 {
		sc.next = make([]int32, n+1)
		sc.prev = make([]int32, n+1)
		sc.rk = make([]uint32, n+1)
	}
	next, prev, rk := sc.next[:n+1], sc.prev[:n+1], sc.rk[:n+1]
	h := sc.heap[:0]
	for i := 0; i < n; i++ {
		next[i] = int32(i + 1)
		prev[i] = int32(i - 1)
		r := uint32(noRank)
		if i+2 <= n {
			r = v.rankOf(piece, i, i+2)
		}
		rk[i] = r
		if r != noRank {
			h = append(h, uint64(r)<<32|uint64(i))
		}
	}
	next[n] = int32(n)
	prev[n] = int32(n - 1)
	if len(h) > 1 {
		for i := (len(h) - 2) / 4; i >= 0; i-- {
			heapDown(h, i)
		}
	}
	// pairRank returns the rank of part p merged with its successor.
	pairRank := func(p int32) uint32 {
		q := next[p]
		if q >= int32(n) {
			return noRank
		}
		return v.rankOf(piece, int(p), int(next[q]))
	}
	for len(h) > 0 {
		top := h[0]
		last := len(h) - 1
		h[0] = h[last]
		h = h[:last]
		if last > 0 {
			heapDown(h, 0)
		}
		p := int32(uint32(top))
		r := uint32(top >> 32)
		if rk[p] != r {
			continue // stale
		}
		// Merge p with its successor q.
		q := next[p]
		nq := next[q]
		next[p] = nq
		if nq <= int32(n) {
			prev[nq] = p
		}
		rk[q] = noRank
		if nr := pairRank(p); nr != noRank {
			rk[p] = nr
			h = append(h, uint64(nr)<<32|uint64(p))
			heapUp(h, len(h)-1)
		} else {
			rk[p] = noRank
		}
		if pp := prev[p]; pp >= 0 {
			nr := pairRank(pp)
			if nr != rk[pp] {
				rk[pp] = nr
				if nr != noRank {
					h = append(h, uint64(nr)<<32|uint64(pp))
					heapUp(h, len(h)-1)
				}
			}
		}
	}
	sc.heap = h[:0]
	for p := 0; p < n; p = int(next[p]) {
		emit(p, int(next[p]))
	}
	if cap(sc.next) > 1<<20 { // do not keep huge buffers around
		sc.next, sc.prev, sc.rk, sc.heap = nil, nil, nil, nil
	}
}

// countPiece returns the number of tokens of one pre-token.
func (e *Encoding) countPiece(piece string, sc *scratch) int {
	if len(piece) == 1 {
		return 1
	}
	if e.v.rank(piece) >= 0 {
		return 1
	}
	var ce *cacheEntry
	if len(piece) <= cacheMaxPiece {
		ce = &sc.cache[hashStr(piece)&(cacheSize-1)]
		if ce.key == piece {
			return int(ce.count)
		}
	}
	var n int
	if len(piece) <= smallPiece {
		sc.parts = e.v.mergeSmall(piece, sc.parts)
		n = len(sc.parts) - 1
	} else {
		e.v.mergeLarge(piece, sc, func(a, b int) { n++ })
	}
	if ce != nil {
		// The key must not alias the caller's buffer.
		ce.key = strings.Clone(piece)
		ce.count = int32(n)
	}
	return n
}

// encodePiece appends the token ids of one pre-token.
func (e *Encoding) encodePiece(dst []int, piece string, sc *scratch) []int {
	if r := e.v.rank(piece); r >= 0 {
		return append(dst, r)
	}
	if len(piece) <= smallPiece {
		sc.parts = e.v.mergeSmall(piece, sc.parts)
		for i := 0; i+1 < len(sc.parts); i++ {
			dst = append(dst, e.v.rank(piece[sc.parts[i].start:sc.parts[i+1].start]))
		}
		return dst
	}
	e.v.mergeLarge(piece, sc, func(a, b int) {
		dst = append(dst, e.v.rank(piece[a:b]))
	})
	return dst
}
