package evaluator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/records"
)

const testKey = "sk-test-SECRET-never-leak-0123456789"

// fake is an OpenAI-compatible chat completions server on loopback.
type fake struct {
	srv      *httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	bodies   []openai.ChatCompletionRequest
	raw      [][]byte // the request bodies as sent
	auth     []string
	// reply decides the answer to request number n (1-based).
	reply func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool
}

// Usage every successful fake reply reports: 1000 prompt tokens of which 400
// cached, 20 completion tokens.
const fakePrompt, fakeCached, fakeCompletion = 1000, 400, 20

func newFake(t testing.TB, reply func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool) *fake {
	f := &fake{reply: reply}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.requests.Add(1)
		var req openai.ChatCompletionRequest
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &req)
		f.mu.Lock()
		f.bodies = append(f.bodies, req)
		f.raw = append(f.raw, raw)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		if f.reply != nil && f.reply(n, req, w, r) {
			return
		}
		writeReply(w, defaultVerdict(req))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// defaultVerdict scores 0.9 when the output mentions "good", else 0.2.
func defaultVerdict(req openai.ChatCompletionRequest) string {
	user := req.Messages[1].Content
	if strings.Contains(user, "good") {
		return `{"score": 0.9, "reason": "fine"}`
	}
	return "```json\n{\"score\": 0.2, \"reason\": \"weak\"}\n```"
}

func writeReply(w http.ResponseWriter, content string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d}}}`,
		content, fakePrompt, fakeCompletion, fakePrompt+fakeCompletion, fakeCached)
}

// oneCallCost is fakeUsage × gpt-4o-mini's prices: 600×$0.15/M + 400×$0.075/M + 20×$0.60/M.
const oneCallCost = pricing.Money(600*150 + 400*75 + 20*600)

const testConfig = `
judges:
  small: {model: gpt-4o-mini}
metrics:
  - name: deep
    type: judge
    judge: small
    when: quality.pass
    prompt: Check the facts.
  - name: quality
    type: judge
    judge: small
    threshold: 0.5
    prompt: |
      Rate the answer's quality.
  - {name: no_ssn, type: regex, pattern: '\b\d{3}-\d{2}-\d{4}\b', expect: absent}
