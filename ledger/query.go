package ledger

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/costctl/costctl/pricing"
)

// Totals are the sums of a set of events as reads report them: calls and
// tokens a provider billed, and cache hits apart. A cache hit (an eval
// verdict served from costctl's judge cache) is not a call: it is counted
// in CacheHits, and its tokens and what it would have cost are avoided,
// not spent — so Calls, the tokens and Cost reconcile with a provider's
// invoice.
//
// (Insert accumulates raw rollup rows in this struct too — events.go's
// rollupVal — where Calls counts every event, cache hits included, and the
// Avoided fields stay 0; rollup_hits.go says how reads tell them apart.)
type Totals struct {
	Calls         int64 // requests a provider billed: cache hits are not calls
	InputTokens   int64 // billed prompt tokens, cached included
	CachedTokens  int64 // of InputTokens, read from the provider's prompt cache
	OutputTokens  int64
	Cost          pricing.Amount // priced events only, exact; see UnpricedCalls
	UnpricedCalls int64          // events whose model had no price: their cost is unknown, not $0
	CacheHits     int64          // answers served from costctl's cache: no provider call
	// The cache hits' tokens and what the calls they stood in for would
	// have cost: avoided, not spent.
	AvoidedInputTokens  int64
	AvoidedCachedTokens int64
	AvoidedOutputTokens int64
	Avoided             pricing.Amount
	LatencyMSSum        int64
	LatencyCalls        int64 // events with a known latency
	// Token kinds kept apart (all events): prompt tokens written to a
	// 5-minute or 1-hour cache (inside InputTokens) and reasoning tokens
	// (inside OutputTokens).
	CacheWrite5mTokens int64
	CacheWrite1hTokens int64
	ReasoningTokens    int64
	// Semantic cache (semantic.go): of CacheHits, those served by
	// similarity, and what they avoided (part of Avoided); the embedding
	// calls the cache made (part of Calls and Cost) and their cost.
	SemanticHits    int64
	SemanticAvoided pricing.Money
	EmbedCalls      int64
	EmbedCost       pricing.Amount
}

// NetSemantic is what the semantic cache saved after paying for its
// embeddings: SemanticAvoided − EmbedCost (negative when it cost more
// than it saved).
func (t Totals) NetSemantic() pricing.Amount {
	return pricing.AmountFromMoney(t.SemanticAvoided).Sub(t.EmbedCost)
}

// Add adds o to t.
func (t *Totals) Add(o Totals) {
	t.Calls += o.Calls
	t.InputTokens += o.InputTokens
	t.CachedTokens += o.CachedTokens
	t.OutputTokens += o.OutputTokens
	t.Cost = t.Cost.Add(o.Cost)
	t.UnpricedCalls += o.UnpricedCalls
	t.CacheHits += o.CacheHits
	t.AvoidedInputTokens += o.AvoidedInputTokens
	t.AvoidedCachedTokens += o.AvoidedCachedTokens
	t.AvoidedOutputTokens += o.AvoidedOutputTokens
	t.Avoided = t.Avoided.Add(o.Avoided)
	t.CacheWrite5mTokens += o.CacheWrite5mTokens
	t.CacheWrite1hTokens += o.CacheWrite1hTokens
	t.ReasoningTokens += o.ReasoningTokens
	t.LatencyMSSum += o.LatencyMSSum
	t.LatencyCalls += o.LatencyCalls
	t.SemanticHits += o.SemanticHits
	t.SemanticAvoided += o.SemanticAvoided
	t.EmbedCalls += o.EmbedCalls
	t.EmbedCost = t.EmbedCost.Add(o.EmbedCost)
}

// Empty reports whether t counts no event at all (no call, no cache hit).
func (t Totals) Empty() bool { return t.Calls == 0 && t.CacheHits == 0 }

// AvgLatencyMS is the mean latency of the events that reported one (0 when none did).
func (t Totals) AvgLatencyMS() int64 {
	if t.LatencyCalls == 0 {
		return 0
	}
	return t.LatencyMSSum / t.LatencyCalls
}

// CachedShare is the fraction (0..1) of prompt tokens read from a prompt cache.
func (t Totals) CachedShare() float64 {
	if t.InputTokens <= 0 {
		return 0
	}
	s := float64(t.CachedTokens) / float64(t.InputTokens)
	return min(max(s, 0), 1)
}

// GroupRow is the totals of one key of a dimension (a tenant, a model, ...).
type GroupRow struct {
	Key string
	Totals
}

