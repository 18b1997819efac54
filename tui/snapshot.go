// Package tui is `costctl top`: a live view of spend over the ledger. The
// data side (Fetch → Snapshot) reads only rollups, so it stays fast on a
// ledger of millions of events; the bubbletea Model renders snapshots and
// never touches the database itself (every read runs in a tea.Cmd).
package tui

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// Windows top can show.
var Windows = []string{"today", "1h", "24h", "7d"}

// Config is what a snapshot is taken with.
type Config struct {
	Window       string         // today | 1h | 24h | 7d
	GroupBy      string         // one of ledger.Dimensions
	DailyBudget  pricing.Money  // the daily budget alerts compare with
	LatencyAlert time.Duration  // alert when average latency (last 5 minutes) is above it; 0 = off
	Loc          *time.Location // for "today"
}

// Validate checks the window and grouping.
func (c Config) Validate() error {
	ok := false
	for _, w := range Windows {
		ok = ok || w == c.Window
	}
	if !ok {
		return fmt.Errorf("invalid --window %q (expected %s)", c.Window, strings.Join(Windows, ", "))
	}
	if !ledger.IsDimension(c.GroupBy) {
		return fmt.Errorf("invalid --group-by %q (expected %s)", c.GroupBy, strings.Join(ledger.Dimensions, ", "))
	}
	if c.DailyBudget <= 0 {
		return fmt.Errorf("--daily-budget must be positive")
	}
	return nil
}

// Row is one group of the table.
type Row struct {
	Key string
	ledger.Totals
	Burn pricing.Amount // per hour, over the last 5 minutes
	// RecentUnpriced counts unpriced calls in the last 5 minutes: Burn
	// leaves them out (their cost is unknown).
	RecentUnpriced, RecentCalls int64
	Share                       float64 // of the window's priced cost, 0..100
	// Policy is the tenant's proxy policy (by tenant, when it has one);
	// BudgetPct is the share of its budget used, BudgetPeriod which
	// budget ("daily", "monthly"; "" when it has none).
	Policy       *ledger.Policy
	BudgetPct    int64
	BudgetPeriod string
}

// CacheHitsLine says how many answers came from costctl's cache (eval
// verdicts) instead of a provider — not calls, not billed — and what they
// avoided: "12 hits from costctl's cache (not calls, not billed) · $0.42 avoided".
func CacheHitsLine(t ledger.Totals) string {
	return fmt.Sprintf("%s %s from costctl's cache (not calls, not billed) · %s avoided",
		pricing.GroupInt(t.CacheHits), plural(t.CacheHits, "hit", "hits"), money(t.Avoided))
}

// Alert is an active alert; Kind is stable (over_budget,
// projected_over_budget, latency), Message is for people.
type Alert struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Snapshot is everything one refresh of top shows.
type Snapshot struct {
	At         time.Time
	Config     Config
	Start, End time.Time      // the window
	Spend      ledger.Totals  // in the window
	Today      ledger.Totals  // since local midnight (the budget is daily)
	Recent     ledger.Totals  // the last 5 minutes
	Burn       pricing.Amount // per hour, over the last 5 minutes
	Projected  pricing.Amount // today's spend + Burn until local midnight
	Series     []ledger.Totals
	Rows       []Row
	Alerts     []Alert
}

// SeriesMinutes is how many minutes the sparkline covers.
const SeriesMinutes = 60

// WindowStart is where a window ending at now begins.
func WindowStart(window string, now time.Time, loc *time.Location) time.Time {
	switch window {
	case "1h":
		return now.Add(-time.Hour)
	case "24h":
		return now.Add(-24 * time.Hour)
	case "7d":
		return now.Add(-7 * 24 * time.Hour)
	}
	return midnight(now, loc)
}

func midnight(now time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.Local
	}
	l := now.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
}

