package tui

import (
	"strings"

	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
)

// Column is one column of top's table. Columns is the only list of them:
// the live view (header, fixed width, cell), the --once table (header,
// cell), the JSON rows (fields) and sorting (Compare, also the < > keys)
// all read it, so a new column is one entry there.
type Column struct {
	// ID names the column in code and tests ("cost").
	ID string
	// Header is the live view's header; Wide is the --once table's ("" =
	// Header). The key column (Width 0) has none: its header is the
	// grouping, upper-cased (TENANT, MODEL, ...).
	Header, Wide string
	// Width is the column's fixed width in the live view (right-aligned,
	// after one space); 0 marks the key column, left-aligned in the width
	// the others leave.
	Width int
	// Cell renders a row for the live view (compact counts, "–" for
	// none); Text renders it for the --once table (full counts, "-").
	Cell, Text func(r Row) string
	// Compare returns <0 when a sorts before b in the column's natural
	// order: numbers largest first, names A→Z (ties are broken by name).
	Compare func(a, b Row) int
	// JSON are the fields the column puts in a JSON row, in order; none
	// when the column is not in the JSON.
	JSON []JSONField
	// Optional, when set, makes the column optional: it is shown only
	// when Optional holds for some row of the snapshot, so a table with
	// nothing for it reads as it did before the column existed. (The live
	// view also leaves the optional columns out when the terminal is too
	// narrow for them; see Model.columns.)
	Optional func(r Row) bool
}

// JSONField is one field of a JSON row of top.
type JSONField struct {
	Name  string
	Value func(r Row) any
}

// IsKey reports whether c is the key column (the group's name).
func (c Column) IsKey() bool { return c.Width == 0 }

// Title is the column's header in the live view; groupBy names the key
// column.
func (c Column) Title(groupBy string) string {
	if c.IsKey() {
		return strings.ToUpper(groupBy)
	}
	return c.Header
}

// ShownFor reports whether c is shown for a snapshot with rows: always,
// unless it is optional and no row has anything for it.
func (c Column) ShownFor(rows []Row) bool {
	if c.Optional == nil {
		return true
	}
	for _, r := range rows {
		if c.Optional(r) {
			return true
		}
	}
	return false
}

// ShownColumns are the indexes in Columns of the columns shown for a
// snapshot with rows, left to right.
func ShownColumns(rows []Row) []int {
	var cols []int
	for i, c := range Columns {
		if c.ShownFor(rows) {
			cols = append(cols, i)
		}
	}
	return cols
}

// WideTitle is the column's header in the --once table.
func (c Column) WideTitle(groupBy string) string {
	if c.Wide == "" {
		return c.Title(groupBy)
	}
	return c.Wide
}

