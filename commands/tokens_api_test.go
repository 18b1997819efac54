package commands

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

type tokensJSON struct {
	Model    string `json:"model"`
	Encoding string `json:"encoding"`
	Exact    bool   `json:"exact"`
	Files    []struct {
		Path   string        `json:"path"`
		Model  string        `json:"model"`
		Exact  *bool         `json:"exact"`
		Tokens int64         `json:"tokens"`
		Cost   pricing.Money `json:"cost_usd"`
	} `json:"files"`
	Total struct {
		Tokens int64         `json:"tokens"`
		Cost   pricing.Money `json:"cost_usd"`
	} `json:"total"`
}

func runTokensTest(t *testing.T, opts *TokensOptions) (tokensJSON, string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	opts.IO = &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errb}
	opts.Pricing = pricing.Default
	if opts.Format == "" {
		opts.Format = "json"
	}
	if opts.APITimeout == 0 {
		opts.APITimeout = 5 * time.Second
	}
	err := runTokens(context.Background(), opts)
	var j tokensJSON
	if err == nil && opts.Format == "json" {
		if jerr := json.Unmarshal(out.Bytes(), &j); jerr != nil {
			t.Fatalf("json: %v\n%s", jerr, out.String())
		}
	}
	return j, out.String(), errb.String(), err
}

func costOf(t *testing.T, model string, tokens int64) pricing.Money {
	t.Helper()
	m, err := pricing.MustDefault().Lookup(model)
	if err != nil {
		t.Fatal(err)
	}
	return m.Cost(pricing.Usage{InputTokens: tokens}, false)
}

// Without --model a chat request is counted and priced as its own model;
// it used to be priced as gpt-4o whatever it named.
func TestTokensChatUsesRequestModel(t *testing.T) {
	dir := t.TempDir()
	// 3 (reply) + 3 (message) + "user" 1 + "Hello" 1 = 8 tokens.
	mini := writeFile(t, dir, "mini.json", `{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}`)
	big := writeFile(t, dir, "big.json", `{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}`)
	bare := writeFile(t, dir, "bare.json", `[{"role": "user", "content": "Hello"}]`)
	unknown := writeFile(t, dir, "unknown.json", "{\n  \"model\": \"gpt-9-ultra\",\n  \"messages\": []\n}")

	j, _, stderr, err := runTokensTest(t, &TokensOptions{Paths: []string{mini}, Chat: true})
	if err != nil || j.Model != "gpt-4o-mini" || j.Total.Tokens != 8 || j.Total.Cost != costOf(t, "gpt-4o-mini", 8) || j.Files[0].Model != "gpt-4o-mini" {
		t.Errorf("mini: %+v stderr %q err %v", j, stderr, err)
	}
	if costOf(t, "gpt-4o-mini", 8) == costOf(t, "gpt-4o", 8) {
		t.Fatal("test needs different prices")
	}

	// Two models in one run: each file its own; the run is "mixed".
	j, _, _, err = runTokensTest(t, &TokensOptions{Paths: []string{mini, big, bare}, Chat: true})
	if err != nil || j.Model != "mixed" || len(j.Files) != 3 ||
		j.Files[0].Model != "gpt-4o" || j.Files[1].Model != "gpt-4o" || j.Files[2].Model != "gpt-4o-mini" ||
		j.Total.Cost != 2*costOf(t, "gpt-4o", 8)+costOf(t, "gpt-4o-mini", 8) {
		t.Errorf("mixed: %+v err %v", j, err)
	}

	// The table names each file's model.
	_, out, _, err := runTokensTest(t, &TokensOptions{Paths: []string{mini, big}, Chat: true, Format: "table"})
	if err != nil || !strings.Contains(out, "MODEL") || !strings.Contains(out, "gpt-4o-mini, billed prompt tokens (chat formula) with o200k_base; input cost at gpt-4o-mini $0.15/1M") {
		t.Errorf("mixed table:\n%s", out)
	}

	// --model overrides every request's own.
	j, _, _, err = runTokensTest(t, &TokensOptions{Paths: []string{mini, unknown}, Chat: true, Model: "gpt-4o"})
	if err != nil || j.Model != "gpt-4o" || j.Total.Cost != costOf(t, "gpt-4o", 8+3) {
		t.Errorf("--model: %+v err %v", j, err)
	}

	// A model not in the price table: one line naming the file, line and model.
	_, out, stderr, err = runTokensTest(t, &TokensOptions{Paths: []string{unknown}, Chat: true})
	want := "costctl: " + unknown + `:2: model "gpt-9-ultra" is not in the price table; give --model to count it as a known model, or add its prices with --pricing` + "\n"
	if err == nil || out != "" || stderr != want {
		t.Errorf("unknown model: err %v stdout %q stderr %q, want %q", err, out, stderr, want)
	}
}

