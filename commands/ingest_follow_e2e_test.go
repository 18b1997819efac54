package commands

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
)

// ingest --follow picks up appended lines and a rotated file, and Ctrl-C
// (SIGINT) ends it with the summary, everything read saved, exit 130.
func TestIngestFollowE2E(t *testing.T) {
	dir := t.TempDir()
	log := writeFile(t, dir, "usage.jsonl", flat("f1"))
	db := filepath.Join(dir, "ledger.db")
	cmd := exec.Command(costctlBin, "ingest", "--db", db, "--follow", "--poll-interval", "10ms", log)
	cmd.Env = []string{"HOME=" + dir, "NO_COLOR=1", "TZ=UTC"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	waitEvents(t, db, 1)
	appendFile(t, log, flat("f2"))
	waitEvents(t, db, 2)
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, log, flat("f3")+flat("f4"))
	waitEvents(t, db, 4)

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != ExitInterrupted {
			t.Fatalf("exit: %v (stderr %q)", err, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ingest --follow did not stop on SIGINT")
	}
	if !strings.HasPrefix(out.String(), "ingested 4 · duplicates 0 · bad 0 · unpriced 0 · conflicts 0\n") {
		t.Fatalf("summary %q", out.String())
	}
	if errb.String() != "costctl: ingest: interrupted; everything read so far is saved\n" {
		t.Fatalf("stderr %q", errb.String())
	}
}

func flat(id string) string {
	return `{"id":"` + id + `","ts":"2026-11-20T10:00:00Z","tenant":"acme","model":"gpt-4o","input_tokens":100,"output_tokens":10}` + "\n"
}

func appendFile(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func waitEvents(t *testing.T, db string, n int) {
	t.Helper()
	// A guard against a hang, not a speed check: generous for a busy
	// 2-core CI machine.
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := -1
		if _, err := os.Stat(db); err == nil {
			if l, err := ledger.OpenReadOnly(context.Background(), db); err == nil { // a reader: never takes the writer's lock
				_ = l.SQL().QueryRow(`SELECT COUNT(*) FROM events`).Scan(&got)
				l.Close()
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d events in %s, have %d", n, db, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
