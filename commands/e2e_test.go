package commands

// End-to-end tests build the real binary once and run it as a user would:
// real files, real exit codes, no terminal, no network.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var costctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "costctl-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	costctlBin = filepath.Join(dir, "costctl")
	build := exec.Command("go", "build", "-o", costctlBin, "../cmd/costctl")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building costctl: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// e2eResult is what one run of the binary printed and returned.
type e2eResult struct {
	Stdout, Stderr string
	Code           int
}

// runCostctl runs the built binary with args in dir (the test's temp dir
// when empty), stdin as standard input, a private ledger and no colour.
// env entries ("K=V") are added to a minimal environment.
func runCostctl(t *testing.T, dir, stdin string, env []string, args ...string) e2eResult {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cmd := exec.Command(costctlBin, args...)
	cmd.Dir = dir
	home := t.TempDir()
	cmd.Env = append([]string{
		"HOME=" + home,
		"XDG_STATE_HOME=" + filepath.Join(home, "state"),
		"PATH=" + os.Getenv("PATH"),
		"NO_COLOR=1",
		"TZ=UTC",
	}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running costctl %v: %v", args, err)
	}
	return e2eResult{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// writeFile writes content to dir/name (creating parent directories) and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
