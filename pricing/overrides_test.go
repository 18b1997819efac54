package pricing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// liteLLMFixture is a LiteLLM file with what issue 11 found wrong in the
// import: its sample_spec, a provider without a Batch API, a 272k tier, two
// tiers on one model and long-context cache writes.
const liteLLMFixture = `{
  "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "one of https://docs.litellm.ai/docs/providers"},
  "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo": {"input_cost_per_token": 8.8e-07, "output_cost_per_token": 8.8e-07, "litellm_provider": "together_ai", "mode": "chat"},
  "mistral/mistral-small-batchable": {"input_cost_per_token": 1e-07, "output_cost_per_token": 3e-07, "input_cost_per_token_batches": 5e-08, "output_cost_per_token_batches": 1.5e-07, "litellm_provider": "mistral"},
  "gpt-5.4-like": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1.5e-05, "cache_read_input_token_cost": 2.5e-07,
    "input_cost_per_token_above_272k_tokens": 5e-06, "output_cost_per_token_above_272k_tokens": 2.25e-05, "cache_read_input_token_cost_above_272k_tokens": 5e-07,
    "input_cost_per_token_priority": 5e-06, "output_cost_per_token_priority": 3e-05,
    "input_cost_per_token_above_272k_tokens_priority": 1e-05, "output_cost_per_token_above_272k_tokens_priority": 4.5e-05,
    "litellm_provider": "openai", "max_input_tokens": 1050000},
  "acme-claude": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05, "cache_read_input_token_cost": 3e-07,
    "cache_creation_input_token_cost": 3.75e-06, "cache_creation_input_token_cost_above_1hr": 6e-06,
    "input_cost_per_token_above_200k_tokens": 6e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05, "cache_read_input_token_cost_above_200k_tokens": 6e-07,
    "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06, "cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1.2e-05,
    "litellm_provider": "anthropic"},
  "two-tier": {"input_cost_per_token": 1e-06, "output_cost_per_token": 4e-06,
    "input_cost_per_token_above_128k_tokens": 2e-06, "output_cost_per_token_above_128k_tokens": 8e-06,
    "input_cost_per_token_above_256k_tokens": 3e-06, "output_cost_per_token_above_256k_tokens": 1.2e-05,
    "litellm_provider": "xai"}
}`

func mergeLiteLLMFixture(t *testing.T) (*Table, []string) {
	t.Helper()
	tbl := MustDefault()
	warns, err := tbl.MergeWarn("litellm.json", []byte(liteLLMFixture))
	if err != nil {
		t.Fatal(err)
	}
	return tbl, warns
}

