package ledger

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Time columns a report can group by, besides Dimensions.
const (
	ByDay  = "day"
	ByHour = "hour"
)

// ReportColumns are the columns `report --by` accepts.
var ReportColumns = append(append([]string(nil), Dimensions...), ByDay, ByHour)

// ReportQuery selects events in [Start, End) grouped by By (any of
// ReportColumns, in order); day and hour are in Loc.
type ReportQuery struct {
	By         []string
	Start, End time.Time
	Loc        *time.Location

	fromEvents bool // tests: always read the events table
}

// ReportRow is one group: Keys[i] is the value of By[i] ("" when the
// events had none; a day as 2006-01-02, an hour as 2006-01-02T15:00).
type ReportRow struct {
	Keys []string
	Totals
}

// quarter is the bucket report reads time in: every time zone offset in use
// is a whole number of quarter hours, so local days and hours are unions
// of quarters.
const quarterMS = 15 * 60 * 1000

// Report groups the events of [Start, End), both rounded down to the
// minute (the rollups' grain; both ways of answering agree exactly).
//
// Grouped by at most one dimension (and optionally day or hour) it is
// answered from the rollups, one cover per local day or hour, so it costs
// buckets × keys like top. Grouped by several dimensions it reads the
// events table through its ts index (only the rows in the window),
// grouping in SQL by the dimension columns and the quarter hour, then
// folding quarters into local days or hours.
func (db *DB) Report(ctx context.Context, q ReportQuery) ([]ReportRow, error) {
	if len(q.By) == 0 {
		return nil, fmt.Errorf("ledger: report needs at least one column to group by")
	}
	if q.Loc == nil {
		q.Loc = time.Local
	}
	q.Start, q.End = q.Start.Truncate(time.Minute), q.End.Truncate(time.Minute)
	dims, timeCol := 0, -1
	for i, c := range q.By {
		switch {
		case IsDimension(c):
			dims++
		case c == ByDay || c == ByHour:
			if timeCol >= 0 {
				return nil, fmt.Errorf("ledger: group by at most one of day, hour")
			}
			timeCol = i
		default:
			return nil, fmt.Errorf("ledger: cannot group by %q (expected %s)", c, strings.Join(ReportColumns, ", "))
		}
	}
	var out []ReportRow
	err := db.read(func() (err error) {
		if dims <= 1 && !q.fromEvents {
			out, err = db.reportFromRollups(ctx, q, timeCol)
		} else {
			out, err = db.reportFromEvents(ctx, q)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	sortReport(out, timeCol)
	return out, nil
}

// reportFromRollups answers a report with at most one dimension.
func (db *DB) reportFromRollups(ctx context.Context, q ReportQuery, timeCol int) ([]ReportRow, error) {
	dim := ""
	for _, c := range q.By {
		if IsDimension(c) {
			dim = c
		}
	}
	type period struct {
		a, b  time.Time
		label string
	}
	var periods []period
	if timeCol < 0 {
		periods = []period{{q.Start, q.End, ""}}
	} else {
		l := q.Start.In(q.Loc)
		t := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, q.Loc)
		if q.By[timeCol] == ByHour {
			t = time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), 0, 0, 0, q.Loc)
		}
		for t.Before(q.End) {
			next := t.AddDate(0, 0, 1)
			label := t.Format("2006-01-02")
			if q.By[timeCol] == ByHour {
				next = t.Add(time.Hour)
				label = t.Format("2006-01-02T15:00")
			}
			a, b := t, next
			if a.Before(q.Start) {
				a = q.Start
			}
			if b.After(q.End) {
				b = q.End
			}
			periods = append(periods, period{a, b, label})
			t = next
		}
	}
	var out []ReportRow
	for _, p := range periods {
		if !p.a.Before(p.b) {
			continue
		}
		var groups []GroupRow
		if dim != "" {
			g, err := db.grouped(ctx, dim, p.a, p.b, false)
			if err != nil {
				return nil, err
			}
			groups = g
		} else {
			t, err := db.totals(ctx, p.a, p.b, false)
			if err != nil {
				return nil, err
			}
			if !t.Empty() {
				groups = []GroupRow{{Totals: t}}
			}
		}
		for _, g := range groups {
			keys := make([]string, len(q.By))
			for i, c := range q.By {
				if i == timeCol {
					keys[i] = p.label
				} else if c == dim {
					keys[i] = g.Key
				}
			}
			out = append(out, ReportRow{Keys: keys, Totals: g.Totals})
		}
	}
	return out, nil
}