// IsDimension reports whether dim is one the rollups are kept by.
func IsDimension(dim string) bool {
	for _, d := range Dimensions {
		if d == dim {
			return true
		}
	}
	return false
}

// totalsExprs are the Totals fields read from one rollup row, in the
// order of Totals (see scanDst): billed calls and tokens are the raw
// columns less the cache hits' share (rollup_hits.go).
var totalsExprs = []string{
	"calls - cache_hits",
	"input_tokens - hit_input_tokens",
	"cached_tokens - hit_cached_tokens",
	"output_tokens - hit_output_tokens",
	"cost_dollars",
	"cost_pico",
	"unpriced_calls",
	"cache_hits",
	"hit_input_tokens",
	"hit_cached_tokens",
	"hit_output_tokens",
	"avoided_nano",
	"latency_ms_sum",
	"latency_calls",
	"cache_write_5m_tokens",
	"cache_write_1h_tokens",
	"reasoning_tokens",
	"semantic_hits",
	"semantic_avoided_nano",
	"embed_calls",
	"embed_cost_dollars",
	"embed_cost_pico",
}

// rollupExprs are totalsExprs for this ledger's schema: one read-only
// opened before v4 (and holding no cache hits, see OpenReadOnly) has no
// hit columns, which then read as 0.
func (db *DB) rollupExprs() []string {
	if !db.noHitCols && !db.nanoCost && !db.noKindCols && !db.noSemCols {
		return totalsExprs
	}
	out := make([]string, len(totalsExprs))
	for i, e := range totalsExprs {
		if db.noHitCols && !slices.Contains(semRollupCols, e) {
			for _, c := range hitCols {
				e = strings.ReplaceAll(e, c.col, "0")
			}
		}
		if db.noKindCols {
			for _, c := range kindCols {
				if e == c {
					e = "0"
				}
			}
		}
		if db.noSemCols {
			for _, c := range semRollupCols {
				if e == c {
					e = "0"
				}
			}
		}
		if db.nanoCost {
			// Before v5 the rollups kept nano-dollars (exact.go).
			switch e {
			case "cost_dollars":
				e = "cost_nano / 1000000000"
			case "cost_pico":
				e = "(cost_nano % 1000000000) * 1000"
			}
		}
		out[i] = e
	}
	return out
}

// selectCols is the rollup expressions as columns c0, c1, ... (negated).
func (db *DB) selectCols(neg bool) string {
	var parts []string
	for i, e := range db.rollupExprs() {
		if neg {
			e = "-(" + e + ")"
		}
		parts = append(parts, fmt.Sprintf("%s AS c%d", e, i))
	}
	return strings.Join(parts, ", ")
}

// sumCols sums the columns selectCols names (COALESCE: 0 over no rows).
func sumCols() string {
	var parts []string
	for i := range totalsExprs {
		parts = append(parts, fmt.Sprintf("COALESCE(SUM(c%d), 0)", i))
	}
	return strings.Join(parts, ", ")
}

// sumExprs sums the rollup expressions of a table directly.
func (db *DB) sumExprs() string {
	var parts []string
	for _, e := range db.rollupExprs() {
		parts = append(parts, "SUM("+e+")")
	}
	return strings.Join(parts, ", ")
}

// hasEvents is a HAVING clause over selectCols: some call or cache hit.
const hasEvents = `SUM(c0) + SUM(c7) != 0`

// totalsScan receives one row of totalsExprs; done turns it into Totals.
type totalsScan struct {
	Totals
	costDollars, costPico, avoidedNano      int64
	semAvoidedNano, embedDollars, embedPico int64
}

// scanDst are the scan destinations, in totalsExprs order.
func (t *totalsScan) scanDst() []any {
	return []any{&t.Calls, &t.InputTokens, &t.CachedTokens, &t.OutputTokens, &t.costDollars, &t.costPico,
		&t.UnpricedCalls, &t.CacheHits, &t.AvoidedInputTokens, &t.AvoidedCachedTokens, &t.AvoidedOutputTokens,
		&t.avoidedNano, &t.LatencyMSSum, &t.LatencyCalls, &t.CacheWrite5mTokens, &t.CacheWrite1hTokens, &t.ReasoningTokens,
		&t.SemanticHits, &t.semAvoidedNano, &t.EmbedCalls, &t.embedDollars, &t.embedPico}
}

func (t *totalsScan) done() Totals {
	t.Cost = amountOf(t.costDollars, t.costPico)
	t.Avoided = pricing.AmountFromMoney(pricing.Money(t.avoidedNano))
	t.SemanticAvoided = pricing.Money(t.semAvoidedNano)
	t.EmbedCost = amountOf(t.embedDollars, t.embedPico)
	return t.Totals
}

