package ingest

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// parseNow is the clock of the parse tests.
var parseNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

var table = pricing.MustDefault()

// parseAndPrice is what ingest does with one line, without the ledger.
func parseAndPrice(t testing.TB, s string) (parsed, error) {
	t.Helper()
	p, err := parseShaped([]byte(s), Defaults{Tenant: "default-tenant"}, parseNow)
	if err != nil {
		return p, err
	}
	m, lerr := table.Lookup(p.Event.Model)
	if lerr != nil {
		m = nil
	}
	priceEvent(m, &p.Event)
	return p, nil
}

// kinds are an event's token kinds, in the order
// input, cached, 5-minute writes, 1-hour writes, output, reasoning.
type kinds [6]int64

func kindsOf(e ledger.Event) kinds {
	return kinds{e.InputTokens, e.CachedTokens, e.CacheWrite5mTokens, e.CacheWrite1hTokens, e.OutputTokens, e.ReasoningTokens}
}

// TestShapesPriceEachRate prices one hand-computed event per shape and
// rate. Rates are pico-dollars per token ($1 per 1M = 1,000,000), costs
// nano-dollars: cost = Σ tokens × rate / 1000.
func TestShapesPriceEachRate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		line  string
		shape Shape
		kinds kinds
		batch bool
		tier  string
		cost  pricing.Money // ignored when unpriced
		unpr  bool
	}{
		// gpt-4o: 1000 plain × 2.5M + 1000 cached × 1.25M + 100 out × 10M
		// = 2.5e9 + 1.25e9 + 1e9 pico = 4,750,000 nano ($0.00475)
		{"chat", `{"id":"c1","object":"chat.completion","created":1795255200,"model":"gpt-4o","usage":{"prompt_tokens":2000,"completion_tokens":100,"prompt_tokens_details":{"cached_tokens":1000}}}`,
			ShapeOpenAIChat, kinds{2000, 1000, 0, 0, 100, 0}, false, "", 4_750_000, false},
		// gpt-4o priority: 1000 × 4.25M + 1000 × 2.125M + 100 × 17M = 4.25e9 + 2.125e9 + 1.7e9
		{"chat priority", `{"object":"chat.completion","model":"gpt-4o","service_tier":"priority","usage":{"prompt_tokens":2000,"completion_tokens":100,"prompt_tokens_details":{"cached_tokens":1000}}}`,
			ShapeOpenAIChat, kinds{2000, 1000, 0, 0, 100, 0}, false, "priority", 8_075_000, false},
		// no "object": prompt_tokens says Chat Completions; reasoning is inside the
		// completion. o3: 1000 × 2M + 400 × 8M = 2e9 + 3.2e9
		{"chat by its keys, reasoning", `{"model":"o3","usage":{"prompt_tokens":1000,"completion_tokens":400,"completion_tokens_details":{"reasoning_tokens":300}}}`,
			ShapeOpenAIChat, kinds{1000, 0, 0, 0, 400, 300}, false, "", 5_200_000, false},
		// gpt-5: 1000 × 1.25M + 1000 × 0.125M + 500 × 10M = 1.25e9 + 0.125e9 + 5e9
		{"responses", `{"id":"r1","object":"response","created_at":1795255200,"model":"gpt-5","usage":{"input_tokens":2000,"input_tokens_details":{"cached_tokens":1000},"output_tokens":500,"output_tokens_details":{"reasoning_tokens":300},"total_tokens":2500}}`,
			ShapeOpenAIResponses, kinds{2000, 1000, 0, 0, 500, 300}, false, "", 6_375_000, false},
		// o4-mini flex: 1000 × 0.55M + 1000 × 0.138M + 500 × 2.2M = 0.55e9 + 0.138e9 + 1.1e9
		{"responses flex", `{"object":"response","model":"o4-mini","service_tier":"flex","usage":{"input_tokens":2000,"input_tokens_details":{"cached_tokens":1000},"output_tokens":500,"total_tokens":2500}}`,
			ShapeOpenAIResponses, kinds{2000, 1000, 0, 0, 500, 0}, false, "flex", 1_788_000, false},
		// gpt-4o has no flex price: unpriced, never list
		{"responses flex unlisted", `{"object":"response","model":"gpt-4o","service_tier":"flex","usage":{"input_tokens":20,"output_tokens":5}}`,
			ShapeOpenAIResponses, kinds{20, 0, 0, 0, 5, 0}, false, "flex", 0, true},
		// Anthropic's own numbers: input_tokens excludes the 3000 cache reads.
		// Sonnet 4.5: 5000 × 3M + 3000 × 0.3M + 100 × 15M = 15e9 + 0.9e9 + 1.5e9
		// = 17,400,000 nano = $0.0174 (a flat event with these numbers is $0.0084, below)
		{"anthropic", `{"type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":5000,"cache_read_input_tokens":3000,"output_tokens":100}}`,
			ShapeAnthropic, kinds{8000, 3000, 0, 0, 100, 0}, false, "", 17_400_000, false},
		// writes split by TTL: 1000 × 3M + 2000 × 3.75M + 3000 × 6M + 100 × 15M
		// = 3e9 + 7.5e9 + 18e9 + 1.5e9
		{"anthropic 5m and 1h writes", `{"type":"message","model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":1000,"cache_creation_input_tokens":5000,"cache_creation":{"ephemeral_5m_input_tokens":2000,"ephemeral_1h_input_tokens":3000},"cache_read_input_tokens":0,"output_tokens":100}}`,
			ShapeAnthropic, kinds{6000, 0, 2000, 3000, 100, 0}, false, "", 30_000_000, false},
		// no split: the writes are 5-minute. 1000 × 3M + 2000 × 3.75M = 3e9 + 7.5e9
		{"anthropic writes without the split", `{"model":"claude-sonnet-4-5","usage":{"input_tokens":1000,"cache_creation_input_tokens":2000,"output_tokens":0}}`,
			ShapeAnthropic, kinds{3000, 0, 2000, 0, 0, 0}, false, "", 10_500_000, false},
		// usage.service_tier "batch": batch in 1.5M, cached 0.15M (0.3M/2), out 7.5M:
		// 5000 × 1.5M + 3000 × 0.15M + 100 × 7.5M = 7.5e9 + 0.45e9 + 0.75e9
		{"anthropic batch", `{"type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":5000,"cache_read_input_tokens":3000,"output_tokens":100,"service_tier":"batch"}}`,
			ShapeAnthropic, kinds{8000, 3000, 0, 0, 100, 0}, true, "", 8_700_000, false},
		{"anthropic priority unlisted", `{"type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":5,"output_tokens":1,"service_tier":"priority"}}`,
			ShapeAnthropic, kinds{5, 0, 0, 0, 1, 0}, false, "priority", 0, true},
		// 2.5 Flash: 4000 plain × 0.3M + 8000 cached × 0.03M + (300 + 1200) out × 2.5M
		// = 1.2e9 + 0.24e9 + 3.75e9
		{"gemini", `{"modelVersion":"gemini-2.5-flash","usageMetadata":{"promptTokenCount":12000,"cachedContentTokenCount":8000,"candidatesTokenCount":300,"thoughtsTokenCount":1200,"totalTokenCount":13500}}`,
			ShapeGemini, kinds{12000, 8000, 0, 0, 1500, 1200}, false, "", 5_190_000, false},
		// tool-use prompt tokens are input: (100 + 900) × 0.3M + 50 × 2.5M = 0.3e9 + 0.125e9
		{"gemini tool use", `{"modelVersion":"gemini-2.5-flash","usageMetadata":{"promptTokenCount":100,"toolUsePromptTokenCount":900,"candidatesTokenCount":50}}`,
			ShapeGemini, kinds{1000, 0, 0, 0, 50, 0}, false, "", 425_000, false},
		// above 200k the whole call is at 2.5 Pro's long-context rates:
		// 250,000 × 2.5M + 1000 × 15M = 625e9 + 15e9
		{"gemini long context", `{"modelVersion":"gemini-2.5-pro","usageMetadata":{"promptTokenCount":250000,"candidatesTokenCount":1000}}`,
			ShapeGemini, kinds{250000, 0, 0, 0, 1000, 0}, false, "", 640_000_000, false},
		// gpt-4o-mini batch: 600 × 0.075M + 400 × 0.0375M + 200 × 0.3M = 45e6 + 15e6 + 60e6
		{"batch", `{"id":"batch_req_1","custom_id":"r1","response":{"status_code":200,"body":{"object":"chat.completion","created":1795255200,"model":"gpt-4o-mini","service_tier":"default","usage":{"prompt_tokens":1000,"completion_tokens":200,"prompt_tokens_details":{"cached_tokens":400}}}},"error":null}`,
			ShapeOpenAIBatch, kinds{1000, 400, 0, 0, 200, 0}, true, "", 120_000, false},
		// a Responses body: gpt-5 batch 1000 × 0.625M + 1000 × 0.0625M + 500 × 5M
		// = 0.625e9 + 0.0625e9 + 2.5e9
		{"batch of responses", `{"id":"batch_req_2","custom_id":"r2","response":{"status_code":200,"body":{"object":"response","created_at":1795255200,"model":"gpt-5","usage":{"input_tokens":2000,"input_tokens_details":{"cached_tokens":1000},"output_tokens":500,"output_tokens_details":{"reasoning_tokens":100},"total_tokens":2500}}},"error":null}`,
			ShapeOpenAIBatch, kinds{2000, 1000, 0, 0, 500, 100}, true, "", 3_187_500, false},
		// gpt-4o-mini: 600 × 0.15M + 400 × 0.075M + 200 × 0.6M = 90e6 + 30e6 + 120e6
		{"flat", `{"model":"gpt-4o-mini","input_tokens":1000,"cached_input_tokens":400,"output_tokens":200}`,
			ShapeFlat, kinds{1000, 400, 0, 0, 200, 0}, false, "", 240_000, false},
		// flat input_tokens includes the cached tokens: 2000 × 3M + 3000 × 0.3M + 100 × 15M
		// = 6e9 + 0.9e9 + 1.5e9 = $0.0084 — the same numbers in Anthropic's shape are $0.0174
		{"flat is not anthropic", `{"model":"claude-sonnet-4-5","input_tokens":5000,"cached_input_tokens":3000,"output_tokens":100}`,
			ShapeFlat, kinds{5000, 3000, 0, 0, 100, 0}, false, "", 8_400_000, false},
		// 1000 plain × 3M + 8000 × 0.3M + 2000 × 3.75M + 1000 × 6M + 400 × 15M
		// = 3e9 + 2.4e9 + 7.5e9 + 6e9 + 6e9
		{"flat writes", `{"model":"claude-sonnet-4-5","input_tokens":12000,"cached_input_tokens":8000,"cache_write_5m_tokens":2000,"cache_write_1h_tokens":1000,"output_tokens":400}`,
			ShapeFlat, kinds{12000, 8000, 2000, 1000, 400, 0}, false, "", 24_900_000, false},
		// gpt-4o batch: 1000 × 1.25M + 1000 × 0.625M + 100 × 5M = 1.25e9 + 0.625e9 + 0.5e9
		{"flat batch", `{"model":"gpt-4o","input_tokens":2000,"cached_input_tokens":1000,"output_tokens":100,"batch":true}`,
			ShapeFlat, kinds{2000, 1000, 0, 0, 100, 0}, true, "", 2_375_000, false},
		// gpt-5 flex: 1000 × 0.625M + 1000 × 0.0625M + 100 × 5M = 0.625e9 + 0.0625e9 + 0.5e9
		{"flat flex", `{"model":"gpt-5","input_tokens":2000,"cached_input_tokens":1000,"output_tokens":100,"service_tier":"flex"}`,
			ShapeFlat, kinds{2000, 1000, 0, 0, 100, 0}, false, "flex", 1_187_500, false},
		// gpt-5 priority: 1000 × 2.5M + 1000 × 0.25M + 100 × 20M = 2.5e9 + 0.25e9 + 2e9
		{"flat priority", `{"model":"gpt-5","input_tokens":2000,"cached_input_tokens":1000,"output_tokens":100,"service_tier":"priority"}`,
			ShapeFlat, kinds{2000, 1000, 0, 0, 100, 0}, false, "priority", 4_750_000, false},
		// gpt-5 default: 1000 × 1.25M + 1000 × 0.125M + 100 × 10M = 1.25e9 + 0.125e9 + 1e9
		{"flat default tier", `{"model":"gpt-5","input_tokens":2000,"cached_input_tokens":1000,"output_tokens":100,"service_tier":"default"}`,
			ShapeFlat, kinds{2000, 1000, 0, 0, 100, 0}, false, "default", 2_375_000, false},
		// reasoning is informational (inside output): 1000 × 1.25M + 500 × 10M = 1.25e9 + 5e9
		{"flat reasoning", `{"model":"gpt-5","input_tokens":1000,"output_tokens":500,"reasoning_tokens":400}`,
			ShapeFlat, kinds{1000, 0, 0, 0, 500, 400}, false, "", 6_250_000, false},
		{"flat flex unlisted", `{"model":"gpt-4o","input_tokens":10,"output_tokens":1,"service_tier":"flex"}`,
			ShapeFlat, kinds{10, 0, 0, 0, 1, 0}, false, "flex", 0, true},
		{"flat cache write without a write price", `{"model":"gpt-4o","input_tokens":10,"cache_write_5m_tokens":5,"output_tokens":1}`,
			ShapeFlat, kinds{10, 0, 5, 0, 1, 0}, false, "", 0, true},
		{"unknown model", `{"model":"mystery-llm","input_tokens":10,"output_tokens":1}`,
			ShapeFlat, kinds{10, 0, 0, 0, 1, 0}, false, "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseAndPrice(t, tc.line)
			if err != nil {
				t.Fatal(err)
			}
			e := p.Event
			if p.Shape != tc.shape || kindsOf(e) != tc.kinds || e.Batch != tc.batch || e.ServiceTier != tc.tier {
				t.Errorf("read as %s %v batch=%v tier=%q, want %s %v batch=%v tier=%q",
					p.Shape, kindsOf(e), e.Batch, e.ServiceTier, tc.shape, tc.kinds, tc.batch, tc.tier)
			}
			if e.Unpriced != tc.unpr || e.Cost != tc.cost {
				t.Errorf("cost %d unpriced=%v, want %d unpriced=%v", e.Cost, e.Unpriced, tc.cost, tc.unpr)
			}
		})
	}
}

