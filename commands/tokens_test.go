package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/costctl/costctl/pricing"
)

// runTokens counts files in parallel; run directly (so -race sees the
// workers) it gives the same table however many files are counted at once,
// and its problems come out in path order.
func TestRunTokensParallel(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := 0; i < 24; i++ {
		paths = append(paths, writeFile(t, dir, fmt.Sprintf("f%02d.txt", i), strings.Repeat("word ", i+1)))
	}
	writeFile(t, dir, "sub/b.bin", "\x00")
	writeFile(t, dir, "sub/a.bin", "\x00")
	paths = append(paths, dir+"/sub")
	run := func(jobs int) (string, string, error) {
		var out, errb bytes.Buffer
		opts := &TokensOptions{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errb},
			Pricing: pricing.Default, Paths: paths, Model: "gpt-4o", Format: "json", Jobs: jobs}
		err := runTokens(context.Background(), opts)
		return out.String(), errb.String(), err
	}
	want, wantErr, err := run(1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(want, `"tokens": 24,`) || wantErr != "note: "+dir+"/sub/a.bin: binary file skipped\nnote: "+dir+"/sub/b.bin: binary file skipped\n" {
		t.Fatalf("jobs=1: stderr %q\n%s", wantErr, want)
	}
	for _, jobs := range []int{2, 8, 32} {
		got, gotErr, err := run(jobs)
		if err != nil || got != want || gotErr != wantErr {
			t.Errorf("jobs=%d: err %v, stderr %q; output differs from jobs=1", jobs, err, gotErr)
		}
	}
}

// A failure leaves stdout empty and reports exit 1 without a message of its
// own (each problem is already on stderr).
func TestRunTokensErrorLeavesStdoutEmpty(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.txt", "hello")
	bin := writeFile(t, dir, "bin.dat", "a\x00b")
	var out, errb bytes.Buffer
	err := runTokens(context.Background(), &TokensOptions{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errb},
		Pricing: pricing.Default, Paths: []string{good, bin}, Model: "gpt-4o", Format: "table", Jobs: 2})
	var ee *ExitErr
	if !errors.As(err, &ee) || ee.Code != ExitError || ee.Err != nil || out.Len() != 0 ||
		errb.String() != "costctl: "+bin+": binary file (a NUL byte in its first 8 KiB), not counted\n" {
		t.Errorf("err %v, stdout %q, stderr %q", err, out.String(), errb.String())
	}
}
