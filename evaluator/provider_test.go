package evaluator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

// The fake provider proves the judge seam: a whole run — budget, retries,
// repair, cache, ledger — goes through the runner with no HTTP at all. It is
// registered like any provider (one registry entry); a judge selects it with
// provider: fake and picks its script with base_url: fake://<script>.
func init() {
	providers["fake"] = providerDef{new: newFakeProvider, keyEnv: "FAKE_API_KEY", baseURL: "fake://none"}
}

const fakeKey = "fake-key-0123456789abcdef"

// fakeScript answers attempt n (1-based, counted per user message) of a prompt.
type fakeScript func(n int, p Prompt) (Attempt, error)

// fakeScripts maps a judge's base_url to its script and the prompts it saw.
var fakeScripts sync.Map // string → *fakeBackend

type fakeBackend struct {
	script  fakeScript
	mu      sync.Mutex
	calls   map[string]int // user message → attempts
	prompts []Prompt
}

// scriptFake registers a script for this test and returns its base_url.
func scriptFake(t *testing.T, s fakeScript) (string, *fakeBackend) {
	url := "fake://" + t.Name()
	b := &fakeBackend{script: s, calls: map[string]int{}}
	fakeScripts.Store(url, b)
	t.Cleanup(func() { fakeScripts.Delete(url) })
	return url, b
}

type fakeProvider struct {
	judge *Judge
	b     *fakeBackend
}

func newFakeProvider(pc ProviderConfig) (Provider, error) {
	b, ok := fakeScripts.Load(pc.BaseURL)
	if !ok {
		return nil, fmt.Errorf("no fake script at %s", pc.BaseURL)
	}
	return &fakeProvider{judge: pc.Judge, b: b.(*fakeBackend)}, nil
}

// fakeError is a scripted server error.
type fakeError struct {
	status int
	msg    string
}

func (e *fakeError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.msg) }

func (f *fakeProvider) Send(_ context.Context, p Prompt) (Attempt, error) {
	f.b.mu.Lock()
	f.b.calls[p.User]++
	n := f.b.calls[p.User]
	f.b.prompts = append(f.b.prompts, p)
	f.b.mu.Unlock()
	return f.b.script(n, p)
}

func (f *fakeProvider) Classify(err error) Failure {
	var fe *fakeError
	if !errors.As(err, &fe) {
		return Failure{Action: ActRetry, Cause: RetryNetwork, Err: err}
	}
	switch {
	case fe.status == 401:
		return Failure{Action: ActStop, Err: fmt.Errorf("the fake judge refused the API key (%v)", fe)}
	case fe.status >= 500:
		return Failure{Action: ActRetry, Cause: Retry5xx, Err: fe, After: 2 * time.Second, HasAfter: true}
	}
	return Failure{Action: ActFail, Err: fmt.Errorf("fake judge %v", fe)}
}

// Counting by bytes keeps expected figures easy to derive.
func (f *fakeProvider) PromptTokens(p Prompt) int64 { return int64(len(p.System) + len(p.User)) }

func (f *fakeProvider) PromptBound(p Prompt) int64 {
	n := f.PromptTokens(p) + 16
	if p.Repair != nil {
		n += int64(len(p.Repair.Reply) + len(p.Repair.Instruction))
	}
	return n
}

// WorstUsage is Anthropic-like: the whole prompt written to the 5-minute cache.
func (f *fakeProvider) WorstUsage(promptTokens int64) pricing.Usage {
	return pricing.Usage{InputTokens: promptTokens, CacheWrite5mTokens: promptTokens, OutputTokens: int64(f.judge.MaxTokens)}
}

func (f *fakeProvider) ReplyTokens(reply string) int64 { return int64(len(reply)) }

func (f *fakeProvider) RequestText(p Prompt) string { return p.System + "\n" + p.User }

// fakeUsage is every scripted reply's usage: 100 prompt tokens of which 20
// read from and 30 written to the cache, 10 output tokens.
var fakeUsage = pricing.Usage{InputTokens: 100, CachedInputTokens: 20, CacheWrite5mTokens: 30, OutputTokens: 10}

