package ledger

import (
	"fmt"
	"strings"
)

// Cache hits in the rollups.
//
// A cache hit (an eval verdict served from the judge cache) is an event
// with cache_hit = 1, cost 0, the tokens of the call it stood in for and
// what that call would have cost in avoided_nano. Insert (events.go) adds
// every event to the rollups whole: their calls column counts cache hits
// too, and their token columns include the hits' tokens. A provider billed
// none of that, so reads need the hits' share apart:
//
//	hit_input_tokens, hit_cached_tokens, hit_output_tokens, avoided_nano
//
// are kept for cache hits only, by the trigger below (it fires only for an
// inserted row with cache_hit != 0, so bulk ingest pays nothing for it).
// Reads then count what a provider billed (query.go, rollupExprs):
//
//	calls billed  = calls - cache_hits
//	tokens billed = input_tokens - hit_input_tokens (and so on)
//
// The migration fills the new columns from the cache hits already in the
// ledger, so an older ledger reads the same as a new one.

// hitCols are the rollup columns migration v4 adds, with the events
// column each sums (over cache hits only).
var hitCols = []struct{ col, from string }{
	{"hit_input_tokens", "input_tokens"},
	{"hit_cached_tokens", "cached_tokens"},
	{"hit_output_tokens", "output_tokens"},
	{"avoided_nano", "avoided_nano"},
}

// rollupLevels are the rollup tables with the bucket column and its width
// in milliseconds.
var rollupLevels = []struct {
	table, col string
	ms         int64
}{{"rollup_minute", "minute", 60_000}, {"rollup_hour", "hour", 3_600_000}, {"rollup_day", "day", 86_400_000}}

// floorSQL is floor(x / ms) for SQLite, whose integer division truncates
// toward zero (Go's floorDiv in events.go, for times before 1970 too).
func floorSQL(x string, ms int64) string {
	return fmt.Sprintf("((%[1]s - ((%[1]s %% %[2]d) + %[2]d) %% %[2]d) / %[2]d)", x, ms)
}

// dimColumn is the events column a rollup dimension is keyed by.
func dimColumn(dim string) string {
	switch dim {
	case "all":
		return "''"
	case "user":
		return `"user"`
	}
	return dim
}

func hitRollupsMigration() string {
	var b strings.Builder
	b.WriteString("-- v4: cache hits' tokens and avoided cost in the rollups (rollup_hits.go).\n")
	for _, l := range rollupLevels {
		for _, c := range hitCols {
			fmt.Fprintf(&b, "ALTER TABLE %s ADD COLUMN %s INTEGER NOT NULL DEFAULT 0;\n", l.table, c.col)
		}
	}
	// Back-fill from the cache hits already stored: one scan of events.
	var cols, sums, sets []string
	for _, c := range hitCols {
		cols = append(cols, c.col)
		sums = append(sums, "SUM("+c.from+")")
		sets = append(sets, c.col+" = excluded."+c.col)
	}
	b.WriteString(`CREATE TEMP TABLE v4_hits AS SELECT ts_ms, tenant, model, "user", endpoint, source, metric, ` +
		`input_tokens, cached_tokens, output_tokens, avoided_nano FROM events WHERE cache_hit != 0;` + "\n")
	for _, l := range rollupLevels {
		for _, dim := range rollupDims {
			fmt.Fprintf(&b, "INSERT INTO %s (%s, dim, key, %s) SELECT %s, '%s', %s, %s FROM v4_hits WHERE true GROUP BY 1, 3 "+
				"ON CONFLICT(dim, %s, key) DO UPDATE SET %s;\n",
				l.table, l.col, strings.Join(cols, ", "), floorSQL("ts_ms", l.ms), dim, dimColumn(dim), strings.Join(sums, ", "),
				l.col, strings.Join(sets, ", "))
		}
	}
	// Readers that keep past days' sums (LiveCache) must read them again.
	fmt.Fprintf(&b, "UPDATE rollup_epoch SET writes = writes + 1 WHERE day IN (SELECT DISTINCT %s FROM v4_hits);\n", floorSQL("ts_ms", 86_400_000))
	b.WriteString("DROP TABLE v4_hits;\n")
	// From now on, every cache hit inserted.
	b.WriteString("CREATE TRIGGER events_cache_hit_rollups AFTER INSERT ON events WHEN NEW.cache_hit != 0\nBEGIN\n")
	var vals, adds []string
	for _, c := range hitCols {
		vals = append(vals, "NEW."+c.from)
		adds = append(adds, c.col+" = "+c.col+" + excluded."+c.col)
	}
	for _, l := range rollupLevels {
		for _, dim := range rollupDims {
			key := "NEW." + dimColumn(dim)
			if dim == "all" {
				key = "''"
			}
			fmt.Fprintf(&b, "INSERT INTO %s (%s, dim, key, %s) VALUES (%s, '%s', %s, %s) ON CONFLICT(dim, %s, key) DO UPDATE SET %s;\n",
				l.table, l.col, strings.Join(cols, ", "), floorSQL("NEW.ts_ms", l.ms), dim, key, strings.Join(vals, ", "),
				l.col, strings.Join(adds, ", "))
		}
	}
	b.WriteString("END;\n")
	return b.String()
}
