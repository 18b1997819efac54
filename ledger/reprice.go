package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/costctl/costctl/pricing"
)

// PriceUsage prices what an event used with m, each kind of token at its own
// rate (cache reads and writes, Batch API, flex and priority tiers, via
// pricing.Model.CostAt). ok is false when the event cannot be priced: m is
// nil (the model is not in the table), or the event used a kind of token or
// a tier the table has no rate for — then its cost is unknown, never list
// price and never $0.
func PriceUsage(m *pricing.Model, e *Event) (cost pricing.Amount, ok bool) {
	if m == nil {
		return pricing.Amount{}, false
	}
	c, err := m.CostAtExact(pricing.Usage{
		InputTokens:        e.InputTokens,
		CachedInputTokens:  e.CachedTokens,
		CacheWrite5mTokens: e.CacheWrite5mTokens,
		CacheWrite1hTokens: e.CacheWrite1hTokens,
		OutputTokens:       e.OutputTokens,
	}, e.Batch, e.ServiceTier)
	if err != nil {
		return pricing.Amount{}, false
	}
	return c, true
}

// RepriceOptions say which events Reprice prices again, and with what.
type RepriceOptions struct {
	Table      *pricing.Table
	Start, End time.Time // events in [Start, End); a zero time leaves that side open
	BatchSize  int       // events per transaction (default 5000)
	DryRun     bool      // compute everything, write nothing
}

// RepriceSums are what the repriced events add up to, before or after.
type RepriceSums struct {
	Cost     pricing.Amount // of the priced events, exact
	Unpriced int64          // events with no known cost
	Avoided  pricing.Money  // what the cache hits stood in for
}

// RepriceResult says what Reprice did.
type RepriceResult struct {
	Events   int64            // events in the window
	Changed  int64            // events whose cost, unpriced flag or avoided cost changed
	Old, New RepriceSums      // over every event in the window
	Unpriced map[string]int64 // model → events left unpriced
}

