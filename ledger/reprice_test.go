package ledger

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

func TestPriceUsage(t *testing.T) {
	table := pricing.MustDefault()
	model := func(name string) *pricing.Model {
		m, err := table.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	use := func(e Event) *Event {
		if e.InputTokens == 0 {
			e.InputTokens, e.OutputTokens = 1000, 100
		}
		return &e
	}
	for _, tc := range []struct {
		name  string
		model *pricing.Model
		e     *Event
		cost  pricing.Money
		ok    bool
	}{
		{"not in the table", nil, use(Event{}), 0, false},
		{"list price", model("gpt-4o"), use(Event{InputTokens: 1000, CachedTokens: 400, OutputTokens: 100}), 3_000_000, true},
		{"default tier is list", model("gpt-4o"), use(Event{InputTokens: 1000, CachedTokens: 400, OutputTokens: 100, ServiceTier: "default"}), 3_000_000, true},
		{"batch", model("gpt-4o"), use(Event{Batch: true}), 1_750_000, true},
		{"priority", model("gpt-4o"), use(Event{ServiceTier: "priority"}), 5_950_000, true},
		{"flex where the table has it", model("gpt-5"), use(Event{ServiceTier: "flex"}), 1_125_000, true},
		{"flex where it has none: unpriced, not list", model("gpt-4o"), use(Event{ServiceTier: "flex"}), 0, false},
		{"unknown tier", model("gpt-4o"), use(Event{ServiceTier: "scale"}), 0, false},
		{"5-minute cache write", model("claude-sonnet-4"), use(Event{InputTokens: 1000, CacheWrite5mTokens: 200, OutputTokens: 100}), 4_650_000, true},
		{"1-hour cache write", model("claude-sonnet-4"), use(Event{InputTokens: 1000, CacheWrite1hTokens: 200, OutputTokens: 100}), 5_100_000, true},
		{"cache write without a write price", model("gpt-4o"), use(Event{InputTokens: 1000, CacheWrite5mTokens: 200, OutputTokens: 100}), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cost, ok := PriceUsage(tc.model, tc.e)
			if cost != usd(tc.cost) || ok != tc.ok {
				t.Fatalf("PriceUsage = %d, %v; want %d, %v", cost, ok, tc.cost, tc.ok)
			}
		})
	}
}

// checkRollups compares every rollup row with the events it sums, for
// every level and dimension: reprice must keep them in step.
func checkRollups(t *testing.T, db *DB) {
	t.Helper()
	// Each events row's exact cost, summed as dollars and normalised pico-dollars.
	sums := `COUNT(*), SUM(input_tokens), SUM(cached_tokens), SUM(output_tokens),
		CAST(SUM(cost_dollars) AS BIGINT) + CAST(SUM(cost_pico) AS BIGINT) / 1000000000000, CAST(SUM(cost_pico) AS BIGINT) % 1000000000000, SUM(unpriced), SUM(cache_hit),
		SUM(CASE WHEN cache_hit != 0 THEN input_tokens ELSE 0 END), SUM(CASE WHEN cache_hit != 0 THEN cached_tokens ELSE 0 END),
		SUM(CASE WHEN cache_hit != 0 THEN output_tokens ELSE 0 END), SUM(CASE WHEN cache_hit != 0 THEN avoided_nano ELSE 0 END),
		SUM(CASE WHEN cache_hit != 0 AND semantic != 0 THEN 1 ELSE 0 END), SUM(CASE WHEN cache_hit != 0 AND semantic != 0 THEN avoided_nano ELSE 0 END),
		SUM(CASE WHEN cache_hit = 0 AND metric = '` + MetricEmbed + `' THEN 1 ELSE 0 END),
		CAST(SUM(CASE WHEN cache_hit = 0 AND metric = '` + MetricEmbed + `' THEN cost_dollars ELSE 0 END) AS BIGINT) + CAST(SUM(CASE WHEN cache_hit = 0 AND metric = '` + MetricEmbed + `' THEN cost_pico ELSE 0 END) AS BIGINT) / 1000000000000,
		CAST(SUM(CASE WHEN cache_hit = 0 AND metric = '` + MetricEmbed + `' THEN cost_pico ELSE 0 END) AS BIGINT) % 1000000000000`
	dump := func(q string) []string {
		rows, err := db.SQL().Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			v := make([]any, 19)
			for i := range v {
				v[i] = new(any)
			}
			if err := rows.Scan(v...); err != nil {
				t.Fatal(err)
			}
			s := ""
			for _, x := range v {
				s += fmt.Sprint(*(x.(*any))) + " "
			}
			out = append(out, s)
		}
		sort.Strings(out)
		return out
	}
	for _, l := range rollupLevels {
		for _, dim := range rollupDims {
			want := dump(fmt.Sprintf(`SELECT %s, %s, %s FROM events GROUP BY 1, 2`, floorSQL("ts_ms", l.ms), dimColumn(dim), sums))
			got := dump(fmt.Sprintf(`SELECT %s, key, calls, input_tokens, cached_tokens, output_tokens, cost_dollars, cost_pico, unpriced_calls, cache_hits,
				hit_input_tokens, hit_cached_tokens, hit_output_tokens, avoided_nano,
				semantic_hits, semantic_avoided_nano, embed_calls, embed_cost_dollars, embed_cost_pico FROM %s WHERE dim = '%s'`, l.col, l.table, dim))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s by %s:\nrollups %q\nevents  %q", l.table, dim, got, want)
			}
		}
	}
}