// golden is what a golden file records of a parsed, priced line.
type golden struct {
	Shape              Shape  `json:"shape"`
	Key                string `json:"key"`
	Time               string `json:"time"`
	Tenant             string `json:"tenant"`
	User               string `json:"user"`
	Endpoint           string `json:"endpoint"`
	Model              string `json:"model"`
	InputTokens        int64  `json:"input_tokens"`
	CachedTokens       int64  `json:"cached_tokens"`
	CacheWrite5mTokens int64  `json:"cache_write_5m_tokens"`
	CacheWrite1hTokens int64  `json:"cache_write_1h_tokens"`
	OutputTokens       int64  `json:"output_tokens"`
	ReasoningTokens    int64  `json:"reasoning_tokens"`
	Batch              bool   `json:"batch"`
	ServiceTier        string `json:"service_tier"`
	LatencyMS          int64  `json:"latency_ms"`
	Cost               string `json:"cost"`
	Unpriced           bool   `json:"unpriced"`
}

// TestShapeGoldens reads testdata/shapes/<shape>.jsonl — the example each
// shape has in README.md — and compares what ingest makes of it with
// <shape>.golden (go test ./ingest -run Golden -update rewrites them).
func TestShapeGoldens(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, shape := range Shapes {
		t.Run(string(shape), func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", "shapes", string(shape)+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			example := strings.TrimSpace(string(in))
			p, err := parseAndPrice(t, example)
			if err != nil {
				t.Fatal(err)
			}
			if p.Shape != shape {
				t.Fatalf("read as %s", p.Shape)
			}
			e := p.Event
			g := golden{p.Shape, e.Key, e.Time.UTC().Format(time.RFC3339Nano), e.Tenant, e.User, e.Endpoint, e.Model,
				e.InputTokens, e.CachedTokens, e.CacheWrite5mTokens, e.CacheWrite1hTokens, e.OutputTokens, e.ReasoningTokens,
				e.Batch, e.ServiceTier, e.LatencyMS, e.Cost.String(), e.Unpriced}
			got, _ := json.MarshalIndent(g, "", "  ")
			got = append(got, '\n')
			path := filepath.Join("testdata", "shapes", string(shape)+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("%s:\n got %s\nwant %s", path, got, want)
			}
			if !strings.Contains(string(readme), example) {
				t.Errorf("README.md does not show the %s example %s", shape, example)
			}
		})
	}
}

