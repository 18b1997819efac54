package proxy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// Alert is something on-call should hear about: a tenant crossed 50, 80 or
// 100% of a budget, or was blocked or unblocked.
type Alert struct {
	Tenant    string
	Kind      string // "budget", "blocked", "unblocked"
	Period    string // budget alerts: "daily" or "monthly"
	Threshold int    // budget alerts: 50, 80 or 100 (% of the budget)
	Budget    pricing.Money
	Spent     pricing.Amount
	At        time.Time
	Text      string // one line, Slack-ready
}

// Notifier delivers alerts (the webhook in package alerts). Notify is
// called on the proxy's alert goroutine, never on a request's.
type Notifier interface {
	Notify(Alert)
}

// alerter queues alerts off the request path and sends each at most once
// per tenant, kind, period and threshold per UTC day.
type alerter struct {
	n    Notifier
	now  func() time.Time
	logf func(string, ...any)
	ch   chan Alert
	done chan struct{}
	mu   sync.Mutex
	sent map[string]bool
	day  int64
}

var thresholds = []int{50, 80, 100}

func newAlerter(n Notifier, now func() time.Time, logf func(string, ...any)) *alerter {
	a := &alerter{n: n, now: now, logf: logf, ch: make(chan Alert, 256), done: make(chan struct{}), sent: map[string]bool{}}
	go func() {
		defer close(a.done)
		for al := range a.ch {
			if a.n != nil {
				a.n.Notify(al)
			}
		}
	}()
	return a
}

// send queues al unless the same alert went out today; never blocks.
func (a *alerter) send(al Alert) {
	if a == nil || a.n == nil {
		return
	}
	k := fmt.Sprintf("%s\x00%s\x00%s\x00%d", al.Tenant, al.Kind, al.Period, al.Threshold)
	if al.Kind == "blocked" || al.Kind == "unblocked" {
		k += "\x00" + al.At.UTC().Format(time.RFC3339Nano) // every change is news
	}
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
	select {
	case a.ch <- al:
	default:
		a.logf("alert queue full: dropped %q", al.Text)
	}
}

// budget raises a threshold alert.
func (a *alerter) budget(tenant, period string, budget pricing.Money, spent pricing.Amount, threshold int, at time.Time) {
	a.send(Alert{Tenant: tenant, Kind: "budget", Period: period, Threshold: threshold, Budget: budget, Spent: spent, At: at,
		Text: fmt.Sprintf("costctl proxy: tenant %s reached %d%% of its %s budget of %s (spent %s)", tenant, threshold, period, budget.Display(), spent.DisplayRounded(2))})
}

// crossed raises the alerts a settlement crossed.
func (a *alerter) crossed(sp spend, p ledger.Policy, at time.Time) {
	if a == nil || a.n == nil {
		return
	}
	check := func(period string, budget pricing.Money, before, after pricing.Amount) {
		if budget <= 0 {
			return
		}
		b := pricing.AmountFromMoney(budget)
		for _, t := range thresholds {
			// level = budget × t / 100, compared exactly: spent × 100 ≥ budget × t.
			if after.MulInt64(100).Cmp(b.MulInt64(int64(t))) >= 0 && before.MulInt64(100).Cmp(b.MulInt64(int64(t))) < 0 {
				a.budget(sp.tenant, period, budget, after, t, at)
			}
		}
	}
	check("daily", p.DailyBudget, sp.dayBefore, sp.dayAfter)
	check("monthly", p.MonthlyBudget, sp.monthBefore, sp.monthAfter)
}

// close delivers what is queued (until ctx ends).
func (a *alerter) close(ctx context.Context) {
	close(a.ch)
	select {
	case <-a.done:
	case <-ctx.Done():
	}
}
