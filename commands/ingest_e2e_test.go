package commands

// End-to-end: the built binary ingests a usage log, then top and report
// read the same ledger, with real files and exit codes and no terminal.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// liveLog is a usage log whose events happened minutes ago (the binary's
// clock is the real one).
func liveLog(now time.Time) string {
	var b strings.Builder
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, `{"id":"acme-%d","ts":%d,"tenant":"acme","model":"gpt-4o","input_tokens":20000,"cached_input_tokens":5000,"output_tokens":1000,"latency_ms":60000}`+"\n",
			i, now.Add(-time.Duration(i+1)*time.Minute).Unix())
	}
	fmt.Fprintf(&b, `{"id":"chatcmpl-9","created":%d,"model":"gpt-4o-mini","tenant":"globex","usage":{"prompt_tokens":3000,"completion_tokens":500}}`+"\n",
		now.Add(-10*time.Minute).Unix())
	fmt.Fprintf(&b, `{"ts":"%s","tenant":"umbrella","model":"mystery-llm","input_tokens":5,"output_tokens":5}`+"\n",
		now.Add(-20*time.Minute).UTC().Format(time.RFC3339))
	b.WriteString("{\"model\":\"gpt-4o\"}\n")
	return b.String()
}

// badReason is the reason ingest gives for line, in its parser's words.
func badReason(t *testing.T, line string) string {
	t.Helper()
	tio := newTestIO(line + "\n")
	Run(context.Background(), testFactory(tio, filepath.Join(t.TempDir(), "l.db")), []string{"ingest", "-"})
	first, _, _ := strings.Cut(tio.errOut.String(), "\n")
	if !strings.HasPrefix(first, "stdin:1: ") {
		t.Fatalf("no reason for %s: %q", line, tio.errOut.String())
	}
	return strings.TrimPrefix(first, "stdin:1: ")
}

