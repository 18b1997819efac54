package commands

import (
	"context"
	"path/filepath"
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
