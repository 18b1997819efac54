package commands

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestEvalFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "r.jsonl", "--concurrency", "0"}, "--concurrency must be at least 1"},
		{[]string{"eval", "r.jsonl", "--min-pass-rate", "1.5"}, "--min-pass-rate must be between 0 and 1 (e.g. 0.9)"},
		{[]string{"eval", "r.jsonl", "--no-cache", "--refresh"}, "--no-cache and --refresh cannot be used together"},
		{[]string{"eval", "r.jsonl", "--max-retries", "-1"}, "--max-retries must be 0 or more"},
	} {
		var out, errb bytes.Buffer
		f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errb}, Getenv: func(string) string { return "" }, Now: time.Now}
		var got *EvalOptions
		cmd := newEvalCmd(f, func(o *EvalOptions) error { got = o; return nil })
		cmd.SetArgs(tc.args[1:])
		cmd.SetOut(&out)
		cmd.SetErr(&errb)
		err := cmd.Execute()
		if err == nil || err.Error() != tc.want || exitCode(err) != ExitUsage || got != nil {
			t.Errorf("%v: err %v (code %d)", tc.args, err, exitCode(err))
		}
	}
	f := &Factory{IO: &IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, Getenv: func(string) string { return "" }, Now: time.Now}
	var got *EvalOptions
	cmd := newEvalCmd(f, func(o *EvalOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"a.jsonl", "b.csv", "--sample", "10%", "--max-cost", "5", "--timeout", "3s"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Files, ",") != "a.jsonl,b.csv" || got.Sample != "10%" || got.MaxCost != "5" || got.Timeout != 3*time.Second ||
		got.Concurrency != 8 || got.MaxRetries != 4 || got.ConfigFile != "eval.yaml" {
		t.Errorf("options = %+v", got)
	}
	if !strings.Contains(cmd.Long, "EXIT STATUS") || !strings.Contains(cmd.Long, "## Output") {
		t.Error("Long help lacks the exit status or the user-message layout")
	}
}
