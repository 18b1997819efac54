package proxy

import (
	"context"
	"fmt"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// ledgerBudgets keeps reservations as budget holds in the ledger
// (--shared-budget): every process on one ledger (one SQLite file, or one
// PostgreSQL database) checks the tenant's committed spend plus every live
// hold plus this call's worst case against the budget in one serialized
// transaction, so the budget holds in aggregate however many proxies
// serve the tenant. A daily and a monthly budget are two scopes, each held
// (the first is released when the second refuses). A call's hold is
// released after its row is committed, so its cost always counts, as a
// hold or as ledger spend. A hold lives for ttl (the longest a call may
// run, plus a margin): a proxy that died holding it keeps that amount out
// of the budget until then, the safe side.
type ledgerBudgets struct {
	h      HoldStore
	ttl    time.Duration
	holder string
	logf   func(string, ...any)
}

func (l *ledgerBudgets) reserve(ctx context.Context, tenant string, p ledger.Policy, worst pricing.Amount, now time.Time) (reservation, *overBudget, error) {
	r := reservation{tenant: tenant, day: dayOf(now), month: monthOf(now), amt: worst}
	type scope struct {
		name     string
		period   string
		budget   pricing.Money
		from     time.Time
		resetAt  time.Time
		isDay    bool
		required bool
	}
	scopes := []scope{
		{dayScope(tenant, now), "daily", p.DailyBudget, now, dayStart(now).AddDate(0, 0, 1), true, p.DailyBudget > 0},
		{monthScope(tenant, now), "monthly", p.MonthlyBudget, monthStart(now), monthStart(now).AddDate(0, 1, 0), false, p.MonthlyBudget > 0},
	}
	// Both budgets in one transaction: all held, or none.
	var reqs []ledger.HoldRequest
	var held []scope
	for _, sc := range scopes {
		if sc.required {
			reqs = append(reqs, ledger.HoldRequest{Scope: sc.name, Cap: pricing.AmountFromMoney(sc.budget), Amount: worst,
				TTL: l.ttl, Holder: l.holder, Now: now, Tenant: tenant, From: sc.from, To: now})
			held = append(held, sc)
		}
	}
	if len(reqs) == 0 {
		return r, nil, nil
	}
	ids, sts, refused, err := l.h.ReserveAll(ctx, reqs)
	if err != nil {
		return reservation{}, nil, fmt.Errorf("reserve budget: %w", err)
	}
	if refused >= 0 {
		sc, st := held[refused], sts[refused]
		return reservation{}, &overBudget{tenant: tenant, period: sc.period, budget: sc.budget, spent: st.Spent.Add(st.Held), worst: worst, resetAt: sc.resetAt}, nil
	}
	for i, sc := range held {
		r.holds = append(r.holds, hold{scope: sc.name, id: ids[i]})
		if sc.isDay {
			r.dayBefore = sts[i].Spent
		} else {
			r.monthBefore = sts[i].Spent
		}
	}
	return r, nil, nil
}

func (l *ledgerBudgets) release(ctx context.Context, hs []hold, now time.Time) {
	if len(hs) == 0 {
		return
	}
	rs := make([]ledger.HoldRelease, len(hs))
	for i, h := range hs {
		rs[i] = ledger.HoldRelease{Scope: h.scope, ID: h.id}
	}
	if err := l.h.ReleaseAll(ctx, rs, now); err != nil {
		// The holds expire at their TTL: until then they keep
		// counting (the safe side).
		l.logf("cannot release %d budget hold(s) of %s (they expire by themselves): %v", len(hs), hs[0].scope, err)
	}
}

func (l *ledgerBudgets) settle(r reservation, actual pricing.Amount, _ time.Time) spend {
	return spend{tenant: r.tenant, dayBefore: r.dayBefore, dayAfter: r.dayBefore.Add(actual), monthBefore: r.monthBefore, monthAfter: r.monthBefore.Add(actual)}
}

// done releases the call's holds once its row counts in the ledger (or
// there is none). A row whose write failed is not in the ledger, and one
// that could not be priced counts $0 there: their holds stay until they
// expire, so the cost keeps counting until then.
func (l *ledgerBudgets) done(ctx context.Context, r reservation, o rowOutcome, _ time.Time, _ pricing.Amount, now time.Time) {
	if o == rowFailed || r.unpriced {
		return
	}
	l.release(ctx, r.holds, now)
}

func (l *ledgerBudgets) refresh(context.Context, time.Time, map[string]ledger.Policy) error {
	return nil
}

// spent reads the tenant's ledger spend and live holds: each is reserved
// at zero (which takes no hold when the scope is at its cap, and a hold of
// nothing otherwise, released at once).
func (l *ledgerBudgets) spent(ctx context.Context, tenant string, now time.Time) (day, dayRes, month, monthRes pricing.Amount, err error) {
	read := func(scope string, from time.Time) (pricing.Amount, pricing.Amount, error) {
		huge := pricing.Amount{Dollars: 1 << 62}
		id, st, err := l.h.Reserve(ctx, ledger.HoldRequest{Scope: scope, Cap: huge, TTL: time.Second, Holder: l.holder + " (read)", Now: now, Tenant: tenant, From: from, To: now})
		if err != nil {
			return pricing.Amount{}, pricing.Amount{}, err
		}
		if id != "" {
			if err := l.h.Release(ctx, scope, id, pricing.Amount{}, now); err != nil {
				return pricing.Amount{}, pricing.Amount{}, err
			}
		}
		return st.Spent, st.Held, nil
	}
	if day, dayRes, err = read(dayScope(tenant, now), now); err != nil {
		return
	}
	month, monthRes, err = read(monthScope(tenant, now), monthStart(now))
	return
}

func (l *ledgerBudgets) close() {}
