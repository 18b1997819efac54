package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/costctl/costctl/internal/fakeembed"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/semcache"
)

// TestProxySemanticRedisStore: the Redis store keeps entries by partition,
// returns the best first, drops the least recently used beyond the bound,
// skips expired entries and refuses another dimension.
func TestProxySemanticRedisStore(t *testing.T) {
	rdb, prefix := testRedis(t)
	st := NewRedisSemStore(rdb, prefix)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	put := func(part, text string, at time.Time, limit int, ttl time.Duration) {
		t.Helper()
		err := st.Put(ctx, semcache.Entry{Partition: part, Tenant: "acme", Model: "m", Text: text, Vector: fakeembed.Vector(text),
			Response: []byte("answer " + text), Created: at, Cost: pricing.AmountFromPico(1234)}, limit, ttl)
		if err != nil {
			t.Fatal(err)
		}
	}
	texts := func(cs []semcache.Candidate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Text)
		}
		return out
	}
	put("p1", "red apples are sweet", t0, 2, time.Hour)
	put("p1", "green apples are sour", t0.Add(time.Second), 2, time.Hour)
	put("p2", "red apples are sweet", t0, 2, time.Hour)
	cs, err := st.Lookup(ctx, "p1", fakeembed.Vector("red apples are sweet"), 0.1, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(cs); len(got) != 2 || got[0] != "red apples are sweet" || got[1] != "green apples are sour" ||
		string(cs[0].Response) != "answer red apples are sweet" || cs[0].Cost != pricing.AmountFromPico(1234) ||
		cs[0].Tenant != "acme" || cs[0].Partition != "p1" || !cs[0].Created.Equal(t0) || semcache.Cosine(cs[0].Vector, fakeembed.Vector("red apples are sweet")) < 0.9999 {
		t.Fatalf("lookup %v %+v", got, cs[0].Entry)
	}
	// The red entry was used since: the green one goes first.
	if err := st.Touch(ctx, "p1", cs[0].ID); err != nil {
		t.Fatal(err)
	}
	put("p1", "yellow bananas are soft", t0.Add(2*time.Second), 2, time.Hour)
	cs, _ = st.Lookup(ctx, "p1", fakeembed.Vector("red apples are sweet"), -1, t0.Add(3*time.Second))
	if got := texts(cs); len(got) != 2 || got[0] != "red apples are sweet" || got[1] != "yellow bananas are soft" {
		t.Fatalf("after the bound: %v", got)
	}
	// Expired: an hour after it was stored.
	cs, _ = st.Lookup(ctx, "p1", fakeembed.Vector("red apples are sweet"), -1, t0.Add(time.Hour))
	if got := texts(cs); len(got) != 1 || got[0] != "yellow bananas are soft" {
		t.Fatalf("expired: %v", got)
	}
	if _, err := st.Lookup(ctx, "p1", []float32{1, 0}, 0, t0); err == nil {
		t.Fatal("another dimension was looked up")
	}
	if err := st.Touch(ctx, "p1", "gone"); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.ZCard(ctx, prefix+"sem:u:p1").Result(); n != 2 {
		t.Fatalf("%d uses, want 2", n)
	}
}

