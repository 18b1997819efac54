package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

// judgeServer is a fake OpenAI-compatible judge whose answer the test picks.
func judgeServer(t *testing.T, answer func(w http.ResponseWriter, user string)) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		var req struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		user := ""
		if len(req.Messages) > 1 {
			user = req.Messages[1].Content
		}
		answer(w, user)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func evalEnv(dir, url string) []string {
	return []string{"OPENAI_API_KEY=" + e2eKey, "OPENAI_BASE_URL=" + url + "/v1", "COSTCTL_DB=" + filepath.Join(dir, "l.db")}
}

func TestEvalGatesCannotPassOnNothing(t *testing.T) {
	srv, _ := judgeServer(t, func(w http.ResponseWriter, user string) {
		w.WriteHeader(500)
		fmt.Fprint(w, `{"error":{"message":"boom","type":"server_error"}}`)
	})
	dir := t.TempDir()
	writeFile(t, dir, "eval.yaml", e2eConfig)
	writeFile(t, dir, "r.jsonl", e2eRecords(3))
	writeFile(t, dir, "empty.jsonl", "")
	env := evalEnv(dir, srv.URL)

	// Every judge call errors: the error rows are announced even without a gate…
	r := runCostctl(t, dir, "", env, "eval", "r.jsonl", "--max-retries", "0")
	if r.Code != 0 || !strings.Contains(r.Stderr, "warning: 3 error row(s) (quality 3); first: r00 quality: judge endpoint HTTP 500: boom; a rerun asks again") {
		t.Errorf("no gate: exit %d\n%s", r.Code, r.Stderr)
	}
	// …and a pass-rate gate on them fails instead of passing on nothing.
	r = runCostctl(t, dir, "", env, "eval", "r.jsonl", "--max-retries", "0", "--min-pass-rate", "0.5")
	if r.Code != ExitGate || !strings.Contains(r.Stderr, "gate failed: quality has no scored row: all 3 evaluation(s) were errors (--min-pass-rate)") {
		t.Errorf("all errors: exit %d\n%s", r.Code, r.Stderr)
	}
	// No records at all fails the gate too.
	r = runCostctl(t, dir, "", env, "eval", "empty.jsonl", "--min-pass-rate", "0.5")
	if r.Code != ExitGate || !strings.Contains(r.Stderr, "gate failed: no record was evaluated (0 read, 0 bad line(s)); --min-pass-rate needs scored rows") {
		t.Errorf("empty input: exit %d\n%s", r.Code, r.Stderr)
	}
}

func TestEvalOutputPathsProtected(t *testing.T) {
	srv, reqs := fakeJudge(t)
	dir := t.TempDir()
	writeFile(t, dir, "eval.yaml", e2eConfig)
	input := writeFile(t, dir, "r.jsonl", e2eRecords(4))
	env := evalEnv(dir, srv.URL)
	// A ledger with something in it, and its WAL.
	if r := runCostctl(t, dir, "", env, "eval", "r.jsonl"); r.Code != 0 {
		t.Fatalf("seed run: %d %s", r.Code, r.Stderr)
	}
	ledgerBefore, _ := os.ReadFile(filepath.Join(dir, "l.db"))
	sent := reqs.Load()
	if err := os.Symlink(input, filepath.Join(dir, "link.jsonl")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", "r.jsonl"}, "--out r.jsonl is an input file; writing results there would destroy it"},
		{[]string{"--out", "link.jsonl"}, "--out link.jsonl is an input file"},
		{[]string{"--out", "./l.db"}, "--out ./l.db is the ledger (--db)"},
		{[]string{"--out", "l.db-wal"}, "--out l.db-wal is the ledger (--db)"},
		{[]string{"--junit", "l.db-shm"}, "--junit l.db-shm is the ledger (--db)"},
		{[]string{"--junit", "eval.yaml"}, "--junit eval.yaml is the eval config"},
		{[]string{"--out", "x.jsonl", "--junit", "x.jsonl"}, "--out and --junit name the same file x.jsonl"},
	} {
		r := runCostctl(t, dir, "", env, append([]string{"eval", "r.jsonl"}, tc.args...)...)
		if r.Code != ExitUsage || r.Stdout != "" || !strings.Contains(r.Stderr, tc.want) || strings.Count(r.Stderr, "\n") != 1 {
			t.Errorf("%v: exit %d stdout %q stderr %q", tc.args, r.Code, r.Stdout, r.Stderr)
		}
	}
	// An output that cannot be created fails before any call.
	r := runCostctl(t, dir, "", env, "eval", "r.jsonl", "--no-cache", "--junit", "no/such/dir/j.xml")
	if r.Code != ExitError || r.Stdout != "" || !strings.Contains(r.Stderr, "--junit no/such/dir/j.xml: no such file") {
		t.Errorf("unwritable junit: exit %d %q", r.Code, r.Stderr)
	}
	if got, _ := os.ReadFile(input); string(got) != e2eRecords(4) {
		t.Error("the input file was changed")
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "l.db")); len(after) < len(ledgerBefore) || len(after) == 0 {
		t.Error("the ledger was emptied")
	}
	if reqs.Load() != sent {
		t.Errorf("%d calls were sent by refused runs", reqs.Load()-sent)
	}
}