// TestLiteLLMImport prices one usage per fixed import bug; each was
// mispriced (or unpriced) before.
func TestLiteLLMImport(t *testing.T) {
	tbl, _ := mergeLiteLLMFixture(t)
	for _, tc := range []struct {
		name, model string
		u           Usage
		batch       bool
		tier        string
		want        string // exact cost, or "missing KEY"
	}{
		// no Batch API at Together: a batch call is unpriced, not 50% off
		{"together batch", "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000}, true, "", "missing batch_input_per_1m"},
		{"together list", "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000}, false, "", "1.76"},
		// a provider without a known Batch API but a listed batch price: that price
		{"listed batch price", "mistral/mistral-small-batchable", Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000}, true, "", "0.20"},
		// OpenAI: 50% derived: 100k × $1.25 + 100k × $7.50 per 1M
		{"openai batch derived", "gpt-5.4-like", Usage{InputTokens: 100_000, OutputTokens: 100_000}, true, "", "0.875"},
		// 300k-token prompt above 272k: 300k × $5 + 1k × $22.50 per 1M
		{"above 272k", "gpt-5.4-like", Usage{InputTokens: 300_000, OutputTokens: 1000}, false, "", "1.5225"},
		// at 272k exactly, base prices: 272k × $2.50 + 1k × $15
		{"at 272k", "gpt-5.4-like", Usage{InputTokens: 272_000, OutputTokens: 1000}, false, "", "0.695"},
		// cached reads above 272k: 200k × $5 + 100k × $0.50
		{"above 272k cached", "gpt-5.4-like", Usage{InputTokens: 300_000, CachedInputTokens: 100_000}, false, "", "1.05"},
		// priority above 272k: 300k × $10 + 1k × $45
		{"above 272k priority", "gpt-5.4-like", Usage{InputTokens: 300_000, OutputTokens: 1000}, false, TierPriority, "3.045"},
		// long-context cache writes: 230k × $6 + 10k × $7.50 (5 min) + 10k × $12 (1 h)
		{"long cache writes", "acme-claude", Usage{InputTokens: 250_000, CacheWrite5mTokens: 10_000, CacheWrite1hTokens: 10_000}, false, "", "1.575"},
		// two tiers: above both, the 256k tier: 300k × $3 + 1k × $12
		{"two tiers, above both", "two-tier", Usage{InputTokens: 300_000, OutputTokens: 1000}, false, "", "0.912"},
		// between them, the 128k tier: 200k × $2 + 1k × $8
		{"two tiers, between", "two-tier", Usage{InputTokens: 200_000, OutputTokens: 1000}, false, "", "0.408"},
	} {
		m, err := tbl.Lookup(tc.model)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		c, err := m.CostAtExact(tc.u, tc.batch, tc.tier)
		got := c.String()
		var me *MissingRateError
		if errors.As(err, &me) {
			got = "missing " + me.Rate
		} else if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: CostAtExact = %s, want %s", tc.name, got, tc.want)
		}
	}
	if m, err := tbl.Lookup("sample_spec"); err == nil {
		t.Errorf("sample_spec imported as a model: %+v", m)
	}
	// Cost cannot fail: a batch call to a model without a Batch API is
	// billed at list prices, never at an invented discount.
	tg, _ := tbl.Lookup("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo")
	if got := tg.Cost(Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000}, true).String(); got != "1.76" {
		t.Errorf("together batch Cost = %s, want list 1.76", got)
	}
	if !tg.NoBatch || tg.HasBatchInput {
		t.Errorf("together: NoBatch %v HasBatchInput %v", tg.NoBatch, tg.HasBatchInput)
	}
	g, _ := tbl.Lookup("gpt-5.4-like")
	if len(g.LongContext) != 1 || g.LongContext[0].AboveTokens != 272_000 {
		t.Errorf("gpt-5.4-like long context = %+v", g.LongContext)
	}
}

func TestLiteLLMImportWarnings(t *testing.T) {
	_, warns := mergeLiteLLMFixture(t)
	// Every tier is kept now: nothing to warn about.
	if len(warns) > 0 {
		t.Errorf("warnings:\n%s", strings.Join(warns, "\n"))
	}
}