// minuteRange turns [start, end) into Unix minutes [sm, em): the minute
// holding start up to and including the minute holding end-1ms. Rollups
// are minute-granular, so windows are too.
func minuteRange(start, end time.Time) (sm, em int64) {
	sm = floorDiv(start.UnixMilli(), 60_000)
	em = floorDiv(end.UnixMilli()-1, 60_000) + 1
	if em < sm {
		em = sm
	}
	return sm, em
}

type level struct {
	minutes    int64
	table, col string
}

var levels = []level{{1440, "rollup_day", "day"}, {60, "rollup_hour", "hour"}, {1, "rollup_minute", "minute"}}

// part is one range of one rollup table, added (or, neg, subtracted).
type part struct {
	l      level
	lo, hi int64 // buckets [lo, hi) of l
	neg    bool
}

// days is the span of UTC days [d0, d1) the part reads.
func (p part) days() (d0, d1 int64) {
	per := 1440 / p.l.minutes
	return floorDiv(p.lo, per), ceilDiv(p.hi, per)
}

func (p part) sql(db *DB) string {
	return `SELECT key, ` + db.selectCols(p.neg) + ` FROM ` + p.l.table + ` WHERE dim = ? AND ` + p.l.col + ` >= ? AND ` + p.l.col + ` < ?`
}

// cover splits Unix minutes [sm, em) into as few rollup rows as it can:
// whole UTC days from rollup_day, then hours, then minutes, rounding each
// edge to the nearest bucket and subtracting what a rounded-out bucket
// holds beyond the edge (so a ragged edge costs at most half a bucket of
// the level below). openEnd says nothing after em matters (the window
// ends now): the last bucket of each level is then taken whole.
//
// Every part is read through a (dim, bucket, key) primary key, so a
// refresh costs buckets × keys, never the number of events.
func cover(sm, em int64, openEnd bool) []part {
	var parts []part
	var rec func(lo, hi int64, neg bool, lv []level, open bool)
	rec = func(lo, hi int64, neg bool, lv []level, open bool) {
		if lo >= hi {
			return
		}
		l := lv[0]
		if l.minutes == 1 {
			parts = append(parts, part{l, lo, hi, neg})
			return
		}
		a := roundDiv(lo, l.minutes)
		b := roundDiv(hi, l.minutes)
		if open {
			b = ceilDiv(hi, l.minutes)
		}
		if a >= b {
			rec(lo, hi, neg, lv[1:], open)
			return
		}
		parts = append(parts, part{l, a, b, neg})
		if as := a * l.minutes; lo < as {
			rec(lo, as, neg, lv[1:], false)
		} else if lo > as {
			rec(as, lo, !neg, lv[1:], false)
		}
		if bs := b * l.minutes; bs < hi {
			rec(bs, hi, neg, lv[1:], open)
		} else if bs > hi && !open {
			rec(hi, bs, !neg, lv[1:], false)
		}
	}
	rec(sm, em, false, levels, openEnd)
	return parts
}

// rangeSource is the UNION ALL of a cover's parts for dim: a subquery of
// key + rollup columns.
func (db *DB) rangeSource(dim string, sm, em int64, openEnd bool) (string, []any) {
	parts := cover(sm, em, openEnd)
	if len(parts) == 0 {
		return `SELECT key, ` + db.selectCols(false) + ` FROM rollup_minute WHERE 1 = 0`, nil
	}
	var sqls []string
	var args []any
	for _, p := range parts {
		sqls = append(sqls, p.sql(db))
		args = append(args, dim, p.lo, p.hi)
	}
	return strings.Join(sqls, "\n\t\tUNION ALL "), args
}

// roundDiv is a/b rounded to the nearest integer (halves up).
func roundDiv(a, b int64) int64 { return floorDiv(a+b/2, b) }

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

type scanner interface{ Scan(...any) error }

func scanTotals(s scanner, key *string) (Totals, error) {
	var t totalsScan
	dst := t.scanDst()
	if key != nil {
		dst = append([]any{key}, dst...)
	}
	err := s.Scan(dst...)
	return t.done(), err
}

// Totals sums every event in [start, end) (minute-granular) from the rollups.
func (db *DB) Totals(ctx context.Context, start, end time.Time) (t Totals, err error) {
	err = db.read(func() (err error) {
		t, err = db.totals(ctx, start, end, false)
		return err
	})
	return t, err
}