// TestProxySemanticRedisShared: with --redis, an answer stored by one proxy
// is a semantic hit on another.
func TestProxySemanticRedisShared(t *testing.T) {
	rdb, prefix := testRedis(t)
	mod := func(c *Config) { c.Redis, c.RedisPrefix, c.SemanticStore = rdb, prefix, nil }
	a, b := newSemEnv(t, mod), newSemEnv(t, mod)
	for _, e := range []*semEnv{a, b} {
		e.setPolicy(ledger.Policy{Tenant: "acme", SemanticCache: true})
		e.waitPolicy("acme", func(p ledger.Policy) bool { return p.SemanticCache })
	}
	ka, kb := a.key("acme", "", "ka"), b.key("acme", "", "kb")
	body := semChat(semSys, semStored, "")
	if r := a.do("POST", "/v1/chat/completions", ka, false, body); r.Status != 200 || r.Header.Get("X-Costctl-Cache") == "semantic" {
		t.Fatalf("%d %q", r.Status, r.Header.Get("X-Costctl-Cache"))
	}
	ek := prefix + "sem:e:" + a.partition("acme", body)
	eventually(t, "entry in redis", func() bool { n, _ := rdb.HLen(context.Background(), ek).Result(); return n == 1 })
	r := b.do("POST", "/v1/chat/completions", kb, false, semChat(semSys, semPara, ""))
	if r.Status != 200 || r.Header.Get("X-Costctl-Cache") != "semantic" || r.Header.Get("X-Costctl-Similarity") != similarity(semPara, semStored) ||
		b.up.calls.Load() != 0 {
		t.Fatalf("%d %q %q, upstream %d", r.Status, r.Header.Get("X-Costctl-Cache"), r.Header.Get("X-Costctl-Similarity"), b.up.calls.Load())
	}
	// Another tenant on the second proxy: a miss.
	b.setPolicy(ledger.Policy{Tenant: "globex", SemanticCache: true})
	b.waitPolicy("globex", func(p ledger.Policy) bool { return p.SemanticCache })
	kg := b.key("globex", "", "kg")
	if r := b.do("POST", "/v1/chat/completions", kg, false, body); r.Header.Get("X-Costctl-Cache") == "semantic" || b.up.calls.Load() != 1 {
		t.Fatalf("another tenant: %q", r.Header.Get("X-Costctl-Cache"))
	}
}

// semCounter is a go-redis hook counting what a store asks Redis: commands
// by name and the entry payloads (JSON of a sem:e: hash) it reads.
type semCounter struct {
	mu       sync.Mutex
	cmds     map[string]int
	payloads int // entries read (HMGET values, HGETALL/HSCAN fields)
	bytes    int // their bytes
}

func (c *semCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *semCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		c.count(cmd)
		return err
	}
}

func (c *semCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return err
	}
}

func (c *semCounter) count(cmd redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := cmd.Name()
	c.cmds[name]++
	entries := len(cmd.Args()) > 1 && strings.Contains(fmt.Sprint(cmd.Args()[1]), "sem:e:")
	if !entries {
		return
	}
	switch v := cmd.(type) {
	case *redis.SliceCmd: // HMGET
		for _, x := range v.Val() {
			if s, ok := x.(string); ok {
				c.payloads++
				c.bytes += len(s)
			}
		}
	case *redis.MapStringStringCmd: // HGETALL
		for _, s := range v.Val() {
			c.payloads++
			c.bytes += len(s)
		}
	case *redis.ScanCmd: // HSCAN
		kv, _ := v.Val()
		for i := 1; i < len(kv); i += 2 {
			c.payloads++
			c.bytes += len(kv[i])
		}
	}
}

// take returns the counts since the last take and starts again.
func (c *semCounter) take() (cmds map[string]int, payloads, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmds, payloads, bytes = c.cmds, c.payloads, c.bytes
	c.cmds, c.payloads, c.bytes = map[string]int{}, 0, 0
	return cmds, payloads, bytes
}

// countedClient is another client of rdb's server, its commands counted:
// one "proxy".
func countedClient(t testing.TB, rdb redis.UniversalClient) (*redis.Client, *semCounter) {
	t.Helper()
	c, ok := rdb.(*redis.Client)
	if !ok {
		t.Fatalf("test redis client is a %T", rdb)
	}
	cl := redis.NewClient(c.Options())
	cnt := &semCounter{cmds: map[string]int{}}
	cl.AddHook(cnt)
	t.Cleanup(func() { _ = cl.Close() }) // test client, nothing written through Close
	return cl, cnt
}

// randVec is a random unit vector of dim dimensions.
func randVec(rng *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return semcache.Normalize(v)
}

// nearVec is v moved by noise (relative size eps), normalised.
func nearVec(rng *rand.Rand, v []float32, eps float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = x + float32(eps*rng.NormFloat64()/math.Sqrt(float64(len(v))))
	}
	return semcache.Normalize(out)
}

