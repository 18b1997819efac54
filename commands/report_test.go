package commands

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
)

// hitsFixture is the ingest fixture plus an eval run at 14:20: two judge
// calls a provider billed and three verdicts served from the judge cache
// (not calls: their tokens and cost are avoided).
func hitsFixture(t *testing.T) string {
	t.Helper()
	path := ingestFixture(t)
	db, err := ledger.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := testNow.Add(-10 * time.Minute)
	var evs []ledger.Event
	for i := 0; i < 5; i++ {
		e := ledger.Event{Key: fmt.Sprintf("eval:r1:%d:faithful:call", i), Time: at, Source: ledger.SourceEval, RunID: "r1",
			Tenant: "acme", Endpoint: "judge", Metric: "faithful", Model: "gpt-4o-mini", InputTokens: 2000, OutputTokens: 100,
			Cost: 360_000, LatencyMS: 900} // 2,000 × $0.15/M + 100 × $0.60/M
		if i >= 2 {
			e.Key = fmt.Sprintf("eval:r1:%d:faithful:cache", i)
			e.Cost, e.Avoided, e.CacheHit, e.LatencyMS = 0, 360_000, true, 0
		}
		evs = append(evs, e)
	}
	if _, err := db.Insert(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return path
}

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

// Cache hits are not calls: their own column, their tokens and cost
// avoided, in every format.
func TestReportCacheHits(t *testing.T) {
	db := hitsFixture(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"report/cache_hits_by_source.txt", []string{"report", "--by", "source", "--since", "1h"}},
		{"report/cache_hits_by_tenant_source.csv", []string{"report", "--by", "tenant,source", "--since", "1h", "--format", "csv"}},
		{"report/cache_hits_by_metric.json", []string{"report", "--by", "metric", "--since", "1h", "--format", "json"}},
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

// report and top read without writing, and name a ledger others may read.
func TestReadCommandsWarnOnLooseMode(t *testing.T) {
	db := ingestFixture(t)
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o400, false}, {0o640, true}, {0o644, true}, {0o444, true}} {
		for _, args := range [][]string{{"report", "--format", "json"}, {"top", "--once", "--format", "json"}} {
			if err := os.Chmod(db, tc.mode); err != nil {
				t.Fatal(err)
			}
			tio := newTestIO("")
			if code := Run(context.Background(), testFactory(tio, db), args); code != 0 {
				t.Fatalf("%v at %04o: exit %d: %s", args, tc.mode, code, tio.errOut.String())
			}
			want := fmt.Sprintf("costctl: warning: ledger %s has mode %04o, open to other users: chmod 600 %s\n", db, tc.mode, db)
			first, _, _ := strings.Cut(tio.errOut.String(), "\n")
			if got := first + "\n"; (got == want) != tc.warn {
				t.Errorf("%v at %04o: stderr %q (warning wanted: %v)", args, tc.mode, tio.errOut.String(), tc.warn)
			}
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/costctl/costctl.db": "/var/lib/costctl/costctl.db",
		"/tmp/my ledger.db":           "'/tmp/my ledger.db'",
		"/tmp/it's.db":                `'/tmp/it'\''s.db'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
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
