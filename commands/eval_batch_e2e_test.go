package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/internal/batchfake"
	"github.com/costctl/costctl/ledger"
)

const batchE2EKey = "sk-batch-e2e-SECRET-do-not-print-42"

// evalRows reads an --out file as "id metric status score reason" lines,
// sorted: what a live and a batch run must agree on.
func evalRows(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			ID, Metric, Status, Reason string
			Score                      *float64
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		s := "-"
		if r.Score != nil {
			s = strings.TrimRight(strings.TrimRight(strconvF(*r.Score), "0"), ".")
		}
		out = append(out, strings.Join([]string{r.ID, r.Metric, r.Status, s, r.Reason}, " "))
	}
	sort.Strings(out)
	return out
}

func strconvF(f float64) string {
	b, _ := json.Marshal(f)
	return string(b) + ".0"
}

type evalJSON struct {
	Total struct {
		Calls int64  `json:"calls"`
		Cost  string `json:"cost_usd"`
	} `json:"total"`
	Batch *struct {
		Pending   bool  `json:"pending"`
		Rounds    int   `json:"rounds"`
		Batches   int   `json:"batches_submitted"`
		Submitted int64 `json:"requests_submitted"`
		Collected int64 `json:"results_collected"`
		Missing   int64 `json:"requests_missing"`
		Open      []struct {
			ID string `json:"id"`
		} `json:"open_batches"`
	} `json:"batch"`
}

func parseEvalJSON(t *testing.T, r e2eResult) evalJSON {
	t.Helper()
	var v evalJSON
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("json: %v\nstdout %s\nstderr %s", err, r.Stdout, r.Stderr)
	}
	return v
}