`

type env struct {
	t      testing.TB
	dir    string
	db     *ledger.DB
	fake   *fake
	table  *pricing.Table
	sleeps []time.Duration
	mu     sync.Mutex
}

func newEnv(t testing.TB, reply func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := ledger.Open(context.Background(), filepath.Join(dir, "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &env{t: t, dir: dir, db: db, fake: newFake(t, reply), table: pricing.MustDefault()}
}

func (e *env) file(name, content string) string {
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) config(src string) *Config {
	cfg, err := ParseConfig("eval.yaml", []byte(src), e.table)
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

func (e *env) opts(cfg *Config, files ...string) Options {
	return Options{
		Files: files, Config: cfg, DB: e.db, Table: e.table, HTTPClient: e.fake.srv.Client(),
		Getenv: func(k string) string {
			if k == "OPENAI_API_KEY" {
				return testKey
			}
			return ""
		},
		BaseURL: e.fake.srv.URL + "/v1", Concurrency: 4, MaxRetries: 3, Timeout: 5 * time.Second,
		BackoffBase: time.Millisecond, BackoffMax: 4 * time.Millisecond,
		Sleep: func(ctx context.Context, d time.Duration) error {
			e.mu.Lock()
			e.sleeps = append(e.sleeps, d)
			e.mu.Unlock()
			return ctx.Err()
		},
		Rand: mrand.New(mrand.NewPCG(1, 2)),
		Now:  func() time.Time { return time.Date(2025, 12, 2, 10, 0, 0, 0, time.UTC) },
	}
}

func (e *env) run(o Options) (*Result, []Row) {
	e.t.Helper()
	var out bytes.Buffer
	o.Out = &out
	res, err := Run(context.Background(), o)
	if err != nil {
		e.t.Fatalf("Run: %v", err)
	}
	return res, parseRows(e.t, out.Bytes())
}

func parseRows(t testing.TB, b []byte) []Row {
	var rows []Row
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var r Row
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("row %s: %v", l, err)
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, k int) bool {
		if rows[i].ID != rows[k].ID {
			return rows[i].ID < rows[k].ID
		}
		return rows[i].Metric < rows[k].Metric
	})
	return rows
}

func (e *env) ledgerSum(run string) (n int64, cost, avoided pricing.Money) {
	e.t.Helper()
	var c, a int64
	err := e.db.SQL().QueryRow(`SELECT COUNT(*), COALESCE(SUM(cost_dollars * 1000000000 + cost_pico / 1000),0), COALESCE(SUM(avoided_nano),0) FROM events WHERE source='eval' AND (?='' OR run_id=?)`, run, run).Scan(&n, &c, &a)
	if err != nil {
		e.t.Fatal(err)
	}
	return n, pricing.Money(c), pricing.Money(a)
}

func brief(rows []Row) string {
	var b strings.Builder
	for _, r := range rows {
		score := "-"
		if r.Score != nil {
			score = fmt.Sprint(*r.Score)
		}
		fmt.Fprintf(&b, "%s %s %s %s cached=%v\n", r.ID, r.Metric, r.Status, score, r.Cached)
	}
	return b.String()
}

const threeRecords = `{"id":"a","input":"q1","output":"a good answer"}
{"id":"b","input":"q2","output":"bad, call 123-45-6789"}
not json
{"id":"c","input":"q3","output":"good too","expected":"x","context":["p1"]}
`

func TestScoresCascadeCacheAndLedger(t *testing.T) {
	e := newEnv(t, nil)
	f := e.file("r.jsonl", threeRecords)
	cfg := e.config(testConfig)
	if got := []string{cfg.Order[0].Name, cfg.Order[1].Name, cfg.Order[2].Name}; strings.Join(got, ",") != "no_ssn,quality,deep" {
		t.Fatalf("order = %v", got)
	}
	var bad []string
	o := e.opts(cfg, f)
	o.BadLine = func(le *records.LineError) { bad = append(bad, le.Error()) }
	res, rows := e.run(o)
	want := `a deep pass 0.9 cached=false
