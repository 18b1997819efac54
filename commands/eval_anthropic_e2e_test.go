package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

const anthE2EKey = "sk-ant-e2e-SECRET-do-not-print-77"

// anthropicJudge is the Anthropic Messages API on loopback: it checks the
// key and version headers, answers with a call of the verdict tool (0.9 when
// the output says "good", else 0.1) and bills like prompt caching (the first
// request with a rubric writes 1200 tokens to the cache, later ones read
// them; 150 more input and 30 output tokens each). The first request for
// "q2" is refused as overloaded (529).
func anthropicJudge(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	var mu sync.Mutex
	cached, overloaded := map[string]bool{}, false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" || r.Header.Get("anthropic-version") != "2023-06-01" {
			w.WriteHeader(404)
			fmt.Fprintf(w, `{"type":"error","error":{"type":"not_found_error","message":"%s %s"}}`, r.Method, r.URL.Path)
			return
		}
		if k := r.Header.Get("x-api-key"); k != anthE2EKey {
			w.WriteHeader(401)
			fmt.Fprintf(w, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key %s"}}`, k)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		var req struct {
			System []struct {
				Text         string          `json:"text"`
				CacheControl json.RawMessage `json:"cache_control"`
			} `json:"system"`
			Messages   []struct{ Content string } `json:"messages"`
			ToolChoice struct{ Name string }      `json:"tool_choice"`
		}
		if json.Unmarshal(raw, &req) != nil || len(req.System) != 1 || string(req.System[0].CacheControl) != `{"type":"ephemeral"}` || req.ToolChoice.Name != "verdict" || len(req.Messages) == 0 {
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"type":"error","error":{"type":"invalid_request_error","message":"unexpected request %q"}}`, raw)
			return
		}
		user := req.Messages[0].Content
		mu.Lock()
		if strings.Contains(user, "q2") && !overloaded {
			overloaded = true
			mu.Unlock()
			w.Header().Set("retry-after", "0")
			w.WriteHeader(529)
			fmt.Fprint(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
			return
		}
		read, write := 0, 1200
		if cached[req.System[0].Text] {
			read, write = 1200, 0
		}
		cached[req.System[0].Text] = true
		mu.Unlock()
		score := "0.1"
		if strings.Contains(user, "good") {
			score = "0.9"
		}
		fmt.Fprintf(w, `{"id":"msg_e2e","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"tool_use","id":"toolu_1","name":"verdict","input":{"score":%s,"reason":"r"}}],"stop_reason":"tool_use","usage":{"input_tokens":150,"cache_read_input_tokens":%d,"cache_creation_input_tokens":%d,"cache_creation":{"ephemeral_5m_input_tokens":%d,"ephemeral_1h_input_tokens":0},"output_tokens":30}}`,
			score, read, write, write)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func anthropicE2EConfig(keyEnv string) string {
	rubric := strings.Repeat("Judge whether the answer is correct, complete and clear. ", 100)
	extra := ""
	if keyEnv != "" {
		extra = ", api_key_env: " + keyEnv
	}
	return fmt.Sprintf("judges:\n  claude: {provider: anthropic, model: claude-haiku-4-5%s}\nmetrics:\n  - {name: quality, type: judge, judge: claude, prompt: %q}\n", extra, rubric)
}

func TestEvalAnthropicE2E(t *testing.T) {
	srv, reqs := anthropicJudge(t)
	dir := t.TempDir()
	writeFile(t, dir, "eval.yaml", anthropicE2EConfig(""))
	writeFile(t, dir, "r.jsonl", e2eRecords(4))
	db := filepath.Join(dir, "l.db")
	env := []string{"ANTHROPIC_API_KEY=" + anthE2EKey, "ANTHROPIC_BASE_URL=" + srv.URL, "COSTCTL_DB=" + db}

	// Dry run: no request, no key needed.
	r := runCostctl(t, dir, "", env[1:], "eval", "r.jsonl", "--dry-run")
	if r.Code != 0 || reqs.Load() != 0 || !strings.Contains(r.Stdout, "dry run: nothing sent. records 4, sampled 4, bad lines 0") {
		t.Fatalf("dry run: code %d requests %d\n%s\n%s", r.Code, reqs.Load(), r.Stdout, r.Stderr)
	}
	// Without the key a real run stops before any request.
	r = runCostctl(t, dir, "", env[1:], "eval", "r.jsonl")
	if r.Code != ExitUsage || reqs.Load() != 0 || !strings.Contains(r.Stderr, `costctl: judge "claude": ANTHROPIC_API_KEY is not set`) {
		t.Fatalf("no key: %d %q", r.Code, r.Stderr)
	}

	// One worker: the first call writes the rubric to the cache, the other
	// three read it; q2's 529 is retried after its retry-after.
	r = runCostctl(t, dir, "", env, "eval", "r.jsonl", "--concurrency", "1", "--out", "out.jsonl", "--format", "json")
	if r.Code != 0 || reqs.Load() != 5 {
		t.Fatalf("run: code %d requests %d\n%s\n%s", r.Code, reqs.Load(), r.Stdout, r.Stderr)
	}
	var rep struct {
		Metrics []struct {
			Name   string `json:"name"`
			Passed int64  `json:"passed"`
		} `json:"metrics"`
		Total struct {
			Calls int64  `json:"calls"`
			Cost  string `json:"cost_usd"`
		} `json:"total"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, r.Stdout)
	}
	// claude-haiku-4.5 per 1M: $1 input, $0.10 cache read, $1.25 5-minute
	// write, $5 output. First: 150×1 + 1200×1.25 + 30×5 = $0.0018; later:
	// 150×1 + 1200×0.10 + 30×5 = $0.00042 each; total $0.00306.
	if rep.Total.Calls != 4 || rep.Total.Cost != "0.00306" || len(rep.Metrics) != 1 || rep.Metrics[0].Passed != 3 {
		t.Errorf("report: %+v\n%s", rep, r.Stdout)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	for _, want := range []string{
		`{"id":"r00","metric":"quality","status":"pass","score":0.9,"reason":"r","model":"claude-haiku-4-5","cached":false,"input_tokens":1350,"cached_tokens":0,"output_tokens":30,"cost_usd":"0.0018",`,
		`{"id":"r03","metric":"quality","status":"fail","score":0.1,"reason":"r","model":"claude-haiku-4-5","cached":false,"input_tokens":1350,"cached_tokens":1200,"output_tokens":30,"cost_usd":"0.00042",`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("out rows lack %s\n%s", want, out)
		}
	}

	// Rerun: every verdict from the judge cache, nothing sent.
	r = runCostctl(t, dir, "", env, "eval", "r.jsonl")
	if r.Code != 0 || reqs.Load() != 5 || !strings.Contains(r.Stdout, "cost $0.00; avoided $") {
		t.Errorf("rerun: %d requests %d\n%s%s", r.Code, reqs.Load(), r.Stdout, r.Stderr)
	}

	// A refused key (named by api_key_env) stops the run, with the key
	// the server echoed redacted.
	writeFile(t, dir, "bad.yaml", anthropicE2EConfig("CLAUDE_KEY"))
	writeFile(t, dir, "new.jsonl", strings.ReplaceAll(e2eRecords(2), `"q`, `"x`))
	r = runCostctl(t, dir, "", append(env[1:], "CLAUDE_KEY=sk-ant-wrong-SECRET-key-123"), "eval", "new.jsonl", "--config", "bad.yaml")
	if r.Code != ExitError || r.Stdout != "" || !strings.Contains(r.Stderr, "the Anthropic endpoint refused the API key (HTTP 401 authentication_error: invalid x-api-key [REDACTED]); check CLAUDE_KEY or the judge's api_key_env") {
		t.Errorf("bad key: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// The keys are in no output and not in the database.
	all := r.Stdout + r.Stderr + string(out)
	for _, name := range []string{"l.db", "l.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		all += string(b)
	}
	if strings.Contains(all, anthE2EKey) || strings.Contains(all, "SECRET") {
		t.Error("API key leaked")
	}
}
