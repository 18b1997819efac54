package pricing

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCostAtEachRate prices one hand-computed usage per rate. Rates are
// pico-dollars per token ($1/1M = 1,000,000 pico = 1 micro-dollar), costs
// nano-dollars.
func TestCostAtEachRate(t *testing.T) {
	tbl := MustDefault()
	for _, tc := range []struct {
		name, model string
		u           Usage
		batch       bool
		tier        string
		want        Money
	}{
		// gpt-5 list: 1000 plain × $1.25 + 1000 cached × $0.125 + 100 out × $10
		// = 1,250,000 + 125,000 + 1,000,000 nano = $0.002375
		{"list", "gpt-5", Usage{InputTokens: 2000, CachedInputTokens: 1000, OutputTokens: 100}, false, "", 2_375_000},
		{"default is list", "gpt-5", Usage{InputTokens: 2000, CachedInputTokens: 1000, OutputTokens: 100}, false, TierDefault, 2_375_000},
		// flex: 1000 × $0.625 + 1000 × $0.0625 + 100 × $5 = 625,000 + 62,500 + 500,000
		{"flex", "gpt-5", Usage{InputTokens: 2000, CachedInputTokens: 1000, OutputTokens: 100}, false, TierFlex, 1_187_500},
		// priority: 1000 × $2.50 + 1000 × $0.25 + 100 × $20 = 2,500,000 + 250,000 + 2,000,000
		{"priority", "gpt-5", Usage{InputTokens: 2000, CachedInputTokens: 1000, OutputTokens: 100}, false, TierPriority, 4_750_000},
		// batch: 1000 × $0.625 + 1000 × $0.0625 (cached/2) + 100 × $5
		{"batch", "gpt-5", Usage{InputTokens: 2000, CachedInputTokens: 1000, OutputTokens: 100}, true, "", 1_187_500},
		// priority without a cached price (gpt-4o-2024-05-13): 2000 × $8.75 + 100 × $26.25
		// = 17,500,000 + 2,625,000
		{"priority, cached at its input price", "gpt-4o-2024-05-13", Usage{InputTokens: 2000, CachedInputTokens: 1000, OutputTokens: 100}, false, TierPriority, 20_125_000},
		// Sonnet 4.5 writes: 1000 plain × $3 + 2000 × $3.75 (5 min) + 3000 × $6 (1 h) + 100 × $15
		// = 3,000,000 + 7,500,000 + 18,000,000 + 1,500,000
		{"cache writes", "claude-sonnet-4-5", Usage{InputTokens: 6000, CacheWrite5mTokens: 2000, CacheWrite1hTokens: 3000, OutputTokens: 100}, false, "", 30_000_000},
		// batch halves the writes: 1000 × $1.50 + 2000 × $1.875 + 3000 × $3 + 100 × $7.50
		{"batch cache writes", "claude-sonnet-4-5", Usage{InputTokens: 6000, CacheWrite5mTokens: 2000, CacheWrite1hTokens: 3000, OutputTokens: 100}, true, "", 15_000_000},
	} {
		m, err := tbl.Lookup(tc.model)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.CostAt(tc.u, tc.batch, tc.tier)
		if err != nil || got != tc.want {
			t.Errorf("%s: CostAt = %d (%v), want %d", tc.name, got, err, tc.want)
		}
		if tc.tier == "" && m.Cost(tc.u, tc.batch) != got {
			t.Errorf("%s: Cost %d and CostAt %d disagree at list prices", tc.name, m.Cost(tc.u, tc.batch), got)
		}
	}
}

