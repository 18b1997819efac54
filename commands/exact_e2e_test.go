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

// Each kind of token is stored apart and reports show it: Anthropic's
// 5-minute and 1-hour cache writes and OpenAI Responses' reasoning tokens,
// the same from the rollups (by tenant) and from the events (by tenant
// and model).
func TestReportTokenKindsE2E(t *testing.T) {
	dir := t.TempDir()
	ts := time.Now().Add(-time.Minute).Unix()
	log := writeFile(t, dir, "usage.jsonl", fmt.Sprintf(
		`{"id":"msg_1","type":"message","model":"claude-sonnet-4-5","created":%d,"tenant":"acme","usage":{"input_tokens":100,"cache_read_input_tokens":0,"cache_creation_input_tokens":3000,"cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000},"output_tokens":50}}`+"\n"+
			`{"id":"resp_1","object":"response","created_at":%d,"model":"gpt-5","tenant":"acme","usage":{"input_tokens":200,"input_tokens_details":{"cached_tokens":0},"output_tokens":900,"output_tokens_details":{"reasoning_tokens":700}}}`+"\n", ts, ts))
	db := dir + "/l.db"
	if r := runCostctl(t, dir, "", nil, "ingest", "--db", db, log); r.Code != 0 {
		t.Fatalf("ingest: %d %s", r.Code, r.Stderr)
	}
	for _, by := range []string{"tenant", "tenant,model"} {
		r := runCostctl(t, dir, "", nil, "report", "--db", db, "--since", "1h", "--by", by, "--format", "json")
		var rep struct {
			Totals struct {
				In        int64 `json:"input_tokens"`
				W5        int64 `json:"cache_write_5m_tokens"`
				W1        int64 `json:"cache_write_1h_tokens"`
				Reasoning int64 `json:"reasoning_tokens"`
				Out       int64 `json:"output_tokens"`
			} `json:"totals"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || r.Code != 0 {
			t.Fatalf("report by %s: %v %s %s", by, err, r.Stdout, r.Stderr)
		}
		if got := fmt.Sprintf("%+v", rep.Totals); got != "{In:3300 W5:1000 W1:2000 Reasoning:700 Out:950}" {
			t.Errorf("by %s: totals %s", by, got)
		}
	}
}
