package commands

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// policy set, list and log through the command tree: exact output, only
// what a flag names changes, every change an audit row with $USER.
func TestPolicyCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ledger.db")
	at := func(m int) time.Time { return testNow.Add(time.Duration(m) * time.Minute) }
	for i, tc := range []struct {
		args        []string
		out, errOut string
		code        int
	}{
		{[]string{"policy", "list"}, "", "no policies yet: costctl policy set --tenant T ... --reason TEXT sets one\n", 0},
		{[]string{"policy", "log"}, "", "no policy changes yet\n", 0},
		{[]string{"policy", "list", "--format", "json"}, "{\n  \"version\": 1,\n  \"policies\": []\n}\n", "", 0},
		{[]string{"policy", "set", "--tenant", "acme", "--daily-budget", "50", "--monthly-budget", "$1,000.000000001", "--sample", "1%", "--cache", "on", "--route", "gpt-4o=gpt-4o-mini", "--reason", "Q4 plan"},
			"acme: daily-budget 50.00, monthly-budget 1000.000000001, sample 1%, cache on, route gpt-4o=gpt-4o-mini (by alice at 2026-11-20T14:33:20Z: Q4 plan)\n", "", 0},
		{[]string{"policy", "set", "--tenant", "acme", "--block", "--route", "gpt-4o=", "--route", "o1=o3-mini", "--reason", "  spike  "},
			"acme: block, route gpt-4o removed, route o1=o3-mini (by alice at 2026-11-20T14:34:20Z: spike)\n", "", 0},
		{[]string{"policy", "set", "--tenant", "globex", "--sample", "0.05", "--reason", "canary", "--format", "json"}, `{
  "version": 1,
  "policy": {
    "tenant": "globex",
    "daily_budget_usd": null,
    "monthly_budget_usd": null,
    "blocked": false,
    "sample_bp": 5,
    "sample": "0.05%",
    "cache": false,
    "routes": {},
    "semantic_cache": false,
    "similarity_bp": 0,
    "cache_ttl": "",
    "min_precision_bp": 0,
    "semantic_off": "",
    "updated": "2026-11-20T14:35:20Z",
    "last_change": {
      "at": "2026-11-20T14:35:20Z",
      "what": "sample 0.05%",
      "reason": "canary",
      "who": "alice"
    }
  }
}
`, "", 0},
		{[]string{"policy", "set", "--tenant", "globex", "--daily-budget", "0.5", "--reason", "cap"},
			"globex: daily-budget 0.50 (by alice at 2026-11-20T14:36:20Z: cap)\n", "", 0},
		{[]string{"policy", "set", "--tenant", "globex", "--daily-budget", "none", "--sample", "0", "--unblock", "--cache", "off", "--reason", "done"},
			"globex: daily-budget none, unblock, sample 0%, cache off (by alice at 2026-11-20T14:37:20Z: done)\n", "", 0},
		{[]string{"policy", "list"}, `TENANT   DAILY           MONTHLY  BLOCKED  SAMPLE  CACHE  ROUTES      CHANGED               BY     REASON
---------------------------------------------------------------------------------------------------------
acme    $50.00  $1,000.000000001  yes      1%      on     o1=o3-mini  2026-11-20T14:34:20Z  alice  spike
globex       -                 -  no       -       off    -           2026-11-20T14:37:20Z  alice  done
`, "", 0},
		{[]string{"policy", "list", "--format", "json"}, `{
  "version": 1,
  "policies": [
    {
      "tenant": "acme",
      "daily_budget_usd": "50.00",
      "monthly_budget_usd": "1000.000000001",
      "blocked": true,
      "sample_bp": 100,
      "sample": "1%",
      "cache": true,
      "routes": {
        "o1": "o3-mini"
      },
      "semantic_cache": false,
      "similarity_bp": 0,
      "cache_ttl": "",
      "min_precision_bp": 0,
      "semantic_off": "",
      "updated": "2026-11-20T14:34:20Z",
      "last_change": {
        "at": "2026-11-20T14:34:20Z",
        "what": "block, route gpt-4o removed, route o1=o3-mini",
        "reason": "spike",
        "who": "alice"
      }
    },
    {
      "tenant": "globex",
      "daily_budget_usd": null,
      "monthly_budget_usd": null,
      "blocked": false,
      "sample_bp": 0,
      "sample": "0%",
      "cache": false,
      "routes": {},
      "semantic_cache": false,
      "similarity_bp": 0,
      "cache_ttl": "",
      "min_precision_bp": 0,
      "semantic_off": "",
      "updated": "2026-11-20T14:37:20Z",
      "last_change": {
        "at": "2026-11-20T14:37:20Z",
        "what": "daily-budget none, unblock, sample 0%, cache off",
        "reason": "done",
        "who": "alice"
      }
    }
  ]
}
`, "", 0},
		{[]string{"policy", "log", "--tenant", "acme"}, `AT                    TENANT  WHAT                                                                                              WHO    REASON
----------------------------------------------------------------------------------------------------------------------------------------------
2026-11-20T14:33:20Z  acme    daily-budget 50.00, monthly-budget 1000.000000001, sample 1%, cache on, route gpt-4o=gpt-4o-mini  alice  Q4 plan
2026-11-20T14:34:20Z  acme    block, route gpt-4o removed, route o1=o3-mini                                                     alice  spike
`, "", 0},
		{[]string{"policy", "log", "--tenant", "globex", "--format", "json"}, `{
  "version": 1,
  "changes": [
    {
      "at": "2026-11-20T14:35:20Z",
      "tenant": "globex",
      "what": "sample 0.05%",
      "reason": "canary",
      "who": "alice"
    },
    {
      "at": "2026-11-20T14:36:20Z",
      "tenant": "globex",
      "what": "daily-budget 0.50",
      "reason": "cap",
      "who": "alice"
    },
    {
      "at": "2026-11-20T14:37:20Z",
      "tenant": "globex",
      "what": "daily-budget none, unblock, sample 0%, cache off",
      "reason": "done",
      "who": "alice"
    }
  ]
}
`, "", 0},
	} {
		out, errOut, code := runControl(t, db, at(i), tc.args...)
		if out != tc.out || errOut != tc.errOut || code != tc.code {
			t.Fatalf("%v:\nstdout %q\nstderr %q\nexit %d\nwant\n%q\n%q\n%d", tc.args, out, errOut, code, tc.out, tc.errOut, tc.code)
		}
	}
	// The budgets are stored exactly.
	l, err := ledger.OpenReadOnly(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ps, err := l.Policies(context.Background())
	if err != nil || ps["acme"].MonthlyBudget != pricing.Money(1_000_000_000_001) || ps["acme"].DailyBudget != pricing.Dollars(50) {
		t.Fatalf("stored %+v %v", ps["acme"], err)
	}
}