// The README's example, live and through --batch against one fake of both
// APIs: the same verdicts at half the cost, in two rounds (faithful runs
// only where helpful passed); a live rerun on the batch ledger sends
// nothing; the dry run shows both costs.
func TestEvalBatchExamplesE2E(t *testing.T) {
	fake := batchfake.New(batchfake.Options{Key: batchE2EKey, Shuffle: true, Seed: 3})
	defer fake.Close()
	dir := t.TempDir()
	ex, _ := filepath.Abs("../examples")
	env := []string{"OPENAI_API_KEY=" + batchE2EKey, "OPENAI_BASE_URL=" + fake.OpenAIBaseURL()}
	args := []string{"eval", filepath.Join(ex, "outputs.jsonl"), "--config", filepath.Join(ex, "eval.yaml"), "--format", "json"}

	r := runCostctl(t, dir, "", env, append(args[:4:4], "--dry-run", "--batch")...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "LIVE COST RANGE") || !strings.Contains(r.Stdout, "BATCH COST RANGE") || fake.LiveCalls() != 0 {
		t.Fatalf("dry run: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	live := runCostctl(t, dir, "", append(env, "COSTCTL_DB="+filepath.Join(dir, "live.db")), append(args, "--out", "live.jsonl")...)
	if live.Code != 0 {
		t.Fatalf("live: %d\n%s%s", live.Code, live.Stdout, live.Stderr)
	}
	lj := parseEvalJSON(t, live)
	liveCalls := fake.LiveCalls()

	bdb := filepath.Join(dir, "batch.db")
	batch := runCostctl(t, dir, "", append(env, "COSTCTL_DB="+bdb), append(args, "--out", "batch.jsonl", "--batch", "--poll-interval", "1ms")...)
	if batch.Code != 0 {
		t.Fatalf("batch: %d\n%s%s", batch.Code, batch.Stdout, batch.Stderr)
	}
	bj := parseEvalJSON(t, batch)
	if fake.LiveCalls() != liveCalls {
		t.Fatalf("the batch run made live calls")
	}
	if a, b := evalRows(t, filepath.Join(dir, "live.jsonl")), evalRows(t, filepath.Join(dir, "batch.jsonl")); strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatalf("verdicts differ\nlive:\n%s\nbatch:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	if bj.Batch == nil || bj.Batch.Rounds != 2 || bj.Total.Calls != lj.Total.Calls || bj.Batch.Collected != lj.Total.Calls {
		t.Fatalf("batch report %+v; live calls %d", bj, lj.Total.Calls)
	}
	// The same fake bills both: the batch run costs exactly half.
	if !halfOf(t, bj.Total.Cost, lj.Total.Cost) {
		t.Fatalf("batch cost %s, live %s", bj.Total.Cost, lj.Total.Cost)
	}
	t.Logf("examples/: live %s, batch %s (%d calls, %d rounds)", lj.Total.Cost, bj.Total.Cost, bj.Total.Calls, bj.Batch.Rounds)
	if !strings.Contains(batch.Stderr, "batch: submitted batch ") || !strings.Contains(batch.Stderr, "batch: collected batch ") || strings.Contains(batch.Stderr, batchE2EKey) {
		t.Fatalf("progress: %s", batch.Stderr)
	}

	// A live run on the batch ledger: every verdict cached.
	again := runCostctl(t, dir, "", append(env, "COSTCTL_DB="+bdb), args...)
	if again.Code != 0 || fake.LiveCalls() != liveCalls || parseEvalJSON(t, again).Total.Calls != 0 {
		t.Fatalf("live after batch: %d, %d requests\n%s", again.Code, fake.LiveCalls()-liveCalls, again.Stderr)
	}

	// eval batches lists what was submitted; the rows say batch.
	r = runCostctl(t, dir, "", []string{"COSTCTL_DB=" + bdb}, "eval", "batches", "--format", "json")
	var list struct {
		Batches []struct {
			ID, State string
			Requests  int64
		}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil || len(list.Batches) != 2 || list.Batches[0].State != "collected" {
		t.Fatalf("eval batches: %v\n%s%s", err, r.Stdout, r.Stderr)
	}
	r = runCostctl(t, dir, "", []string{"COSTCTL_DB=" + bdb}, "eval", "batches", "cancel", list.Batches[0].ID)
	if r.Code != ExitUsage || !strings.Contains(r.Stderr, "has ended and its results are collected: nothing to cancel") {
		t.Fatalf("cancel collected: %d %s", r.Code, r.Stderr)
	}
	r = runCostctl(t, dir, "", []string{"COSTCTL_DB=" + bdb}, "report", "--by", "model", "--format", "json", "--since", "30d")
	if r.Code != 0 || !strings.Contains(r.Stdout, "gpt-4o") {
		t.Fatalf("report: %s%s", r.Stdout, r.Stderr)
	}
}

// halfOf reports whether a is exactly half of b (decimal USD strings).
func halfOf(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y float64
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	return x > 0 && x*2 == y
}

// Kill the process after it submitted and rerun: nothing is submitted
// twice. Then --no-wait and cancel: the cancelled half is resubmitted by
// the next run, and only it.
func TestEvalBatchKillAndCancelE2E(t *testing.T) {
	fake := batchfake.New(batchfake.Options{Key: batchE2EKey})
	defer fake.Close()
	dir := t.TempDir()
	writeFile(t, dir, "eval.yaml", "judges:\n  small: {model: gpt-4o-mini}\nmetrics:\n  - {name: quality, type: judge, judge: small, threshold: 0.5, prompt: Rate it.}\n")
	writeFile(t, dir, "r.jsonl", e2eRecords(12))
	db := filepath.Join(dir, "l.db")
	env := []string{"OPENAI_API_KEY=" + batchE2EKey, "OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "COSTCTL_DB=" + db, "HOME=" + dir, "PATH=" + os.Getenv("PATH"), "NO_COLOR=1"}

	// A run that would wait an hour between polls: killed once its batch
	// is on the ledger with the provider's id.
	cmd := exec.Command(costctlBin, "eval", "r.jsonl", "--batch", "--poll-interval", "1h")
	cmd.Dir, cmd.Env = dir, env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	submitted := false
	for i := 0; i < 600 && !submitted; i++ {
		time.Sleep(50 * time.Millisecond) // waiting for the child; nothing is timed
		if fake.BatchesCreated() == 0 {
			continue
		}
		if ro, err := ledger.OpenReadOnly(context.Background(), db); err == nil {
			bs, _ := ro.Batches(context.Background(), true)
			submitted = len(bs) == 1 && bs[0].RemoteID != ""
			ro.Close()
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !submitted {
		t.Fatal("the batch never reached the ledger")
	}
	r := runCostctl(t, dir, "", env, "eval", "r.jsonl", "--batch", "--poll-interval", "1ms", "--format", "json")
	if r.Code != 0 || fake.BatchesCreated() != 1 || fake.MaxSubmitted() != 1 {
		t.Fatalf("rerun: %d, %d batches, max submitted %d\n%s%s", r.Code, fake.BatchesCreated(), fake.MaxSubmitted(), r.Stdout, r.Stderr)
	}
	if j := parseEvalJSON(t, r); j.Batch.Submitted != 0 || j.Batch.Collected != 12 || j.Total.Calls != 12 {
		t.Fatalf("rerun report %+v", j)
	}

	// --no-wait, then cancel: half runs, the rest is resubmitted next time.
	writeFile(t, dir, "more.jsonl", strings.ReplaceAll(e2eRecords(8), `"q`, `"m`))
	r = runCostctl(t, dir, "", env, "eval", "more.jsonl", "--batch", "--no-wait", "--format", "json", "--out", "more.out")
	j := parseEvalJSON(t, r)
	if r.Code != 0 || j.Batch == nil || !j.Batch.Pending || len(j.Batch.Open) != 1 || fake.BatchesCreated() != 2 {
		t.Fatalf("no-wait: %d %+v\n%s", r.Code, j, r.Stderr)
	}
	r = runCostctl(t, dir, "", env, "eval", "batches", "cancel", j.Batch.Open[0].ID)
	if r.Code != 0 || !strings.Contains(r.Stdout, "cancel") {
		t.Fatalf("cancel: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = runCostctl(t, dir, "", env, "eval", "more.jsonl", "--batch", "--poll-interval", "1ms", "--format", "json", "--out", "more.out")
	j = parseEvalJSON(t, r)
	if r.Code != ExitError || j.Batch.Missing == 0 || !strings.Contains(r.Stderr, "never ran: their batch expired, was cancelled or failed") {
		t.Fatalf("after cancel: %d %+v\n%s", r.Code, j, r.Stderr)
	}
	missing := j.Batch.Missing
	r = runCostctl(t, dir, "", env, "eval", "more.jsonl", "--batch", "--poll-interval", "1ms", "--format", "json")
	j = parseEvalJSON(t, r)
	if r.Code != 0 || j.Batch.Submitted != missing || fake.MaxSubmitted() != 2 {
		t.Fatalf("resubmit: %d submitted %d (missing %d), max submitted %d\n%s", r.Code, j.Batch.Submitted, missing, fake.MaxSubmitted(), r.Stderr)
	}
}