// TestBadLineReasons: each bad line is reported with one reason a person
// can act on, and nothing is billed.
func TestBadLineReasons(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		// OpenAI Batch API failures
		{`{"id":"batch_req_1","custom_id":"r1","response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}`,
			"batch request failed: batch_expired: This request could not be executed before the completion window expired."},
		{`{"id":"batch_req_2","custom_id":"r2","response":{"status_code":400,"request_id":"req_1","body":{"error":{"message":"Invalid model","type":"invalid_request_error","code":null}}},"error":null}`,
			"batch request failed with status 400: Invalid model"},
		{`{"id":"batch_req_3","custom_id":"r3","response":{"status_code":500,"body":{}},"error":null}`,
			"batch request failed with status 500"},
		{`{"id":"batch_req_4","custom_id":"r4","response":{"status_code":200,"body":{"model":"gpt-4o"}},"error":null}`,
			`missing "response.body.usage"`},
		{`{"id":"batch_req_5","custom_id":"r5","response":{"status_code":200,"body":{"usage":{"prompt_tokens":1,"completion_tokens":1}}},"error":null}`,
			`missing "response.body.model"`},
		{`{"id":"batch_req_6","custom_id":"r6","response":{"status_code":200,"body":{"model":"gpt-4o","usage":{"prompt_tokens":-5,"completion_tokens":1}}},"error":null}`,
			`field "response.body.usage.prompt_tokens": -5 out of range (want 0 to 10000000000 tokens)`},
		{`{"id":"batch_req_7","custom_id":"r7","response":{"body":{}},"error":null}`, `missing "response.status_code"`},
		{`{"id":"batch_req_8","custom_id":"r8","response":null,"error":null}`, `batch line has neither "response" nor "error"`},
		{`{"id":"batch_req_9","custom_id":"r9","response":{"status_code":200,"body":{"model":"gpt-4o","usage":{"prompt_tokens":"1"}}}}`,
			`field "response.body.usage.prompt_tokens": want an integer, got string`},
		// OpenAI
		{`{"object":"chat.completion","model":"gpt-4o","usage":{"prompt_tokens":2}}`, `missing "usage.completion_tokens"`},
		{`{"model":"gpt-4o","usage":{"prompt_tokens":2,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":3}}}`,
			"cached tokens (3) exceed input tokens (2)"},
		{`{"model":"o3","usage":{"prompt_tokens":2,"completion_tokens":5,"completion_tokens_details":{"reasoning_tokens":9}}}`,
			"reasoning tokens (9) exceed output tokens (5)"},
		{`{"object":"response","model":"gpt-5","usage":{"input_tokens":2}}`, `missing "usage.output_tokens"`},
		{`{"object":"response","model":"gpt-5","service_tier":"scale","usage":{"input_tokens":2,"output_tokens":1}}`,
			`field "service_tier": unknown service tier "scale" (want default, flex or priority)`},
		{`{"object":"response","usage":{"input_tokens":2,"output_tokens":1}}`, `missing "model"`},
		// Anthropic
		{`{"type":"message","model":"claude-sonnet-4-5","usage":{"output_tokens":1}}`, `missing "usage.input_tokens"`},
		{`{"type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":1,"cache_creation_input_tokens":10,"cache_creation":{"ephemeral_5m_input_tokens":3,"ephemeral_1h_input_tokens":4},"output_tokens":1}}`,
			"usage.cache_creation_input_tokens (10) is not ephemeral_5m + ephemeral_1h (7)"},
		{`{"type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":1,"output_tokens":1,"service_tier":"turbo"}}`,
			`field "usage.service_tier": unknown service tier "turbo" (want default, flex or priority)`},
		{`{"type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":1,"cache_read_input_tokens":-2,"output_tokens":1}}`,
			`field "usage.cache_read_input_tokens": -2 out of range (want 0 to 10000000000 tokens)`},
		// Gemini
		{`{"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":1}}`, `missing "modelVersion"`},
		{`{"modelVersion":"gemini-2.5-flash","usageMetadata":{"candidatesTokenCount":1}}`, `missing "usageMetadata.promptTokenCount"`},
		{`{"modelVersion":"gemini-2.5-flash","usageMetadata":{"promptTokenCount":5,"cachedContentTokenCount":6}}`,
			"cached tokens (6) exceed input tokens (5)"},
		{`{"modelVersion":"gemini-2.5-flash","usageMetadata":{"promptTokenCount":5,"thoughtsTokenCount":10000000001}}`,
			`field "usageMetadata.thoughtsTokenCount": 10000000001 out of range (want 0 to 10000000000 tokens)`},
		// flat
		{`{"model":"gpt-5","input_tokens":1,"output_tokens":1,"batch":true,"service_tier":"flex"}`,
			`"batch": true and "service_tier": "flex" exclude each other`},
		{`{"model":"gpt-5","input_tokens":10,"cached_input_tokens":6,"cache_write_5m_tokens":5,"output_tokens":1}`,
			"cached and cache-write tokens (11) exceed input tokens (10)"},
		{`{"model":"gpt-5","input_tokens":1,"output_tokens":1,"reasoning_tokens":-1}`,
			`field "reasoning_tokens": -1 out of range (want 0 to 10000000000 tokens)`},
		{`{"model":"gpt-5","input_tokens":1,"output_tokens":1,"batch":"yes"}`, `field "batch": want true or false, got string`},
		{`{"model":"gpt-5","input_tokens":1}`, `missing "output_tokens"`},
		{`{"model":"gpt-5","output_tokens":1}`, `missing "input_tokens" (or an OpenAI "usage" object)`},
		{`{"model":"gpt-5","input_tokens":1e3,"output_tokens":1}`, `field "input_tokens": want an integer, got number 1e3`},
		{`{"model":"gpt-5","input_tokens":99999999999999999999,"output_tokens":1}`,
			`field "input_tokens": want an integer, got number 99999999999999999999`},
		{`{"model":"m","usage":"lots"}`, `field "usage": want an object, got string`},
		{`[1,2]`, "not a JSON object (got array)"},
		// impossible times: a bad line, never "now"
		{`{"model":"m","input_tokens":1,"output_tokens":1,"ts":0}`, "timestamp 0 (1970-01-01T00:00:00Z) is before 2000"},
		{`{"model":"m","input_tokens":1,"output_tokens":1,"ts":946684799}`, "timestamp 946684799 (1999-12-31T23:59:59Z) is before 2000"},
		{`{"model":"m","input_tokens":1,"output_tokens":1,"ts":"2026-11-22T12:00:01Z"}`,
			`timestamp "2026-11-22T12:00:01Z" (2026-11-22T12:00:01Z) is more than a day after now (2026-11-21T12:00:00Z)`},
		{`{"model":"m","input_tokens":1,"output_tokens":1,"ts":4102444800000}`,
			"timestamp 4102444800000 (2100-01-01T00:00:00Z) is more than a day after now (2026-11-21T12:00:00Z)"},
		{`{"model":"m","input_tokens":1,"output_tokens":1,"ts":1795255200000000000}`,
			"bad timestamp 1795255200000000000: out of range: want Unix seconds, milliseconds or microseconds"},
		{`{"model":"m","input_tokens":1,"output_tokens":1,"ts":-5}`, "bad timestamp -5: negative"},
		{`{"model":"m","input_tokens":1,"output_tokens":1,"ts":"soon"}`, `bad timestamp "soon": want RFC 3339 (2026-01-02T15:04:05Z) or Unix seconds`},
		{`{"object":"response","created_at":1e30,"model":"gpt-5","usage":{"input_tokens":2,"output_tokens":1}}`,
			"bad timestamp 1e30: out of range: want Unix seconds, milliseconds or microseconds"},
	} {
		_, err := parseShaped([]byte(tc.line), Defaults{}, parseNow)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.line, err, tc.want)
		}
	}
}

