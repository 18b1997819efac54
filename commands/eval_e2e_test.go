package commands

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

const e2eKey = "sk-e2e-SECRET-do-not-print-42"

// fakeJudge is an OpenAI-compatible server on loopback: score 0.9 when the
// output says "good", else 0.1; usage 1000 prompt (400 cached) + 20 completion.
func fakeJudge(t *testing.T) (*httptest.Server, *atomic.Int64) {
	return judgeServer(t, func(w http.ResponseWriter, user string) {
		score := "0.1"
		if strings.Contains(user, "good") {
			score = "0.9"
		}
		fmt.Fprintf(w, `{"choices":[{"message":{"role":"assistant","content":"{\"score\": %s, \"reason\": \"r\"}"}}],"usage":{"prompt_tokens":1000,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":400}}}`, score)
	})
}

const e2eConfig = `judges:
  small: {model: gpt-4o-mini}
metrics:
  - {name: quality, type: judge, judge: small, prompt: Rate the answer.}
  - {name: no_ssn, type: regex, pattern: '\d{3}-\d{2}-\d{4}', expect: absent}
`

func e2eRecords(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		out := "a good answer"
		if i%4 == 3 {
			out = "meh"
		}
		fmt.Fprintf(&b, `{"id":"r%02d","input":"q%d","output":"%s %d"}`+"\n", i, i, out, i)
	}
	return b.String()
}

