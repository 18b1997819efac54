package commands

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Ctrl-C on the real binary: it stops sending, writes what is done, exits
// 130; a rerun answers what was done from the cache and finishes the rest
// without losing or duplicating a row.
func TestEvalInterruptAndResumeE2E(t *testing.T) {
	var reqs atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		select { // slow judge, so the interrupt lands mid-run
		case <-time.After(40 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, `{"choices":[{"message":{"role":"assistant","content":"{\"score\": 0.9, \"reason\": \"r\"}"}}],"usage":{"prompt_tokens":1000,"completion_tokens":20}}`)
	}))
	defer srv.Close()
	dir := t.TempDir()
	writeFile(t, dir, "eval.yaml", e2eConfig)
	writeFile(t, dir, "r.jsonl", e2eRecords(60))
	home := t.TempDir()
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "NO_COLOR=1", "TZ=UTC",
		"OPENAI_API_KEY=" + e2eKey, "OPENAI_BASE_URL=" + srv.URL + "/v1", "COSTCTL_DB=" + filepath.Join(dir, "l.db")}

	cmd := exec.Command(costctlBin, "eval", "r.jsonl", "--out", "first.jsonl", "--concurrency", "2")
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for reqs.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitInterrupted {
		t.Fatalf("interrupted run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	first, _ := os.ReadFile(filepath.Join(dir, "first.jsonl"))
	judged := strings.Count(string(first), `"metric":"quality","status":"pass"`)
	if nr := strings.Count(string(first), `"metric":"quality","status":"not_run"`); judged+nr != strings.Count(string(first), `"metric":"quality"`) {
		t.Fatalf("first run: rows other than pass and not_run:\n%s", first)
	}
	if judged == 0 || judged >= 60 {
		t.Fatalf("first run wrote %d quality rows; want some but not all\n%s", judged, stderr.String())
	}

	// Let requests the interrupted process had already written reach the server.
	before := reqs.Load()
	for {
		time.Sleep(100 * time.Millisecond)
		if n := reqs.Load(); n != before {
			before = n
			continue
		}
		break
	}
	r := runCostctl(t, dir, "", env[4:], "eval", "r.jsonl", "--out", "second.jsonl", "--concurrency", "4")
	if r.Code != 0 {
		t.Fatalf("resume: exit %d\n%s", r.Code, r.Stderr)
	}
	second, _ := os.ReadFile(filepath.Join(dir, "second.jsonl"))
	lines := strings.Split(strings.TrimSpace(string(second)), "\n")
	if len(lines) != 120 {
		t.Fatalf("resume wrote %d rows, want 120 (60 records × 2 metrics)", len(lines))
	}
	seen := map[string]bool{}
	for _, l := range lines {
		var id, metric string
		fmt.Sscanf(strings.SplitN(l, `"status"`, 2)[0], `{"id":%q,"metric":%q,`, &id, &metric)
		if seen[id+"/"+metric] {
			t.Fatalf("duplicate row %s/%s", id, metric)
		}
		seen[id+"/"+metric] = true
	}
	hits := strings.Count(string(second), `"metric":"quality","status":"pass","score":0.9,"reason":"r","model":"gpt-4o-mini","cached":true`)
	if hits < judged {
		t.Errorf("resume answered %d verdicts from the cache, the first run had written %d", hits, judged)
	}
	if sent := reqs.Load() - before; sent != int64(60-hits) {
		t.Errorf("resume sent %d requests for %d uncached verdicts", sent, 60-hits)
	}
}
