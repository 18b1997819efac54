package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/semcache"
)

// The ledger store on its own: candidates best first (exact cosine),
// below minSim left out, the bound, a dimension mismatch an error.
func TestProxySemanticLedgerStore(t *testing.T) {
	ctx := context.Background()
	db, err := ledger.Open(ctx, t.TempDir()+"/l.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := newTestClock()
	st, err := SemanticStoreFor(SemStoreLedger, db, nil, "", clock.now)
	if err != nil {
		t.Fatal(err)
	}
	put := func(text string, vec []float32) {
		t.Helper()
		clock.add(time.Millisecond)
		if err := st.Put(ctx, semcache.Entry{Partition: "p", Tenant: "acme", Model: "m", Text: text, Vector: vec,
			Response: []byte(text), Created: clock.now()}, 2, 0); err != nil {
			t.Fatal(err)
		}
	}
	put("x", []float32{2, 0})
	put("xy", []float32{1, 1})
	got, err := st.Lookup(ctx, "p", []float32{3, 0}, 0.5, clock.now())
	if err != nil || len(got) != 2 || got[0].Text != "x" || got[0].Similarity != 1 || got[1].Text != "xy" ||
		got[1].Similarity != semcache.Dot(semcache.Normalize([]float32{1, 1}), semcache.Normalize([]float32{3, 0})) || string(got[0].Response) != "x" {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	if got, _ := st.Lookup(ctx, "p", []float32{3, 0}, 0.99, clock.now()); len(got) != 1 || got[0].Text != "x" {
		t.Fatalf("above 0.99: %+v", got)
	}
	// x is touched: xy is the least recently used and goes at the bound.
	clock.add(time.Millisecond)
	if err := st.Touch(ctx, "p", got[0].ID); err != nil {
		t.Fatal(err)
	}
	put("y", []float32{0, 1})
	if got, _ := st.Lookup(ctx, "p", []float32{1, 1}, -1, clock.now()); len(got) != 2 || got[0].Text == "xy" || got[1].Text == "xy" {
		t.Fatalf("after the bound: %+v", got)
	}
	if _, err := st.Lookup(ctx, "p", []float32{1, 1, 1}, 0, clock.now()); err == nil {
		t.Fatal("a vector of another dimension was looked up")
	}
	if err := st.Put(ctx, semcache.Entry{Partition: "p", Text: "none"}, 0, 0); err == nil {
		t.Fatal("an entry without a vector was stored")
	}
}

// Two proxy servers on one ledger file: an answer stored by one is a hit on
// the other; another tenant misses.
func TestProxySemanticLedgerShared(t *testing.T) {
	ctx := context.Background()
	a := newSemEnv(t, func(c *Config) {
		st, err := SemanticStoreFor(SemStoreLedger, c.Control.(*ledger.DB), nil, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.SemanticStore = st
	})
	b := newSemEnv(t, func(c *Config) {
		db, err := ledger.Open(ctx, a.dbPath) // the first proxy's ledger, opened again
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		st, err := SemanticStoreFor(SemStoreLedger, db, nil, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.SemanticStore = st
	})
	for _, e := range []*semEnv{a, b} {
		e.setPolicy(ledger.Policy{Tenant: "acme", SemanticCache: true})
		e.waitPolicy("acme", func(p ledger.Policy) bool { return p.SemanticCache })
	}
	ka, kb := a.key("acme", "", "ka"), b.key("acme", "", "kb")
	body := semChat(semSys, semStored, "")
	if r := a.do("POST", "/v1/chat/completions", ka, false, body); r.Status != 200 || r.Header.Get("X-Costctl-Cache") == "semantic" {
		t.Fatalf("%d %q", r.Status, r.Header.Get("X-Costctl-Cache"))
	}
	part := a.partition("acme", body)
	eventually(t, "entry in the ledger", func() bool {
		var n int
		_ = a.db.SQL().QueryRow(`SELECT COUNT(*) FROM semantic_entries WHERE "partition" = ?`, part).Scan(&n)
		return n == 1
	})
	r := b.do("POST", "/v1/chat/completions", kb, false, semChat(semSys, semPara, ""))
	if r.Status != 200 || r.Header.Get("X-Costctl-Cache") != "semantic" || r.Header.Get("X-Costctl-Similarity") != similarity(semPara, semStored) ||
		b.up.calls.Load() != 0 {
		t.Fatalf("%d %q %q, upstream %d", r.Status, r.Header.Get("X-Costctl-Cache"), r.Header.Get("X-Costctl-Similarity"), b.up.calls.Load())
	}
	// The hit touched the entry in the shared ledger.
	var created, used int64
	if err := a.db.SQL().QueryRow(`SELECT created_ms, used_ms FROM semantic_entries WHERE "partition" = ?`, part).Scan(&created, &used); err != nil || used < created {
		t.Fatalf("entry after the hit: created %d used %d %v", created, used, err)
	}
	// Another tenant on the second proxy: a miss.
	b.setPolicy(ledger.Policy{Tenant: "globex", SemanticCache: true})
	b.waitPolicy("globex", func(p ledger.Policy) bool { return p.SemanticCache })
	kg := b.key("globex", "", "kg")
	if r := b.do("POST", "/v1/chat/completions", kg, false, body); r.Header.Get("X-Costctl-Cache") == "semantic" || b.up.calls.Load() != 1 {
		t.Fatalf("another tenant: %q", r.Header.Get("X-Costctl-Cache"))
	}
}

// The store kinds: the default follows --redis; a kind without what it
// needs, or an unknown kind, is an error.
func TestSemanticStoreFor(t *testing.T) {
	if st, err := SemanticStoreFor("", nil, nil, "", nil); err != nil {
		t.Fatal(err)
	} else if _, ok := st.(*semcache.MemStore); !ok {
		t.Fatalf("default without redis: %T", st)
	}
	if st, err := SemanticStoreFor(SemStoreMemory, nil, nil, "", nil); err != nil {
		t.Fatal(err)
	} else if _, ok := st.(*semcache.MemStore); !ok {
		t.Fatalf("memory: %T", st)
	}
	for _, c := range []struct{ kind, want string }{
		{SemStoreLedger, "needs a ledger"},
		{SemStoreRedis, "needs --redis"},
		{"disk", "want memory, ledger or redis"},
	} {
		if _, err := SemanticStoreFor(c.kind, nil, nil, "", nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.kind, err, c.want)
		}
	}
}
