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
// Spend the ledger holds from every other writer (eval, ingest, earlier
// proxy runs, another proxy) is read from its rollups at start and again
// every SpendInterval: the ledger's total for a tenant minus what this
// process has committed there. This process's own calls count as they
// settle, and reservations as they are made. A refresh that reads a row of
// this process before its commit is counted over-counts it until the next
// refresh (the safe side: it refuses sooner, never later). Days and months are UTC; a reservation made on one day
// and settled on the next counts on the day it was made (the ledger row
// carries the request's start time).
type budgets struct {
	mu sync.Mutex
	t  map[string]*tenantSpend
}

type tenantSpend struct {
	day, month           int64          // the buckets the sums belong to
	daySpent, dayRes     pricing.Amount // this process's settled calls and reservations
	monthSpent, monthRes pricing.Amount
	// dayLedger, monthLedger: what the ledger held from other writers at
	// the last refresh; dayOwn, monthOwn: what this process has committed
	// to the ledger (its rows' recorded costs).
	dayLedger, monthLedger pricing.Amount
	dayOwn, monthOwn       pricing.Amount
}

// reservation is what one request holds until it settles.
type reservation struct {
	tenant     string
	day, month int64
	amt        pricing.Amount
	// Shared stores: the holds to release once the call's row is
	// committed, and the tenant's spend when they were taken (for the
	// threshold alerts).
	holds                  []hold
	dayBefore, monthBefore pricing.Amount
	unpriced               bool // the call could not be priced: it costs its reservation
}

// hold is one scope's hold of a reservation in a shared store.
type hold struct{ scope, id string }

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
// GroupedSince by tenant), for the buckets of now, less what this process
// has committed there: the spend of every other writer.
func (b *budgets) load(now time.Time, today, month []ledger.GroupRow) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ts := range b.t {
		ts.dayLedger, ts.monthLedger = pricing.Amount{}, pricing.Amount{}
	}
	for _, r := range today {
		ts := b.get(r.Key, now)
		ts.dayLedger = nonNegative(r.Cost.Sub(ts.dayOwn))
	}
	for _, r := range month {
		ts := b.get(r.Key, now)
		ts.monthLedger = nonNegative(r.Cost.Sub(ts.monthOwn))
	}
}

func nonNegative(a pricing.Amount) pricing.Amount {
	if a.Sign() < 0 {
		return pricing.Amount{}
	}
	return a
}

// committed counts a row of this process the ledger now holds: cost at the
// time of its call.
func (b *budgets) committed(tenant string, at time.Time, cost pricing.Amount, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.get(tenant, now)
	if dayOf(at) == ts.day {
		ts.dayOwn = ts.dayOwn.Add(cost)
	}
	if monthOf(at) == ts.month {
		ts.monthOwn = ts.monthOwn.Add(cost)
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
		ts.day, ts.daySpent, ts.dayRes, ts.dayLedger, ts.dayOwn = d, pricing.Amount{}, pricing.Amount{}, pricing.Amount{}, pricing.Amount{}
	}
	if ts.month != m {
		ts.month, ts.monthSpent, ts.monthRes, ts.monthLedger, ts.monthOwn = m, pricing.Amount{}, pricing.Amount{}, pricing.Amount{}, pricing.Amount{}
	}
	return ts
}

// reserve holds worst for tenant if it fits p's budgets.
func (b *budgets) reserve(tenant string, p ledger.Policy, worst pricing.Amount, now time.Time) (reservation, *overBudget) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.get(tenant, now)
	if p.DailyBudget > 0 {
		used := ts.dayLedger.Add(ts.daySpent).Add(ts.dayRes)
		if used.Add(worst).Cmp(pricing.AmountFromMoney(p.DailyBudget)) > 0 {
			return reservation{}, &overBudget{tenant: tenant, period: "daily", budget: p.DailyBudget, spent: used, worst: worst,
				resetAt: dayStart(now).AddDate(0, 0, 1)}
		}
	}
	if p.MonthlyBudget > 0 {
		used := ts.monthLedger.Add(ts.monthSpent).Add(ts.monthRes)
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
	s := spend{tenant: r.tenant, dayBefore: ts.dayLedger.Add(ts.daySpent), monthBefore: ts.monthLedger.Add(ts.monthSpent)}
	if ts.day == r.day {
		ts.dayRes = ts.dayRes.Sub(r.amt)
		ts.daySpent = ts.daySpent.Add(actual)
	}
	if ts.month == r.month {
		ts.monthRes = ts.monthRes.Sub(r.amt)
		ts.monthSpent = ts.monthSpent.Add(actual)
	}
	s.dayAfter, s.monthAfter = ts.dayLedger.Add(ts.daySpent), ts.monthLedger.Add(ts.monthSpent)
	return s
}

// Spent is a tenant's settled spend and reservations now (for tests and
// the status line).
func (b *budgets) spent(tenant string, now time.Time) (day, dayRes, month, monthRes pricing.Amount) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.get(tenant, now)
	return ts.dayLedger.Add(ts.daySpent), ts.dayRes, ts.monthLedger.Add(ts.monthSpent), ts.monthRes
}
