package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

func TestControlKeys(t *testing.T) { forEachStore(t, testControlKeys) }

func testControlKeys(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	a := VirtualKey{Name: "acme-1", Tenant: "acme", User: "bob", Hash: HashKey("ck-secret-a"), CreatedAt: t0}
	b := VirtualKey{Name: "globex-1", Tenant: "globex", Hash: HashKey("ck-secret-b"), CreatedAt: t0.Add(time.Minute)}
	for _, k := range []VirtualKey{a, b} {
		if err := db.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if h := HashKey("abc"); h != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashKey(abc) = %s, not hex SHA-256", h)
	}

	got, ok, err := db.KeyByHash(ctx, a.Hash)
	if err != nil || !ok || !reflect.DeepEqual(got, a) {
		t.Fatalf("KeyByHash: %+v %v %v, want %+v", got, ok, err, a)
	}
	if _, ok, err := db.KeyByHash(ctx, HashKey("ck-unknown")); ok || err != nil {
		t.Fatalf("unknown hash found: %v %v", ok, err)
	}

	// Names are unique, revoked ones too; bad keys are refused in words.
	for _, tc := range []struct {
		k    VirtualKey
		want string
	}{
		{VirtualKey{Name: "acme-1", Tenant: "acme", Hash: HashKey("other"), CreatedAt: t0}, `virtual key name already taken: "acme-1"`},
		{VirtualKey{Name: "", Tenant: "acme", Hash: HashKey("x"), CreatedAt: t0}, "virtual key: empty name"},
		{VirtualKey{Name: "n", Tenant: " ", Hash: HashKey("x"), CreatedAt: t0}, `virtual key "n": empty tenant`},
		{VirtualKey{Name: "n", Tenant: "acme", Hash: "ck-plaintext", CreatedAt: t0}, `virtual key "n": hash is not a hex SHA-256`},
		{VirtualKey{Name: "n", Tenant: "acme", Hash: HashKey("x")}, `virtual key "n": no creation time`},
	} {
		if err := db.CreateKey(ctx, tc.k); fmt.Sprint(err) != tc.want {
			t.Errorf("CreateKey(%+v) = %v, want %s", tc.k, err, tc.want)
		}
	}
	if err := db.CreateKey(ctx, VirtualKey{Name: "acme-1", Tenant: "acme", Hash: HashKey("other"), CreatedAt: t0}); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("duplicate name: %v", err)
	}

	// Revoke: then the hash is not found, the list shows when.
	at := t0.Add(time.Hour)
	if err := db.RevokeKey(ctx, "acme-1", at); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.KeyByHash(ctx, a.Hash); ok || err != nil {
		t.Fatalf("revoked key still found: %v %v", ok, err)
	}
	err = db.RevokeKey(ctx, "acme-1", at.Add(time.Hour))
	if !errors.Is(err, ErrKeyRevoked) || err.Error() != `virtual key already revoked: "acme-1" was revoked at 2026-11-20T11:00:00Z` {
		t.Fatalf("second revoke: %v", err)
	}
	err = db.RevokeKey(ctx, "nope", at)
	if !errors.Is(err, ErrNoKey) || err.Error() != `no such virtual key named "nope"` {
		t.Fatalf("unknown name: %v", err)
	}
	keys, err := db.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.RevokedAt = at
	if want := []VirtualKey{a, b}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("ListKeys\n%+v\nwant\n%+v", keys, want)
	}
	// The secret is nowhere in the file; only its hash.
	var n int
	db.SQL().QueryRow(`SELECT COUNT(*) FROM virtual_keys WHERE hash = ? OR name LIKE '%secret%'`, HashKey("ck-secret-a")).Scan(&n)
	if n != 1 {
		t.Fatalf("%d rows hold the hash", n)
	}
}

func TestControlPolicies(t *testing.T) { forEachStore(t, testControlPolicies) }