// TotalsSince sums every event from start on (minute-granular): a window
// that ends now. It reads fewer rollup rows than Totals.
func (db *DB) TotalsSince(ctx context.Context, start, now time.Time) (t Totals, err error) {
	err = db.read(func() (err error) {
		t, err = db.totals(ctx, start, now, true)
		return err
	})
	return t, err
}

func (db *DB) totals(ctx context.Context, start, end time.Time, open bool) (Totals, error) {
	sm, em := minuteRange(start, end)
	src, args := db.rangeSource("all", sm, em, open)
	t, err := scanTotals(db.sql.QueryRowContext(ctx, `SELECT `+sumCols()+` FROM (`+src+`) AS r`, args...), nil)
	if err != nil {
		return t, fmt.Errorf("ledger: read totals: %w", err)
	}
	return t, nil
}

// Grouped returns the totals per key of dim (tenant, model, user, endpoint,
// source or metric) over [start, end), from the rollups, in no set order.
func (db *DB) Grouped(ctx context.Context, dim string, start, end time.Time) (rows []GroupRow, err error) {
	err = db.read(func() (err error) {
		rows, err = db.grouped(ctx, dim, start, end, false)
		return err
	})
	return rows, err
}

// GroupedSince is Grouped for a window that ends now (everything from
// start on); it reads fewer rollup rows.
func (db *DB) GroupedSince(ctx context.Context, dim string, start, now time.Time) (rows []GroupRow, err error) {
	err = db.read(func() (err error) {
		rows, err = db.grouped(ctx, dim, start, now, true)
		return err
	})
	return rows, err
}

func (db *DB) grouped(ctx context.Context, dim string, start, end time.Time, open bool) ([]GroupRow, error) {
	if !IsDimension(dim) {
		return nil, fmt.Errorf("ledger: unknown dimension %q (expected %s)", dim, strings.Join(Dimensions, ", "))
	}
	sm, em := minuteRange(start, end)
	src, args := db.rangeSource(dim, sm, em, open)
	// Keys whose only events were subtracted away sum to no event.
	rows, err := db.sql.QueryContext(ctx, `SELECT key, `+sumCols()+` FROM (`+src+`) AS r GROUP BY key HAVING `+hasEvents, args...)
	if err != nil {
		return nil, fmt.Errorf("ledger: read %s totals: %w", dim, err)
	}
	defer rows.Close() // read-only; rows.Err() is checked below
	var out []GroupRow
	for rows.Next() {
		var r GroupRow
		t, err := scanTotals(rows, &r.Key)
		if err != nil {
			return nil, fmt.Errorf("ledger: read %s totals: %w", dim, err)
		}
		r.Totals = t
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: read %s totals: %w", dim, err)
	}
	return out, nil
}

// MinuteSeries returns the totals of each of the n minutes ending with the
// minute that holds end (oldest first), for sparklines.
func (db *DB) MinuteSeries(ctx context.Context, end time.Time, n int) (out []Totals, err error) {
	err = db.read(func() (err error) {
		out, err = db.minuteSeries(ctx, end, n)
		return err
	})
	return out, err
}

func (db *DB) minuteSeries(ctx context.Context, end time.Time, n int) ([]Totals, error) {
	last := floorDiv(end.UnixMilli(), 60_000)
	first := last - int64(n) + 1
	out := make([]Totals, n)
	rows, err := db.sql.QueryContext(ctx, `SELECT minute, `+db.selectCols(false)+` FROM rollup_minute
		WHERE dim = 'all' AND minute >= ? AND minute <= ?`, first, last)
	if err != nil {
		return nil, fmt.Errorf("ledger: read minute series: %w", err)
	}
	defer rows.Close() // read-only; rows.Err() is checked below
	for rows.Next() {
		var minute int64
		var t totalsScan
		if err := rows.Scan(append([]any{&minute}, t.scanDst()...)...); err != nil {
			return nil, fmt.Errorf("ledger: read minute series: %w", err)
		}
		out[minute-first].Add(t.done())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: read minute series: %w", err)
	}
	return out, nil
}

// BurnWindow is the span burn rates are measured over: the minute holding
// now and the four before it.
const BurnWindow = 5 * time.Minute

// BurnStart is the start of the burn-rate window ending at now.
func BurnStart(now time.Time) time.Time {
	m := floorDiv(now.UnixMilli(), 60_000) - int64(BurnWindow/time.Minute) + 1
	return time.UnixMilli(m * 60_000)
}

// PerHour converts spend over BurnWindow into a rate per hour (exact: ×12).
func PerHour(spentInBurnWindow pricing.Amount) pricing.Amount {
	return spentInBurnWindow.MulInt64(int64(time.Hour / BurnWindow))
}
