package ledger

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

// hitEv is an eval cache hit: no cost, the tokens of the call it stood in
// for, and what that call would have cost.
func hitEv(key string, at time.Time, tenant, model string, avoided pricing.Money) Event {
	e := ev(key, at, tenant, model, 0)
	e.Source, e.Metric, e.CacheHit, e.Avoided, e.LatencyMS = SourceEval, "faithful", true, avoided, 0
	return e
}

// Calls and tokens are what a provider billed; cache hits are counted
// apart, their tokens and cost avoided — in every read.
func TestCacheHitsAreNotCalls(t *testing.T) { forEachStore(t, testCacheHitsAreNotCalls) }

func testCacheHitsAreNotCalls(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	evs := []Event{
		ev("a", t0.Add(-50*time.Minute), "acme", "gpt-4o", pricing.Dollars(1)),
		ev("b", t0.Add(-40*time.Minute), "acme", "gpt-4o", pricing.Dollars(2)),
		hitEv("h1", t0.Add(-40*time.Minute), "acme", "gpt-4o", pricing.Dollars(2)),
		hitEv("h2", t0.Add(-10*time.Minute), "globex", "gpt-4o-mini", pricing.Dollars(3)),
	}
	if _, err := db.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// ev: 100 input, 40 cached, 10 output, 200 ms.
	all := Totals{Calls: 2, InputTokens: 200, CachedTokens: 80, OutputTokens: 20, Cost: usd(pricing.Dollars(3)),
		CacheHits: 2, AvoidedInputTokens: 200, AvoidedCachedTokens: 80, AvoidedOutputTokens: 20, Avoided: usd(pricing.Dollars(5)),
		LatencyMSSum: 400, LatencyCalls: 2}
	acme := Totals{Calls: 2, InputTokens: 200, CachedTokens: 80, OutputTokens: 20, Cost: usd(pricing.Dollars(3)),
		CacheHits: 1, AvoidedInputTokens: 100, AvoidedCachedTokens: 40, AvoidedOutputTokens: 10, Avoided: usd(pricing.Dollars(2)),
		LatencyMSSum: 400, LatencyCalls: 2}
	globex := Totals{CacheHits: 1, AvoidedInputTokens: 100, AvoidedCachedTokens: 40, AvoidedOutputTokens: 10, Avoided: usd(pricing.Dollars(3))}
	start, end := t0.Add(-time.Hour), t0

	tot, err := db.Totals(ctx, start, end)
	if err != nil || tot != all {
		t.Fatalf("Totals %+v %v\nwant %+v", tot, err, all)
	}
	if tot, err = db.TotalsSince(ctx, start, end); err != nil || tot != all {
		t.Fatalf("TotalsSince %+v %v", tot, err)
	}
	wantRows := []GroupRow{{"acme", acme}, {"globex", globex}}
	for name, f := range map[string]func(context.Context, string, time.Time, time.Time) ([]GroupRow, error){
		"Grouped": db.Grouped, "GroupedSince": db.GroupedSince, "LiveCache": db.NewLiveCache().GroupedSince,
	} {
		rows, err := f(ctx, "tenant", start, end)
		if err != nil || !reflect.DeepEqual(sortedRows(rows), wantRows) {
			t.Fatalf("%s %+v %v\nwant %+v", name, rows, err, wantRows)
		}
	}
	series, err := db.MinuteSeries(ctx, end, 60)
	if err != nil {
		t.Fatal(err)
	}
	var sum Totals
	for _, s := range series {
		sum.Add(s)
	}
	if sum != all {
		t.Fatalf("MinuteSeries sums to %+v", sum)
	}
	// A report from the rollups and one from the events say the same.
	for _, by := range [][]string{{"tenant"}, {"tenant", "model"}} {
		q := ReportQuery{By: by, Start: start, End: end, Loc: time.UTC}
		rows, err := db.Report(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		q.fromEvents = true
		ev, err := db.Report(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(rows, ev) || len(rows) != 2 || rows[0].Totals != acme || rows[1].Totals != globex {
			t.Fatalf("report by %v:\nrollups %+v\nevents  %+v", by, rows, ev)
		}
	}
}

// Migration v4 fills the hit columns from the cache hits a v3 ledger
// already holds: it then reads as if they had been kept from the start.
func TestMigrateV3ToV4KeepsHitsApart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	evs := []Event{
		ev("a", t0.Add(-50*time.Minute), "acme", "gpt-4o", pricing.Dollars(1)),
		hitEv("h1", t0.Add(-40*time.Minute), "acme", "gpt-4o", pricing.Dollars(2)),
		hitEv("h2", t0.Add(-26*time.Hour), "globex", "gpt-4o-mini", pricing.Dollars(3)),
		hitEv("h3", time.Date(1969, 12, 31, 23, 59, 30, 0, time.UTC), "old", "gpt-4o", 7), // before 1970: floor, not truncation
	}
	db := writeLedger(t, path, evs)
	want := readAll(t, db)
	old, err := db.Totals(ctx, time.Unix(-3600, 0), time.Unix(3600, 0))
	if err != nil || old.CacheHits != 1 || old.Avoided != usd(7) {
		t.Fatalf("1969: %+v %v", old, err)
	}
	downgradeToV3(t, db)
	var epoch int64
	db.SQL().QueryRow(`SELECT writes FROM rollup_epoch WHERE day = ?`, floorDiv(t0.Add(-26*time.Hour).UnixMilli(), 86_400_000)).Scan(&epoch)
	db.Close()
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := readAll(t, db); got != want {
		t.Fatalf("after migrating\n%s\nwant\n%s", got, want)
	}
	if tot, err := db.Totals(ctx, time.Unix(-3600, 0), time.Unix(3600, 0)); err != nil || tot != old {
		t.Fatalf("1969 after migrating: %+v %v, want %+v", tot, err, old)
	}
	var after int64
	db.SQL().QueryRow(`SELECT writes FROM rollup_epoch WHERE day = ?`, floorDiv(t0.Add(-26*time.Hour).UnixMilli(), 86_400_000)).Scan(&after)
	if after != epoch+1 {
		t.Fatalf("a day with hits: epoch %d → %d, want a bump (LiveCache rereads it)", epoch, after)
	}
	// The trigger is back: a new hit is kept apart too.
	if _, err := db.Insert(ctx, []Event{hitEv("h4", t0.Add(-time.Minute), "acme", "gpt-4o", 5)}); err != nil {
		t.Fatal(err)
	}
	tot, err := db.TotalsSince(ctx, t0.Add(-time.Hour), t0)
	if err != nil || tot.Calls != 1 || tot.CacheHits != 2 || tot.InputTokens != 100 || tot.AvoidedInputTokens != 200 {
		t.Fatalf("after a new hit: %+v %v", tot, err)
	}
}

// splitSQL keeps a trigger's body in one statement.
func TestSplitSQLKeepsTriggers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"CREATE TABLE a (x);\n-- note\nCREATE TABLE b (y);\n", []string{"CREATE TABLE a (x)", "CREATE TABLE b (y)"}},
		{"CREATE TABLE a (x);\nCREATE TRIGGER t AFTER INSERT ON a\nBEGIN\nINSERT INTO b VALUES (1);\nINSERT INTO b VALUES (2);\nEND;\nDROP TABLE c;\n",
			[]string{"CREATE TABLE a (x)", "CREATE TRIGGER t AFTER INSERT ON a\nBEGIN\nINSERT INTO b VALUES (1);\nINSERT INTO b VALUES (2);\nEND", "DROP TABLE c"}},
	} {
		if got := splitSQL(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitSQL(%q)\n= %q\nwant %q", tc.in, got, tc.want)
		}
	}
	// The v4 migration: 12 columns, 21 back-fills, the epoch bump, the
	// temp table, and one trigger of 21 upserts.
	stmts := splitSQL(hitRollupsMigration())
	if len(stmts) != 12+1+21+1+1+1 {
		t.Fatalf("%d statements", len(stmts))
	}
	last := stmts[len(stmts)-1]
	if !strings.HasPrefix(last, "CREATE TRIGGER events_cache_hit_rollups") || strings.Count(last, "ON CONFLICT") != 21 || !strings.HasSuffix(last, "END") {
		t.Fatalf("trigger:\n%s", last)
	}
	if migrations[3]() != hitRollupsMigration() {
		t.Fatal("hitRollupsMigration is v4")
	}
}