// Columns of top's table, left to right; the first is the key.
var Columns = []Column{
	{ID: "key", Width: 0,
		Cell: keyName, Text: keyName,
		Compare: func(a, b Row) int { return strings.Compare(a.Key, b.Key) },
		JSON:    []JSONField{{"key", func(r Row) any { return r.Key }}}},
	{ID: "calls", Header: "CALLS", Width: 7,
		Cell:    func(r Row) string { return compact(r.Calls) },
		Text:    func(r Row) string { return render.Int(r.Calls) },
		Compare: func(a, b Row) int { return desc(a.Calls, b.Calls) },
		// Cache hits are not calls (no column of their own); JSON gives
		// them beside the calls, and the semantic cache's hits among them.
		JSON: []JSONField{{"calls", func(r Row) any { return r.Calls }}, {"cache_hits", func(r Row) any { return r.CacheHits }},
			{"semantic_hits", func(r Row) any { return r.SemanticHits }}}},
	{ID: "in", Header: "IN TOK", Wide: "INPUT TOKENS", Width: 7,
		Cell:    func(r Row) string { return compact(r.InputTokens) },
		Text:    func(r Row) string { return render.Int(r.InputTokens) },
		Compare: func(a, b Row) int { return desc(a.InputTokens, b.InputTokens) },
		JSON:    []JSONField{{"input_tokens", func(r Row) any { return r.InputTokens }}}},
	{ID: "out", Header: "OUT TOK", Wide: "OUTPUT TOKENS", Width: 7,
		Cell:    func(r Row) string { return compact(r.OutputTokens) },
		Text:    func(r Row) string { return render.Int(r.OutputTokens) },
		Compare: func(a, b Row) int { return desc(a.OutputTokens, b.OutputTokens) },
		JSON:    []JSONField{{"output_tokens", func(r Row) any { return r.OutputTokens }}}},
	{ID: "cost", Header: "COST", Width: 10,
		Cell:    func(r Row) string { return WithMark(money(r.Cost), r.Calls, r.UnpricedCalls) },
		Text:    func(r Row) string { return WithMark(Cents(r.Cost), r.Calls, r.UnpricedCalls) },
		Compare: compareCost,
		// Beside the cost, what the semantic cache saved after paying for
		// its embeddings (ledger.Totals.NetSemantic; may be negative).
		JSON: []JSONField{{"cost_usd", func(r Row) any { return r.Cost }}, {"net_semantic_usd", func(r Row) any { return r.NetSemantic() }}}},
	{ID: "share", Header: "SHARE", Width: 6,
		Cell: func(r Row) string {
			if Mark(r.Calls, r.UnpricedCalls) == MarkAll {
				return "–"
			}
			return render1(r.Share) + "%"
		},
		Text: func(r Row) string {
			if Mark(r.Calls, r.UnpricedCalls) == MarkAll {
				return "-"
			}
			return render.Pct(r.Share)
		},
		Compare: compareCost, // the share of the cost sorts as the cost
		JSON:    []JSONField{{"share_pct", func(r Row) any { return round1(r.Share) }}}},
	// The semantic cache, shown when some row has a semantic hit or an
	// embedding call: its hits (of the cache hits; JSON semantic_hits, by
	// the calls) and what it saved after paying for its embeddings (JSON
	// net_semantic_usd, by the cost; negative when it cost more than it
	// saved). Rows without either show none.
	{ID: "semhits", Header: "SEM HITS", Wide: "SEMANTIC HITS", Width: 8,
		Cell: func(r Row) string {
			if !hasSemantic(r) {
				return "–"
			}
			return compact(r.SemanticHits)
		},
		Text: func(r Row) string {
			if !hasSemantic(r) {
				return "-"
			}
			return render.Int(r.SemanticHits)
		},
		Compare:  func(a, b Row) int { return desc(a.SemanticHits, b.SemanticHits) },
		Optional: hasSemantic},
	{ID: "netsem", Header: "NET SEM", Wide: "NET SEMANTIC", Width: 10,
		Cell: func(r Row) string {
			if !hasSemantic(r) {
				return "–"
			}
			return signed(money, r.NetSemantic())
		},
		Text: func(r Row) string {
			if !hasSemantic(r) {
				return "-"
			}
			return signed(Cents, r.NetSemantic())
		},
		Compare:  func(a, b Row) int { return b.NetSemantic().Cmp(a.NetSemantic()) },
		Optional: hasSemantic},
	{ID: "burn", Header: "BURN/H", Width: 9,
		Cell:    func(r Row) string { return WithMark(money(r.Burn), r.RecentCalls, r.RecentUnpriced) },
		Text:    func(r Row) string { return WithMark(Cents(r.Burn), r.RecentCalls, r.RecentUnpriced) },
		Compare: func(a, b Row) int { return b.Burn.Cmp(a.Burn) }},
	{ID: "latency", Header: "AVG LAT", Wide: "AVG LATENCY", Width: 7,
		Cell:    func(r Row) string { return latency(r, "–") },
		Text:    func(r Row) string { return latency(r, "-") },
		Compare: func(a, b Row) int { return desc(a.AvgLatencyMS(), b.AvgLatencyMS()) },
		JSON:    []JSONField{{"avg_latency_ms", func(r Row) any { return r.AvgLatencyMS() }}}},
	{ID: "unpriced", Header: "UNPRICED", Width: 8,
		Cell: func(r Row) string {
			if r.UnpricedCalls > 0 {
				return "⚠ " + compact(r.UnpricedCalls)
			}
			return ""
		},
		Text: func(r Row) string {
			if r.UnpricedCalls > 0 {
				return render.Int(r.UnpricedCalls)
			}
			return ""
		},
		Compare: func(a, b Row) int { return desc(a.UnpricedCalls, b.UnpricedCalls) },
		JSON:    []JSONField{{"unpriced", func(r Row) any { return Mark(r.Calls, r.UnpricedCalls) != MarkNone }}}},
}

// ColumnIndex is the index in Columns of the column with id, or -1.
func ColumnIndex(id string) int {
	for i, c := range Columns {
		if c.ID == id {
			return i
		}
	}
	return -1
}

// defaultSort is the column top sorts by at first (and snapshots come in).
var defaultSort = ColumnIndex("cost")

// keyName is the group's name, "(none)" for events without one.
func keyName(r Row) string {
	if r.Key == "" {
		return "(none)"
	}
	return policyMarks(r) + r.Key + budgetMark(r)
}

// desc orders numbers largest first.
func desc(x, y int64) int {
	switch {
	case x > y:
		return -1
	case x < y:
		return 1
	}
	return 0
}

// compareCost orders by cost, largest first, then by unpriced calls, most
// first.
func compareCost(a, b Row) int {
	if c := b.Cost.Cmp(a.Cost); c != 0 {
		return c
	}
	return desc(a.UnpricedCalls, b.UnpricedCalls)
}

// hasSemantic reports whether r has anything of the semantic cache: a
// hit or an embedding call.
func hasSemantic(r Row) bool { return r.SemanticHits > 0 || r.EmbedCalls > 0 }

// signed renders an amount that may be negative with format (money or
// Cents) and a minus sign: "-$1.25", "-<$0.01" for a loss under a cent
// (never a $0.00 that is not).
func signed(format func(pricing.Amount) string, m pricing.Amount) string {
	if m.Sign() < 0 {
		return "-" + format(m.Neg())
	}
	return format(m)
}

func latency(r Row, none string) string {
	if r.LatencyCalls > 0 {
		return FormatLatency(r.AvgLatencyMS())
	}
	return none
}

// Cents is money for a plain table: rounded to cents, "<$0.01" for dust
// (never a $0.00 that is not).
func Cents(m pricing.Amount) string {
	if m.Sign() > 0 && m.Cmp(pricing.AmountFromPico(pricing.PicoPerDollar/200)) < 0 {
		return "<$0.01"
	}
	return m.DisplayRounded(2)
}
