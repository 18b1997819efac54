package semcache

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"
	"time"
)

func randUnit(rng *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return Normalize(v)
}

// planted returns a unit vector at cosine c to the unit vector v.
func planted(rng *rand.Rand, v []float32, c float64) []float32 {
	u := randUnit(rng, len(v))
	d := Dot(u, v)
	for i := range u { // u ⟂ v
		u[i] -= float32(d) * v[i]
	}
	u = Normalize(u)
	s := math.Sqrt(1 - c*c)
	out := make([]float32, len(v))
	for i := range out {
		out[i] = float32(c*float64(v[i]) + s*float64(u[i]))
	}
	return out
}

// TestSemIndexRecall measures how often a lookup through the prefilter
// finds a planted near-duplicate among random unit vectors, and that no
// candidate is ever below minSim. The counts are exact for the fixed seeds.
func TestSemIndexRecall(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		dim, entries, trials int
		// crowd > 0: every entry is at cosine crowd to one centre (pairs
		// about crowd² similar), so thousands pass the Hamming bound and
		// only the prefilterK nearest are ranked.
		crowd float64
		want  map[float64]int // cosine → planted found
	}{
		{256, 20_000, 1000, 0, map[float64]int{0.90: 1000, 0.95: 1000, 0.98: 1000}},
		{1536, 5_000, 300, 0, map[float64]int{0.90: 300, 0.95: 300, 0.98: 300}},
		{256, 20_000, 1000, 0.9, map[float64]int{0.90: 1000, 0.95: 1000, 0.98: 1000}},
		// Pairs about 0.865 similar: thousands within the 0.89 bounds.
		{256, 20_000, 1000, 0.93, map[float64]int{0.90: 998, 0.95: 1000, 0.98: 1000}},
	} {
		rng := rand.New(rand.NewPCG(7, uint64(tc.dim)))
		s := NewMemStore()
		stored := make([][]float32, tc.entries)
		centre := randUnit(rng, tc.dim)
		for i := range stored {
			stored[i] = randUnit(rng, tc.dim)
			if tc.crowd > 0 {
				stored[i] = planted(rng, centre, tc.crowd)
			}
			if err := s.Put(ctx, Entry{ID: fmt.Sprint(i), Partition: "p", Vector: stored[i], Created: t0}, 0, 0); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []float64{0.90, 0.95, 0.98} {
			minSim := c - 0.01
			found := 0
			for k := 0; k < tc.trials; k++ {
				i := rng.IntN(tc.entries)
				q := planted(rng, stored[i], c)
				got, err := s.Lookup(ctx, "p", q, minSim, t0)
				if err != nil {
					t.Fatal(err)
				}
				for _, g := range got {
					if exact := Cosine(q, stored[i]); g.ID == fmt.Sprint(i) && math.Abs(exact-g.Similarity) > 1e-5 {
						t.Fatalf("similarity %v, exact %v", g.Similarity, exact)
					}
					if g.Similarity < minSim || Dot(Normalize(q), g.Vector) < minSim {
						t.Fatalf("candidate %s at %v below minSim %v", g.ID, g.Similarity, minSim)
					}
					if g.ID == fmt.Sprint(i) {
						found++
					}
				}
			}
			t.Logf("dim %d, %d entries, crowd %.2f: planted at cosine %.2f found %d/%d (minSim %.2f, Hamming bounds %+v)", tc.dim, tc.entries, tc.crowd, c, found, tc.trials, minSim, hammingBound(minSim))
			if found != tc.want[c] {
				t.Errorf("dim %d, cosine %.2f: found %d/%d, want %d", tc.dim, c, found, tc.trials, tc.want[c])
			}
			if c >= 0.95 && found*100 < tc.trials*99 {
				t.Errorf("dim %d, cosine %.2f: recall %d/%d below 99%%", tc.dim, c, found, tc.trials)
			}
		}
	}
}

