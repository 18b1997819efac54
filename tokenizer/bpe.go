package tokenizer

import (
	"math"
	"strings"
)

// work counts the steps of the merge, the cutting of long pieces and the
// pre-tokenizer: the quantities that would grow faster than the input if
// an algorithm went quadratic. Tests assert linear bounds on them instead
// of timing anything. It lives in the per-goroutine scratch, so counting
// is a few adds per piece or merge and needs no synchronisation.
type work struct {
	pretok  int64 // bytes the pre-tokenizer examined, its look-ahead included
	cutScan int64 // bytes of long pieces scanned for cuts (see countLong)
	scans   int64 // parts examined by mergeSmall's scans and merge rounds
	merges  int64 // merges made (each costs up to two rank lookups)
	heapOps int64 // heap pushes, pops and heapify steps (each O(log n))
	// How long pieces were merged: by rounds alone, by the heap after a
	// round met a lower-ranked new pair, or by the heap after the rounds'
	// budget ran out. Tests read these to show each path is exercised.
	rounds, lowerPair, budget int64
}

// total is the work a test bounds: every step above that costs time.
func (w *work) total() int64 {
	return w.pretok + w.cutScan + w.scans + w.merges + w.heapOps
}

const noRank = math.MaxUint32

// smallPiece is the piece length up to which the simple quadratic merge
// (tiktoken's own loop) beats the heap.
const smallPiece = 64

// scratch holds per-goroutine buffers reused across calls (via sync.Pool).
type scratch struct {
	work  work
	parts []part
	// long-piece merge state (see mergeLarge)
	pos, next, prev []int32
	rk              []uint32
	heap            []uint64
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
	if b-a > v.maxLen {
		return noRank
	}
	r := v.rank(s[a:b])
	if r < 0 {
		return noRank
	}
	return uint32(r)
}

