package evaluator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

const antKey = "sk-ant-test-SECRET-never-leak-0123456789"

// antReq is a Messages request as the fake reads it.
type antReq struct {
	Model     string `json:"model"`
	MaxTokens int    `json:"max_tokens"`
	System    []struct {
		Type, Text   string
		CacheControl *struct{ Type string } `json:"cache_control"`
	} `json:"system"`
	Messages []struct{ Role, Content string } `json:"messages"`
	Tools    []struct {
		Name string `json:"name"`
	} `json:"tools"`
	ToolChoice *struct{ Type, Name string } `json:"tool_choice"`
}

func (r *antReq) user() string {
	if len(r.Messages) == 0 {
		return ""
	}
	return r.Messages[0].Content
}

// antFake is the Anthropic Messages API on loopback. Unless reply answers
// a request, it calls the verdict tool (0.9 when the output says "good",
// else 0.2) and bills like prompt caching: the first request with a given
// rubric writes it to the cache, later ones read it.
type antFake struct {
	srv      *httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	raw      [][]byte
	reqs     []antReq
	headers  []http.Header
	paths    []string
	cached   map[string]bool
	reply    func(n int64, req antReq, w http.ResponseWriter, r *http.Request) bool
}

// The fake's usage: antRubric tokens of rubric (written to or read from the
// cache), antInput tokens after the breakpoint, antOutput tokens of reply.
const antRubric, antInput, antOutput = 1200, 150, 30

func newAntFake(t *testing.T, reply func(n int64, req antReq, w http.ResponseWriter, r *http.Request) bool) *antFake {
	f := &antFake{reply: reply, cached: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.requests.Add(1)
		raw, _ := io.ReadAll(r.Body)
		var req antReq
		_ = json.Unmarshal(raw, &req)
		f.mu.Lock()
		f.raw = append(f.raw, raw)
		f.reqs = append(f.reqs, req)
		f.headers = append(f.headers, r.Header.Clone())
		f.paths = append(f.paths, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		if f.reply != nil && f.reply(n, req, w, r) {
			return
		}
		verdict := `{"score":0.2,"reason":"weak"}`
		if strings.Contains(req.user(), "good") {
			verdict = `{"score":0.9,"reason":"fine"}`
		}
		antToolReply(w, verdict, f.usage(req))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// usage writes the rubric to the cache the first time it is seen and reads
// it after.
func (f *antFake) usage(req antReq) string {
	key := ""
	if len(req.System) > 0 {
		key = req.System[0].Text
	}
	f.mu.Lock()
	hit := f.cached[key]
	f.cached[key] = true
	f.mu.Unlock()
	if hit {
		return fmt.Sprintf(`{"input_tokens":%d,"cache_read_input_tokens":%d,"cache_creation_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":%d}`, antInput, antRubric, antOutput)
	}
	return fmt.Sprintf(`{"input_tokens":%d,"cache_read_input_tokens":0,"cache_creation_input_tokens":%d,"cache_creation":{"ephemeral_5m_input_tokens":%d,"ephemeral_1h_input_tokens":0},"output_tokens":%d}`, antInput, antRubric, antRubric, antOutput)
}

func antToolReply(w http.ResponseWriter, input, usage string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"tool_use","id":"toolu_1","name":"verdict","input":%s}],"stop_reason":"tool_use","stop_sequence":null,"usage":%s}`, input, usage)
}

func antTextReply(w http.ResponseWriter, text, usage string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"text","text":%q}],"stop_reason":"end_turn","usage":%s}`, text, usage)
}

