package evaluator

import (
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Sample chooses records: a fraction (0 < Fraction <= 1) or a count.
// The zero Sample keeps every record.
type Sample struct {
	Fraction float64
	Count    int64
}

// ParseSample reads --sample: "10%", "0.1" (a fraction) or "500" (a count).
func ParseSample(s string) (Sample, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Sample{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || f <= 0 || f > 100 {
			return Sample{}, fmt.Errorf("--sample %q: want a percentage above 0 and at most 100%%", s)
		}
		return Sample{Fraction: f / 100}, nil
	}
	if !strings.ContainsAny(s, ".eE") {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return Sample{}, fmt.Errorf("--sample %q: want a percentage (10%%), a fraction (0.1) or a record count (500)", s)
		}
		return Sample{Count: n}, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1 {
		return Sample{}, fmt.Errorf("--sample %q: a fraction must be above 0 and at most 1", s)
	}
	return Sample{Fraction: f}, nil
}

func (s Sample) all() bool { return s.Count == 0 && (s.Fraction == 0 || s.Fraction >= 1) }

// SampleHash is a record's stable sampling hash: the first 8 bytes of
// SHA-256(seed, id). The same id and seed always give the same hash, so the
// same records are chosen whatever the file order or concurrency.
func SampleHash(seed uint64, id string) uint64 {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h := sha256.New()
	h.Write(b[:])
	h.Write([]byte(id))
	return binary.BigEndian.Uint64(h.Sum(nil)[:8])
}

// inFraction reports whether a hash falls in the first fraction of the range.
func inFraction(h uint64, f float64) bool {
	if f >= 1 {
		return true
	}
	return float64(h) < f*math.Exp2(64)
}

// bottomK keeps the k smallest hashes (a max-heap) to find the threshold of
// a count sample in one streaming pass.
type bottomK struct {
	k int
	h u64MaxHeap
}

type u64MaxHeap []uint64

func (h u64MaxHeap) Len() int           { return len(h) }
func (h u64MaxHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h u64MaxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *u64MaxHeap) Push(x any)        { *h = append(*h, x.(uint64)) }
func (h *u64MaxHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (b *bottomK) add(x uint64) {
	if len(b.h) < b.k {
		heap.Push(&b.h, x)
		return
	}
	if x < b.h[0] {
		b.h[0] = x
		heap.Fix(&b.h, 0)
	}
}

// threshold is the largest hash kept (every record with a hash <= it is chosen).
func (b *bottomK) threshold() uint64 {
	if len(b.h) < b.k {
		return math.MaxUint64
	}
	return b.h[0]
}

// Shard is --shard i/n: this process evaluates the records whose stable
// hash falls in part I of N. The zero Shard keeps every record.
type Shard struct {
	I, N int // 1 ≤ I ≤ N
}

// ParseShard reads --shard "i/n".
func ParseShard(s string) (Shard, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Shard{}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
		return Shard{}, fmt.Errorf("--shard %q: want i/n with 1 ≤ i ≤ n, e.g. 2/4", s)
	}
	return Shard{I: i, N: n}, nil
}

// Holds reports whether the record with id belongs to this shard: the
// first 8 bytes of SHA-256("shard", id) modulo N. It does not depend on the
// sampling seed, so sampling chooses the same records in every shard and
// the shards split them.
func (s Shard) Holds(id string) bool {
	if s.N <= 1 {
		return true
	}
	h := sha256.Sum256([]byte("costctl-shard\x00" + id))
	return binary.BigEndian.Uint64(h[:8])%uint64(s.N) == uint64(s.I-1)
}