func pngDataURL(t *testing.T, w, h int) string {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.Black})); err != nil {
		t.Fatal(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())
}

// Image parts are billed (they used to be dropped).
func TestTokensChatImages(t *testing.T) {
	dir := t.TempDir()
	req := func(model, part string) string {
		return writeFile(t, dir, model+".json", `{"model": "`+model+`", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}, `+part+`]}]}`)
	}
	cases := []struct {
		model, part string
		tokens      int64
		exact       bool
		note        string
	}{
		// 8 (text, as above) + 1024×1024 high: 85 + 4·170 = 765.
		{"gpt-4o", `{"type": "image_url", "image_url": {"url": "` + pngDataURL(t, 1024, 1024) + `", "detail": "high"}}`, 8 + 765, true, ""},
		// 8 + 2048×4096 auto: 768×1536 → 6 tiles: 85 + 1020 = 1105.
		{"gpt-4.1", `{"type": "image_url", "image_url": {"url": "` + pngDataURL(t, 2048, 4096) + `"}}`, 8 + 1105, true, ""},
		// 8 + a remote image: low detail 85, approximate.
		{"gpt-4o-2024-08-06", `{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}`, 8 + 85, false,
			"approximate: 1 image(s) counted without a documented size or rule (a remote URL is counted as low detail)"},
	}
	for _, c := range cases {
		p := req(c.model, c.part)
		j, _, stderr, err := runTokensTest(t, &TokensOptions{Paths: []string{p}, Chat: true})
		if err != nil || j.Total.Tokens != c.tokens || j.Exact != c.exact || *j.Files[0].Exact != c.exact {
			t.Errorf("%s: %+v stderr %q err %v, want %d tokens exact=%v", c.model, j, stderr, err, c.tokens, c.exact)
		}
		if c.note != "" {
			_, out, _, _ := runTokensTest(t, &TokensOptions{Paths: []string{p}, Chat: true, Format: "table"})
			if !strings.Contains(out, c.note+"\n") {
				t.Errorf("%s: table lacks %q:\n%s", c.model, c.note, out)
			}
		}
	}
}

const testKey = "sk-test-SECRET-0123456789"

// fakeCounter is an httptest provider that records what it was sent.
type fakeCounter struct {
	srv     *httptest.Server
	path    string
	headers http.Header
	body    []byte
}

