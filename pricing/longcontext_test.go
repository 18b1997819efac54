package pricing

import (
	"errors"
	"strings"
	"testing"
)

// twoTierLiteLLM is a LiteLLM entry with long-context prices above 200k
// and above 272k tokens, cache reads and writes included.
const twoTierLiteLLM = `{
  "acme-gpt-two-tier": {"litellm_provider": "openai", "max_input_tokens": 1050000, "max_output_tokens": 128000,
    "deprecation_date": "2027-03-01",
    "input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06,
    "cache_read_input_token_cost": 2e-07, "cache_creation_input_token_cost": 2.5e-06, "cache_creation_input_token_cost_above_1hr": 4e-06,
    "input_cost_per_token_above_200k_tokens": 4e-06, "output_cost_per_token_above_200k_tokens": 1.2e-05,
    "cache_read_input_token_cost_above_200k_tokens": 4e-07, "cache_creation_input_token_cost_above_200k_tokens": 5e-06,
    "input_cost_per_token_above_272k_tokens": 6e-06, "output_cost_per_token_above_272k_tokens": 1.8e-05,
    "cache_read_input_token_cost_above_272k_tokens": 6e-07, "cache_creation_input_token_cost_above_272k_tokens": 7.5e-06,
    "cache_creation_input_token_cost_above_1hr_above_272k_tokens": 1.2e-05}
}`

// TestLiteLLMTwoLongContextTiers: a prompt is priced at the highest tier
// whose threshold it exceeds — 150k at base prices, 250k at the >200k
// tier, 300k at the >272k tier (before, the >272k tier was dropped and a
// 300k prompt billed at the >200k prices) — cache reads and writes at the
// tier's own prices, to the exact Money.
func TestLiteLLMTwoLongContextTiers(t *testing.T) {
	tbl := MustDefault()
	warns, err := tbl.MergeWarn("litellm.json", []byte(twoTierLiteLLM))
	if err != nil || len(warns) > 0 {
		t.Fatalf("merge: %v %v", err, warns)
	}
	m, err := tbl.Lookup("acme-gpt-two-tier")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.LongContext) != 2 || m.LongContext[0].AboveTokens != 200_000 || m.LongContext[1].AboveTokens != 272_000 {
		t.Fatalf("tiers = %+v", m.LongContext)
	}
	if m.ContextWindow != 1_050_000 || m.MaxOutput != 128_000 || m.Deprecated != "2027-03-01" {
		t.Errorf("context %d, max output %d, deprecated %q", m.ContextWindow, m.MaxOutput, m.Deprecated)
	}
	for _, tc := range []struct {
		name string
		u    Usage
		want string // exact Money
	}{
		// 90k × $2 + 50k × $0.20 + 10k × $2.50 + 1k × $8 per 1M
		{"150k: base", Usage{InputTokens: 150_000, CachedInputTokens: 50_000, CacheWrite5mTokens: 10_000, OutputTokens: 1000}, "0.223"},
		// 190k × $4 + 50k × $0.40 + 10k × $5 + 1k × $12
		{"250k: above 200k", Usage{InputTokens: 250_000, CachedInputTokens: 50_000, CacheWrite5mTokens: 10_000, OutputTokens: 1000}, "0.842"},
		// exactly 272k is not above it: 212k × $4 + 50k × $0.40 + 10k × $5 + 1k × $12
		{"272k: above 200k", Usage{InputTokens: 272_000, CachedInputTokens: 50_000, CacheWrite5mTokens: 10_000, OutputTokens: 1000}, "0.93"},
		// 240k × $6 + 50k × $0.60 + 10k × $7.50 + 1k × $18
		{"300k: above 272k", Usage{InputTokens: 300_000, CachedInputTokens: 50_000, CacheWrite5mTokens: 10_000, OutputTokens: 1000}, "1.563"},
		// 1-hour write above 272k: 290k × $6 + 10k × $12
		{"300k: 1h write", Usage{InputTokens: 300_000, CacheWrite1hTokens: 10_000}, "1.86"},
	} {
		want, err := ParseMoney(tc.want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.CostAt(tc.u, false, "")
		if err != nil || got != want {
			t.Errorf("%s: CostAt = %s, %v; want %s", tc.name, got, err, want)
		}
		if c := m.Cost(tc.u, false); c != want {
			t.Errorf("%s: Cost = %s, want %s", tc.name, c, want)
		}
	}
	// The >200k tier lists no 1-hour write: such a write is unpriced there.
	var me *MissingRateError
	if _, err := m.CostAt(Usage{InputTokens: 250_000, CacheWrite1hTokens: 10_000}, false, ""); !errors.As(err, &me) || me.Rate != "cache_write_1h_per_1m" {
		t.Errorf("1h write above 200k: %v, want missing cache_write_1h_per_1m", err)
	}
	// A regional copy uplifts every tier.
	if r := m.regional("bedrock", "us"); len(r.LongContext) != 2 || r.LongContext[1].Input.Per1M() != "6.60" || m.LongContext[1].Input.Per1M() != "6.00" {
		t.Errorf("regional tiers = %+v", r.LongContext)
	}
}