func testControlPolicies(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	if ps, err := db.Policies(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("new ledger: %v %v", ps, err)
	}
	p := Policy{
		Tenant:        "acme",
		DailyBudget:   pricing.Money(50_000_000_001), // $50.000000001: exact, no float
		MonthlyBudget: pricing.Dollars(9_000_000_000),
		SampleBP:      100,
		Cache:         true,
		Routes:        map[string]string{"gpt-4o": "gpt-4o-mini", "o1": "o3-mini"},
	}
	c1 := PolicyChange{At: t0, What: "daily-budget 50.000000001", Reason: "runbook", Who: "alice"}
	if err := db.SetPolicy(ctx, p, c1); err != nil {
		t.Fatal(err)
	}
	g := Policy{Tenant: "globex", Blocked: true}
	c2 := PolicyChange{At: t0.Add(time.Minute), Tenant: "globex", What: "block", Reason: "spike", Who: "bob"}
	if err := db.SetPolicy(ctx, g, c2); err != nil {
		t.Fatal(err)
	}
	ps, err := db.Policies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.UpdatedAt, g.UpdatedAt = t0, t0.Add(time.Minute)
	if want := map[string]Policy{"acme": p, "globex": g}; !reflect.DeepEqual(ps, want) {
		t.Fatalf("Policies\n%+v\nwant\n%+v", ps, want)
	}
	c1.Tenant = "acme"
	for tenant, want := range map[string][]PolicyChange{"": {c1, c2}, "acme": {c1}, "globex": {c2}, "initech": nil} {
		got, err := db.PolicyChanges(ctx, tenant)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("PolicyChanges(%q) = %+v %v, want %+v", tenant, got, err, want)
		}
	}

	// Refused in words, and nothing stored.
	for _, tc := range []struct {
		p    Policy
		c    PolicyChange
		want string
	}{
		{Policy{Tenant: "acme"}, PolicyChange{At: t0, What: "x"}, `policy change for "acme": no reason`},
		{Policy{Tenant: "acme"}, PolicyChange{At: t0, Reason: "r"}, `policy change for "acme": says nothing about what changed`},
		{Policy{Tenant: "acme"}, PolicyChange{What: "x", Reason: "r"}, `policy change for "acme": no time`},
		{Policy{Tenant: ""}, PolicyChange{At: t0, What: "x", Reason: "r"}, `policy: empty tenant`},
		{Policy{Tenant: "acme", SampleBP: 10_001}, PolicyChange{At: t0, What: "x", Reason: "r"}, `policy for "acme": sample share 10001 bp is outside 0..10000`},
		{Policy{Tenant: "acme", DailyBudget: -1}, PolicyChange{At: t0, What: "x", Reason: "r"}, `policy for "acme": negative daily budget -0.000000001`},
		{Policy{Tenant: "acme", Routes: map[string]string{"a": ""}}, PolicyChange{At: t0, What: "x", Reason: "r"}, `policy for "acme": route "a"="" needs both models`},
		{Policy{Tenant: "acme"}, PolicyChange{At: t0, Tenant: "globex", What: "x", Reason: "r"}, `policy for "acme" with a change for "globex"`},
	} {
		if err := db.SetPolicy(ctx, tc.p, tc.c); fmt.Sprint(err) != tc.want {
			t.Errorf("SetPolicy(%+v, %+v) = %v, want %s", tc.p, tc.c, err, tc.want)
		}
	}
	if ps2, _ := db.Policies(ctx); !reflect.DeepEqual(ps2, ps) {
		t.Fatalf("a refused change stored something: %+v", ps2)
	}
}

// The policy and its audit row are one transaction: when the audit row
// cannot be written, the policy is not changed either.
func TestControlSetPolicyIsOneTransaction(t *testing.T) {
	forEachStore(t, testControlSetPolicyIsOneTransaction)
}