func antErrorReply(w http.ResponseWriter, status int, typ, msg string, retryAfter string) {
	w.Header().Set("Content-Type", "application/json")
	if retryAfter != "" {
		w.Header().Set("retry-after", retryAfter)
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"error","error":{"type":%q,"message":%q}}`, typ, msg)
}

// Costs at claude-haiku-4.5's list prices ($1 input, $0.10 cache read,
// $1.25 5-minute write, $5 output per 1M tokens), in nano-dollars:
// the first call writes the rubric to the cache, later ones read it.
const (
	antFirstCost = pricing.Money(antInput*1000 + antRubric*1250 + antOutput*5000) // $0.0018
	antLaterCost = pricing.Money(antInput*1000 + antRubric*100 + antOutput*5000)  // $0.00042
)

// antRubricText is a rubric long enough to be cached (and for the fake's
// usage to fit the request's bound).
var antRubricText = strings.Repeat("Judge whether the answer is correct, complete and clear. ", 100)

func antConfig(rubric string) string {
	return fmt.Sprintf(`
judges:
  claude: {provider: anthropic, model: claude-haiku-4-5}
metrics:
  - {name: quality, type: judge, judge: claude, prompt: %q}
`, rubric)
}

// antOpts are e.opts pointed at the fake through ANTHROPIC_BASE_URL, with
// the Anthropic key and no --base-url.
func antOpts(e *env, f *antFake, cfg *Config, files ...string) Options {
	o := e.opts(cfg, files...)
	o.BaseURL = ""
	o.HTTPClient = f.srv.Client()
	o.Getenv = func(k string) string {
		return map[string]string{"ANTHROPIC_API_KEY": antKey, "ANTHROPIC_BASE_URL": f.srv.URL}[k]
	}
	return o
}

func TestAnthropicRequestShape(t *testing.T) {
	f := newAntFake(t, func(n int64, req antReq, w http.ResponseWriter, r *http.Request) bool {
		// A short rubric is below the minimum cacheable size: no cache usage.
		antToolReply(w, `{"score": 0.8, "reason": "solid"}`, `{"input_tokens":90,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":25}`)
		return true
	})
	e := newEnv(t, nil)
	cfg := e.config(antConfig("Rate the answer."))
	res, rows := e.run(antOpts(e, f, cfg, e.file("r.jsonl", nRecords(1))))

	if f.requests.Load() != 1 || e.fake.requests.Load() != 0 {
		t.Fatalf("requests: anthropic %d, openai %d", f.requests.Load(), e.fake.requests.Load())
	}
	if f.paths[0] != "POST /v1/messages" {
		t.Errorf("path %q", f.paths[0])
	}
	h := f.headers[0]
	if h.Get("x-api-key") != antKey || h.Get("anthropic-version") != "2023-06-01" || h.Get("content-type") != "application/json" || h.Get("Authorization") != "" {
		t.Errorf("headers %v", h)
	}
	user, _ := json.Marshal("## Input\nquestion 0\n\n## Output\na good answer 0\n\n" + AnswerInstruction)
	want := `{
	  "model": "claude-haiku-4-5",
	  "max_tokens": 256,
	  "temperature": 0,
	  "system": [{"type": "text", "text": "Rate the answer.", "cache_control": {"type": "ephemeral"}}],
	  "messages": [{"role": "user", "content": ` + string(user) + `}],
	  "tools": [{
	    "name": "verdict",
	    "description": "Record the verdict on the output: a score from 0 to 1 (1 is best) and one short sentence of reason.",
	    "input_schema": {"type": "object", "properties": {
	      "score": {"type": "number", "description": "from 0 to 1, where 1 is best"},
	      "reason": {"type": "string", "description": "one short sentence"}},
	      "required": ["score", "reason"]}
	  }],
	  "tool_choice": {"type": "tool", "name": "verdict"}
	}`
	var got, exp any
	if err := json.Unmarshal(f.raw[0], &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("request body:\n%s\nwant:\n%s", f.raw[0], want)
	}
	// The tool call's input is the verdict.
	if len(rows) != 1 || rows[0].Status != StatusPass || *rows[0].Score != 0.8 || rows[0].Reason != "solid" ||
		rows[0].InputTokens != 90 || rows[0].CachedTokens != 0 || rows[0].OutputTokens != 25 || rows[0].Cost != 90*1000+25*5000 {
		t.Errorf("row %+v", rows)
	}
	if res.Cost != 90*1000+25*5000 || res.Requests != 1 {
		t.Errorf("cost %s requests %d", res.Cost, res.Requests)
	}
}

