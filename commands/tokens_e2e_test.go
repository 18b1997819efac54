package commands

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
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
}

// A path named on the command line that cannot be counted is an error
// naming it and why: exit 1, nothing on stdout (not a row of 0 tokens, not a
// table of the other files), every such path listed.
func TestTokensNamedPathErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "good.md", "hello world")
	writeFile(t, dir, "logo.png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	cases := []struct {
		args   []string
		stderr string
	}{
		{[]string{"tokens", "missing.md", "good.md"}, "costctl: missing.md: no such file or directory\n"},
		{[]string{"tokens", "good.md", "logo.png"}, "costctl: logo.png: binary file (a NUL byte in its first 8 KiB), not counted\n"},
		{[]string{"tokens", "logo.png", "--max", "10"}, "costctl: logo.png: binary file (a NUL byte in its first 8 KiB), not counted\n"},
		{[]string{"tokens", "nope1", "good.md", "nope2", "--format", "json"}, "costctl: nope1: no such file or directory\ncostctl: nope2: no such file or directory\n"},
	}
	for _, c := range cases {
		r := runCostctl(t, dir, "", nil, c.args...)
		if r.Code != ExitError || r.Stdout != "" || r.Stderr != c.stderr {
			t.Errorf("%v: exit %d\nstdout %q\nstderr %q\nwant exit 1, no stdout, stderr %q", c.args, r.Code, r.Stdout, r.Stderr, c.stderr)
		}
	}
	// Binary stdin is named the same way.
	r := runCostctl(t, dir, "a\x00b", nil, "tokens")
	if r.Code != ExitError || r.Stdout != "" || r.Stderr != "costctl: stdin: binary file (a NUL byte in its first 8 KiB), not counted\n" {
		t.Errorf("binary stdin: exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

// --chat says what is wrong with a request in its own terms: file, line,
// field path and what was expected — never Go type names.
func TestTokensChatErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "content.json", "{\"messages\": [\n  {\"role\": \"system\", \"content\": \"a\"},\n  {\"role\": \"user\", \"content\": \"b\"},\n  {\"role\": \"user\", \"content\": 5}\n]}\n")
	writeFile(t, dir, "role.json", "[\n  {\"role\": 5, \"content\": \"a\"}\n]\n")
	writeFile(t, dir, "messages.json", "{\"model\": \"gpt-4o\",\n \"messages\": {}}\n")
	writeFile(t, dir, "cut.json", "{\"messages\": [\n")
	cases := []struct {
		args   []string
		stdin  string
		stderr string
	}{
		{[]string{"content.json"}, "", "costctl: content.json:4: messages[2].content: expected a string or a list of content parts, got a number\n"},
		{[]string{"role.json"}, "", "costctl: role.json:2: [0].role: expected a string such as \"user\", got a number\n"},
		{[]string{"messages.json"}, "", "costctl: messages.json:2: messages: expected a list of messages, got an object\n"},
		{[]string{"cut.json"}, "", "costctl: cut.json:2: not valid JSON: the input ends before the JSON value does\n"},
		{nil, "\n\n{\"messages\": [{\"role\": \"user\", \"content\": [\"hi\"]}]}", "costctl: stdin:3: messages[0].content[0]: expected a content part such as {\"type\": \"text\", \"text\": \"...\"}, got a string\n"},
		{[]string{"role.json", "content.json"}, "", "costctl: content.json:4: messages[2].content: expected a string or a list of content parts, got a number\n" +
			"costctl: role.json:2: [0].role: expected a string such as \"user\", got a number\n"},
	}
	for _, c := range cases {
		r := runCostctl(t, dir, c.stdin, nil, append([]string{"tokens", "--chat"}, c.args...)...)
		if r.Code != ExitError || r.Stdout != "" || r.Stderr != c.stderr {
			t.Errorf("%v: exit %d\nstdout %q\nstderr %q\nwant exit 1, no stdout, stderr %q", c.args, r.Code, r.Stdout, r.Stderr, c.stderr)
		}
	}
	r := runCostctl(t, tokensDir(t), "", nil, "tokens", "--chat", "prompts/system.md")
	if want := "costctl: prompts/system.md:1: not valid JSON: invalid character 'Y' looking for beginning of value\n"; r.Code != ExitError || r.Stdout != "" || r.Stderr != want {
		t.Errorf("markdown as --chat: exit %d stdout %q stderr %q, want %q", r.Code, r.Stdout, r.Stderr, want)
	}
}

