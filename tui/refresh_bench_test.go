package tui

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/costctl/costctl/internal/pgtest"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// BenchmarkRefresh times one refresh of top (every query a refresh runs)
// on a big ledger: COSTCTL_BENCH_EVENTS events (default 1,000,000) spread
// over the last 7 days, 200 tenants, 12 models, 5,000 users, 20 endpoints.
// The ledger is built with bulk SQL (events, then rollups aggregated from
// them), and kept at COSTCTL_BENCH_DB when that is set, so a 10M ledger is
// built once:
//
//	COSTCTL_BENCH_EVENTS=10000000 COSTCTL_BENCH_DB=/tmp/costctl-10m.db \
//	  go test ./tui -run '^$' -bench Refresh -benchtime 10x
//
// Measured on the 2-core CI-class box (2026-11-22), 10M events, ledger 1.8 GB
// (built in 6m34s): one refresh of today by tenant 8.5 ms; 1h by model
// 2.9 ms; 7d by user (5,000 rows) 317 ms for the first refresh and 128 ms
// for later ones (past days from ledger.LiveCache). Reading through
// ledger.OpenReadOnly (a connection per query) changed none of these
// beyond the box's noise at 1M events (2026-12-02).
func BenchmarkRefresh(b *testing.B) {
	n := int64(1_000_000)
	if s := os.Getenv("COSTCTL_BENCH_EVENTS"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			b.Fatalf("COSTCTL_BENCH_EVENTS=%q: want a positive integer", s)
		}
		n = v
	}
	path := os.Getenv("COSTCTL_BENCH_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "big.db")
	}
	ctx := context.Background()
	if ledger.IsPostgresURL(path) {
		if err := ensureSchema(ctx, path); err != nil {
			b.Fatal(err)
		}
	}
	db, err := ledger.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	// The ledger's data ends at benchNow; refreshes are taken there.
	benchNow := time.Date(2026, 11, 20, 14, 30, 20, 0, time.UTC)
	var have int64
	if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have != n {
		if have != 0 {
			b.Fatalf("%s holds %d events, not %d: remove it or point COSTCTL_BENCH_DB elsewhere", path, have, n)
		}
		start := time.Now()
		build := buildBig
		if db.IsPostgres() {
			build = buildBigPG
		}
		if err := build(ctx, db, n, benchNow); err != nil {
			b.Fatal(err)
		}
		b.Logf("built a %d-event ledger in %s (%s)", n, time.Since(start).Round(time.Millisecond), path)
	}
	// top reads the ledger read-only, as measured here: the main file
	// alone, or with COSTCTL_BENCH_WRITER=1 through the -wal of a writer
	// that keeps it open.
	if os.Getenv("COSTCTL_BENCH_WRITER") != "1" {
		db.Close()
	}
	ro, err := ledger.OpenReadOnly(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer ro.Close()
	db = ro
	for _, c := range []struct {
		name          string
		window, group string
	}{
		{"today_by_tenant", "today", "tenant"},
		{"7d_by_user", "7d", "user"},
		{"1h_by_model", "1h", "model"},
	} {
		cfg := Config{Window: c.window, GroupBy: c.group, DailyBudget: pricing.Dollars(500), LatencyAlert: 30 * time.Second, Loc: time.UTC}
		// A first refresh (top --once, or top's first screen): nothing cached.
		b.Run(c.name+"/first", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				s, err := Fetch(ctx, db, cfg, benchNow)
				if err != nil {
					b.Fatal(err)
				}
				if s.Spend.Calls == 0 {
					b.Fatal("empty snapshot")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/refresh")
		})
		// Every later refresh of the live view: past days come from the cache.
		b.Run(c.name+"/live", func(b *testing.B) {
			cache := db.NewLiveCache()
			if _, err := FetchCached(ctx, db, cache, cfg, benchNow); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := FetchCached(ctx, db, cache, cfg, benchNow); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/refresh")
		})
	}
}