func TestTimestamps(t *testing.T) {
	for _, tc := range []struct{ ts, want string }{
		{`1795255200`, "2026-11-21T10:00:00Z"},
		{`1795255200.25`, "2026-11-21T10:00:00.25Z"},
		{`"1795255200"`, "2026-11-21T10:00:00Z"},
		{`1795255200123`, "2026-11-21T10:00:00.123Z"},           // milliseconds
		{`"1795255200123"`, "2026-11-21T10:00:00.123Z"},         // as a string
		{`1.795255200123e12`, "2026-11-21T10:00:00.123Z"},       // as a float
		{`1795255200123456`, "2026-11-21T10:00:00.123456Z"},     // microseconds
		{`"2026-11-21T10:00:00+02:00"`, "2026-11-21T08:00:00Z"}, // RFC 3339
		{`"2026-11-21T10:00:00.5Z"`, "2026-11-21T10:00:00.5Z"},  // with a fraction
		{`946684800`, "2000-01-01T00:00:00Z"},                   // the earliest
		{`1795348800`, "2026-11-22T12:00:00Z"},                  // a day after now: the latest
		{`null`, "2026-11-21T12:00:00Z"},                        // none: now
		{`1795255200123.5`, "2026-11-21T10:00:00.1235Z"},        // fractional milliseconds
		{`"2026-11-21T10:00:00.123456789Z"`, "2026-11-21T10:00:00.123456789Z"},
	} {
		line := `{"model":"m","input_tokens":1,"output_tokens":1,"ts":` + tc.ts + `}`
		e, err := parseLine([]byte(line), Defaults{}, parseNow)
		if err != nil {
			t.Errorf("%s: %v", tc.ts, err)
			continue
		}
		if got := e.Time.UTC().Format(time.RFC3339Nano); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.ts, got, tc.want)
		}
	}
	// Each shape reads its own time field.
	for _, tc := range []struct{ line, want string }{
		{`{"object":"chat.completion","created":1795255200,"ts":1795000000,"model":"gpt-4o","usage":{"prompt_tokens":1,"completion_tokens":1}}`, "2026-11-21T10:00:00Z"},
		{`{"object":"response","created_at":1795255200000,"model":"gpt-5","usage":{"input_tokens":1,"output_tokens":1}}`, "2026-11-21T10:00:00Z"},
		{`{"createTime":"2026-11-21T10:00:00.5Z","modelVersion":"gemini-2.5-flash","usageMetadata":{"promptTokenCount":1}}`, "2026-11-21T10:00:00.5Z"},
		{`{"ts":1795255200,"type":"message","model":"claude-haiku-4-5","usage":{"input_tokens":1,"output_tokens":1}}`, "2026-11-21T10:00:00Z"},
		{`{"id":"b","custom_id":"c","response":{"status_code":200,"body":{"created":1795255200,"model":"gpt-4o","usage":{"prompt_tokens":1,"completion_tokens":1}}}}`, "2026-11-21T10:00:00Z"},
	} {
		e, err := parseLine([]byte(tc.line), Defaults{}, parseNow)
		if err != nil || e.Time.UTC().Format(time.RFC3339Nano) != tc.want {
			t.Errorf("%s: %v %v, want %s", tc.line, e.Time, err, tc.want)
		}
	}
}

