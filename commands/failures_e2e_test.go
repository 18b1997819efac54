package commands

import (
	"path/filepath"
	"strings"
	"testing"
)

// A missing input file exits 1 for every command (the README's exit-code
// table), prints nothing on stdout and says on one line what is missing and
// where. (eval is covered by its own tests.)
func TestMissingInputExitsOne(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "good.md", "hello world")
	writeFile(t, dir, "good.jsonl", `{"model":"gpt-4o","input_tokens":10,"output_tokens":1}`+"\n")
	db := filepath.Join(dir, "ledger.db")
	est := []string{"estimate", "--requests", "1M", "--input-tokens", "100", "--output-tokens", "10"}
	const noPricing = "costctl: --pricing missing.yaml: no such file or directory (fix the path, or leave out --pricing to use the built-in prices)\n"
	cases := []struct {
		name   string
		env    []string
		args   []string
		stderr string
	}{
		{"tokens", nil, []string{"tokens", "missing.txt"}, "costctl: missing.txt: no such file or directory\n"},
		{"tokens with others", nil, []string{"tokens", "good.md", "missing.txt", "--format", "json"}, "costctl: missing.txt: no such file or directory\n"},
		{"tokens gate", nil, []string{"tokens", "missing.txt", "--max", "10"}, "costctl: missing.txt: no such file or directory\n"},
		{"tokens --chat", nil, []string{"tokens", "--chat", "missing.json"}, "costctl: missing.json: no such file or directory\n"},
		{"estimate --from", nil, []string{"estimate", "--requests", "1M", "--from", "missing.jsonl"}, "costctl: --from missing.jsonl: no such file or directory\n"},
		{"estimate --scenarios", nil, append(est, "--scenarios", "missing.yaml"), "costctl: --scenarios missing.yaml: no such file or directory\n"},
		{"ingest", nil, []string{"ingest", "--db", db, "missing.jsonl"}, "costctl: ingest: missing.jsonl: no such file or directory\n"},
		{"ingest with others", nil, []string{"ingest", "--db", db, "good.jsonl", "missing.jsonl"}, "costctl: ingest: missing.jsonl: no such file or directory\n"},
		{"ingest --follow", nil, []string{"ingest", "--db", db, "--follow", "missing.jsonl"}, "costctl: ingest: missing.jsonl: no such file or directory\n"},
		{"--pricing pricing list", nil, []string{"--pricing", "missing.yaml", "pricing", "list"}, noPricing},
		{"--pricing pricing show", nil, []string{"--pricing", "missing.yaml", "pricing", "show", "gpt-4o", "--format", "json"}, noPricing},
		{"--pricing tokens", nil, []string{"--pricing", "missing.yaml", "tokens", "good.md"}, noPricing},
		{"--pricing estimate", nil, append([]string{"--pricing", "missing.yaml"}, est...), noPricing},
		{"--pricing ingest", nil, []string{"--pricing", "missing.yaml", "ingest", "--db", db, "good.jsonl"}, noPricing},
		{"COSTCTL_PRICING", []string{"COSTCTL_PRICING=missing.yaml"}, []string{"pricing", "list"},
			"costctl: COSTCTL_PRICING=missing.yaml: no such file or directory (fix the path, or unset COSTCTL_PRICING to use the built-in prices)\n"},
		{"report --db", nil, []string{"report", "--db", "missing.db"},
			"costctl: no ledger at missing.db yet: bring usage in with costctl ingest FILE (or costctl eval), or point --db at an existing ledger\n"},
		{"top --once --db", nil, []string{"top", "--once", "--format", "json", "--db", "missing.db"},
			"costctl: no ledger at missing.db yet: bring usage in with costctl ingest FILE (or costctl eval), or point --db at an existing ledger\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runCostctl(t, dir, "", c.env, c.args...)
			if r.Code != ExitError || r.Stdout != "" || r.Stderr != c.stderr {
				t.Errorf("costctl %s: exit %d\nstdout %q\nstderr %q\nwant exit 1, no stdout, stderr %q",
					strings.Join(c.args, " "), r.Code, r.Stdout, r.Stderr, c.stderr)
			}
		})
	}
}

// A command that fails prints nothing on stdout — no zero-filled table or
// JSON header before the error. (A failed gate, exit 3, is different: it
// prints its full result, then fails.)
func TestFailedCommandPrintsNothingOnStdout(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bad.json", `{"messages": [{"role": "user", "content": 5}]}`)
	writeFile(t, dir, "bad.jsonl", "not json\n")
	writeFile(t, dir, "notadb.db", "not a database\n")
	writeFile(t, dir, "bad-prices.yaml", "models:\n  gpt-4o:\n    input_per_1m: lots\n")
	writeFile(t, dir, "empty/.keep", "")
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"tokens", "--chat", "bad.json"}, ExitError},
		{[]string{"tokens", "--chat", "bad.json", "--format", "json"}, ExitError},
		{[]string{"tokens", "empty", "--max", "10", "--format", "json"}, ExitUsage},
		{[]string{"tokens", "--model", "gpt-9", "bad.json"}, ExitUsage},
		{[]string{"estimate", "--requests", "1M", "--from", "bad.jsonl"}, ExitUsage},
		{[]string{"estimate", "--requests", "1M", "--from", "bad.jsonl", "--format", "json"}, ExitUsage},
		{[]string{"ingest", "--db", "notadb.db", "bad.jsonl"}, ExitError},
		{[]string{"report", "--db", "notadb.db", "--format", "json"}, ExitError},
		{[]string{"report", "--db", "notadb.db", "--since", "bogus"}, ExitUsage},
		{[]string{"top", "--once", "--db", "notadb.db"}, ExitError},
		{[]string{"top", "--once", "--db", "notadb.db", "--format", "json"}, ExitError},
		{[]string{"pricing", "show", "gpt-9"}, ExitUsage},
		{[]string{"pricing", "list", "--provider", "nobody", "--format", "json"}, ExitUsage},
		{[]string{"--pricing", "bad-prices.yaml", "pricing", "list"}, ExitUsage},
	}
	for _, c := range cases {
		r := runCostctl(t, dir, "", nil, c.args...)
		lines := strings.Split(strings.TrimSuffix(r.Stderr, "\n"), "\n")
		if r.Code != c.code || r.Stdout != "" || !strings.HasPrefix(lines[len(lines)-1], "costctl: ") {
			t.Errorf("costctl %s: exit %d (want %d)\nstdout %q\nstderr %q", strings.Join(c.args, " "), r.Code, c.code, r.Stdout, r.Stderr)
		}
	}
}