func TestAnthropicRunCacheWritesThenReads(t *testing.T) {
	f := newAntFake(t, nil)
	e := newEnv(t, nil)
	cfg := e.config(antConfig(antRubricText))
	file := e.file("r.jsonl", nRecords(3))
	o := antOpts(e, f, cfg, file)
	o.Concurrency = 1 // the first record is the one that writes the cache
	res, rows := e.run(o)

	if want := "r000 quality pass 0.9 cached=false\nr001 quality pass 0.9 cached=false\nr002 quality pass 0.9 cached=false\n"; brief(rows) != want {
		t.Fatalf("rows:\n%s", brief(rows))
	}
	// Every request carries the rubric as a cached system block.
	for i, r := range f.reqs {
		if len(r.System) != 1 || r.System[0].Text != antRubricText || r.System[0].CacheControl == nil || r.System[0].CacheControl.Type != "ephemeral" {
			t.Errorf("request %d system %+v", i, r.System)
		}
	}
	first, later := rows[0], rows[1:]
	if first.InputTokens != antInput+antRubric || first.CachedTokens != 0 || first.OutputTokens != antOutput || first.Cost != antFirstCost {
		t.Errorf("first row %+v, want cost %s", first, antFirstCost)
	}
	for _, r := range later {
		if r.InputTokens != antInput+antRubric || r.CachedTokens != antRubric || r.OutputTokens != antOutput || r.Cost != antLaterCost {
			t.Errorf("row %+v, want cost %s", r, antLaterCost)
		}
	}
	total := antFirstCost + 2*antLaterCost // $0.00264
	if res.Cost != total || res.Requests != 3 || res.Calls != 3 || res.Errors != 0 || res.Flagged != 0 {
		t.Errorf("cost %s (want %s) requests %d calls %d errors %d flagged %d", res.Cost, total, res.Requests, res.Calls, res.Errors, res.Flagged)
	}
	n, cost, _ := e.ledgerSum(res.RunID)
	var in, reads, w5, w1 int64
	if err := e.db.SQL().QueryRow(`SELECT SUM(input_tokens), SUM(cached_tokens), SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens) FROM events WHERE run_id=?`, res.RunID).Scan(&in, &reads, &w5, &w1); err != nil {
		t.Fatal(err)
	}
	if n != 3 || cost != total || in != 3*(antInput+antRubric) || reads != 2*antRubric || w5 != antRubric || w1 != 0 {
		t.Errorf("ledger: %d events, cost %s, input %d, reads %d, writes %d/%d", n, cost, in, reads, w5, w1)
	}

	// A rerun is all judge-cache hits: nothing sent. The cache key holds the
	// provider, so an openai judge with the same model and prompt misses.
	res2, _ := e.run(o)
	if res2.CacheHits != 3 || res2.Requests != 0 || f.requests.Load() != 3 {
		t.Errorf("rerun: hits %d requests %d (server saw %d)", res2.CacheHits, res2.Requests, f.requests.Load())
	}
	// What the reuse avoided is what the three calls cost, the first one's
	// cache writes at the write rate (the judge cache keeps them).
	if res2.AvoidedCache != total {
		t.Errorf("rerun avoided %s, want %s", res2.AvoidedCache, total)
	}
	j := *cfg.Judges["claude"]
	oj := j
	oj.Provider = ""
	if CacheKey(f.srv.URL, &j, "r", "u") == CacheKey(f.srv.URL, &oj, "r", "u") {
		t.Error("an anthropic judge shares the openai cache key")
	}
}