func TestIngestTopReportE2E(t *testing.T) {
	dir := t.TempDir()
	log := writeFile(t, dir, "usage.jsonl", liveLog(time.Now()))
	db := filepath.Join(dir, "ledger.db")

	// A bad line: the good ones are stored, the summary goes to stderr, exit 1.
	r := runCostctl(t, dir, "", nil, "ingest", "--db", db, log)
	summary := "ingested 6 · duplicates 0 · bad 1 · unpriced 1 · conflicts 0\n" +
		"cost of ingested events $0.21575 (prices as of 2026-12-01) · ledger " + db + "\n" +
		"unpriced models: mystery-llm (1); their spend is shown as unpriced, not $0 (add prices with --pricing FILE before ingesting)\n"
	badLine := log + ":7: " + badReason(t, `{"model":"gpt-4o"}`) + "\n"
	if r.Code != ExitError || r.Stdout != "" || r.Stderr != badLine+summary+
		"costctl: ingest: 1 bad line, more than --max-bad 0; the rest is saved: fix the lines listed above and ingest again (what is in is skipped as a duplicate), or pass --max-bad 1 to accept them\n" {
		t.Fatalf("ingest: exit %d\nstdout %q\nstderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// Twice, accepting the bad line: nothing new, exit 0.
	if r := runCostctl(t, dir, "", nil, "ingest", "--db", db, "--max-bad", "1", log); r.Code != 0 || r.Stderr != badLine ||
		!strings.HasPrefix(r.Stdout, "ingested 0 · duplicates 6 · bad 1 · unpriced 0 · conflicts 0\n") {
		t.Fatalf("re-ingest: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}

	// top, not on a terminal: one JSON snapshot.
	r = runCostctl(t, dir, "", nil, "top", "--db", db, "--window", "1h", "--format", "json")
	if r.Code != 0 {
		t.Fatalf("top exit %d: %s", r.Code, r.Stderr)
	}
	var snap struct {
		Version int    `json:"version"`
		Window  string `json:"window"`
		Spend   string `json:"spend_usd"`
		Rows    []struct {
			Key      string `json:"key"`
			Calls    int64  `json:"calls"`
			Cost     string `json:"cost_usd"`
			Unpriced bool   `json:"unpriced"`
			Latency  int64  `json:"avg_latency_ms"`
		} `json:"rows"`
		Alerts []struct{ Kind string } `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &snap); err != nil {
		t.Fatalf("top JSON: %v\n%s", err, r.Stdout)
	}
	got := fmt.Sprintf("%d %s %s", snap.Version, snap.Window, snap.Spend)
	for _, row := range snap.Rows {
		got += fmt.Sprintf(" | %s %d %s %v %d", row.Key, row.Calls, row.Cost, row.Unpriced, row.Latency)
	}
	if want := "1 1h 0.21575 | acme 4 0.215 false 60000 | globex 1 0.00075 false 0 | umbrella 1 0.00 true 0"; got != want {
		t.Fatalf("top snapshot:\n got %s\nwant %s", got, want)
	}
	if len(snap.Alerts) == 0 || snap.Alerts[len(snap.Alerts)-1].Kind != "latency" {
		t.Fatalf("want a latency alert (60s average): %+v", snap.Alerts)
	}
	// --fail-on-alert pages: exit 3.
	r = runCostctl(t, dir, "", nil, "top", "--db", db, "--once", "--fail-on-alert")
	if r.Code != ExitGate || !strings.Contains(r.Stderr, "costctl: top: alert active:") || !strings.Contains(r.Stdout, "ALERT latency:") {
		t.Fatalf("fail-on-alert: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	if r := runCostctl(t, dir, "", nil, "top", "--db", db, "--once", "--latency-alert", "0", "--daily-budget", "1000000"); r.Code != 0 || !strings.Contains(r.Stdout, "alerts: none") {
		t.Fatalf("no alerts: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}

	// report.
	r = runCostctl(t, dir, "", nil, "report", "--db", db, "--by", "tenant,model", "--since", "1h", "--format", "csv")
	want := "TENANT,MODEL,CALLS,CACHE HITS,INPUT TOKENS,CACHED,OUTPUT TOKENS,COST USD,SHARE PCT,UNPRICED,AVOIDED USD,CACHE WRITE 5M TOKENS,CACHE WRITE 1H TOKENS,REASONING TOKENS,SEMANTIC HITS,SEMANTIC AVOIDED USD,EMBED CALLS,EMBED COST USD,NET SEMANTIC USD\n" +
		"acme,gpt-4o,4,,80000,20000,4000,0.215,99.7,,,0,0,0,0,0.00,0,0.00,0.00\n" +
		"globex,gpt-4o-mini,1,,3000,0,500,0.00075,0.3,,,0,0,0,0,0.00,0,0.00,0.00\n" +
		"umbrella,mystery-llm,1,,5,0,5,,,1,,0,0,0,0,0.00,0,0.00,0.00\n" +
		"TOTAL,,6,,83005,20000,4505,0.21575,100.0,1,,0,0,0,0,0.00,0,0.00,0.00\n"
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("report: %d\n%s\nstderr %s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestIngestStdinAndBadUsageE2E(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "ledger.db")
	r := runCostctl(t, dir, liveLog(time.Now()), nil, "ingest", "--db", db, "--tenant", "fallback", "--max-bad", "1", "-")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "ingested 6 · duplicates 0 · bad 1 · unpriced 1 · conflicts 0\n") ||
		r.Stderr != "stdin:7: "+badReason(t, `{"model":"gpt-4o"}`)+"\n" {
		t.Fatalf("stdin ingest: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	r = runCostctl(t, dir, "", nil, "ingest", "--db", db, "nope.jsonl")
	if r.Code != ExitError || r.Stderr != "costctl: ingest: nope.jsonl: no such file or directory\n" {
		t.Fatalf("missing file: %d %q", r.Code, r.Stderr)
	}
	r = runCostctl(t, dir, "", nil, "report", "--db", db, "--by", "planet")
	if r.Code != ExitUsage || !strings.HasPrefix(r.Stderr, `costctl: invalid --by column "planet"`) {
		t.Fatalf("bad --by: %d %q", r.Code, r.Stderr)
	}
	r = runCostctl(t, dir, "", nil, "top", "--db", filepath.Join(dir, "typo.db"))
	if r.Code != ExitError || r.Stderr != "costctl: no ledger at "+filepath.Join(dir, "typo.db")+" yet: bring usage in with costctl ingest FILE (or costctl eval), or point --db at an existing ledger\n" {
		t.Fatalf("missing ledger: %d %q", r.Code, r.Stderr)
	}
	r = runCostctl(t, dir, "", nil, "top", "--db", db, "--window", "month")
	if r.Code != ExitUsage || r.Stderr != "costctl: invalid --window \"month\" (expected today, 1h, 24h, 7d)\n" {
		t.Fatalf("bad --window: %d %q", r.Code, r.Stderr)
	}
}
