package pricing

import (
	"os"
	"strings"
	"testing"
	"time"
)

var genAINow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func mergeGenAIFixture(t *testing.T) *Table {
	t.Helper()
	data, err := os.ReadFile("testdata/genai-prices.json")
	if err != nil {
		t.Fatal(err)
	}
	tbl := MustDefault()
	warns, err := tbl.MergeWarnAt("genai.json", data, genAINow)
	if err != nil || len(warns) > 0 {
		t.Fatalf("merge: %v %v", err, warns)
	}
	return tbl
}

// TestGenAIPricesImport: genai-prices' data.json is detected and read —
// the price in force today (not the original, not one announced for later),
// tiered prices as long-context tiers priced to the exact Money, a first
// party's spelling merged into the model it names, a host's model under
// its own name, and models without token prices skipped.
func TestGenAIPricesImport(t *testing.T) {
	tbl := mergeGenAIFixture(t)
	for _, tc := range []struct {
		model string
		u     Usage
		want  string
	}{
		// the 2026-03-13 flat price, not the original tiers nor the 2027 one: 300k × $5 + 1k × $25
		{"claude-opus-4-6", Usage{InputTokens: 300_000, OutputTokens: 1000}, "1.525"},
		// merged into claude-sonnet-4.5, >200k tier: 250k × $6 + 50k cached × $0.60 − … = 200k × $6 + 50k × $0.60 + 1k × $22.50
		{"claude-sonnet-4.5", Usage{InputTokens: 250_000, CachedInputTokens: 50_000, OutputTokens: 1000}, "1.2525"},
		// 150k, base: 150k × $2 + 1k × $8
		{"gpt-9-tiered", Usage{InputTokens: 150_000, OutputTokens: 1000}, "0.308"},
		// 250k, >200k: 250k × $4 + 1k × $12 (cached read still base $0.20 there: 0 here)
		{"gpt-9-tiered", Usage{InputTokens: 250_000, OutputTokens: 1000}, "1.012"},
		// 250k with 50k cached: 200k × $4 + 50k × $0.20 + 1k × $12
		{"gpt-9-tiered", Usage{InputTokens: 250_000, CachedInputTokens: 50_000, OutputTokens: 1000}, "0.822"},
		// 300k, >272k: 250k × $6 + 50k × $0.60 + 1k × $18
		{"gpt-9-tiered", Usage{InputTokens: 300_000, CachedInputTokens: 50_000, OutputTokens: 1000}, "1.548"},
		// a host's model: 1M × $0.035 + 1M × $0.14
		{"bedrock/amazon.nova-micro-v1:0", Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000}, "0.175"},
		// the unconstrained DeepSeek price, not the off-peak one
		{"deepseek/deepseek-chat", Usage{InputTokens: 1_000_000}, "0.27"},
	} {
		m, err := tbl.Lookup(tc.model)
		if err != nil {
			t.Errorf("%s: %v", tc.model, err)
			continue
		}
		want, _ := ParseMoney(tc.want)
		if got, err := m.CostAt(tc.u, false, ""); err != nil || got != want {
			t.Errorf("%s %+v: %s, %v; want %s", tc.model, tc.u, got, err, tc.want)
		}
	}
	s, _ := tbl.Lookup("claude-sonnet-4-5")
	if s.Name != "claude-sonnet-4.5" || !strings.HasPrefix(s.Source, "genai-prices genai.json (anthropic claude-sonnet-4-5)") || len(s.LongContext) != 1 {
		t.Errorf("claude-sonnet-4-5 → %s, source %q, tiers %d", s.Name, s.Source, len(s.LongContext))
	}
	g, _ := tbl.Lookup("gpt-9-tiered")
	if len(g.LongContext) != 2 || g.ContextWindow != 1_050_000 || g.NoBatch {
		t.Errorf("gpt-9-tiered: %+v", g)
	}
	if d, _ := tbl.Lookup("deepseek/deepseek-chat"); !d.NoBatch {
		t.Error("deepseek: a host without a Batch API got a batch price")
	}
	if _, err := tbl.Lookup("bedrock/amazon.titan-embed-text-v1"); err == nil {
		t.Error("an input-only (embedding) model was imported")
	}
	if o, _ := tbl.Lookup("gpt-4o"); o.Input.Per1M() != "2.50" || o.BatchInput.Per1M() != "1.25" {
		t.Errorf("gpt-4o keeps its listed batch price: %s / %s", o.Input.Per1M(), o.BatchInput.Per1M())
	}
}

// TestGenAIPricesFlatDropsTier: a model genai-prices prices flat loses the
// long-context tier the built-in table gave it (a 300k prompt at $3, not $6).
func TestGenAIPricesFlatDropsTier(t *testing.T) {
	tbl := MustDefault()
	if m, _ := tbl.Lookup("claude-sonnet-4.5"); len(m.LongContext) == 0 {
		t.Fatal("the built-in claude-sonnet-4.5 has no long-context tier to drop")
	}
	src := `[{"id": "anthropic", "models": [{"id": "claude-sonnet-4-5", "prices": {"input_mtok": 3, "output_mtok": 15}}]}]`
	if _, err := tbl.MergeWarnAt("g.json", []byte(src), genAINow); err != nil {
		t.Fatal(err)
	}
	m, _ := tbl.Lookup("claude-sonnet-4.5")
	if c, err := m.CostAt(Usage{InputTokens: 300_000}, false, ""); err != nil || c.String() != "0.90" || len(m.LongContext) != 0 {
		t.Errorf("300k prompt: %s, %v; tiers %+v", c, err, m.LongContext)
	}
}

// TestGenAIPricesErrors: the whole source is checked before anything is
// merged; an error names the line and the provider.model.key path.
func TestGenAIPricesErrors(t *testing.T) {
	for _, tc := range []struct{ src, err string }{
		{`[{"id": "openai", "models": [{"id": "gpt-4o", "prices": {"input_mtok": 2.5, "output_mtok": 10}},
  {"id": "x", "prices": {"input_mtok": 2500000, "output_mtok": 10}}]}]`,
			`g.json:2: openai.x.prices.input_mtok: "2500000" is $2,500,000 per 1M tokens, above the $1,000 no real price reaches: prices here are USD per 1M tokens; did you mean "2.50"?`},
		{`[{"id": "openai", "models": [{"id": "gpt-4o", "prices": {"input_mtok": 2.5, "output_mtok": 10}},
  {"id": "y", "prices": {"input_mtok": {"base": 1, "tiers": [{"start": 272000, "price": 2}, {"start": 200000, "price": 3}]}, "output_mtok": 1}}]}]`,
			`g.json:2: openai.y.prices.input_mtok.tiers[1].start: tiers must ascend by start`},
		{`[{"id": "openai", "models": [{"id": "z", "prices": [{"constraint": {"start_date": "2030-01-01"}, "prices": {"input_mtok": 1, "output_mtok": 1}}]}]}]`,
			`g.json:1: openai.z.prices: no price in force on 2026-12-01`},
		{`[{"id": "openai", "models": [{"id": "e", "prices": {"input_mtok": 1}}]}]`,
			`g.json: no model in this genai-prices file has input_mtok and output_mtok`},
	} {
		tbl := MustDefault()
		_, err := tbl.MergeWarnAt("g.json", []byte(tc.src), genAINow)
		if err == nil || err.Error() != tc.err {
			t.Errorf("error = %v\nwant    %s", err, tc.err)
		}
		if m, _ := tbl.Lookup("gpt-4o"); m.Origin != "built-in" {
			t.Errorf("a failed merge changed gpt-4o (origin %s)", m.Origin)
		}
	}
}
