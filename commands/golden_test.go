package commands

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// assertGolden compares got with testdata/<name>; -update rewrites it.
func assertGolden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading golden %s (run go test -update to create it): %v", p, err)
	}
	if string(want) != got {
		t.Errorf("output differs from %s (run go test ./commands -update to accept):\n--- got ---\n%s\n--- want ---\n%s", p, got, want)
	}
}