// Bad input is one line and exit 2, and changes nothing.
func TestPolicySetUsageErrors(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ledger.db")
	set := func(extra ...string) []string {
		return append([]string{"policy", "set", "--tenant", "acme"}, extra...)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{set("--sample", "0.001%", "--reason", "r"), `invalid --sample "0.001%": the finest share is 0.01%`},
		{set("--sample", "101", "--reason", "r"), `invalid --sample "101": a share is 0 to 100%`},
		{set("--sample", "1e2", "--reason", "r"), `invalid --sample "1e2": a share in percent, like 1% or 0.5 (0: off)`},
		{set("--daily-budget", "-5", "--reason", "r"), `invalid --daily-budget "-5": a dollar amount like 50 or 12.50 (0 or none: no budget)`},
		{set("--monthly-budget", "1/3", "--reason", "r"), `invalid --monthly-budget "1/3": a dollar amount like 50 or 12.50 (0 or none: no budget)`},
		{set("--daily-budget", "0.0000000001", "--reason", "r"), `invalid --daily-budget: invalid amount "0.0000000001": more than 9 decimal places`},
		{set("--block", "--unblock", "--reason", "r"), `--block and --unblock together: give one`},
		{set("--block=false", "--reason", "r"), `--block and --unblock take no value: give the one you mean`},
		{set("--cache", "maybe", "--reason", "r"), `invalid --cache "maybe": on or off`},
		{set("--route", "gpt-4o", "--reason", "r"), `invalid --route "gpt-4o": FROM=TO (a model to serve another with), or FROM= to remove a route`},
		{set("--route", "=gpt-4o", "--reason", "r"), `invalid --route "=gpt-4o": FROM=TO (a model to serve another with), or FROM= to remove a route`},
		{set("--route", "a=a", "--reason", "r"), `invalid --route "a=a": a model routed to itself`},
		{set("--route", "a=b", "--route", "a=", "--reason", "r"), `invalid --route "a=": a is routed twice in one command`},
		{set("--block"), `--reason is required: say why, for the audit log (policy log)`},
		{set("--block", "--reason", " "), `--reason is required: say why, for the audit log (policy log)`},
		{set("--block", "--reason", "a\nb"), `invalid --reason: one line, without control characters`},
		{set("--reason", "r"), `nothing to change for acme: give --daily-budget, --monthly-budget, --block, --unblock, --sample, --cache, --semantic-cache, --similarity, --cache-ttl, --min-precision or --route`},
		{set("--semantic-cache", "yes", "--reason", "r"), `invalid --semantic-cache "yes": on or off`},
		{set("--semantic-cache", "on", "--similarity", "0.79", "--reason", "r"), `invalid --similarity 0.79: at least 0.80; lower thresholds serve wrong answers (GPTCache's 0.8 default matches a question with its reversal and 2+2 with 2+3)`},
		{set("--similarity", "1.01", "--reason", "r"), `invalid --similarity "1.01": at most 1`},
		{set("--similarity", "0.95555", "--reason", "r"), `invalid --similarity "0.95555": the finest step is 0.0001`},
		{set("--similarity", "high", "--reason", "r"), `invalid --similarity "high": a number from 0 to 1, like 0.98`},
		{set("--cache-ttl", "0s", "--reason", "r"), `invalid --cache-ttl "0s": a positive duration like 24h or 90m`},
		{set("--cache-ttl", "-1h", "--reason", "r"), `invalid --cache-ttl "-1h": a positive duration like 24h or 90m`},
		{set("--min-precision", "0", "--reason", "r"), `invalid --min-precision "0": above 0, at most 1 (0.98: 98% of verified hits right)`},
		{set("--min-precision", "2", "--reason", "r"), `invalid --min-precision "2": at most 1`},
		{[]string{"policy", "set", "--block", "--reason", "r"}, `--tenant is required: the tenant whose budget and policy apply`},
		{[]string{"policy", "list", "--format", "md"}, `invalid --format "md" (expected table, json)`},
	} {
		out, errOut, code := runControl(t, db, testNow, tc.args...)
		if out != "" || errOut != "costctl: "+tc.msg+"\n" || code != 2 {
			t.Errorf("%v:\nstdout %q\nstderr %q\nexit %d\nwant %q", tc.args, out, errOut, code, tc.msg)
		}
	}
	// A route to a model no table prices: refused, naming the model.
	_, errOut, code := runControl(t, db, testNow, set("--route", "gpt-4o=no-such-model-xyz", "--reason", "r")...)
	if code != 2 || !strings.HasPrefix(errOut, `costctl: invalid --route gpt-4o=no-such-model-xyz: a route must lead to a priced model: unknown model "no-such-model-xyz"`) || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("unpriced route: %q %d", errOut, code)
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatal("a refused policy set created the ledger")
	}
}

