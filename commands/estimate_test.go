package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/pricing"
)

// estimateRunIn runs `costctl <args>` in-process with captured streams from
// directory dir (relative paths in args are resolved by the caller).
func estimateRunIn(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	f := &Factory{
		IO:     &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errb},
		Getenv: func(string) string { return "" },
		Now:    func() time.Time { return time.Date(2025, 12, 2, 0, 0, 0, 0, time.UTC) },
	}
	code = Run(context.Background(), f, args)
	return out.String(), errb.String(), code
}

var seedArgs = []string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50", "--input-price", "5", "--output-price", "15"}

func TestEstimateSeedFigures(t *testing.T) {
	out, errOut, code := estimateRunIn(t, seedArgs...)
	if code != 0 || errOut != "" {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"$0.00575", "$57,500.00", "prices as of 2026-12-01"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, code = estimateRunIn(t, append(seedArgs, "--sample", "10%", "--format", "json")...)
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	var doc struct {
		Version    int    `json:"version"`
		PricesAsOf string `json:"prices_as_of"`
		Steps      []struct {
			Name           string      `json:"name"`
			CostPerRequest string      `json:"cost_per_request_usd"`
			Monthly        string      `json:"monthly_usd"`
			Savings        string      `json:"savings_usd"`
			SavingsPct     json.Number `json:"savings_pct"`
		} `json:"steps"`
		Total struct {
			CostPerRequest string      `json:"cost_per_request_usd"`
			Daily          string      `json:"daily_usd"`
			Monthly        string      `json:"monthly_usd"`
			SavingsPct     json.Number `json:"savings_pct"`
		} `json:"total"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != 1 || doc.PricesAsOf != "2026-12-01" || len(doc.Steps) != 2 ||
		doc.Steps[0].Name != "baseline" || doc.Steps[0].CostPerRequest != "0.00575" || doc.Steps[0].Monthly != "57500.00" ||
		doc.Steps[1].Name != "sample" || doc.Steps[1].CostPerRequest != "0.000575" || doc.Steps[1].Monthly != "5750.00" ||
		doc.Steps[1].Savings != "51750.00" || doc.Steps[1].SavingsPct != "90.00" ||
		doc.Total.Monthly != "5750.00" || doc.Total.Daily != "191.666666667" || doc.Total.SavingsPct != "90.00" {
		t.Errorf("unexpected JSON: %+v", doc)
	}
}

// allLevers sets every lever on table prices.
var allLevers = []string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50",
	"--sample", "10%", "--cascade", "free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2", "--cache-hit", "20%",
	"--prompt-cache", "50%", "--batch", "50%", "--infra", "100"}

// leversWarn is what the allLevers run says on stderr: its 1,000-token
// prompts with --prompt-cache 50% have a 500-token cached prefix, below
// OpenAI's 1,024-token minimum, so the prompt-cache step saves nothing.
const leversWarn = "costctl: warning: gpt-4o: --prompt-cache 50% saves nothing on 1,000-token prompts: the cached prefix (500 tokens) is shorter than the 1,024-token minimum the provider caches\n" +
	"costctl: warning: gpt-4o-mini: --prompt-cache 50% saves nothing on 1,000-token prompts: the cached prefix (500 tokens) is shorter than the 1,024-token minimum the provider caches\n"

func TestEstimateGolden(t *testing.T) {
	sample := filepath.Join("testdata", "estimate", "sample.jsonl")
	scen := filepath.Join("testdata", "estimate", "scenarios.yaml")
	tests := []struct {
		golden string
		args   []string
		stderr string
	}{
		{"seed.table.golden", append(append([]string{}, seedArgs...), "--sample", "10%"), ""},
		{"levers.table.golden", allLevers, leversWarn},
		{"levers.json.golden", append(append([]string{}, allLevers...), "--format", "json"), leversWarn},
		{"levers.md.golden", append(append([]string{}, allLevers...), "--format", "md"), leversWarn},
		{"levers.csv.golden", append(append([]string{}, allLevers...), "--format", "csv"), leversWarn},
		{"sweep.table.golden", []string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50", "--batch", "50%",
			"--sweep", "sample=10%,50%", "--sweep", "cascade=gpt-4o:1;free:0.5,gpt-4o-mini:0.5"}, ""},
		{"sweep.json.golden", []string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50",
			"--sweep", "model=gpt-4o,gpt-4o-mini", "--sweep", "cache-hit=0,25%", "--format", "json"}, ""},
		{"sweep.md.golden", []string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50",
			"--sweep", "model=gpt-4o,gpt-4o-mini", "--sweep", "cache-hit=0,25%", "--format", "md"}, ""},
		{"scenarios.table.golden", []string{"estimate", "--per-day", "100k", "--input-tokens", "1000", "--output-tokens", "50", "--batch", "50%", "--scenarios", scen},
			"costctl: warning: gpt-4o-mini: --prompt-cache 50% saves nothing on 1,000-token prompts: the cached prefix (500 tokens) is shorter than the 1,024-token minimum the provider caches\n"},
		{"from.table.golden", []string{"estimate", "--requests", "1M", "--from", sample},
			sample + ":3: invalid JSON: invalid character 'o' in literal null (expecting 'u')\n" +
				sample + ":4: missing output field \"output\" (fields here: id, input; use --map output=NAME)\n" +
				sample + ":5: no input; skipped\n"},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			out, errOut, code := estimateRunIn(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if errOut != tc.stderr {
				t.Errorf("stderr = %q, want %q", errOut, tc.stderr)
			}
			assertGolden(t, filepath.Join("estimate", tc.golden), out)
		})
	}
}

// TestEstimateFromAverages checks the measured averages exactly: the
// fixture's three usable records hold 22 input tokens (2 + a 16-token chat
// + 4) and 9 output tokens (1 + 2 + 6), counted by hand in
// estimator.TestSampleAverages; 12 × $2.50/1M + 3 × $10/1M = $0.00006
func TestEstimateFromAverages(t *testing.T) {
	out, _, code := estimateRunIn(t, "estimate", "--requests", "1M", "--from", filepath.Join("testdata", "estimate", "sample.jsonl"), "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var doc struct {
		Inputs struct {
			InputTokens  json.Number `json:"input_tokens"`
			OutputTokens json.Number `json:"output_tokens"`
		} `json:"inputs"`
		Total struct {
			Monthly string `json:"monthly_usd"`
		} `json:"total"`
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	from := raw["inputs"].(map[string]any)["from"].(map[string]any)
	if from["records"] != 3.0 || from["skipped"] != 3.0 || from["input_tokens_total"] != 36.0 || from["output_tokens_total"] != 9.0 {
		t.Errorf("from = %v", from)
	}
	if doc.Inputs.InputTokens != "12" || doc.Inputs.OutputTokens != "3" || doc.Total.Monthly != "60.00" {
		t.Errorf("inputs %s/%s total %s", doc.Inputs.InputTokens, doc.Inputs.OutputTokens, doc.Total.Monthly)
	}

	// CSV with --map; a flag given alongside --from wins for its side.
	out, _, code = estimateRunIn(t, "estimate", "--requests", "1M", "--from", filepath.Join("testdata", "estimate", "sample.csv"),
		"--map", "input=question,output=response", "--output-tokens", "100", "--format", "csv")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	// (9 + 11)/2 = 10 input tokens (text as one user message: +7 each)
	// × $2.50/1M + 100 × $10/1M = $0.001025
	if !strings.Contains(out, "baseline,gpt-4o at $2.50/$10.00 per 1M in/out,0.001025,34.166666667,1025.00,0.00,0.00,2026-12-01") {
		t.Errorf("csv:\n%s", out)
	}
}

func TestEstimateRunF(t *testing.T) {
	f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, Getenv: func(string) string { return "" }}
	var got *EstimateOptions
	cmd := newEstimateCmd(f, func(o *EstimateOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--requests", "5k", "--sweep", "sample=1,0.5", "--sweep", "batch=0,1", "--model", "gpt-4o-mini", "--days", "31"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Requests != "5k" || got.Model != "gpt-4o-mini" || got.Days != 31 || len(got.Sweep) != 2 || got.Format != "table" {
		t.Errorf("options = %+v", got)
	}
}

func TestEstimateHelp(t *testing.T) {
	out, _, code := estimateRunIn(t, "estimate", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"EXIT STATUS", "THE WATERFALL", "cache-hit", "prompt-cache", "--cached-price", "Examples:", "$57,500.00"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestEstimatePromptCacheNote(t *testing.T) {
	out, errOut, code := estimateRunIn(t, "estimate", "--requests", "1M", "--input-tokens", "1000", "--output-tokens", "10",
		"--model", "gpt-4o-2024-05-13", "--prompt-cache", "50%", "--format", "csv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if errOut != "costctl: note: gpt-4o-2024-05-13 lists no cached-input price below its input price, so --prompt-cache saves nothing on it\n" {
		t.Errorf("stderr = %q", errOut)
	}
	// 1000 × $5/1M + 10 × $15/1M = $0.00515 with and without the lever.
	if !strings.Contains(out, "prompt-cache,50% of input tokens at cached price,0.00515,171.666666667,5150.00,0.00,0.00,2026-12-01") {
		t.Errorf("stdout:\n%s", out)
	}
}

// BenchmarkEstimateFrom measures --from end to end on a generated JSONL
// file (reading, JSON decoding, counting with o200k_base, projecting).
func BenchmarkEstimateFrom(b *testing.B) {
	dir := b.TempDir()
	var sb strings.Builder
	for i := 0; i < 2000; i++ {
		if i%2 == 0 {
			sb.WriteString(`{"input":"Summarise ticket ` + strings.Repeat("the customer cannot log in after the update; ", 8) + `","output":"Login broken after update."}` + "\n")
		} else {
			sb.WriteString(`{"input":[{"role":"system","content":"You are a judge."},{"role":"user","content":"` + strings.Repeat("Rate this answer for accuracy. ", 6) + `"}],"output":"4"}` + "\n")
		}
	}
	path := filepath.Join(dir, "records.jsonl")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(sb.Len()))
	for b.Loop() {
		var out, errb bytes.Buffer
		f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errb}, Getenv: func(string) string { return "" }}
		if code := Run(context.Background(), f, []string{"estimate", "--requests", "1M", "--from", path, "--format", "json"}); code != 0 {
			b.Fatalf("exit %d: %s", code, errb.String())
		}
	}
	b.ReportMetric(2000, "records/op")
}

// promptOf returns a text whose prompt (one user message, as --from counts
// a text input) is exactly tokens tokens for model.
func promptOf(t *testing.T, model string, tokens int64) string {
	t.Helper()
	m, err := pricing.MustDefault().Lookup(model)
	if err != nil {
		t.Fatal(err)
	}
	c, err := estimator.NewCounter(m)
	if err != nil {
		t.Fatal(err)
	}
	chat := func(s string) int64 { return c.Chat([]estimator.Message{{Role: "user", Content: s}}, nil) }
	overhead := chat("hello") - 1
	s := "hello" + strings.Repeat(" hello", int(tokens-overhead-1))
	if got := chat(s); got != tokens {
		t.Fatalf("prompt of %d tokens counts %d", tokens, got)
	}
	return s
}

// writeRecords writes a JSONL --from file of one record per prompt.
func writeRecords(t *testing.T, prompts ...string) string {
	t.Helper()
	var b strings.Builder
	for i, p := range prompts {
		line, _ := json.Marshal(map[string]string{"id": fmt.Sprint(i + 1), "input": p, "output": "ok"})
		b.Write(line)
		b.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "records.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEstimateFromLongContextPerRequest: one 100,000-token and one
// 300,000-token Sonnet request (no output) really cost 100,000 × $3/1M +
// 300,000 × $6/1M (long-context price above 200,000 tokens) = $2.10; their
// 200,000-token average would price both at $3/1M: $1.20.
func TestEstimateFromLongContextPerRequest(t *testing.T) {
	for _, model := range []string{"claude-sonnet-4", "claude-sonnet-4.5"} {
		t.Run(model, func(t *testing.T) {
			file := writeRecords(t, promptOf(t, model, 100_000), promptOf(t, model, 300_000))
			out, errOut, code := estimateRunIn(t, "estimate", "--requests", "2", "--model", model, "--from", file, "--output-tokens", "0", "--format", "csv")
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if want := "\ntotal,,1.05,0.07,2.10,0.00,0.00,2026-12-01\n"; !strings.Contains(out, want) {
				t.Errorf("want %q in:\n%s", want, out)
			}
			// --input-tokens replaces the measured prompts: the average again.
			out, _, code = estimateRunIn(t, "estimate", "--requests", "2", "--model", model, "--from", file, "--input-tokens", "200000", "--output-tokens", "0", "--format", "csv")
			if want := "\ntotal,,0.60,0.04,1.20,0.00,0.00,2026-12-01\n"; code != 0 || !strings.Contains(out, want) {
				t.Errorf("exit %d; want %q in:\n%s", code, want, out)
			}
		})
	}
}

// TestEstimateWarnings: each warning's exact line on stderr, and the
// figures it leaves uncounted.
func TestEstimateWarnings(t *testing.T) {
	long := writeRecords(t, promptOf(t, "gpt-4o", 100_000), promptOf(t, "gpt-4o", 300_000))
	mixed := writeRecords(t, promptOf(t, "gpt-4o", 1000), promptOf(t, "gpt-4o", 4000))
	tests := []struct {
		name   string
		args   []string
		stderr string
		total  string // the CSV total row
	}{
		{"prompt over the context window", []string{"--input-tokens", "150000", "--output-tokens", "0"},
			"costctl: warning: gpt-4o: the 150,000-token prompt is longer than its 128,000-token context window; the API rejects such requests, they are priced as if it did not\n",
			"total,,0.375,0.025,0.75,0.00,0.00,2026-12-01"},
		{"sampled prompts over the context window", []string{"--from", long, "--output-tokens", "0"},
			"costctl: warning: gpt-4o: 1 of 2 sampled prompts (the longest 300,000 tokens) are longer than its 128,000-token context window; the API rejects such requests, they are priced as if it did not\n",
			"total,,0.50,0.033333333,1.00,0.00,0.00,2026-12-01"},
		// 1,000 × $2.50/1M × 2 = $0.005: nothing cached, nothing saved
		{"cached prefix below the minimum", []string{"--input-tokens", "1000", "--output-tokens", "0", "--prompt-cache", "50%"},
			"costctl: warning: gpt-4o: --prompt-cache 50% saves nothing on 1,000-token prompts: the cached prefix (500 tokens) is shorter than the 1,024-token minimum the provider caches\n",
			"total,,0.0025,0.000166667,0.005,0.00,0.00,2026-12-01"},
		// $0.0025 for the 1,000-token prompt, 2,000 × $2.50/1M + 2,000 ×
		// $1.25/1M = $0.0075 for the 4,000-token one: $0.01 (the average
		// 2,500 half cached would be $0.009375); baseline $0.0125
		{"sampled prompts below the minimum", []string{"--from", mixed, "--output-tokens", "0", "--prompt-cache", "50%"},
			"costctl: warning: gpt-4o: --prompt-cache 50% saves nothing on 1 of 2 sampled prompts: their cached prefix is shorter than the 1,024-token minimum the provider caches\n",
			"total,,0.005,0.000333333,0.01,0.0025,20.00,2026-12-01"},
		{"no warning at the minimum", []string{"--input-tokens", "2048", "--output-tokens", "0", "--prompt-cache", "50%"},
			"", "total,,0.00384,0.000256,0.00768,0.00256,25.00,2026-12-01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := estimateRunIn(t, append([]string{"estimate", "--requests", "2", "--format", "csv"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if errOut != tc.stderr {
				t.Errorf("stderr = %q\nwant     %q", errOut, tc.stderr)
			}
			if !strings.Contains(out, "\n"+tc.total+"\n") {
				t.Errorf("want %q in:\n%s", tc.total, out)
			}
		})
	}
	// A sweep says each warning once, not once per combination.
	_, errOut, code := estimateRunIn(t, "estimate", "--requests", "2", "--input-tokens", "150000", "--output-tokens", "0", "--sweep", "sample=10%,20%")
	if want := "costctl: warning: gpt-4o: the 150,000-token prompt is longer than its 128,000-token context window; the API rejects such requests, they are priced as if it did not\n"; code != 0 || errOut != want {
		t.Errorf("sweep: exit %d, stderr %q", code, errOut)
	}
}

// TestEstimateEscalate: the judge hierarchy of the seed — the cheap model
// judges every sampled request, the expensive one re-judges 20%:
// (1 × $0.00018 + 0.2 × $0.003) × 10% = $0.000078 per request, $780.00 a
// month (gpt-4o-mini 1,000 × $0.15/1M + 50 × $0.60/1M; gpt-4o 1,000 ×
// $2.50/1M + 50 × $10/1M).
func TestEstimateEscalate(t *testing.T) {
	base := []string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50", "--sample", "10%", "--escalate", "gpt-4o-mini:1,gpt-4o:0.2"}
	out, errOut, code := estimateRunIn(t, base...)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	assertGolden(t, filepath.Join("estimate", "escalate.table.golden"), out)
	out, _, _ = estimateRunIn(t, append(base, "--format", "csv")...)
	if want := "escalate,gpt-4o-mini 100% → gpt-4o 20% of evaluations,0.000078,26.00,780.00,29220.00,97.40,2026-12-01\n"; !strings.Contains(out, want) {
		t.Errorf("csv lacks %q:\n%s", want, out)
	}
	out, _, _ = estimateRunIn(t, append(base, "--format", "json")...)
	if !strings.Contains(out, `"escalate": "gpt-4o-mini:1,gpt-4o:0.2"`) || !strings.Contains(out, `"name": "escalate"`) {
		t.Errorf("json:\n%s", out)
	}
	out, _, _ = estimateRunIn(t, append(base, "--format", "md")...)
	if !strings.Contains(out, "| escalate | gpt-4o-mini 100% → gpt-4o 20% of evaluations | $0.000078 | $26.00 | $780.00 | $29,220.00 | 97.4% |") {
		t.Errorf("md:\n%s", out)
	}

	// A sweep of hierarchies (';' between alternatives): free checks first
	// and gpt-4o on 5%: 0.1 × 0.05 × $0.003 = $0.000015 → $150.00.
	out, errOut, code = estimateRunIn(t, "estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50", "--sample", "10%",
		"--sweep", "escalate=gpt-4o-mini:1,gpt-4o:0.2;free:1,gpt-4o:5%", "--format", "csv")
	if code != 0 {
		t.Fatalf("sweep: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"scenario,escalate,cost_per_request_usd,daily_usd,monthly_usd,savings_usd,savings_pct,cheapest,prices_as_of\n",
		`"escalate=gpt-4o-mini:1,gpt-4o:0.2","gpt-4o-mini:1,gpt-4o:0.2",0.000078,26.00,780.00,29220.00,97.40,false,2026-12-01` + "\n",
		`"escalate=free:1,gpt-4o:5%","free:1,gpt-4o:0.05",0.000015,5.00,150.00,29850.00,99.50,true,2026-12-01` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sweep csv lacks %q:\n%s", want, out)
		}
	}

	// A scenario file takes escalate as a map of stage → share.
	scen := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(scen, []byte("- name: gpt-4o judges all\n- name: escalate\n  escalate: {gpt-4o-mini: 1, gpt-4o: 20%}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = estimateRunIn(t, "estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50", "--sample", "10%", "--scenarios", scen, "--format", "csv")
	if want := `escalate,"gpt-4o-mini:1,gpt-4o:0.2",0.000078,26.00,780.00,2220.00,74.00,true,2026-12-01` + "\n"; code != 0 || !strings.Contains(out, want) {
		t.Errorf("scenarios: exit %d, stderr %q; want %q in:\n%s", code, errOut, want, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--escalate", "gpt-4o-mini:1,gpt-4o:2"}, `costctl: --escalate: escalation stage "gpt-4o": invalid share "2": above 100%` + "\n"},
		{[]string{"--escalate", "gpt-4o-mini:1", "--cascade", "gpt-4o:1"}, "costctl: cascade and escalate both choose the judges: set one of them (none unsets a lever in a sweep or scenario)\n"},
		{[]string{"--escalate", "none"}, "costctl: --escalate: none is for --sweep and scenarios; leave the flag out instead\n"},
	} {
		out, errOut, code := estimateRunIn(t, append([]string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50"}, tc.args...)...)
		if code != ExitUsage || out != "" || errOut != tc.want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, errOut, tc.want)
		}
	}
}
