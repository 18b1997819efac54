package semcache_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/internal/fakeembed"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/semcache"
)

func request(tenant, system, user string, temp float64) *semcache.Request {
	r := &semcache.Request{Tenant: tenant, Model: "gpt-4o-mini", Temperature: &temp}
	r.Rest = []byte(`{"temperature":0}`)
	if temp != 0 {
		r.Rest = []byte(`{"temperature":0.5}`)
		r.Force = true // eligible anyway: the partition must still keep it apart
	}
	r.Messages = []semcache.Message{{Role: "system", Text: system}, {Role: "user", Text: user}}
	return r
}

// scanOnly hides a store's KeyedStore methods: Cache then ranks every
// entry of the partition and the lexical check rejects near misses itself.
type scanOnly struct{ semcache.Store }

// TestSemCacheWithFakeEmbedder runs the same requests against a keyed store
// (the in-process store: only entries with the request's lexical key are
// candidates) and a scanning one (every entry of the partition is ranked and
// the lexical check rejects near misses): the same hits; the reasons differ
// where the keyed store never considers an entry.
func TestSemCacheWithFakeEmbedder(t *testing.T) {
	t.Run("keyed", func(t *testing.T) { testSemCache(t, true) })
	t.Run("scan", func(t *testing.T) { testSemCache(t, false) })
}

func testSemCache(t *testing.T, keyed bool) {
	fake := fakeembed.New()
	defer fake.Close()
	fake.Key = "sk-test-secret"
	emb := &semcache.OpenAIEmbedder{BaseURL: fake.URL, APIKey: "sk-test-secret"}
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var store semcache.Store = semcache.NewMemStore()
	lexMiss := func(scanned string) string {
		if keyed {
			return "no entry with the same numbers, negations and content words"
		}
		return scanned
	}
	if !keyed {
		store = scanOnly{store}
	}
	c := &semcache.Cache{Store: store, Threshold: 0.95, Limit: 100, TTL: time.Hour, Now: func() time.Time { return now }}

	const sys = "You are a travel agent."
	stored := []string{
		"Please show me all the cheapest direct flights from Paris to Rome on May 2 for two adults with hand luggage and a window seat if possible",
		"Can you tell me whether the city museum of modern art is open on Monday mornings during the summer holidays for visitors with children",
	}
	vecs, usage, err := emb.Embed(ctx, stored)
	if err != nil {
		t.Fatal(err)
	}
	if usage.PromptTokens != 51 || fake.Calls() != 1 || fake.Inputs() != 2 {
		t.Fatalf("usage %d tokens, %d calls, %d inputs", usage.PromptTokens, fake.Calls(), fake.Inputs())
	}
	for i, q := range stored {
		if err := c.Put(ctx, request("acme", sys, q, 0), vecs[i], []byte("answer "+q), pricing.AmountFromPico(1234)); err != nil {
			t.Fatal(err)
		}
	}
	// A paraphrase may hit; a changed number cannot (a keyed store knows it
	// without an embedding; a scanning one cannot tell).
	if !c.Holds(ctx, request("acme", sys, "show me ALL the cheapest direct flights from Paris to Rome on May 2 for two adults with hand luggage and a window seat if possible!", 0)) {
		t.Fatal("Holds is false for a paraphrase of a stored question")
	}
	if h := c.Holds(ctx, request("acme", sys, strings.Replace(stored[0], "May 2", "May 3", 1), 0)); h != !keyed {
		t.Fatalf("Holds for a changed number: %v", h)
	}

	for _, tc := range []struct {
		name   string
		req    *semcache.Request
		hit    int
		reason string
	}{
		{"paraphrase", request("acme", sys, "Show me all the cheapest direct flights from Paris to Rome on May 2 for two adults with hand luggage and a window seat if possible please", 0), 0, "hit at similarity 1.0000"},
		{"changed number", request("acme", sys, "Please show me all the cheapest direct flights from Paris to Rome on May 3 for two adults with hand luggage and a window seat if possible", 0), -1, lexMiss("0.9565 similar but numbers differ: 3 2 vs 2 2")},
		{"negation", request("acme", sys, "Can you tell me whether the city museum of modern art is not open on Monday mornings during the summer holidays for visitors with children", 0), -1, lexMiss("0.9837 similar but negations differ: not vs (none)")},
		{"swapped words", request("acme", sys, "Please show me all the cheapest direct flights from Rome to Paris on May 2 for two adults with hand luggage and a window seat if possible", 0), -1, lexMiss("1.0000 similar but content words differ: all cheapest direct flight from rome to paris adult hand luggage window seat possible vs all cheapest direct flight from paris to rome adult hand luggage window seat possible")},
		{"other tenant", request("globex", sys, stored[0], 0), -1, lexMiss("no entry at similarity ≥ 0.95")},
		{"other system prompt", request("acme", "You are a poet.", stored[0], 0), -1, lexMiss("no entry at similarity ≥ 0.95")},
		{"other temperature", request("acme", sys, stored[0], 0.5), -1, lexMiss("no entry at similarity ≥ 0.95")},
		{"unrelated", request("acme", sys, "What is the weather in Oslo", 0), -1, lexMiss("no entry at similarity ≥ 0.95")},
	} {
		text, _ := semcache.LastUser(tc.req)
		v, _, err := emb.Embed(ctx, []string{text})
		if err != nil {
			t.Fatal(err)
		}
		hit, reason := c.Lookup(ctx, tc.req, v[0])
		want := ""
		if tc.hit >= 0 {
			want = stored[tc.hit]
		}
		got := ""
		if hit != nil {
			got = hit.Text
			if string(hit.Response) != "answer "+hit.Text || hit.Cost != pricing.AmountFromPico(1234) || hit.Tenant != tc.req.Tenant {
				t.Errorf("%s: hit %+v", tc.name, hit.Entry)
			}
		}
		if got != want || reason != tc.reason {
			t.Errorf("%s: hit %q (%s), want %q (%s)", tc.name, got, reason, want, tc.reason)
		}
	}

	// An hour after they were stored the entries have expired.
	now = now.Add(time.Hour)
	v, _, _ := emb.Embed(ctx, []string{stored[0]})
	if hit, reason := c.Lookup(ctx, request("acme", sys, stored[0], 0), v[0]); hit != nil || reason != lexMiss("no entry at similarity ≥ 0.95") {
		t.Fatalf("expired entry: %v %s", hit, reason)
	}
	if h := c.Holds(ctx, request("acme", sys, stored[0], 0)); h != !keyed {
		t.Fatalf("Holds of an expired entry: %v", h)
	}
}