// buildBig fills db with n synthetic events ending at now and the rollups
// that Insert would have kept, using set-based SQL (far faster than Insert
// for a fixture this size).
func buildBig(ctx context.Context, db *ledger.DB, n int64, now time.Time) error {
	span := int64(7 * 24 * time.Hour / time.Millisecond)
	end := now.UnixMilli()
	conn := db.SQL()
	stmts := []string{
		`PRAGMA cache_size = -262144`,
		`DROP INDEX IF EXISTS events_ts`,
		`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < ?1)
		 INSERT INTO events (event_key, ts_ms, source, tenant, user, endpoint, model, input_tokens, cached_tokens,
		                     output_tokens, cost_nano, cost_pico, unpriced, latency_ms)
		 SELECT 'bench:' || i, ?2 - ?3 + (i * ?3) / ?1, 'ingest', 't' || ((i * 7919) % 200), 'u' || ((i * 104729) % 5000),
		        '/v1/e' || (i % 20), 'model-' || ((i * 31) % 12), 1000 + i % 977, i % 300, 100 + i % 211,
		        CASE WHEN (i * 31) % 12 = 11 THEN 0 ELSE 1000 + (i % 1000) * 1000 END,
		        CASE WHEN (i * 31) % 12 = 11 THEN 0 ELSE 1000000 + (i % 1000) * 1000000 END,
		        CASE WHEN (i * 31) % 12 = 11 THEN 1 ELSE 0 END, 200 + i % 4000
		 FROM c`,
		`CREATE INDEX events_ts ON events(ts_ms)`,
	}
	for i, s := range stmts {
		var err error
		if i == 2 {
			_, err = conn.ExecContext(ctx, s, n, end, span)
		} else {
			_, err = conn.ExecContext(ctx, s)
		}
		if err != nil {
			return err
		}
	}
	if err := buildRollups(ctx, db, false); err != nil {
		return err
	}
	_, err := conn.ExecContext(ctx, `ANALYZE`)
	return err
}

