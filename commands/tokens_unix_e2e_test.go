//go:build unix

package commands

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func symlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

// A symlinked file in a walked folder is followed; a symlinked directory is
// named in a note and not walked (so loops cannot happen); one file under
// two names is counted once, with a note.
func TestTokensSymlinks(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "d/real.txt", "hello world")
	writeFile(t, dir, "outside/shared.md", "one two three")
	symlink(t, "real.txt", filepath.Join(dir, "d", "alias.txt"))                  // same file as real.txt
	symlink(t, "../outside/shared.md", filepath.Join(dir, "d", "shared-link.md")) // the only name inside d
	symlink(t, "nowhere.txt", filepath.Join(dir, "d", "broken.txt"))
	symlink(t, "../d", filepath.Join(dir, "d", "loop"))      // a directory loop
	symlink(t, "../outside", filepath.Join(dir, "d", "ext")) // a directory outside
	if err := os.Link(filepath.Join(dir, "d", "real.txt"), filepath.Join(dir, "d", "z-hard.txt")); err != nil {
		t.Fatal(err)
	}

	r := runCostctl(t, dir, "", nil, "tokens", "d")
	wantOut := "PATH              TOKENS  BYTES  INPUT COST\n" +
		"-------------------------------------------\n" +
		"d/real.txt             2     11   $0.000005\n" +
		"d/shared-link.md       3     13  $0.0000075\n" +
		"-------------------------------------------\n" +
		"total (2 files)        5     24  $0.0000125\n" +
		"\n" +
		"gpt-4o, tokens with o200k_base; input cost at gpt-4o $2.50/1M; prices as of 2026-12-01\n"
	wantErr := "note: d/alias.txt: same file as d/real.txt; counted once\n" +
		"note: d/broken.txt: broken symlink skipped\n" +
		"note: d/ext: symlink to a directory not followed; name it on the command line to count it\n" +
		"note: d/loop: symlink to a directory not followed; name it on the command line to count it\n" +
		"note: d/z-hard.txt: same file as d/real.txt; counted once\n"
	if r.Code != 0 || r.Stdout != wantOut || r.Stderr != wantErr {
		t.Errorf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s", r.Code, r.Stdout, wantOut, r.Stderr, wantErr)
	}

	// A symlinked directory named on the command line is walked, under
	// the name given; a loop inside it is still only a note.
	r = runCostctl(t, dir, "", nil, "tokens", "d/loop", "--include", "*.md", "--format", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"path": "d/loop/shared-link.md"`) || strings.Contains(r.Stdout, "real.txt") {
		t.Errorf("named dir symlink: exit %d stderr %q\n%s", r.Code, r.Stderr, r.Stdout)
	}
	if want := "note: d/loop/ext: symlink to a directory not followed; name it on the command line to count it\n" +
		"note: d/loop/loop: symlink to a directory not followed; name it on the command line to count it\n"; r.Stderr != want {
		t.Errorf("named dir symlink: stderr %q, want %q", r.Stderr, want)
	}

	// A --max-total gate does not count one file twice.
	r = runCostctl(t, dir, "", nil, "tokens", "d/real.txt", "d/alias.txt", "./d/real.txt", "--max-total", "2")
	if r.Code != 0 || r.Stderr != "note: ./d/real.txt: same file as d/real.txt; counted once\nnote: d/alias.txt: same file as d/real.txt; counted once\n" {
		t.Errorf("same file named three ways: exit %d stderr %q\n%s", r.Code, r.Stderr, r.Stdout)
	}
}

// A named pipe or a device named on the command line is an error (it is not
// a file to count, and reading a pipe with no writer would hang); found in a
// folder it is skipped with a note.
func TestTokensSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "d/a.txt", "hello")
	if err := syscall.Mkfifo(filepath.Join(dir, "d", "pipe"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	cases := []struct {
		args   []string
		stderr string
	}{
		{[]string{"tokens", "d/a.txt", "d/pipe"}, "costctl: d/pipe: a named pipe, not a regular file; to count a stream, give it on standard input (costctl tokens - < d/pipe)\n"},
		{[]string{"tokens", "/dev/null", "--max", "5"}, "costctl: /dev/null: a device, not a regular file; to count a stream, give it on standard input (costctl tokens - < /dev/null)\n"},
	}
	for _, c := range cases {
		r := runCostctl(t, dir, "", nil, c.args...)
		if r.Code != ExitError || r.Stdout != "" || r.Stderr != c.stderr {
			t.Errorf("%v: exit %d\nstdout %q\nstderr %q\nwant exit 1, no stdout, stderr %q", c.args, r.Code, r.Stdout, r.Stderr, c.stderr)
		}
	}
	r := runCostctl(t, dir, "", nil, "tokens", "d", "--format", "json")
	if r.Code != 0 || r.Stderr != "note: d/pipe: a named pipe skipped\n" || !strings.Contains(r.Stdout, `"path": "d/a.txt"`) {
		t.Errorf("walked pipe: exit %d stderr %q\n%s", r.Code, r.Stderr, r.Stdout)
	}
}

// An unreadable file named on the command line is an error naming it.
func TestTokensPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file; permission denied cannot be provoked")
	}
	dir := t.TempDir()
	p := writeFile(t, dir, "secret.txt", "hello")
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	r := runCostctl(t, dir, "", nil, "tokens", "secret.txt")
	if r.Code != ExitError || r.Stdout != "" || r.Stderr != "costctl: secret.txt: permission denied\n" {
		t.Errorf("exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}
