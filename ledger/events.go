package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
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
	Cost         pricing.Money // what the call cost, to the nano-dollar (0 for a cache hit)
	// CostExact is the exact cost (exact.go); when zero, Cost is taken as exact.
	Avoided   pricing.Money // what a cache hit or a skip saved
	Unpriced  bool          // the model has no price: Cost is unknown, not $0
	CacheHit  bool
	LatencyMS int64
	// Estimate says why the cost is not the server's own usage × price:
	// "" (it is), EstimateNoUsage (the reply had no usage block: billed from
	// local counts), EstimateBadUsage (the usage block was invalid: likewise)
	// or EstimateUnsettled (the call was sent, then cancelled or timed out:
	// it may have been billed, so it is recorded at its worst case).
	Estimate string
	// Token kinds stored apart (all but reasoning are part of InputTokens /
	// OutputTokens as above): prompt tokens written to a 5-minute or 1-hour
	// cache, and reasoning tokens (informational, inside OutputTokens).
	CacheWrite5mTokens int64
	CacheWrite1hTokens int64
	ReasoningTokens    int64
	Batch              bool   // billed at Batch API rates
	ServiceTier        string // "", "default", "flex" or "priority"
	ContentHash        int64  // hash of what an ingested line says, to tell a duplicate from a conflict (0: none)
	CostExact          pricing.Amount
	// Status is the HTTP status the client got for a proxied call (0: not
	// a proxied call, or one sent and never answered).
	Status int64
	// Semantic marks a semantic cache hit (semantic.go): an answer served
	// because an earlier request meant the same thing. It is a cache hit
	// too (CacheHit must be set): cost 0, Avoided what the call would
	// have cost.
	Semantic bool
}

// Estimate kinds of an Event.
const (
	EstimateNoUsage   = "no_usage"
	EstimateBadUsage  = "bad_usage"
	EstimateUnsettled = "unsettled"
)

// InsertResult says what an Insert did.
type InsertResult struct {
	Inserted   int
	Duplicates int   // events whose key was already in the ledger (or repeated in the batch)
	Skipped    []int // indexes (into the events given) of the duplicates, in order
}

type rollupKey struct {
	bucket   int64
	dim, key string
}

// rollupVal accumulates the rollup columns of one (bucket, dim, key).
type rollupVal = Totals

// Insert writes events in one transaction. An event whose Key is already in
// the ledger is skipped and counted as a duplicate, so re-ingesting a file
// adds nothing. Rollups are updated in the same transaction, so they always
// agree with the events table.
func (db *DB) Insert(ctx context.Context, events []Event) (InsertResult, error) {
	return db.Record(ctx, events, nil)
}

// Record writes events and judge verdicts in one transaction: a verdict is
// never in the cache without the calls that paid for it on the ledger, and a
// crash leaves either both or neither.
func (db *DB) Record(ctx context.Context, events []Event, judges []JudgeResult) (InsertResult, error) {
	var res InsertResult
	if len(events) == 0 && len(judges) == 0 {
		return res, nil
	}
	ctx, tx, end, err := db.begin(ctx)
	if err != nil {
		return res, fmt.Errorf("ledger: begin: %w", err)
	}
	defer end()
	defer tx.Rollback() // a no-op after Commit; on every other path an error is being returned
	if res, err = db.insertTx(ctx, tx, events); err != nil {
		return res, err
	}
	if err := putJudgesTx(ctx, tx, judges); err != nil {
		return res, err
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("ledger: commit: %w", err)
	}
	return res, nil
}

