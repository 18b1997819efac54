package ledger

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestLookupKeysAndHasKeyPrefix(t *testing.T) { forEachStore(t, testLookupKeysAndHasKeyPrefix) }

func testLookupKeysAndHasKeyPrefix(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	var evs []Event
	for i := 0; i < 1200; i++ { // more than one lookup chunk
		e := ev(fmt.Sprintf("ingest:flat:acme:id:%d", i), t0, "acme", "gpt-4o", 0)
		e.ContentHash = int64(1000 + i)
		evs = append(evs, e)
	}
	evs = append(evs, ev("ingest:id", t0, "globex", "gpt-4o", 0)) // no content hash; not under "ingest:id:"
	if _, err := db.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	got, err := db.LookupKeys(ctx, []string{"ingest:flat:acme:id:0", "missing", "ingest:flat:acme:id:1100", "ingest:id"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]StoredKey{
		"ingest:flat:acme:id:0":    {Tenant: "acme", ContentHash: 1000},
		"ingest:flat:acme:id:1100": {Tenant: "acme", ContentHash: 2100},
		"ingest:id":                {Tenant: "globex"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("LookupKeys = %v, want %v", got, want)
	}
	var keys []string
	for i := 0; i < 1200; i++ {
		keys = append(keys, fmt.Sprintf("ingest:flat:acme:id:%d", i))
	}
	if got, err := db.LookupKeys(ctx, keys); err != nil || len(got) != 1200 {
		t.Fatalf("LookupKeys of 1200 keys: %d (%v)", len(got), err)
	}

	for prefix, want := range map[string]bool{"ingest:flat:": true, "ingest:id:": false, "ingest:id": true, "ingest:sha256:": false, "eval:": false} {
		if got, err := db.HasKeyPrefix(ctx, prefix); err != nil || got != want {
			t.Errorf("HasKeyPrefix(%q) = %v (%v), want %v", prefix, got, err, want)
		}
	}
	if db.IsPostgres() {
		return // the plan below is SQLite's
	}
	// A range scan of the key index, not a scan of the events.
	var plan []string
	rs, err := db.SQL().QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT 1 FROM events WHERE event_key >= ? AND event_key < ?`, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var id, parent, unused int
		var detail string
		if err := rs.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if p := strings.Join(plan, "; "); !strings.Contains(p, "USING COVERING INDEX") {
		t.Fatalf("plan %q does not use the key index", p)
	}
}
