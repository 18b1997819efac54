package proxy

import (
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

func TestProxyBudgetResets(t *testing.T) {
	b := newBudgets()
	p := ledger.Policy{Tenant: "acme", DailyBudget: pricing.Dollars(10), MonthlyBudget: pricing.Dollars(15)}
	usd := func(d int64) pricing.Amount { return pricing.AmountFromMoney(pricing.Dollars(d)) }
	t0 := time.Date(2026, 3, 31, 23, 59, 0, 0, time.UTC)
	r, over := b.reserve("acme", p, usd(6), t0)
	if over != nil {
		t.Fatal(over)
	}
	b.settle(r, usd(6), t0)
	// $6 + $6 > $10 today: refused, reset at midnight UTC.
	_, over = b.reserve("acme", p, usd(6), t0)
	if over == nil || over.period != "daily" || !over.resetAt.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("over %+v", over)
	}
	// A new day and a new month: both reset.
	t1 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	r, over = b.reserve("acme", p, usd(6), t1)
	if over != nil {
		t.Fatal(over)
	}
	b.settle(r, usd(6), t1)
	// Next day, same month: $6 + $6 + $6 > $15 this month.
	t2 := t1.AddDate(0, 0, 1)
	r, over = b.reserve("acme", p, usd(6), t2)
	if over != nil {
		t.Fatal(over)
	}
	b.settle(r, usd(6), t2)
	_, over = b.reserve("acme", p, usd(4), t2)
	if over == nil || over.period != "monthly" || !over.resetAt.Equal(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("over %+v", over)
	}
	// A reservation made yesterday and settled today leaves today alone.
	t3 := time.Date(2026, 5, 1, 23, 0, 0, 0, time.UTC)
	r, _ = b.reserve("acme", p, usd(5), t3)
	b.settle(r, usd(5), t3.Add(2*time.Hour))
	day, dayRes, _, _ := b.spent("acme", t3.Add(2*time.Hour))
	if !day.IsZero() || !dayRes.IsZero() {
		t.Fatalf("day %s reserved %s", day, dayRes)
	}
}

func TestProxyWorstCostTiers(t *testing.T) {
	m, err := pricing.MustDefault().Lookup("gpt-4o-mini")
	if err != nil {
		t.Fatal(err)
	}
	price := func(tier string) pricing.Amount {
		c, ok := ledger.PriceUsage(m, &ledger.Event{InputTokens: 1000, OutputTokens: 100, ServiceTier: tier})
		if !ok {
			t.Fatalf("tier %q unpriced", tier)
		}
		return c
	}
	for _, c := range []struct {
		requested string
		want      pricing.Amount
	}{
		{"", price("")},
		{"default", price("")},
		{"priority", price("priority")},
		{"auto", price("priority")}, // the upstream may pick priority: the dearer one is held
	} {
		got, ok := worstCost(m, 1000, 100, c.requested)
		if !ok || got != c.want {
			t.Errorf("tier %q: worst %s (ok %v), want %s", c.requested, got, ok, c.want)
		}
	}
	// Claude: cache writes cost more than input, so the worst case is the
	// whole prompt written to the 1-hour cache.
	cl, _ := pricing.MustDefault().Lookup("claude-sonnet-4-5")
	w1, _ := ledger.PriceUsage(cl, &ledger.Event{InputTokens: 1000, CacheWrite1hTokens: 1000, OutputTokens: 100})
	if got, ok := worstCost(cl, 1000, 100, ""); !ok || got != w1 {
		t.Errorf("claude worst %s, want %s", got, w1)
	}
}
