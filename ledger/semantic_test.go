package ledger

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/internal/pgtest"
	"github.com/costctl/costctl/pricing"
)

// downgradeV12Stmts turn a v12 ledger into what a v11 build wrote.
func downgradeV12Stmts() []string {
	out := []string{"ALTER TABLE events DROP COLUMN semantic", "DROP TABLE semantic_verify"}
	for _, l := range rollupLevels {
		for _, c := range semRollupCols {
			out = append(out, "ALTER TABLE "+l.table+" DROP COLUMN "+c)
		}
	}
	for _, c := range []string{"semantic_cache", "similarity_bp", "semantic_ttl_ms", "min_precision_bp", "semantic_off"} {
		out = append(out, "ALTER TABLE policies DROP COLUMN "+c)
	}
	return out
}

// semEvents: a billed call, an exact hit, two semantic hits and three
// embedding calls (7 tokens of text-embedding-3-small: $0.00000014 each,
// not a whole nano-dollar).
func semEvents() []Event {
	call := ev("call", t0.Add(-50*time.Minute), "acme", "gpt-4o", pricing.Dollars(1))
	exact := ev("exact", t0.Add(-40*time.Minute), "acme", "gpt-4o", 0)
	exact.CacheHit, exact.Avoided = true, pricing.Dollars(1)
	sem1 := ev("sem1", t0.Add(-30*time.Minute), "acme", "gpt-4o", 0)
	sem1.CacheHit, sem1.Semantic, sem1.Avoided = true, true, 300_000 // gpt-4o: 100 in (40 cached), 10 out
	sem2 := ev("sem2", t0.Add(-20*time.Minute), "globex", "gpt-4o", 0)
	sem2.CacheHit, sem2.Semantic, sem2.Avoided = true, true, 2_000_000 // not what the table says: reprice changes it
	out := []Event{call, exact, sem1, sem2}
	for i, tenant := range []string{"acme", "acme", "globex"} {
		e := Event{Key: fmt.Sprint("embed", i), Time: t0.Add(-time.Duration(25-i) * time.Minute), Source: SourceProxy, Tenant: tenant,
			Metric: MetricEmbed, Model: "text-embedding-3-small", InputTokens: 7, CostExact: pricing.AmountFromPico(140_000)}
		out = append(out, e)
	}
	return out
}

func TestSemanticRollups(t *testing.T) { forEachStore(t, testSemanticRollups) }

