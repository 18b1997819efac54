package ledger

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/costctl/costctl/pricing"
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

// Report groups the events of a window. It reads the events table through
// its ts index (only the rows in the window), grouping in SQL by the
// dimension columns and the quarter hour, then folds quarters into local
// days or hours.
func (db *DB) Report(ctx context.Context, q ReportQuery) ([]ReportRow, error) {
	if len(q.By) == 0 {
		return nil, fmt.Errorf("ledger: report needs at least one column to group by")
	}
	loc := q.Loc
	if loc == nil {
		loc = time.Local
	}
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
	query := `SELECT ` + strings.Join(sel, ", ") + `, COUNT(*), SUM(input_tokens), SUM(cached_tokens), SUM(output_tokens),
		SUM(cost_nano), SUM(unpriced), SUM(cache_hit), SUM(CASE WHEN latency_ms > 0 THEN latency_ms ELSE 0 END),
		SUM(latency_ms > 0)
		FROM events INDEXED BY events_ts WHERE ts_ms >= ? AND ts_ms < ?
		GROUP BY ` + strings.Join(group, ", ")
	rows, err := db.sql.QueryContext(ctx, query, q.Start.UnixMilli(), q.End.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("ledger: report: %w", err)
	}
	defer rows.Close()
	nd := len(sel)
	index := map[string]int{}
	var out []ReportRow
	for rows.Next() {
		keys := make([]string, nd)
		var quarter int64
		dst := make([]any, 0, nd+9)
		for i := range keys {
			if timeCol >= 0 && i == nd-1 {
				dst = append(dst, &quarter)
			} else {
				dst = append(dst, &keys[i])
			}
		}
		var t Totals
		var cost int64
		dst = append(dst, &t.Calls, &t.InputTokens, &t.CachedTokens, &t.OutputTokens, &cost,
			&t.UnpricedCalls, &t.CacheHits, &t.LatencyMSSum, &t.LatencyCalls)
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("ledger: report: %w", err)
		}
		t.Cost = pricing.Money(cost)
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
	sort.Slice(out, func(a, b int) bool {
		ra, rb := out[a], out[b]
		if timeCol >= 0 && ra.Keys[timeCol] != rb.Keys[timeCol] {
			return ra.Keys[timeCol] < rb.Keys[timeCol]
		}
		if ra.Cost != rb.Cost {
			return ra.Cost > rb.Cost
		}
		if ra.UnpricedCalls != rb.UnpricedCalls {
			return ra.UnpricedCalls > rb.UnpricedCalls
		}
		return strings.Join(ra.Keys, "\x00") < strings.Join(rb.Keys, "\x00")
	})
	return out, nil
}
