package commands

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/costctl/costctl/pricing"
)

// genAISource is a genai-prices data.json that prices every built-in
// first-party model as the table does, long-context tiers included (gpt-4o
// at $2.00 instead of $2.50), plus gpt-9-tiered, with >200k and >272k
// tiers.
func genAISource(t *testing.T) string {
	t.Helper()
	type model struct {
		ID     string `json:"id"`
		Match  any    `json:"match"`
		Prices any    `json:"prices"`
	}
	byProvider := map[string][]model{}
	for _, m := range pricing.MustDefault().Models() {
		if strings.Contains(m.Name, "/") || (m.Provider != "openai" && m.Provider != "anthropic" && m.Provider != "google") {
			continue
		}
		in, out := m.Input.Per1M(), m.Output.Per1M()
		if m.Name == "gpt-4o" {
			in = "2.00"
		}
		// The model's long-context tiers, as genai-prices writes them.
		if len(m.LongContext) > 0 {
			var ti, to []string
			for _, lc := range m.LongContext {
				ti = append(ti, fmt.Sprintf(`{"start": %d, "price": %s}`, lc.AboveTokens, lc.Input.Per1M()))
				to = append(to, fmt.Sprintf(`{"start": %d, "price": %s}`, lc.AboveTokens, lc.Output.Per1M()))
			}
			in = fmt.Sprintf(`{"base": %s, "tiers": [%s]}`, in, strings.Join(ti, ", "))
			out = fmt.Sprintf(`{"base": %s, "tiers": [%s]}`, out, strings.Join(to, ", "))
		}
		byProvider[m.Provider] = append(byProvider[m.Provider], model{ID: m.Name, Match: map[string]string{"equals": m.Name},
			Prices: map[string]json.RawMessage{"input_mtok": json.RawMessage(in), "output_mtok": json.RawMessage(out)}})
	}
	byProvider["openai"] = append(byProvider["openai"], model{ID: "gpt-9-tiered", Match: map[string]string{"equals": "gpt-9-tiered"},
		Prices: json.RawMessage(`{"input_mtok": {"base": 2, "tiers": [{"start": 200000, "price": 4}, {"start": 272000, "price": 6}]},
			"cache_read_mtok": {"base": 0.2, "tiers": [{"start": 272000, "price": 0.6}]},
			"output_mtok": {"base": 8, "tiers": [{"start": 200000, "price": 12}, {"start": 272000, "price": 18}]}}`)})
	var providers []map[string]any
	for _, p := range []string{"anthropic", "google", "openai"} {
		providers = append(providers, map[string]any{"id": p, "name": p, "api_pattern": "x", "models": byProvider[p]})
	}
	b, err := json.MarshalIndent(providers, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPricingUpdateFromGenAIPricesURL: pricing update reads genai-prices'
// JSON from a loopback URL (format detected), and the snapshot it writes
// prices a tiered model at each tier.
func TestPricingUpdateFromGenAIPricesURL(t *testing.T) {
	e := newPricingEnv(t)
	e.body.Store(genAISource(t))
	url := e.srv.URL + "/data.json"

	code, out, errOut := e.run("pricing", "update", "--from", url, "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, fmt.Sprintf("current → %s: 1 added, 0 removed, 1 prices changed\n", url)) ||
		!strings.Contains(out, "gpt-4o  input    $2.50    $2.00  -20.0%") || !strings.Contains(out, "added: gpt-9-tiered\n") {
		t.Errorf("dry run output:\n%s", out)
	}
	if code, _, errOut := e.run("pricing", "update", "--from", url); code != 0 {
		t.Fatalf("update: exit %d: %s", code, errOut)
	}
	code, out, errOut = e.run("pricing", "show", "gpt-9-tiered")
	if code != 0 {
		t.Fatalf("show: exit %d: %s", code, errOut)
	}
	want := `FIELD                           VALUE
---
model                           gpt-9-tiered
provider                        openai
tokenizer                       o200k_base (approximate: no public tokenizer)
context window                  not published
max output                      not published
input                           $2.00 / 1M
cached input                    $0.20 / 1M
output                          $8.00 / 1M
batch input                     $1.00 / 1M (50% of list)
batch output                    $4.00 / 1M (50% of list)
> 200,000 tokens: input         $4.00 / 1M
> 200,000 tokens: cached input  $0.20 / 1M
> 200,000 tokens: output        $12.00 / 1M
> 200,000 tokens: batch input   $2.00 / 1M (50% of list)
> 200,000 tokens: batch output  $6.00 / 1M (50% of list)
> 272,000 tokens: input         $6.00 / 1M
> 272,000 tokens: cached input  $0.60 / 1M
> 272,000 tokens: output        $18.00 / 1M
> 272,000 tokens: batch input   $3.00 / 1M (50% of list)
> 272,000 tokens: batch output  $9.00 / 1M (50% of list)
source                          genai-prices ` + url + ` (openai gpt-9-tiered)
overridden by                   ` + url + `

prices as of 2026-11-20 (overrides: snapshot of ` + url + ` taken 2026-11-20)
`
	if dropRuler(out) != dropRuler(want) {
		t.Errorf("show:\n%s\nwant:\n%s", out, want)
	}
	// pricing diff reads the same source by URL and names the tiers.
	code, out, _ = e.run("pricing", "diff", "builtin", url, "--format", "json")
	var d struct {
		Added   []string              `json:"added"`
		Changed []pricing.PriceChange `json:"changed"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil || len(d.Added) != 1 || len(d.Changed) != 1 || d.Changed[0].Field != "input" {
		t.Errorf("diff: exit %d\n%s", code, out)
	}
}

// TestPricingShowNoBatchAndDeprecated: a model without a Batch API says so
// (never "50% of list"), and a model past its deprecation date shows the
// date and keeps its price.
func TestPricingShowNoBatchAndDeprecated(t *testing.T) {
	e := newPricingEnv(t)
	p := filepath.Join(e.home, "litellm.json")
	os.WriteFile(p, []byte(`{"together_ai/acme-70b": {"litellm_provider": "together_ai", "input_cost_per_token": 8.8e-07, "output_cost_per_token": 8.8e-07,
	  "max_input_tokens": 131072, "max_output_tokens": 8192, "deprecation_date": "2026-06-30"}}`), 0o644)
	code, out, errOut := e.run("--pricing", p, "pricing", "show", "together_ai/acme-70b")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `FIELD           VALUE
---
model           together_ai/acme-70b
provider        together_ai
tokenizer       o200k_base (approximate: no public tokenizer)
context window  131,072 tokens
max output      8,192 tokens
deprecated      deprecated on 2026-06-30 (the price is kept for past usage)
input           $0.88 / 1M
output          $0.88 / 1M
batch           none: no Batch API (a batch call is unpriced)
source          LiteLLM ` + p + `
overridden by   ` + p + `

prices as of 2026-12-01 (overrides: ` + p + `)
`
	if dropRuler(out) != dropRuler(want) {
		t.Errorf("show:\n%s\nwant:\n%s", out, want)
	}
	code, out, _ = e.run("--pricing", p, "pricing", "show", "together_ai/acme-70b", "--format", "json")
	var j struct {
		Model struct {
			NoBatch    bool    `json:"no_batch_api"`
			BatchInput *string `json:"batch_input_per_1m"`
			MaxOutput  int64   `json:"max_output_tokens"`
			Deprecated string  `json:"deprecated_on"`
		} `json:"model"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || !j.Model.NoBatch || j.Model.BatchInput != nil || j.Model.MaxOutput != 8192 || j.Model.Deprecated != "2026-06-30" {
		t.Errorf("json: %s", out)
	}
}

// dropRuler is a table without its ruler line, whose width follows the
// longest value (here a temporary path or a loopback URL).
func dropRuler(s string) string {
	lines := strings.SplitN(s, "\n", 3)
	if len(lines) < 3 {
		return s
	}
	return lines[0] + "\n" + lines[2]
}

// TestPricingDiffTierTable: the diff table names a long-context tier by its
// threshold and shows a tier only one side has against none.
func TestPricingDiffTierTable(t *testing.T) {
	e := newPricingEnv(t)
	p := filepath.Join(e.home, "tier.yaml")
	os.WriteFile(p, []byte("models:\n  gpt-4o:\n    long_context: {above_tokens: 200000, input_per_1m: \"5.00\", output_per_1m: \"20.00\"}\n"), 0o644)
	code, out, errOut := e.run("pricing", "diff", "builtin", p)
	want := "builtin → " + p + ": 0 added, 0 removed, 2 prices changed\n" +
		"MODEL   PRICE              OLD /1M  NEW /1M  CHANGE\n" +
		"---------------------------------------------------\n" +
		"gpt-4o  input_above_200k      none    $5.00     new\n" +
		"gpt-4o  output_above_200k     none   $20.00     new\n"
	if code != 0 || out != want {
		t.Errorf("exit %d %s\n%s\nwant:\n%s", code, errOut, out, want)
	}
}
