package proxy

import (
	"strings"
	"testing"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/semcache"
)

// TestProxyFailedStreamNotCached: a streamed Responses call that ends in
// response.failed is billed from its usage but stored by neither the exact
// nor the semantic cache; the same call completed is stored by both.
func TestProxyFailedStreamNotCached(t *testing.T) {
	se := newSemEnv(t, nil)
	k := se.key("acme", "", "k")
	se.setPolicy(ledger.Policy{Tenant: "acme", Cache: true, SemanticCache: true})
	se.waitPolicy("acme", func(p ledger.Policy) bool { return p.Cache && p.SemanticCache })
	body := `{"model":"gpt-4o-mini","temperature":0,"stream":true,"input":"what is the refund window for orders","max_output_tokens":50}`
	req, err := semcache.ParseResponses([]byte(body), "acme", false)
	if err != nil {
		t.Fatal(err)
	}
	part := semcache.Partition(req)
	calls := se.up.calls.Load()
	for i := range 2 {
		r := se.do("POST", "/v1/responses", k, false, body, "X-Test-Mode", "failed")
		if h := r.Header.Get("X-Costctl-Cache"); r.Status != 200 || h == "hit" || h == "semantic" || !strings.Contains(r.Body, "event: response.failed") {
			t.Fatalf("failed stream %d: %d %q\n%s", i, r.Status, r.Header.Get("X-Costctl-Cache"), r.Body)
		}
	}
	if got := se.up.calls.Load() - calls; got != 2 {
		t.Fatalf("%d upstream calls for two failed streams, want 2", got)
	}
	if n := se.store.Len(part); n != 0 {
		t.Fatalf("semantic cache holds %d entries after failed streams", n)
	}
	// Completed: stored by both, so the same request again is an exact hit.
	se.do("POST", "/v1/responses", k, false, body)
	eventually(t, "semantic entry stored", func() bool { return se.store.Len(part) == 1 })
	r := se.do("POST", "/v1/responses", k, false, body)
	if r.Header.Get("X-Costctl-Cache") != "hit" || se.up.calls.Load()-calls != 3 {
		t.Fatalf("completed stream not cached: %q, %d upstream calls", r.Header.Get("X-Costctl-Cache"), se.up.calls.Load()-calls)
	}
	var billed []row
	// 4 calls, 1 embedding: the completed answer's, to store it (no entry
	// could have matched any of them, so none was embedded before its call;
	// the exact hit embeds nothing).
	for _, r := range se.waitRows(5) {
		if r.Endpoint == "/v1/responses" && !r.Hit {
			billed = append(billed, r)
		}
	}
	// 300 input and 2 output tokens of gpt-4o-mini: $0.0000462.
	if len(billed) != 3 || billed[0].In != 300 || billed[0].Out != 2 || billed[1].Out != 2 || billed[2].Out != 20 ||
		billed[0].Estimate != "" || billed[0].Cost.String() != "0.0000462" {
		t.Fatalf("billed rows %+v of %+v", billed, se.rows())
	}
}
