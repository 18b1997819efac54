package ledger

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"sort"
	"time"

	"github.com/costctl/costctl/pricing"
)

// Budget holds: reservations against a budget that several processes share
// through one ledger (proxies on one PostgreSQL ledger, eval --shard
// workers). A process holds a request's worst case before it spends, and
// only if what the scope has spent, plus every live hold, plus this one
// stays within the cap; the check and the insert are one transaction,
// serialized per scope (SQLite: every write transaction is; PostgreSQL: an
// advisory lock on the scope), so however many processes reserve at once,
// the scope's spend never crosses its cap. A hold of a process that died
// expires after its TTL, and until then it keeps counting: the safe side.
//
// What a scope has spent is, for a tenant scope (Tenant set), the tenant's
// cost in the ledger over [From, To] (the rollups, kept in the same
// transaction as the events): a process commits its call's event, then
// releases the hold. For any other scope (eval shards) it is the spend
// released into budget_spent.

// holdsMigration is schema v11.
const holdsMigration = `
CREATE TABLE IF NOT EXISTS budget_holds (
	id             TEXT    PRIMARY KEY,
	scope          TEXT    NOT NULL,
	amount_dollars INTEGER NOT NULL DEFAULT 0,
	amount_pico    INTEGER NOT NULL DEFAULT 0,
	expires_ms     INTEGER NOT NULL,
	holder         TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS budget_holds_scope ON budget_holds(scope, expires_ms);
CREATE TABLE IF NOT EXISTS budget_spent (
	scope          TEXT    PRIMARY KEY,
	spent_dollars  INTEGER NOT NULL DEFAULT 0,
	spent_pico     INTEGER NOT NULL DEFAULT 0,
	updated_ms     INTEGER NOT NULL DEFAULT 0
);
`

// HoldRequest asks to hold Amount against Scope's Cap.
type HoldRequest struct {
	Scope  string
	Cap    pricing.Amount
	Amount pricing.Amount
	TTL    time.Duration // after which a hold its process never released stops counting
	Holder string        // who holds it (for people reading the table)
	Now    time.Time
	// A tenant scope's spend is the tenant's ledger cost over the UTC days
	// From to To (inclusive); without Tenant it is what was released into
	// the scope.
	Tenant   string
	From, To time.Time
}

// HoldState is a scope's spend and live holds when a hold was decided.
type HoldState struct {
	Spent, Held pricing.Amount
}

// Reserve holds r.Amount if the scope's spend plus its live holds plus
// r.Amount stays within r.Cap. It returns the hold's id ("" when refused)
// and the scope's state as it decided.
func (db *DB) Reserve(ctx context.Context, r HoldRequest) (id string, st HoldState, err error) {
	ids, sts, _, err := db.ReserveAll(ctx, []HoldRequest{r})
	if err != nil {
		return "", HoldState{}, err
	}
	return ids[0], sts[0], nil
}

// ReserveAll holds every request or none, in one transaction (a tenant's
// daily and monthly budgets: one round of locks and one commit instead of
// two). ids[i] is the hold of rs[i] and sts[i] its scope's state when it
// was decided; when a request does not fit, no hold is taken, every id is
// "" and refused is its index (else -1).
func (db *DB) ReserveAll(ctx context.Context, rs []HoldRequest) (ids []string, sts []HoldState, refused int, err error) {
	ids, sts, refused = make([]string, len(rs)), make([]HoldState, len(rs)), -1
	err = db.tx(ctx, "reserve budget", func(tx *sql.Tx) error {
		scopes := make([]string, len(rs))
		for i, r := range rs {
			scopes[i] = r.Scope
		}
		if err := db.lockScopes(ctx, tx, scopes); err != nil {
			return err
		}
		for i, r := range rs {
			var e error
			if sts[i], e = scopeState(ctx, tx, r); e != nil {
				return e
			}
			if sts[i].Spent.Add(sts[i].Held).Add(r.Amount).Cmp(r.Cap) > 0 {
				refused = i
				return nil // nothing inserted
			}
		}
		for i, r := range rs {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id := hex.EncodeToString(b[:])
			if _, e := tx.ExecContext(ctx, `INSERT INTO budget_holds (id, scope, amount_dollars, amount_pico, expires_ms, holder) VALUES (?,?,?,?,?,?)`,
				id, r.Scope, r.Amount.Dollars, r.Amount.Pico, r.Now.Add(r.TTL).UnixMilli(), r.Holder); e != nil {
				return e
			}
			ids[i] = id
		}
		return nil
	})
	if err != nil || refused >= 0 {
		for i := range ids {
			ids[i] = ""
		}
	}
	return ids, sts, refused, err
}

