package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	for _, want := range []string{"$0.00575", "$57,500.00", "prices as of 2025-12-01"} {
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
	if doc.Version != 1 || doc.PricesAsOf != "2025-12-01" || len(doc.Steps) != 2 ||
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

func TestEstimateGolden(t *testing.T) {
	sample := filepath.Join("testdata", "estimate", "sample.jsonl")
	scen := filepath.Join("testdata", "estimate", "scenarios.yaml")
	tests := []struct {
		golden string
		args   []string
		stderr string
	}{
		{"seed.table.golden", append(append([]string{}, seedArgs...), "--sample", "10%"), ""},
		{"levers.table.golden", allLevers, ""},
		{"levers.json.golden", append(append([]string{}, allLevers...), "--format", "json"), ""},
		{"levers.md.golden", append(append([]string{}, allLevers...), "--format", "md"), ""},
		{"levers.csv.golden", append(append([]string{}, allLevers...), "--format", "csv"), ""},
		{"sweep.table.golden", []string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50", "--batch", "50%",
			"--sweep", "sample=10%,50%", "--sweep", "cascade=gpt-4o:1;free:0.5,gpt-4o-mini:0.5"}, ""},
		{"sweep.json.golden", []string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50",
			"--sweep", "model=gpt-4o,gpt-4o-mini", "--sweep", "cache-hit=0,25%", "--format", "json"}, ""},
		{"sweep.md.golden", []string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50",
			"--sweep", "model=gpt-4o,gpt-4o-mini", "--sweep", "cache-hit=0,25%", "--format", "md"}, ""},
		{"scenarios.table.golden", []string{"estimate", "--per-day", "100k", "--input-tokens", "1000", "--output-tokens", "50", "--batch", "50%", "--scenarios", scen}, ""},
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
	if !strings.Contains(out, "baseline,gpt-4o at $2.50/$10.00 per 1M in/out,0.001025,34.166666667,1025.00,0.00,0.00,2025-12-01") {
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
	if !strings.Contains(out, "prompt-cache,50% of input tokens at cached price,0.00515,171.666666667,5150.00,0.00,0.00,2025-12-01") {
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
