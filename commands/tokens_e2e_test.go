package commands

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func tokensDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("testdata", "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTokensTableGolden(t *testing.T) {
	r := runCostctl(t, tokensDir(t), "", nil, "tokens", "prompts")
	if r.Code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	assertGolden(t, "tokens/table.golden", r.Stdout)
	wantErr := "note: prompts/.drafts: hidden directory skipped\nnote: prompts/logo.bin: binary file skipped\n"
	if r.Stderr != wantErr {
		t.Errorf("stderr = %q, want %q", r.Stderr, wantErr)
	}
}

func TestTokensJSONGolden(t *testing.T) {
	r := runCostctl(t, tokensDir(t), "", nil, "tokens", "prompts", "--include", "*.md", "--format", "json", "--model", "gpt-4o-mini")
	if r.Code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	assertGolden(t, "tokens/include.json.golden", r.Stdout)
	var doc struct {
		Version int `json:"version"`
		Files   []struct {
			Path string `json:"path"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || doc.Version != 1 || len(doc.Files) != 2 {
		t.Fatalf("json: %+v %v", doc, err)
	}
}

func TestTokensStdinAndApproximate(t *testing.T) {
	r := runCostctl(t, "", "hello world", nil, "tokens", "--model", "claude-sonnet-4.5", "--format", "json")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	for _, want := range []string{`"path": "-"`, `"tokens": 2`, `"exact": false`, `"encoding": "o200k_base"`, `"cost_usd": "0.000006"`} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("stdout lacks %s:\n%s", want, r.Stdout)
		}
	}
	r = runCostctl(t, "", "hello world", nil, "tokens", "-", "--model", "claude-sonnet-4.5")
	if !strings.Contains(r.Stdout, "approximate: claude-sonnet-4.5 has no public tokenizer, counted with o200k_base") {
		t.Errorf("table does not say the count is approximate:\n%s", r.Stdout)
	}
}

func TestTokensChatCookbook(t *testing.T) {
	// OpenAI's cookbook: this request bills 101 prompt tokens on gpt-4o and 105 on gpt-4.
	for model, want := range map[string]string{"gpt-4o": `"tokens": 101`, "gpt-4": `"tokens": 105`} {
		r := runCostctl(t, tokensDir(t), "", nil, "tokens", "--chat", "chat.json", "--model", model, "--format", "json")
		if r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Errorf("%s: exit %d, want %s in\n%s%s", model, r.Code, want, r.Stdout, r.Stderr)
		}
	}
}

func TestTokensGate(t *testing.T) {
	r := runCostctl(t, tokensDir(t), "", nil, "tokens", "prompts", "--max", "40")
	if r.Code != ExitGate {
		t.Fatalf("exit %d, want 3; stderr:\n%s", r.Code, r.Stderr)
	}
	assertGolden(t, "tokens/gate.golden", r.Stdout)
	if !strings.Contains(r.Stderr, "prompts/system.md: 47 tokens > 40\n") {
		t.Errorf("stderr does not name the offender:\n%s", r.Stderr)
	}
	if strings.Contains(r.Stderr, "judge.md") {
		t.Errorf("a file under the limit was named:\n%s", r.Stderr)
	}
	r = runCostctl(t, tokensDir(t), "", nil, "tokens", "prompts", "--max-total", "50")
	if r.Code != ExitGate || !strings.Contains(r.Stderr, "total: ") || !strings.Contains(r.Stderr, " > 50\n") {
		t.Errorf("--max-total: exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	r = runCostctl(t, tokensDir(t), "", nil, "tokens", "prompts", "--max", "1000", "--max-total", "1000")
	if r.Code != 0 {
		t.Errorf("under the limits: exit %d", r.Code)
	}
}

func TestTokensErrors(t *testing.T) {
	dir := tokensDir(t)
	cases := []struct {
		args    []string
		code    int
		stderr  string
		stdoutE bool // stdout must be empty
	}{
		{[]string{"tokens", "--model", "gpt-4oo", "prompts"}, ExitUsage, "costctl: unknown model \"gpt-4oo\" (closest known: gpt-4o", true},
		{[]string{"tokens", "--encoding", "cl200k", "prompts"}, ExitUsage, "costctl: invalid --encoding \"cl200k\"", true},
		{[]string{"tokens", "--format", "xml", "prompts"}, ExitUsage, "costctl: invalid --format \"xml\"", true},
		{[]string{"tokens", "--max", "-1", "prompts"}, ExitUsage, "--max and --max-total must be positive", true},
		{[]string{"tokens", "--bogus"}, ExitUsage, "costctl: unknown flag: --bogus", true},
		{[]string{"tokens", "--include", "[", "prompts"}, ExitUsage, "invalid --include pattern", true},
		{[]string{"tokens", "--chat", "prompts/system.md"}, ExitError, "costctl: prompts/system.md: chat input:", false},
		{[]string{"tokens", "missing.md", "prompts/system.md"}, ExitError, "costctl: missing.md: no such file or directory", false},
	}
	for _, c := range cases {
		r := runCostctl(t, dir, "", nil, c.args...)
		if r.Code != c.code || !strings.Contains(r.Stderr, c.stderr) {
			t.Errorf("%v: exit %d stderr %q, want exit %d and %q", c.args, r.Code, r.Stderr, c.code, c.stderr)
		}
		if c.stdoutE && r.Stdout != "" {
			t.Errorf("%v: usage error printed to stdout: %q", c.args, r.Stdout)
		}
	}
	// The other files are still reported when one is missing.
	r := runCostctl(t, dir, "", nil, "tokens", "missing.md", "prompts/system.md")
	if !strings.Contains(r.Stdout, "prompts/system.md") {
		t.Errorf("good file not reported next to a missing one:\n%s", r.Stdout)
	}
}

func TestTokensLongRunDoesNotStall(t *testing.T) {
	// 1 MB of one character: the reference tokenizer is quadratic here.
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", strings.Repeat("a", 1<<20))
	r := runCostctl(t, dir, "", nil, "tokens", "a.txt", "--format", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"bytes": 1048576`) {
		t.Fatalf("exit %d: %s %s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestPricingCommands(t *testing.T) {
	r := runCostctl(t, "", "", nil, "pricing", "show", "openai/gpt-4o-2024-08-06")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	assertGolden(t, "pricing/show-gpt-4o.golden", r.Stdout)
	r = runCostctl(t, "", "", nil, "pricing", "list", "--provider", "anthropic", "--format", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"prices_as_of": "2025-12-01"`) || strings.Contains(r.Stdout, `"provider": "openai"`) {
		t.Fatalf("list json: exit %d\n%s", r.Code, r.Stdout)
	}
	r = runCostctl(t, "", "", nil, "pricing", "list")
	if !strings.Contains(r.Stdout, "prices as of 2025-12-01") {
		t.Errorf("list does not carry the date:\n%s", r.Stdout)
	}
	dir := t.TempDir()
	p := writeFile(t, dir, "p.yaml", "models:\n  gpt-4o:\n    input_per_1m: \"2.00\"\n")
	r = runCostctl(t, dir, "", nil, "--pricing", p, "pricing", "show", "gpt-4o")
	if !strings.Contains(r.Stdout, "input           $2.00 / 1M") || !strings.Contains(r.Stdout, "(overrides: "+p+")") {
		t.Errorf("override not applied or not labelled:\n%s", r.Stdout)
	}
	bad := writeFile(t, dir, "bad.yaml", "models:\n  gpt-4o:\n    input_per_1m: lots\n")
	r = runCostctl(t, dir, "", nil, "--pricing", bad, "pricing", "list")
	if r.Code != ExitUsage || r.Stderr != "costctl: "+bad+":3: models.gpt-4o.input_per_1m: invalid price \"lots\": not a number\n" {
		t.Errorf("bad pricing file: exit %d stderr %q", r.Code, r.Stderr)
	}
	r = runCostctl(t, "", "", nil, "pricing", "show", "nope-model")
	if r.Code != ExitUsage || r.Stdout != "" {
		t.Errorf("unknown model: exit %d stdout %q", r.Code, r.Stdout)
	}
}

func TestVersionAndExitCodesHelp(t *testing.T) {
	r := runCostctl(t, "", "", nil, "version", "--format", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"version": "`) || !strings.Contains(r.Stdout, `"commit": "`) {
		t.Errorf("version: %d %s", r.Code, r.Stdout)
	}
	r = runCostctl(t, "", "", nil, "help", "exit-codes")
	for _, want := range []string{"0    ok", "2    usage", "3    a gate failed", "4    a budget cap", "130  interrupted"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("exit-codes help lacks %q:\n%s", want, r.Stdout)
		}
	}
}
