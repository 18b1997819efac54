package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// Ingest with one price file, reprice with another: report shows the new
// totals, the rollups agree with the events, and a second reprice changes
// nothing.
func TestRepriceE2E(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "usage.jsonl", usageLog3)
	// At ingest: gpt-4o mispriced at $5/$20, the fine-tune at $1/$2.
	writeFile(t, dir, "wrong.yaml", "models:\n  gpt-4o:\n    input_per_1m: \"5\"\n    output_per_1m: \"20\"\n"+
		"  my-finetune:\n    input_per_1m: \"1\"\n    output_per_1m: \"2\"\n")
	// The fix: the fine-tune at $3, and a price for mystery-llm; gpt-4o back to the built-in $2.50/$10.
	writeFile(t, dir, "fixed.yaml", "as_of: \"2026-11-15\"\nmodels:\n  my-finetune:\n    input_per_1m: \"3\"\n    output_per_1m: \"3\"\n"+
		"  mystery-llm:\n    input_per_1m: \"1\"\n    output_per_1m: \"1\"\n")
	db := filepath.Join(dir, "ledger.db")
	env := []string{"COSTCTL_DB=" + db}

	r := runCostctl(t, dir, "", env, "--pricing", "wrong.yaml", "ingest", "usage.jsonl")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "ingested 3 · duplicates 0 · bad 0 · unpriced 1") {
		t.Fatalf("ingest: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	total := func() string {
		t.Helper()
		r := runCostctl(t, dir, "", env, "report", "--since", "2026-11-01", "--format", "json")
		var doc struct {
			Totals struct {
				Calls    int64  `json:"calls"`
				Cost     string `json:"cost_usd"`
				Unpriced int64  `json:"unpriced_calls"`
			} `json:"totals"`
		}
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &doc) != nil {
			t.Fatalf("report: %d %q %q", r.Code, r.Stdout, r.Stderr)
		}
		return fmt.Sprintf("%d calls $%s, %d unpriced", doc.Totals.Calls, doc.Totals.Cost, doc.Totals.Unpriced)
	}
	// $5 + $2 (gpt-4o) + $2 (fine-tune) + mystery-llm unpriced.
	if got := total(); got != "3 calls $9.00, 1 unpriced" {
		t.Fatalf("after ingest: %s", got)
	}

	r = runCostctl(t, dir, "", env, "--pricing", "fixed.yaml", "reprice", "--dry-run")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "dry run, nothing written: would reprice 3 events (all time)") || total() != "3 calls $9.00, 1 unpriced" {
		t.Fatalf("dry run: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	r = runCostctl(t, dir, "", env, "--pricing", "fixed.yaml", "reprice")
	want := "repriced 3 events (all time) with prices as of 2026-12-01 (overrides: fixed.yaml as of 2026-11-15): 3 changed\n" +
		"cost $9.00+ → $10.05 (delta +$1.05) · unpriced events 1 → 0\n"
	if r.Code != 0 || r.Stdout != want || r.Stderr != "" {
		t.Fatalf("reprice: %d\n%s\nwant\n%s\nstderr %q", r.Code, r.Stdout, want, r.Stderr)
	}
	// $2.50 + $1 (gpt-4o) + $6 (fine-tune) + $0.50 + $0.05 (mystery-llm).
	if got := total(); got != "3 calls $10.05, 0 unpriced" {
		t.Fatalf("after reprice: %s", got)
	}
	assertRollupsMatchEvents(t, db)

	r = runCostctl(t, dir, "", env, "--pricing", "fixed.yaml", "reprice", "--format", "json")
	var doc struct {
		Changed int64  `json:"changed"`
		Delta   string `json:"delta_usd"`
		AsOf    string `json:"prices_as_of"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &doc) != nil || doc.Changed != 0 || doc.Delta != "0.00" || doc.AsOf != "2026-12-01" {
		t.Fatalf("second reprice: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	// Without the price file, the fine-tune and mystery-llm have no price: unpriced, never $0.
	r = runCostctl(t, dir, "", env, "reprice", "--since", "2026-11-20")
	want = "repriced 2 events (since 2026-11-20T00:00:00Z) with prices as of 2026-12-01: 1 changed\n" +
		"cost $9.50 → $3.50+ (delta -$6.00) · unpriced events 0 → 1\n" +
		"unpriced models: my-finetune (1); their cost stays unknown, not $0 (add prices with --pricing FILE and reprice again)\n"
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("reprice without the file: %d\n%s\nwant\n%s", r.Code, r.Stdout, want)
	}
	if got := total(); got != "3 calls $4.05, 1 unpriced" {
		t.Fatalf("after repricing today without the file: %s", got)
	}
	assertRollupsMatchEvents(t, db)
}

// assertRollupsMatchEvents compares what top and report read (rollups) with
// a direct sum over the events, for every dimension.
func assertRollupsMatchEvents(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := ledger.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var calls, unpriced, dollars, cost int64
	if err := db.SQL().QueryRow(`SELECT COUNT(*), COALESCE(SUM(unpriced), 0), COALESCE(SUM(cost_dollars), 0), COALESCE(SUM(cost_pico), 0) FROM events`).Scan(&calls, &unpriced, &dollars, &cost); err != nil {
		t.Fatal(err)
	}
	start, end := time.Unix(0, 0), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	tot, err := db.Totals(ctx, start, end)
	if err != nil || tot.Calls != calls || tot.UnpricedCalls != unpriced || tot.Cost != (pricing.Amount{Dollars: dollars}).AddPico(cost) {
		t.Fatalf("rollups %+v (%v), events: %d calls, %d unpriced, %d pico", tot, err, calls, unpriced, cost)
	}
	for _, dim := range ledger.Dimensions {
		rows, err := db.Grouped(ctx, dim, start, end)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, fmt.Sprintf("%s %d %d %s", r.Key, r.Calls, r.UnpricedCalls, r.Cost))
		}
		sort.Strings(got)
		col := dim
		if dim == "user" {
			col = `"user"`
		}
		q, err := db.SQL().Query(`SELECT ` + col + `, COUNT(*), SUM(unpriced), SUM(cost_dollars), SUM(cost_pico) FROM events GROUP BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for q.Next() {
			var k string
			var c, u, d, p int64
			q.Scan(&k, &c, &u, &d, &p)
			want = append(want, fmt.Sprintf("%s %d %d %s", k, c, u, pricing.Amount{Dollars: d}.AddPico(p)))
		}
		q.Close()
		sort.Strings(want)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("by %s: rollups %q, events %q", dim, got, want)
		}
	}
}

