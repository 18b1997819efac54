package semcache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

// BenchmarkLookup looks up vectors in one partition of 10,000 entries (the
// proxy's default bound per partition) and of 100,000, at 256 dimensions and
// at text-embedding-3-small's 1,536, and reports the p50 and p99 of one
// lookup at minSim 0.95 and the heap bytes per entry (vector, signature,
// bookkeeping and a 40-byte text; the response is not counted). Three kinds
// of partition and query:
//   - random: random entries, random queries (misses);
//   - near-duplicate: random entries, each query at cosine 0.97 to a stored
//     entry (hits);
//   - crowded: every entry and query at cosine 0.82 to one centre, so about
//     0.67 to each other (a partition of one narrow topic, the prefilter's
//     worst case: many entries pass it and are ranked exactly), misses.
//
// Each store is built once per size and dimension.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		for _, dim := range []int{256, 1536} {
			rng := rand.New(rand.NewPCG(1, 2))
			centre := Normalize(randVec(rng, dim))
			crowd := func() []float32 { return planted(rng, centre, 0.82) }
			random := func() []float32 { return randVec(rng, dim) }
			var (
				s, sc             *MemStore
				stored            [][]float32
				perEntry, perEntC float64
			)
			name := fmt.Sprintf("entries=%d/dim=%d", n, dim)
			b.Run(name+"/random", func(b *testing.B) {
				if s == nil {
					s, stored, perEntry = benchStore(b, n, random)
				}
				queries := make([][]float32, 64)
				for i := range queries {
					queries[i] = random()
				}
				benchLookup(b, s, queries, perEntry, false)
			})
			b.Run(name+"/near-duplicate", func(b *testing.B) {
				if s == nil {
					s, stored, perEntry = benchStore(b, n, random)
				}
				queries := make([][]float32, 64)
				for i := range queries {
					queries[i] = planted(rng, stored[rng.IntN(len(stored))], 0.97)
				}
				benchLookup(b, s, queries, perEntry, true)
			})
			s, stored = nil, nil
			b.Run(name+"/crowded", func(b *testing.B) {
				if sc == nil {
					sc, _, perEntC = benchStore(b, n, crowd)
				}
				queries := make([][]float32, 64)
				for i := range queries {
					queries[i] = crowd()
				}
				benchLookup(b, sc, queries, perEntC, false)
			})
			sc = nil
		}
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

// benchStore builds a store of n entries from gen in partition "p" and
// returns it, a sample of the stored (normalised) vectors and the heap
// bytes per entry.
func benchStore(b *testing.B, n int, gen func() []float32) (*MemStore, [][]float32, float64) {
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := NewMemStore()
	var sample [][]float32
	dim := 0
	for i := 0; i < n; i++ {
		e := Entry{Partition: "p", Tenant: "acme", Model: "gpt-4o-mini", Text: fmt.Sprintf("question number %024d", i), Vector: gen(), Created: benchT0}
		dim = len(e.Vector)
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

// BenchmarkDot: one exact similarity, at 256 and 1,536 dimensions.
func BenchmarkDot(b *testing.B) {
	for _, dim := range []int{256, 1536} {
		b.Run(fmt.Sprintf("dim=%d", dim), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			x, y := Normalize(randVec(rng, dim)), Normalize(randVec(rng, dim))
			var s float64
			b.ResetTimer()
			for range b.N {
				s += Dot(x, y)
			}
			runtime.KeepAlive(s)
		})
	}
}

// BenchmarkCacheKeyed is what the proxy does per eligible request with the
// in-process store, in one partition of 100,000 entries (256 dimensions),
// each a different question: Holds (is there an entry with the request's
// lexical key?), then for the requests where there is, the keyed Lookup.
// miss: a new question (Holds false, no embedding needed); hit: a stored
// question asked again in other words (Holds true, Lookup ranks its one
// entry).
func BenchmarkCacheKeyed(b *testing.B) {
	ctx := context.Background()
	const n, dim = 100_000, 256
	rng := rand.New(rand.NewPCG(3, 4))
	c := &Cache{Store: NewMemStore(), Now: func() time.Time { return benchT0 }}
	req := func(text string) *Request {
		z := 0.0
		return &Request{Tenant: "acme", Model: "gpt-4o-mini", Temperature: &z,
			Messages: []Message{{Role: "system", Text: "You answer questions about orders."}, {Role: "user", Text: text}}}
	}
	vecs := make([][]float32, 64)
	for i := range n {
		v := randVec(rng, dim)
		if i < len(vecs) {
			vecs[i] = v
		}
		if err := c.Put(ctx, req(fmt.Sprintf("where is order %d for customer %d", i, i*7)), v, []byte("{}"), pricing.Amount{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("miss", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for i := range b.N {
			r := req(fmt.Sprintf("where is order %d for customer %d", n+i, i))
			t0 := time.Now()
			if c.Holds(ctx, r) {
				b.Fatal("a new question is held")
			}
			lat = append(lat, time.Since(t0))
		}
		reportLatency(b, lat)
	})
	b.Run("hit", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for i := range b.N {
			k := i % len(vecs)
			r := req(fmt.Sprintf("Where's order %d, for customer %d?", k, k*7))
			t0 := time.Now()
			if !c.Holds(ctx, r) {
				b.Fatal("a stored question is not held")
			}
			hit, why := c.Lookup(ctx, r, vecs[k])
			lat = append(lat, time.Since(t0))
			if hit == nil {
				b.Fatalf("no hit: %s", why)
			}
		}
		reportLatency(b, lat)
	})
}

func reportLatency(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Nanoseconds())/1e3, "p99-µs")
}