func testControlSetPolicyIsOneTransaction(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	db := newDB()
	if err := db.SetPolicy(ctx, Policy{Tenant: "acme", SampleBP: 5}, PolicyChange{At: t0, What: "sample 0.05%", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	trigger := []string{`CREATE TRIGGER no_audit BEFORE INSERT ON policy_audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END`}
	if db.IsPostgres() {
		trigger = []string{`CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$`,
			`CREATE TRIGGER no_audit BEFORE INSERT ON policy_audit FOR EACH ROW EXECUTE FUNCTION no_audit()`}
	}
	for _, q := range trigger {
		if _, err := db.SQL().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	err := db.SetPolicy(ctx, Policy{Tenant: "acme", Blocked: true}, PolicyChange{At: t0.Add(time.Minute), What: "block", Reason: "r"})
	if err == nil {
		t.Fatal("SetPolicy succeeded without its audit row")
	}
	_, err = db.UpdatePolicy(ctx, "acme", func(p *Policy) (PolicyChange, error) {
		p.Blocked = true
		return PolicyChange{At: t0.Add(time.Minute), What: "block", Reason: "r"}, nil
	})
	if err == nil {
		t.Fatal("UpdatePolicy succeeded without its audit row")
	}
	ps, _ := db.Policies(ctx)
	if want := (Policy{Tenant: "acme", SampleBP: 5, UpdatedAt: t0}); !reflect.DeepEqual(ps["acme"], want) {
		t.Fatalf("policy %+v, want %+v", ps["acme"], want)
	}
}

// UpdatePolicy changes only what edit changes, and two writers (two
// processes' handles) updating different fields of one tenant lose
// nothing.
func TestControlUpdatePolicyConcurrent(t *testing.T) {
	forEachStore(t, testControlUpdatePolicyConcurrent)
}

func testControlUpdatePolicyConcurrent(t *testing.T, newDB func() *DB) {
	ctx := context.Background()
	var dbs [2]*DB
	for i := range dbs {
		dbs[i] = newDB()
	}
	const n = 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i, db := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 1; j <= n; j++ {
				_, err := db.UpdatePolicy(ctx, "acme", func(p *Policy) (PolicyChange, error) {
					if i == 0 {
						p.SampleBP++
					} else {
						p.DailyBudget += pricing.Dollars(1)
					}
					return PolicyChange{At: t0.Add(time.Duration(j) * time.Second), What: fmt.Sprint("edit ", i), Reason: "test"}, nil
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ps, _ := dbs[0].Policies(ctx)
	if p := ps["acme"]; p.SampleBP != n || p.DailyBudget != pricing.Dollars(n) {
		t.Fatalf("after %d edits each: %+v", n, p)
	}
	cs, _ := dbs[1].PolicyChanges(ctx, "acme")
	if len(cs) != 2*n {
		t.Fatalf("%d audit rows, want %d", len(cs), 2*n)
	}
	// An edit that fails stores nothing.
	_, err := dbs[0].UpdatePolicy(ctx, "acme", func(p *Policy) (PolicyChange, error) {
		p.Blocked = true
		return PolicyChange{}, errors.New("changed my mind")
	})
	if ps2, _ := dbs[0].Policies(ctx); err == nil || ps2["acme"].Blocked {
		t.Fatalf("a failed edit: %v %+v", err, ps2["acme"])
	}
}

// downgradeToV6 turns a ledger into what a v6 build wrote: no control
// tables.
func downgradeToV6(t *testing.T, db *DB) {
	t.Helper()
	for _, s := range append(downgradeV13Stmts(), "ALTER TABLE judge_cache DROP COLUMN cache_write_5m_tokens", "ALTER TABLE judge_cache DROP COLUMN cache_write_1h_tokens",
		"ALTER TABLE events DROP COLUMN status", "DROP TABLE budget_holds", "DROP TABLE budget_spent", "DROP TABLE batch_requests", "DROP TABLE batches", "DROP TABLE virtual_keys", "DROP TABLE policies", "DROP TABLE policy_audit", "PRAGMA user_version = 6") {
		if _, err := db.SQL().Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// A v6 ledger reads (read-only) as having no keys, policies or changes,
// and stays v6; writing migrates it to v7 with its events kept, and the
// control tables work.
func TestControlV6Ledger(t *testing.T) {
	ctx := context.Background()
	if SchemaVersion != 13 {
		t.Fatalf("schema version %d: this test downgrades v13 to v6", SchemaVersion)
	}
	path := filepath.Join(t.TempDir(), "old.db")
	w := writeLedger(t, path, []Event{
		ev("a", t0.Add(-90*time.Minute), "acme", "gpt-4o", pricing.Dollars(1)),
		ev("b", t0.Add(-30*time.Minute), "globex", "gpt-4o-mini", pricing.Dollars(2)),
	})
	want := readAll(t, w)
	downgradeToV6(t, w)
	w.Close()
	data, mtime := fileStamp(t, path)

	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, ro); got != want {
		t.Fatalf("v6 reads\n%s\nwant\n%s", got, want)
	}
	ps, err := ro.Policies(ctx)
	if err != nil || ps == nil || len(ps) != 0 {
		t.Fatalf("Policies on v6: %v %v", ps, err)
	}
	if ks, err := ro.ListKeys(ctx); err != nil || len(ks) != 0 {
		t.Fatalf("ListKeys on v6: %v %v", ks, err)
	}
	if cs, err := ro.PolicyChanges(ctx, ""); err != nil || len(cs) != 0 {
		t.Fatalf("PolicyChanges on v6: %v %v", cs, err)
	}
	if _, ok, err := ro.KeyByHash(ctx, HashKey("x")); ok || err != nil {
		t.Fatalf("KeyByHash on v6: %v %v", ok, err)
	}
	err = ro.SetPolicy(ctx, Policy{Tenant: "acme"}, PolicyChange{At: t0, What: "x", Reason: "r"})
	if want := "ledger " + path + " is open read-only: keys and policies change only through a ledger opened to write"; fmt.Sprint(err) != want {
		t.Fatalf("SetPolicy read-only: %v", err)
	}
	ro.Close()
	if d, m := fileStamp(t, path); d != data || !m.Equal(mtime) {
		t.Fatal("reading a v6 ledger changed it")
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	db.SQL().QueryRow("PRAGMA user_version").Scan(&v)
	if v != SchemaVersion {
		t.Fatalf("user_version %d after Open, want %d", v, SchemaVersion)
	}
	if got := readAll(t, db); got != want {
		t.Fatalf("after migrating\n%s\nwant\n%s", got, want)
	}
	if err := db.SetPolicy(ctx, Policy{Tenant: "acme", Blocked: true}, PolicyChange{At: t0, What: "block", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateKey(ctx, VirtualKey{Name: "k", Tenant: "acme", Hash: HashKey("s"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// A v7 ledger read-only sees them.
	ro, err = OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	ps, err = ro.Policies(ctx)
	if err != nil || !ps["acme"].Blocked {
		t.Fatalf("read-only v7 Policies: %+v %v", ps, err)
	}
	if k, ok, err := ro.KeyByHash(ctx, HashKey("s")); !ok || err != nil || k.Name != "k" {
		t.Fatalf("read-only v7 KeyByHash: %+v %v %v", k, ok, err)
	}
}

// The migration is idempotent over tables already there (a ledger whose
// user_version was set back by hand).
func TestControlMigrationRerun(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.SQL().Exec("PRAGMA user_version = 6")
	db.Close()
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, _ := sql.Open("sqlite", path)
	defer raw.Close()
	var v int
	if raw.QueryRow("PRAGMA user_version").Scan(&v); v != SchemaVersion {
		t.Fatalf("user_version %d", v)
	}
}
