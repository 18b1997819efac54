package ledger

import (
	"fmt"
	"strings"

	"github.com/costctl/costctl/pricing"
)

// Exact money in the ledger.
//
// An event's cost is exact: tokens × a price in pico-dollars per token
// (pricing.Rate), never rounded, so $2.1875 per 1M tokens bills one token
// at $0.0000021875 and ten such events sum to $0.000021875. A cost is
// stored as whole dollars plus pico-dollars (cost_dollars, cost_pico, with
// 0 ≤ cost_pico < 10^12) in the events and in every rollup, which keeps
// sums exact and unable to wrap before $9.2×10^18; reads sum the two
// columns and normalise (pricing.Amount), and money is rounded once, when
// printed. cost_nano in events is no longer written (0 since v6's
// writers; only a pre-v5 ledger read with OpenReadOnly uses it): an older
// costctl refuses a newer schema, so nothing reads it, and it cost bytes on
// every row. Token counts per event are bounded (ingest
// refuses counts above 10^10), so no product or sum of tokens can wrap
// either.

// costMigration (v5) adds the exact cost columns, fills them from the
// nano-dollar costs already stored, and moves the cache-hit rollup columns
// from v4's trigger into Insert.
func costMigration() string {
	var b strings.Builder
	b.WriteString("ALTER TABLE events ADD COLUMN cost_dollars INTEGER NOT NULL DEFAULT 0;\n")
	b.WriteString("ALTER TABLE events ADD COLUMN cost_pico INTEGER NOT NULL DEFAULT 0;\n")
	b.WriteString("UPDATE events SET cost_dollars = cost_nano / 1000000000, cost_pico = (cost_nano % 1000000000) * 1000 WHERE cost_nano != 0;\n")
	for _, l := range rollupLevels {
		fmt.Fprintf(&b, "ALTER TABLE %s ADD COLUMN cost_dollars INTEGER NOT NULL DEFAULT 0;\n", l.table)
		fmt.Fprintf(&b, "ALTER TABLE %s ADD COLUMN cost_pico INTEGER NOT NULL DEFAULT 0;\n", l.table)
		fmt.Fprintf(&b, "UPDATE %s SET cost_dollars = cost_nano / 1000000000, cost_pico = (cost_nano %% 1000000000) * 1000 WHERE cost_nano != 0;\n", l.table)
		fmt.Fprintf(&b, "ALTER TABLE %s DROP COLUMN cost_nano;\n", l.table)
	}
	b.WriteString("DROP TRIGGER IF EXISTS events_cache_hit_rollups;\n")
	return b.String()
}

// eventCost is e's exact cost: CostExact, or Cost (nano-dollars) when
// only that was set (eval prices calls in Money).
func eventCost(e *Event) pricing.Amount {
	if e.CostExact.IsZero() && e.Cost != 0 {
		return pricing.AmountFromMoney(e.Cost)
	}
	return e.CostExact
}

// amountOf normalises a (dollars, pico) pair summed by SQL, where pico may
// be negative or above 10^12.
func amountOf(dollars, pico int64) pricing.Amount {
	return pricing.Amount{Dollars: dollars}.Add(pricing.AmountFromPico(pico))
}

// kindCols are the token kinds the rollups keep apart from v6 on (the
// events have them from v3).
var kindCols = []string{"cache_write_5m_tokens", "cache_write_1h_tokens", "reasoning_tokens"}

// kindsMigration (v6) adds kindCols to the rollups and fills them from the
// events already stored (one scan of the events that have any).
func kindsMigration() string {
	var b strings.Builder
	for _, l := range rollupLevels {
		for _, c := range kindCols {
			fmt.Fprintf(&b, "ALTER TABLE %s ADD COLUMN %s INTEGER NOT NULL DEFAULT 0;\n", l.table, c)
		}
	}
	var sums, sets []string
	for _, c := range kindCols {
		sums = append(sums, "SUM("+c+")")
		sets = append(sets, c+" = excluded."+c)
	}
	b.WriteString(`CREATE TEMP TABLE v6_kinds AS SELECT ts_ms, tenant, model, "user", endpoint, source, metric, ` +
		strings.Join(kindCols, ", ") + ` FROM events WHERE cache_write_5m_tokens != 0 OR cache_write_1h_tokens != 0 OR reasoning_tokens != 0;` + "\n")
	for _, l := range rollupLevels {
		for _, dim := range rollupDims {
			fmt.Fprintf(&b, "INSERT INTO %s (%s, dim, key, %s) SELECT %s, '%s', %s, %s FROM v6_kinds WHERE true GROUP BY 1, 3 "+
				"ON CONFLICT(dim, %s, key) DO UPDATE SET %s;\n",
				l.table, l.col, strings.Join(kindCols, ", "), floorSQL("ts_ms", l.ms), dim, dimColumn(dim), strings.Join(sums, ", "),
				l.col, strings.Join(sets, ", "))
		}
	}
	fmt.Fprintf(&b, "UPDATE rollup_epoch SET writes = writes + 1 WHERE day IN (SELECT DISTINCT %s FROM v6_kinds);\n", floorSQL("ts_ms", 86_400_000))
	b.WriteString("DROP TABLE v6_kinds;\n")
	return b.String()
}
