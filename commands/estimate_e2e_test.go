package commands

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestEstimateE2ESeedFigures(t *testing.T) {
	r := runCostctl(t, "", "", nil, "estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50", "--input-price", "5", "--output-price", "15")
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "baseline  gpt-4o at $5.00/$15.00 per 1M in/out (override)     $0.00575  $1,916.67  $57,500.00") {
		t.Errorf("seed baseline row missing:\n%s", r.Stdout)
	}
	r = runCostctl(t, "", "", nil, "estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50", "--input-price", "5", "--output-price", "15", "--sample", "10%", "--format", "csv")
	if r.Code != 0 {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "\ntotal,,0.000575,191.666666667,5750.00,51750.00,90.00,2026-12-01\n") {
		t.Errorf("seed sample total missing:\n%s", r.Stdout)
	}
}

func TestEstimateE2EGate(t *testing.T) {
	seed := []string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50", "--input-price", "5", "--output-price", "15"}
	r := runCostctl(t, "", "", nil, append(seed, "--max-monthly", "50000")...)
	if r.Code != ExitGate {
		t.Fatalf("exit %d, want 3; stderr %q", r.Code, r.Stderr)
	}
	if want := "costctl: projected monthly total $57,500.00 is above --max-monthly $50,000.00 (prices as of 2026-12-01)\n"; r.Stderr != want {
		t.Errorf("stderr = %q, want %q", r.Stderr, want)
	}
	if !strings.Contains(r.Stdout, "$57,500.00") {
		t.Errorf("the projection should still be printed:\n%s", r.Stdout)
	}
	// Equal to the cap passes; the cap applies to the total after levers.
	for _, args := range [][]string{
		append(append([]string{}, seed...), "--max-monthly", "57500"),
		append(append([]string{}, seed...), "--max-monthly", "$6,000", "--sample", "10%"),
	} {
		if r := runCostctl(t, "", "", nil, args...); r.Code != 0 || r.Stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", args, r.Code, r.Stderr)
		}
	}
	// A sweep gates on its cheapest combination.
	sweep := append(append([]string{}, seed...), "--sweep", "sample=10%,20%")
	r = runCostctl(t, "", "", nil, append(sweep, "--max-monthly", "5000")...)
	if r.Code != ExitGate || r.Stderr != "costctl: cheapest of 2 scenarios (sample=10%) is $5,750.00/month, above --max-monthly $5,000.00 (prices as of 2026-12-01)\n" {
		t.Errorf("sweep gate: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if r := runCostctl(t, "", "", nil, append(sweep, "--max-monthly", "6000")...); r.Code != 0 {
		t.Errorf("sweep under the cap: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

func TestEstimateE2EBadInput(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "empty.jsonl", "{\"input\":\"x\"}\nnot json\n")
	writeFile(t, dir, "bad.yaml", "- name: a\n  sampel: 10%\n")
	writeFile(t, dir, "noout.csv", "question\nhello\n")
	base := []string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50"}
	tests := []struct {
		args []string
		want string // stderr line, after "costctl: "
		code int
	}{
		{[]string{"estimate", "--requests", "0", "--input-tokens", "1", "--output-tokens", "1"}, `--requests: invalid count "0": must be at least 1`, 2},
		{[]string{"estimate", "--per-day", "0", "--input-tokens", "1", "--output-tokens", "1"}, `--per-day: invalid count "0": must be at least 1`, 2},
		{[]string{"estimate", "--requests", "2.5", "--input-tokens", "1", "--output-tokens", "1"}, `--requests: invalid count "2.5": not a whole number`, 2},
		{[]string{"estimate", "--input-tokens", "1", "--output-tokens", "1"}, `no volume: give --requests N (per month, e.g. 10M) or --per-day N`, 2},
		{[]string{"estimate", "--requests", "1M", "--per-day", "1k", "--input-tokens", "1", "--output-tokens", "1"}, `give either --requests (per month) or --per-day, not both`, 2},
		{[]string{"estimate", "--requests", "1M"}, `no token counts: give --input-tokens and --output-tokens (average per request) or measure them with --from FILE`, 2},
		{append(base, "--sample", "150%"), `--sample: invalid share "150%": above 100%`, 2},
		{append(base, "--sample", "-10%"), `--sample: invalid share "-10%": negative`, 2},
		{append(base, "--cache-hit", "NaN"), `--cache-hit: invalid share "NaN" (want a percentage like 10% or a fraction like 0.1)`, 2},
		{append(base, "--batch", "1.5"), `--batch: invalid share "1.5": above 100%`, 2},
		{append(base, "--cascade", "free:0.5,gpt-4o-mini:0.3"), `--cascade: cascade shares sum to 0.8, not 1 (100%)`, 2},
		{append(base, "--cascade", "free:0.5,gpt-4o-mni:0.5"), `cascade: unknown model "gpt-4o-mni" (closest known: gpt-4o-mini`, 2},
		{append(base, "--model", "gpt-5o"), `--model: unknown model "gpt-5o"`, 2},
		{append(base, "--input-price", "5", "--prompt-cache", "50%"), `--prompt-cache needs a cached-input price for gpt-4o: --input-price overrides its list price, so add --cached-price USD (per 1M cached input tokens)`, 2},
		{append(base, "--input-price", "-5"), `--input-price: invalid price "-5": negative`, 2},
		{append(base, "--infra", "abc"), `--infra: invalid amount "abc": not a decimal number`, 2},
		{append(base, "--max-monthly", "-1"), `--max-monthly: invalid amount "-1": negative`, 2},
		{append(base, "--format", "xml"), `invalid --format "xml" (expected table, json, csv, md)`, 2},
		{append(base, "--days", "0"), `--days: must be at least 1, got 0`, 2},
		{append(base, "--sweep", "colour=red"), `--sweep "colour=red": unknown key "colour" (want one of model, sample, cascade, escalate, cache-hit, prompt-cache, batch, infra)`, 2},
		{append(base, "--sweep", "model=gpt-4o,gpt-9"), `model=gpt-9: unknown model "gpt-9"`, 2},
		{append(base, "--sweep", "sample=1", "--scenarios", "bad.yaml"), `give either --sweep or --scenarios, not both`, 2},
		{append(base, "--scenarios", "bad.yaml"), `bad.yaml:2: scenario "a", key "sampel": unknown key "sampel"`, 2},
		{append(base, "--scenarios", "missing.yaml"), `--scenarios missing.yaml: no such file or directory`, 1},
		{[]string{"estimate", "--requests", "1M", "--from", "empty.jsonl"}, `--from empty.jsonl: no usable records (2 skipped); each needs an input and an output`, 2},
		{[]string{"estimate", "--requests", "1M", "--from", "noout.csv"}, `--from noout.csv:1: no output column "output" in the CSV header`, 2},
		{[]string{"estimate", "--requests", "1M", "--from", "missing.jsonl"}, `--from missing.jsonl: no such file or directory`, 1},
		{[]string{"estimate", "--requests", "1M", "--input-tokens", "1", "--output-tokens", "1", "--map", "output=x"}, `--map applies to --from FILE`, 2},
		{[]string{"estimate", "--requests", "1M", "--from", "empty.jsonl", "--map", "bogus=x"}, `--map: unknown field "bogus"`, 2},
		{append(base, "--sample", "none"), `--sample: none is for --sweep and scenarios; leave the flag out instead`, 2},
		{append(base, "extra"), `unknown command "extra" for "costctl estimate"`, 2},
	}
	for _, tc := range tests {
		r := runCostctl(t, dir, "", nil, tc.args...)
		if r.Code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, r.Code, tc.code, r.Stderr)
		}
		if r.Stdout != "" {
			t.Errorf("%v: stdout not empty:\n%s", tc.args, r.Stdout)
		}
		lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
		// --from reports each skipped line before the error.
		last := lines[len(lines)-1]
		if tc.args[len(tc.args)-1] == "extra" {
			last = lines[0]
		}
		if !strings.HasPrefix(last, "costctl: "+tc.want) {
			t.Errorf("%v: stderr %q, want a line starting %q", tc.args, r.Stderr, "costctl: "+tc.want)
		}
	}
}

