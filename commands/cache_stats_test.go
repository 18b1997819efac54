package commands

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// semanticEvents are what the proxy writes for a semantic cache: hits
// (cache hits with the semantic flag, cost 0, the avoided call's cost) and
// embedding calls (billed; 7 tokens of text-embedding-3-small each:
// $0.00000014, not a whole nano-dollar). acme: 2 semantic hits, 3
// embeddings; globex: 3 embeddings and no hit (a net loss).
func semanticEvents(at time.Time) []ledger.Event {
	var evs []ledger.Event
	for i := 0; i < 2; i++ {
		evs = append(evs, ledger.Event{Key: fmt.Sprintf("proxy:sem%d", i), Time: at, Source: ledger.SourceProxy, Tenant: "acme", Model: "gpt-4o",
			InputTokens: 1000, OutputTokens: 100, CacheHit: true, Semantic: true, Avoided: 3_500_000, Status: 200})
	}
	for i, tenant := range []string{"acme", "acme", "acme", "globex", "globex", "globex"} {
		evs = append(evs, ledger.Event{Key: fmt.Sprintf("proxy:embed%d", i), Time: at, Source: ledger.SourceProxy, Tenant: tenant,
			Metric: ledger.MetricEmbed, Model: "text-embedding-3-small", InputTokens: 7, CostExact: pricing.AmountFromPico(140_000), Status: 200})
	}
	return evs
}

// semanticFixture is hitsFixture (acme's exact eval cache hits) plus the
// semantic cache's events, policies and verifications.
func semanticFixture(t *testing.T) string {
	t.Helper()
	path := hitsFixture(t)
	ctx := context.Background()
	db, err := ledger.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := testNow.Add(-5 * time.Minute)
	if _, err := db.Insert(ctx, semanticEvents(at)); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []string{"acme", "globex"} {
		if err := db.SetPolicy(ctx, ledger.Policy{Tenant: tn, SemanticCache: true}, ledger.PolicyChange{At: at, What: "semantic-cache on", Reason: "trial", Who: "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		v := ledger.Verification{Tenant: "acme", At: at, Similarity: 0.97, Match: i != 0, Method: "exact"}
		if err := db.RecordVerification(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		if err := db.RecordVerification(ctx, ledger.Verification{Tenant: "globex", At: at, Similarity: 0.96, Match: i < 3, Method: "judge"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SwitchOffSemantic(ctx, "globex", "measured precision 75.0% < 98.0% over 4 verified hits", at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCacheStats(t *testing.T) {
	db := semanticFixture(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"cache/stats.txt", []string{"cache", "stats"}},
		{"cache/stats.json", []string{"cache", "stats", "--since", "1h", "--format", "json"}},
		{"report/semantic_by_tenant.txt", []string{"report", "--since", "1h"}},
		{"report/semantic_by_tenant.json", []string{"report", "--since", "1h", "--format", "json"}},
		{"report/semantic_by_tenant_model.csv", []string{"report", "--by", "tenant,model", "--since", "1h", "--format", "csv"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tio := newTestIO("")
			if code := Run(context.Background(), testFactory(tio, db), tc.args); code != 0 {
				t.Fatalf("exit %d: %s", code, tio.errOut.String())
			}
			assertGolden(t, tc.name, tio.out.String()+"-- stderr --\n"+tio.errOut.String())
		})
	}
}

// A ledger without cache hits, embeddings or semantic policies says so.
func TestCacheStatsEmpty(t *testing.T) {
	tio := newTestIO("")
	if code := Run(context.Background(), testFactory(tio, ingestFixture(t)), []string{"cache", "stats"}); code != 0 || tio.out.String() != "" ||
		tio.errOut.String() != "no cache hits, embedding calls or semantic cache policies since 2026-11-13T14:30:00Z\n" {
		t.Fatalf("exit %d\n%q\n%q", code, tio.out.String(), tio.errOut.String())
	}
}

// The Wilson interval, against values computed by hand.
func TestWilson(t *testing.T) {
	for _, c := range []struct {
		m, n   int64
		lo, hi float64
	}{{19, 20, 0.7639, 0.9911}, {3, 4, 0.3006, 0.9544}, {0, 10, 0, 0.2775}, {10, 10, 0.7225, 1}, {0, 0, 0, 0}} {
		lo, hi := wilson(c.m, c.n)
		if math.Abs(lo-c.lo) > 5e-5 || math.Abs(hi-c.hi) > 5e-5 {
			t.Errorf("wilson(%d, %d) = %.4f, %.4f; want %.4f, %.4f", c.m, c.n, lo, hi, c.lo, c.hi)
		}
	}
}
