package commands

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/tui"
)

func TestTopOnce(t *testing.T) {
	db := ingestFixture(t)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		// Not a terminal: one snapshot even without --once.
		{"top/once.txt", []string{"top"}, 0, ""},
		{"top/once.json", []string{"top", "--once", "--format", "json"}, 0, ""},
		{"top/once_1h_by_model.txt", []string{"top", "--window", "1h", "--group-by", "model"}, 0, ""},
		{"top/once_7d_by_user.json", []string{"top", "--window", "7d", "--group-by", "user", "--format", "json"}, 0, ""},
		// $1.07 spent by 14:30 is over a $1 budget: an alert, and exit 3 with --fail-on-alert.
		{"top/alert.json", []string{"top", "--once", "--format", "json", "--daily-budget", "1", "--fail-on-alert"}, ExitGate,
			"costctl: top: alert active: over_budget\n"},
		{"top/latency_alert.txt", []string{"top", "--latency-alert", "1s", "--fail-on-alert"}, ExitGate,
			"costctl: top: alert active: latency\n"},
		// Projected: $1.07 now + $0.654/h for 9.5h = $7.28 > $5.
		{"top/projected_alert.txt", []string{"top", "--daily-budget", "5"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tio := newTestIO("")
			code := Run(context.Background(), testFactory(tio, db), tc.args)
			if code != tc.code || tio.errOut.String() != tc.stderr {
				t.Fatalf("exit %d stderr %q, want %d %q", code, tio.errOut.String(), tc.code, tc.stderr)
			}
			assertGolden(t, tc.name, tio.out.String())
		})
	}
}

// top counts calls a provider billed; cache hits are a line of their own.
func TestTopCacheHits(t *testing.T) {
	db := hitsFixture(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"top/cache_hits_by_source.txt", []string{"top", "--group-by", "source"}},
		{"top/cache_hits_by_metric.json", []string{"top", "--group-by", "metric", "--window", "1h", "--format", "json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tio := newTestIO("")
			if code := Run(context.Background(), testFactory(tio, db), tc.args); code != 0 || tio.errOut.Len() != 0 {
				t.Fatalf("exit %d: %s", code, tio.errOut.String())
			}
			assertGolden(t, tc.name, tio.out.String())
		})
	}
}