func TestEvalE2E(t *testing.T) {
	srv, reqs := fakeJudge(t)
	dir := t.TempDir()
	writeFile(t, dir, "eval.yaml", e2eConfig)
	writeFile(t, dir, "r.jsonl", e2eRecords(8)+"{broken\n")
	db := filepath.Join(dir, "l.db")
	env := []string{"OPENAI_API_KEY=" + e2eKey, "OPENAI_BASE_URL=" + srv.URL + "/v1", "COSTCTL_DB=" + db}

	// Dry run: no request, no key needed.
	r := runCostctl(t, dir, "", env[1:], "eval", "r.jsonl", "--dry-run")
	if r.Code != 0 || reqs.Load() != 0 || !strings.Contains(r.Stdout, "dry run: nothing sent. records 8, sampled 8, bad lines 1") || !strings.Contains(r.Stdout, "prices as of ") {
		t.Fatalf("dry run: code %d requests %d\n%s\n%s", r.Code, reqs.Load(), r.Stdout, r.Stderr)
	}
	// Without a key a real run stops before any request.
	r = runCostctl(t, dir, "", env[1:], "eval", "r.jsonl")
	if r.Code != 2 || reqs.Load() != 0 || !strings.Contains(r.Stderr, `costctl: judge "small": OPENAI_API_KEY is not set`) {
		t.Fatalf("no key: %d %q", r.Code, r.Stderr)
	}

	r = runCostctl(t, dir, "", env, "eval", "r.jsonl", "--out", "out.jsonl", "--format", "json", "--junit", "j.xml", "--min-pass-rate", "0.9")
	if r.Code != 3 || reqs.Load() != 8 {
		t.Fatalf("run: code %d requests %d\n%s\n%s", r.Code, reqs.Load(), r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "r.jsonl:9: invalid JSON") || !strings.Contains(r.Stderr, "costctl: gate failed: quality pass rate 75.0% < 90.0% (--min-pass-rate)") {
		t.Errorf("stderr: %s", r.Stderr)
	}
	var rep struct {
		Version  int    `json:"version"`
		Records  int64  `json:"records"`
		BadLines int64  `json:"bad_lines"`
		Prices   string `json:"prices_as_of"`
		Metrics  []struct {
			Name     string    `json:"name"`
			Passed   int64     `json:"passed"`
			PassRate *float64  `json:"pass_rate"`
			CI95     []float64 `json:"ci95"`
			Cost     string    `json:"cost_usd"`
		} `json:"metrics"`
		Total struct {
			Calls    int64  `json:"calls"`
			Cost     string `json:"cost_usd"`
			Baseline string `json:"baseline_usd"`
		} `json:"total"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, r.Stdout)
	}
	// 8 calls × (600×$0.15 + 400×$0.075 + 20×$0.60 per 1M) = 8 × $0.000132.
	if rep.Version != 1 || rep.Records != 8 || rep.BadLines != 1 || rep.Total.Calls != 8 || rep.Total.Cost != "0.001056" || rep.Total.Baseline != "0.001056" ||
		rep.Metrics[1].Name != "quality" || rep.Metrics[1].Passed != 6 || *rep.Metrics[1].PassRate != 0.75 || len(rep.Metrics[1].CI95) != 2 {
		t.Errorf("report: %+v", rep)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	if n := strings.Count(string(out), "\n"); n != 16 {
		t.Errorf("out rows = %d", n)
	}
	if !strings.Contains(string(out), `{"id":"r03","metric":"quality","status":"fail","score":0.1,"reason":"r","model":"gpt-4o-mini","cached":false,"input_tokens":1000,"cached_tokens":400,"output_tokens":20,"cost_usd":"0.000132",`) {
		t.Errorf("out row layout: %s", out)
	}
	junit, _ := os.ReadFile(filepath.Join(dir, "j.xml"))
	if !strings.Contains(string(junit), `<testsuite name="quality" tests="8" failures="2" errors="0" skipped="0">`) {
		t.Errorf("junit: %s", junit)
	}

	// Rerun: all cached; table output; budget cap too small for new work exits 4.
	r = runCostctl(t, dir, "", env, "eval", "r.jsonl")
	if r.Code != 0 || reqs.Load() != 8 || !strings.Contains(r.Stdout, "cost $0.00; avoided $0.001056 (cache $0.001056") {
		t.Errorf("rerun: %d requests %d\n%s%s", r.Code, reqs.Load(), r.Stdout, r.Stderr)
	}
	writeFile(t, dir, "more.jsonl", e2eRecords(30))
	r = runCostctl(t, dir, "", env, "eval", "more.jsonl", "--max-cost", "0.001", "--concurrency", "4")
	if r.Code != 4 || !strings.Contains(r.Stderr, "budget cap $0.001 reached") {
		t.Errorf("budget: code %d\n%s", r.Code, r.Stderr)
	}

	// Two processes on one DB at once.
	writeFile(t, dir, "two.jsonl", strings.ReplaceAll(e2eRecords(40), `"q`, `"x`))
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = runCostctl(t, dir, "", env, "eval", "two.jsonl", "--concurrency", "4").Code
		}()
	}
	wg.Wait()
	if codes[0] != 0 || codes[1] != 0 {
		t.Errorf("two processes: exit codes %v", codes)
	}

	// The key is in no output and not in the database.
	all := r.Stdout + r.Stderr + string(out) + string(junit)
	for _, name := range []string{"l.db", "l.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		all += string(b)
	}
	if strings.Contains(all, e2eKey) || strings.Contains(all, "SECRET") {
		t.Error("API key leaked")
	}
	if st, err := os.Stat(db); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("db mode: %v %v", st.Mode(), err)
	}
}

func TestEvalInitE2E(t *testing.T) {
	dir := t.TempDir()
	r := runCostctl(t, dir, "", nil, "eval", "init")
	if r.Code != 0 || !strings.Contains(r.Stderr, "wrote eval.yaml") {
		t.Fatalf("init: %d %s", r.Code, r.Stderr)
	}
	r = runCostctl(t, dir, "", nil, "eval", "init")
	if r.Code != 2 || r.Stderr != "costctl: eval.yaml already exists; pass --force to overwrite it\n" {
		t.Errorf("second init: %d %q", r.Code, r.Stderr)
	}
	writeFile(t, dir, "r.csv", "id,output\n1,hello\n")
	r = runCostctl(t, dir, "", nil, "eval", "r.csv", "--dry-run")
	if r.Code != 0 || !strings.Contains(r.Stdout, "helpful") {
		t.Errorf("dry run of the starter config: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = runCostctl(t, dir, "", nil, "eval", "r.csv", "--sample", "abc")
	if r.Code != 2 || !strings.HasPrefix(r.Stderr, "costctl: --sample \"abc\"") {
		t.Errorf("bad sample: %d %q", r.Code, r.Stderr)
	}
}