// Source is what the live view reads from a ledger: sums over the
// rollups, never the events table. *ledger.DB implements it; another
// store (PostgreSQL) or a test's fake can too.
type Source interface {
	// TotalsSince sums [start, now).
	TotalsSince(ctx context.Context, start, now time.Time) (ledger.Totals, error)
	// GroupedSince sums [start, now) per key of dim, most cost first.
	GroupedSince(ctx context.Context, dim string, start, now time.Time) ([]ledger.GroupRow, error)
	// MinuteSeries is the n whole minutes before end, oldest first.
	MinuteSeries(ctx context.Context, end time.Time, n int) ([]ledger.Totals, error)
}

// Grouper is the GroupedSince a refresh may answer from a cache of past
// days' sums (ledger.LiveCache).
type Grouper interface {
	GroupedSince(ctx context.Context, dim string, start, now time.Time) ([]ledger.GroupRow, error)
}

// Fetch takes a snapshot at now. It runs a handful of queries over the
// rollups (window totals, today, the last 5 minutes, the groups, the
// minute series), none of which reads the events table.
func Fetch(ctx context.Context, db Source, cfg Config, now time.Time) (Snapshot, error) {
	return fetch(ctx, db, nil, cfg, now)
}

// FetchCached is Fetch reusing cache's sums of past days (for refreshes).
func FetchCached(ctx context.Context, db Source, cache Grouper, cfg Config, now time.Time) (Snapshot, error) {
	return fetch(ctx, db, cache, cfg, now)
}

func fetch(ctx context.Context, db Source, cache Grouper, cfg Config, now time.Time) (Snapshot, error) {
	s := Snapshot{At: now, Config: cfg, End: now}
	s.Start = WindowStart(cfg.Window, now, cfg.Loc)
	var err error
	if s.Spend, err = db.TotalsSince(ctx, s.Start, now); err != nil {
		return s, err
	}
	dayStart := midnight(now, cfg.Loc)
	if cfg.Window == "today" {
		s.Today = s.Spend
	} else if s.Today, err = db.TotalsSince(ctx, dayStart, now); err != nil {
		return s, err
	}
	burnStart := ledger.BurnStart(now)
	if s.Recent, err = db.TotalsSince(ctx, burnStart, now); err != nil {
		return s, err
	}
	s.Burn = ledger.PerHour(s.Recent.Cost)
	s.Projected = project(s.Today.Cost, s.Burn, now, dayStart.AddDate(0, 0, 1))
	if s.Series, err = db.MinuteSeries(ctx, now, SeriesMinutes); err != nil {
		return s, err
	}
	grouped := db.GroupedSince
	if cache != nil {
		grouped = cache.GroupedSince
	}
	groups, err := grouped(ctx, cfg.GroupBy, s.Start, now)
	if err != nil {
		return s, err
	}
	recent, err := db.GroupedSince(ctx, cfg.GroupBy, burnStart, now)
	if err != nil {
		return s, err
	}
	burn := make(map[string]ledger.Totals, len(recent))
	for _, r := range recent {
		burn[r.Key] = r.Totals
	}
	for _, g := range groups {
		b := burn[g.Key]
		r := Row{Key: g.Key, Totals: g.Totals, Burn: ledger.PerHour(b.Cost), RecentUnpriced: b.UnpricedCalls, RecentCalls: b.Calls}
		if s.Spend.Cost.Sign() > 0 {
			r.Share = g.Cost.Float64() / s.Spend.Cost.Float64() * 100
		}
		s.Rows = append(s.Rows, r)
	}
	if ps, ok := db.(PolicySource); ok && cfg.GroupBy == "tenant" {
		if err := addPolicies(ctx, db, ps, &s, dayStart, now); err != nil {
			return s, err
		}
	}
	SortRows(s.Rows, defaultSort, false)
	s.Alerts = alerts(s, cfg)
	return s, nil
}

