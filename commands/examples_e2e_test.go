package commands

import (
	"path/filepath"
	"strings"
	"testing"
)

// The README's walk-through over examples/ must keep working from a fresh
// clone, without a key or network.
func TestReadmeExamplesE2E(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	db := []string{"COSTCTL_DB=" + filepath.Join(t.TempDir(), "l.db")}
	steps := []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"tokens", "examples/prompts", "--max", "4000"}, 0,
			[]string{"examples/prompts/judge-faithfulness.md", "examples/prompts/support-system.md", "total (2 files)"}},
		{[]string{"estimate", "--requests", "10M", "--input-tokens", "1000", "--output-tokens", "50", "--input-price", "5", "--output-price", "15", "--sample", "10%"}, 0,
			[]string{"$0.00575", "$57,500.00", "$5,750.00"}},
		{[]string{"eval", "examples/outputs.jsonl", "--config", "examples/eval.yaml", "--dry-run"}, 0,
			[]string{"dry run: nothing sent. records 8, sampled 8, bad lines 0", "faithful"}},
		{[]string{"ingest", "examples/usage.jsonl"}, 0,
			[]string{"ingested 400 · duplicates 0 · bad 0 · unpriced 53"}},
		{[]string{"--pricing", "examples/pricing.yaml", "ingest", "examples/usage.jsonl"}, 0,
			[]string{"ingested 0 · duplicates 400 · bad 0 · unpriced 0"}},
		{[]string{"report", "--by", "tenant", "--since", "2025-11-01", "--until", "2025-12-01"}, 0,
			[]string{"acme-retail", "TOTAL          400"}},
	}
	for _, s := range steps {
		r := runCostctl(t, root, "", db, s.args...)
		out := r.Stdout + r.Stderr
		if r.Code != s.code {
			t.Errorf("costctl %s: exit %d, want %d\n%s", strings.Join(s.args, " "), r.Code, s.code, out)
			continue
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("costctl %s: output lacks %q:\n%s", strings.Join(s.args, " "), w, out)
			}
		}
	}
}
