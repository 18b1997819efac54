package pricing

import (
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMoneyStringAndParse(t *testing.T) {
	cases := []struct {
		in      string
		str     string
		display string
	}{
		{"57500", "57500.00", "$57,500.00"},
		{"0.00575", "0.00575", "$0.00575"},
		{"$1,234.5", "1234.50", "$1,234.50"},
		{"0", "0.00", "$0.00"},
		{"-1.5", "-1.50", "$-1.50"},
		{"0.000000001", "0.000000001", "$0.000000001"},
		{"1e3", "1000.00", "$1,000.00"},
	}
	for _, c := range cases {
		m, err := ParseMoney(c.in)
		if err != nil {
			t.Fatalf("ParseMoney(%q): %v", c.in, err)
		}
		if got := m.String(); got != c.str {
			t.Errorf("ParseMoney(%q).String() = %q, want %q", c.in, got, c.str)
		}
		if got := m.Display(); got != c.display {
			t.Errorf("ParseMoney(%q).Display() = %q, want %q", c.in, got, c.display)
		}
	}
	for _, bad := range []string{"", "abc", "0.0000000001", "1e30", "NaN"} {
		if _, err := ParseMoney(bad); err == nil {
			t.Errorf("ParseMoney(%q) succeeded, want error", bad)
		}
	}
}

func TestMoneyJSONAndRounding(t *testing.T) {
	m := Dollars(57500)
	b, _ := m.MarshalJSON()
	if string(b) != `"57500.00"` {
		t.Errorf("MarshalJSON = %s", b)
	}
	var back Money
	if err := back.UnmarshalJSON([]byte(`"0.00575"`)); err != nil || back != 5_750_000 {
		t.Errorf("UnmarshalJSON = %d, %v", back, err)
	}
	if got := Money(5_755_000).DisplayRounded(5); got != "$0.00576" {
		t.Errorf("DisplayRounded = %q", got)
	}
	if got := Money(1_234_567_890_123).DisplayRounded(2); got != "$1,234.57" {
		t.Errorf("DisplayRounded = %q", got)
	}
	r, _ := MoneyFromRat(big.NewRat(1, 3)) // $0.333333333…
	if r != 333_333_333 {
		t.Errorf("MoneyFromRat(1/3) = %d", r)
	}
	r, _ = MoneyFromRat(big.NewRat(-1, 2_000_000_000)) // -0.5 nano rounds away from zero
	if r != -1 {
		t.Errorf("MoneyFromRat(-0.5n) = %d", r)
	}
}

func TestRateExactness(t *testing.T) {
	// Every multiple of $0.001 per 1M tokens is exact: 10M requests × 1,000
	// tokens at $5/1M + 50 tokens at $15/1M is exactly $57,500.
	in, _ := ParseRatePer1M("5")
	out, _ := ParseRatePer1M("15")
	per := in.Cost(1000) + out.Cost(50)
	if per.String() != "0.00575" {
		t.Fatalf("per request = %s", per)
	}
	if total := per * 10_000_000; total.String() != "57500.00" {
		t.Errorf("monthly = %s", total)
	}
	// A rate of $X per 1M tokens costs exactly $X for 1M tokens.
	for _, s := range []string{"0.001", "0.075", "0.025", "1.25", "0.0375", "600"} {
		r, err := ParseRatePer1M(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := r.Cost(1_000_000), mustMoney(t, s); got != want {
			t.Errorf("rate %s × 1M tokens = %s, want %s", s, got, want)
		}
		if r.Per1M() != mustMoney(t, s).String() {
			t.Errorf("Per1M(%s) = %s", s, r.Per1M())
		}
	}
	// $0.001 per 1M is one nano-dollar per token: exact for any count.
	if r, _ := ParseRatePer1M("0.001"); r.Cost(7) != 7 {
		t.Errorf("0.001/1M × 7 tokens = %d nano-dollars, want 7", r.Cost(7))
	}
	if _, err := ParseRatePer1M("0.0000001"); err == nil {
		t.Error("a price finer than $0.000001/1M must be rejected")
	}
	if _, err := ParseRatePer1M("-1"); err == nil {
		t.Error("negative price accepted")
	}
}

func mustMoney(t *testing.T, s string) Money {
	t.Helper()
	m, err := ParseMoney(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDefaultTableCoversRequiredModels(t *testing.T) {
	tbl := MustDefault()
	if tbl.AsOf == "" {
		t.Fatal("no as_of date")
	}
	for _, name := range []string{"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini",
		"gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-3.5-turbo", "gpt-4", "text-embedding-3-small", "text-embedding-3-large",
		"claude-opus-4", "claude-opus-4.1", "claude-opus-4.5", "claude-sonnet-4", "claude-sonnet-4.5", "claude-haiku-4.5",
		"claude-3.5-haiku", "gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro"} {
		m, err := tbl.Lookup(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if m.Source == "" || m.Provider == "" || m.Encoding == "" || m.ContextWindow == 0 || m.Input == 0 && !strings.HasPrefix(name, "text-") {
			t.Errorf("%s: incomplete entry %+v", name, m)
		}
		if m.Provider == "openai" && !m.ExactTokenizer || m.Provider != "openai" && m.ExactTokenizer {
			t.Errorf("%s: exact_tokenizer = %v for provider %s", name, m.ExactTokenizer, m.Provider)
		}
	}
}

func TestLookupAliases(t *testing.T) {
	tbl := MustDefault()
	cases := map[string]string{
		"gpt-4o":                                      "gpt-4o",
		"GPT-4o":                                      "gpt-4o",
		"gpt-4o-2024-08-06":                           "gpt-4o",
		"openai/gpt-4o":                               "gpt-4o",
		"openai/gpt-4o-2024-11-20":                    "gpt-4o",
		"gpt-4o-2024-05-13":                           "gpt-4o-2024-05-13",
		"gpt-4o-mini-2024-07-18":                      "gpt-4o-mini",
		"anthropic/claude-sonnet-4-20250514":          "claude-sonnet-4",
		"claude-sonnet-4-5-20250929":                  "claude-sonnet-4.5",
		"claude-3-5-haiku-latest":                     "claude-3.5-haiku",
		"anthropic.claude-opus-4-1-20250805-v1:0":     "claude-opus-4.1",
		"us.anthropic.claude-haiku-4-5-20251001-v1:0": "bedrock/us.claude-haiku-4.5", // regional: +10%
		"claude-sonnet-4@20250514":                    "claude-sonnet-4",
		"gemini/gemini-2.5-pro":                       "gemini-2.5-pro",
		"gpt-5-2025-08-07":                            "gpt-5",
		"o3-2025-04-16":                               "o3",
		"gpt-4.1-nano-2025-04-14":                     "gpt-4.1-nano",
	}
	for in, want := range cases {
		m, err := tbl.Lookup(in)
		if err != nil {
			t.Errorf("Lookup(%q): %v", in, err)
			continue
		}
		if m.Name != want {
			t.Errorf("Lookup(%q) = %s, want %s", in, m.Name, want)
		}
	}
}

func TestLookupUnknownNamesClosest(t *testing.T) {
	_, err := MustDefault().Lookup("gpt-4oo")
	var ue *UnknownModelError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UnknownModelError", err)
	}
	if len(ue.Closest) == 0 || ue.Closest[0] != "gpt-4o" {
		t.Errorf("closest = %v, want gpt-4o first", ue.Closest)
	}
	if !strings.Contains(err.Error(), "--pricing FILE") {
		t.Errorf("error does not say how to add a price: %v", err)
	}
	if _, err := MustDefault().Lookup("llama-99"); err == nil {
		t.Error("an unknown model must never resolve")
	}
}

func TestCostWithCacheBatchAndLongContext(t *testing.T) {
	tbl := MustDefault()
	gpt4o, _ := tbl.Lookup("gpt-4o")
	// 1,000 prompt tokens of which 400 cached, 200 output:
	// 600×2.50 + 400×1.25 + 200×10 per 1M = 0.0015 + 0.0005 + 0.002 = $0.004
	u := Usage{InputTokens: 1000, CachedInputTokens: 400, OutputTokens: 200}
	if got := gpt4o.Cost(u, false).String(); got != "0.004" {
		t.Errorf("gpt-4o cost = %s, want 0.004", got)
	}
	if got := gpt4o.Cost(Usage{InputTokens: 1000, OutputTokens: 200}, true).String(); got != "0.00225" {
		t.Errorf("gpt-4o batch cost = %s, want 0.00225", got)
	}
	gpt4, _ := tbl.Lookup("gpt-4")
	// no cached price listed: cached tokens bill at the input price
	if got := gpt4.Cost(Usage{InputTokens: 1000, CachedInputTokens: 1000}, false).String(); got != "0.03" {
		t.Errorf("gpt-4 cached-without-discount = %s, want 0.03", got)
	}
	sonnet, _ := tbl.Lookup("claude-sonnet-4.5")
	short := sonnet.Cost(Usage{InputTokens: 200_000, OutputTokens: 1000}, false)
	long := sonnet.Cost(Usage{InputTokens: 200_001, OutputTokens: 1000}, false)
	if short.String() != "0.615" { // 200k×3 + 1k×15 per 1M
		t.Errorf("sonnet at 200k = %s", short)
	}
	if long.String() != "1.222506" { // 200,001×6 + 1k×22.50 per 1M
		t.Errorf("sonnet above 200k = %s", long)
	}
	// Anthropic cache writes: 1,000 written for 5 min at $3.75/1M
	if got := sonnet.Cost(Usage{InputTokens: 1000, CacheWrite5mTokens: 1000}, false).String(); got != "0.00375" {
		t.Errorf("sonnet cache write = %s", got)
	}
}

func TestOverridesOwnFormat(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "prices.yaml")
	os.WriteFile(p, []byte(`as_of: "2026-02-01"
models:
  gpt-4o:
    input_per_1m: "2.00"
  my-model:
    input_per_1m: "1.00"
    output_per_1m: "4"
    encoding: cl100k_base
    aliases: [mine]
`), 0o644)
	tbl := MustDefault()
	if err := tbl.MergeFile(p); err != nil {
		t.Fatal(err)
	}
	m, _ := tbl.Lookup("gpt-4o-2024-08-06")
	if m.Input.Per1M() != "2.00" || m.Output.Per1M() != "10.00" || m.CachedInput.Per1M() != "1.25" {
		t.Errorf("merged gpt-4o = in %s out %s cached %s", m.Input.Per1M(), m.Output.Per1M(), m.CachedInput.Per1M())
	}
	mine, err := tbl.Lookup("mine")
	if err != nil || mine.Name != "my-model" || mine.Encoding != "cl100k_base" || mine.BatchInput.Per1M() != "0.50" {
		t.Errorf("new model: %+v, %v", mine, err)
	}
	if want := "prices as of " + MustDefault().AsOf + " (overrides: " + p + " as of 2026-02-01)"; tbl.AsOfLabel() != want {
		t.Errorf("label = %q, want %q", tbl.AsOfLabel(), want)
	}
	// JSON in the same format
	pj := filepath.Join(dir, "p.json")
	os.WriteFile(pj, []byte(`{"models": {"x-model": {"input_per_1m": 0.5, "output_per_1m": 1.5}}}`), 0o644)
	if err := tbl.MergeFile(pj); err != nil {
		t.Fatal(err)
	}
	if x, err := tbl.Lookup("x-model"); err != nil || x.Output.Per1M() != "1.50" {
		t.Errorf("json override: %v %v", x, err)
	}
}

func TestOverridesErrorsNameFileAndKey(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"models:\n  gpt-4o:\n    input_per_1m: abc\n":    "bad.yaml:3: models.gpt-4o.input_per_1m: invalid price \"abc\": not a number",
		"models:\n  gpt-4o:\n    inptu_per_1m: \"1\"\n":  "bad.yaml:3: models.gpt-4o.inptu_per_1m: unknown key",
		"models:\n  new-one:\n    input_per_1m: \"1\"\n": "models.new-one.output_per_1m: missing",
		"models:\n  gpt-4o:\n    encoding: foo\n":        "bad.yaml:3: models.gpt-4o.encoding: unknown encoding \"foo\"",
		"prices: {}\n":    "unrecognised price file",
		"models: [1, 2\n": "bad.yaml: not valid YAML or JSON",
		"models:\n  gpt-4o:\n    output_per_1m: \"-3\"\n": "models.gpt-4o.output_per_1m: invalid price \"-3\": negative",
	}
	for content, want := range cases {
		p := filepath.Join(dir, "bad.yaml")
		os.WriteFile(p, []byte(content), 0o644)
		err := MustDefault().MergeFile(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("content %q: err = %v, want it to contain %q", content, err, want)
		}
	}
	if err := MustDefault().MergeFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestOverridesLiteLLM(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "model_prices_and_context_window.json")
	os.WriteFile(p, []byte(`{
  "sample_spec": {"max_tokens": "LEGACY parameter", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "one of..."},
  "gpt-4o": {"max_input_tokens": 128000, "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
             "cache_read_input_token_cost": 1.25e-06, "input_cost_per_token_batches": 1.25e-06,
             "output_cost_per_token_batches": 5e-06, "litellm_provider": "openai", "mode": "chat"},
  "claude-sonnet-4-5-20250929": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
             "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06,
             "input_cost_per_token_above_200k_tokens": 6e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05,
             "litellm_provider": "anthropic"},
  "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation"},
  "mistral/mistral-large-latest": {"max_input_tokens": 128000, "input_cost_per_token": 2e-06, "output_cost_per_token": 6e-06, "litellm_provider": "mistral"}
}`), 0o644)
	tbl := MustDefault()
	if err := tbl.MergeFile(p); err != nil {
		t.Fatal(err)
	}
	m, _ := tbl.Lookup("gpt-4o")
	if m.Input.Per1M() != "2.50" || m.BatchOutput.Per1M() != "5.00" || m.CachedInput.Per1M() != "1.25" {
		t.Errorf("gpt-4o from LiteLLM: %s %s %s", m.Input.Per1M(), m.BatchOutput.Per1M(), m.CachedInput.Per1M())
	}
	s, _ := tbl.Lookup("claude-sonnet-4.5")
	if len(s.LongContext) != 1 || s.LongContext[0].Output.Per1M() != "22.50" || s.CacheWrite5m.Per1M() != "3.75" {
		t.Errorf("sonnet from LiteLLM: %+v", s.LongContext)
	}
	ml, err := tbl.Lookup("mistral/mistral-large-latest")
	if err != nil || ml.Provider != "mistral" || ml.Input.Per1M() != "2.00" || ml.ExactTokenizer {
		t.Errorf("new LiteLLM model: %+v %v", ml, err)
	}
	if _, err := tbl.Lookup("dall-e-3"); err == nil {
		t.Error("an entry without token prices must not become a $0 model")
	}
}