// insertTx writes events and their rollups inside tx (begun by db.begin,
// whose context lets PostgreSQL COPY).
func (db *DB) insertTx(ctx context.Context, tx *sql.Tx, events []Event) (InsertResult, error) {
	var res InsertResult
	if len(events) == 0 {
		return res, nil
	}
	for i := range events {
		if events[i].Semantic && !events[i].CacheHit {
			return res, fmt.Errorf("ledger: event %q is a semantic cache hit but not a cache hit", events[i].Key)
		}
	}
	pg := db.dialect == dialectPostgres
	chunkSize := insertChunk
	var insert func([]Event) ([]bool, error)
	if pg {
		chunkSize = pgInsertChunk
		insert = func(chunk []Event) ([]bool, error) { return pgInsert(ctx, tx, chunk) }
	} else {
		ins := &eventInserter{ctx: ctx, tx: tx, stmts: map[stmtKey]*sql.Stmt{}}
		defer ins.close()
		insert = ins.insert
	}
	// Events are first summed per (minute, every dimension): one map
	// operation per event; each distinct tuple then feeds 7 dimensions × 3
	// rollup tables. Logs repeat tuples a lot, so this is most of the
	// rollup work saved.
	tuples := map[tupleKey]*rollupVal{}
	for lo := 0; lo < len(events); lo += chunkSize {
		chunk := events[lo:min(lo+chunkSize, len(events))]
		inserted, err := insert(chunk)
		if err != nil {
			return res, err
		}
		for i := range chunk {
			if inserted != nil && !inserted[i] {
				res.Duplicates++
				res.Skipped = append(res.Skipped, lo+i)
				continue
			}
			res.Inserted++
			e := &chunk[i]
			k := tupleKey{floorDiv(e.Time.UnixMilli(), 60_000), e.Tenant, e.Model, e.User, e.Endpoint, e.Source, e.Metric}
			v := tuples[k]
			if v == nil {
				v = &rollupVal{}
				tuples[k] = v
			}
			v.addEvent(e)
		}
	}
	minutes := map[rollupKey]*rollupVal{}
	hours := map[rollupKey]*rollupVal{}
	days := map[rollupKey]*rollupVal{}
	for t, v := range tuples {
		minute, hour, day := t.minute, floorDiv(t.minute, 60), floorDiv(t.minute, 1440)
		for _, dim := range rollupDims {
			k := t.dimKey(dim)
			mergeRollup(minutes, rollupKey{minute, dim, k}, v)
			mergeRollup(hours, rollupKey{hour, dim, k}, v)
			mergeRollup(days, rollupKey{day, dim, k}, v)
		}
	}
	if err := flushRollups(ctx, tx, "rollup_minute", "minute", minutes, pg); err != nil {
		return res, err
	}
	if err := flushRollups(ctx, tx, "rollup_hour", "hour", hours, pg); err != nil {
		return res, err
	}
	if err := flushRollups(ctx, tx, "rollup_day", "day", days, pg); err != nil {
		return res, err
	}
	touched := map[int64]bool{}
	for k := range days {
		touched[k.bucket] = true
	}
	for _, d := range sortedDays(touched) {
		if _, err := tx.ExecContext(ctx, bumpEpochSQL, d); err != nil {
			return res, fmt.Errorf("ledger: update rollup epoch: %w", err)
		}
	}
	return res, nil
}

// insertChunk is how many events go into one multi-row INSERT: one
// statement per chunk instead of per event is what makes bulk ingest fast
// (26 columns × 500 rows stays under SQLite's 32766 bound parameters).
const insertChunk = 500

const eventCols = `(event_key, ts_ms, source, run_id, tenant, "user", endpoint, metric, model,
	input_tokens, cached_tokens, output_tokens, cost_nano, avoided_nano, unpriced, cache_hit, latency_ms, estimate,
	cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, batch, service_tier, content_hash, cost_dollars, cost_pico, status, semantic)`

// eventColumns is how many columns eventCols lists.
const eventColumns = 28

// eventInserter writes chunks of events inside one transaction.
type eventInserter struct {
	ctx   context.Context
	tx    *sql.Tx
	stmts map[stmtKey]*sql.Stmt
	rows  [][eventColumns]any
	args  []any
}

// stmtKey names a prepared INSERT: rows per statement, and which columns
// are zero (” or 0) in every row of the chunk.
type stmtKey struct {
	n    int
	zero uint32
}