a no_ssn pass 1 cached=false
a quality pass 0.9 cached=false
b deep skipped - cached=false
b no_ssn fail 0 cached=false
b quality fail 0.2 cached=false
c deep pass 0.9 cached=false
c no_ssn pass 1 cached=false
c quality pass 0.9 cached=false
`
	if got := brief(rows); got != want {
		t.Errorf("rows:\n%s\nwant:\n%s", got, want)
	}
	if len(bad) != 1 || bad[0] != f+":3: invalid JSON: invalid character 'o' in literal null (expecting 'u')" {
		t.Errorf("bad lines = %q", bad)
	}
	if e.fake.requests.Load() != 5 || res.Calls != 5 || res.Records != 3 || res.BadLines != 1 {
		t.Errorf("requests=%d calls=%d records=%d bad=%d", e.fake.requests.Load(), res.Calls, res.Records, res.BadLines)
	}
	// Exact money: 5 calls × usage × price, cached tokens at the cached price.
	if res.Cost != 5*oneCallCost {
		t.Errorf("cost = %s, want %s", res.Cost, 5*oneCallCost)
	}
	n, cost, _ := e.ledgerSum(res.RunID)
	if n != 5 || cost != 5*oneCallCost {
		t.Errorf("ledger: %d rows, %s", n, cost)
	}
	// The skipped call is valued at its prompt (counted locally) × $0.15/M
	// plus the run's mean reply for that metric (20 tokens) × $0.60/M — not
	// at the worst-case max_tokens reservation.
	promptPart := res.AvoidedSkip - 20*600
	if promptPart <= 0 || promptPart%150 != 0 || promptPart/150 < 50 || promptPart/150 > 400 {
		t.Errorf("avoided by the skip = %s (prompt part %d nano-dollars), want ≈ prompt × $0.15/M + 20 × $0.60/M", res.AvoidedSkip, promptPart)
	}
	// The request: rubric verbatim as system, the documented layout, JSON mode, max_tokens.
	e.fake.mu.Lock()
	req := e.fake.bodies[0]
	auth := e.fake.auth[0]
	e.fake.mu.Unlock()
	if req.Messages[0].Role != "system" || req.Messages[0].Content != "Rate the answer's quality.\n" {
		t.Errorf("system = %q", req.Messages[0].Content)
	}
	//lint:ignore SA1019 the judge sends max_tokens to non-reasoning models (judge_openai.go)
	if req.ResponseFormat == nil || req.ResponseFormat.Type != "json_object" || req.MaxTokens != 256 || req.Model != "gpt-4o-mini" {
		t.Errorf("request = %+v", req)
	}
	if auth != "Bearer "+testKey {
		t.Errorf("auth header = %q", auth)
	}
	wantUser := "## Input\nq3\n\n## Output\ngood too\n\n## Expected\nx\n\n## Context\n[1] p1\n\n" + AnswerInstruction
	found := false
	for _, b := range e.fake.bodies {
		if b.Messages[1].Content == wantUser {
			found = true
		}
	}
	if !found {
		t.Errorf("no request with the documented user layout %q", wantUser)
	}
	m := res.Metrics[1]
	if m.Name != "quality" || m.Passed != 2 || m.Failed != 1 || m.Calls != 3 {
		t.Errorf("quality stats = %+v", m)
	}

	// Rerun: zero requests, every judge row from the cache, $0 with avoided cost.
	res2, rows2 := e.run(e.opts(cfg, f))
	if got := e.fake.requests.Load(); got != 5 {
		t.Errorf("rerun sent %d requests", got-5)
	}
	if res2.CacheHits != 5 || res2.Cost != 0 || res2.AvoidedCache != 5*oneCallCost {
		t.Errorf("rerun: hits=%d cost=%s avoided=%s", res2.CacheHits, res2.Cost, res2.AvoidedCache)
	}
	if strings.ReplaceAll(brief(rows2), "cached=true", "cached=false") != want {
		t.Errorf("rerun rows differ:\n%s", brief(rows2))
	}
	n, cost, avoided := e.ledgerSum(res2.RunID)
	if n != 5 || cost != 0 || avoided != 5*oneCallCost {
		t.Errorf("rerun ledger: %d rows, cost %s avoided %s", n, cost, avoided)
	}

	// A new threshold re-buys nothing; an edited rubric misses.
	cfg3 := e.config(strings.Replace(testConfig, "threshold: 0.5", "threshold: 0.95", 1))
	_, rows3 := e.run(e.opts(cfg3, f))
	if e.fake.requests.Load() != 5 {
		t.Errorf("threshold change sent requests")
	}
	if rows3[2].Status != "fail" || rows3[0].Status != "skipped" {
		t.Errorf("threshold 0.95 rows:\n%s", brief(rows3))
	}
	cfg4 := e.config(strings.Replace(testConfig, "Rate the answer's quality.", "Rate the answer's quality strictly.", 1))
	e.run(e.opts(cfg4, f))
	if got := e.fake.requests.Load(); got != 8 {
		t.Errorf("edited rubric: %d requests, want 3 more (5→8)", got)
	}
	// --refresh asks again; --no-cache neither reads nor writes.
	o = e.opts(cfg, f)
	o.Refresh = true
	e.run(o)
	if got := e.fake.requests.Load(); got != 13 {
		t.Errorf("refresh: requests %d, want 13", got)
	}
}

// Shards partition the records: each id in exactly one of n shards, and
// every shard gets a share.
func TestShardsPartition(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7} {
		counts := make([]int, n)
		for i := 0; i < 7000; i++ {
			id := fmt.Sprintf("rec-%d", i)
			in := 0
			for s := 1; s <= n; s++ {
				if (Shard{I: s, N: n}).Holds(id) {
					in++
					counts[s-1]++
				}
			}
			if in != 1 {
				t.Fatalf("n=%d: %s is in %d shards", n, id, in)
			}
		}
		for s, c := range counts {
			if c < 7000/n*8/10 {
				t.Fatalf("n=%d: shard %d holds %d of 7000", n, s+1, c)
			}
		}
	}
	for _, bad := range []string{"0/3", "4/3", "1/0", "a/b", "3", "1/-2"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
	if s, err := ParseShard(" 2/4 "); err != nil || s != (Shard{I: 2, N: 4}) {
		t.Errorf("ParseShard: %+v %v", s, err)
	}
}