func TestCostAtNeverFallsBackToList(t *testing.T) {
	tbl := MustDefault()
	for _, tc := range []struct {
		model string
		u     Usage
		batch bool
		tier  string
		want  string // missing price key
	}{
		{"gpt-4o", Usage{InputTokens: 10, OutputTokens: 1}, false, TierFlex, "flex_input_per_1m"},
		{"claude-sonnet-4-5", Usage{InputTokens: 10, OutputTokens: 1}, false, TierPriority, "priority_input_per_1m"},
		{"gpt-4o", Usage{InputTokens: 10, CacheWrite5mTokens: 5, OutputTokens: 1}, false, "", "cache_write_5m_per_1m"},
		{"gemini-2.5-pro", Usage{InputTokens: 10, CacheWrite1hTokens: 5, OutputTokens: 1}, true, "", "cache_write_1h_per_1m"},
		{"gpt-5", Usage{InputTokens: 10, CacheWrite5mTokens: 5, OutputTokens: 1}, false, TierFlex, "flex cache write"},
	} {
		m, _ := tbl.Lookup(tc.model)
		_, err := m.CostAt(tc.u, tc.batch, tc.tier)
		var me *MissingRateError
		if !errors.As(err, &me) || me.Rate != tc.want {
			t.Errorf("%s %+v %q: err %v, want a missing %s", tc.model, tc.u, tc.tier, err, tc.want)
		}
	}
	m, _ := tbl.Lookup("gpt-5")
	if _, err := m.CostAt(Usage{InputTokens: 1}, true, TierFlex); err == nil {
		t.Error("batch at flex accepted")
	}
	if _, err := m.CostAt(Usage{InputTokens: 1}, false, "scale"); err == nil {
		t.Error("unknown tier accepted")
	}
	if _, err := m.CostAt(Usage{InputTokens: -1}, false, ""); err == nil {
		t.Error("negative usage accepted")
	}
}

func TestCostAtOverflowIsAnError(t *testing.T) {
	m := &Model{Name: "absurd", Rates: Rates{Input: Rate(math.MaxInt64 / 2), Output: Rate(math.MaxInt64 / 2)}}
	for _, u := range []Usage{{InputTokens: 1e10}, {OutputTokens: 3000}, {InputTokens: 1500, OutputTokens: 1500}} { // the last: each part fits, the sum does not {
		if c, err := m.CostAt(u, false, ""); !errors.Is(err, ErrCostOutOfRange) {
			t.Errorf("%+v: cost %d, err %v; want ErrCostOutOfRange", u, c, err)
		}
	}
	// The largest figures ingest accepts (10^10 of each) at a $1,000/1M rate fit.
	big := &Model{Name: "big", Rates: Rates{Input: 1_000_000_000, CachedInput: 1_000_000_000, Output: 1_000_000_000}}
	if c, err := big.CostAt(Usage{InputTokens: 1e10, CachedInputTokens: 1e10, OutputTokens: 1e10}, false, ""); err != nil || c != 2e16 {
		t.Errorf("big: %d %v", c, err)
	}
}

func TestTierPricesInOverrides(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "own.yaml")
	os.WriteFile(p, []byte("models:\n  gpt-4o:\n    flex_input_per_1m: \"1.25\"\n    flex_output_per_1m: \"5\"\n"), 0o644)
	tbl := MustDefault()
	if err := tbl.MergeFile(p); err != nil {
		t.Fatal(err)
	}
	m, _ := tbl.Lookup("gpt-4o")
	if !m.Flex.Listed() || m.Flex.CachedInput != m.Flex.Input || m.Flex.Output.Per1M() != "5.00" || !m.Priority.Listed() {
		t.Errorf("gpt-4o tiers: flex %+v priority %+v", m.Flex, m.Priority)
	}

	os.WriteFile(p, []byte("models:\n  gpt-4o:\n    flex_input_per_1m: \"1.25\"\n"), 0o644)
	if err := MustDefault().MergeFile(p); err == nil || !strings.Contains(err.Error(), "models.gpt-4o.flex_output_per_1m: missing") {
		t.Errorf("half a tier: %v", err)
	}

	lp := filepath.Join(dir, "model_prices_and_context_window.json")
	os.WriteFile(lp, []byte(`{
  "gpt-x": {"input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06,
            "input_cost_per_token_flex": 1e-06, "output_cost_per_token_flex": 4e-06, "cache_read_input_token_cost_flex": 2.5e-07,
            "input_cost_per_token_priority": 3.5e-06, "litellm_provider": "openai"}
}`), 0o644)
	tbl = MustDefault()
	if err := tbl.MergeFile(lp); err != nil {
		t.Fatal(err)
	}
	x, _ := tbl.Lookup("gpt-x")
	if !x.Flex.Listed() || x.Flex.CachedInput.Per1M() != "0.25" || x.Priority.Listed() {
		t.Errorf("LiteLLM tiers (priority given in part is left out): flex %+v priority %+v", x.Flex, x.Priority)
	}
}
