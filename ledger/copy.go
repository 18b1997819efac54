package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/costctl/costctl/pricing"
)

// Copy moves a ledger's content into another store (costctl db copy): an
// SQLite file into PostgreSQL when a team outgrows one machine, or back.
// Events go through Insert, so the destination's rollups are built in the
// same transactions as its events and an event already there (by its
// idempotency key) is skipped; every other row is inserted unless the
// destination has it already. A copy is thus idempotent, and one stopped
// part way resumes by running it again: nothing is counted twice.

// CopyStats counts what a copy read and what it added.
type CopyStats struct {
	Events, EventsAdded int64
	Rows, RowsAdded     int64 // every other table's rows
}

// copyChunk is how many events one destination transaction takes.
const copyChunk = 5000

// Copy copies from into to; progress (may be nil) is called after each
// chunk of events.
func Copy(ctx context.Context, from, to *DB, progress func(CopyStats)) (CopyStats, error) {
	var st CopyStats
	// The source is only read, so it is not migrated here: one at an older
	// schema lacks columns the copy reads.
	v, err := from.Version(ctx)
	if err != nil {
		return st, err
	}
	if v < SchemaVersion {
		return st, fmt.Errorf("ledger %s is at schema version %d and this costctl copies from version %d: upgrade it first with costctl --db %s db migrate (it keeps every row), then copy",
			from.Name(), v, SchemaVersion, from.Name())
	}
	// The small tables first: a run's events then find their run, a
	// batch's results their batch.
	for _, t := range copyTables {
		if err := copyTable(ctx, from, to, t, &st); err != nil {
			return st, err
		}
	}
	// Events in (ts_ms, id) order: the events_ts index serves it on both
	// stores (PostgreSQL's id alone is not indexed).
	lastTS, lastID := int64(-1<<63), int64(-1<<63)
	for {
		evs, maxID, err := from.eventsAfter(ctx, lastTS, lastID, copyChunk)
		if err != nil {
			return st, err
		}
		if len(evs) == 0 {
			return st, nil
		}
		res, err := to.Insert(ctx, evs)
		if err != nil {
			return st, err
		}
		st.Events += int64(len(evs))
		st.EventsAdded += int64(res.Inserted)
		lastTS, lastID = evs[len(evs)-1].Time.UnixMilli(), maxID
		if progress != nil {
			progress(st)
		}
	}
}

// copyTable is one table Copy moves row by row: its columns (an id column
// the destination assigns itself is left out) and, for a table without a
// natural key, the columns that say two rows are the same.
type copyTableDef struct {
	name  string
	cols  []string
	match []string // nil: the table's own unique keys decide (ON CONFLICT DO NOTHING)
}

var copyTables = []copyTableDef{
	{name: "runs", cols: []string{"id", "source", "started_ms", "finished_ms", "status", "detail"}},
	{name: "judge_cache", cols: []string{"key", "metric", "model", "score", "reason", "input_tokens", "cached_tokens", "output_tokens",
		"cache_write_5m_tokens", "cache_write_1h_tokens", "cost_nano", "latency_ms", "created_ms", "request_text", "response_text"}},
	{name: "virtual_keys", cols: []string{"name", "tenant", `"user"`, "hash", "created_ms", "revoked_ms"}},
	{name: "policies", cols: []string{"tenant", "daily_nano", "monthly_nano", "blocked", "sample_bp", "cache", "routes", "updated_ms",
		"semantic_cache", "similarity_bp", "semantic_ttl_ms", "min_precision_bp", "semantic_off"}},
	{name: "policy_audit", cols: []string{"at_ms", "tenant", "what", "reason", "who"}, match: []string{"at_ms", "tenant", "what", "reason", "who"}},
	{name: "batches", cols: []string{"id", "provider", "endpoint", "judge", "model", "run_id", "round", "remote_id", "state", "requests",
		"succeeded", "errored", "missing", "reserved_nano", "cost_nano", "created_ms", "updated_ms", "error"}},
	{name: "batch_requests", cols: []string{"batch_id", "custom_id", "metric", "tenant", "bound", "worst_nano", "state", "error"}},
	{name: "budget_spent", cols: []string{"scope", "spent_dollars", "spent_pico", "updated_ms"}},
	{name: "semantic_verify", cols: []string{"tenant", "at_ms", "similarity", `"match"`, "method", "detail"},
		match: []string{"tenant", "at_ms", "similarity", `"match"`, "method", "detail"}},
}