// A gate whose paths match no file cannot pass: exit 2, one line.
func TestTokensGateOnNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "docs/a.txt", "hello")
	writeFile(t, dir, "bin/x.dat", "a\x00b")
	cases := []struct {
		args   []string
		stderr string
	}{
		{[]string{"tokens", "empty", "--max", "100"}, "costctl: no file matched in empty: a --max gate cannot pass on nothing; check the paths\n"},
		{[]string{"tokens", "docs", "--include", "*.md", "--max-total", "100"}, "costctl: no file matched in docs (--include \"*.md\"): a --max-total gate cannot pass on nothing; check the paths and --include\n"},
		{[]string{"tokens", "empty", "bin", "--max", "1", "--max-total", "2", "--format", "json"}, "note: bin/x.dat: binary file skipped\n" +
			"costctl: no file matched in empty, bin: a --max/--max-total gate cannot pass on nothing; check the paths\n"},
	}
	for _, c := range cases {
		r := runCostctl(t, dir, "", nil, c.args...)
		if r.Code != ExitUsage || r.Stdout != "" || r.Stderr != c.stderr {
			t.Errorf("%v: exit %d\nstdout %q\nstderr %q\nwant exit 2, no stdout, stderr %q", c.args, r.Code, r.Stdout, r.Stderr, c.stderr)
		}
	}
	// Without a gate an empty folder is an empty result, not an error.
	if r := runCostctl(t, dir, "", nil, "tokens", "empty", "--format", "json"); r.Code != 0 || !strings.Contains(r.Stdout, `"files": [],`) || r.Stderr != "" {
		t.Errorf("empty folder, no gate: exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

// UTF-16 with a BOM (either byte order) is decoded and counted like the
// same text in UTF-8; BYTES is the size read. A UTF-8 BOM is kept and
// counted, as tiktoken counts it.
func TestTokensUTF16(t *testing.T) {
	dir := t.TempDir()
	text := "Héllo wörld — 日本語 😀\nSecond line.\n"
	writeFile(t, dir, "texts/a-utf8.txt", text)
	writeFile(t, dir, "texts/b-utf16le.txt", string(utf16Text(text, binary.LittleEndian)))
	writeFile(t, dir, "texts/c-utf16be.txt", string(utf16Text(text, binary.BigEndian)))
	writeFile(t, dir, "texts/d-utf8bom.txt", "\ufeff"+text)
	r := runCostctl(t, dir, "", nil, "tokens", "texts")
	// 14 and 15 tokens are what tiktoken counts for text and "\ufeff"+text.
	want := "PATH                 TOKENS  BYTES  INPUT COST\n" +
		"----------------------------------------------\n" +
		"texts/a-utf8.txt         14     46   $0.000035\n" +
		"texts/b-utf16le.txt      14     70   $0.000035\n" +
		"texts/c-utf16be.txt      14     70   $0.000035\n" +
		"texts/d-utf8bom.txt      15     49  $0.0000375\n" +
		"----------------------------------------------\n" +
		"total (4 files)          57    235  $0.0001425\n" +
		"\n" +
		"gpt-4o, tokens with o200k_base; input cost at gpt-4o $2.50/1M; prices as of 2026-12-01\n"
	if r.Code != 0 || r.Stdout != want || r.Stderr != "" {
		t.Errorf("exit %d stderr %q\n got:\n%s\nwant:\n%s", r.Code, r.Stderr, r.Stdout, want)
	}
	// Standard input and --chat are decoded too.
	r = runCostctl(t, dir, string(utf16Text(`[{"role":"user","content":"hi"}]`, binary.BigEndian)), nil, "tokens", "--chat", "--format", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"tokens": 8,`) || !strings.Contains(r.Stdout, `"bytes": 66,`) {
		t.Errorf("UTF-16 chat on stdin: exit %d stderr %q\n%s", r.Code, r.Stderr, r.Stdout)
	}
	// An unpaired surrogate is replaced, with a warning naming the file.
	bad := append(utf16Text("ok", binary.LittleEndian), 0x3D, 0xD8)
	writeFile(t, dir, "bad16.txt", string(bad))
	r = runCostctl(t, dir, "", nil, "tokens", "bad16.txt", "--format", "json")
	if r.Code != 0 || r.Stderr != "warning: bad16.txt: invalid UTF-16 (an unpaired surrogate or odd byte) replaced by U+FFFD before counting\n" {
		t.Errorf("bad UTF-16: exit %d stderr %q", r.Code, r.Stderr)
	}
}

// utf16Text is s in UTF-16 with a BOM.
func utf16Text(s string, order binary.AppendByteOrder) []byte {
	b := order.AppendUint16(nil, 0xFEFF)
	for _, u := range utf16.Encode([]rune(s)) {
		b = order.AppendUint16(b, u)
	}
	return b
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
	if r.Code != 0 || !strings.Contains(r.Stdout, `"prices_as_of": "2026-12-01"`) || strings.Contains(r.Stdout, `"provider": "openai"`) {
		t.Fatalf("list json: exit %d\n%s", r.Code, r.Stdout)
	}
	r = runCostctl(t, "", "", nil, "pricing", "list")
	if !strings.Contains(r.Stdout, "prices as of 2026-12-01") {
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
