package commands

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A line with 10^15 output tokens is a bad line, never a cost that wraps:
// the tenant's spend stays exact and positive and the over-budget alert
// still fires. Prices with six decimals sum exactly across events.
func TestIngestBoundsAndExactSumsE2E(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	var b strings.Builder
	// $15 output for 1M tokens of gpt-4o: 100 events of 100,000 output tokens = $100 (over a $50 budget).
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, `{"id":"big-%d","ts":%d,"tenant":"acme","model":"gpt-4o","input_tokens":0,"output_tokens":100000}`+"\n", i, now.Add(-2*time.Minute).Unix())
	}
	fmt.Fprintf(&b, `{"id":"huge","ts":%d,"tenant":"acme","model":"gpt-4o","input_tokens":10,"output_tokens":1000000000000000}`+"\n", now.Add(-time.Minute).Unix())
	// Ten 1-token events at $2.1875/1M (an override price): $0.000021875 exactly.
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&b, `{"id":"tiny-%d","ts":%d,"tenant":"tiny","model":"odd-price","input_tokens":1,"output_tokens":0}`+"\n", i, now.Add(-time.Minute).Unix())
	}
	log := writeFile(t, dir, "usage.jsonl", b.String())
	writeFile(t, dir, "prices.yaml", "as_of: \"2026-11-30\"\nmodels:\n  odd-price:\n    provider: test\n    input_per_1m: \"2.1875\"\n    output_per_1m: \"2.1875\"\n")
	db := dir + "/l.db"
	r := runCostctl(t, dir, "", nil, "--pricing", "prices.yaml", "ingest", "--db", db, log)
	if r.Code != ExitError || !strings.Contains(r.Stderr, log+":101: ") || !strings.Contains(r.Stderr, "output_tokens") ||
		!strings.Contains(r.Stderr, "ingested 110 · duplicates 0 · bad 1") {
		t.Fatalf("ingest: exit %d\n%s", r.Code, r.Stderr)
	}
	r = runCostctl(t, dir, "", nil, "report", "--db", db, "--since", "1h", "--format", "json")
	var rep struct {
		Rows []struct {
			Group map[string]string `json:"group"`
			Cost  string            `json:"cost_usd"`
		} `json:"rows"`
		Totals struct {
			Cost string `json:"cost_usd"`
		} `json:"totals"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || r.Code != 0 {
		t.Fatalf("report: %v %d %s %s", err, r.Code, r.Stdout, r.Stderr)
	}
	got := map[string]string{}
	for _, row := range rep.Rows {
		got[row.Group["tenant"]] = row.Cost
	}
	if got["acme"] != "100.00" || got["tiny"] != "0.000021875" || rep.Totals.Cost != "100.000021875" {
		t.Errorf("report costs %v total %s", got, rep.Totals.Cost)
	}
	r = runCostctl(t, dir, "", nil, "top", "--db", db, "--once", "--format", "json", "--daily-budget", "50", "--window", "1h", "--fail-on-alert")
	if r.Code != ExitGate || !strings.Contains(r.Stdout, `"spend_usd": "100.000021875"`) || !strings.Contains(r.Stdout, `"kind": "over_budget"`) {
		t.Errorf("top: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}