// project is today's spend plus burn (per hour) for the rest of the day,
// exactly.
func project(today, burnPerHour pricing.Amount, now, end time.Time) pricing.Amount {
	left := end.Sub(now)
	if left <= 0 {
		return today
	}
	r := new(big.Rat).Mul(burnPerHour.Rat(), big.NewRat(int64(left/time.Millisecond), int64(time.Hour/time.Millisecond)))
	r.Add(r, today.Rat())
	// A projection, not a sum: to the nano-dollar is plenty.
	if m, err := pricing.MoneyFromRat(r); err == nil {
		return pricing.AmountFromMoney(m)
	}
	m, err := pricing.AmountFromRat(r)
	if err != nil {
		return today
	}
	return m
}

func alerts(s Snapshot, cfg Config) []Alert {
	var out []Alert
	switch {
	case s.Today.Cost.Cmp(pricing.AmountFromMoney(cfg.DailyBudget)) > 0:
		out = append(out, Alert{Kind: "over_budget", Message: fmt.Sprintf("today's spend %s is over the %s daily budget",
			s.Today.Cost.DisplayRounded(2), cfg.DailyBudget.DisplayRounded(2))})
	case s.Projected.Cmp(pricing.AmountFromMoney(cfg.DailyBudget)) > 0:
		out = append(out, Alert{Kind: "projected_over_budget", Message: fmt.Sprintf("today ends at %s at %s/h (budget %s)",
			s.Projected.DisplayRounded(2), s.Burn.DisplayRounded(2), cfg.DailyBudget.DisplayRounded(2))})
	}
	if cfg.LatencyAlert > 0 && s.Recent.LatencyCalls > 0 {
		avg := time.Duration(s.Recent.AvgLatencyMS()) * time.Millisecond
		if avg > cfg.LatencyAlert {
			out = append(out, Alert{Kind: "latency", Message: fmt.Sprintf("average latency %s (last 5 min) is above %s",
				FormatLatency(s.Recent.AvgLatencyMS()), cfg.LatencyAlert)})
		}
	}
	return out
}

// SortRows sorts by Columns[col]: numbers largest first and names A→Z,
// reversed when reverse is set; ties by name (not reversed).
func SortRows(rows []Row, col int, reverse bool) {
	compare := Columns[col].Compare
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		c := compare(a, b)
		if c == 0 {
			// Name order is the tie-break, not reversed (for the key
			// column c stays 0: equal names).
			return strings.Compare(a.Key, b.Key) < 0
		}
		if reverse {
			return c > 0
		}
		return c < 0
	})
}

// FormatLatency is "850ms", "1.5s", "32.1s".
func FormatLatency(ms int64) string {
	if ms < 1000 {
		return fmt.Sprintf("%dms", ms)
	}
	return fmt.Sprintf("%.1fs", float64(ms)/1000)
}

// round1 rounds a percentage to one decimal for output.
func round1(p float64) float64 {
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return 0
	}
	return math.Round(p*10) / 10
}

// addPolicies marks each tenant row with its policy and the share of its
// budget used (today's spend against a daily budget, the month's against a
// monthly one; budgets are in UTC days and months, as the proxy keeps them).
func addPolicies(ctx context.Context, db Source, ps PolicySource, s *Snapshot, dayStart, now time.Time) error {
	pols, err := ps.Policies(ctx)
	if err != nil || len(pols) == 0 {
		return err
	}
	utc := now.UTC()
	day := time.Date(utc.Year(), utc.Month(), utc.Day(), 0, 0, 0, 0, time.UTC)
	month := time.Date(utc.Year(), utc.Month(), 1, 0, 0, 0, 0, time.UTC)
	spend := func(start time.Time) (map[string]pricing.Amount, error) {
		rows, err := db.GroupedSince(ctx, "tenant", start, now)
		out := make(map[string]pricing.Amount, len(rows))
		for _, r := range rows {
			out[r.Key] = r.Cost
		}
		return out, err
	}
	today, err := spend(day)
	if err != nil {
		return err
	}
	monthly, err := spend(month)
	if err != nil {
		return err
	}
	for i := range s.Rows {
		r := &s.Rows[i]
		if p, ok := pols[r.Key]; ok {
			r.Policy = &p
			budgetUse(r, today[r.Key], monthly[r.Key])
		}
	}
	return nil
}