func TestAnthropicRetries(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	f := newAntFake(t, nil)
	f.reply = func(n int64, req antReq, w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		seen[req.user()]++
		k := seen[req.user()]
		mu.Unlock()
		switch {
		case strings.Contains(req.user(), "question 0") && k == 1:
			antErrorReply(w, 529, "overloaded_error", "Overloaded", "3")
			return true
		case strings.Contains(req.user(), "question 1") && k == 1:
			antErrorReply(w, 429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", "7")
			return true
		case strings.Contains(req.user(), "question 2") && k == 1:
			// The connection drops before an answer: a network retry with backoff.
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return true
		}
		return false
	}
	e := newEnv(t, nil)
	cfg := e.config(antConfig(antRubricText))
	o := antOpts(e, f, cfg, e.file("r.jsonl", nRecords(3)))
	res, rows := e.run(o)
	if want := "r000 quality pass 0.9 cached=false\nr001 quality pass 0.9 cached=false\nr002 quality pass 0.9 cached=false\n"; brief(rows) != want {
		t.Fatalf("rows:\n%s", brief(rows))
	}
	if want := map[string]int64{Retry5xx: 1, Retry429: 1, RetryNetwork: 1}; !reflect.DeepEqual(res.Retries, want) {
		t.Errorf("retries %v, want %v", res.Retries, want)
	}
	if res.Requests != 6 || res.Calls != 3 || res.Cost != antFirstCost+2*antLaterCost {
		t.Errorf("requests %d calls %d cost %s", res.Requests, res.Calls, res.Cost)
	}
	// retry-after honoured (3 s and 7 s); the dropped connection backs off.
	// These are the pauses the runner asked of the injected Sleep (nothing
	// waits): a backoff is at most the options' BackoffMax.
	var after []time.Duration
	backoffs := 0
	for _, d := range e.sleeps {
		if d >= time.Second {
			after = append(after, d)
		} else if d > 0 && d <= o.BackoffMax {
			backoffs++
		}
	}
	if len(e.sleeps) != 3 || backoffs != 1 || len(after) != 2 || after[0]+after[1] != 10*time.Second || after[0] != 3*time.Second && after[0] != 7*time.Second {
		t.Errorf("sleeps %v", e.sleeps)
	}
}

func TestAnthropicFatalAndErrorRow(t *testing.T) {
	f := newAntFake(t, func(n int64, req antReq, w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(req.user(), "question 0") {
			antErrorReply(w, 400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum", "")
			return true
		}
		// The server echoes the key: it must not reach any output.
		antErrorReply(w, 401, "authentication_error", "invalid x-api-key "+antKey, "")
		return true
	})
	e := newEnv(t, nil)
	cfg := e.config(antConfig(antRubricText))
	o := antOpts(e, f, cfg, e.file("r.jsonl", nRecords(3)))
	o.Concurrency = 1
	var out bytes.Buffer
	o.Out = &out
	res, err := Run(context.Background(), o)
	var fe *FatalError
	const wantErr = "the Anthropic endpoint refused the API key (HTTP 401 authentication_error: invalid x-api-key [REDACTED]); check ANTHROPIC_API_KEY or the judge's api_key_env"
	if !errors.As(err, &fe) || err.Error() != wantErr {
		t.Fatalf("err = %v\nwant %s", err, wantErr)
	}
	rows := parseRows(t, out.Bytes())
	if got := brief(rows); got != "r000 quality error - cached=false\nr001 quality not_run - cached=false\nr002 quality not_run - cached=false\n" {
		t.Errorf("rows:\n%s", got)
	}
	if rows[0].Error != "judge endpoint HTTP 400 invalid_request_error: prompt is too long: 250000 tokens > 200000 maximum" {
		t.Errorf("error row %q", rows[0].Error)
	}
	// Neither the 400 nor the 401 is retried; nothing is billed; the third
	// record is never sent.
	if res.Stop != StopFatal || res.Requests != 2 || f.requests.Load() != 2 || len(res.Retries) != 0 || len(e.sleeps) != 0 || res.Cost != 0 {
		t.Errorf("stop %q requests %d/%d retries %v sleeps %v cost %s", res.Stop, res.Requests, f.requests.Load(), res.Retries, e.sleeps, res.Cost)
	}
	if strings.Contains(out.String()+err.Error(), antKey) || strings.Contains(out.String()+err.Error(), "SECRET") {
		t.Error("API key leaked")
	}
}

// A reply without the verdict tool call is an unreadable reply: one repair
// turn, then an error row.
func TestAnthropicNoToolUse(t *testing.T) {
	f := newAntFake(t, nil)
	f.reply = func(n int64, req antReq, w http.ResponseWriter, r *http.Request) bool {
		repair := len(req.Messages) > 1
		switch {
		case strings.Contains(req.user(), "question 0") && !repair:
			antTextReply(w, "The answer looks fine to me.", f.usage(req))
			return true
		case strings.Contains(req.user(), "question 1") && !repair:
			// No content at all.
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"type":"message","role":"assistant","content":[],"stop_reason":"end_turn","usage":%s}`, f.usage(req))
			return true
		case strings.Contains(req.user(), "question 1"):
			antTextReply(w, "Still no tool.", f.usage(req))
			return true
		}
		return false
	}
	e := newEnv(t, nil)
	cfg := e.config(antConfig(antRubricText))
	o := antOpts(e, f, cfg, e.file("r.jsonl", nRecords(2)))
	o.Concurrency = 1
	res, rows := e.run(o)
	if got := brief(rows); got != "r000 quality pass 0.9 cached=false\nr001 quality error - cached=false\n" {
		t.Fatalf("rows:\n%s", got)
	}
	if rows[1].Error != "unreadable judge reply after one repair retry: no JSON object in the reply" {
		t.Errorf("error %q", rows[1].Error)
	}
	if res.Requests != 4 || res.Retries[RetryRepair] != 2 || res.Cost != antFirstCost+3*antLaterCost {
		t.Errorf("requests %d retries %v cost %s", res.Requests, res.Retries, res.Cost)
	}
	// The repair turns: the unreadable text (or a stand-in for an empty
	// reply) as the assistant's turn, the instruction as the user's, and the
	// tool still forced.
	var repairs []antReq
	for _, r := range f.reqs {
		if len(r.Messages) > 1 {
			repairs = append(repairs, r)
		}
	}
	if len(repairs) != 2 {
		t.Fatalf("%d repair requests", len(repairs))
	}
	for i, wantReply := range []string{"The answer looks fine to me.", "(no verdict)"} {
		m := repairs[i].Messages
		if len(m) != 3 || m[1].Role != "assistant" || m[1].Content != wantReply || m[2].Role != "user" ||
			!strings.HasPrefix(m[2].Content, "Your reply could not be read (") || repairs[i].ToolChoice == nil || repairs[i].ToolChoice.Name != "verdict" {
			t.Errorf("repair %d: %+v", i, repairs[i])
		}
	}
}

// The budget reserves the dearest way the prompt can be billed: for Haiku
// 4.5, 1-hour cache writes ($2/M) over plain input ($1/M) and 5-minute
// writes ($1.25/M).
func TestAnthropicBudgetReservesWorstCase(t *testing.T) {
	f := newAntFake(t, nil)
	e := newEnv(t, nil)
	cfg := e.config(antConfig(antRubricText))
	file := e.file("r.jsonl", nRecords(3))
	o := antOpts(e, f, cfg, file)
	o.Concurrency = 1

	jc, err := newJudgeClient(cfg.Judges["claude"], f.srv.URL, antKey, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Metrics[0]
	bound := jc.provider.PromptBound(Prompt{System: m.Prompt, User: "## Input\nquestion 1\n\n## Output\na good answer 1\n\n" + AnswerInstruction})
	wu, worst := jc.worst(bound)
	if wu != (pricing.Usage{InputTokens: bound, CacheWrite1hTokens: bound, OutputTokens: 256}) || worst != pricing.Money(bound*2000+256*5000) {
		t.Fatalf("worst %+v %s", wu, worst)
	}
	// Room for the first call and a 5-minute-write reservation, not a
	// 1-hour one: the second call is not sent.
	worst5m := pricing.Money(bound*1250 + 256*5000)
	o.MaxCost = antFirstCost + worst - 1
	if antFirstCost+worst5m > o.MaxCost {
		t.Fatal("test cap does not tell the worst cases apart")
	}
	res, rows := e.run(o)
	if res.Stop != StopBudget || res.Requests != 1 || res.Cost != antFirstCost || res.Cost > o.MaxCost {
		t.Errorf("stop %q requests %d cost %s rows\n%s", res.Stop, res.Requests, res.Cost, brief(rows))
	}
}

func TestAnthropicDryRun(t *testing.T) {
	f := newAntFake(t, nil)
	e := newEnv(t, nil)
	cfg := e.config(antConfig(antRubricText))
	o := antOpts(e, f, cfg, e.file("r.jsonl", nRecords(3)))
	o.Getenv = func(string) string { return "" } // no key needed
	o.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		t.Errorf("HTTP request to %s", r.URL)
		return nil, errors.New("no HTTP in a dry run")
	})}
	dr, err := DryRun(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if f.requests.Load() != 0 || len(dr.Metrics) != 1 {
		t.Fatalf("requests %d metrics %d", f.requests.Load(), len(dr.Metrics))
	}
	jc, _ := newJudgeClient(cfg.Judges["claude"], DefaultAnthropicBaseURL, "", nil, nil)
	var prompt int64
	var high pricing.Money
	for i := range 3 {
		p := jc.provider.PromptTokens(Prompt{System: antRubricText, User: fmt.Sprintf("## Input\nquestion %d\n\n## Output\na good answer %d\n\n%s", i, i, AnswerInstruction)})
		prompt += p
		_, w := jc.worst(p)
		high += w
	}
	dm := dr.Metrics[0]
	if dm.CallsMax != 3 || dm.CallsMin != 3 || dm.PromptTokens != prompt || dm.CostHigh != high || dr.CostHigh != high || dm.CostLow == 0 {
		t.Errorf("dry run %+v, want prompt %d high %s", dm, prompt, high)
	}
	// The count includes the tool definition and Anthropic's tool prompt.
	if prompt <= 3*int64(len(antRubricText))/8 {
		t.Errorf("prompt tokens %d", prompt)
	}
}

func TestAnthropicUsageMapping(t *testing.T) {
	for _, c := range []struct {
		usage string
		want  pricing.Usage
		has   bool
	}{
		{`{"input_tokens":10,"output_tokens":5}`, pricing.Usage{InputTokens: 10, OutputTokens: 5}, true},
		{`{"input_tokens":10,"cache_read_input_tokens":100,"output_tokens":5}`, pricing.Usage{InputTokens: 110, CachedInputTokens: 100, OutputTokens: 5}, true},
		// A bare cache_creation_input_tokens is 5-minute writes.
		{`{"input_tokens":10,"cache_creation_input_tokens":300,"output_tokens":5}`, pricing.Usage{InputTokens: 310, CacheWrite5mTokens: 300, OutputTokens: 5}, true},
		{`{"input_tokens":10,"cache_creation_input_tokens":300,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},"output_tokens":5}`,
			pricing.Usage{InputTokens: 310, CacheWrite5mTokens: 100, CacheWrite1hTokens: 200, OutputTokens: 5}, true},
		// Writes the split does not account for are 5-minute writes.
		{`{"input_tokens":10,"cache_creation_input_tokens":350,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},"output_tokens":5}`,
			pricing.Usage{InputTokens: 360, CacheWrite5mTokens: 150, CacheWrite1hTokens: 200, OutputTokens: 5}, true},
		{`{}`, pricing.Usage{}, false},
		{`null`, pricing.Usage{}, false},
	} {
		var u *anthropicUsage
		if err := json.Unmarshal([]byte(c.usage), &u); err != nil {
			t.Fatal(err)
		}
		got, has := u.usage()
		if got != c.want || has != c.has {
			t.Errorf("%s: %+v %v, want %+v %v", c.usage, got, has, c.want, c.has)
		}
	}
}

func TestAnthropicClassify(t *testing.T) {
	now := time.Date(2025, 12, 2, 10, 0, 0, 0, time.UTC)
	price, err := pricing.MustDefault().Lookup("claude-haiku-4-5")
	if err != nil {
		t.Fatal(err)
	}
	j := &Judge{Name: "claude", Provider: ProviderAnthropic, Model: "claude-haiku-4-5", MaxTokens: 256, Price: price}
	p, err := newAnthropicProvider(ProviderConfig{Judge: j, BaseURL: DefaultAnthropicBaseURL, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		err    *anthropicError
		action Action
		cause  string
		after  time.Duration
		msg    string
	}{
		{&anthropicError{status: 529, errType: "overloaded_error", msg: "Overloaded", retryAfter: "2"}, ActRetry, Retry5xx, 2 * time.Second, "judge endpoint HTTP 529 overloaded_error: Overloaded"},
		{&anthropicError{status: 500, errType: "api_error", msg: "Internal server error"}, ActRetry, Retry5xx, 0, "judge endpoint HTTP 500 api_error: Internal server error"},
		{&anthropicError{status: 429, errType: "rate_limit_error", msg: "slow down", retryAfter: now.Add(time.Minute).Format(http.TimeFormat)}, ActRetry, Retry429, time.Minute, "judge endpoint HTTP 429 rate_limit_error: slow down"},
		{&anthropicError{status: 408, msg: "Request Timeout"}, ActRetry, RetryNetwork, 0, "judge endpoint HTTP 408: Request Timeout"},
		{&anthropicError{status: 400, errType: "invalid_request_error", msg: "max_tokens: field required"}, ActFail, "", 0, "judge endpoint HTTP 400 invalid_request_error: max_tokens: field required"},
		{&anthropicError{status: 413, errType: "request_too_large", msg: "Request exceeds the maximum allowed number of bytes."}, ActFail, "", 0, "judge endpoint HTTP 413 request_too_large: Request exceeds the maximum allowed number of bytes."},
		{&anthropicError{status: 403, errType: "permission_error", msg: "no access to this model"}, ActStop, "", 0, "the Anthropic endpoint refused the API key (HTTP 403 permission_error: no access to this model); check ANTHROPIC_API_KEY or the judge's api_key_env"},
		{&anthropicError{status: 404, errType: "not_found_error", msg: "model: claude-nope"}, ActStop, "", 0, "the Anthropic endpoint answered HTTP 404 not_found_error: model: claude-nope; check the judge's model and base_url (or ANTHROPIC_BASE_URL)"},
		{&anthropicError{status: 400, errType: "invalid_request_error", msg: "Your credit balance is too low to access the Anthropic API."}, ActStop, "", 0, "the Anthropic endpoint says the account cannot be billed (HTTP 400 invalid_request_error: Your credit balance is too low to access the Anthropic API.): add credit or use another key; results so far are saved"},
		{&anthropicError{err: errors.New("connection reset by peer")}, ActRetry, RetryNetwork, 0, "judge call failed: connection reset by peer"},
	} {
		f := p.Classify(c.err)
		if f.Action != c.action || f.Cause != c.cause || f.After != c.after || f.HasAfter != (c.after != 0) || f.Err.Error() != c.msg {
			t.Errorf("%v: %+v (%v)", c.err, f, f.Err)
		}
	}
}

// With json_mode: false no tool is sent and the verdict is read from the
// reply's text, as for an OpenAI judge.
func TestAnthropicTextMode(t *testing.T) {
	f := newAntFake(t, func(n int64, req antReq, w http.ResponseWriter, r *http.Request) bool {
		antTextReply(w, "```json\n{\"score\": 0.6, \"reason\": \"ok\"}\n```", `{"input_tokens":90,"output_tokens":25}`)
		return true
	})
	e := newEnv(t, nil)
	cfg := e.config(`
judges:
  claude: {provider: anthropic, model: claude-haiku-4-5, json_mode: false}
metrics:
  - {name: quality, type: judge, judge: claude, prompt: Rate the answer.}
`)
	_, rows := e.run(antOpts(e, f, cfg, e.file("r.jsonl", nRecords(1))))
	if brief(rows) != "r000 quality pass 0.6 cached=false\n" {
		t.Errorf("rows:\n%s", brief(rows))
	}
	if bytes.Contains(f.raw[0], []byte(`"tools"`)) || bytes.Contains(f.raw[0], []byte(`"tool_choice"`)) || !bytes.Contains(f.raw[0], []byte(`"cache_control":{"type":"ephemeral"}`)) {
		t.Errorf("request %s", f.raw[0])
	}
}

