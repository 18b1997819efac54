package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

// A v1 ledger (before events.estimate) opens and migrates in place, keeping
// its events.
func TestMigrateV1ToV2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range splitSQL(migrations[0]()) {
		if _, err := raw.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(`INSERT INTO events (event_key, ts_ms, source, cost_nano) VALUES ('old', 1, 'ingest', 42); PRAGMA user_version = 1`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	var est string
	var cost int64
	db.SQL().QueryRow(`PRAGMA user_version`).Scan(&v)
	if err := db.SQL().QueryRow(`SELECT estimate, cost_nano FROM events WHERE event_key = 'old'`).Scan(&est, &cost); err != nil || v != SchemaVersion || est != "" || cost != 42 {
		t.Fatalf("after migration: version %d estimate %q cost %d err %v", v, est, cost, err)
	}
	if _, err := db.Insert(ctx, []Event{{Key: "new", Time: time.Unix(60, 0), Source: SourceEval, Cost: 7, Estimate: EstimateNoUsage}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SQL().QueryRow(`SELECT estimate FROM events WHERE event_key = 'new'`).Scan(&est); err != nil || est != EstimateNoUsage {
		t.Fatalf("estimate %q %v", est, err)
	}
}

// Record writes events and verdicts in one transaction: when the verdict
// cannot be written, neither is the event.
func TestRecordIsAtomic(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ev := []Event{{Key: "eval:r:1:q:1", Time: time.Unix(60, 0), Source: SourceEval, Cost: 100}}
	// A verdict with a NaN score violates NOT NULL in SQLite (NaN binds as NULL).
	bad := []JudgeResult{{Key: "k", Metric: "q", Model: "m", Score: nan()}}
	if _, err := db.Record(ctx, ev, bad); err == nil {
		t.Fatal("a bad verdict was accepted")
	}
	var n int64
	db.SQL().QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n)
	if n != 0 {
		t.Fatalf("the event was written without its verdict: %d rows", n)
	}
	if _, err := db.Record(ctx, ev, []JudgeResult{{Key: "k", Metric: "q", Model: "m", Score: 0.5}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.GetJudge(ctx, "k"); !ok || err != nil {
		t.Fatalf("verdict missing: %v", err)
	}
	db.SQL().QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n)
	if n != 1 {
		t.Fatalf("events %d", n)
	}
}

// IsBusy recognises SQLite's lock errors and nothing else.
func TestIsBusy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	db, err := OpenWith(ctx, path, OpenOptions{BusyTimeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	other, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, _ := other.SQL().Conn(ctx)
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	_, err = db.Insert(ctx, []Event{{Key: "x", Time: time.Unix(60, 0), Source: SourceEval}})
	conn.ExecContext(ctx, "ROLLBACK")
	if err == nil || !IsBusy(err) {
		t.Fatalf("locked insert: %v (busy=%v)", err, IsBusy(err))
	}
	if IsBusy(errors.New("database is locked")) || IsBusy(nil) {
		t.Error("IsBusy matched a plain error")
	}
}

func nan() float64 {
	var zero float64
	return zero / zero
}

// Costs are exact to the pico-dollar in every sum, and sums far beyond an
// int64 of nano-dollars ($9.2 billion) neither wrap nor round.
func TestExactSums(t *testing.T) { forEachStore(t, testExactSums) }

func testExactSums(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	rate, _ := pricing.ParseRatePer1M("2.1875")
	one, err := rate.CostAmount(1)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var evs []Event
	for i := 0; i < 10; i++ {
		evs = append(evs, Event{Key: fmt.Sprint("tiny", i), Time: t0, Source: SourceIngest, Tenant: "acme", Model: "m", InputTokens: 1, CostExact: one})
	}
	// $10^12 in 1,000 events of $10^9 each, for another tenant.
	for i := 0; i < 1000; i++ {
		evs = append(evs, Event{Key: fmt.Sprint("huge", i), Time: t0, Source: SourceIngest, Tenant: "whale", Model: "m", InputTokens: 1,
			CostExact: pricing.Amount{Dollars: 1_000_000_000}})
	}
	if _, err := db.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Grouped(ctx, "tenant", t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.Key] = r.Cost.String()
	}
	if got["acme"] != "0.000021875" || got["whale"] != "1000000000000.00" {
		t.Errorf("grouped = %v", got)
	}
	tot, err := db.Totals(ctx, t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil || tot.Cost.String() != "1000000000000.000021875" {
		t.Errorf("totals %s %v", tot.Cost, err)
	}
	// Grouping by two dimensions reads the events: the same exact sums.
	rep, err := db.Report(ctx, ReportQuery{By: []string{"tenant", "model"}, Start: t0.Add(-time.Hour), End: t0.Add(time.Hour), Loc: time.UTC})
	if err != nil || len(rep) != 2 || rep[0].Cost.String() != "1000000000000.00" || rep[1].Cost.String() != "0.000021875" {
		t.Errorf("report %+v %v", rep, err)
	}
}