// TestSemIndexStoreSemantics runs the store's tests with the prefilter on
// for every partition size.
func TestSemIndexStoreSemantics(t *testing.T) {
	defer func(n int) { exactScanBelow = n }(exactScanBelow)
	exactScanBelow = 0
	t.Run("LRUAndTTL", TestSemStoreLRUAndTTL)
	t.Run("Concurrent", TestSemStoreConcurrent)

	// Expired, replaced and dropped entries through the index.
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 4))
	s := NewMemStore()
	var vecs [][]float32
	for i := 0; i < 50; i++ {
		vecs = append(vecs, randUnit(rng, 64))
		ttl := time.Duration(0)
		if i%2 == 1 {
			ttl = time.Minute
		}
		if err := s.Put(ctx, Entry{ID: fmt.Sprint(i), Partition: "p", Vector: vecs[i], Created: t0}, 40, ttl); err != nil {
			t.Fatal(err)
		}
	}
	// 0..9 dropped (limit 40), odd ones expire at t0+1m.
	for i, v := range vecs {
		got, err := s.Lookup(ctx, "p", v, 0.99, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		want := i >= 10 && i%2 == 0
		if (len(got) == 1 && got[0].ID == fmt.Sprint(i)) != want || len(got) > 1 {
			t.Fatalf("entry %d: got %v, want found=%v", i, got, want)
		}
	}
	// Replacing an entry's vector moves its signature too.
	if err := s.Put(ctx, Entry{ID: "20", Partition: "p", Vector: vecs[0], Created: t0}, 40, 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Lookup(ctx, "p", vecs[0], 0.99, t0); len(got) != 1 || got[0].ID != "20" {
		t.Fatalf("replaced: got %v", got)
	}
	if got, _ := s.Lookup(ctx, "p", vecs[20], 0.99, t0); len(got) != 0 {
		t.Fatalf("old vector still found: %v", got)
	}
}

func TestSemIndexHammingBound(t *testing.T) {
	for _, tc := range []struct {
		minSim float64
		want   bounds
	}{{1, bounds{0, 0, 0}}, {0.98, bounds{20, 45, 72}}, {0.95, bounds{25, 60, 98}}, {0.90, bounds{30, 75, 126}}, {0, bounds{64, firstBits, sigBits}}, {-1, bounds{64, firstBits, sigBits}}} {
		if got := hammingBound(tc.minSim); got != tc.want {
			t.Errorf("hammingBound(%v) = %+v, want %+v", tc.minSim, got, tc.want)
		}
	}
	// Monotone: a lower threshold never accepts fewer bits.
	for s := 0.999; s > 0.3; s -= 0.001 {
		if a, b := hammingBound(s), hammingBound(s-0.001); a.word > b.word || a.first > b.first || a.total > b.total {
			t.Fatalf("bound not monotone at %v", s)
		}
	}
}

func BenchmarkSimhash(b *testing.B) {
	for _, dim := range []int{256, 1536} {
		b.Run(fmt.Sprint(dim), func(b *testing.B) {
			h := newSimhasher(dim)
			v := randUnit(rand.New(rand.NewPCG(1, 1)), dim)
			buf := make([]float32, h.n)
			for i := 0; i < b.N; i++ {
				h.sign(v, buf)
			}
		})
	}
	b.Run("bound", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			hammingBound(0.95)
		}
	})
}