// TestTokenBounds: every token count a shape reads is bounded to
// 0..10^10; a figure outside is a bad line naming the field. At the bound
// the cost still fits (no overflow).
func TestTokenBounds(t *testing.T) {
	const max = "10000000000"
	for _, tc := range []struct{ tmpl, field string }{
		{`{"model":"gpt-4o","input_tokens":%s,"output_tokens":1}`, "input_tokens"},
		{`{"model":"gpt-4o","input_tokens":1,"output_tokens":%s}`, "output_tokens"},
		{`{"model":"gpt-4o","input_tokens":` + max + `,"cached_input_tokens":%s,"output_tokens":1}`, "cached_input_tokens"},
		{`{"model":"claude-opus-4-1","input_tokens":` + max + `,"cache_write_5m_tokens":%s,"output_tokens":1}`, "cache_write_5m_tokens"},
		{`{"model":"claude-opus-4-1","input_tokens":` + max + `,"cache_write_1h_tokens":%s,"output_tokens":1}`, "cache_write_1h_tokens"},
		{`{"model":"gpt-5","input_tokens":1,"output_tokens":` + max + `,"reasoning_tokens":%s}`, "reasoning_tokens"},
		{`{"model":"gpt-4o","usage":{"prompt_tokens":%s,"completion_tokens":1}}`, "usage.prompt_tokens"},
		{`{"model":"gpt-4o","usage":{"prompt_tokens":1,"completion_tokens":%s}}`, "usage.completion_tokens"},
		{`{"model":"gpt-4o","usage":{"prompt_tokens":` + max + `,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":%s}}}`, "usage.prompt_tokens_details.cached_tokens"},
		{`{"model":"o3","usage":{"prompt_tokens":1,"completion_tokens":` + max + `,"completion_tokens_details":{"reasoning_tokens":%s}}}`, "usage.completion_tokens_details.reasoning_tokens"},
		{`{"object":"response","model":"gpt-5","usage":{"input_tokens":%s,"output_tokens":1}}`, "usage.input_tokens"},
		{`{"object":"response","model":"gpt-5","usage":{"input_tokens":1,"output_tokens":%s}}`, "usage.output_tokens"},
		{`{"object":"response","model":"gpt-5","usage":{"input_tokens":` + max + `,"input_tokens_details":{"cached_tokens":%s},"output_tokens":1}}`, "usage.input_tokens_details.cached_tokens"},
		{`{"object":"response","model":"gpt-5","usage":{"input_tokens":1,"output_tokens":` + max + `,"output_tokens_details":{"reasoning_tokens":%s}}}`, "usage.output_tokens_details.reasoning_tokens"},
		{`{"type":"message","model":"claude-opus-4-1","usage":{"input_tokens":%s,"output_tokens":1}}`, "usage.input_tokens"},
		{`{"type":"message","model":"claude-opus-4-1","usage":{"input_tokens":1,"output_tokens":%s}}`, "usage.output_tokens"},
		{`{"type":"message","model":"claude-opus-4-1","usage":{"input_tokens":1,"cache_read_input_tokens":%s,"output_tokens":1}}`, "usage.cache_read_input_tokens"},
		{`{"type":"message","model":"claude-opus-4-1","usage":{"input_tokens":1,"cache_creation_input_tokens":%s,"output_tokens":1}}`, "usage.cache_creation_input_tokens"},
		{`{"type":"message","model":"claude-opus-4-1","usage":{"input_tokens":1,"cache_creation":{"ephemeral_5m_input_tokens":%s},"output_tokens":1}}`, "usage.cache_creation.ephemeral_5m_input_tokens"},
		{`{"type":"message","model":"claude-opus-4-1","usage":{"input_tokens":1,"cache_creation":{"ephemeral_1h_input_tokens":%s},"output_tokens":1}}`, "usage.cache_creation.ephemeral_1h_input_tokens"},
		{`{"modelVersion":"gemini-2.5-pro","usageMetadata":{"promptTokenCount":%s}}`, "usageMetadata.promptTokenCount"},
		{`{"modelVersion":"gemini-2.5-pro","usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":%s}}`, "usageMetadata.candidatesTokenCount"},
		{`{"modelVersion":"gemini-2.5-pro","usageMetadata":{"promptTokenCount":` + max + `,"cachedContentTokenCount":%s}}`, "usageMetadata.cachedContentTokenCount"},
		{`{"modelVersion":"gemini-2.5-pro","usageMetadata":{"promptTokenCount":1,"thoughtsTokenCount":%s}}`, "usageMetadata.thoughtsTokenCount"},
		{`{"modelVersion":"gemini-2.5-pro","usageMetadata":{"promptTokenCount":1,"toolUsePromptTokenCount":%s}}`, "usageMetadata.toolUsePromptTokenCount"},
		{`{"id":"b","custom_id":"c","response":{"status_code":200,"body":{"model":"gpt-4o","usage":{"prompt_tokens":%s,"completion_tokens":1}}}}`, "response.body.usage.prompt_tokens"},
	} {
		p, err := parseAndPrice(t, fmt.Sprintf(tc.tmpl, max))
		if err != nil || p.Event.Unpriced || p.Event.Cost <= 0 {
			t.Errorf("%s at the bound: %+v %v", tc.field, p.Event, err)
		}
		for _, n := range []string{"10000000001", "-1"} {
			_, err := parseShaped([]byte(fmt.Sprintf(tc.tmpl, n)), Defaults{}, parseNow)
			want := fmt.Sprintf("field %q: %s out of range (want 0 to 10000000000 tokens)", tc.field, n)
			if err == nil || err.Error() != want {
				t.Errorf("%s = %s: %v, want %s", tc.field, n, err, want)
			}
		}
	}
}