func semIDs(cs []semcache.Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// TestRedisSemStoreFleet: two stores on one prefix (two proxies) see each
// other's Puts, LRU drops and Touches; expiry is honoured in the index;
// an entry gone from Redis without an event is not a candidate; a new
// store (a restarted proxy) loads the partition once and finds the same.
func TestRedisSemStoreFleet(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	a := NewRedisSemStore(rdb, prefix)
	bc, bn := countedClient(t, rdb)
	b := NewRedisSemStore(bc, prefix)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	put := func(st *RedisSemStore, part, text string, at time.Time, limit int, ttl time.Duration) string {
		t.Helper()
		e := semcache.Entry{Partition: part, Tenant: "acme", Model: "m", Text: text, Vector: fakeembed.Vector(text),
			Response: []byte("answer " + text), Created: at, Cost: pricing.AmountFromPico(7)}
		if err := st.Put(ctx, e, limit, ttl); err != nil {
			t.Fatal(err)
		}
		return semcache.EntryID(part, text)
	}
	look := func(st *RedisSemStore, part, text string, minSim float64, at time.Time) []semcache.Candidate {
		t.Helper()
		cs, err := st.Lookup(ctx, part, fakeembed.Vector(text), minSim, at)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	red := put(a, "p", "red apples are sweet", t0, 3, time.Hour)
	cs := look(b, "p", "red apples are sweet", 0.99, t0)
	if len(cs) != 1 || cs[0].ID != red || string(cs[0].Response) != "answer red apples are sweet" || cs[0].Partition != "p" ||
		cs[0].Tenant != "acme" || cs[0].Cost != pricing.AmountFromPico(7) || cs[0].Similarity < 0.9999 {
		t.Fatalf("a's put through b: %+v", cs)
	}
	if cmds, n, _ := bn.take(); cmds["hscan"] != 1 || cmds["hgetall"] != 0 || n != 2 { // the load, then the hit
		t.Fatalf("b's first lookup: %v, %d payloads; want one hscan, 2 payloads", cmds, n)
	}
	green := put(a, "p", "green apples are sour", t0.Add(time.Second), 3, time.Hour)
	yellow := put(b, "p", "yellow bananas are soft", t0.Add(2*time.Second), 3, time.Hour)
	if got := semIDs(look(a, "p", "green apples are sour", -1, t0.Add(3*time.Second))); len(got) != 3 || got[0] != green {
		t.Fatalf("a sees %v, want 3, green first", got)
	}
	// Red is used (through b): green is the least recently used, and a's
	// next Put drops it; b must not return it.
	if err := b.Touch(ctx, "p", red); err != nil {
		t.Fatal(err)
	}
	blue := put(a, "p", "blue berries are tart", t0.Add(4*time.Second), 3, time.Hour)
	bn.take()
	got := semIDs(look(b, "p", "green apples are sour", -1, t0.Add(5*time.Second)))
	if len(got) != 3 || slices.Contains(got, green) || !slices.Contains(got, red) || !slices.Contains(got, yellow) || !slices.Contains(got, blue) {
		t.Fatalf("after a dropped green, b sees %v (green %s)", got, green)
	}
	if cmds, n, _ := bn.take(); cmds["hscan"] != 0 || n != 2+3 { // yellow and blue indexed, then the 3 candidates
		t.Fatalf("b's catch-up: %v, %d payloads; want no hscan, 5 payloads", cmds, n)
	}
	if n := b.part("p").idx.Load().Len("p"); n != 3 {
		t.Fatalf("b's index holds %d entries, want 3", n)
	}
	// Gone from Redis without an event: not a candidate.
	if err := rdb.HDel(ctx, prefix+"sem:e:p", yellow).Err(); err != nil {
		t.Fatal(err)
	}
	if got := semIDs(look(b, "p", "yellow bananas are soft", -1, t0.Add(5*time.Second))); len(got) != 2 || slices.Contains(got, yellow) {
		t.Fatalf("deleted behind the feed's back, b sees %v", got)
	}
	// Redis decides: an entry changed behind the feed's back (another
	// vector, then an earlier expiry) is checked again when fetched.
	raw, err := rdb.HGet(ctx, prefix+"sem:e:p", blue).Result()
	if err != nil {
		t.Fatal(err)
	}
	var re redisSemEntry
	if err := json.Unmarshal([]byte(raw), &re); err != nil {
		t.Fatal(err)
	}
	blueVec := re.Vector
	for _, change := range []func(){
		func() { re.Vector = packVector(semcache.Normalize(fakeembed.Vector("nothing like it at all"))) },
		func() { re.Vector, re.ExpiresNS = blueVec, t0.Add(5*time.Second).UnixNano() },
	} {
		change()
		js, err := json.Marshal(re)
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.HSet(ctx, prefix+"sem:e:p", blue, js).Err(); err != nil {
			t.Fatal(err)
		}
		if got := semIDs(look(b, "p", "blue berries are tart", 0.9, t0.Add(5*time.Second))); len(got) != 0 {
			t.Fatalf("changed behind the feed's back, b sees %v", got)
		}
	}
	// Expiry: a minute after it was stored, in a partition of its own: the
	// index does not offer it (nothing is read).
	put(a, "ttl", "short lived answer", t0, 0, time.Minute)
	if cs := look(b, "ttl", "short lived answer", 0.9, t0.Add(time.Minute-time.Nanosecond)); len(cs) != 1 {
		t.Fatalf("before expiry: %d candidates", len(cs))
	}
	bn.take()
	if cs := look(b, "ttl", "short lived answer", 0.9, t0.Add(time.Minute)); len(cs) != 0 {
		t.Fatalf("expired, b returned %v", semIDs(cs))
	}
	if cmds, n, _ := bn.take(); n != 0 || cmds["hmget"] != 0 {
		t.Fatalf("an expired entry was read: %v, %d payloads", cmds, n)
	}
	// Another partition's entry is never returned.
	if cs := look(b, "q", "red apples are sweet", -1, t0); len(cs) != 0 {
		t.Fatalf("partition q: %v", semIDs(cs))
	}
	// A restarted proxy: loads the partition once, then sees what b sees.
	cc, cn := countedClient(t, rdb)
	c := NewRedisSemStore(cc, prefix)
	want := semIDs(look(b, "p", "red apples are sweet", -1, t0.Add(6*time.Second)))
	for i := range 2 {
		if got := semIDs(look(c, "p", "red apples are sweet", -1, t0.Add(6*time.Second))); !slices.Equal(got, want) {
			t.Fatalf("restarted store sees %v, b %v", got, want)
		}
		if cmds, _, _ := cn.take(); cmds["hscan"] != 1-i {
			t.Fatalf("lookup %d of the restarted store: %d hscans, want %d", i, cmds["hscan"], 1-i)
		}
	}
	if n := c.part("p").idx.Load().Len("p"); n != 2 { // red and blue: yellow's entry is gone
		t.Fatalf("restarted store's index holds %d, want 2", n)
	}
}

// TestRedisSemStoreFeedGap: a store whose feed position was trimmed away
// (or whose partition began again) loads the partition again.
func TestRedisSemStoreFeedGap(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	a := NewRedisSemStore(rdb, prefix)
	bc, bn := countedClient(t, rdb)
	b := NewRedisSemStore(bc, prefix)
	rng := rand.New(rand.NewPCG(3, 4))
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	vecs := make([][]float32, 5)
	for i := range vecs {
		vecs[i] = randVec(rng, 64)
	}
	put := func(i int) {
		t.Helper()
		e := semcache.Entry{ID: fmt.Sprint("e", i), Partition: "p", Text: fmt.Sprint(i), Vector: vecs[i], Created: t0.Add(time.Duration(i) * time.Second)}
		if err := a.Put(ctx, e, 3, 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		put(i)
	}
	if cs, err := b.Lookup(ctx, "p", vecs[0], 0.99, t0); err != nil || len(cs) != 1 || cs[0].ID != "e0" {
		t.Fatalf("%v %v", semIDs(cs), err)
	}
	put(3) // drops e0
	// The feed loses the events b has not read: it begins again at 1.
	if err := rdb.XTrimMaxLen(ctx, prefix+"sem:x:p", 0).Err(); err != nil {
		t.Fatal(err)
	}
	put(4) // drops e1
	bn.take()
	for i, want := range []int{0, 0, 2, 3, 4} {
		cs, err := b.Lookup(ctx, "p", vecs[i], 0.99, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if got := semIDs(cs); (want == 0 && len(got) != 0) || (want != 0 && !slices.Equal(got, []string{fmt.Sprint("e", i)})) {
			t.Fatalf("vector %d after the gap: %v", i, got)
		}
	}
	if cmds, _, _ := bn.take(); cmds["hscan"] != 1 {
		t.Fatalf("%d loads after the gap, want 1", cmds["hscan"])
	}
}

// TestRedisSemLookupReadsCandidates: a lookup in a 2,000-entry partition
// reads at most MaxCandidates entries from Redis (the partition is read
// once, on the first lookup).
func TestRedisSemLookupReadsCandidates(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	a := NewRedisSemStore(rdb, prefix)
	bc, bn := countedClient(t, rdb)
	b := NewRedisSemStore(bc, prefix)
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const n, dim = 2000, 64
	vecs := make([][]float32, n)
	for i := range vecs {
		vecs[i] = randVec(rng, dim)
	}
	for i, v := range vecs {
		e := semcache.Entry{ID: fmt.Sprint("e", i), Partition: "p", Text: fmt.Sprint(i), Vector: v, Response: []byte("r"), Created: t0}
		if err := a.Put(ctx, e, DefaultSemanticMaxEntries, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Lookup(ctx, "p", vecs[0], 0.99, t0); err != nil {
		t.Fatal(err)
	}
	if cmds, payloads, _ := bn.take(); cmds["hscan"] == 0 || payloads != n+1 {
		t.Fatalf("first lookup: %v, %d payloads; want the partition (%d) and the hit", cmds, payloads, n)
	}
	for i := range 20 {
		q, minSim, want := nearVec(rng, vecs[i*97], 0.1), 0.95, fmt.Sprint("e", i*97)
		if i%4 == 3 {
			minSim = -1 // every entry qualifies
		}
		cs, err := b.Lookup(ctx, "p", q, minSim, t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 0 || cs[0].ID != want || (minSim < 0 && len(cs) != semcache.MaxCandidates) {
			t.Fatalf("lookup %d: %v, want %s first", i, semIDs(cs), want)
		}
		cmds, payloads, _ := bn.take()
		if payloads > semcache.MaxCandidates || cmds["hscan"] != 0 || cmds["hgetall"] != 0 {
			t.Fatalf("lookup %d read %d entries (%v), want at most %d", i, payloads, cmds, semcache.MaxCandidates)
		}
	}
}

// TestRedisSemStoreConcurrent: two stores storing and looking up in one
// bounded partition at once end with the same entries as Redis.
func TestRedisSemStoreConcurrent(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	stores := []*RedisSemStore{NewRedisSemStore(rdb, prefix), NewRedisSemStore(rdb, prefix)}
	rng := rand.New(rand.NewPCG(5, 6))
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const workers, each, limit = 4, 40, 50
	vecs := make([][]float32, workers*each)
	for i := range vecs {
		vecs[i] = randVec(rng, 32)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := stores[w%2]
			for i := w * each; i < (w+1)*each; i++ {
				e := semcache.Entry{ID: fmt.Sprint("e", i), Partition: "p", Text: fmt.Sprint(i), Vector: vecs[i], Created: t0}
				if err := st.Put(ctx, e, limit, time.Hour); err != nil {
					errs <- err
					return
				}
				cs, err := st.Lookup(ctx, "p", vecs[i], 0.99, t0)
				if err != nil {
					errs <- err
					return
				}
				if len(cs) > 0 {
					if err := st.Touch(ctx, "p", cs[0].ID); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	live, err := rdb.HKeys(ctx, prefix+"sem:e:p").Result()
	if err != nil || len(live) != limit {
		t.Fatalf("redis holds %d entries (%v), want %d", len(live), err, limit)
	}
	for si, st := range stores {
		for i, v := range vecs {
			cs, err := st.Lookup(ctx, "p", v, 0.99, t0)
			if err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprint("e", i)
			if found := len(cs) == 1 && cs[0].ID == id; found != slices.Contains(live, id) {
				t.Fatalf("store %d: %s found %v, in redis %v", si, id, found, slices.Contains(live, id))
			}
		}
		if n := st.part("p").idx.Load().Len("p"); n != limit {
			t.Fatalf("store %d's index holds %d entries, want %d", si, n, limit)
		}
	}
}

// BenchmarkRedisSemLookup: lookups through one store ("proxy") of a
// partition of 10,000 entries of 256 dimensions stored through another,
// each a near-duplicate of a stored entry (a hit at 0.95). Reported: p50
// and p99 latency, and the entries read from Redis per lookup.
func BenchmarkRedisSemLookup(b *testing.B) {
	rdb, prefix := testRedis(b)
	ctx := context.Background()
	a := NewRedisSemStore(rdb, prefix)
	lc, cnt := countedClient(b, rdb)
	st := NewRedisSemStore(lc, prefix)
	rng := rand.New(rand.NewPCG(7, 8))
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const n, dim = 10_000, 256
	vecs := make([][]float32, n)
	for i := range vecs {
		vecs[i] = randVec(rng, dim)
		e := semcache.Entry{ID: fmt.Sprint("e", i), Partition: "p", Tenant: "acme", Model: "m", Text: fmt.Sprint("question ", i),
			Vector: vecs[i], Response: make([]byte, 1024), Created: t0}
		if err := a.Put(ctx, e, n, 0); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	if _, err := st.Lookup(ctx, "p", vecs[0], 0.95, t0); err != nil {
		b.Fatal(err)
	}
	loaded := time.Now()
	load := loaded.Sub(start)
	queries := make([][]float32, 1024)
	want := make([]string, len(queries))
	for i := range queries {
		j := rng.IntN(n)
		queries[i], want[i] = nearVec(rng, vecs[j], 0.2), fmt.Sprint("e", j)
	}
	cnt.take()
	var lat []time.Duration
	hits, i := 0, 0
	b.ResetTimer()
	for b.Loop() {
		q := i % len(queries)
		t1 := time.Now()
		cs, err := st.Lookup(ctx, "p", queries[q], 0.95, t0)
		t2 := time.Now()
		lat = append(lat, t2.Sub(t1))
		if err != nil {
			b.Fatal(err)
		}
		if len(cs) > 0 && cs[0].ID == want[q] {
			hits++
		}
		i++
	}
	b.StopTimer()
	_, payloads, bytes := cnt.take()
	b.ReportMetric(us(pct(lat, .5)), "p50-µs")
	b.ReportMetric(us(pct(lat, .99)), "p99-µs")
	b.ReportMetric(float64(payloads)/float64(i), "entries-read/op")
	b.ReportMetric(float64(bytes)/float64(i), "bytes-read/op")
	b.ReportMetric(float64(hits)/float64(i), "recall")
	b.ReportMetric(float64(load.Microseconds())/1e3, "first-load-ms")
}

// TestRedisSemStoreSweep: a partition's local index idle for semIdle is
// dropped (the entries stay in Redis); the next lookup loads it again and
// finds what another proxy stored meanwhile. Keyed lookups and Holds go
// through the same index.
func TestRedisSemStoreSweep(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	a, b := NewRedisSemStore(rdb, prefix), NewRedisSemStore(rdb, prefix)
	rng := rand.New(rand.NewPCG(5, 6))
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	v1, v2 := randVec(rng, 32), randVec(rng, 32)
	put := func(id, text string, v []float32) {
		t.Helper()
		if err := a.Put(ctx, semcache.Entry{ID: id, Partition: "p", Text: text, Vector: v, Created: t0}, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	put("e1", "refund window for order 1", v1)
	if cs, err := b.LookupKey(ctx, "p", semcache.LexicalKey("the refund window for order 1?"), v1, 0.99, t0); err != nil || len(cs) != 1 || cs[0].ID != "e1" {
		t.Fatalf("keyed lookup: %v %v", semIDs(cs), err)
	}
	if h, err := b.Holds(ctx, "p", semcache.LexicalKey("refund window for order 2"), t0); err != nil || h {
		t.Fatalf("Holds for another order: %v %v", h, err)
	}
	if n := b.Sweep(time.Now()); n != 0 {
		t.Fatalf("swept %d indexes in use", n)
	}
	if n := b.Sweep(time.Now().Add(semIdle)); n != 1 {
		t.Fatalf("swept %d idle indexes, want 1", n)
	}
	put("e2", "refund window for order 2", v2)
	if h, err := b.Holds(ctx, "p", semcache.LexicalKey("refund window for order 2"), t0); err != nil || !h {
		t.Fatalf("Holds after the reload: %v %v", h, err)
	}
	if cs, err := b.LookupKey(ctx, "p", semcache.LexicalKey("refund window for order 2"), v2, 0.99, t0); err != nil || len(cs) != 1 || cs[0].ID != "e2" {
		t.Fatalf("after the reload: %v %v", semIDs(cs), err)
	}
}
