package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/costctl/costctl/pricing"
)

// Sources of ledger events.
const (
	SourceEval   = "eval"
	SourceIngest = "ingest"
)

// Dimensions the rollups are kept by ("all" is the grand total).
var Dimensions = []string{"tenant", "model", "user", "endpoint", "source", "metric"}

var rollupDims = append(append([]string(nil), Dimensions...), "all")

// Event is one priced (or unpriced) call: an LLM API call, a judge call or a
// cache hit that avoided one.
type Event struct {
	Key          string // idempotency key, unique in the ledger (e.g. "eval:<run>:<record>:<metric>", "ingest:<id>")
	Time         time.Time
	Source       string
	RunID        string
	Tenant       string
	User         string
	Endpoint     string
	Metric       string
	Model        string
	InputTokens  int64 // all prompt tokens, cached included
	CachedTokens int64
	OutputTokens int64
	Cost         pricing.Money // what the call cost (0 for a cache hit)
	Avoided      pricing.Money // what a cache hit or a skip saved
	Unpriced     bool          // the model has no price: Cost is unknown, not $0
	CacheHit     bool
	LatencyMS    int64
}

func (e *Event) dimKey(dim string) string {
	switch dim {
	case "tenant":
		return e.Tenant
	case "model":
		return e.Model
	case "user":
		return e.User
	case "endpoint":
		return e.Endpoint
	case "source":
		return e.Source
	case "metric":
		return e.Metric
	}
	return ""
}

// InsertResult says what an Insert did.
type InsertResult struct {
	Inserted   int
	Duplicates int // events whose key was already in the ledger (or repeated in the batch)
}

type rollupKey struct {
	bucket   int64
	dim, key string
}

type rollupVal struct {
	calls, in, cached, out, cost, unpriced, hits, lat int64
}

// Insert writes events in one transaction. An event whose Key is already in
// the ledger is skipped and counted as a duplicate, so re-ingesting a file
// adds nothing. Rollups are updated in the same transaction, so they always
// agree with the events table.
func (db *DB) Insert(ctx context.Context, events []Event) (InsertResult, error) {
	var res InsertResult
	if len(events) == 0 {
		return res, nil
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("ledger: begin: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO events
		(event_key, ts_ms, source, run_id, tenant, user, endpoint, metric, model,
		 input_tokens, cached_tokens, output_tokens, cost_nano, avoided_nano, unpriced, cache_hit, latency_ms)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(event_key) DO NOTHING`)
	if err != nil {
		return res, fmt.Errorf("ledger: prepare: %w", err)
	}
	defer stmt.Close()
	minutes := map[rollupKey]*rollupVal{}
	hours := map[rollupKey]*rollupVal{}
	for i := range events {
		e := &events[i]
		ts := e.Time.UnixMilli()
		r, err := stmt.ExecContext(ctx, e.Key, ts, e.Source, e.RunID, e.Tenant, e.User, e.Endpoint, e.Metric, e.Model,
			e.InputTokens, e.CachedTokens, e.OutputTokens, int64(e.Cost), int64(e.Avoided), b2i(e.Unpriced), b2i(e.CacheHit), e.LatencyMS)
		if err != nil {
			return res, fmt.Errorf("ledger: insert event %q: %w", e.Key, err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			res.Duplicates++
			continue
		}
		res.Inserted++
		minute := floorDiv(ts, 60_000)
		hour := floorDiv(ts, 3_600_000)
		for _, dim := range rollupDims {
			k := e.dimKey(dim)
			addRollup(minutes, rollupKey{minute, dim, k}, e)
			addRollup(hours, rollupKey{hour, dim, k}, e)
		}
	}
	if err := flushRollups(ctx, tx, "rollup_minute", "minute", minutes); err != nil {
		return res, err
	}
	if err := flushRollups(ctx, tx, "rollup_hour", "hour", hours); err != nil {
		return res, err
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("ledger: commit: %w", err)
	}
	return res, nil
}

func addRollup(m map[rollupKey]*rollupVal, k rollupKey, e *Event) {
	v := m[k]
	if v == nil {
		v = &rollupVal{}
		m[k] = v
	}
	v.calls++
	v.in += e.InputTokens
	v.cached += e.CachedTokens
	v.out += e.OutputTokens
	v.cost += int64(e.Cost)
	v.unpriced += b2i(e.Unpriced)
	v.hits += b2i(e.CacheHit)
	v.lat += e.LatencyMS
}

func flushRollups(ctx context.Context, tx *sql.Tx, table, col string, m map[rollupKey]*rollupVal) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO `+table+` (`+col+`, dim, key, calls, input_tokens, cached_tokens, output_tokens, cost_nano, unpriced_calls, cache_hits, latency_ms_sum)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(dim, `+col+`, key) DO UPDATE SET
		calls = calls + excluded.calls,
		input_tokens = input_tokens + excluded.input_tokens,
		cached_tokens = cached_tokens + excluded.cached_tokens,
		output_tokens = output_tokens + excluded.output_tokens,
		cost_nano = cost_nano + excluded.cost_nano,
		unpriced_calls = unpriced_calls + excluded.unpriced_calls,
		cache_hits = cache_hits + excluded.cache_hits,
		latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum`)
	if err != nil {
		return fmt.Errorf("ledger: prepare rollup: %w", err)
	}
	defer stmt.Close()
	for k, v := range m {
		if _, err := stmt.ExecContext(ctx, k.bucket, k.dim, k.key, v.calls, v.in, v.cached, v.out, v.cost, v.unpriced, v.hits, v.lat); err != nil {
			return fmt.Errorf("ledger: update %s: %w", table, err)
		}
	}
	return nil
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
