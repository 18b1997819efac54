package proxy

import (
	"context"
	"testing"
	"time"

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