func TestSemEmbedderErrors(t *testing.T) {
	ctx := context.Background()
	fake := fakeembed.New()
	defer fake.Close()
	fake.Key = "sk-right"
	_, _, err := (&semcache.OpenAIEmbedder{BaseURL: fake.URL + "/v1", APIKey: "sk-wrong-key-123"}).Embed(ctx, []string{"x"})
	if err == nil || strings.Contains(err.Error(), "sk-wrong-key-123") || !strings.Contains(err.Error(), "HTTP 401: Incorrect API key provided") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("bad key: %v", err)
	}
	if got := (&semcache.OpenAIEmbedder{BaseURL: "http://h/v1/"}).Endpoint(); got != "http://h/v1/embeddings" {
		t.Fatal(got)
	}
	if got := (&semcache.OpenAIEmbedder{BaseURL: "http://h"}).Endpoint(); got != "http://h/v1/embeddings" {
		t.Fatal(got)
	}
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fake.URL+"/v1/embeddings?key="+r.Header.Get("Authorization"), http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	_, _, err = (&semcache.OpenAIEmbedder{BaseURL: redirect.URL, APIKey: "sk-right"}).Embed(ctx, []string{"x"})
	if err == nil || !strings.Contains(err.Error(), "HTTP 307 redirect") || strings.Contains(err.Error(), "sk-right") || fake.Calls() != 0 {
		t.Fatalf("redirect: %v (fake calls %d)", err, fake.Calls())
	}
}