// scopeState reads a scope's spend and live holds inside tx.
func scopeState(ctx context.Context, tx *sql.Tx, r HoldRequest) (HoldState, error) {
	var st HoldState
	var d, p int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(amount_dollars), 0), COALESCE(SUM(amount_pico), 0) FROM budget_holds
		WHERE scope = ? AND expires_ms > ?`, r.Scope, r.Now.UnixMilli()).Scan(&d, &p); err != nil {
		return st, err
	}
	st.Held = amountOf(d, p)
	if r.Tenant != "" {
		from, to := floorDiv(r.From.UnixMilli(), 86_400_000), floorDiv(r.To.UnixMilli(), 86_400_000)
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(cost_dollars), 0), COALESCE(SUM(cost_pico), 0) FROM rollup_day
			WHERE dim = 'tenant' AND key = ? AND day >= ? AND day <= ?`, r.Tenant, from, to).Scan(&d, &p); err != nil {
			return st, err
		}
		st.Spent = amountOf(d, p)
		return st, nil
	}
	err := tx.QueryRowContext(ctx, `SELECT spent_dollars, spent_pico FROM budget_spent WHERE scope = ?`, r.Scope).Scan(&d, &p)
	switch {
	case err == sql.ErrNoRows:
		return st, nil
	case err != nil:
		return st, err
	}
	st.Spent = amountOf(d, p)
	return st, nil
}

// Release ends a hold; spent is added to the scope's released spend (for a
// tenant scope pass zero: the call's event already counts it).
func (db *DB) Release(ctx context.Context, scope, id string, spent pricing.Amount, now time.Time) error {
	return db.ReleaseAll(ctx, []HoldRelease{{Scope: scope, ID: id, Spent: spent}}, now)
}

// HoldRelease is one hold to end, with what its call spent.
type HoldRelease struct {
	Scope, ID string
	Spent     pricing.Amount
}

// ReleaseAll ends holds in one transaction.
func (db *DB) ReleaseAll(ctx context.Context, hs []HoldRelease, now time.Time) error {
	return db.tx(ctx, "release budget", func(tx *sql.Tx) error {
		if err := db.lazyCommit(ctx, tx); err != nil {
			return err
		}
		for _, h := range hs {
			if _, err := tx.ExecContext(ctx, `DELETE FROM budget_holds WHERE id = ?`, h.ID); err != nil {
				return err
			}
			if h.Spent.IsZero() {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO budget_spent (scope, spent_dollars, spent_pico, updated_ms) VALUES (?,?,?,?)
				ON CONFLICT (scope) DO UPDATE SET spent_dollars = budget_spent.spent_dollars + excluded.spent_dollars,
				spent_pico = budget_spent.spent_pico + excluded.spent_pico, updated_ms = excluded.updated_ms`,
				h.Scope, h.Spent.Dollars, h.Spent.Pico, now.UnixMilli()); err != nil {
				return err
			}
		}
		return nil
	})
}

// ScopeSpent is what a (non-tenant) scope has released and what it holds
// now.
func (db *DB) ScopeSpent(ctx context.Context, scope string, now time.Time) (HoldState, error) {
	var st HoldState
	err := db.tx(ctx, "read budget", func(tx *sql.Tx) error {
		var e error
		st, e = scopeState(ctx, tx, HoldRequest{Scope: scope, Now: now})
		return e
	})
	return st, err
}

// lockScopes serializes reservations of its scopes across processes. On
// SQLite every write transaction already holds the database's write lock
// (_txlock=immediate), so there is nothing more to take; on PostgreSQL it
// takes a transaction-scoped advisory lock on the scope.
//
// A hold's transaction also commits without waiting for the WAL to reach
// the disk (synchronous_commit off, PostgreSQL only): other processes see
// the hold at once, as with any commit; what a crash of the database
// server could lose is the holds of the last moments, which protect calls
// that were in flight then — the same exposure as a lost Redis. It turns
// two disk flushes per proxied call into none.
func (db *DB) lockScopes(ctx context.Context, tx *sql.Tx, scopes []string) error {
	if db.dialect != dialectPostgres {
		return nil
	}
	if err := db.lazyCommit(ctx, tx); err != nil {
		return err
	}
	// In one order on every process: no deadlock between two reservations
	// of the same scopes.
	sorted := append([]string(nil), scopes...)
	sort.Strings(sorted)
	for i, sc := range sorted {
		if i > 0 && sc == sorted[i-1] {
			continue
		}
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, "costctl_budget:"+sc); err != nil {
			return err
		}
	}
	return nil
}

// lazyCommit makes tx's commit return before its WAL is flushed
// (PostgreSQL; a no-op on SQLite).
func (db *DB) lazyCommit(ctx context.Context, tx *sql.Tx) error {
	if db.dialect != dialectPostgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`)
	return err
}