func newFakeCounter(t *testing.T, status int, answer string) *fakeCounter {
	f := &fakeCounter{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.path, f.headers = r.URL.Path, r.Header.Clone()
		f.body, _ = io.ReadAll(r.Body)
		if r.Method != http.MethodPost {
			status = http.StatusMethodNotAllowed
		}
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return b.String()
}

func TestTokensCountViaAPI(t *testing.T) {
	dir := t.TempDir()
	chat := writeFile(t, dir, "chat.json", `{"model": "claude-sonnet-4-5", "messages": [
  {"role": "system", "content": "Be brief."},
  {"role": "user", "content": "Hello"},
  {"role": "assistant", "content": "Hi"}],
 "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}]}`)
	text := writeFile(t, dir, "note.txt", "hello world")
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	// Anthropic: the request, headers and answer.
	a := newFakeCounter(t, 200, `{"input_tokens": 42}`)
	j, out, stderr, err := runTokensTest(t, &TokensOptions{Paths: []string{chat}, Chat: true, CountViaAPI: true,
		Getenv: env(map[string]string{"ANTHROPIC_API_KEY": testKey, "ANTHROPIC_BASE_URL": a.srv.URL})})
	wantBody := `{"model":"claude-sonnet-4-5","system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"Hello"}]},{"role":"assistant","content":[{"type":"text","text":"Hi"}]}],"tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}]}`
	if err != nil || j.Total.Tokens != 42 || !j.Exact || j.Model != "claude-sonnet-4.5" || j.Total.Cost != costOf(t, "claude-sonnet-4.5", 42) {
		t.Errorf("anthropic: %+v stderr %q err %v", j, stderr, err)
	}
	if a.path != "/v1/messages/count_tokens" || a.headers.Get("x-api-key") != testKey || a.headers.Get("anthropic-version") != "2023-06-01" ||
		a.headers.Get("content-type") != "application/json" || string(a.body) != wantBody {
		t.Errorf("anthropic request: %s %v\n%s\nwant %s", a.path, a.headers, a.body, wantBody)
	}
	if strings.Contains(out+stderr, testKey) {
		t.Error("the key was printed")
	}

	// A plain file is one user message; --model's dotted name is sent as
	// the API id; the flag's base URL wins over the environment.
	a2 := newFakeCounter(t, 200, `{"input_tokens": 10}`)
	_, out, _, err = runTokensTest(t, &TokensOptions{Paths: []string{text}, Model: "claude-sonnet-4.5", CountViaAPI: true, Format: "table",
		AnthropicBaseURL: a2.srv.URL, Getenv: env(map[string]string{"ANTHROPIC_API_KEY": testKey, "ANTHROPIC_BASE_URL": "http://127.0.0.1:1"})})
	if err != nil || string(a2.body) != `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":[{"type":"text","text":"hello world"}]}]}` ||
		!strings.Contains(out, "claude-sonnet-4.5, tokens from the provider's token-counting API;") || strings.Contains(out, "approximate") {
		t.Errorf("anthropic text: err %v body %s\n%s", err, a2.body, out)
	}

	// Gemini: path, header and the generateContentRequest body.
	g := newFakeCounter(t, 200, `{"totalTokens": 17}`)
	j, out, stderr, err = runTokensTest(t, &TokensOptions{Paths: []string{chat}, Chat: true, Model: "gemini-2.5-flash", CountViaAPI: true,
		Getenv: env(map[string]string{"GOOGLE_API_KEY": testKey, "GEMINI_BASE_URL": g.srv.URL})})
	wantG := `{"generateContentRequest":{"model":"models/gemini-2.5-flash","contents":[{"role":"user","parts":[{"text":"Hello"}]},{"role":"model","parts":[{"text":"Hi"}]}],"systemInstruction":{"parts":[{"text":"Be brief."}]},"tools":[{"functionDeclarations":[{"name":"f","description":"d","parameters":{"type":"object"}}]}]}}`
	if err != nil || j.Total.Tokens != 17 || !j.Exact || j.Total.Cost != costOf(t, "gemini-2.5-flash", 17) {
		t.Errorf("gemini: %+v stderr %q err %v", j, stderr, err)
	}
	if g.path != "/v1beta/models/gemini-2.5-flash:countTokens" || g.headers.Get("x-goog-api-key") != testKey || string(g.body) != compactJSON(t, wantG) {
		t.Errorf("gemini request: %s %v\n%s", g.path, g.headers, g.body)
	}
	if strings.Contains(out+stderr, testKey) || strings.Contains(g.srv.URL, testKey) {
		t.Error("the key was printed")
	}

	// A server error is one line, with the key redacted.
	bad := newFakeCounter(t, 401, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key `+testKey+`\nsee docs"}}`)
	_, out, stderr, err = runTokensTest(t, &TokensOptions{Paths: []string{chat}, Chat: true, CountViaAPI: true,
		Getenv: env(map[string]string{"ANTHROPIC_API_KEY": testKey, "ANTHROPIC_BASE_URL": bad.srv.URL})})
	wantErr := "costctl: " + chat + ": Anthropic token counting: HTTP 401: invalid x-api-key [redacted] see docs\n"
	if err == nil || out != "" || stderr != wantErr {
		t.Errorf("server error: err %v stdout %q stderr %q, want %q", err, out, stderr, wantErr)
	}

	// A server that does not answer in time.
	stop := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop); slow.Close() })
	_, _, stderr, err = runTokensTest(t, &TokensOptions{Paths: []string{chat}, Chat: true, CountViaAPI: true, APITimeout: 20 * time.Millisecond,
		Getenv: env(map[string]string{"ANTHROPIC_API_KEY": testKey, "ANTHROPIC_BASE_URL": slow.URL})})
	if want := "costctl: " + chat + ": Anthropic token counting: no answer within the timeout (--api-timeout)\n"; err == nil || stderr != want {
		t.Errorf("timeout: err %v stderr %q", err, stderr)
	}

	// No key: a usage error naming the variable.
	_, _, _, err = runTokensTest(t, &TokensOptions{Paths: []string{text}, Model: "gemini-2.5-flash", CountViaAPI: true, Getenv: env(nil)})
	if err == nil || err.Error() != "--count-via-api for gemini-2.5-flash needs GEMINI_API_KEY (or GOOGLE_API_KEY) set to a Gemini API key" {
		t.Errorf("no key: %v", err)
	}

	// Without --count-via-api nothing is asked and the count is approximate.
	j, _, _, err = runTokensTest(t, &TokensOptions{Paths: []string{text}, Model: "claude-sonnet-4.5", Getenv: env(map[string]string{"ANTHROPIC_BASE_URL": "http://127.0.0.1:1"})})
	if err != nil || j.Exact || j.Total.Tokens != 2 {
		t.Errorf("local: %+v %v", j, err)
	}
}
