package commands

import (
	"context"
	"testing"
	"time"
)

func TestReport(t *testing.T) {
	db := ingestFixture(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"report/default.txt", []string{"report"}},
		{"report/tenant_model_day.txt", []string{"report", "--by", "tenant,model,day", "--since", "7d"}},
		{"report/today_by_user.csv", []string{"report", "--by", "user", "--since", "2026-11-20", "--format", "csv"}},
		{"report/hour_24h.md", []string{"report", "--by", "hour", "--since", "24h", "--format", "md"}},
		{"report/endpoint_window.json", []string{"report", "--by", "endpoint,tenant", "--since", "2026-11-20T13:00:00Z", "--until", "2026-11-20T14:00:00Z", "--format", "json"}},
		// Yesterday only: the big old acme call.
		{"report/yesterday.txt", []string{"report", "--by", "tenant,day", "--since", "2026-11-19", "--until", "2026-11-20"}},
		{"report/empty.txt", []string{"report", "--since", "2026-10-01", "--until", "2026-10-02"}},
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

func TestReportUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"report", "--by", "tenant,colour"}, `costctl: invalid --by column "colour" (expected a comma-separated list of tenant, model, user, endpoint, source, metric, day, hour)` + "\n"},
		{[]string{"report", "--by", "day,hour"}, "costctl: --by can have day or hour, not both\n"},
		{[]string{"report", "--by", "tenant,tenant"}, "costctl: --by lists \"tenant\" twice\n"},
		{[]string{"report", "--since", "last week"}, `costctl: invalid --since "last week": want a duration back from now (24h, 7d), a date (2026-11-01) or an RFC 3339 time` + "\n"},
		{[]string{"report", "--since", "1d", "--until", "2d"}, "costctl: --until (2026-11-18T14:30:00Z) must be after --since (2026-11-19T14:30:00Z)\n"},
		{[]string{"report", "--format", "xml"}, `costctl: invalid --format "xml" (expected table, csv, json, md)` + "\n"},
	} {
		tio := newTestIO("")
		if code := Run(context.Background(), testFactory(tio, t.TempDir()+"/l.db"), tc.args); code != ExitUsage || tio.errOut.String() != tc.msg {
			t.Errorf("%v: exit %d %q, want 2 %q", tc.args, code, tio.errOut.String(), tc.msg)
		}
	}
}

func TestParseWhen(t *testing.T) {
	loc := time.FixedZone("X", -5*3600)
	for in, want := range map[string]string{
		"7d":                   "2026-11-13T14:30:20Z",
		"2w":                   "2026-11-06T14:30:20Z",
		"90m":                  "2026-11-20T13:00:20Z",
		"1h30m":                "2026-11-20T13:00:20Z",
		"now":                  "2026-11-20T14:31:00Z",
		"2026-11-01":           "2026-11-01T05:00:00Z",
		"2026-11-01T10:00:00Z": "2026-11-01T10:00:00Z",
	} {
		got, err := parseWhen("--since", in, testNow, loc)
		if err != nil || got.UTC().Format(time.RFC3339) != want {
			t.Errorf("%s: %v %v, want %s", in, got.UTC(), err, want)
		}
	}
}
