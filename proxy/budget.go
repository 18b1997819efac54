package proxy

import (
	"fmt"
	"sync"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// budgets keeps each tenant's spend of the current UTC day and month in
// memory, settled and reserved apart. Every request reserves its worst case
// before it is forwarded, under one lock, only if settled + reserved +
// worst case stays within the tenant's daily and monthly budgets; it
// settles to its real cost when it ends. So however many requests and
// streams run at once, what a tenant is billed through the proxy never
// exceeds its budgets (as long as the upstream bills no more than the
// worst case: the prompt bound and the requested maximum output).
//
// Spend is loaded once at start from the ledger's rollups (every source:
// eval, ingest and earlier proxy runs); afterwards only the proxy's own
// calls are added. Days and months are UTC; a reservation made on one day
// and settled on the next counts on the day it was made (the ledger row
// carries the request's start time).
type budgets struct {
	mu sync.Mutex
	t  map[string]*tenantSpend
}

type tenantSpend struct {
	day, month           int64 // the buckets the sums belong to
	daySpent, dayRes     pricing.Amount
	monthSpent, monthRes pricing.Amount
}

// reservation is what one request holds until it settles.
type reservation struct {
	tenant     string
	day, month int64
	amt        pricing.Amount
}

// overBudget says which budget refused a request.
type overBudget struct {
	tenant  string
	period  string // "daily" or "monthly"
	budget  pricing.Money
	spent   pricing.Amount // settled + reserved
	worst   pricing.Amount
	resetAt time.Time
}

func (o *overBudget) Error() string {
	return fmt.Sprintf("tenant %s is over its %s budget of %s (spent or in flight %s, this request may cost up to %s); it resets at %s",
		o.tenant, o.period, o.budget.Display(), dollars(o.spent), dollars(o.worst), o.resetAt.Format(time.RFC3339))
}

// dollars is an amount for a person: cents, or exact below a cent.
func dollars(a pricing.Amount) string {
	if a.Sign() != 0 && a.Cmp(pricing.AmountFromPico(10_000_000_000)) < 0 {
		return a.Display()
	}
	return a.DisplayRounded(2)
}

func dayOf(t time.Time) int64 { return t.UTC().Unix() / 86400 }

func monthOf(t time.Time) int64 {
	u := t.UTC()
	return int64(u.Year())*12 + int64(u.Month()) - 1
}

func dayStart(t time.Time) time.Time {
	u := t.UTC()
	return time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
}

func monthStart(t time.Time) time.Time {
	u := t.UTC()
	return time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func newBudgets() *budgets { return &budgets{t: map[string]*tenantSpend{}} }

// load sets the spend the ledger holds for today and this month (rows of
// GroupedSince by tenant), for the buckets of now.
func (b *budgets) load(now time.Time, today, month []ledger.GroupRow) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range today {
		ts := b.get(r.Key, now)
		ts.daySpent = ts.daySpent.Add(r.Cost)
	}
	for _, r := range month {
		ts := b.get(r.Key, now)
		ts.monthSpent = ts.monthSpent.Add(r.Cost)
	}
}

// get returns tenant's sums for the buckets of now, starting a new day or
// month at zero. b.mu is held.
func (b *budgets) get(tenant string, now time.Time) *tenantSpend {
	d, m := dayOf(now), monthOf(now)
	ts := b.t[tenant]
	if ts == nil {
		ts = &tenantSpend{day: d, month: m}
		b.t[tenant] = ts
	}
	if ts.day != d {
		ts.day, ts.daySpent, ts.dayRes = d, pricing.Amount{}, pricing.Amount{}
	}
	if ts.month != m {
		ts.month, ts.monthSpent, ts.monthRes = m, pricing.Amount{}, pricing.Amount{}
	}
	return ts
}

// reserve holds worst for tenant if it fits p's budgets.
func (b *budgets) reserve(tenant string, p ledger.Policy, worst pricing.Amount, now time.Time) (reservation, *overBudget) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.get(tenant, now)
	if p.DailyBudget > 0 {
		used := ts.daySpent.Add(ts.dayRes)
		if used.Add(worst).Cmp(pricing.AmountFromMoney(p.DailyBudget)) > 0 {
			return reservation{}, &overBudget{tenant: tenant, period: "daily", budget: p.DailyBudget, spent: used, worst: worst,
				resetAt: dayStart(now).AddDate(0, 0, 1)}
		}
	}
	if p.MonthlyBudget > 0 {
		used := ts.monthSpent.Add(ts.monthRes)
		if used.Add(worst).Cmp(pricing.AmountFromMoney(p.MonthlyBudget)) > 0 {
			return reservation{}, &overBudget{tenant: tenant, period: "monthly", budget: p.MonthlyBudget, spent: used, worst: worst,
				resetAt: monthStart(now).AddDate(0, 1, 0)}
		}
	}
	ts.dayRes = ts.dayRes.Add(worst)
	ts.monthRes = ts.monthRes.Add(worst)
	return reservation{tenant: tenant, day: ts.day, month: ts.month, amt: worst}, nil
}

// spend is a tenant's settled spend today and this month, before and after
// one settlement (for threshold alerts).
type spend struct {
	tenant                  string
	dayBefore, dayAfter     pricing.Amount
	monthBefore, monthAfter pricing.Amount
}

// settle ends r with what the call cost. A reservation whose day or month
// has ended since leaves the new one alone.
func (b *budgets) settle(r reservation, actual pricing.Amount, now time.Time) spend {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.get(r.tenant, now)
	s := spend{tenant: r.tenant, dayBefore: ts.daySpent, monthBefore: ts.monthSpent}
	if ts.day == r.day {
		ts.dayRes = ts.dayRes.Sub(r.amt)
		ts.daySpent = ts.daySpent.Add(actual)
	}
	if ts.month == r.month {
		ts.monthRes = ts.monthRes.Sub(r.amt)
		ts.monthSpent = ts.monthSpent.Add(actual)
	}
	s.dayAfter, s.monthAfter = ts.daySpent, ts.monthSpent
	return s
}

// Spent is a tenant's settled spend and reservations now (for tests and
// the status line).
func (b *budgets) spent(tenant string, now time.Time) (day, dayRes, month, monthRes pricing.Amount) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.get(tenant, now)
	return ts.daySpent, ts.dayRes, ts.monthSpent, ts.monthRes
}