// A redirect is not followed (x-api-key would go with it): the run stops.
func TestAnthropicRedirectStops(t *testing.T) {
	other := newAntFake(t, nil)
	f := newAntFake(t, func(n int64, req antReq, w http.ResponseWriter, r *http.Request) bool {
		http.Redirect(w, r, other.srv.URL+"/v1/messages?api-key=abc", http.StatusTemporaryRedirect)
		return true
	})
	e := newEnv(t, nil)
	cfg := e.config(antConfig("Rate the answer."))
	o := antOpts(e, f, cfg, e.file("r.jsonl", nRecords(2)))
	o.Concurrency = 1
	res, err := Run(context.Background(), o)
	want := "the Anthropic endpoint answered HTTP 307: redirected to " + other.srv.URL + "/v1/messages, which a judge does not follow (the API key would go with it); set base_url or ANTHROPIC_BASE_URL to the final URL"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if other.requests.Load() != 0 || res.Requests != 1 || res.Stop != StopFatal {
		t.Errorf("followed: %d, requests %d, stop %q", other.requests.Load(), res.Requests, res.Stop)
	}
}

func TestAnthropicBadBaseURL(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config(`
judges:
  claude: {provider: anthropic, model: claude-haiku-4-5, base_url: "ftp://user:pw@example.com"}
metrics:
  - {name: quality, type: judge, judge: claude, prompt: Rate the answer.}
`)
	o := e.opts(cfg, e.file("r.jsonl", nRecords(1)))
	o.Getenv = func(k string) string { return map[string]string{"ANTHROPIC_API_KEY": antKey}[k] }
	_, err := Run(context.Background(), o)
	var ce *ConfigError
	if !errors.As(err, &ce) || err.Error() != `judge "claude": the Anthropic base URL ftp://example.com is not an http(s) URL; fix base_url or ANTHROPIC_BASE_URL` {
		t.Errorf("err = %v", err)
	}
	if e.fake.requests.Load() != 0 {
		t.Error("a request was sent")
	}
}
