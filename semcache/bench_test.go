package semcache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"testing"
	"time"
)

// BenchmarkLookup looks up vectors in one partition of 100,000 random
// entries (text-embedding-3-small's 1,536 dimensions, and 256) and reports
// the p50 and p99 of one lookup at minSim 0.95 and the heap bytes per entry
// (vector, signature, bookkeeping and a 40-byte text; the response is not
// counted). The queries of entries=100000/dim=D are random vectors (misses);
// those of .../near-duplicate are at cosine 0.97 to a stored entry (hits).
// The store is built once per dimension.
func BenchmarkLookup(b *testing.B) {
	const n = 100_000
	for _, dim := range []int{256, 1536} {
		var (
			s        *MemStore
			stored   [][]float32
			perEntry float64
			rng      = rand.New(rand.NewPCG(1, 2))
		)
		build := func(b *testing.B) {
			if s == nil {
				s, stored, perEntry = benchStore(b, rng, n, dim)
			}
		}
		name := fmt.Sprintf("entries=%d/dim=%d", n, dim)
		b.Run(name, func(b *testing.B) {
			build(b)
			queries := make([][]float32, 64)
			for i := range queries {
				queries[i] = randVec(rng, dim)
			}
			benchLookup(b, s, queries, perEntry, false)
		})
		b.Run(name+"/near-duplicate", func(b *testing.B) {
			build(b)
			queries := make([][]float32, 64)
			for i := range queries {
				queries[i] = planted(rng, stored[rng.IntN(len(stored))], 0.97)
			}
			benchLookup(b, s, queries, perEntry, true)
		})
		s, stored = nil, nil
	}
}

func randVec(rng *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

var benchT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// benchStore builds a store of n random entries in partition "p" and
// returns it, a sample of the stored (normalised) vectors and the heap
// bytes per entry.
func benchStore(b *testing.B, rng *rand.Rand, n, dim int) (*MemStore, [][]float32, float64) {
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := NewMemStore()
	var sample [][]float32
	for i := 0; i < n; i++ {
		e := Entry{Partition: "p", Tenant: "acme", Model: "gpt-4o-mini", Text: fmt.Sprintf("question number %024d", i), Vector: randVec(rng, dim), Created: benchT0}
		if i%(n/64) == 0 {
			sample = append(sample, Normalize(e.Vector))
		}
		if err := s.Put(ctx, e, 0, 24*time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return s, sample, float64(after.HeapAlloc-before.HeapAlloc-uint64(len(sample)*dim*4)) / float64(n)
}

func benchLookup(b *testing.B, s *MemStore, queries [][]float32, perEntry float64, wantHit bool) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	hits := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		got, err := s.Lookup(ctx, "p", queries[i%len(queries)], 0.95, benchT0)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if len(got) > 0 {
			hits++
		}
	}
	b.StopTimer()
	if wantHit && hits != b.N || !wantHit && hits != 0 {
		b.Fatalf("%d hits in %d lookups", hits, b.N)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds()), "p99-µs")
	b.ReportMetric(perEntry, "bytes/entry")
	runtime.KeepAlive(s)
}
