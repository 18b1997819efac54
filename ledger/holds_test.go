package ledger

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

// Many writers reserving against one scope at once through their own
// connections never hold more than the cap; released spend counts; an
// expired hold stops counting.
func TestHoldsNeverCrossTheCap(t *testing.T) { forEachStore(t, testHoldsNeverCrossTheCap) }

func testHoldsNeverCrossTheCap(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	var dbs []*DB
	for i := 0; i < 4; i++ { // four processes' worth of connections
		dbs = append(dbs, newDB())
	}
	capUSD := pricing.AmountFromMoney(pricing.Dollars(1))
	each := pricing.AmountFromMoney(pricing.Dollars(1) / 10)
	var granted atomic.Int64
	var wg sync.WaitGroup
	ids := make(chan string, 64)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id, _, err := dbs[i%4].Reserve(ctx, HoldRequest{Scope: "eval:x", Cap: capUSD, Amount: each, TTL: time.Hour, Now: t0})
			if err != nil {
				t.Error(err)
				return
			}
			if id != "" {
				granted.Add(1)
				ids <- id
			}
		}(i)
	}
	wg.Wait()
	close(ids)
	if granted.Load() != 10 {
		t.Fatalf("granted %d holds of $0.10 under a $1 cap", granted.Load())
	}
	// Release three at $0.05 each: $0.15 spent, 7 × $0.10 held → $0.85;
	// one more $0.10 fits, a second does not.
	n := 0
	for id := range ids {
		if n < 3 {
			if err := dbs[0].Release(ctx, "eval:x", id, pricing.AmountFromMoney(pricing.Dollars(1)/20), t0); err != nil {
				t.Fatal(err)
			}
		}
		n++
	}
	st, _ := dbs[1].ScopeSpent(ctx, "eval:x", t0)
	if st.Spent != pricing.AmountFromMoney(pricing.Dollars(15)/100) || st.Held != pricing.AmountFromMoney(pricing.Dollars(7)/10) {
		t.Fatalf("state %+v", st)
	}
	if id, _, _ := dbs[2].Reserve(ctx, HoldRequest{Scope: "eval:x", Cap: capUSD, Amount: each, TTL: time.Hour, Now: t0}); id == "" {
		t.Fatal("a hold that fits was refused")
	}
	if id, _, _ := dbs[2].Reserve(ctx, HoldRequest{Scope: "eval:x", Cap: capUSD, Amount: each, TTL: time.Hour, Now: t0}); id != "" {
		t.Fatal("a hold over the cap was granted")
	}
	// Two hours later every hold has expired: only the spend counts.
	if id, st, _ := dbs[3].Reserve(ctx, HoldRequest{Scope: "eval:x", Cap: capUSD, Amount: each, TTL: time.Hour, Now: t0.Add(2 * time.Hour)}); id == "" || !st.Held.IsZero() {
		t.Fatalf("after expiry: %q %+v", id, st)
	}
}

// A tenant scope counts the tenant's ledger spend of its days.
func TestHoldsTenantScopeCountsLedgerSpend(t *testing.T) {
	forEachStore(t, testHoldsTenantScopeCountsLedgerSpend)
}

func testHoldsTenantScopeCountsLedgerSpend(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	if _, err := db.Insert(ctx, []Event{
		ev("a", t0, "acme", "gpt-4o", pricing.Dollars(3)),
		ev("b", t0.Add(-48*time.Hour), "acme", "gpt-4o", pricing.Dollars(100)), // another day
		ev("c", t0, "globex", "gpt-4o", pricing.Dollars(100)),
	}); err != nil {
		t.Fatal(err)
	}
	req := HoldRequest{Scope: "tenant:acme:day", Tenant: "acme", From: t0, To: t0, Cap: pricing.AmountFromMoney(pricing.Dollars(5)),
		Amount: pricing.AmountFromMoney(pricing.Dollars(2)), TTL: time.Minute, Now: t0}
	id, st, err := db.Reserve(ctx, req)
	if err != nil || id == "" || st.Spent != pricing.AmountFromMoney(pricing.Dollars(3)) {
		t.Fatalf("%q %+v %v", id, st, err)
	}
	if id2, _, _ := db.Reserve(ctx, req); id2 != "" {
		t.Fatal("$3 spent + $2 held + $2 granted under a $5 cap")
	}
}