// Reprice prices the stored events of a window again with o.Table (unpriced
// ones included), in one transaction per batch of events that also moves
// the rollups by the same amounts (old subtracted, new added), so they
// always agree with the events. Running it again with the same table
// changes nothing.
//
// A call event gets the cost PriceUsage gives, or becomes unpriced (cost 0,
// unpriced = 1) when the table cannot price it: a model the table lacks
// stays or becomes unpriced, never $0. A cache hit cost nothing and still
// does; its avoided cost (what the call it stood in for would cost) is
// priced again instead, and kept as recorded when the table cannot price it.
func (db *DB) Reprice(ctx context.Context, o RepriceOptions) (RepriceResult, error) {
	res := RepriceResult{Unpriced: map[string]int64{}}
	if db.readOnly {
		return res, errors.New("ledger: reprice needs a ledger opened for writing")
	}
	if o.Table == nil {
		return res, errors.New("ledger: reprice needs a price table")
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if !o.Start.IsZero() {
		lo = o.Start.UnixMilli()
	}
	if !o.End.IsZero() {
		hi = o.End.UnixMilli()
	}
	r := &repricer{db: db, table: o.Table, models: map[string]*pricing.Model{}, res: &res}
	// Walk the window in (ts_ms, id) order through the ts index; each batch
	// is read, priced and written in its own transaction.
	curTS, curID := lo, int64(math.MinInt64)
	for {
		n, lastTS, lastID, err := r.batch(ctx, curTS, curID, hi, o.BatchSize, o.DryRun)
		if err != nil {
			return res, err
		}
		if n < o.BatchSize {
			return res, nil
		}
		curTS, curID = lastTS, lastID
	}
}

type repricer struct {
	db     *DB
	table  *pricing.Table
	models map[string]*pricing.Model // lookup cache; nil = not in the table
	res    *RepriceResult
}

func (r *repricer) model(name string) *pricing.Model {
	m, ok := r.models[name]
	if !ok {
		m, _ = r.table.Lookup(name)
		r.models[name] = m
	}
	return m
}

// storedEvent is an event as Reprice reads it.
type storedEvent struct {
	id int64
	Event
}

// rollupDelta is how one rollup row moves.
type rollupDelta struct {
	cost              pricing.Amount
	unpriced, avoided int64
	// the semantic cache's share (semantic.go): what semantic hits
	// avoided, what embedding calls cost
	semAvoided int64
	embedCost  pricing.Amount
}

// batch reprices up to n events after (ts, id) and before hi, in one
// transaction. It returns how many it read and the last one's position.
func (r *repricer) batch(ctx context.Context, ts, id, hi int64, n int, dryRun bool) (int, int64, int64, error) {
	tx, err := r.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("ledger: reprice: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit or the dry run's checked Rollback; on every other path an error is being returned
	rows, err := tx.QueryContext(ctx, `SELECT id, event_key, ts_ms, tenant, "user", endpoint, source, metric, model,
		input_tokens, cached_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens, batch, service_tier,
		cost_dollars, cost_pico, avoided_nano, unpriced, cache_hit, semantic
		FROM events `+r.db.indexedBy("events_ts")+`
		WHERE ts_ms >= ? AND (ts_ms > ? OR id > ?) AND ts_ms < ?
		ORDER BY ts_ms, id LIMIT ?`, ts, ts, id, hi, n)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("ledger: reprice: read events: %w", err)
	}
	var evs []storedEvent
	for rows.Next() {
		var e storedEvent
		var tsMS, dollars, pico, avoided int64
		if err := rows.Scan(&e.id, &e.Key, &tsMS, &e.Tenant, &e.User, &e.Endpoint, &e.Source, &e.Metric, &e.Model,
			&e.InputTokens, &e.CachedTokens, &e.CacheWrite5mTokens, &e.CacheWrite1hTokens, &e.OutputTokens, &e.Batch, &e.ServiceTier,
			&dollars, &pico, &avoided, &e.Unpriced, &e.CacheHit, &e.Semantic); err != nil {
			rows.Close() // read-only; the scan error is returned
			return 0, 0, 0, fmt.Errorf("ledger: reprice: read events: %w", err)
		}
		e.Time, e.CostExact, e.Avoided = time.UnixMilli(tsMS), amountOf(dollars, pico), pricing.Money(avoided)
		evs = append(evs, e)
	}
	rows.Close() // read-only; rows.Err() is checked next
	if err := rows.Err(); err != nil {
		return 0, 0, 0, fmt.Errorf("ledger: reprice: read events: %w", err)
	}
	if len(evs) == 0 {
		return 0, 0, 0, nil
	}
	upd, err := tx.PrepareContext(ctx, `UPDATE events SET cost_nano = 0, cost_dollars = ?, cost_pico = ?, unpriced = ?, avoided_nano = ? WHERE event_key = ?`) // the key: PostgreSQL's id is not indexed
	if err != nil {
		return 0, 0, 0, fmt.Errorf("ledger: reprice: %w", err)
	}
	defer upd.Close() // each Exec's error is checked; the transaction's Commit decides what is written
	deltas := map[rollupKey]*rollupDelta{}
	res := r.res
	for i := range evs {
		e := &evs[i]
		res.Events++
		res.Old.add(&e.Event)
		cost, unpriced, avoided := e.CostExact, e.Unpriced, e.Avoided
		c, ok := PriceUsage(r.model(e.Model), &e.Event)
		switch {
		case e.CacheHit && ok:
			if m, fits := c.Money(); fits {
				avoided = m
			}
		case e.CacheHit:
			// What a hit avoided stays as recorded when the table cannot price it.
		case ok:
			cost, unpriced = c, false
		default:
			cost, unpriced = pricing.Amount{}, true
		}
		d := rollupDelta{cost: cost.Sub(e.CostExact), unpriced: b2i(unpriced) - b2i(e.Unpriced), avoided: int64(avoided - e.Avoided)}
		if e.CacheHit && e.Semantic {
			d.semAvoided = d.avoided
		} else if !e.CacheHit && e.Metric == MetricEmbed {
			d.embedCost = d.cost
		}
		e.CostExact, e.Unpriced, e.Avoided = cost, unpriced, avoided
		res.New.add(&e.Event)
		if unpriced && !e.CacheHit {
			res.Unpriced[e.Model]++
		}
		if d == (rollupDelta{}) {
			continue
		}
		res.Changed++
		if _, err := upd.ExecContext(ctx, cost.Dollars, cost.Pico, b2i(unpriced), int64(avoided), e.Key); err != nil {
			return 0, 0, 0, fmt.Errorf("ledger: reprice: update event: %w", err)
		}
		ms := e.Time.UnixMilli()
		k := tupleKey{0, e.Tenant, e.Model, e.User, e.Endpoint, e.Source, e.Metric}
		for _, l := range rollupLevels {
			bucket := floorDiv(ms, l.ms)
			for _, dim := range rollupDims {
				rk := rollupKey{bucket, l.table + "\x00" + dim, k.dimKey(dim)}
				v := deltas[rk]
				if v == nil {
					v = &rollupDelta{}
					deltas[rk] = v
				}
				v.cost = v.cost.Add(d.cost)
				v.unpriced += d.unpriced
				v.avoided += d.avoided
				v.semAvoided += d.semAvoided
				v.embedCost = v.embedCost.Add(d.embedCost)
			}
		}
	}
	if err := applyDeltas(ctx, tx, deltas); err != nil {
		return 0, 0, 0, err
	}
	last := evs[len(evs)-1]
	if dryRun {
		// The dry run's changes are thrown away here: a failed Rollback
		// must not pass unseen.
		if err := tx.Rollback(); err != nil {
			return 0, 0, 0, fmt.Errorf("ledger: reprice: dry run: roll back: %w", err)
		}
		return len(evs), last.Time.UnixMilli(), last.id, nil
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, 0, fmt.Errorf("ledger: reprice: commit: %w", err)
	}
	return len(evs), last.Time.UnixMilli(), last.id, nil
}

// add counts e as the rollups do (cost, unpriced_calls, avoided_nano).
func (s *RepriceSums) add(e *Event) {
	s.Cost = s.Cost.Add(eventCost(e))
	if e.Unpriced {
		s.Unpriced++
	}
	if e.CacheHit {
		s.Avoided += e.Avoided
	}
}

// applyDeltas moves the rollup rows by deltas (keyed by bucket, table and
// dimension, key) and bumps the write counters of the days touched, so a
// LiveCache reads them again. Every row exists, since its events do: one
// that does not is an error (the rollups would no longer agree).
func applyDeltas(ctx context.Context, tx *sql.Tx, deltas map[rollupKey]*rollupDelta) error {
	stmts := map[string]*sql.Stmt{}
	defer func() {
		for _, s := range stmts {
			s.Close() // each Exec's error is checked; the transaction's Commit decides what is written
		}
	}()
	days := map[int64]bool{}
	// In key order: concurrent writers on PostgreSQL lock rows in one order.
	for _, k := range sortedRollupKeys(deltas) {
		d := deltas[k]
		table, dim, _ := strings.Cut(k.dim, "\x00")
		s := stmts[table]
		if s == nil {
			col := ""
			for _, l := range rollupLevels {
				if l.table == table {
					col = l.col
				}
			}
			var err error
			s, err = tx.PrepareContext(ctx, `UPDATE `+table+` SET
				cost_dollars = cost_dollars + ?1 + (cost_pico + ?2) / 1000000000000, cost_pico = (cost_pico + ?2) % 1000000000000,
				unpriced_calls = unpriced_calls + ?3, avoided_nano = avoided_nano + ?4, semantic_avoided_nano = semantic_avoided_nano + ?8,
				embed_cost_dollars = embed_cost_dollars + ?9 + (embed_cost_pico + ?10) / 1000000000000, embed_cost_pico = (embed_cost_pico + ?10) % 1000000000000
				WHERE dim = ?5 AND `+col+` = ?6 AND key = ?7`)
			if err != nil {
				return fmt.Errorf("ledger: reprice: %w", err)
			}
			stmts[table] = s
		}
		r, err := s.ExecContext(ctx, d.cost.Dollars, d.cost.Pico, d.unpriced, d.avoided, dim, k.bucket, k.key, d.semAvoided, d.embedCost.Dollars, d.embedCost.Pico)
		if err != nil {
			return fmt.Errorf("ledger: reprice: update %s: %w", table, err)
		}
		if n, err := r.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("ledger: reprice: %s has no row for %s %q at %d: the rollups do not match the events", table, dim, k.key, k.bucket)
		}
		if table == "rollup_day" {
			days[k.bucket] = true
		}
	}
	for _, d := range sortedDays(days) {
		if _, err := tx.ExecContext(ctx, bumpEpochSQL, d); err != nil {
			return fmt.Errorf("ledger: reprice: update rollup epoch: %w", err)
		}
	}
	return nil
}
