package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

func sortedRows(rows []GroupRow) []GroupRow {
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows
}

// The cache answers exactly what the database does, also after events
// arrive in today and are backfilled into past days.
func TestLiveCacheAgreesAndInvalidates(t *testing.T) {
	forEachStore(t, testLiveCacheAgreesAndInvalidates)
}

func testLiveCacheAgreesAndInvalidates(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Date(2026, 11, 20, 14, 30, 20, 0, time.UTC)
	n := 0
	insert := func(k int, back time.Duration) {
		var evs []Event
		for i := 0; i < k; i++ {
			n++
			e := Event{Key: fmt.Sprint(n), Time: now.Add(-time.Duration(rng.Int64N(int64(back)))), Source: SourceIngest,
				User: fmt.Sprint("u", rng.IntN(40)), InputTokens: 1, Cost: pricing.Money(rng.Int64N(1e9))}
			if n%6 == 0 { // an eval cache hit
				e.CacheHit, e.Avoided, e.Cost = true, e.Cost, 0
			}
			evs = append(evs, e)
		}
		if _, err := db.Insert(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	insert(2000, 8*24*time.Hour)
	cache := db.NewLiveCache()
	check := func(step string, start time.Time) {
		t.Helper()
		want, err := db.GroupedSince(ctx, "user", start, now)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cache.GroupedSince(ctx, "user", start, now)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(sortedRows(got), sortedRows(want)) {
			t.Fatalf("%s: cache and database differ:\n%v\n%v", step, got, want)
		}
	}
	for _, w := range []time.Duration{7 * 24 * time.Hour, 24 * time.Hour, time.Hour, 5 * time.Minute} {
		check("first "+w.String(), now.Add(-w))
		check("again "+w.String(), now.Add(-w))
	}
	week := now.Add(-7 * 24 * time.Hour)
	check("week", week)
	hits := cache.hits
	check("week again", week)
	if cache.hits <= hits {
		t.Fatal("a repeated week-long query must reuse past days")
	}
	insert(50, time.Hour) // live traffic today
	check("after today's events", week)
	insert(50, 6*24*time.Hour) // a backfill into past days
	check("after a backfill", week)
	if len(cache.parts) == 0 {
		t.Fatal("nothing was cached")
	}
}