// TestSemStoreChunks: vectors kept across chunk boundaries survive drops
// that move the last slot (found again at similarity 1, exactly once), and
// a partition emptied by expiry takes vectors of another dimension.
func TestSemStoreChunks(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(5, 6))
	s := NewMemStore()
	const n, limit = 3*vecChunk + 7, 2*vecChunk + 3
	var vecs [][]float32
	for i := range n {
		vecs = append(vecs, randUnit(rng, 32))
		if err := s.Put(ctx, Entry{ID: fmt.Sprint(i), Partition: "p", Vector: vecs[i], Created: t0}, limit, time.Hour); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 { // touched: the oldest untouched go first
			if err := s.Touch(ctx, "p", fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	found := 0
	for i, v := range vecs {
		got, err := s.Lookup(ctx, "p", v, 0.999, t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 1 || len(got) == 1 && (got[0].ID != fmt.Sprint(i) || got[0].Similarity < 0.99999) {
			t.Fatalf("entry %d: got %+v", i, got)
		}
		found += len(got)
		if len(got) == 1 && !slicesEqualish(got[0].Vector, Normalize(v)) {
			t.Fatalf("entry %d: vector %v, want %v", i, got[0].Vector[:3], Normalize(v)[:3])
		}
	}
	if found != limit || s.Len("p") != limit {
		t.Fatalf("found %d, Len %d, want %d", found, s.Len("p"), limit)
	}
	if got := s.Sweep(t0.Add(time.Hour)); got != limit || s.Len("p") != 0 {
		t.Fatalf("swept %d, %d left", got, s.Len("p"))
	}
	w := randUnit(rng, 48)
	if err := s.Put(ctx, Entry{ID: "w", Partition: "p", Vector: w, Created: t0}, limit, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Lookup(ctx, "p", w, 0.999, t0); err != nil || len(got) != 1 || got[0].ID != "w" || len(got[0].Vector) != 48 {
		t.Fatalf("after a dimension change: %+v, %v", got, err)
	}
}

func slicesEqualish(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if d := a[i] - b[i]; d > 1e-6 || d < -1e-6 {
			return false
		}
	}
	return true
}

// TestSemSigMemo: a Put after a Lookup of the same vector reuses the
// lookup's signature, which is the one it would compute; the memo is
// bounded.
func TestSemSigMemo(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(8, 9))
	s := NewMemStore()
	for i := range exactScanBelow + 8 {
		if err := s.Put(ctx, Entry{ID: fmt.Sprint(i), Partition: "p", Vector: randUnit(rng, 96), Created: t0}, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	v := make([]float32, 96)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	if _, err := s.Lookup(ctx, "p", v, 0.95, t0); err != nil {
		t.Fatal(err)
	}
	if len(s.memo.m) != 1 {
		t.Fatalf("memo holds %d signatures after one prefiltered lookup", len(s.memo.m))
	}
	if err := s.Put(ctx, Entry{ID: "v", Partition: "p", Vector: v, Created: t0}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if len(s.memo.m) != 0 {
		t.Fatalf("memo holds %d signatures after the Put took it", len(s.memo.m))
	}
	p := s.part("p", false)
	me := p.byID["v"]
	want := simhasherFor(96).sign(Normalize(v), nil)
	if got := (signature{p.lo[me.slot], p.hi[me.slot]}); got != want || p.w0[me.slot] != want.lo[0] {
		t.Fatalf("stored signature %x, want %x", got, want)
	}
	for i := range sigMemoMax + 10 {
		s.memo.put([]float32{float32(i)}, signature{})
	}
	if n := len(s.memo.m); n > sigMemoMax || n == 0 {
		t.Fatalf("memo holds %d signatures, bound %d", n, sigMemoMax)
	}
}

// TestSemFWHT: the blocked transform equals the Hadamard matrix product,
// H[i][j] = (-1)^popcount(i&j), at every size the signatures use.
func TestSemFWHT(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	for n := 8; n <= 2048; n <<= 1 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		want := make([]float64, n)
		for i := range want {
			for j, v := range x {
				if bits.OnesCount(uint(i&j))%2 == 1 {
					want[i] -= float64(v)
				} else {
					want[i] += float64(v)
				}
			}
		}
		got := append([]float32(nil), x...)
		fwht(got)
		for i := range got {
			if d := math.Abs(float64(got[i]) - want[i]); d > 1e-3*math.Sqrt(float64(n)) {
				t.Fatalf("n=%d: coordinate %d is %v, want %v", n, i, got[i], want[i])
			}
		}
	}
}