// mergeSmall runs tiktoken's byte_pair_merge literally on a short piece:
// repeatedly merge the adjacent pair whose concatenation has the lowest
// rank, leftmost first. It returns the part boundaries (last one = len).
func (v *vocab) mergeSmall(piece string, parts []part, w *work) []part {
	w.scans += int64(len(piece))
	parts = parts[:0]
	minR, minI := uint32(noRank), -1
	for i := 0; i < len(piece)-1; i++ {
		r := v.pair[uint16(piece[i])<<8|uint16(piece[i+1])]
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
		w.merges++
		w.scans += int64(len(parts))
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

// mergeLarge computes the same result as mergeSmall on a long piece in
// near-linear time and returns the part boundaries (last one = len(piece))
// in sc.pos. It runs merge rounds (see mergeRound) while they reproduce
// tiktoken's sequence and are cheap, and finishes with the heap (see
// mergeHeap) otherwise. Both work on the same compact state: pos[0..m]
// (part starts, pos[m] = len) and rk[0..m-1] (rank of part i merged with
// part i+1, noRank for the last part): 8 bytes per input byte.
func (v *vocab) mergeLarge(piece string, sc *scratch) []int32 {
	n := len(piece)
	if cap(sc.pos) < n+1 {
		sc.pos = make([]int32, n+1)
		sc.rk = make([]uint32, n+1)
	}
	pos, rk := sc.pos[:n+1], sc.rk[:n+1]
	minR := uint32(noRank)
	for i := 0; i < n-1; i++ {
		pos[i] = int32(i)
		r := v.pair[uint16(piece[i])<<8|uint16(piece[i+1])]
		rk[i] = r
		minR = min(minR, r)
	}
	pos[n-1], rk[n-1], pos[n] = int32(n-1), noRank, int32(n)
	m := n
	// Every round scans the current parts once. Runs of one character
	// halve each round; inputs where rounds merge little (random text)
	// spend at most this budget before the heap takes over.
	budget := 4*n + 1024
	w := &sc.work
	w.scans += int64(n)
	for minR != noRank {
		if budget < m {
			w.budget++
			return pos[:v.mergeHeap(piece, sc, m)+1]
		}
		budget -= m
		w.scans += int64(m)
		m0 := m
		var ok bool
		m, minR, ok = v.mergeRound(piece, pos, rk, m, minR)
		w.merges += int64(m0 - m)
		if !ok {
			w.lowerPair++
			return pos[:v.mergeHeap(piece, sc, m)+1]
		}
	}
	w.rounds++
	return pos[:m+1]
}

// mergeRound merges, left to right, every pair of rank r (the lowest rank
// present) and returns the new number of parts and the lowest rank left.
//
// This is exactly tiktoken's sequence of merges as long as no merge
// creates a pair ranked below r: all pairs of rank r are the same token,
// so the leftmost one is tiktoken's next choice; merging it only changes
// the pairs with its two neighbours, which cannot have rank r (they are
// longer than that token), so the next choice is the next rank-r pair to
// the right that was not consumed (an overlapping one is destroyed, just
// as by tiktoken). The moment a merge yields a neighbour pair ranked below
// r, tiktoken would take that one next: the round stops there, with the
// state equal to tiktoken's after that merge, and reports ok=false (the
// caller continues with the heap from this state).
func (v *vocab) mergeRound(piece string, pos []int32, rk []uint32, m int, r uint32) (int, uint32, bool) {
	next := uint32(noRank)
	w := 0
	i := 0
	// Until the first merge nothing moves.
	for i < m && rk[i] != r {
		i++
	}
	if i > 0 {
		w = i
		for _, x := range rk[:i-1] {
			next = min(next, x)
		}
	}
	for i < m {
		if rk[i] != r {
			pos[w], rk[w] = pos[i], rk[i]
			if w > 0 {
				next = min(next, rk[w-1]) // part w is final, so is that pair
			}
			w++
			i++
			continue
		}
		// Merge parts i and i+1 (rank r implies i+1 < m; pos[m] exists).
		start, end := pos[i], pos[i+2]
		pos[w] = start
		lr := uint32(noRank)
		if w > 0 {
			lr = v.rankOf(piece, int(pos[w-1]), int(end))
			rk[w-1] = lr
			next = min(next, lr)
		}
		rr := uint32(noRank)
		if i+2 < m {
			rr = v.rankOf(piece, int(start), int(pos[i+3]))
		}
		rk[w] = rr
		w++
		i += 2
		if lr < r || rr < r {
			// tiktoken's next merge is not a rank-r pair: hand over.
			copy(pos[w:], pos[i:m+1])
			copy(rk[w:], rk[i:m])
			return w + m - i, noRank, false
		}
	}
	pos[w] = pos[m]
	return w, next, true
}

// mergeHeap finishes the merge from the state pos[0..m], rk[0..m-1] with a
// doubly linked list of parts and a lazy-deletion 4-ary heap of
// rank<<32|index keys (the index order is the position order, so the
// minimum is tiktoken's choice). It compacts the final parts into pos and
// returns their number.
func (v *vocab) mergeHeap(piece string, sc *scratch, m int) int {
	pos, rk := sc.pos, sc.rk
	if cap(sc.next) < m+1 {
		sc.next = make([]int32, m+1)
		sc.prev = make([]int32, m+1)
	}
	next, prev := sc.next[:m+1], sc.prev[:m+1]
	h := sc.heap[:0]
	for i := 0; i < m; i++ {
		next[i] = int32(i + 1)
		prev[i] = int32(i - 1)
		if r := rk[i]; r != noRank {
			h = append(h, uint64(r)<<32|uint64(i))
		}
	}
	next[m], prev[m] = int32(m), int32(m-1)
	w := &sc.work
	w.scans += int64(m)
	w.heapOps += int64(len(h)) // heapify: O(len(h)) sift steps in all
	if len(h) > 1 {
		for i := (len(h) - 2) / 4; i >= 0; i-- {
			heapDown(h, i)
		}
	}
	end := int32(m)
	// pairRank returns the rank of part p merged with its successor.
	pairRank := func(p int32) uint32 {
		q := next[p]
		if q >= end {
			return noRank
		}
		return v.rankOf(piece, int(pos[p]), int(pos[next[q]]))
	}
	for len(h) > 0 {
		top := h[0]
		last := len(h) - 1
		h[0] = h[last]
		h = h[:last]
		if last > 0 {
			heapDown(h, 0)
		}
		w.heapOps++
		p := int32(uint32(top))
		r := uint32(top >> 32)
		if rk[p] != r {
			continue // stale
		}
		w.merges++
		// Merge p with its successor q.
		q := next[p]
		nq := next[q]
		next[p] = nq
		prev[nq] = p
		rk[q] = noRank
		if nr := pairRank(p); nr != noRank {
			rk[p] = nr
			h = append(h, uint64(nr)<<32|uint64(p))
			heapUp(h, len(h)-1)
			w.heapOps++
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
					w.heapOps++
				}
			}
		}
	}
	sc.heap = h[:0]
	k := 0
	for p := int32(0); p < end; p = next[p] {
		pos[k] = pos[p]
		k++
	}
	pos[k] = pos[m]
	return k
}

