package ledger

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

// A batch's life in the ledger: written before submission with its
// requests, found as open by its keys, collected (idempotently: collecting
// the same results again adds nothing), finished with the requests never
// reported counted missing; an abandoned batch leaves nothing behind.
func TestBatchLifecycle(t *testing.T) { forEachStore(t, testBatchLifecycle) }

func testBatchLifecycle(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	b := Batch{ID: "run-1", Provider: "openai", Endpoint: "http://x/v1", Judge: "small", Model: "gpt-4o-mini", RunID: "run", Round: 1,
		Reserved: pricing.Dollars(1), Created: t0}
	reqs := []BatchRequest{{CustomID: "k1", Metric: "m", Tenant: "acme", Bound: 100, Worst: 300}, {CustomID: "k2", Metric: "m", Worst: 300}, {CustomID: "k3", Metric: "m", Worst: 400}}
	if err := db.CreateBatch(ctx, b, reqs); err != nil {
		t.Fatal(err)
	}
	open, err := db.OpenRequests(ctx, []string{"k1", "k3", "nope"})
	if err != nil || len(open) != 2 || open["k1"] != "run-1" || open["k3"] != "run-1" {
		t.Fatalf("open %v %v", open, err)
	}
	got, _, _ := db.FindBatch(ctx, "run-1")
	if got.State != BatchPreparing || got.Requests != 3 || got.Reserved != pricing.Dollars(1) || !got.Created.Equal(t0) {
		t.Fatalf("created %+v", got)
	}
	b.RemoteID, b.State, b.Updated = "batch_abc", "in_progress", t0.Add(time.Minute)
	if err := db.UpdateBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := db.FindBatch(ctx, "batch_abc"); !ok || got.ID != "run-1" || got.State != "in_progress" {
		t.Fatalf("by remote id: %+v %v", got, ok)
	}
	evs := []Event{{Key: BatchEventKey("run-1", "k1"), Time: t0, Source: SourceEval, Tenant: "acme", Model: "gpt-4o-mini", InputTokens: 90, OutputTokens: 5, Cost: 123, Batch: true}}
	js := []JudgeResult{{Key: "k1", Metric: "m", Model: "gpt-4o-mini", Score: 1, Cost: 123, Created: t0}}
	rs := []RequestResult{{BatchID: "run-1", CustomID: "k1", State: RequestOK}, {BatchID: "run-1", CustomID: "k2", State: RequestError, Error: "HTTP 400: bad"}}
	for i := 0; i < 2; i++ { // a rerun after a crash collects again: nothing doubles
		if err := db.CollectResults(ctx, evs, js, rs); err != nil {
			t.Fatal(err)
		}
	}
	b.Updated = t0.Add(2 * time.Minute)
	if err := db.FinishBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, _, _ = db.FindBatch(ctx, "run-1")
	if got.State != BatchCollected || got.Succeeded != 1 || got.Errored != 1 || got.Missing != 1 || got.Cost != 123 || got.Open() {
		t.Fatalf("finished %+v", got)
	}
	rq, _ := db.Requests(ctx, "run-1")
	if rq["k3"].State != RequestMissing || rq["k2"].Error != "HTTP 400: bad" || rq["k1"].Tenant != "acme" || rq["k1"].Bound != 100 {
		t.Fatalf("requests %+v", rq)
	}
	if open, _ := db.OpenRequests(ctx, []string{"k1", "k2", "k3"}); len(open) != 0 {
		t.Fatalf("open after collection: %v", open)
	}
	tot, _ := db.Totals(ctx, t0.Add(-time.Hour), t0.Add(time.Hour))
	if m, _ := tot.Cost.Money(); tot.Calls != 1 || m != 123 {
		t.Fatalf("totals %+v", tot)
	}

	// Abandon: only a batch never created.
	if err := db.CreateBatch(ctx, Batch{ID: "run-2", Provider: "openai", Created: t0}, []BatchRequest{{CustomID: "k9"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AbandonBatch(ctx, "run-2"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.FindBatch(ctx, "run-2"); ok {
		t.Fatal("abandoned batch kept")
	}
	if all, _ := db.Batches(ctx, false); len(all) != 1 {
		t.Fatalf("batches %+v", all)
	}
}

// A v9 ledger reads (read-only) as having no batches, and migrates to v10
// with its events kept.
func TestBatchV9Ledger(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	w := writeLedger(t, path, []Event{ev("a", t0, "acme", "gpt-4o", pricing.Dollars(1))})
	want := readAll(t, w)
	for _, s := range append(downgradeV13Stmts(), "DROP TABLE budget_holds", "DROP TABLE budget_spent", "DROP TABLE batch_requests", "DROP TABLE batches", "PRAGMA user_version = 9") {
		if _, err := w.SQL().Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if bs, err := ro.Batches(ctx, false); err != nil || len(bs) != 0 {
		t.Fatalf("v9 batches: %v %v", bs, err)
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
	if err := db.CreateBatch(ctx, Batch{ID: "b", Provider: "openai", Created: t0}, nil); err != nil {
		t.Fatal(err)
	}
}
