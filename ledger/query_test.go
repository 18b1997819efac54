package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func ev(key string, at time.Time, tenant, model string, cost pricing.Money) Event {
	return Event{Key: key, Time: at, Source: SourceIngest, Tenant: tenant, Model: model,
		InputTokens: 100, CachedTokens: 40, OutputTokens: 10, Cost: cost, LatencyMS: 200}
}

func TestInsertIdempotentAndTotals(t *testing.T) { forEachStore(t, testInsertIdempotentAndTotals) }

func testInsertIdempotentAndTotals(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	evs := []Event{
		ev("a", t0.Add(-90*time.Minute), "acme", "gpt-4o", pricing.Dollars(1)),
		ev("b", t0.Add(-30*time.Minute), "acme", "gpt-4o", pricing.Dollars(2)),
		ev("c", t0.Add(-2*time.Minute), "globex", "gpt-4o-mini", pricing.Dollars(3)),
		ev("c", t0.Add(-2*time.Minute), "globex", "gpt-4o-mini", pricing.Dollars(3)), // repeated in batch
	}
	u := ev("d", t0.Add(-1*time.Minute), "globex", "mystery-1", 0)
	u.Unpriced, u.LatencyMS = true, 0
	evs = append(evs, u)
	res, err := db.Insert(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 4 || res.Duplicates != 1 || fmt.Sprint(res.Skipped) != "[3]" {
		t.Fatalf("first insert: %+v", res)
	}
	res, err = db.Insert(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 0 || res.Duplicates != 5 || len(res.Skipped) != 5 {
		t.Fatalf("second insert: %+v", res)
	}
	tot, err := db.Totals(ctx, t0.Add(-time.Hour), t0)
	if err != nil {
		t.Fatal(err)
	}
	want := Totals{Calls: 3, InputTokens: 300, CachedTokens: 120, OutputTokens: 30, Cost: usd(pricing.Dollars(5)),
		UnpricedCalls: 1, LatencyMSSum: 400, LatencyCalls: 2}
	if tot != want {
		t.Fatalf("1h totals = %+v, want %+v", tot, want)
	}
	// A window with ragged edges on both sides of whole hours.
	tot, err = db.Totals(ctx, t0.Add(-150*time.Minute), t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if tot.Calls != 4 || tot.Cost != usd(pricing.Dollars(6)) {
		t.Fatalf("wide totals = %+v", tot)
	}
	if got := tot.AvgLatencyMS(); got != 200 {
		t.Fatalf("avg latency %d", got)
	}
	rows, err := db.Grouped(ctx, "tenant", t0.Add(-time.Hour), t0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.Key] = fmt.Sprintf("%d/%s/%d", r.Calls, r.Cost, r.UnpricedCalls)
	}
	if w := map[string]string{"acme": "1/2.00/0", "globex": "2/3.00/1"}; !reflect.DeepEqual(got, w) {
		t.Fatalf("grouped = %v, want %v", got, w)
	}
	series, err := db.MinuteSeries(ctx, t0.Add(-time.Minute), 5)
	if err != nil {
		t.Fatal(err)
	}
	var calls []int64
	for _, s := range series {
		calls = append(calls, s.Calls)
	}
	if !reflect.DeepEqual(calls, []int64{0, 0, 0, 1, 1}) {
		t.Fatalf("series calls = %v", calls)
	}
	if _, err := db.Grouped(ctx, "colour", t0, t0); err == nil {
		t.Fatal("want an error for an unknown dimension")
	}
}

func TestReportGroupsByLocalDay(t *testing.T) { forEachStore(t, testReportGroupsByLocalDay) }

func testReportGroupsByLocalDay(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	// Kolkata is UTC+5:30: 20:00 UTC on the 19th is already the 20th there.
	loc := time.FixedZone("IST", 5*3600+1800)
	evs := []Event{
		ev("1", time.Date(2026, 11, 19, 18, 0, 0, 0, time.UTC), "acme", "gpt-4o", pricing.Dollars(1)),  // 23:30 local, 19th
		ev("2", time.Date(2026, 11, 19, 18, 45, 0, 0, time.UTC), "acme", "gpt-4o", pricing.Dollars(2)), // 00:15 local, 20th
		ev("3", time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC), "acme", "gpt-4o", pricing.Dollars(4)),
		ev("4", time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC), "zeta", "gpt-4o", pricing.Dollars(8)),
		ev("5", time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC), "zeta", "gpt-4o", pricing.Dollars(16)), // outside
	}
	if _, err := db.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Report(ctx, ReportQuery{By: []string{"tenant", "day"}, Loc: loc,
		Start: time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%v %d %s", r.Keys, r.Calls, r.Cost))
	}
	want := []string{"[acme 2026-11-19] 1 1.00", "[zeta 2026-11-20] 1 8.00", "[acme 2026-11-20] 2 6.00"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("report = %q, want %q", got, want)
	}
	if _, err := db.Report(ctx, ReportQuery{By: []string{"colour"}}); err == nil {
		t.Fatal("want an error for an unknown column")
	}
}

