package commands

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// Cobra's own usage errors are typed where they arise (exit 2, with the
// pointer to --help), not recognised by their text.
func TestCobraUsageErrorsAreTyped(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "costctl: unknown command \"frobnicate\" for \"costctl\"\nRun 'costctl --help' for usage.\n"},
		{[]string{"pricing", "show"}, "costctl: accepts 1 arg(s), received 0\nRun 'costctl pricing show --help' for usage.\n"},
		{[]string{"eval"}, "costctl: requires at least 1 arg(s), only received 0\nRun 'costctl eval --help' for usage.\n"},
		{[]string{"top", "--no-such-flag"}, "costctl: unknown flag: --no-such-flag\n"},
	} {
		tio := newTestIO("")
		code := Run(context.Background(), testFactory(tio, filepath.Join(t.TempDir(), "l.db")), tc.args)
		if code != ExitUsage || tio.errOut.String() != tc.want || tio.out.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want 2, %q", tc.args, code, tio.errOut.String(), tio.out.String(), tc.want)
		}
	}
	if got := exitCode(errString("unknown command \"x\"")); got != ExitError {
		t.Errorf("an untyped error that reads like cobra's exits %d, want 1", got)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// "-" reads the injected input, never the process's stdin: eval's dry run
// and estimate --from count what the factory's In holds.
func TestDashReadsInjectedInput(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "eval.yaml", e2eConfig)
	tio := newTestIO(e2eRecords(3))
	f := testFactory(tio, filepath.Join(dir, "l.db"))
	if code := Run(context.Background(), f, []string{"eval", "-", "--config", filepath.Join(dir, "eval.yaml"), "--dry-run"}); code != 0 ||
		!strings.Contains(tio.out.String(), "dry run: nothing sent. records 3, sampled 3, bad lines 0") {
		t.Fatalf("eval -: exit %d\n%s\n%s", code, tio.out.String(), tio.errOut.String())
	}
	tio = newTestIO(`{"input":"hello world","output":"Paris"}` + "\n")
	f = testFactory(tio, filepath.Join(dir, "l.db"))
	if code := Run(context.Background(), f, []string{"estimate", "--requests", "1M", "--from", "-", "--format", "json"}); code != 0 ||
		!strings.Contains(tio.out.String(), `"records": 1,`) || !strings.Contains(tio.out.String(), `"input_tokens_total": 9,`) {
		t.Fatalf("estimate --from -: exit %d\n%s\n%s", code, tio.out.String(), tio.errOut.String())
	}
}

// NO_COLOR is read through the injected environment; set to "" it still
// turns colour off (no-color.org).
func TestColorReadsInjectedEnv(t *testing.T) {
	env := map[string]string{}
	f := &Factory{IO: &IOStreams{OutTTY: true}, Getenv: func(k string) string { return env[k] },
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	if !f.Color() {
		t.Fatal("a terminal with NO_COLOR unset: want colour")
	}
	env["NO_COLOR"] = ""
	if f.Color() {
		t.Fatal(`NO_COLOR="": want no colour`)
	}
	f.LookupEnv = nil
	env["NO_COLOR"] = "1"
	if f.Color() {
		t.Fatal("NO_COLOR=1 through Getenv: want no colour")
	}
}