// policy list and log read a v6 ledger (no control tables) as it is:
// no policies, and the file unchanged.
func TestPolicyListV6Ledger(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"DROP TABLE virtual_keys", "DROP TABLE policies", "DROP TABLE policy_audit", "PRAGMA user_version = 6"} {
		if _, err := l.SQL().Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	before, _ := os.ReadFile(db)
	for _, args := range [][]string{{"policy", "list"}, {"policy", "log"}, {"keys", "list"}} {
		out, errOut, code := runControl(t, db, testNow, args...)
		if out != "" || code != 0 || !strings.HasPrefix(errOut, "no ") {
			t.Errorf("%v on v6: %q %q %d", args, out, errOut, code)
		}
	}
	if after, _ := os.ReadFile(db); string(after) != string(before) {
		t.Fatal("reading a v6 ledger changed it")
	}
	// A change migrates it.
	if out, errOut, code := runControl(t, db, testNow, "policy", "set", "--tenant", "acme", "--block", "--reason", "r"); code != 0 {
		t.Fatalf("set on v6: %q %q", out, errOut)
	}
}

// The built binary: who is $USER, exit codes as documented.
func TestPolicyE2E(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "ledger.db")
	r := runCostctl(t, dir, "", []string{"USER=oncall"}, "--db", db, "policy", "set", "--tenant", "acme", "--block", "--sample", "1%", "--reason", "runbook")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "acme: block, sample 1% (by oncall at ") || !strings.HasSuffix(r.Stdout, ": runbook)\n") || r.Stderr != "" {
		t.Fatalf("set: %+v", r)
	}
	r = runCostctl(t, dir, "", nil, "--db", db, "policy", "set", "--tenant", "acme", "--sample", "half", "--reason", "x")
	if r.Code != 2 || r.Stdout != "" || r.Stderr != "costctl: invalid --sample \"half\": a share in percent, like 1% or 0.5 (0: off)\n" {
		t.Fatalf("bad sample: %+v", r)
	}
	r = runCostctl(t, dir, "", nil, "--db", db, "policy", "log")
	if r.Code != 0 || !strings.Contains(r.Stdout, "  acme    block, sample 1%  oncall  runbook\n") {
		t.Fatalf("log: %+v", r)
	}
	if st, err := os.Stat(db); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ledger mode %v %v", st.Mode(), err)
	}
}