// TestEstimateE2EFrom measures the fixture through the binary: bad lines on
// stderr as FILE:LINE: reason, the rest averaged.
func TestEstimateE2EFrom(t *testing.T) {
	abs, err := filepath.Abs(filepath.Join("testdata", "estimate", "sample.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	r := runCostctl(t, "", "", nil, "estimate", "--requests", "1M", "--from", abs, "--format", "csv")
	if r.Code != 0 {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	wantErr := abs + ":3: invalid JSON: invalid character 'o' in literal null (expecting 'u')\n" +
		abs + ":4: missing output field \"output\" (fields here: id, input; use --map output=NAME)\n" +
		abs + ":5: no input; skipped\n"
	if r.Stderr != wantErr {
		t.Errorf("stderr = %q, want %q", r.Stderr, wantErr)
	}
	// 12 input (chat formula) and 3 output tokens on gpt-4o.
	if !strings.Contains(r.Stdout, "baseline,gpt-4o at $2.50/$10.00 per 1M in/out,0.00006,2.00,60.00,0.00,0.00,2026-12-01") {
		t.Errorf("stdout:\n%s", r.Stdout)
	}
	// Records from standard input.
	r = runCostctl(t, "", `{"input":"hello world","output":"Paris"}`+"\n", nil, "estimate", "--requests", "1M", "--from", "-", "--format", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"input_tokens": 9,`) || !strings.Contains(r.Stdout, `"output_tokens": 1,`) {
		t.Errorf("stdin: exit %d, stderr %q\n%s", r.Code, r.Stderr, r.Stdout)
	}
}

// TestEstimateE2EExamples runs every example in the command's help.
func TestEstimateE2EExamples(t *testing.T) {
	r := runCostctl(t, "", "", nil, "estimate", "--help")
	if r.Code != 0 {
		t.Fatalf("help: exit %d", r.Code)
	}
	_, ex, ok := strings.Cut(r.Stdout, "Examples:\n")
	if !ok {
		t.Fatalf("no Examples in help:\n%s", r.Stdout)
	}
	ex, _, _ = strings.Cut(ex, "\nFlags:")
	joined := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(ex, "")
	n := 0
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "costctl ") {
			continue
		}
		n++
		args := strings.Fields(strings.TrimPrefix(line, "costctl "))
		r := runCostctl(t, "", "", nil, args...)
		if r.Code != 0 || r.Stdout == "" {
			t.Errorf("example %q: exit %d, stderr %q", line, r.Code, r.Stderr)
		}
	}
	if n < 2 {
		t.Errorf("only %d examples", n)
	}
}