// release drops buffers grown for a huge piece.
func (sc *scratch) release() {
	if cap(sc.pos) > 1<<20 {
		sc.pos, sc.rk = nil, nil
	}
	if cap(sc.next) > 1<<20 || cap(sc.heap) > 1<<20 {
		sc.next, sc.prev, sc.heap = nil, nil, nil
	}
}

// countPiece returns the number of tokens of one pre-token.
func (e *Encoding) countPiece(piece string, sc *scratch) int {
	if len(piece) == 1 {
		return 1
	}
	if len(piece) <= e.v.maxLen && e.v.rank(piece) >= 0 {
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
		sc.parts = e.v.mergeSmall(piece, sc.parts, &sc.work)
		n = len(sc.parts) - 1
	} else {
		n = e.countLong(piece, sc)
	}
	if ce != nil {
		// The key must not alias the caller's buffer.
		ce.key = strings.Clone(piece)
		ce.count = int32(n)
	}
	return n
}

// countLong counts a long piece segment by segment. The piece is cut
// wherever the merge can never join the two sides: between bytes a, b that
// are adjacent in no token (vocab.cutTable). The segments between cuts are
// merged on their own and their parts concatenated, which is exactly
// tiktoken's result on the whole piece:
//
// The merge starts from single bytes, and every part it forms by merging is
// a token. A part spanning a cut would contain the pair a, b, so none ever
// does, and the pair of parts across a cut never has a rank. tiktoken's
// next merge is the lowest-ranked pair of the whole piece (leftmost among
// equals); it is therefore a pair inside one segment and the lowest
// (leftmost) of that segment's pairs, i.e. the next merge that segment
// would make on its own. By induction on the merges, the whole-piece merge
// is an interleaving of the segments' own merges, and its final parts are
// theirs, in order.
//
// A long piece of random text (e.g. cl100k's single pre-token for a run of
// mixed-case letters) has a cut every few bytes, so it is merged as many
// short segments, in cache, instead of by one heap over the whole piece.
// Runs of one character, or of pairs that occur inside tokens, have no cut
// and go to mergeLarge whole.
func (e *Encoding) countLong(piece string, sc *scratch) int {
	cut := e.v.cutTable()
	sc.work.cutScan += int64(len(piece))
	n, start := 0, 0
	for i := 1; i < len(piece); i++ {
		if isCut(cut, piece, i) {
			n += e.countSegment(piece[start:i], sc)
			start = i
		}
	}
	n += e.countSegment(piece[start:], sc)
	sc.release()
	return n
}

// countSegment counts a piece between cuts (see countLong).
func (e *Encoding) countSegment(seg string, sc *scratch) int {
	switch {
	case len(seg) == 1:
		return 1
	case len(seg) == 2:
		if e.v.pair[uint16(seg[0])<<8|uint16(seg[1])] != noRank {
			return 1
		}
		return 2
	case len(seg) <= e.v.maxLen && e.v.rank(seg) >= 0:
		return 1
	case len(seg) <= smallPiece:
		sc.parts = e.v.mergeSmall(seg, sc.parts, &sc.work)
		return len(sc.parts) - 1
	}
	return len(e.v.mergeLarge(seg, sc)) - 1
}

// encodePiece appends the token ids of one pre-token, cutting long ones
// as countLong does.
func (e *Encoding) encodePiece(dst []int, piece string, sc *scratch) []int {
	if len(piece) <= smallPiece {
		return e.encodeSegment(dst, piece, sc)
	}
	cut := e.v.cutTable()
	sc.work.cutScan += int64(len(piece))
	start := 0
	for i := 1; i < len(piece); i++ {
		if isCut(cut, piece, i) {
			dst = e.encodeSegment(dst, piece[start:i], sc)
			start = i
		}
	}
	dst = e.encodeSegment(dst, piece[start:], sc)
	sc.release()
	return dst
}

// encodeSegment appends the token ids of a piece or of a segment of one.
func (e *Encoding) encodeSegment(dst []int, seg string, sc *scratch) []int {
	if len(seg) <= e.v.maxLen {
		if r := e.v.rank(seg); r >= 0 {
			return append(dst, r)
		}
	}
	if len(seg) <= smallPiece {
		sc.parts = e.v.mergeSmall(seg, sc.parts, &sc.work)
		for i := 0; i+1 < len(sc.parts); i++ {
			dst = append(dst, e.v.rank(seg[sc.parts[i].start:sc.parts[i+1].start]))
		}
		return dst
	}
	pos := e.v.mergeLarge(seg, sc)
	for i := 0; i+1 < len(pos); i++ {
		dst = append(dst, e.v.rank(seg[pos[i]:pos[i+1]]))
	}
	return dst
}