func TestEvalFailuresPrintNothingOnStdout(t *testing.T) {
	srv, _ := judgeServer(t, func(w http.ResponseWriter, user string) {
		w.WriteHeader(401)
		fmt.Fprint(w, `{"error":{"message":"Incorrect API key provided: sk-e2e-SE**************42","type":"invalid_request_error"}}`)
	})
	dir := t.TempDir()
	writeFile(t, dir, "eval.yaml", e2eConfig)
	writeFile(t, dir, "r.jsonl", e2eRecords(3))
	env := evalEnv(dir, srv.URL)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval", "missing.jsonl"}, ExitError, "costctl: missing.jsonl: no such file"},
		{[]string{"eval", "r.jsonl", "--config", "nope.yaml"}, ExitError, "costctl: --config nope.yaml: no such file; write a starter with: costctl eval init nope.yaml"},
		{[]string{"eval", "r.jsonl", "--format", "json"}, ExitError, "the judge endpoint refused the API key (HTTP 401"},
	} {
		r := runCostctl(t, dir, "", env, tc.args...)
		if r.Code != tc.code || r.Stdout != "" || !strings.Contains(r.Stderr, tc.want) || strings.Contains(r.Stderr, e2eKey) {
			t.Errorf("%v: exit %d stdout %q stderr %q", tc.args, r.Code, r.Stdout, r.Stderr)
		}
	}
}