// The examples in reprice's help run.
func TestRepriceHelpExamplesE2E(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "usage.jsonl", usageLog3)
	writeFile(t, dir, "prices.yaml", "models:\n  my-finetune:\n    input_per_1m: \"3\"\n    output_per_1m: \"3\"\n")
	env := []string{"COSTCTL_DB=" + filepath.Join(dir, "ledger.db")}
	if r := runCostctl(t, dir, "", env, "ingest", "usage.jsonl"); r.Code != 0 {
		t.Fatalf("ingest: %d %s", r.Code, r.Stderr)
	}
	for _, cmd := range []string{"reprice", "report", "top"} {
		r := runCostctl(t, dir, "", env, cmd, "--help")
		_, ex, ok := strings.Cut(r.Stdout, "Examples:\n")
		if r.Code != 0 || !ok || !strings.Contains(r.Stdout, "EXIT STATUS") {
			t.Fatalf("%s --help: %d\n%s", cmd, r.Code, r.Stdout)
		}
		ex, _, _ = strings.Cut(ex, "\nFlags:")
		n := 0
		for _, line := range strings.Split(regexp.MustCompile(`\\\n\s*`).ReplaceAllString(ex, ""), "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "costctl ") {
				continue
			}
			n++
			args := strings.Fields(strings.TrimPrefix(line, "costctl "))
			if len(args) > 2 && args[len(args)-2] == ">" { // costctl report ... > november.csv
				args = args[:len(args)-2]
			}
			if cmd == "top" && !strings.Contains(line, "--once") {
				args = append(args, "--once") // not a terminal: one snapshot
			}
			r := runCostctl(t, dir, "", env, args...)
			if (r.Code != 0 && r.Code != ExitGate) || r.Stdout == "" {
				t.Errorf("example %q: exit %d, stderr %q", line, r.Code, r.Stderr)
			}
		}
		if n < 2 {
			t.Errorf("%s: only %d examples", cmd, n)
		}
	}
}
