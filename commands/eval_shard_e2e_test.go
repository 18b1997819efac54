package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costctl/costctl/internal/batchfake"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// runShards runs n shard processes of one eval command at once and returns
// each one's stdout, stderr and exit code.
func runShards(t *testing.T, dir string, env []string, n int, args ...string) []e2eResult {
	t.Helper()
	out := make([]e2eResult, n)
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := exec.Command(costctlBin, append(args, "--shard", fmt.Sprintf("%d/%d", i, n), "--out", fmt.Sprintf("out%d.jsonl", i))...)
			cmd.Dir, cmd.Env = dir, env
			var so, se bytes.Buffer
			cmd.Stdout, cmd.Stderr = &so, &se
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Error(err)
			}
			out[i-1] = e2eResult{Stdout: so.String(), Stderr: se.String(), Code: code}
		}(i)
	}
	wg.Wait()
	return out
}

// Three shards of one command, at once, on one ledger: every record is
// judged by exactly one of them; with --max-cost they share one budget in
// the ledger and their spend together stays within it.
func TestEvalShardsE2E(t *testing.T) {
	fake := batchfake.New(batchfake.Options{Key: batchE2EKey})
	defer fake.Close()
	dir := t.TempDir()
	writeFile(t, dir, "eval.yaml", "judges:\n  small: {model: gpt-4o-mini}\nmetrics:\n  - {name: quality, type: judge, judge: small, threshold: 0.5, prompt: Rate it.}\n")
	var b strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&b, `{"id":"r%02d","input":"question %d","output":"answer %d"}`+"\n", i, i, i*13)
	}
	writeFile(t, dir, "r.jsonl", b.String())
	db := filepath.Join(dir, "l.db")
	env := []string{"OPENAI_API_KEY=" + batchE2EKey, "OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "COSTCTL_DB=" + db, "HOME=" + dir, "PATH=" + os.Getenv("PATH"), "NO_COLOR=1"}

	res := runShards(t, dir, env, 3, "eval", "r.jsonl", "--format", "json")
	seen := map[string]int{}
	var records int64
	for i, r := range res {
		if r.Code != 0 {
			t.Fatalf("shard %d: %d\n%s", i+1, r.Code, r.Stderr)
		}
		var rep struct{ Records, Sampled int64 }
		if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
			t.Fatal(err)
		}
		records += rep.Records
		data, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("out%d.jsonl", i+1)))
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var row struct{ ID string }
			_ = json.Unmarshal([]byte(l), &row)
			seen[row.ID]++
		}
		if rep.Records == 0 || rep.Records == 60 {
			t.Fatalf("shard %d holds %d of 60 records", i+1, rep.Records)
		}
	}
	if records != 60 || len(seen) != 60 || fake.LiveCalls() != 60 {
		t.Fatalf("records %d, distinct rows %d, calls %d; want 60 each", records, len(seen), fake.LiveCalls())
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s judged %d times", id, n)
		}
	}

	// One shared cap: $0.0003 holds one call's worst case ($0.000176) with room for about 12 calls of actual spend.
	calls := fake.LiveCalls()
	db2 := filepath.Join(dir, "capped.db")
	env2 := append(append([]string{}, env[:2]...), append([]string{"COSTCTL_DB=" + db2}, env[3:]...)...)
	res = runShards(t, dir, env2, 3, "eval", "r.jsonl", "--format", "json", "--max-cost", "0.0003", "--concurrency", "4")
	stopped := 0
	for i, r := range res {
		switch r.Code {
		case 0:
		case ExitBudget:
			stopped++
		default:
			t.Fatalf("capped shard %d: %d\n%s", i+1, r.Code, r.Stderr)
		}
	}
	ro, err := ledger.OpenReadOnly(context.Background(), db2)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	tot, err := ro.Totals(context.Background(), time.Unix(0, 0), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	spent, _ := tot.Cost.Money()
	if spent > pricing.Dollars(3)/10000 || spent == 0 || stopped == 0 {
		t.Fatalf("shards spent %s together under a $0.0003 cap (%d stopped by it)", spent.Display(), stopped)
	}
	got := fake.LiveCalls() - calls
	if got >= 60 || int64(got) != tot.Calls {
		t.Fatalf("%d calls sent, %d on the ledger", got, tot.Calls)
	}
	ids := []string{}
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	t.Logf("capped shards: %d calls, %s spent of $0.0003", got, spent.Display())
}