func testSemanticRollups(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	bad := ev("bad", t0, "acme", "gpt-4o", 0)
	bad.Semantic = true
	if _, err := db.Insert(ctx, []Event{bad}); err == nil || !strings.Contains(err.Error(), "not a cache hit") {
		t.Fatalf("a semantic event that is no cache hit: %v", err)
	}
	if _, err := db.Insert(ctx, semEvents()); err != nil {
		t.Fatal(err)
	}
	checkRollups(t, db)
	check := func(what string, tot Totals, hits, semHits, embeds int64, semAvoided pricing.Money, embedPico int64) {
		t.Helper()
		if tot.CacheHits != hits || tot.SemanticHits != semHits || tot.EmbedCalls != embeds || tot.SemanticAvoided != semAvoided ||
			tot.EmbedCost != pricing.AmountFromPico(embedPico) {
			t.Fatalf("%s: %+v", what, tot)
		}
		if want := pricing.AmountFromMoney(semAvoided).Sub(pricing.AmountFromPico(embedPico)); tot.NetSemantic() != want {
			t.Fatalf("%s: net %s, want %s", what, tot.NetSemantic(), want)
		}
	}
	tot, err := db.TotalsSince(ctx, t0.Add(-time.Hour), t0)
	if err != nil {
		t.Fatal(err)
	}
	check("totals", tot, 3, 2, 3, 2_300_000, 420_000)
	// Embedding calls are billed calls: 1 call + 3 embeddings.
	if tot.Calls != 4 || tot.Cost != pricing.AmountFromMoney(pricing.Dollars(1)).Add(pricing.AmountFromPico(420_000)) {
		t.Fatalf("calls %d cost %s", tot.Calls, tot.Cost)
	}
	if fmt.Sprint(tot.NetSemantic()) != fmt.Sprint(pricing.AmountFromPico(2_300_000_000-420_000)) {
		t.Fatalf("net %s", tot.NetSemantic())
	}
	byTenant := map[string]Totals{}
	g, err := db.Grouped(ctx, "tenant", t0.Add(-time.Hour), t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range g {
		byTenant[r.Key] = r.Totals
	}
	check("acme", byTenant["acme"], 2, 1, 2, 300_000, 280_000)
	check("globex", byTenant["globex"], 1, 1, 1, 2_000_000, 140_000)
	cached, err := db.NewLiveCache().GroupedSince(ctx, "tenant", t0.Add(-time.Hour), t0)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", sortedRows(cached)) != fmt.Sprintf("%+v", sortedRows(g)) {
		t.Fatalf("live cache %+v\nwant %+v", sortedRows(cached), sortedRows(g))
	}
	// Reports from the rollups and from the events agree.
	for _, by := range [][]string{{"tenant"}, {"tenant", "day"}} {
		q := ReportQuery{By: by, Start: t0.Add(-time.Hour), End: t0, Loc: time.UTC}
		a, err := db.Report(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		q.fromEvents = true
		b, err := db.Report(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%+v", a) != fmt.Sprintf("%+v", b) {
			t.Fatalf("report by %v:\nrollups %+v\nevents  %+v", by, a, b)
		}
		check(fmt.Sprint("report ", by), a[0].Totals, 2, 1, 2, 300_000, 280_000)
	}
	// Reprice keeps the semantic flag and moves the semantic and embedding
	// sums with the costs: a semantic hit and an embedding call recorded
	// at the wrong price.
	sem3 := ev("sem3", t0.Add(-10*time.Minute), "acme", "gpt-4o", 0)
	sem3.CacheHit, sem3.Semantic, sem3.Avoided = true, true, 1
	embed := semEvents()[4]
	embed.Key, embed.CostExact = "embed9", pricing.AmountFromPico(1)
	if _, err := db.Insert(ctx, []Event{sem3, embed}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Reprice(ctx, RepriceOptions{Table: pricing.MustDefault()}); err != nil {
		t.Fatal(err)
	}
	checkRollups(t, db)
	var sem int64
	if err := db.SQL().QueryRow(`SELECT semantic FROM events WHERE event_key = 'sem3'`).Scan(&sem); err != nil || sem != 1 {
		t.Fatalf("semantic after reprice: %d %v", sem, err)
	}
	// gpt-4o, 100 tokens in (40 cached) and 10 out: $0.0003; 7 tokens of
	// text-embedding-3-small: 140,000 pico-dollars.
	tot, err = db.TotalsSince(ctx, t0.Add(-time.Hour), t0)
	if err != nil {
		t.Fatal(err)
	}
	check("after reprice", tot, 4, 3, 4, 900_000, 560_000)
}

// A v11 ledger reads (as it is) with no semantic data and semantic cache
// off; opening it to write migrates it with its events kept, and the
// embedding calls already stored are counted.
func TestSemanticV11Ledger(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	embed := semEvents()[4]
	w := writeLedger(t, path, []Event{ev("a", t0.Add(-90*time.Minute), "acme", "gpt-4o", pricing.Dollars(1)), embed})
	if err := w.SetPolicy(ctx, Policy{Tenant: "acme", Cache: true}, PolicyChange{At: t0, What: "cache on", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	want := readAll(t, w)
	for _, s := range append(downgradeV13Stmts(), "PRAGMA user_version = 11") {
		if _, err := w.SQL().Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	w.Close()
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if !ro.noSemCols {
		t.Fatal("a v11 ledger has semantic columns")
	}
	// Read as it is, the embedding call counts as a call but not apart.
	tot, err := ro.TotalsSince(ctx, t0.Add(-24*time.Hour), t0)
	if err != nil || tot.Calls != 2 || tot.EmbedCalls != 0 || tot.SemanticHits != 0 {
		t.Fatalf("v11 totals: %+v %v", tot, err)
	}
	if _, err := ro.Report(ctx, ReportQuery{By: []string{"tenant", "model"}, Start: t0.Add(-24 * time.Hour), End: t0, Loc: time.UTC}); err != nil {
		t.Fatal(err)
	}
	ps, err := ro.Policies(ctx)
	if err != nil || !ps["acme"].Cache || ps["acme"].SemanticCache {
		t.Fatalf("v11 policies: %+v %v", ps, err)
	}
	if c, m, err := ro.Precision(ctx, "", time.Time{}); err != nil || c != 0 || m != 0 {
		t.Fatalf("v11 precision: %d %d %v", c, m, err)
	}
	ro.Close()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := readAll(t, db); got != want {
		t.Fatalf("after migrating\n%s\nwant\n%s", got, want)
	}
	checkRollups(t, db)
	if tot, _ := db.TotalsSince(ctx, t0.Add(-24*time.Hour), t0); tot.EmbedCalls != 1 || tot.EmbedCost != pricing.AmountFromPico(140_000) {
		t.Fatalf("embedding calls after migrating: %+v", tot)
	}
}

// PostgreSQL: a v11 ledger migrates to the current version with costctl db migrate.
func TestSemanticPostgresMigration(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	db, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Insert(ctx, semEvents()[:5]); err != nil {
		t.Fatal(err)
	}
	want := readAll(t, db)
	for _, s := range append(downgradeV13Stmts(), "UPDATE costctl_schema SET version = 11") {
		if _, err := db.SQL().Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if _, err := Open(ctx, dsn); err == nil || !strings.Contains(err.Error(), "run costctl db migrate") {
		t.Fatalf("v11: %v", err)
	}
	if from, to, err := Migrate(ctx, dsn); err != nil || from != 11 || to != SchemaVersion {
		t.Fatalf("migrate: %d → %d, %v", from, to, err)
	}
	db2, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	// The semantic hit's flag went with the column (v11 had none); the
	// embedding call is counted again from the events.
	got := readAll(t, db2)
	if got == want {
		t.Fatal("the dropped semantic flag should read as an exact hit")
	}
	tot, err := db2.TotalsSince(ctx, t0.Add(-24*time.Hour), t0)
	if err != nil || tot.EmbedCalls != 1 || tot.EmbedCost != pricing.AmountFromPico(140_000) || tot.SemanticHits != 0 || tot.CacheHits != 3 {
		t.Fatalf("after migrating: %+v %v", tot, err)
	}
	checkRollups(t, db2)
}

func TestSemanticPolicy(t *testing.T) { forEachStore(t, testSemanticPolicy) }

func testSemanticPolicy(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	at := t0
	if err := db.SetPolicy(ctx, Policy{Tenant: "acme", SemanticCache: true}, PolicyChange{At: at, What: "semantic-cache on", Reason: "trial", Who: "ann"}); err != nil {
		t.Fatal(err)
	}
	ps, err := db.Policies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := ps["acme"]
	if !p.SemanticCache || p.Similarity != 9500 || p.SemanticTTL != 24*time.Hour || p.MinPrecision != 9800 || p.SemanticOff != "" {
		t.Fatalf("defaults: %+v", p)
	}
	if err := db.SetPolicy(ctx, Policy{Tenant: "globex", SemanticCache: true, Similarity: 9800, SemanticTTL: 90 * time.Minute, MinPrecision: 9900},
		PolicyChange{At: at, What: "semantic-cache on", Reason: "trial"}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPolicy(ctx, Policy{Tenant: "initech", SemanticCache: true, Similarity: 7999}, PolicyChange{At: at, What: "x", Reason: "r"}); err == nil {
		t.Fatal("a similarity below 0.80 was stored")
	}
	ps, _ = db.Policies(ctx)
	if g := ps["globex"]; g.Similarity != 9800 || g.SemanticTTL != 90*time.Minute || g.MinPrecision != 9900 {
		t.Fatalf("globex: %+v", g)
	}
	if _, ok := ps["initech"]; ok {
		t.Fatal("a refused policy was stored")
	}
	// Verifications and precision.
	for i, match := range []bool{true, true, false, true} {
		if err := db.RecordVerification(ctx, Verification{Tenant: "acme", At: at.Add(time.Duration(i) * time.Minute), Similarity: 0.97, Match: match, Method: "exact"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.RecordVerification(ctx, Verification{Tenant: "globex", At: at, Similarity: 0.99, Match: false, Method: "judge", Detail: "different city"}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordVerification(ctx, Verification{At: at}); err == nil {
		t.Fatal("a verification without a tenant")
	}
	for _, c := range []struct {
		tenant            string
		since             time.Time
		checked, matching int64
	}{{"acme", time.Time{}, 4, 3}, {"acme", at.Add(time.Minute), 3, 2}, {"globex", time.Time{}, 1, 0}, {"", time.Time{}, 5, 3}, {"nobody", time.Time{}, 0, 0}} {
		n, m, err := db.Precision(ctx, c.tenant, c.since)
		if err != nil || n != c.checked || m != c.matching {
			t.Fatalf("Precision(%q, %v) = %d, %d, %v; want %d, %d", c.tenant, c.since, n, m, err, c.checked, c.matching)
		}
	}
	// Switching off keeps why, writes one audit row, and keeps the rest.
	if err := db.SwitchOffSemantic(ctx, "acme", "measured precision 75.00% < 98.00%", at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.SwitchOffSemantic(ctx, "acme", "again", at.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.SwitchOffSemantic(ctx, "acme", "", at); err == nil {
		t.Fatal("a switch-off without a reason")
	}
	ps, _ = db.Policies(ctx)
	if p := ps["acme"]; p.SemanticCache || p.SemanticOff != "measured precision 75.00% < 98.00%" || p.Similarity != 9500 {
		t.Fatalf("after switching off: %+v", p)
	}
	cs, err := db.PolicyChanges(ctx, "acme")
	if err != nil || len(cs) != 2 {
		t.Fatalf("audit: %+v %v", cs, err)
	}
	if c := cs[1]; c.What != "semantic-cache off" || c.Who != SemanticSwitcher || c.Reason != "measured precision 75.00% < 98.00%" || !c.At.Equal(at.Add(time.Hour)) {
		t.Fatalf("audit row: %+v", c)
	}
}