// eventCosts is each event's cost, unpriced flag and avoided cost.
func eventCosts(t *testing.T, db *DB) map[string]string {
	t.Helper()
	rows, err := db.SQL().Query(`SELECT event_key, cost_dollars * 1000000000 + cost_pico / 1000, unpriced, avoided_nano FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k string
		var c, u, a int64
		if err := rows.Scan(&k, &c, &u, &a); err != nil {
			t.Fatal(err)
		}
		out[k] = fmt.Sprintf("%d/%d/%d", c, u, a)
	}
	return out
}

func TestReprice(t *testing.T) { forEachStore(t, testReprice) }

func testReprice(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	day1, day2 := t0.Add(-26*time.Hour), t0.Add(-2*time.Hour)
	call := func(key string, at time.Time, model string, cost pricing.Money, unpriced bool) Event {
		e := ev(key, at, "acme", model, cost)
		e.InputTokens, e.CachedTokens, e.OutputTokens, e.Unpriced = 1000, 400, 100, unpriced
		return e
	}
	flex := call("f1", day2, "gpt-4o", pricing.Dollars(1), false)
	flex.ServiceTier = "flex"
	h1 := hitEv("h1", day1, "globex", "gpt-4o", pricing.Dollars(9))
	h2 := hitEv("h2", day2, "globex", "mystery-llm", pricing.Dollars(2))
	h1.InputTokens, h1.CachedTokens, h1.OutputTokens = 1000, 400, 100
	evs := []Event{
		call("p1", day1, "gpt-4o", pricing.Dollars(1), false), // wrong price
		call("p2", day1, "gpt-4o", 3_000_000, false),          // right already
		call("u1", day1, "gpt-4o", 0, true),                   // unpriced, now priced
		call("x1", day2, "mystery-llm", pricing.Dollars(5), false),
		call("x2", day2, "mystery-llm", 0, true),
		flex, h1, h2,
		call("out", t0.Add(-10*24*time.Hour), "gpt-4o", pricing.Dollars(1), false), // outside the window
	}
	if _, err := db.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	cache := db.NewLiveCache()
	if _, err := cache.GroupedSince(ctx, "tenant", t0.Add(-7*24*time.Hour), t0); err != nil {
		t.Fatal(err)
	}
	table := pricing.MustDefault()
	window := RepriceOptions{Table: table, Start: t0.Add(-7 * 24 * time.Hour), End: t0, BatchSize: 2}

	before := eventCosts(t, db)
	dry := window
	dry.DryRun = true
	dres, err := db.Reprice(ctx, dry)
	if err != nil {
		t.Fatal(err)
	}
	if got := eventCosts(t, db); !reflect.DeepEqual(got, before) {
		t.Fatalf("a dry run wrote: %v", got)
	}
	checkRollups(t, db)

	res, err := db.Reprice(ctx, window)
	if err != nil {
		t.Fatal(err)
	}
	want := RepriceResult{Events: 8, Changed: 5,
		Old:      RepriceSums{Cost: usd(7_003_000_000), Unpriced: 2, Avoided: pricing.Dollars(11)},
		New:      RepriceSums{Cost: usd(9_000_000), Unpriced: 3, Avoided: 2_003_000_000},
		Unpriced: map[string]int64{"mystery-llm": 2, "gpt-4o": 1}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("reprice\n%+v\nwant\n%+v", res, want)
	}
	if !reflect.DeepEqual(dres, want) {
		t.Fatalf("the dry run said\n%+v\nwant\n%+v", dres, want)
	}
	wantCosts := map[string]string{
		"p1": "3000000/0/0", "p2": "3000000/0/0", "u1": "3000000/0/0",
		"x1": "0/1/0", "x2": "0/1/0", "f1": "0/1/0",
		"h1": "0/0/3000000", "h2": "0/0/2000000000", // h2's model has no price: its avoided cost stays
		"out": "1000000000/0/0",
	}
	if got := eventCosts(t, db); !reflect.DeepEqual(got, wantCosts) {
		t.Fatalf("events %v\nwant %v", got, wantCosts)
	}
	checkRollups(t, db)
	// A live view that kept past days' sums reads them again.
	got, err := cache.GroupedSince(ctx, "tenant", t0.Add(-7*24*time.Hour), t0)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := db.GroupedSince(ctx, "tenant", t0.Add(-7*24*time.Hour), t0)
	if err != nil || !reflect.DeepEqual(sortedRows(got), sortedRows(fresh)) {
		t.Fatalf("live cache after reprice %+v\nwant %+v (%v)", got, fresh, err)
	}

	// The same prices again: nothing changes.
	res, err = db.Reprice(ctx, window)
	if err != nil || res.Changed != 0 || res.Old != res.New || res.Events != 8 {
		t.Fatalf("second reprice: %+v %v", res, err)
	}
	// Everything: the event outside the window now.
	res, err = db.Reprice(ctx, RepriceOptions{Table: table})
	if err != nil || res.Events != 9 || res.Changed != 1 || res.New.Cost.Sub(res.Old.Cost) != usd(3_000_000-pricing.Dollars(1)) {
		t.Fatalf("all events: %+v %v", res, err)
	}
	checkRollups(t, db)
	// A table that prices the unknown model.
	if err := table.Merge("extra.yaml", []byte("models:\n  mystery-llm:\n    input_per_1m: \"1\"\n    output_per_1m: \"2\"\n")); err != nil {
		t.Fatal(err)
	}
	res, err = db.Reprice(ctx, RepriceOptions{Table: table, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	// x1, x2: 1000 × $1/M + 100 × $2/M = $0.0012 each; h2 (100 in, 10 out) avoids $0.00012.
	if res.Changed != 3 || res.New.Unpriced != 1 || res.New.Cost.Sub(res.Old.Cost) != usd(2_400_000) ||
		res.New.Avoided-res.Old.Avoided != 120_000-pricing.Dollars(2) || !reflect.DeepEqual(res.Unpriced, map[string]int64{"gpt-4o": 1}) {
		t.Fatalf("with mystery-llm priced: %+v", res)
	}
	checkRollups(t, db)
	tot, err := db.Totals(ctx, t0.Add(-30*24*time.Hour), t0)
	if err != nil || tot.Cost != res.New.Cost || tot.UnpricedCalls != 1 || tot.Avoided != usd(res.New.Avoided) {
		t.Fatalf("totals after reprice %+v, result %+v (%v)", tot, res.New, err)
	}
}

// Batches walk events in (time, id) order: events sharing a millisecond
// across a batch boundary are each repriced once, whatever the batch size.
func TestRepriceBatches(t *testing.T) {
	ctx := context.Background()
	for _, store := range []string{"sqlite", "postgres"} {
		for _, size := range []int{1, 2, 3, 7, 1000} {
			t.Run(store+"/"+fmt.Sprint(size), func(t *testing.T) {
				db := storeOpener(t, store)()
				var evs []Event
				for i := 0; i < 20; i++ {
					evs = append(evs, ev(fmt.Sprint(i), t0.Add(time.Duration(i/4)*time.Minute), "acme", "gpt-4o", 1))
				}
				if _, err := db.Insert(ctx, evs); err != nil {
					t.Fatal(err)
				}
				res, err := db.Reprice(ctx, RepriceOptions{Table: pricing.MustDefault(), BatchSize: size})
				if err != nil || res.Events != 20 || res.Changed != 20 {
					t.Fatalf("%+v %v", res, err)
				}
				checkRollups(t, db)
				if res, err := db.Reprice(ctx, RepriceOptions{Table: pricing.MustDefault(), BatchSize: size}); err != nil || res.Changed != 0 || res.Events != 20 {
					t.Fatalf("again: %+v %v", res, err)
				}
			})
		}
	}
}

// A rollup row that is missing (the rollups no longer match the events)
// stops the batch: nothing of it is written.
func TestRepriceRefusesInconsistentRollups(t *testing.T) {
	forEachStore(t, testRepriceRefusesInconsistentRollups)
}

func testRepriceRefusesInconsistentRollups(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	if _, err := db.Insert(ctx, []Event{ev("a", t0, "acme", "gpt-4o", 1)}); err != nil {
		t.Fatal(err)
	}
	db.SQL().Exec(`DELETE FROM rollup_hour WHERE dim = 'model'`)
	before := eventCosts(t, db)
	_, err := db.Reprice(ctx, RepriceOptions{Table: pricing.MustDefault()})
	if err == nil || !strings.Contains(err.Error(), "rollup_hour has no row for model \"gpt-4o\"") {
		t.Fatalf("err %v", err)
	}
	if got := eventCosts(t, db); !reflect.DeepEqual(got, before) {
		t.Fatalf("a failed batch wrote: %v", got)
	}
}

// Reprice writes: a ledger opened read-only refuses it.
func TestRepriceNeedsAWritableLedger(t *testing.T) {
	ctx := context.Background()
	path := openTest(t).Path()
	db, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Reprice(ctx, RepriceOptions{Table: pricing.MustDefault()}); err == nil || err.Error() != "ledger: reprice needs a ledger opened for writing" {
		t.Fatalf("err %v", err)
	}
}