func BenchmarkInsert(b *testing.B) {
	for _, s := range []string{"sqlite", "postgres"} {
		b.Run(s, func(b *testing.B) { benchmarkInsert(b, storeOpener(b, s)()) })
	}
}

func benchmarkInsert(b *testing.B, db *DB) {
	ctx := context.Background()
	const batch = 10000
	tenants := []string{"acme", "globex", "initech", "umbrella", "hooli"}
	models := []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet-4"}
	n := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		evs := make([]Event, batch)
		for j := range evs {
			n++
			evs[j] = Event{Key: fmt.Sprintf("ingest:%d", n), Time: t0.Add(time.Duration(n) * 10 * time.Millisecond),
				Source: SourceIngest, Tenant: tenants[n%len(tenants)], Model: models[n%len(models)],
				User: fmt.Sprintf("u%d", n%50), Endpoint: "/v1/chat", InputTokens: 1000, OutputTokens: 200,
				Cost: pricing.Money(n % 100000), LatencyMS: int64(n % 3000)}
		}
		if _, err := db.Insert(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// Every window, whatever its edges, sums the rollups to exactly what the
// events table holds in it (minute-granular).
func TestWindowsAgreeWithEvents(t *testing.T) { forEachStore(t, testWindowsAgreeWithEvents) }

func testWindowsAgreeWithEvents(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	var evs []Event
	for i := 0; i < 1500; i++ {
		at := base.Add(time.Duration(rng.Int64N(int64(9 * 24 * time.Hour))))
		e := Event{Key: fmt.Sprint(i), Time: at, Source: SourceIngest, Tenant: fmt.Sprint("t", rng.IntN(7)),
			InputTokens: 10 + rng.Int64N(5), OutputTokens: 1, Cost: pricing.Money(rng.Int64N(1e9)), LatencyMS: rng.Int64N(100)}
		if i%5 == 0 { // an eval cache hit: not a call
			e.Source, e.CacheHit, e.Avoided, e.Cost = SourceEval, true, e.Cost, 0
		}
		evs = append(evs, e)
	}
	if _, err := db.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		start := base.Add(time.Duration(rng.Int64N(int64(9 * 24 * time.Hour))))
		end := start.Add(time.Duration(rng.Int64N(int64([]time.Duration{time.Hour, 30 * time.Hour, 8 * 24 * time.Hour}[i%3]))))
		sm, em := minuteRange(start, end)
		var calls, dollars, cost, hits, in, avoidedIn, avoided int64
		if err := db.SQL().QueryRow(`SELECT COALESCE(SUM(CASE WHEN cache_hit = 0 THEN 1 ELSE 0 END), 0), COALESCE(SUM(cost_dollars), 0), COALESCE(SUM(cost_pico), 0), COALESCE(SUM(cache_hit), 0),
			COALESCE(SUM(CASE WHEN cache_hit = 0 THEN input_tokens END), 0), COALESCE(SUM(CASE WHEN cache_hit != 0 THEN input_tokens END), 0),
			COALESCE(SUM(CASE WHEN cache_hit != 0 THEN avoided_nano END), 0)
			FROM events WHERE ts_ms >= ? AND ts_ms < ?`,
			sm*60_000, em*60_000).Scan(&calls, &dollars, &cost, &hits, &in, &avoidedIn, &avoided); err != nil {
			t.Fatal(err)
		}
		tot, err := db.Totals(ctx, start, end)
		if err != nil {
			t.Fatal(err)
		}
		if tot.Calls != calls || tot.Cost != amountOf(dollars, cost) || tot.CacheHits != hits || tot.InputTokens != in ||
			tot.AvoidedInputTokens != avoidedIn || tot.Avoided != usd(pricing.Money(avoided)) {
			t.Fatalf("window %s..%s: rollups %+v, events calls %d cost %d hits %d in %d avoided in %d avoided %d",
				start, end, tot, calls, cost, hits, in, avoidedIn, avoided)
		}
		// Open-ended (the window ends now, after every event): everything from start on.
		now := base.Add(9*24*time.Hour + time.Duration(rng.Int64N(int64(time.Hour))))
		var ocalls, odollars, ocost int64
		if err := db.SQL().QueryRow(`SELECT COALESCE(SUM(CASE WHEN cache_hit = 0 THEN 1 ELSE 0 END), 0), COALESCE(SUM(cost_dollars), 0), COALESCE(SUM(cost_pico), 0) FROM events WHERE ts_ms >= ?`,
			sm*60_000).Scan(&ocalls, &odollars, &ocost); err != nil {
			t.Fatal(err)
		}
		otot, err := db.TotalsSince(ctx, start, now)
		if err != nil {
			t.Fatal(err)
		}
		if otot.Calls != ocalls || otot.Cost != amountOf(odollars, ocost) {
			t.Fatalf("since %s: rollups %d/%s, events %d/%d", start, otot.Calls, otot.Cost, ocalls, ocost)
		}
		orows, err := db.GroupedSince(ctx, "tenant", start, now)
		if err != nil {
			t.Fatal(err)
		}
		var ogc int64
		for _, r := range orows {
			ogc += r.Calls
			if r.Calls < 0 || r.Empty() {
				t.Fatalf("since %s: row %+v", start, r)
			}
		}
		if ogc != ocalls {
			t.Fatalf("since %s: grouped calls %d, events %d", start, ogc, ocalls)
		}
		rows, err := db.Grouped(ctx, "tenant", start, end)
		if err != nil {
			t.Fatal(err)
		}
		var gc int64
		for _, r := range rows {
			gc += r.Calls
		}
		if gc != calls {
			t.Fatalf("window %s..%s: grouped calls %d, events %d", start, end, gc, calls)
		}
	}
}

// Reports answered from the rollups equal reports read from the events.
func TestReportRollupsAgreeWithEvents(t *testing.T) {
	forEachStore(t, testReportRollupsAgreeWithEvents)
}

func testReportRollupsAgreeWithEvents(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	rng := rand.New(rand.NewPCG(5, 6))
	base := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	var evs []Event
	for i := 0; i < 1500; i++ {
		at := base.Add(time.Duration(rng.Int64N(int64(5 * 24 * time.Hour))))
		e := Event{Key: fmt.Sprint(i), Time: at, Source: SourceIngest, Tenant: fmt.Sprint("t", rng.IntN(5)),
			Model: fmt.Sprint("m", rng.IntN(3)), InputTokens: rng.Int64N(1000), OutputTokens: 1,
			Cost: pricing.Money(rng.Int64N(1e9)), LatencyMS: rng.Int64N(3)}
		e.Unpriced = e.Model == "m2"
		if i%7 == 0 { // an eval cache hit
			e.Source, e.CacheHit, e.Avoided, e.Cost, e.Unpriced = SourceEval, true, e.Cost, 0, false
		}
		evs = append(evs, e)
	}
	if _, err := db.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	ist := time.FixedZone("IST", 5*3600+1800)
	bys := [][]string{{"tenant"}, {"tenant", "day"}, {"day"}, {"hour", "model"}, {"model", "hour"}, {"user"}, {"source", "tenant"}}
	for i := 0; i < 24; i++ {
		start := base.Add(time.Duration(rng.Int64N(int64(5*24*time.Hour))) - 12*time.Hour)
		end := start.Add(time.Duration(rng.Int64N(int64(3 * 24 * time.Hour))))
		q := ReportQuery{By: bys[i%len(bys)], Start: start, End: end, Loc: []*time.Location{time.UTC, ist}[i%2]}
		got, err := db.Report(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		q.fromEvents = true
		want, err := db.Report(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%v %s..%s %s:\nrollups %v\nevents  %v", q.By, start, end, q.Loc, got, want)
		}
	}
}

// usd is m as an exact Amount.
func usd(m pricing.Money) pricing.Amount { return pricing.AmountFromMoney(m) }