func TestShapeDetection(t *testing.T) {
	for _, tc := range []struct {
		line  string
		shape Shape
	}{
		// a flat event may carry fields named like markers, of any type
		{`{"model":"gpt-4o","input_tokens":1,"output_tokens":1,"response":"Hello!","type":3,"object":{"a":1},"error":"none"}`, ShapeFlat},
		{`{"model":"gpt-4o","usage":{"prompt_tokens":1,"completion_tokens":1}}`, ShapeOpenAIChat},
		{`{"object":"chat.completion.chunk","model":"gpt-4o","usage":{"prompt_tokens":1,"completion_tokens":1}}`, ShapeOpenAIChat},
		{`{"model":"gpt-5","usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2}}`, ShapeOpenAIResponses},
		{`{"model":"claude-haiku-4-5","usage":{"input_tokens":1,"output_tokens":1,"cache_read_input_tokens":0}}`, ShapeAnthropic},
		{`{"model":"claude-haiku-4-5","usage":{"input_tokens":1,"output_tokens":1}}`, ShapeAnthropic},
		{`{"model":"gemini-2.5-flash","usageMetadata":{"promptTokenCount":1}}`, ShapeGemini},
		{`{"custom_id":"x","error":{"code":"c","message":"m"}}`, ShapeOpenAIBatch},
	} {
		p, err := parseShaped([]byte(tc.line), Defaults{}, parseNow)
		if p.Shape != tc.shape {
			t.Errorf("%s: %s (%v), want %s", tc.line, p.Shape, err, tc.shape)
		}
	}
	if !slices.Equal(Shapes, []Shape{ShapeOpenAIBatch, ShapeGemini, ShapeOpenAIChat, ShapeOpenAIResponses, ShapeAnthropic, ShapeFlat}) {
		t.Errorf("Shapes = %v", Shapes)
	}
}

