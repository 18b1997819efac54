package commands

import (
	"context"
	"testing"
)

// Repricing the fixture with a price change and a price for the model it
// could not price; again (nothing changes); a window; and back.
func TestRepriceCommand(t *testing.T) {
	db := ingestFixture(t)
	const prices = "testdata/reprice/prices.yaml"
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"reprice/dry_run.txt", []string{"--pricing", prices, "reprice", "--dry-run"}},
		{"reprice/first.txt", []string{"--pricing", prices, "reprice"}},
		{"reprice/again.txt", []string{"--pricing", prices, "reprice", "--batch-size", "2"}},
		{"reprice/report_after.txt", []string{"report", "--by", "model"}},
		// Back to the built-in prices for today only: mystery-llm is unpriced again.
		{"reprice/today_builtin.json", []string{"reprice", "--since", "2026-11-20", "--format", "json"}},
		{"reprice/report_back.txt", []string{"report", "--by", "model,day"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tio := newTestIO("")
			if code := Run(context.Background(), testFactory(tio, db), tc.args); code != 0 {
				t.Fatalf("exit %d: %s", code, tio.errOut.String())
			}
			assertGolden(t, tc.name, tio.out.String()+"-- stderr --\n"+tio.errOut.String())
		})
	}
}

func TestRepriceUsageErrors(t *testing.T) {
	db := ingestFixture(t)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"reprice", "--format", "csv"}, ExitUsage, `costctl: invalid --format "csv" (expected text, json)` + "\n"},
		{[]string{"reprice", "--batch-size", "0"}, ExitUsage, "costctl: invalid --batch-size 0: want a positive number of events\n"},
		{[]string{"reprice", "--since", "last week"}, ExitUsage, `costctl: invalid --since "last week": want a duration back from now (24h, 7d), a date (2026-11-01) or an RFC 3339 time` + "\n"},
		{[]string{"reprice", "--since", "1d", "--until", "2d"}, ExitUsage, "costctl: --until (2026-11-18T14:30:20Z) must be after --since (2026-11-19T14:30:20Z)\n"},
		{[]string{"reprice", "everything"}, ExitUsage, "costctl: unknown command \"everything\" for \"costctl reprice\"\nRun 'costctl reprice --help' for usage.\n"},
		{[]string{"--pricing", "testdata/reprice/missing.yaml", "reprice"}, ExitError,
			"costctl: --pricing testdata/reprice/missing.yaml: no such file or directory (fix the path, or leave out --pricing to use the built-in prices)\n"},
	} {
		tio := newTestIO("")
		if code := Run(context.Background(), testFactory(tio, db), tc.args); code != tc.code || tio.errOut.String() != tc.msg || tio.out.Len() != 0 {
			t.Errorf("%v: exit %d %q (stdout %q), want %d %q", tc.args, code, tio.errOut.String(), tio.out.String(), tc.code, tc.msg)
		}
	}
	tio := newTestIO("")
	missing := t.TempDir() + "/none.db"
	if code := Run(context.Background(), testFactory(tio, missing), []string{"reprice"}); code != ExitError ||
		tio.errOut.String() != "costctl: no ledger at "+missing+" yet: bring usage in with costctl ingest FILE (or costctl eval), or point --db at an existing ledger\n" {
		t.Errorf("missing ledger: exit %d %q", code, tio.errOut.String())
	}
}
