package ledger

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// A LiveCache serves repeated GroupedSince queries (top refreshing every
// second) by remembering the sums of the parts of a window that lie in
// past UTC days. Insert bumps a per-day write counter (rollup_epoch), so a
// remembered part is reused only while no event has been written to its
// days since; parts in today are always read. On a ledger with many keys
// (users) and a 7-day window this turns a refresh from every day's rows
// into today's.
type LiveCache struct {
	db    *DB
	mu    sync.Mutex
	parts map[string]*cachedPart
	hits  int // parts served from memory (for tests)
}

type cachedPart struct {
	epochs []int64 // rollup_epoch.writes for each day of the part when read
	rows   map[string]Totals
}

// NewLiveCache returns an empty cache over db. It is safe for concurrent use.
func (db *DB) NewLiveCache() *LiveCache {
	return &LiveCache{db: db, parts: map[string]*cachedPart{}}
}

// GroupedSince is DB.GroupedSince, reusing what it can.
func (c *LiveCache) GroupedSince(ctx context.Context, dim string, start, now time.Time) (rows []GroupRow, err error) {
	err = c.db.read(func() (err error) {
		rows, err = c.groupedSince(ctx, dim, start, now)
		return err
	})
	return rows, err
}

func (c *LiveCache) groupedSince(ctx context.Context, dim string, start, now time.Time) ([]GroupRow, error) {
	if !IsDimension(dim) {
		return nil, fmt.Errorf("ledger: unknown dimension %q (expected %s)", dim, strings.Join(Dimensions, ", "))
	}
	sm, em := minuteRange(start, now)
	today := floorDiv(em-1, 1440)
	// Split parts at the start of today: what lies before can be kept.
	var parts []part
	for _, p := range cover(sm, em, true) {
		cut := today * (1440 / p.l.minutes)
		if p.lo < cut && cut < p.hi {
			before, after := p, p
			before.hi, after.lo = cut, cut
			parts = append(parts, before, after)
			continue
		}
		parts = append(parts, p)
	}
	d0 := today
	for _, p := range parts {
		a, _ := p.days()
		d0 = min(d0, a)
	}
	epochs, err := c.db.epochs(ctx, d0, today)
	if err != nil {
		return nil, err
	}
	sums := map[string]*Totals{}
	add := func(key string, t Totals, neg bool) {
		s := sums[key]
		if s == nil {
			s = &Totals{}
			sums[key] = s
		}
		if neg {
			t = t.negate()
		}
		s.Add(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	used := map[string]bool{}
	for _, p := range parts {
		a, b := p.days()
		id := fmt.Sprintf("%s|%s|%d|%d", dim, p.l.table, p.lo, p.hi)
		var want []int64
		cacheable := b <= today
		if cacheable {
			for d := a; d < b; d++ {
				want = append(want, epochs[d])
			}
			if cp := c.parts[id]; cp != nil && equalInts(cp.epochs, want) {
				used[id] = true
				c.hits++
				for k, t := range cp.rows {
					add(k, t, p.neg)
				}
				continue
			}
		}
		rows, err := c.db.partRows(ctx, dim, p)
		if err != nil {
			return nil, err
		}
		for k, t := range rows {
			add(k, t, p.neg)
		}
		if cacheable {
			c.parts[id] = &cachedPart{epochs: want, rows: rows}
			used[id] = true
		}
	}
	for id := range c.parts {
		if !used[id] {
			delete(c.parts, id)
		}
	}
	out := make([]GroupRow, 0, len(sums))
	for k, t := range sums {
		if !t.Empty() {
			out = append(out, GroupRow{Key: k, Totals: *t})
		}
	}
	return out, nil
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (t Totals) negate() Totals {
	return Totals{Calls: -t.Calls, InputTokens: -t.InputTokens, CachedTokens: -t.CachedTokens, OutputTokens: -t.OutputTokens,
		Cost: t.Cost.Neg(), UnpricedCalls: -t.UnpricedCalls, CacheHits: -t.CacheHits,
		AvoidedInputTokens: -t.AvoidedInputTokens, AvoidedCachedTokens: -t.AvoidedCachedTokens, AvoidedOutputTokens: -t.AvoidedOutputTokens,
		Avoided: t.Avoided.Neg(), LatencyMSSum: -t.LatencyMSSum, LatencyCalls: -t.LatencyCalls,
		CacheWrite5mTokens: -t.CacheWrite5mTokens, CacheWrite1hTokens: -t.CacheWrite1hTokens, ReasoningTokens: -t.ReasoningTokens,
		SemanticHits: -t.SemanticHits, SemanticAvoided: -t.SemanticAvoided, EmbedCalls: -t.EmbedCalls, EmbedCost: t.EmbedCost.Neg()}
}

// epochs reads the write counters of UTC days [d0, d1].
func (db *DB) epochs(ctx context.Context, d0, d1 int64) (map[int64]int64, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT day, writes FROM rollup_epoch WHERE day >= ? AND day <= ?`, d0, d1)
	if err != nil {
		return nil, fmt.Errorf("ledger: read rollup epochs: %w", err)
	}
	defer rows.Close() // read-only; rows.Err() is checked below
	out := map[int64]int64{}
	for rows.Next() {
		var d, w int64
		if err := rows.Scan(&d, &w); err != nil {
			return nil, fmt.Errorf("ledger: read rollup epochs: %w", err)
		}
		out[d] = w
	}
	return out, rows.Err()
}

// partRows sums one part per key (unsigned).
func (db *DB) partRows(ctx context.Context, dim string, p part) (map[string]Totals, error) {
	q := `SELECT key, ` + db.sumExprs() + ` FROM ` + p.l.table + ` WHERE dim = ? AND ` + p.l.col + ` >= ? AND ` + p.l.col + ` < ? GROUP BY key`
	rows, err := db.sql.QueryContext(ctx, q, dim, p.lo, p.hi)
	if err != nil {
		return nil, fmt.Errorf("ledger: read %s totals: %w", dim, err)
	}
	defer rows.Close() // read-only; rows.Err() is checked below
	out := map[string]Totals{}
	for rows.Next() {
		var key string
		t, err := scanTotals(rows, &key)
		if err != nil {
			return nil, fmt.Errorf("ledger: read %s totals: %w", dim, err)
		}
		out[key] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: read %s totals: %w", dim, err)
	}
	return out, nil
}
