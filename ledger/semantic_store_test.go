package ledger

import (
	"context"
	"math"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

// downgradeV13Stmts turn a v13 ledger into what a v11 build wrote.
func downgradeV13Stmts() []string {
	return append([]string{"DROP TABLE semantic_entries"}, downgradeV12Stmts()...)
}

func semIDs(es []SemanticEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	sort.Strings(out)
	return out
}

// Put, candidates, touch, the LRU bound and the TTL, on both stores; a
// vector and a response come back bit for bit.
func TestSemanticStore(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func() *DB) {
		ctx := context.Background()
		db := open()
		vec := []float32{0.1, -0.2, float32(math.Pi), math.SmallestNonzeroFloat32, math.MaxFloat32, -0}
		put := func(id, part string, at time.Time, limit int, ttl time.Duration) {
			t.Helper()
			e := SemanticEntry{ID: id, Partition: part, Tenant: "acme", Model: "gpt-4o", Text: "q " + id, Vector: vec,
				Response: []byte("\x00answer " + id + "\xff"), Created: at, Cost: pricing.AmountFromPico(1_234_567_890_123_456)}
			if err := db.PutSemantic(ctx, e, limit, ttl, at); err != nil {
				t.Fatal(err)
			}
		}
		put("a", "p1", t0, 3, 0)
		put("b", "p1", t0.Add(time.Second), 3, 0)
		put("c", "p1", t0.Add(2*time.Second), 3, 0)
		put("x", "p2", t0.Add(2*time.Second), 3, 0)
		got, err := db.SemanticCandidates(ctx, "p1", t0.Add(3*time.Second))
		if err != nil || !reflect.DeepEqual(semIDs(got), []string{"a", "b", "c"}) {
			t.Fatalf("p1: %v %v", semIDs(got), err)
		}
		var a SemanticEntry
		for _, e := range got {
			if e.ID == "a" {
				a = e
			}
		}
		for i := range vec {
			if math.Float32bits(a.Vector[i]) != math.Float32bits(vec[i]) {
				t.Fatalf("vector %v, want %v", a.Vector, vec)
			}
		}
		if len(a.Vector) != len(vec) || string(a.Response) != "\x00answer a\xff" || a.Partition != "p1" || a.Tenant != "acme" ||
			a.Model != "gpt-4o" || a.Text != "q a" || !a.Created.Equal(t0) || !a.Used.Equal(t0) || !a.Expires.IsZero() ||
			a.Cost != pricing.AmountFromPico(1_234_567_890_123_456) {
			t.Fatalf("entry a: %+v", a)
		}
		// a is touched: b is now the least recently used and goes at the bound.
		if err := db.TouchSemantic(ctx, "a", t0.Add(3*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := db.TouchSemantic(ctx, "gone", t0.Add(3*time.Second)); err != nil {
			t.Fatalf("touch of an unknown entry: %v", err)
		}
		put("d", "p1", t0.Add(4*time.Second), 3, 0)
		if got, err := db.SemanticCandidates(ctx, "p1", t0.Add(5*time.Second)); err != nil || !reflect.DeepEqual(semIDs(got), []string{"a", "c", "d"}) {
			t.Fatalf("after the bound: %v %v", semIDs(got), err)
		}
		// Storing the same id again replaces it (no second row).
		put("c", "p1", t0.Add(5*time.Second), 3, 0)
		if got, _ := db.SemanticCandidates(ctx, "p1", t0.Add(5*time.Second)); len(got) != 3 {
			t.Fatalf("replace: %v", semIDs(got))
		}
		// Another partition is neither read nor bounded by p1.
		if got, err := db.SemanticCandidates(ctx, "p2", t0.Add(5*time.Second)); err != nil || !reflect.DeepEqual(semIDs(got), []string{"x"}) {
			t.Fatalf("p2: %v %v", semIDs(got), err)
		}
		// TTL: an entry is not a candidate from its expiry on, and the next
		// put in its partition drops it.
		put("t", "p3", t0, 0, time.Minute)
		if got, _ := db.SemanticCandidates(ctx, "p3", t0.Add(time.Minute-time.Millisecond)); len(got) != 1 || !got[0].Expires.Equal(t0.Add(time.Minute)) {
			t.Fatalf("before expiry: %+v", got)
		}
		if got, _ := db.SemanticCandidates(ctx, "p3", t0.Add(time.Minute)); len(got) != 0 {
			t.Fatalf("at expiry: %v", semIDs(got))
		}
		// The texts alone, as the candidates are.
		if got, err := db.SemanticTexts(ctx, "p3", t0.Add(time.Minute-time.Millisecond)); err != nil || !reflect.DeepEqual(got, []string{"q t"}) {
			t.Fatalf("texts before expiry: %q %v", got, err)
		}
		if got, err := db.SemanticTexts(ctx, "p3", t0.Add(time.Minute)); err != nil || len(got) != 0 {
			t.Fatalf("texts at expiry: %q %v", got, err)
		}
		put("u", "p3", t0.Add(2*time.Minute), 0, time.Minute)
		var n int
		if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM semantic_entries WHERE "partition" = 'p3'`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("rows in p3 after a put past the expiry: %d %v", n, err)
		}
		if got, _ := db.SemanticCandidates(ctx, "nowhere", t0); len(got) != 0 {
			t.Fatalf("empty partition: %v", semIDs(got))
		}
		if err := db.PutSemantic(ctx, SemanticEntry{Partition: "p1"}, 0, 0, t0); err == nil {
			t.Fatal("an entry without an id was stored")
		}
	})
}

// A ledger opened read-only refuses semantic cache writes.
func TestSemanticStoreReadOnly(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/l.db"
	w, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.PutSemantic(ctx, SemanticEntry{ID: "a", Partition: "p", Vector: []float32{1}}, 0, 0, t0); err == nil {
		t.Fatal("a read-only ledger stored an entry")
	}
	if err := ro.TouchSemantic(ctx, "a", t0); err == nil {
		t.Fatal("a read-only ledger touched an entry")
	}
}