// fakeCallCost is fakeUsage at claude-haiku-4.5's list prices: 50 plain ×
// $1/M + 20 cached × $0.10/M + 30 written × $1.25/M + 10 out × $5/M.
const fakeCallCost = pricing.Money(50*1000 + 20*100 + 30*1250 + 10*5000)

func fakeReply(text string) (Attempt, error) {
	return Attempt{Sent: true, Text: text, Usage: fakeUsage, HasUsage: true}, nil
}

const fakeJudgeConfig = `
judges:
  j: {provider: fake, model: claude-haiku-4-5, base_url: %q}
metrics:
  - {name: quality, type: judge, judge: j, prompt: Rate it.}
`

// fakeOpts are e.opts with the fake's key and an HTTP client that fails
// the test if anything is sent over HTTP.
func fakeOpts(t *testing.T, e *env, cfg *Config, files ...string) Options {
	o := e.opts(cfg, files...)
	o.Getenv = func(k string) string {
		if k == "FAKE_API_KEY" {
			return fakeKey
		}
		return ""
	}
	o.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		t.Errorf("HTTP request to %s", r.URL)
		return nil, errors.New("no HTTP in this test")
	})}
	return o
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestFakeProviderRun(t *testing.T) {
	url, b := scriptFake(t, func(n int, p Prompt) (Attempt, error) {
		switch {
		case strings.Contains(p.User, "question 0"):
			return fakeReply(`{"score": 0.9, "reason": "fine"}`)
		case strings.Contains(p.User, "question 1"):
			if n == 1 {
				return Attempt{Sent: true}, &fakeError{503, "overloaded"}
			}
			return fakeReply(`{"score": 0.3, "reason": "weak"}`)
		case strings.Contains(p.User, "question 2"):
			if p.Repair == nil {
				return fakeReply("not json")
			}
			return fakeReply(`{"score": 0.7, "reason": "ok after repair"}`)
		}
		return Attempt{Sent: true}, &fakeError{400, "unexpected prompt"}
	})
	e := newEnv(t, nil)
	cfg := e.config(fmt.Sprintf(fakeJudgeConfig, url))
	f := e.file("r.jsonl", nRecords(3))
	res, rows := e.run(fakeOpts(t, e, cfg, f))

	want := `r000 quality pass 0.9 cached=false
r001 quality fail 0.3 cached=false
r002 quality pass 0.7 cached=false
`
	if got := brief(rows); got != want {
		t.Errorf("rows:\n%s\nwant:\n%s", got, want)
	}
	if e.fake.requests.Load() != 0 {
		t.Errorf("%d HTTP requests", e.fake.requests.Load())
	}
	// Sends: r000 1, r001 2 (503 then success), r002 2 (unreadable, repair).
	if res.Requests != 5 || res.Calls != 4 || res.Errors != 0 || res.Stop != StopNone {
		t.Errorf("requests %d calls %d errors %d stop %q", res.Requests, res.Calls, res.Errors, res.Stop)
	}
	if want := map[string]int64{Retry5xx: 1, RetryRepair: 1}; !reflect.DeepEqual(res.Retries, want) {
		t.Errorf("retries %v, want %v", res.Retries, want)
	}
	// The 503's Retry-After (from Classify) is the one wait, not a backoff.
	if !reflect.DeepEqual(e.sleeps, []time.Duration{2 * time.Second}) {
		t.Errorf("sleeps %v", e.sleeps)
	}
	// Exact money by kind of token: cache writes priced as writes.
	if res.Cost != 4*fakeCallCost {
		t.Errorf("cost %s, want %s", res.Cost, 4*fakeCallCost)
	}
	byID := map[string]Row{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	if r := byID["r002"]; r.InputTokens != 200 || r.CachedTokens != 40 || r.OutputTokens != 20 || r.Cost != 2*fakeCallCost || r.Model != "claude-haiku-4-5" {
		t.Errorf("repaired row %+v", r)
	}
	n, cost, avoided := e.ledgerSum(res.RunID)
	if n != 4 || cost != 4*fakeCallCost || avoided != 0 {
		t.Errorf("ledger: %d events, cost %s, avoided %s", n, cost, avoided)
	}
	var w5 int64
	if err := e.db.SQL().QueryRow(`SELECT COALESCE(SUM(cache_write_5m_tokens),0) FROM events WHERE run_id=?`, res.RunID).Scan(&w5); err != nil {
		t.Fatal(err)
	}
	if w5 != 4*30 {
		t.Errorf("ledger cache writes %d, want %d", w5, 4*30)
	}
	// The repair turn reached the provider as a neutral Repair.
	var repair *Repair
	b.mu.Lock()
	for _, p := range b.prompts {
		if p.Repair != nil {
			repair = p.Repair
		}
		if p.System != "Rate it." {
			t.Errorf("system %q", p.System)
		}
	}
	b.mu.Unlock()
	if repair == nil || repair.Reply != "not json" || !strings.HasPrefix(repair.Instruction, "Your reply could not be read (") || !strings.HasSuffix(repair.Instruction, AnswerInstruction) {
		t.Errorf("repair %+v", repair)
	}

	// A rerun is all cache hits under the fake's own keys: nothing sent.
	res2, rows2 := e.run(fakeOpts(t, e, cfg, f))
	if res2.CacheHits != 3 || res2.Calls != 0 || res2.Requests != 0 {
		t.Errorf("rerun: hits %d calls %d requests %d", res2.CacheHits, res2.Calls, res2.Requests)
	}
	if strings.ReplaceAll(brief(rows2), "cached=true", "cached=false") != want {
		t.Errorf("rerun rows:\n%s", brief(rows2))
	}
}

func TestFakeProviderFatal(t *testing.T) {
	url, _ := scriptFake(t, func(n int, p Prompt) (Attempt, error) {
		if strings.Contains(p.User, "question 0") {
			return Attempt{Sent: true}, &fakeError{400, "this record is too long"}
		}
		return Attempt{Sent: true}, &fakeError{401, "bad key " + fakeKey}
	})
	e := newEnv(t, nil)
	cfg := e.config(fmt.Sprintf(fakeJudgeConfig, url))
	o := fakeOpts(t, e, cfg, e.file("r.jsonl", nRecords(2)))
	o.Concurrency = 1
	var out bytes.Buffer
	o.Out = &out
	res, err := Run(context.Background(), o)
	var fe *FatalError
	if !errors.As(err, &fe) || err.Error() != "the fake judge refused the API key (HTTP 401: bad key [REDACTED])" {
		t.Fatalf("err = %v", err)
	}
	rows := parseRows(t, out.Bytes())
	want := `r000 quality error - cached=false
r001 quality not_run - cached=false
`
	if got := brief(rows); got != want {
		t.Errorf("rows:\n%s\nwant:\n%s", got, want)
	}
	if rows[0].Error != "fake judge HTTP 400: this record is too long" || rows[1].Reason != "not run: the run stopped on an error" {
		t.Errorf("row errors %q / %q", rows[0].Error, rows[1].Reason)
	}
	if res.Stop != StopFatal || res.Requests != 2 || len(res.Retries) != 0 || len(e.sleeps) != 0 || res.Cost != 0 {
		t.Errorf("stop %q requests %d retries %v sleeps %v cost %s", res.Stop, res.Requests, res.Retries, e.sleeps, res.Cost)
	}
	if n, cost, _ := e.ledgerSum(res.RunID); n != 0 || cost != 0 {
		t.Errorf("ledger: %d events, %s (failed calls are not billed)", n, cost)
	}
}

// A request the provider refuses before sending stops the run at once:
// never retried, never counted as sent.
func TestFakeProviderRefusedBeforeSending(t *testing.T) {
	url, _ := scriptFake(t, func(n int, p Prompt) (Attempt, error) {
		return Attempt{}, errors.New("model not allowed with these options")
	})
	e := newEnv(t, nil)
	cfg := e.config(fmt.Sprintf(fakeJudgeConfig, url))
	res, err := Run(context.Background(), fakeOpts(t, e, cfg, e.file("r.jsonl", nRecords(3))))
	if err == nil || err.Error() != `judge "j": the request was refused before sending: model not allowed with these options` {
		t.Fatalf("err = %v", err)
	}
	if res.Requests != 0 || len(res.Retries) != 0 || len(e.sleeps) != 0 {
		t.Errorf("requests %d retries %v sleeps %v", res.Requests, res.Retries, e.sleeps)
	}
}

func TestProviderConfig(t *testing.T) {
	table := pricing.MustDefault()
	_, err := ParseConfig("eval.yaml", []byte(`
judges:
  big: {provider: nosuch, model: gpt-4o}
metrics:
  - {name: q, type: judge, judge: big, prompt: Rate.}
`), table)
	if err == nil || err.Error() != `config eval.yaml: judge "big": provider "nosuch" is not known (want one of: anthropic, fake, openai)` {
		t.Errorf("err = %v", err)
	}
	cfg, err := ParseConfig("eval.yaml", []byte(`
judges:
  a: {model: gpt-4o-mini}
  b: {provider: openai, model: gpt-4o-mini}
metrics:
  - {name: q, type: judge, judge: a, prompt: Rate.}
  - {name: r, type: judge, judge: b, prompt: Rate.}
`), table)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Judges["a"], cfg.Judges["b"]
	if a.ProviderName() != ProviderOpenAI || KeyEnv(a) != "OPENAI_API_KEY" {
		t.Errorf("default provider %q key %q", a.ProviderName(), KeyEnv(a))
	}
	o := Options{Getenv: func(k string) string { return map[string]string{"OPENAI_BASE_URL": "http://env/v1"}[k] }}
	if got := o.Endpoint(a); got != "http://env/v1" {
		t.Errorf("endpoint %q", got)
	}
	// The cache key for openai is what it was before judges had a provider
	// (existing caches keep hitting): pinned here, computed by the code before
	// the provider seam (1568207).
	const pinned = "5fece59a0a0073e9898bd7c988daf35c605a2eb3df0bbb6cc52b95c49768a5d9"
	ka := CacheKey("https://api.openai.com/v1", a, "Rate.", "## Output\nx\n\n"+AnswerInstruction)
	kb := CacheKey("https://api.openai.com/v1", b, "Rate.", "## Output\nx\n\n"+AnswerInstruction)
	if ka != kb || ka != pinned {
		t.Errorf("openai cache keys %s / %s, want %s", ka, kb, pinned)
	}
	// Any other provider adds itself to the key.
	c := *a
	c.Provider = "fake"
	if CacheKey("https://api.openai.com/v1", &c, "Rate.", "## Output\nx\n\n"+AnswerInstruction) == ka {
		t.Error("a fake judge shares the openai cache key")
	}
}

// --base-url names an OpenAI-compatible endpoint: an anthropic judge in the
// same config keeps its own (base_url, else ANTHROPIC_BASE_URL, else the API).
func TestBaseURLIsOpenAIOnly(t *testing.T) {
	env := map[string]string{"ANTHROPIC_BASE_URL": "http://anthropic.local"}
	o := &Options{BaseURL: "http://openai.local/v1", Getenv: func(k string) string { return env[k] }}
	oj, aj := &Judge{Name: "o"}, &Judge{Name: "a", Provider: ProviderAnthropic}
	if got := o.Endpoint(oj); got != "http://openai.local/v1" {
		t.Errorf("openai judge: %s", got)
	}
	if got := o.Endpoint(aj); got != "http://anthropic.local" {
		t.Errorf("anthropic judge: %s", got)
	}
	delete(env, "ANTHROPIC_BASE_URL")
	if got := o.Endpoint(aj); got != DefaultAnthropicBaseURL {
		t.Errorf("anthropic judge without its variable: %s", got)
	}
	aj.BaseURL = "http://gateway.local"
	if got := o.Endpoint(aj); got != "http://gateway.local" {
		t.Errorf("anthropic judge with base_url: %s", got)
	}
}
