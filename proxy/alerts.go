package proxy

import (
	"sync"
	"time"

	"github.com/costctl/costctl/alerts"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// Notifier delivers alerts: *alerts.Notifier (the --webhook) implements
// it. Notify must not block: the proxy calls it from a request's
// goroutine after the call settled (alerts.Notifier queues and returns).
type Notifier interface {
	Notify(alerts.Alert)
}

// alerter decides which alerts to raise: a tenant crossing 50/80/100% of
// a daily or monthly budget (on settlement, or on a refusal for 100%),
// blocked or unblocked (on a policy reload), a spike (spike.go). It
// remembers what it raised today so that the request path does not call
// the Notifier again for the same alert (the Notifier also keeps at most
// one per tenant, kind and period per day, and retries).
type alerter struct {
	n    Notifier
	mu   sync.Mutex
	sent map[string]bool
	day  int64
}

func newAlerter(n Notifier) *alerter {
	return &alerter{n: n, sent: map[string]bool{}}
}

func (a *alerter) on() bool { return a != nil && a.n != nil }

// send raises al unless it was raised today.
func (a *alerter) send(al alerts.Alert) {
	if !a.on() {
		return
	}
	if al.Kind != alerts.KindBlocked && al.Kind != alerts.KindUnblocked {
		k := al.Tenant + "\x00" + al.Kind + "\x00" + al.Period
		a.mu.Lock()
		if d := dayOf(al.At); d != a.day {
			a.day, a.sent = d, map[string]bool{}
		}
		dup := a.sent[k]
		a.sent[k] = true
		a.mu.Unlock()
		if dup {
			return
		}
	}
	a.n.Notify(al)
}

var budgetKinds = []struct {
	pct  int64
	kind string
}{{50, alerts.KindBudget50}, {80, alerts.KindBudget80}, {100, alerts.KindBudget100}}

// budget raises the alert for threshold pct of a budget.
func (a *alerter) budget(tenant, period string, budget pricing.Money, spent pricing.Amount, pct int64, at time.Time) {
	for _, k := range budgetKinds {
		if k.pct == pct {
			a.send(alerts.Alert{Tenant: tenant, Kind: k.kind, Period: period, Budget: budget, Spend: spent, At: at})
		}
	}
}

// crossed raises the threshold alerts a settlement crossed.
func (a *alerter) crossed(sp spend, p ledger.Policy, at time.Time) {
	if !a.on() {
		return
	}
	check := func(period string, budget pricing.Money, before, after pricing.Amount) {
		if budget <= 0 {
			return
		}
		b := pricing.AmountFromMoney(budget)
		for _, k := range budgetKinds {
			// Exactly: spent × 100 ≥ budget × pct.
			level := b.MulInt64(k.pct)
			if after.MulInt64(100).Cmp(level) >= 0 && before.MulInt64(100).Cmp(level) < 0 {
				a.budget(sp.tenant, period, budget, after, k.pct, at)
			}
		}
	}
	check(alerts.PeriodDaily, p.DailyBudget, sp.dayBefore, sp.dayAfter)
	check(alerts.PeriodMonthly, p.MonthlyBudget, sp.monthBefore, sp.monthAfter)
}