// The benchmark's bulk-built rollups must agree with its events, or the
// benchmark would time the wrong thing.
func TestBigBuilderRollupsAgree(t *testing.T) {
	ctx := context.Background()
	db, err := ledger.Open(ctx, filepath.Join(t.TempDir(), "big.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 11, 20, 14, 30, 20, 0, time.UTC)
	if err := buildBig(ctx, db, 500, now); err != nil {
		t.Fatal(err)
	}
	tot, err := db.Totals(ctx, now.Add(-8*24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	var calls, cost, unpriced int64
	if err := db.SQL().QueryRow(`SELECT COUNT(*), SUM(cost_nano), SUM(unpriced) FROM events`).Scan(&calls, &cost, &unpriced); err != nil {
		t.Fatal(err)
	}
	if tot.Calls != 500 || calls != 500 || tot.Cost != pricing.AmountFromMoney(pricing.Money(cost)) || tot.UnpricedCalls != unpriced || unpriced == 0 {
		t.Fatalf("rollups %+v, events calls=%d cost=%d unpriced=%d", tot, calls, cost, unpriced)
	}
	rows, err := db.Grouped(ctx, "user", now.Add(-8*24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 500 {
		t.Fatalf("%d users, want 500", len(rows))
	}
}

// ensureSchema creates the schema a PostgreSQL URL's search_path names, so
// a benchmark ledger can be kept in a schema of its own between runs.
func ensureSchema(ctx context.Context, dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return err
	}
	schema := u.Query().Get("search_path")
	if schema == "" {
		return nil
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx) // only a CREATE SCHEMA, checked
	_, err = conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	return err
}

// buildBigPG is buildBig for a PostgreSQL ledger: the same events (the
// same formulas) from generate_series, and the rollups aggregated from
// them.
func buildBigPG(ctx context.Context, db *ledger.DB, n int64, now time.Time) error {
	span := int64(7 * 24 * time.Hour / time.Millisecond)
	end := now.UnixMilli()
	conn := db.SQL()
	stmts := []string{
		`DROP INDEX IF EXISTS events_ts`,
		`INSERT INTO events (event_key, ts_ms, source, tenant, "user", endpoint, model, input_tokens, cached_tokens,
		                     output_tokens, cost_nano, cost_pico, unpriced, latency_ms)
		 SELECT 'bench:' || i, ?::bigint - ?::bigint + (i * ?::bigint) / ?::bigint, 'ingest', 't' || ((i * 7919) % 200), 'u' || ((i * 104729) % 5000),
		        '/v1/e' || (i % 20), 'model-' || ((i * 31) % 12), 1000 + i % 977, i % 300, 100 + i % 211,
		        CASE WHEN (i * 31) % 12 = 11 THEN 0 ELSE 1000 + (i % 1000) * 1000 END,
		        CASE WHEN (i * 31) % 12 = 11 THEN 0 ELSE 1000000 + (i % 1000) * 1000000 END,
		        CASE WHEN (i * 31) % 12 = 11 THEN 1 ELSE 0 END, 200 + i % 4000
		 FROM generate_series(0::bigint, ?::bigint - 1) AS i`,
		`CREATE INDEX events_ts ON events(ts_ms)`,
	}
	for i, q := range stmts {
		var err error
		if i == 1 {
			_, err = conn.ExecContext(ctx, q, end, span, span, n, n)
		} else {
			_, err = conn.ExecContext(ctx, q)
		}
		if err != nil {
			return err
		}
	}
	if err := buildRollups(ctx, db, true); err != nil {
		return err
	}
	_, err := conn.ExecContext(ctx, `ANALYZE`)
	return err
}

// The PostgreSQL builder's rollups agree with its events too.
func TestBigBuilderPGRollupsAgree(t *testing.T) {
	ctx := context.Background()
	db, err := ledger.Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 11, 20, 14, 30, 20, 0, time.UTC)
	if err := buildBigPG(ctx, db, 500, now); err != nil {
		t.Fatal(err)
	}
	tot, err := db.Totals(ctx, now.Add(-8*24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	var calls, cost, unpriced int64
	if err := db.SQL().QueryRow(`SELECT COUNT(*), SUM(cost_nano), SUM(unpriced) FROM events`).Scan(&calls, &cost, &unpriced); err != nil {
		t.Fatal(err)
	}
	if tot.Calls != 500 || calls != 500 || tot.Cost != pricing.AmountFromMoney(pricing.Money(cost)) || tot.UnpricedCalls != unpriced || unpriced == 0 {
		t.Fatalf("rollups %+v, events calls=%d cost=%d unpriced=%d", tot, calls, cost, unpriced)
	}
	rows, err := db.Grouped(ctx, "user", now.Add(-8*24*time.Hour), now)
	if err != nil || len(rows) != 500 {
		t.Fatalf("%d users, want 500 (%v)", len(rows), err)
	}
}

// buildRollups aggregates the bench ledger's events into the minute
// rollups and those into hours and days, per dimension, as Insert would
// have kept them. Every event costs under $1 (cost_dollars 0): the
// pico-dollars are summed and carried. pg: PostgreSQL's bucket arithmetic.
func buildRollups(ctx context.Context, db *ledger.DB, pg bool) error {
	conn := db.SQL()
	bucket := func(col, div string) string { return col + " / " + div }
	if pg {
		bucket = func(col, div string) string { return "floor(" + col + " / " + div + ".0)::bigint" }
	}
	cols := `COUNT(*), SUM(input_tokens), SUM(cached_tokens), SUM(output_tokens),
		SUM(cost_pico) / 1000000000000, SUM(cost_pico) % 1000000000000, SUM(unpriced),
		SUM(cache_hit), SUM(CASE WHEN latency_ms > 0 THEN latency_ms ELSE 0 END), SUM(CASE WHEN latency_ms > 0 THEN 1 ELSE 0 END)`
	into := `(calls, input_tokens, cached_tokens, output_tokens, cost_dollars, cost_pico, unpriced_calls, cache_hits, latency_ms_sum, latency_calls)`
	for _, dim := range append(append([]string(nil), ledger.Dimensions...), "all") {
		col := `"` + dim + `"`
		if dim == "all" {
			col = `''`
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO rollup_minute (minute, dim, key, `+into[1:]+`
			SELECT `+bucket("ts_ms", "60000")+`, ?, `+col+`, `+cols+` FROM events GROUP BY 1, 3`, dim); err != nil {
			return err
		}
		for _, up := range []struct{ table, col, from, fromCol, div string }{
			{"rollup_hour", "hour", "rollup_minute", "minute", "60"},
			{"rollup_day", "day", "rollup_hour", "hour", "24"},
		} {
			if _, err := conn.ExecContext(ctx, `INSERT INTO `+up.table+` (`+up.col+`, dim, key, `+into[1:]+`
				SELECT `+bucket(up.fromCol, up.div)+`, dim, key, SUM(calls), SUM(input_tokens), SUM(cached_tokens), SUM(output_tokens),
				SUM(cost_dollars) + SUM(cost_pico) / 1000000000000, SUM(cost_pico) % 1000000000000,
				SUM(unpriced_calls), SUM(cache_hits), SUM(latency_ms_sum), SUM(latency_calls)
				FROM `+up.from+` WHERE dim = ? GROUP BY 1, 2, 3`, dim); err != nil {
				return err
			}
		}
	}
	return nil
}