// FuzzParseLine: no line makes the parser panic, and every line it
// accepts has token kinds that add up, a plausible time and, priced, a
// cost that is not negative (and zero when unpriced).
//
//	go test ./ingest -run XXX -fuzz FuzzParseLine -fuzztime 60s
func FuzzParseLine(f *testing.F) {
	for _, shape := range Shapes {
		if b, err := os.ReadFile(filepath.Join("testdata", "shapes", string(shape)+".jsonl")); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		`{"type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":1000,"cache_creation_input_tokens":5000,"cache_creation":{"ephemeral_5m_input_tokens":2000,"ephemeral_1h_input_tokens":3000},"output_tokens":100,"service_tier":"batch"}}`,
		`{"model":"gpt-5","input_tokens":10000000000,"cached_input_tokens":10000000000,"output_tokens":10000000000,"reasoning_tokens":1,"service_tier":"priority"}`,
		`{"model":"gpt-4o","input_tokens":5,"cache_write_1h_tokens":5,"output_tokens":1,"batch":true,"ts":"2026-11-21T10:00:00Z"}`,
		`{"id":"b","custom_id":"c","response":{"status_code":200,"body":{"object":"response","model":"gpt-5","usage":{"input_tokens":1,"output_tokens":1}}}}`,
		`{"modelVersion":"gemini-2.5-pro","usageMetadata":{"promptTokenCount":250000,"toolUsePromptTokenCount":3,"thoughtsTokenCount":7}}`,
		`{"model":"m","input_tokens":1,"output_tokens":1,"ts":1795255200123456}`,
		`{"model":"m","input_tokens":-1,"output_tokens":1}`,
		`not json`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseAndPrice(t, string(b))
		if err != nil {
			return
		}
		e := p.Event
		for _, n := range kindsOf(e) {
			if n < 0 {
				t.Fatalf("negative tokens %v", kindsOf(e))
			}
		}
		if e.CachedTokens+e.CacheWrite5mTokens+e.CacheWrite1hTokens > e.InputTokens || e.ReasoningTokens > e.OutputTokens {
			t.Fatalf("kinds do not add up: %v", kindsOf(e))
		}
		if e.Cost < 0 || (e.Unpriced && e.Cost != 0) {
			t.Fatalf("cost %d unpriced=%v", e.Cost, e.Unpriced)
		}
		if e.Time.Before(minTime) || e.Time.After(parseNow.Add(maxAhead)) {
			t.Fatalf("time %v", e.Time)
		}
		if !slices.Contains(Shapes, p.Shape) || e.Key == "" || e.Model == "" {
			t.Fatalf("shape %q key %q model %q", p.Shape, e.Key, e.Model)
		}
		if (e.ServiceTier == pricing.TierFlex || e.ServiceTier == pricing.TierPriority) && e.Batch {
			t.Fatalf("batch at %s", e.ServiceTier)
		}
	})
}