// TestPricePlausibility: a price almost surely in the wrong unit is an
// error naming the file, line, model, key and the likely fix; one that may
// be is merged with a warning. Each of these was accepted silently (or,
// for "0.0000025", refused without the fix) before.
func TestPricePlausibility(t *testing.T) {
	for _, tc := range []struct {
		name, file, content string
		err                 string
		warns               []string
	}{
		{
			name: "own format, millionths of a dollar", file: "p.yaml",
			content: "models:\n  gpt-4o:\n    input_per_1m: \"2500000\"\n",
			err:     `p.yaml:3: models.gpt-4o.input_per_1m: "2500000" is $2,500,000 per 1M tokens, above the $1,000 no real price reaches: prices here are USD per 1M tokens; did you mean "2.50"?`,
		},
		{
			name: "own format, per 1B tokens", file: "p.yaml",
			content: "models:\n  m:\n    input_per_1m: \"1.00\"\n    output_per_1m: \"1\"\n    long_context:\n      above_tokens: 200000\n      input_per_1m: \"5000\"\n      output_per_1m: \"2\"\n",
			err:     `p.yaml:7: models.m.long_context.input_per_1m: "5000" is $5,000 per 1M tokens, above the $1,000 no real price reaches: prices here are USD per 1M tokens; did you mean "5.00"?`,
		},
		{
			name: "own format, per-token price", file: "p.yaml",
			content: "models:\n  gpt-4o:\n    input_per_1m: \"0.0000025\"\n",
			err:     `p.yaml:3: models.gpt-4o.input_per_1m: "0.0000025" is below $0.001 per 1M tokens, so it looks like a price per token: prices here are USD per 1M tokens; did you mean "2.50"?`,
		},
		{
			name: "own format, per token or per 1K", file: "p.yaml",
			content: "models:\n  gpt-4o:\n    output_per_1m: 0.00015\n",
			err:     `p.yaml:3: models.gpt-4o.output_per_1m: "0.00015" is below $0.001 per 1M tokens, so it looks like a price per token: prices here are USD per 1M tokens; did you mean "150.00" (if it is per token) or "0.15" (if it is per 1K tokens)?`,
		},
		{
			name: "own format, per-1K-looking list price", file: "p.yaml",
			content: "models:\n  gpt-4o:\n    input_per_1m: \"0.0025\"\n    cached_input_per_1m: \"0.0025\"\n",
			warns:   []string{`p.yaml:3: models.gpt-4o.input_per_1m: "0.0025" per 1M tokens is unusually low for a list price: if it is a price per 1K tokens, write "2.50" (prices here are USD per 1M tokens)`},
		},
		{
			name: "LiteLLM, per-1M price in a per-token key", file: "l.json",
			content: "{\n  \"gpt-4o\": {\"input_cost_per_token\": 2.5, \"output_cost_per_token\": 1e-05}\n}\n",
			err:     `l.json:2: gpt-4o.input_cost_per_token: 2.5 per token is $2,500,000 per 1M tokens, above the $1,000 no real price reaches: LiteLLM prices are USD per token; did you mean 2.5e-06 ($2.50 per 1M)?`,
		},
		{
			name: "LiteLLM, per-1K price in a per-token key", file: "l.json",
			content: "{\n  \"gpt-4o\": {\"input_cost_per_token\": 2.5e-06,\n    \"output_cost_per_token\": 0.0025}\n}\n",
			err:     `l.json:3: gpt-4o.output_cost_per_token: 0.0025 per token is $2,500 per 1M tokens, above the $1,000 no real price reaches: LiteLLM prices are USD per token; did you mean 2.5e-06 ($2.50 per 1M)?`,
		},
		{
			name: "LiteLLM, too small to represent", file: "l.json",
			content: "{\n  \"tiny\": {\"input_cost_per_token\": 1e-19, \"output_cost_per_token\": 1e-06, \"litellm_provider\": \"openai\"}\n}\n",
			err:     `l.json:2: tiny.input_cost_per_token: 1e-19 per token is too small to represent: costctl keeps prices to $0.000001 per 1M tokens (1e-12 per token) and it would round to $0.00 per 1M; check the unit, or write 0 if the model is free`,
		},
		{
			name: "LiteLLM, rounds by more than 1%", file: "l.json",
			content: "{\n  \"tiny\": {\"input_cost_per_token\": 1.5e-12, \"output_cost_per_token\": 1e-06, \"litellm_provider\": \"openai\"}\n}\n",
			err:     `l.json:2: tiny.input_cost_per_token: 1.5e-12 per token is too small to represent: costctl keeps prices to $0.000001 per 1M tokens (1e-12 per token) and it would round to $0.000002 per 1M; check the unit, or write 0 if the model is free`,
		},
		{
			name: "LiteLLM, representable but implausibly low", file: "l.json",
			content: "{\n  \"cheap\": {\"input_cost_per_token\": 5e-10, \"output_cost_per_token\": 0, \"litellm_provider\": \"openai\"}\n}\n",
			warns:   []string{`l.json:2: cheap.input_cost_per_token: 5e-10 per token is $0.0005 per 1M tokens, below the $0.001 of the cheapest real prices: check the unit (LiteLLM prices are USD per token: $2.50 per 1M is 2.5e-06)`},
		},
	} {
		p := filepath.Join(t.TempDir(), tc.file)
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		tbl := MustDefault()
		warns, err := tbl.MergeFileWarn(p)
		got := ""
		if err != nil {
			got = strings.TrimPrefix(err.Error(), filepath.Dir(p)+string(filepath.Separator))
		}
		if got != tc.err {
			t.Errorf("%s: err\n  %s\nwant\n  %s", tc.name, got, tc.err)
		}
		for i := range warns {
			warns[i] = strings.TrimPrefix(warns[i], filepath.Dir(p)+string(filepath.Separator))
		}
		if strings.Join(warns, "\n") != strings.Join(tc.warns, "\n") {
			t.Errorf("%s: warnings\n  %s\nwant\n  %s", tc.name, strings.Join(warns, "\n  "), strings.Join(tc.warns, "\n  "))
		}
		if err := MustDefault().MergeFile(p); (err == nil) != (tc.err == "") {
			t.Errorf("%s: MergeFile err = %v, MergeFileWarn err = %q", tc.name, err, tc.err)
		}
	}
}

