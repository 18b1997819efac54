package proxy

import (
	"context"
	"fmt"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// budgetStore is where the proxy keeps each tenant's budget spend and the
// reservations of calls in flight. Three stores behave alike (the same
// tests run against each):
//
//   - memBudgets (the default for one proxy): in this process's memory,
//     other writers' ledger spend read back every few seconds;
//   - ledgerBudgets (--shared-budget): holds in the ledger (HoldStore),
//     atomic across every process on one ledger;
//   - redisBudgets (--redis): counters and holds in Redis, reconciled
//     with the ledger's committed spend.
//
// A call's life: reserve its worst case before it is sent; settle when it
// ends (what it cost, for the threshold alerts); done once its ledger row
// was committed (or there is none, or its write failed): a shared store
// releases the hold only then, so the cost is never counted by neither the
// ledger nor a hold.
type budgetStore interface {
	reserve(ctx context.Context, tenant string, p ledger.Policy, worst pricing.Amount, now time.Time) (reservation, *overBudget, error)
	settle(r reservation, actual pricing.Amount, now time.Time) spend
	done(ctx context.Context, r reservation, o rowOutcome, at time.Time, cost pricing.Amount, now time.Time)
	// refresh runs at every spendEvery-th policy reload: other writers'
	// spend, reconciliation.
	refresh(ctx context.Context, now time.Time, policies map[string]ledger.Policy) error
	// spent is a tenant's spend and reservations today and this month.
	spent(ctx context.Context, tenant string, now time.Time) (day, dayRes, month, monthRes pricing.Amount, err error)
	close()
}

// rowOutcome is what became of a settled call's ledger row.
type rowOutcome int

const (
	rowCommitted rowOutcome = iota // the ledger holds it
	rowNone                        // the call writes no row (it billed nothing)
	rowFailed                      // its write failed
)

// HoldStore is the ledger's budget holds (*ledger.DB implements it): a
// reservation is atomic across every process on the ledger.
type HoldStore interface {
	Reserve(ctx context.Context, r ledger.HoldRequest) (id string, st ledger.HoldState, err error)
	// ReserveAll holds all or none in one transaction; refused is the
	// index of the request that did not fit (-1: all held).
	ReserveAll(ctx context.Context, rs []ledger.HoldRequest) (ids []string, sts []ledger.HoldState, refused int, err error)
	Release(ctx context.Context, scope, id string, spent pricing.Amount, now time.Time) error
	ReleaseAll(ctx context.Context, hs []ledger.HoldRelease, now time.Time) error
}

// memBudgets is the in-memory store: budgets, with the ledger's spend of
// other writers read from spend.
type memBudgets struct {
	b     *budgets
	spend SpendReader
}

func (m *memBudgets) reserve(_ context.Context, tenant string, p ledger.Policy, worst pricing.Amount, now time.Time) (reservation, *overBudget, error) {
	r, over := m.b.reserve(tenant, p, worst, now)
	return r, over, nil
}

func (m *memBudgets) settle(r reservation, actual pricing.Amount, now time.Time) spend {
	return m.b.settle(r, actual, now)
}

func (m *memBudgets) done(_ context.Context, r reservation, o rowOutcome, at time.Time, cost pricing.Amount, now time.Time) {
	if o == rowCommitted && cost.Sign() != 0 {
		m.b.committed(r.tenant, at, cost, now)
	}
}

func (m *memBudgets) refresh(ctx context.Context, now time.Time, _ map[string]ledger.Policy) error {
	return m.load(ctx, now)
}

// load reads today's and this month's spend per tenant from the ledger's
// rollups (budgets.load takes out this process's own rows).
func (m *memBudgets) load(ctx context.Context, now time.Time) error {
	if m.spend == nil {
		return nil
	}
	today, month, err := ledgerTenantSpend(ctx, m.spend, now)
	if err != nil {
		return err
	}
	m.b.load(now, today, month)
	return nil
}

func (m *memBudgets) spent(_ context.Context, tenant string, now time.Time) (day, dayRes, month, monthRes pricing.Amount, err error) {
	day, dayRes, month, monthRes = m.b.spent(tenant, now)
	return day, dayRes, month, monthRes, nil
}

func (m *memBudgets) close() {}

// ledgerTenantSpend is the ledger's spend per tenant today and this month.
func ledgerTenantSpend(ctx context.Context, sr SpendReader, now time.Time) (today, month []ledger.GroupRow, err error) {
	today, err = sr.GroupedSince(ctx, "tenant", dayStart(now), now)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: read today's spend per tenant: %w", err)
	}
	month, err = sr.GroupedSince(ctx, "tenant", monthStart(now), now)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: read this month's spend per tenant: %w", err)
	}
	return today, month, nil
}

// costOf is tenant's cost in rows (zero when absent).
func costOf(rows []ledger.GroupRow, tenant string) pricing.Amount {
	for _, r := range rows {
		if r.Key == tenant {
			return r.Cost
		}
	}
	return pricing.Amount{}
}

// scope names: one per tenant and UTC day, one per tenant and UTC month
// (yyyymm).
func dayScope(tenant string, now time.Time) string {
	return fmt.Sprintf("tenant:%s:day:%d", tenant, dayOf(now))
}

func monthScope(tenant string, now time.Time) string {
	u := now.UTC()
	return fmt.Sprintf("tenant:%s:month:%04d%02d", tenant, u.Year(), int(u.Month()))
}