// A column that is zero in every row of a chunk is written as a literal
// (” or 0) instead of a bound parameter: most events leave most of the
// optional columns (run, metric, estimate, token kinds, tier, ...) empty,
// and binding a value costs about as much as storing it.
func (w *eventInserter) stmt(k stmtKey) (*sql.Stmt, error) {
	if s, ok := w.stmts[k]; ok {
		return s, nil
	}
	var b strings.Builder
	b.WriteString("INSERT OR IGNORE INTO events " + eventCols + " VALUES ")
	for r := 0; r < k.n; r++ {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := 0; c < eventColumns; c++ {
			if c > 0 {
				b.WriteByte(',')
			}
			if k.zero&(1<<c) != 0 {
				if _, text := w.rows[0][c].(string); text {
					b.WriteString("''")
				} else {
					b.WriteString("0")
				}
				continue
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
	}
	// (OR IGNORE, not ON CONFLICT(event_key) DO NOTHING: the same for the one
	// UNIQUE column, but no constraint can then abort the statement halfway,
	// so SQLite keeps no statement journal of every page it touches. No
	// value bound here is ever NULL, so NOT NULL cannot skip a row.)
	s, err := w.tx.PrepareContext(w.ctx, b.String())
	if err != nil {
		return nil, fmt.Errorf("ledger: prepare: %w", err)
	}
	w.stmts[k] = s
	return s, nil
}

func (w *eventInserter) close() {
	for _, s := range w.stmts {
		s.Close() // statements of the transaction: its Commit decides what is written
	}
}

// isZero reports whether a column value is ” or 0.
func isZero(v any) bool {
	switch x := v.(type) {
	case string:
		return x == ""
	case int64:
		return x == 0
	}
	return false
}

func (w *eventInserter) exec(chunk []Event) (n, last int64, err error) {
	w.rows = w.rows[:0]
	for i := range chunk {
		e := &chunk[i]
		exact := eventCost(e)
		w.rows = append(w.rows, [eventColumns]any{e.Key, e.Time.UnixMilli(), e.Source, e.RunID, e.Tenant, e.User, e.Endpoint, e.Metric, e.Model,
			e.InputTokens, e.CachedTokens, e.OutputTokens, int64(0), int64(e.Avoided), b2i(e.Unpriced), b2i(e.CacheHit), e.LatencyMS, e.Estimate,
			e.CacheWrite5mTokens, e.CacheWrite1hTokens, e.ReasoningTokens, b2i(e.Batch), e.ServiceTier, e.ContentHash,
			exact.Dollars, exact.Pico, e.Status, b2i(e.Semantic)})
	}
	var zero uint32
	for c := 2; c < eventColumns; c++ { // the key and time always vary
		all := true
		for r := range w.rows {
			if !isZero(w.rows[r][c]) {
				all = false
				break
			}
		}
		if all {
			zero |= 1 << c
		}
	}
	s, err := w.stmt(stmtKey{len(chunk), zero})
	if err != nil {
		return 0, 0, err
	}
	w.args = w.args[:0]
	for r := range w.rows {
		for c := 0; c < eventColumns; c++ {
			if zero&(1<<c) == 0 {
				w.args = append(w.args, w.rows[r][c])
			}
		}
	}
	res, err := s.ExecContext(w.ctx, w.args...)
	if err != nil {
		if len(chunk) == 1 {
			return 0, 0, fmt.Errorf("ledger: insert event %q: %w", chunk[0].Key, err)
		}
		return 0, 0, fmt.Errorf("ledger: insert events: %w", err)
	}
	if n, err = res.RowsAffected(); err != nil {
		return 0, 0, err
	}
	if last, err = res.LastInsertId(); err != nil {
		return 0, 0, err
	}
	return n, last, nil
}

// insert writes chunk with one statement. When every row is new (the usual
// case) it returns nil. When some keys were already there (or repeat in the
// chunk: the first wins), it returns which rows were inserted: a new row
// takes the rowid after the table's largest, so the n rows one statement
// inserted hold the n rowids that end at the last one, and their keys say
// which rows they were. (No savepoint and no second pass: a savepoint makes
// SQLite journal every page the chunk touches.)
func (w *eventInserter) insert(chunk []Event) ([]bool, error) {
	n, last, err := w.exec(chunk)
	if err != nil {
		return nil, err
	}
	if int(n) == len(chunk) {
		return nil, nil
	}
	inserted := make([]bool, len(chunk))
	if n == 0 {
		return inserted, nil
	}
	rows, err := w.tx.QueryContext(w.ctx, `SELECT event_key FROM events WHERE id > ? AND id <= ?`, last-n, last)
	if err != nil {
		return nil, fmt.Errorf("ledger: read inserted keys: %w", err)
	}
	defer rows.Close() // read-only; rows.Err() is checked below
	fresh := make(map[string]bool, n)
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("ledger: read inserted keys: %w", err)
		}
		fresh[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: read inserted keys: %w", err)
	}
	if len(fresh) != int(n) {
		return nil, fmt.Errorf("ledger: insert events: %d rows inserted but %d found by rowid", n, len(fresh))
	}
	for i := range chunk {
		if fresh[chunk[i].Key] {
			inserted[i] = true
			delete(fresh, chunk[i].Key) // a repeat later in the chunk was skipped
		}
	}
	return inserted, nil
}

// tupleKey is a minute and every dimension of an event.
type tupleKey struct {
	minute                                        int64
	tenant, model, user, endpoint, source, metric string
}

func (t *tupleKey) dimKey(dim string) string {
	switch dim {
	case "tenant":
		return t.tenant
	case "model":
		return t.model
	case "user":
		return t.user
	case "endpoint":
		return t.endpoint
	case "source":
		return t.source
	case "metric":
		return t.metric
	}
	return ""
}

func mergeRollup(m map[rollupKey]*rollupVal, k rollupKey, o *rollupVal) {
	v := m[k]
	if v == nil {
		v = &rollupVal{}
		m[k] = v
	}
	v.Add(*o)
}

// addEvent counts one event into t as a rollup row keeps it: calls and
// tokens of every event (cache hits included; reads subtract the hits'
// share, rollup_hits.go), the hits' tokens and avoided cost apart.
func (t *Totals) addEvent(e *Event) {
	o := Totals{Calls: 1, InputTokens: e.InputTokens, CachedTokens: e.CachedTokens, OutputTokens: e.OutputTokens,
		Cost: eventCost(e), UnpricedCalls: b2i(e.Unpriced), CacheHits: b2i(e.CacheHit),
		CacheWrite5mTokens: e.CacheWrite5mTokens, CacheWrite1hTokens: e.CacheWrite1hTokens, ReasoningTokens: e.ReasoningTokens}
	if e.CacheHit {
		o.AvoidedInputTokens, o.AvoidedCachedTokens, o.AvoidedOutputTokens = e.InputTokens, e.CachedTokens, e.OutputTokens
		o.Avoided = pricing.AmountFromMoney(e.Avoided)
		if e.Semantic {
			o.SemanticHits, o.SemanticAvoided = 1, e.Avoided
		}
	} else if e.Metric == MetricEmbed {
		o.EmbedCalls, o.EmbedCost = 1, o.Cost
	}
	t.Add(o)
	if e.LatencyMS > 0 {
		t.LatencyMSSum += e.LatencyMS
		t.LatencyCalls++
	}
}

// bumpEpochSQL counts one more write of a day (rollup_epoch).
const bumpEpochSQL = `INSERT INTO rollup_epoch (day, writes) VALUES (?, 1)
	ON CONFLICT(day) DO UPDATE SET writes = rollup_epoch.writes + 1`

// sortedDays are the days of a set in order: concurrent writers on
// PostgreSQL then take row locks in one order and never deadlock.
func sortedDays(m map[int64]bool) []int64 {
	out := make([]int64, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// sortedRollupKeys are m's keys in (dim, bucket, key) order (see sortedDays).
func sortedRollupKeys[V any](m map[rollupKey]V) []rollupKey {
	out := make([]rollupKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b rollupKey) int {
		if c := strings.Compare(a.dim, b.dim); c != 0 {
			return c
		}
		if c := cmp.Compare(a.bucket, b.bucket); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	return out
}

// flushRollups adds m to a rollup table; ordered (PostgreSQL) writes the
// rows in key order.
func flushRollups(ctx context.Context, tx *sql.Tx, table, col string, m map[rollupKey]*rollupVal, pg bool) error {
	// cost_pico stays in [0, 10^12): the carry goes to cost_dollars (every
	// expression reads the row's old values).
	head := `INSERT INTO ` + table + ` (` + col + `, dim, key, calls, input_tokens, cached_tokens, output_tokens,
		cost_dollars, cost_pico, unpriced_calls, cache_hits, hit_input_tokens, hit_cached_tokens, hit_output_tokens, avoided_nano,
		latency_ms_sum, latency_calls, cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens,
		semantic_hits, semantic_avoided_nano, embed_calls, embed_cost_dollars, embed_cost_pico) VALUES `
	tail := `
		ON CONFLICT(dim, ` + col + `, key) DO UPDATE SET
		calls = ` + table + `.calls + excluded.calls,
		input_tokens = ` + table + `.input_tokens + excluded.input_tokens,
		cached_tokens = ` + table + `.cached_tokens + excluded.cached_tokens,
		output_tokens = ` + table + `.output_tokens + excluded.output_tokens,
		cost_dollars = ` + table + `.cost_dollars + excluded.cost_dollars + (` + table + `.cost_pico + excluded.cost_pico) / 1000000000000,
		cost_pico = (` + table + `.cost_pico + excluded.cost_pico) % 1000000000000,
		unpriced_calls = ` + table + `.unpriced_calls + excluded.unpriced_calls,
		cache_hits = ` + table + `.cache_hits + excluded.cache_hits,
		hit_input_tokens = ` + table + `.hit_input_tokens + excluded.hit_input_tokens,
		hit_cached_tokens = ` + table + `.hit_cached_tokens + excluded.hit_cached_tokens,
		hit_output_tokens = ` + table + `.hit_output_tokens + excluded.hit_output_tokens,
		avoided_nano = ` + table + `.avoided_nano + excluded.avoided_nano,
		latency_ms_sum = ` + table + `.latency_ms_sum + excluded.latency_ms_sum,
		latency_calls = ` + table + `.latency_calls + excluded.latency_calls,
		cache_write_5m_tokens = ` + table + `.cache_write_5m_tokens + excluded.cache_write_5m_tokens,
		cache_write_1h_tokens = ` + table + `.cache_write_1h_tokens + excluded.cache_write_1h_tokens,
		reasoning_tokens = ` + table + `.reasoning_tokens + excluded.reasoning_tokens,
		semantic_hits = ` + table + `.semantic_hits + excluded.semantic_hits,
		semantic_avoided_nano = ` + table + `.semantic_avoided_nano + excluded.semantic_avoided_nano,
		embed_calls = ` + table + `.embed_calls + excluded.embed_calls,
		embed_cost_dollars = ` + table + `.embed_cost_dollars + excluded.embed_cost_dollars + (` + table + `.embed_cost_pico + excluded.embed_cost_pico) / 1000000000000,
		embed_cost_pico = (` + table + `.embed_cost_pico + excluded.embed_cost_pico) % 1000000000000`
	const cols = 25
	row := "(?" + strings.Repeat(",?", cols-1) + ")"
	keys := make([]rollupKey, 0, len(m))
	if pg {
		// In one order on every writer (no deadlock between two
		// transactions updating the same rows).
		keys = sortedRollupKeys(m)
	} else {
		for k := range m {
			keys = append(keys, k)
		}
	}
	args := func(k rollupKey) ([]any, error) {
		v := m[k]
		avoided, ok := v.Avoided.Money()
		if !ok {
			return nil, fmt.Errorf("ledger: update %s: avoided cost %s out of range", table, v.Avoided)
		}
		return []any{k.bucket, k.dim, k.key, v.Calls, v.InputTokens, v.CachedTokens, v.OutputTokens,
			v.Cost.Dollars, v.Cost.Pico, v.UnpricedCalls, v.CacheHits, v.AvoidedInputTokens, v.AvoidedCachedTokens, v.AvoidedOutputTokens,
			int64(avoided), v.LatencyMSSum, v.LatencyCalls, v.CacheWrite5mTokens, v.CacheWrite1hTokens, v.ReasoningTokens,
			v.SemanticHits, int64(v.SemanticAvoided), v.EmbedCalls, v.EmbedCost.Dollars, v.EmbedCost.Pico}, nil
	}
	if pg {
		// A network round trip per row is most of a chunk's time on a
		// server: many rows per statement (each key once, so no row is
		// updated twice by one statement).
		const per = 1000
		for lo := 0; lo < len(keys); lo += per {
			part := keys[lo:min(lo+per, len(keys))]
			all := make([]any, 0, len(part)*cols)
			for _, k := range part {
				a, err := args(k)
				if err != nil {
					return err
				}
				all = append(all, a...)
			}
			q := head + row + strings.Repeat(","+row, len(part)-1) + tail
			if _, err := tx.ExecContext(ctx, q, all...); err != nil {
				return fmt.Errorf("ledger: update %s: %w", table, err)
			}
		}
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, head+row+tail)
	if err != nil {
		return fmt.Errorf("ledger: prepare rollup: %w", err)
	}
	defer stmt.Close() // each Exec's error is checked; the transaction's Commit decides what is written
	for _, k := range keys {
		a, err := args(k)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, a...); err != nil {
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