func TestEvalBudgetStopJSON(t *testing.T) {
	srv, _ := judgeServer(t, func(w http.ResponseWriter, user string) {
		fmt.Fprint(w, `{"choices":[{"message":{"role":"assistant","content":"{\"score\": 0.9, \"reason\": \"r\"}"}}],"usage":{"prompt_tokens":100,"completion_tokens":20}}`)
	})
	dir := t.TempDir()
	writeFile(t, dir, "eval.yaml", e2eConfig)
	writeFile(t, dir, "r.jsonl", e2eRecords(100))
	r := runCostctl(t, dir, "", evalEnv(dir, srv.URL), "eval", "r.jsonl", "--max-cost", "0.001", "--format", "json", "--concurrency", "8")
	if r.Code != ExitBudget {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	var rep struct {
		Stop *struct {
			Reason      string `json:"reason"`
			Cap         string `json:"cap_usd"`
			Spent       string `json:"spent_usd"`
			RecordsLeft int64  `json:"records_left"`
		} `json:"stop"`
		Total struct {
			Cost  string `json:"cost_usd"`
			Calls int64  `json:"calls"`
		} `json:"total"`
		RecordsPassed int64 `json:"records_passed"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, r.Stdout)
	}
	// 100 prompt + 20 completion tokens at gpt-4o-mini prices: $0.000027 a call.
	if rep.Stop == nil || rep.Stop.Reason != "budget" || rep.Stop.Cap != "0.001" || rep.Stop.Spent != rep.Total.Cost ||
		rep.Stop.RecordsLeft == 0 || mustMoney(t, rep.Total.Cost) != pricing.Money(rep.Total.Calls*27_000) || rep.Total.Calls == 0 {
		t.Errorf("stop %+v total %+v", rep.Stop, rep.Total)
	}
}

func TestEvalOverbillExits4(t *testing.T) {
	srv, reqs := judgeServer(t, func(w http.ResponseWriter, user string) {
		// A server whose tokenizer bills 100,000 prompt tokens for a short prompt.
		fmt.Fprint(w, `{"choices":[{"message":{"role":"assistant","content":"{\"score\": 0.9, \"reason\": \"r\"}"}}],"usage":{"prompt_tokens":100000,"completion_tokens":20}}`)
	})
	dir := t.TempDir()
	writeFile(t, dir, "eval.yaml", e2eConfig)
	writeFile(t, dir, "r.jsonl", e2eRecords(50))
	r := runCostctl(t, dir, "", evalEnv(dir, srv.URL), "eval", "r.jsonl", "--max-cost", "0.01", "--concurrency", "1")
	if r.Code != ExitBudget || reqs.Load() != 1 {
		t.Fatalf("exit %d after %d requests\n%s", r.Code, reqs.Load(), r.Stderr)
	}
	want := regexp.MustCompile(`stopped sending: judge "small" billed \$0\.015012 for one call where at most \$0\.000\d+ was reserved \(prompt_tokens 100000, bound \d+; completion_tokens 20, max 256\): \$0\.01\d+ over; .*; \$0\.015012 spent \(\$0\.005012 over the \$0\.01 cap\), every call recorded as billed`)
	if !want.MatchString(r.Stderr) {
		t.Errorf("stderr:\n%s", r.Stderr)
	}
}

// After kill -9 a rerun re-buys at most the calls that were in flight: a
// paid call is on the ledger (with its verdict) before its worker moves on.
func TestEvalKill9RebuysOnlyInFlight(t *testing.T) {
	const conc, records = 4, 150
	var mu sync.Mutex
	asked := map[string]int{} // record → times asked
	var total atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		id := regexp.MustCompile(`## Input\n(q\d+)`).FindStringSubmatch(req.Messages[1].Content)[1]
		mu.Lock()
		asked[id]++
		mu.Unlock()
		total.Add(1)
		time.Sleep(10 * time.Millisecond)
		fmt.Fprint(w, `{"choices":[{"message":{"role":"assistant","content":"{\"score\": 0.9, \"reason\": \"r\"}"}}],"usage":{"prompt_tokens":100,"completion_tokens":20}}`)
	}))
	defer srv.Close()
	dir := t.TempDir()
	writeFile(t, dir, "eval.yaml", e2eConfig)
	writeFile(t, dir, "r.jsonl", e2eRecords(records))
	home := t.TempDir()
	env := append([]string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "NO_COLOR=1"}, evalEnv(dir, srv.URL)...)
	for kill := 1; kill <= 3; kill++ {
		cmd := exec.Command(costctlBin, "eval", "r.jsonl", "--concurrency", fmt.Sprint(conc))
		cmd.Dir, cmd.Env = dir, env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		target := total.Load() + 20
		deadline := time.Now().Add(30 * time.Second)
		for total.Load() < target && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("kill %d: the run ended by itself (%v): %s", kill, err, stderr.String())
		}
	}
	time.Sleep(50 * time.Millisecond) // let requests written before the kill arrive
	r := runCostctl(t, dir, "", env[3:], "eval", "r.jsonl", "--concurrency", fmt.Sprint(conc), "--format", "json")
	if r.Code != 0 {
		t.Fatalf("final run: %d %s", r.Code, r.Stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	rebought := 0
	for _, n := range asked {
		rebought += n - 1
	}
	if len(asked) != records || rebought > 3*conc {
		t.Errorf("%d records asked; %d calls re-bought after 3 kills at concurrency %d (at most %d were in flight)", len(asked), rebought, conc, 3*conc)
	}
	t.Logf("3 × kill -9 at concurrency %d: %d of %d paid calls re-bought", conc, rebought, total.Load())
	// The ledger holds every paid call but those in flight at the kills
	// (whose answers never reached costctl): $0.000027 each.
	rep := runCostctl(t, dir, "", env[3:], "report", "--by", "source", "--format", "json", "--since", "2000-01-01")
	var out struct {
		Totals struct {
			Cost string `json:"cost_usd"`
		} `json:"totals"`
	}
	if err := json.Unmarshal([]byte(rep.Stdout), &out); err != nil || mustMoney(t, out.Totals.Cost) != pricing.Money((total.Load()-int64(rebought))*27_000) {
		t.Errorf("ledger cost %s, want %d paid calls (%d sent, %d re-bought): %v", out.Totals.Cost, total.Load()-int64(rebought), total.Load(), rebought, err)
	}
}

func mustMoney(t *testing.T, s string) pricing.Money {
	t.Helper()
	m, err := pricing.ParseMoney(s)
	if err != nil {
		t.Fatalf("money %q: %v", s, err)
	}
	return m
}
