package pricing

import (
	"reflect"
	"testing"
)

// TestLookupLate2026 resolves every model issue 11 asks the table to carry,
// with the regional and provider-qualified spellings people send.
func TestLookupLate2026(t *testing.T) {
	tbl := MustDefault()
	cases := map[string]string{
		// OpenAI
		"gpt-5":                     "gpt-5",
		"gpt-5-mini":                "gpt-5-mini",
		"gpt-5-nano":                "gpt-5-nano",
		"gpt-5.1":                   "gpt-5.1",
		"gpt-5.1-2025-11-13":        "gpt-5.1",
		"gpt-5.1-chat-latest":       "gpt-5.1-chat-latest",
		"gpt-5.2":                   "gpt-5.2",
		"gpt-5.2-2025-12-11":        "gpt-5.2",
		"gpt-5.2-chat-latest":       "gpt-5.2-chat-latest",
		"gpt-5.2-pro":               "gpt-5.2-pro",
		"gpt-5.4":                   "gpt-5.4",
		"gpt-5.4-2026-03-05":        "gpt-5.4",
		"gpt-5.4-mini":              "gpt-5.4-mini",
		"gpt-5.4-pro":               "gpt-5.4-pro",
		"gpt-5.5":                   "gpt-5.5",
		"openai/gpt-5.5-2026-04-23": "gpt-5.5",
		"gpt-5.5-pro":               "gpt-5.5-pro",
		"gpt-4.1":                   "gpt-4.1",
		"gpt-4.1-mini":              "gpt-4.1-mini",
		"gpt-4.1-nano":              "gpt-4.1-nano",
		"o1":                        "o1",
		"o3":                        "o3",
		"o3-mini":                   "o3-mini",
		"o4-mini":                   "o4-mini",
		"chatgpt-4o-latest":         "chatgpt-4o-latest",
		"openai/chatgpt-4o-latest":  "chatgpt-4o-latest",
		"gpt-4o":                    "gpt-4o",
		// Anthropic, first party
		"claude-haiku-4-5":           "claude-haiku-4.5",
		"claude-sonnet-4-5":          "claude-sonnet-4.5",
		"claude-sonnet-4-6":          "claude-sonnet-4.6",
		"claude-sonnet-5":            "claude-sonnet-5",
		"claude-opus-4-1":            "claude-opus-4.1",
		"claude-opus-4-5":            "claude-opus-4.5",
		"claude-opus-4-6":            "claude-opus-4.6",
		"claude-opus-4-6-20260205":   "claude-opus-4.6",
		"claude-opus-4-7":            "claude-opus-4.7",
		"claude-opus-4-7-20260416":   "claude-opus-4.7",
		"claude-opus-4-8":            "claude-opus-4.8",
		"claude-3-7-sonnet-20250219": "claude-3.7-sonnet",
		"claude-3-7-sonnet-latest":   "claude-3.7-sonnet",
		"claude-3-haiku-20240307":    "claude-3-haiku",
		"anthropic/claude-opus-4-8":  "claude-opus-4.8",
		// Bedrock and Vertex: global and pre-4.5 models at list price,
		// regional endpoints of 4.5+ models 10% dearer.
		"anthropic.claude-sonnet-4-5-20250929-v1:0":                    "claude-sonnet-4.5",
		"global.anthropic.claude-sonnet-4-5-20250929-v1:0":             "claude-sonnet-4.5",
		"bedrock/global.anthropic.claude-opus-4-6-v1":                  "claude-opus-4.6",
		"us.anthropic.claude-sonnet-4-5-20250929-v1:0":                 "bedrock/us.claude-sonnet-4.5",
		"bedrock/eu.anthropic.claude-sonnet-4-6":                       "bedrock/eu.claude-sonnet-4.6",
		"apac.anthropic.claude-haiku-4-5-20251001-v1:0":                "bedrock/apac.claude-haiku-4.5",
		"au.anthropic.claude-opus-4-7":                                 "bedrock/au.claude-opus-4.7",
		"jp.anthropic.claude-sonnet-4-5-20250929-v1:0":                 "bedrock/jp.claude-sonnet-4.5",
		"bedrock_converse/us.anthropic.claude-opus-4-8":                "bedrock/us.claude-opus-4.8",
		"us.anthropic.claude-3-7-sonnet-20250219-v1:0":                 "claude-3.7-sonnet",
		"eu.anthropic.claude-3-haiku-20240307-v1:0":                    "claude-3-haiku",
		"bedrock/us-west-2/us.anthropic.claude-opus-4-1-20250805-v1:0": "claude-opus-4.1",
		"vertex_ai/claude-sonnet-4-5@20250929":                         "claude-sonnet-4.5",
		"vertex_ai/us.claude-sonnet-4-5@20250929":                      "vertex_ai/us.claude-sonnet-4.5",
		"vertex_ai/global.claude-opus-4-5@20251101":                    "claude-opus-4.5",
		// Google
		"gemini-2.0-flash":                     "gemini-2.0-flash",
		"gemini-2.5-flash":                     "gemini-2.5-flash",
		"gemini-2.5-pro":                       "gemini-2.5-pro",
		"gemini/gemini-2.5-pro":                "gemini-2.5-pro",
		"gpt-5.4-nano":                         "gpt-5.4-nano",
		"gpt-5-pro":                            "gpt-5-pro",
		"gpt-5-pro-2025-10-06":                 "gpt-5-pro",
		"gpt-5-codex":                          "gpt-5-codex",
		"gpt-5.1-codex":                        "gpt-5.1-codex",
		"gpt-5.1-codex-max":                    "gpt-5.1-codex-max",
		"gpt-5.1-codex-mini":                   "gpt-5.1-codex-mini",
		"gpt-5.2-codex":                        "gpt-5.2-codex",
		"gpt-5.3-codex":                        "gpt-5.3-codex",
		"gpt-5.3-chat-latest":                  "gpt-5.3-chat-latest",
		"o1-pro":                               "o1-pro",
		"o3-pro":                               "o3-pro",
		"o3-pro-2025-06-10":                    "o3-pro",
		"o3-deep-research":                     "o3-deep-research",
		"o4-mini-deep-research-2025-06-26":     "o4-mini-deep-research",
		"gemini-2.0-flash-lite":                "gemini-2.0-flash-lite",
		"gemini-2.5-flash-lite":                "gemini-2.5-flash-lite",
		"gemini-3-pro-preview":                 "gemini-3-pro-preview",
		"gemini-3-flash-preview":               "gemini-3-flash-preview",
		"gemini-3.1-pro-preview":               "gemini-3.1-pro-preview",
		"gemini/gemini-3.1-flash-lite-preview": "gemini-3.1-flash-lite",
		"gemini-3.5-flash":                     "gemini-3.5-flash",
		"vertex_ai/gemini-3.5-flash":           "gemini-3.5-flash",
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

// TestLookupLate2026Prices checks prices read by hand off the providers'
// pages and LiteLLM's table (USD per 1M tokens).
func TestLookupLate2026Prices(t *testing.T) {
	tbl := MustDefault()
	type want struct{ in, cached, w5, w1, out string }
	cases := map[string]want{
		// its own model, not gpt-4o's $2.50/$10
		"chatgpt-4o-latest": {"5.00", "5.00", "5.00", "5.00", "15.00"},
		"gpt-5.5":           {"5.00", "0.50", "5.00", "5.00", "30.00"},
		"gpt-5.4-mini":      {"0.75", "0.075", "0.75", "0.75", "4.50"},
		"claude-sonnet-5":   {"2.00", "0.20", "2.50", "4.00", "10.00"},
		"claude-opus-4-8":   {"5.00", "0.50", "6.25", "10.00", "25.00"},
		"o3-pro":            {"20.00", "20.00", "20.00", "20.00", "80.00"},
		"gemini-3.5-flash":  {"1.50", "0.15", "1.50", "1.50", "9.00"},
		// Vertex AI lists Gemini 2.0 Flash above the Gemini API's $0.10/$0.40
		"vertex_ai/gemini-2.0-flash-001": {"0.15", "0.0375", "0.15", "0.15", "0.60"},
		"gemini-2.0-flash-001":           {"0.10", "0.025", "0.10", "0.10", "0.40"},
		// Bedrock regional endpoint: Sonnet 4.5's $3/$15 plus 10%
		"us.anthropic.claude-sonnet-4-5-20250929-v1:0":     {"3.30", "0.33", "4.125", "6.60", "16.50"},
		"global.anthropic.claude-sonnet-4-5-20250929-v1:0": {"3.00", "0.30", "3.75", "6.00", "15.00"},
		// no premium before Claude 4.5
		"us.anthropic.claude-3-7-sonnet-20250219-v1:0": {"3.00", "0.30", "3.75", "6.00", "15.00"},
	}
	for name, w := range cases {
		m, err := tbl.Lookup(name)
		if err != nil {
			t.Errorf("Lookup(%q): %v", name, err)
			continue
		}
		got := want{m.Input.Per1M(), m.CachedInput.Per1M(), m.CacheWrite5m.Per1M(), m.CacheWrite1h.Per1M(), m.Output.Per1M()}
		for i, pair := range [][2]string{{got.in, w.in}, {got.cached, w.cached}, {got.w5, w.w5}, {got.w1, w.w1}, {got.out, w.out}} {
			g, e := mustRate(t, pair[0]), mustRate(t, pair[1])
			if g != e {
				t.Errorf("%s: price %d = %s/1M, want %s/1M", name, i, pair[0], pair[1])
			}
		}
	}
}

func mustRate(t *testing.T, s string) Rate {
	t.Helper()
	r, err := ParseRatePer1M(s)
	if err != nil {
		t.Fatalf("ParseRatePer1M(%q): %v", s, err)
	}
	return r
}

// TestLookupLongContextTiers: GPT-5.4/5.5 price the whole request at the
// >272k tier; Sonnet 4.5 at >200k, uplifted with the rest on a regional
// endpoint.
func TestLookupLongContextTiers(t *testing.T) {
	tbl := MustDefault()
	for _, c := range []struct {
		name    string
		above   int64
		in, out string
	}{
		{"gpt-5.4", 272000, "5.00", "22.50"},
		{"gpt-5.5", 272000, "10.00", "45.00"},
		{"gpt-5.5-pro", 272000, "60.00", "270.00"},
		{"gemini-3.1-pro-preview", 200000, "4.00", "18.00"},
		{"us.anthropic.claude-sonnet-4-5-20250929-v1:0", 200000, "6.60", "24.75"},
	} {
		m, err := tbl.Lookup(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.LongContext) != 1 || m.LongContext[0].AboveTokens != c.above {
			t.Errorf("%s: long context = %+v, want above %d", c.name, m.LongContext, c.above)
			continue
		}
		if r := m.RatesFor(c.above); r.Input != m.Input {
			t.Errorf("%s: %d tokens priced at the long tier", c.name, c.above)
		}
		r := m.RatesFor(c.above + 1)
		if r.Input != mustRate(t, c.in) || r.Output != mustRate(t, c.out) {
			t.Errorf("%s: long tier %s/%s, want %s/%s", c.name, r.Input.Per1M(), r.Output.Per1M(), c.in, c.out)
		}
	}
}

// TestLookupRegionalIsACopy: the uplift never leaks into the table's model.
func TestLookupRegionalIsACopy(t *testing.T) {
	tbl := MustDefault()
	if _, err := tbl.Lookup("eu.anthropic.claude-opus-4-6-v1"); err != nil {
		t.Fatal(err)
	}
	m, err := tbl.Lookup("claude-opus-4-6")
	if err != nil {
		t.Fatal(err)
	}
	if m.Input != mustRate(t, "5.00") || len(m.LongContext) > 0 && m.LongContext[0].Input == 0 {
		t.Errorf("claude-opus-4.6 input = %s after a regional lookup", m.Input.Per1M())
	}
}

// TestBuiltinFastParseMatchesYAML: the start-up line parser reads the
// built-in file exactly as the YAML parser does, and refuses what it does
// not know.
func TestBuiltinFastParseMatchesYAML(t *testing.T) {
	fast, err := parseBuiltin(embeddedPrices)
	if err != nil {
		t.Fatalf("parseBuiltin: %v", err)
	}
	slow, err := parseOwnFormat("built-in prices.yaml", embeddedPrices)
	if err != nil {
		t.Fatal(err)
	}
	if fast.asOf != slow.asOf || len(fast.models) != len(slow.models) {
		t.Fatalf("as_of %s/%s, %d/%d models", fast.asOf, slow.asOf, len(fast.models), len(slow.models))
	}
	for i := range slow.models {
		if !reflect.DeepEqual(fast.models[i], slow.models[i]) {
			t.Errorf("model %s: line parser %+v, YAML %+v", slow.models[i].name, *fast.models[i], *slow.models[i])
		}
	}
	for _, bad := range []string{
		"as_of: \"2026-12-01\"\nmodels:\n  x:\n    input_per_1m: &a \"1\"\n",
		"as_of: \"2026-12-01\"\nmodels:\n  x:\n    input_per_1m: \"1\\\"\"\n",
		"as_of: \"2026-12-01\"\nmodels:\n  x: {input_per_1m: \"1\"}\n",
		"as_of: \"2026-12-01\"\nmodels:\n  x:\n    long_context:\n      input_per_1m: \"1\"\n",
		"as_of: \"2026-12-01\"\nmodels:\n  x:\n    surprise: 1\n",
		"as_of: \"2026-12-01\"\nmodels:\n  x:\n    source: a # comment\n",
	} {
		if _, err := parseBuiltin([]byte(bad)); err == nil {
			t.Errorf("parseBuiltin accepted %q", bad)
		}
	}
}