func copyTable(ctx context.Context, from, to *DB, t copyTableDef, st *CopyStats) error {
	list := strings.Join(t.cols, ", ")
	rows, err := from.sql.QueryContext(ctx, "SELECT "+list+" FROM "+t.name)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil // a source from before the table existed
		}
		return fmt.Errorf("ledger copy: read %s: %w", t.name, err)
	}
	defer rows.Close() // read only; rows.Err is checked
	ins := "INSERT INTO " + t.name + " (" + list + ") VALUES (?" + strings.Repeat(", ?", len(t.cols)-1) + ")"
	var exists string
	var matchIdx []int
	if t.match == nil {
		ins += " ON CONFLICT DO NOTHING"
	} else {
		// The table has no key: a row is skipped when an identical one is
		// there.
		conds := make([]string, len(t.match))
		for i, c := range t.match {
			conds[i] = c + " = ?"
			for k, col := range t.cols {
				if col == c {
					matchIdx = append(matchIdx, k)
				}
			}
		}
		exists = "SELECT COUNT(*) FROM " + t.name + " WHERE " + strings.Join(conds, " AND ")
	}
	var batch [][]any
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := to.tx(ctx, "copy "+t.name, func(tx *sql.Tx) error {
			for _, vals := range batch {
				if exists != "" {
					margs := make([]any, len(matchIdx))
					for i, k := range matchIdx {
						margs[i] = vals[k]
					}
					var n int64
					if err := tx.QueryRowContext(ctx, exists, margs...).Scan(&n); err != nil {
						return err
					}
					if n > 0 {
						continue
					}
				}
				r, err := tx.ExecContext(ctx, ins, vals...)
				if err != nil {
					return err
				}
				n, _ := r.RowsAffected()
				st.RowsAdded += n
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	for rows.Next() {
		vals := make([]any, len(t.cols))
		ptrs := make([]any, len(t.cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("ledger copy: read %s: %w", t.name, err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b) // text as text on both stores
			}
		}
		st.Rows++
		batch = append(batch, vals)
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ledger copy: read %s: %w", t.name, err)
	}
	return flush()
}

// eventsAfter reads up to n events after (ts, id) in (ts_ms, id) order,
// with everything Insert writes; maxID is the last one's id.
func (db *DB) eventsAfter(ctx context.Context, ts, id int64, n int) ([]Event, int64, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, event_key, ts_ms, source, run_id, tenant, "user", endpoint, metric, model,
		input_tokens, cached_tokens, output_tokens, avoided_nano, unpriced, cache_hit, latency_ms, estimate,
		cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, batch, service_tier, content_hash, cost_dollars, cost_pico, status, semantic
		FROM events WHERE ts_ms >= ? AND (ts_ms > ? OR id > ?) ORDER BY ts_ms, id LIMIT ?`, ts, ts, id, n)
	if err != nil {
		return nil, 0, fmt.Errorf("ledger copy: read events: %w", err)
	}
	defer rows.Close() // read only; rows.Err is checked
	var out []Event
	var maxID int64
	for rows.Next() {
		var e Event
		var ts, avoided, unpriced, hit, batch, dollars, pico, semantic int64
		if err := rows.Scan(&maxID, &e.Key, &ts, &e.Source, &e.RunID, &e.Tenant, &e.User, &e.Endpoint, &e.Metric, &e.Model,
			&e.InputTokens, &e.CachedTokens, &e.OutputTokens, &avoided, &unpriced, &hit, &e.LatencyMS, &e.Estimate,
			&e.CacheWrite5mTokens, &e.CacheWrite1hTokens, &e.ReasoningTokens, &batch, &e.ServiceTier, &e.ContentHash, &dollars, &pico, &e.Status, &semantic); err != nil {
			return nil, 0, fmt.Errorf("ledger copy: read events: %w", err)
		}
		e.Time = time.UnixMilli(ts).UTC()
		e.Avoided = pricing.Money(avoided)
		e.Unpriced, e.CacheHit, e.Batch, e.Semantic = unpriced != 0, hit != 0, batch != 0, semantic != 0
		e.CostExact = amountOf(dollars, pico)
		e.Cost, _ = e.CostExact.Money()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("ledger copy: read events: %w", err)
	}
	return out, maxID, nil
}

// Version is the ledger's schema version as stored (SQLite's user_version;
// PostgreSQL's costctl_schema), which may be older than this build's when
// the ledger was opened read-only.
func (db *DB) Version(ctx context.Context) (int, error) {
	if db.dialect == dialectPostgres {
		return db.pgVersion(ctx, db.sql)
	}
	var v int
	if err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("ledger %s: read schema version: %w", db.path, err)
	}
	return v, nil
}
