package proxy

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/semcache"
)

// gateEmbedder embeds only once its gate is open (closed channel); each
// call first tells enter its texts.
type gateEmbedder struct {
	e     semcache.Embedder
	gate  chan struct{}
	enter func(texts []string)
}

func (g *gateEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, semcache.Usage, error) {
	g.enter(texts)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, semcache.Usage{}, ctx.Err()
	}
	return g.e.Embed(ctx, texts)
}

// TestProxySemanticMissNeedsNoEmbedding: a question no stored entry shares
// (numbers, negations, content words) is answered while the embedder is
// stuck: it is not embedded before its call (each embedding starts after
// its request was served: the proxy's Served count says so). Its answer is
// embedded and stored afterwards, and a paraphrase then hits, embedded
// before its call since an entry shares its key.
func TestProxySemanticMissNeedsNoEmbedding(t *testing.T) {
	gate := make(chan struct{})
	se := newSemEnv(t, nil)
	var mu sync.Mutex
	servedAt := map[string]int64{} // text → Served when its embedding began
	se.srv.cfg.Embedder = &gateEmbedder{e: &semcache.OpenAIEmbedder{BaseURL: se.fe.URL, APIKey: testOpenAIKey}, gate: gate,
		enter: func(texts []string) {
			mu.Lock()
			defer mu.Unlock()
			servedAt[texts[0]] = se.srv.Served.Load()
		}}
	k := se.key("acme", "", "k")
	se.setPolicy(ledger.Policy{Tenant: "acme", SemanticCache: true})
	se.waitPolicy("acme", func(p ledger.Policy) bool { return p.SemanticCache })
	qs := []string{semStored, strings.Replace(semStored, "May 2", "May 3", 1), semMuseum}
	for _, q := range qs {
		r := se.do("POST", "/v1/chat/completions", k, false, semChat(semSys, q, ""))
		if r.Status != 200 || r.Header.Get("X-Costctl-Cache") != "" {
			t.Fatalf("%q: %d %q", q, r.Status, r.Header.Get("X-Costctl-Cache"))
		}
	}
	if n := se.fe.Calls(); n != 0 {
		t.Fatalf("%d embedding calls while the embedder is stuck", n)
	}
	close(gate)
	part := se.partition("acme", semChat(semSys, semStored, ""))
	eventually(t, "the three answers embedded and stored", func() bool { return se.store.Len(part) == 3 && se.fe.Calls() == 3 })
	calls := se.up.calls.Load()
	para := "show me ALL the cheapest direct flights from Paris to Rome on May 2 for two adults with hand luggage and a window seat if possible!"
	r := se.do("POST", "/v1/chat/completions", k, false, semChat(semSys, para, ""))
	if r.Header.Get("X-Costctl-Cache") != "semantic" || se.up.calls.Load() != calls || se.fe.Calls() != 4 {
		t.Fatalf("paraphrase: %q, upstream %d→%d, %d embedding calls", r.Header.Get("X-Costctl-Cache"), calls, se.up.calls.Load(), se.fe.Calls())
	}
	mu.Lock()
	defer mu.Unlock()
	for i, q := range qs {
		if n, ok := servedAt[q]; !ok || n < int64(i+1) {
			t.Errorf("question %d embedded with %d (%v) requests served: before its own call", i+1, n, ok)
		}
	}
	if n := servedAt[para]; n != 3 { // before its own call: the hit needs it
		t.Errorf("paraphrase embedded with %d requests served, want 3", n)
	}
}

// TestProxySemanticMaxTotal: the proxy bounds its memory store to
// SemanticMaxTotal entries in all partitions; misses in more partitions
// than that keep only the most recently used.
func TestProxySemanticMaxTotal(t *testing.T) {
	se := newSemEnv(t, func(c *Config) { c.SemanticMaxTotal = 2 })
	if se.store.MaxEntries != 2 {
		t.Fatalf("memory store bound %d, want 2", se.store.MaxEntries)
	}
	k := se.key("acme", "", "k")
	se.setPolicy(ledger.Policy{Tenant: "acme", SemanticCache: true})
	se.waitPolicy("acme", func(p ledger.Policy) bool { return p.SemanticCache })
	for _, sys := range []string{"You are a travel agent.", "You are a museum guide.", "You are a chef."} {
		if r := se.do("POST", "/v1/chat/completions", k, false, semChat(sys, semStored, "")); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		se.settle()
	}
	if n, p := se.store.Entries(), se.store.Partitions(); n != 2 || p != 2 {
		t.Fatalf("%d entries in %d partitions, want 2 in 2", n, p)
	}
	if n := se.store.Len(se.partition("acme", semChat("You are a travel agent.", semStored, ""))); n != 0 {
		t.Fatalf("the least recently used partition keeps %d entries", n)
	}
}