// reportFromEvents answers a report from the events table.
func (db *DB) reportFromEvents(ctx context.Context, q ReportQuery) ([]ReportRow, error) {
	loc := q.Loc
	var sel, group []string
	timeCol := -1
	for i, c := range q.By {
		switch {
		case IsDimension(c):
			col := c
			if c == "user" {
				col = `"user"`
			}
			sel = append(sel, col)
			group = append(group, col)
		case c == ByDay || c == ByHour:
			if timeCol >= 0 {
				return nil, fmt.Errorf("ledger: group by at most one of day, hour")
			}
			timeCol = i
		default:
			return nil, fmt.Errorf("ledger: cannot group by %q (expected %s)", c, strings.Join(ReportColumns, ", "))
		}
	}
	if timeCol >= 0 {
		sel = append(sel, fmt.Sprintf("ts_ms / %d", quarterMS))
		group = append(group, fmt.Sprintf("ts_ms / %d", quarterMS))
	}
	// The semantic cache's sums (semantic.go); 0 before v12, as the
	// rollups read then.
	semSums := `SUM(CASE WHEN cache_hit != 0 AND semantic != 0 THEN 1 ELSE 0 END), SUM(CASE WHEN cache_hit != 0 AND semantic != 0 THEN avoided_nano ELSE 0 END),
		SUM(CASE WHEN cache_hit = 0 AND metric = '` + MetricEmbed + `' THEN 1 ELSE 0 END),
		SUM(CASE WHEN cache_hit = 0 AND metric = '` + MetricEmbed + `' THEN cost_dollars ELSE 0 END),
		SUM(CASE WHEN cache_hit = 0 AND metric = '` + MetricEmbed + `' THEN cost_pico ELSE 0 END)`
	if db.noSemCols {
		semSums = "0, 0, 0, 0, 0"
	}
	// The same sums the rollups give (query.go's totalsExprs): calls and
	// tokens of billed calls, cache hits apart.
	query := `SELECT ` + strings.Join(sel, ", ") + `, SUM(CASE WHEN cache_hit = 0 THEN 1 ELSE 0 END),
		SUM(CASE WHEN cache_hit = 0 THEN input_tokens ELSE 0 END), SUM(CASE WHEN cache_hit = 0 THEN cached_tokens ELSE 0 END),
		SUM(CASE WHEN cache_hit = 0 THEN output_tokens ELSE 0 END), SUM(cost_dollars), SUM(cost_pico), SUM(unpriced), SUM(CASE WHEN cache_hit != 0 THEN 1 ELSE 0 END),
		SUM(CASE WHEN cache_hit != 0 THEN input_tokens ELSE 0 END), SUM(CASE WHEN cache_hit != 0 THEN cached_tokens ELSE 0 END),
		SUM(CASE WHEN cache_hit != 0 THEN output_tokens ELSE 0 END), SUM(CASE WHEN cache_hit != 0 THEN avoided_nano ELSE 0 END),
		SUM(CASE WHEN latency_ms > 0 THEN latency_ms ELSE 0 END), SUM(CASE WHEN latency_ms > 0 THEN 1 ELSE 0 END),
		SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(reasoning_tokens), ` + semSums + `
		FROM events ` + db.indexedBy("events_ts") + ` WHERE ts_ms >= ? AND ts_ms < ?
		GROUP BY ` + strings.Join(group, ", ")
	if db.nanoCost {
		query = strings.Replace(query, "SUM(cost_dollars), SUM(cost_pico)", "SUM(cost_nano / 1000000000), SUM((cost_nano % 1000000000) * 1000)", 1)
	}
	if db.noKindCols {
		query = strings.Replace(query, "SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(reasoning_tokens)", "0, 0, 0", 1)
	}
	rows, err := db.sql.QueryContext(ctx, query, q.Start.UnixMilli(), q.End.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("ledger: report: %w", err)
	}
	defer rows.Close() // read-only; rows.Err() is checked below
	nd := len(sel)
	index := map[string]int{}
	var out []ReportRow
	for rows.Next() {
		keys := make([]string, nd)
		var quarter int64
		dst := make([]any, 0, nd+len(totalsExprs))
		for i := range keys {
			if timeCol >= 0 && i == nd-1 {
				dst = append(dst, &quarter)
			} else {
				dst = append(dst, &keys[i])
			}
		}
		var ts totalsScan
		dst = append(dst, ts.scanDst()...)
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("ledger: report: %w", err)
		}
		t := ts.done()
		// Put the columns back in the order asked for.
		final := make([]string, len(q.By))
		j := 0
		for i := range q.By {
			if i == timeCol {
				ts := time.UnixMilli(quarter * quarterMS).In(loc)
				if q.By[i] == ByDay {
					final[i] = ts.Format("2006-01-02")
				} else {
					final[i] = ts.Format("2006-01-02T15:00")
				}
				continue
			}
			final[i] = keys[j]
			j++
		}
		id := strings.Join(final, "\x00")
		if k, ok := index[id]; ok {
			out[k].Totals.Add(t)
			continue
		}
		index[id] = len(out)
		out = append(out, ReportRow{Keys: final, Totals: t})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: report: %w", err)
	}
	return out, nil
}

// sortReport orders rows by time (when grouped by day or hour), then cost,
// then unpriced calls, then keys.
func sortReport(out []ReportRow, timeCol int) {
	sort.Slice(out, func(a, b int) bool {
		ra, rb := out[a], out[b]
		if timeCol >= 0 && ra.Keys[timeCol] != rb.Keys[timeCol] {
			return ra.Keys[timeCol] < rb.Keys[timeCol]
		}
		if c := ra.Cost.Cmp(rb.Cost); c != 0 {
			return c > 0
		}
		if ra.UnpricedCalls != rb.UnpricedCalls {
			return ra.UnpricedCalls > rb.UnpricedCalls
		}
		return strings.Join(ra.Keys, "\x00") < strings.Join(rb.Keys, "\x00")
	})
}