// TestOwnFormatLongContextTiers: costctl's format takes one tier (a map) or
// several (a list, lowest threshold first); an override keeps the prices a
// tier at the same threshold does not set, and a list out of order is an
// error naming the tier.
func TestOwnFormatLongContextTiers(t *testing.T) {
	tbl := MustDefault()
	src := `models:
  acme:
    input_per_1m: "1.00"
    output_per_1m: "4.00"
    max_output: 64000
    deprecated: 2026-06-30
    long_context:
      - above_tokens: 128000
        input_per_1m: "2.00"
        output_per_1m: "8.00"
        cached_input_per_1m: "0.50"
      - above_tokens: 256000
        input_per_1m: "3.00"
        output_per_1m: "12.00"
`
	if err := tbl.Merge("p.yaml", []byte(src)); err != nil {
		t.Fatal(err)
	}
	m, _ := tbl.Lookup("acme")
	for _, tc := range []struct {
		prompt int64
		in     string
	}{{128_000, "1.00"}, {128_001, "2.00"}, {256_000, "2.00"}, {256_001, "3.00"}, {1_000_000, "3.00"}} {
		if got := m.RatesFor(tc.prompt).Input.Per1M(); got != tc.in {
			t.Errorf("RatesFor(%d).Input = %s, want %s", tc.prompt, got, tc.in)
		}
	}
	if m.MaxOutput != 64000 || m.Deprecated != "2026-06-30" {
		t.Errorf("max output %d deprecated %q", m.MaxOutput, m.Deprecated)
	}
	// Change the >256k output only: its input and the >128k tier stay.
	if err := tbl.Merge("q.yaml", []byte("models:\n  acme:\n    long_context:\n      - {above_tokens: 128000}\n      - {above_tokens: 256000, output_per_1m: \"15\"}\n")); err != nil {
		t.Fatal(err)
	}
	m, _ = tbl.Lookup("acme")
	if len(m.LongContext) != 2 || m.LongContext[1].Input.Per1M() != "3.00" || m.LongContext[1].Output.Per1M() != "15.00" || m.LongContext[0].CachedInput.Per1M() != "0.50" {
		t.Errorf("after a partial override: %+v", m.LongContext)
	}
	for _, bad := range []struct{ src, err string }{
		{"models:\n  x:\n    input_per_1m: \"1\"\n    output_per_1m: \"1\"\n    long_context:\n      - {above_tokens: 200000, input_per_1m: \"2\", output_per_1m: \"2\"}\n      - {above_tokens: 100000, input_per_1m: \"3\", output_per_1m: \"3\"}\n",
			"b.yaml:7: models.x.long_context[1].above_tokens: 100000 is not above the previous tier's 200000 (list tiers from the lowest threshold up)"},
		{"models:\n  x:\n    input_per_1m: \"1\"\n    output_per_1m: \"1\"\n    deprecated: soon\n",
			"b.yaml:5: models.x.deprecated: expected the deprecation date as YYYY-MM-DD, such as 2026-02-27"},
	} {
		err := MustDefault().Merge("b.yaml", []byte(bad.src))
		if err == nil || err.Error() != bad.err {
			t.Errorf("error = %v\nwant    %s", err, bad.err)
		}
	}
}

// TestBuiltinMaxOutputAndDeprecation: every built-in chat model says how
// much it may write (within its context window), and a model past its
// provider's deprecation date keeps its price and carries the date.
func TestBuiltinMaxOutputAndDeprecation(t *testing.T) {
	tbl := MustDefault()
	for _, m := range tbl.Models() {
		if strings.HasPrefix(m.Name, "text-embedding-") {
			continue
		}
		if m.MaxOutput <= 0 || m.MaxOutput > m.ContextWindow {
			t.Errorf("%s: max output %d (context window %d)", m.Name, m.MaxOutput, m.ContextWindow)
		}
	}
	for name, date := range map[string]string{"claude-3.7-sonnet": "2026-02-19", "claude-opus-4.1": "2026-08-05", "gemini-2.0-flash": "2026-06-01"} {
		m, err := tbl.Lookup(name)
		if err != nil || m.Deprecated != date || m.Input == 0 {
			t.Errorf("%s: deprecated %q, input %s, %v; want %s with its price", name, m.Deprecated, m.Input.Per1M(), err, date)
		}
	}
}
