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

// BenchmarkLookup looks up random vectors in one partition of 100,000
// entries (text-embedding-3-small's 1,536 dimensions, and 256) and reports
// the p50 and p99 of one lookup and the heap bytes per entry (vector,
// bookkeeping and a 40-byte text; the response is not counted).
func BenchmarkLookup(b *testing.B) {
	for _, dim := range []int{256, 1536} {
		b.Run(fmt.Sprintf("entries=100000/dim=%d", dim), func(b *testing.B) { benchLookup(b, 100_000, dim) })
	}
}

func benchLookup(b *testing.B, n, dim int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	vec := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := NewMemStore()
	for i := 0; i < n; i++ {
		e := Entry{Partition: "p", Tenant: "acme", Model: "gpt-4o-mini", Text: fmt.Sprintf("question number %024d", i), Vector: vec(), Created: t0}
		if err := s.Put(ctx, e, 0, 24*time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perEntry := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
	queries := make([][]float32, 64)
	for i := range queries {
		queries[i] = vec()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := s.Lookup(ctx, "p", queries[i%len(queries)], 0.95, t0); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds()), "p99-µs")
	b.ReportMetric(perEntry, "bytes/entry")
	runtime.KeepAlive(s)
}