// TestBuiltInPricesArePlausible: the built-in table passes the checks every
// override file gets, without a warning.
func TestBuiltInPricesArePlausible(t *testing.T) {
	var root yaml.Node
	if err := yaml.Unmarshal(embeddedPrices, &root); err != nil {
		t.Fatal(err)
	}
	var warns []string
	if _, err := parseOwnNode("prices.yaml", root.Content[0], &warns); err != nil {
		t.Fatal(err)
	}
	if len(warns) > 0 {
		t.Errorf("built-in warnings:\n%s", strings.Join(warns, "\n"))
	}
}

// TestOverrideLongContextAtAnotherThreshold: a tier at a new threshold
// replaces the old tier whole rather than inheriting its prices.
func TestOverrideLongContextAtAnotherThreshold(t *testing.T) {
	tbl := MustDefault()
	if err := tbl.Merge("p.yaml", []byte("models:\n  claude-sonnet-4.5:\n    long_context: {above_tokens: 100000, input_per_1m: \"7\", output_per_1m: \"30\"}\n")); err != nil {
		t.Fatal(err)
	}
	m, _ := tbl.Lookup("claude-sonnet-4.5")
	if len(m.LongContext) != 1 || m.LongContext[0].AboveTokens != 100_000 || m.LongContext[0].HasCachedInput || m.LongContext[0].HasCacheWrite5m {
		t.Errorf("long context = %+v, want a fresh tier above 100k", m.LongContext)
	}
}

// TestNoBatchSurvivesLaterOverrides: a model without a Batch API stays
// without one when a later file changes its list prices or adds a
// long-context tier, and gets one when a file lists batch prices.
func TestNoBatchSurvivesLaterOverrides(t *testing.T) {
	tbl, _ := mergeLiteLLMFixture(t)
	const name = "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo"
	u := Usage{InputTokens: 300_000, OutputTokens: 1_000_000}
	if err := tbl.Merge("p.yaml", []byte("models:\n  "+name+":\n    input_per_1m: \"1.00\"\n    long_context: {above_tokens: 200000, input_per_1m: \"2\", output_per_1m: \"2\"}\n")); err != nil {
		t.Fatal(err)
	}
	m, _ := tbl.Lookup(name)
	var me *MissingRateError
	if _, err := m.CostAtExact(u, true, ""); !errors.As(err, &me) || me.Rate != "batch_input_per_1m" {
		t.Errorf("batch above 200k after an override: err %v, want a missing batch_input_per_1m", err)
	}
	// Cost bills list prices: 300k × $2 + 1M × $2 per 1M
	if got := m.Cost(u, true).String(); got != "2.60" {
		t.Errorf("batch Cost after an override = %s, want list 2.60", got)
	}
	if err := tbl.Merge("b.yaml", []byte("models:\n  "+name+":\n    batch_input_per_1m: \"0.40\"\n    batch_output_per_1m: \"0.40\"\n")); err != nil {
		t.Fatal(err)
	}
	m, _ = tbl.Lookup(name)
	// 100k × $0.40 + 100k × $0.40
	if c, err := m.CostAtExact(Usage{InputTokens: 100_000, OutputTokens: 100_000}, true, ""); err != nil || c.String() != "0.08" {
		t.Errorf("listed batch price: %s, %v; want 0.08", c.String(), err)
	}
}