// With semantic cache hits and embedding calls in the ledger, the table
// shows SEMANTIC HITS and NET SEMANTIC per tenant (a net loss with a minus
// sign, tenants with neither "-"); the other goldens, without them, do not.
func TestTopSemantic(t *testing.T) {
	path := ingestFixture(t)
	db, err := ledger.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	// acme: 3 semantic hits avoiding $0.045 each, 4 embeddings; globex: 5
	// embeddings and no hit. An embedding of 200 tokens costs $0.000004.
	at := testNow.Add(-10 * time.Minute)
	var evs []ledger.Event
	for i := 0; i < 3; i++ {
		evs = append(evs, ledger.Event{Key: fmt.Sprintf("proxy:sem%d", i), Time: at, Source: ledger.SourceProxy, Tenant: "acme", Model: "gpt-4o",
			InputTokens: 10000, OutputTokens: 2000, CacheHit: true, Semantic: true, Avoided: pricing.Dollars(45) / 1000, Status: 200})
	}
	for i, tenant := range []string{"acme", "acme", "acme", "acme", "globex", "globex", "globex", "globex", "globex"} {
		evs = append(evs, ledger.Event{Key: fmt.Sprintf("proxy:embed%d", i), Time: at, Source: ledger.SourceProxy, Tenant: tenant,
			Metric: ledger.MetricEmbed, Model: "text-embedding-3-small", InputTokens: 200, CostExact: pricing.AmountFromPico(4_000_000), Status: 200})
	}
	if _, err := db.Insert(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	tio := newTestIO("")
	if code := Run(context.Background(), testFactory(tio, path), []string{"top", "--once"}); code != 0 || tio.errOut.Len() != 0 {
		t.Fatalf("exit %d: %s", code, tio.errOut.String())
	}
	out := tio.out.String()
	assertGolden(t, "top/semantic.txt", out)
	for _, want := range []string{"SEMANTIC HITS", "NET SEMANTIC", "-<$0.01"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestTopFlags(t *testing.T) {
	var got *TopOptions
	tio := newTestIO("")
	f := testFactory(tio, "unused.db")
	cmd := newTopCmd(f, func(o *TopOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--daily-budget", "$1250.50", "--window", "24h", "--interval", "2s"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Config.DailyBudget.String() != "1250.50" || got.Config.Window != "24h" || got.Interval != 2*time.Second ||
		got.Config.LatencyAlert != 30*time.Second || got.Config.GroupBy != "tenant" || !got.Once || got.Color {
		t.Fatalf("options %+v", got)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--window", "2h"}, `invalid --window "2h" (expected today, 1h, 24h, 7d)`},
		{[]string{"--group-by", "colour"}, `invalid --group-by "colour" (expected tenant, model, user, endpoint, source, metric)`},
		{[]string{"--daily-budget", "-5"}, `invalid --daily-budget "-5": want a positive dollar amount like 500 or 1250.50`},
		{[]string{"--format", "csv"}, `invalid --format "csv" (expected table, json)`},
		{[]string{"--interval", "1ms"}, `invalid --interval 1ms: want at least 100ms`},
	} {
		cmd := newTopCmd(f, func(o *TopOptions) error { return nil })
		cmd.SetArgs(tc.args)
		cmd.SilenceErrors, cmd.SilenceUsage = true, true
		err := cmd.Execute()
		if err == nil || err.Error() != tc.msg || exitCode(err) != ExitUsage {
			t.Errorf("%v: %v (exit %d), want %q", tc.args, err, exitCode(err), tc.msg)
		}
	}
}

// The --once JSON has exactly the documented keys.
func TestTopJSONKeys(t *testing.T) {
	doc := topJSON(tui.Snapshot{Config: tui.Config{Window: "today", GroupBy: "tenant"}, Rows: []tui.Row{{Key: "a"}}})
	var b strings.Builder
	if err := writeJSON(&b, doc); err != nil {
		t.Fatal(err)
	}
	want := `{
  "version": 1,
  "at": "0001-01-01T00:00:00Z",
  "window": "today",
  "group_by": "tenant",
  "spend_usd": "0.00",
  "daily_budget_usd": "0.00",
  "burn_usd_per_hour": "0.00",
  "projected_day_usd": "0.00",
  "cache_hit_pct": 0,
  "cache_hits": 0,
  "avoided_usd": "0.00",
  "rows": [
    {
      "key": "a",
      "calls": 0,
      "cache_hits": 0,
      "semantic_hits": 0,
      "input_tokens": 0,
      "output_tokens": 0,
      "cost_usd": "0.00",
      "net_semantic_usd": "0.00",
      "share_pct": 0,
      "avg_latency_ms": 0,
      "unpriced": false
    }
  ],
  "alerts": []
}
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// A JSON row is made from tui.Columns' fields; it reads as the struct it
// replaced did, key order and escaping (none of HTML) included. (A new
// column with a JSON field adds it to before, and to TestTopJSONKeys.)
func TestTopJSONRowFromColumns(t *testing.T) {
	type before struct {
		Key          string         `json:"key"`
		Calls        int64          `json:"calls"`
		CacheHits    int64          `json:"cache_hits"`
		SemanticHits int64          `json:"semantic_hits"`
		InputTokens  int64          `json:"input_tokens"`
		OutputTokens int64          `json:"output_tokens"`
		Cost         pricing.Amount `json:"cost_usd"`
		NetSemantic  pricing.Amount `json:"net_semantic_usd"`
		Share        float64        `json:"share_pct"`
		AvgLatencyMS int64          `json:"avg_latency_ms"`
		Unpriced     bool           `json:"unpriced"`
	}
	rows := []tui.Row{
		{Key: `a<b>&"c" é`, Totals: ledger.Totals{Calls: 12, CacheHits: 3, SemanticHits: 2, SemanticAvoided: 5_000_000, EmbedCalls: 4, EmbedCost: pricing.AmountFromPico(560_000), InputTokens: 1200, OutputTokens: 34,
			Cost: pricing.AmountFromMoney(pricing.Dollars(7) / 3), UnpricedCalls: 2, LatencyMSSum: 12345, LatencyCalls: 12}, Share: 33.35},
		{Key: "", Totals: ledger.Totals{Calls: 1, UnpricedCalls: 1}},
	}
	var want, got []any
	for _, r := range rows {
		want = append(want, before{Key: r.Key, Calls: r.Calls, CacheHits: r.CacheHits, SemanticHits: r.SemanticHits, InputTokens: r.InputTokens, OutputTokens: r.OutputTokens,
			Cost: r.Cost, NetSemantic: r.NetSemantic(), Share: round1(r.Share), AvgLatencyMS: r.AvgLatencyMS(), Unpriced: r.UnpricedCalls > 0})
		got = append(got, topJSONRow{r})
	}
	var w, g strings.Builder
	if err := writeJSON(&w, want); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(&g, got); err != nil {
		t.Fatal(err)
	}
	if g.String() != w.String() {
		t.Fatalf("got\n%s\nwant\n%s", g.String(), w.String())
	}
}