// The semantic cache's policy: defaults when turned on, settings kept,
// shown by list (a SEMANTIC column once some tenant used it) and JSON; a
// switch-off by the proxy shows why.
func TestPolicySemanticCache(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ledger.db")
	at := func(m int) time.Time { return testNow.Add(time.Duration(m) * time.Minute) }
	run := func(m int, want string, args ...string) {
		t.Helper()
		out, errOut, code := runControl(t, db, at(m), args...)
		if out != want || errOut != "" || code != 0 {
			t.Fatalf("%v:\nstdout %q\nstderr %q\nexit %d\nwant %q", args, out, errOut, code, want)
		}
	}
	run(0, "acme: semantic-cache on (by alice at 2026-11-20T14:30:20Z: trial)\n",
		"policy", "set", "--tenant", "acme", "--semantic-cache", "on", "--reason", "trial")
	run(1, "globex: semantic-cache on, similarity 0.98, cache-ttl 1h30m0s, min-precision 0.995 (by alice at 2026-11-20T14:31:20Z: strict)\n",
		"policy", "set", "--tenant", "globex", "--semantic-cache", "on", "--similarity", "0.98", "--cache-ttl", "90m", "--min-precision", "0.995", "--reason", "strict")
	run(2, "initech: cache on (by alice at 2026-11-20T14:32:20Z: exact only)\n", "policy", "set", "--tenant", "initech", "--cache", "on", "--reason", "exact only")
	l, err := ledger.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SwitchOffSemantic(context.Background(), "globex", "precision 0.9 < 0.995 over 10 verified hits", at(3)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	run(4, `TENANT   DAILY  MONTHLY  BLOCKED  SAMPLE  CACHE  SEMANTIC                                          ROUTES  CHANGED               BY             REASON
-------------------------------------------------------------------------------------------------------------------------------------------------------------------------------------------
acme         -        -  no       -       off    on 0.95 24h0m0s ≥0.98                             -       2026-11-20T14:30:20Z  alice          trial
globex       -        -  no       -       off    off: precision 0.9 < 0.995 over 10 verified hits  -       2026-11-20T14:33:20Z  costctl proxy  precision 0.9 < 0.995 over 10 verified hits
initech      -        -  no       -       on     off                                               -       2026-11-20T14:32:20Z  alice          exact only
`, "policy", "list")
	out, _, code := runControl(t, db, at(5), "policy", "list", "--format", "json")
	for _, want := range []string{`"tenant": "acme",`, `"semantic_cache": true,
      "similarity_bp": 9500,
      "cache_ttl": "24h0m0s",
      "min_precision_bp": 9800,
      "semantic_off": "",`, `"semantic_cache": false,
      "similarity_bp": 9800,
      "cache_ttl": "1h30m0s",
      "min_precision_bp": 9950,
      "semantic_off": "precision 0.9 < 0.995 over 10 verified hits",`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("list json lacks %s:\n%s", want, out)
		}
	}
	// Turned on again by hand: the automatic reason goes.
	run(6, "globex: semantic-cache on (by alice at 2026-11-20T14:36:20Z: fixed)\n", "policy", "set", "--tenant", "globex", "--semantic-cache", "on", "--reason", "fixed")
	out, _, _ = runControl(t, db, at(7), "policy", "log", "--tenant", "globex")
	if !regexp.MustCompile(`globex +semantic-cache off +costctl proxy +precision 0.9 < 0.995 over 10 verified hits\n`).MatchString(out) {
		t.Fatalf("log:\n%s", out)
	}
}
