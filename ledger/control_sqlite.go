package ledger

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/costctl/costctl/pricing"
)

// The SQLite store for Control (control.go): virtual keys, tenant policies
// and the policy audit trail, in the ledger file next to the spend they
// govern. Budgets are whole nano-dollars (pricing.Money), never floats;
// routes are a JSON object; times are Unix milliseconds, UTC.
//
// A ledger opened with OpenReadOnly that predates these tables (v6 or
// older) reads as having no keys, no policies and no changes.

var _ Control = (*DB)(nil)

// controlMigration (v7) adds the control tables. IF NOT EXISTS: a ledger
// whose user_version was set back by hand (or by a test) may have them.
const controlMigration = `
CREATE TABLE IF NOT EXISTS virtual_keys (
	id             INTEGER PRIMARY KEY,
	name           TEXT    NOT NULL UNIQUE,
	tenant         TEXT    NOT NULL,
	"user"         TEXT    NOT NULL DEFAULT '',
	hash           TEXT    NOT NULL UNIQUE,   -- hex SHA-256 of the secret; the secret is never stored
	created_ms     INTEGER NOT NULL,
	revoked_ms     INTEGER NOT NULL DEFAULT 0 -- 0: active
);

CREATE TABLE IF NOT EXISTS policies (
	tenant         TEXT    PRIMARY KEY,
	daily_nano     INTEGER NOT NULL DEFAULT 0 CHECK (daily_nano >= 0),   -- budget in nano-dollars, 0: none
	monthly_nano   INTEGER NOT NULL DEFAULT 0 CHECK (monthly_nano >= 0),
	blocked        INTEGER NOT NULL DEFAULT 0,
	sample_bp      INTEGER NOT NULL DEFAULT 0 CHECK (sample_bp BETWEEN 0 AND 10000),
	cache          INTEGER NOT NULL DEFAULT 0,
	routes         TEXT    NOT NULL DEFAULT '{}', -- JSON object: requested model → model served
	updated_ms     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS policy_audit (
	id             INTEGER PRIMARY KEY,
	at_ms          INTEGER NOT NULL,
	tenant         TEXT    NOT NULL,
	what           TEXT    NOT NULL,
	reason         TEXT    NOT NULL,
	who            TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS policy_audit_tenant ON policy_audit(tenant, id);
`

// Errors of the key store; wrapped with the key's name.
var (
	ErrNoKey      = errors.New("no such virtual key")
	ErrKeyExists  = errors.New("virtual key name already taken")
	ErrKeyRevoked = errors.New("virtual key already revoked")
)

// MaxSampleBP is a sample share of 100%.
const MaxSampleBP = 10_000

// HashKey is the hash stored for a virtual key's secret (the whole key a
// client sends, "ck-…"): hex SHA-256. KeyByHash takes it.
func HashKey(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func msOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func timeOfMS(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// hasControl reports whether the control tables are there: always on a
// ledger opened to write (Open migrates), not on an older ledger read as
// it is.
func (db *DB) hasControl(ctx context.Context) (bool, error) {
	if db.ro == nil {
		return true, nil
	}
	var n int
	err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('virtual_keys', 'policies', 'policy_audit')`).Scan(&n)
	return n == 3, err
}

// readControl runs fn, a read of the control tables, when the ledger has
// them (found false otherwise).
func (db *DB) readControl(ctx context.Context, fn func() error) (found bool, err error) {
	err = db.read(func() error {
		ok, err := db.hasControl(ctx)
		if err != nil || !ok {
			found = false
			return err
		}
		found = true
		return fn()
	})
	return found, err
}

// writable refuses writes to a ledger opened read-only, in words.
func (db *DB) writable() error {
	if db.readOnly {
		return fmt.Errorf("ledger %s is open read-only: keys and policies change only through a ledger opened to write", db.path)
	}
	return nil
}

// CreateKey stores k (Name, Tenant and Hash required; CreatedAt zero is
// not allowed either). A name already taken — by a revoked key too, names
// are never reused — is ErrKeyExists.
func (db *DB) CreateKey(ctx context.Context, k VirtualKey) error {
	if err := db.writable(); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(k.Name) == "":
		return errors.New("virtual key: empty name")
	case strings.TrimSpace(k.Tenant) == "":
		return fmt.Errorf("virtual key %q: empty tenant", k.Name)
	case !isSHA256Hex(k.Hash):
		return fmt.Errorf("virtual key %q: hash is not a hex SHA-256", k.Name)
	case k.CreatedAt.IsZero():
		return fmt.Errorf("virtual key %q: no creation time", k.Name)
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op after Commit; on every other path an error is being returned
	if err := db.lockTx(ctx, tx, "costctl_key:"+k.Name); err != nil {
		return err
	}
	var taken bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM virtual_keys WHERE name = ?)`, k.Name).Scan(&taken); err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("%w: %q", ErrKeyExists, k.Name)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO virtual_keys (name, tenant, "user", hash, created_ms, revoked_ms) VALUES (?, ?, ?, ?, ?, ?)`,
		k.Name, k.Tenant, k.User, strings.ToLower(k.Hash), msOf(k.CreatedAt), msOf(k.RevokedAt)); err != nil {
		return fmt.Errorf("virtual key %q: %w", k.Name, err)
	}
	return tx.Commit()
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

const keyCols = `name, tenant, "user", hash, created_ms, revoked_ms`

func scanKey(r scanner) (VirtualKey, error) {
	var k VirtualKey
	var created, revoked int64
	if err := r.Scan(&k.Name, &k.Tenant, &k.User, &k.Hash, &created, &revoked); err != nil {
		return VirtualKey{}, err
	}
	k.CreatedAt, k.RevokedAt = timeOfMS(created), timeOfMS(revoked)
	return k, nil
}

// KeyByHash returns the active key whose secret hashes to hash (HashKey).
// A revoked key is not found: to the proxy it is the same as an unknown
// one (ListKeys still shows it, with its RevokedAt).
func (db *DB) KeyByHash(ctx context.Context, hash string) (VirtualKey, bool, error) {
	var k VirtualKey
	var ok bool
	found, err := db.readControl(ctx, func() error {
		var err error
		k, err = scanKey(db.sql.QueryRowContext(ctx, `SELECT `+keyCols+` FROM virtual_keys WHERE hash = ? AND revoked_ms = 0`, strings.ToLower(hash)))
		ok = err == nil
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil || !found || !ok {
		return VirtualKey{}, false, err
	}
	return k, true, nil
}

// ListKeys returns every key, revoked ones too, in the order they were
// created.
func (db *DB) ListKeys(ctx context.Context) ([]VirtualKey, error) {
	var out []VirtualKey
	_, err := db.readControl(ctx, func() error {
		out = out[:0]
		rows, err := db.sql.QueryContext(ctx, `SELECT `+keyCols+` FROM virtual_keys ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close() // read-only; rows.Err() is checked below
		for rows.Next() {
			k, err := scanKey(rows)
			if err != nil {
				return err
			}
			out = append(out, k)
		}
		return rows.Err()
	})
	return out, err
}

// RevokeKey revokes the key named name as of at. An unknown name is
// ErrNoKey; a key already revoked keeps its first revocation time and is
// ErrKeyRevoked (its message says when).
func (db *DB) RevokeKey(ctx context.Context, name string, at time.Time) error {
	if err := db.writable(); err != nil {
		return err
	}
	if at.IsZero() {
		return fmt.Errorf("revoke virtual key %q: no time given", name)
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op after Commit; on every other path an error is being returned
	if err := db.lockTx(ctx, tx, "costctl_key:"+name); err != nil {
		return err
	}
	var revoked int64
	switch err := tx.QueryRowContext(ctx, `SELECT revoked_ms FROM virtual_keys WHERE name = ?`, name).Scan(&revoked); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w named %q", ErrNoKey, name)
	case err != nil:
		return err
	case revoked != 0:
		return fmt.Errorf("%w: %q was revoked at %s", ErrKeyRevoked, name, timeOfMS(revoked).Format(time.RFC3339))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE virtual_keys SET revoked_ms = ? WHERE name = ?`, msOf(at), name); err != nil {
		return err
	}
	return tx.Commit()
}

// validPolicy checks what the table's constraints would refuse, in words.
func validPolicy(p Policy) error {
	switch {
	case strings.TrimSpace(p.Tenant) == "":
		return errors.New("policy: empty tenant")
	case p.DailyBudget < 0:
		return fmt.Errorf("policy for %q: negative daily budget %s", p.Tenant, p.DailyBudget)
	case p.MonthlyBudget < 0:
		return fmt.Errorf("policy for %q: negative monthly budget %s", p.Tenant, p.MonthlyBudget)
	case p.SampleBP < 0 || p.SampleBP > MaxSampleBP:
		return fmt.Errorf("policy for %q: sample share %d bp is outside 0..%d", p.Tenant, p.SampleBP, MaxSampleBP)
	}
	if err := validSemantic(p); err != nil {
		return err
	}
	for from, to := range p.Routes {
		if strings.TrimSpace(from) == "" || strings.TrimSpace(to) == "" {
			return fmt.Errorf("policy for %q: route %q=%q needs both models", p.Tenant, from, to)
		}
	}
	return nil
}

func validChange(c PolicyChange) error {
	switch {
	case c.At.IsZero():
		return fmt.Errorf("policy change for %q: no time", c.Tenant)
	case strings.TrimSpace(c.What) == "":
		return fmt.Errorf("policy change for %q: says nothing about what changed", c.Tenant)
	case strings.TrimSpace(c.Reason) == "":
		return fmt.Errorf("policy change for %q: no reason", c.Tenant)
	}
	return nil
}

// SetPolicy stores p (replacing the tenant's policy) and its audit row
// change in one transaction. change.Tenant, when empty, is p.Tenant (and
// must be when given); p.UpdatedAt, when zero, is change.At. At, What and
// Reason are required.
func (db *DB) SetPolicy(ctx context.Context, p Policy, change PolicyChange) error {
	if err := db.writable(); err != nil {
		return err
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op after Commit; on every other path an error is being returned
	if err := setPolicyTx(ctx, tx, p, change); err != nil {
		return err
	}
	return tx.Commit()
}

func setPolicyTx(ctx context.Context, tx *sql.Tx, p Policy, change PolicyChange) error {
	if change.Tenant == "" {
		change.Tenant = p.Tenant
	}
	if change.Tenant != p.Tenant {
		return fmt.Errorf("policy for %q with a change for %q", p.Tenant, change.Tenant)
	}
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = change.At
	}
	semanticDefaults(&p)
	if err := validPolicy(p); err != nil {
		return err
	}
	if err := validChange(change); err != nil {
		return err
	}
	routes := p.Routes
	if routes == nil {
		routes = map[string]string{}
	}
	rj, err := json.Marshal(routes) // keys sorted: the same policy, the same text
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO policies (tenant, daily_nano, monthly_nano, blocked, sample_bp, cache, routes, updated_ms,
	semantic_cache, similarity_bp, semantic_ttl_ms, min_precision_bp, semantic_off)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(tenant) DO UPDATE SET daily_nano = excluded.daily_nano, monthly_nano = excluded.monthly_nano, blocked = excluded.blocked,
	sample_bp = excluded.sample_bp, cache = excluded.cache, routes = excluded.routes, updated_ms = excluded.updated_ms,
	semantic_cache = excluded.semantic_cache, similarity_bp = excluded.similarity_bp, semantic_ttl_ms = excluded.semantic_ttl_ms,
	min_precision_bp = excluded.min_precision_bp, semantic_off = excluded.semantic_off`,
		p.Tenant, int64(p.DailyBudget), int64(p.MonthlyBudget), p.Blocked, p.SampleBP, p.Cache, string(rj), msOf(p.UpdatedAt),
		b2i(p.SemanticCache), p.Similarity, p.SemanticTTL.Milliseconds(), p.MinPrecision, p.SemanticOff); err != nil {
		return fmt.Errorf("policy for %q: %w", p.Tenant, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO policy_audit (at_ms, tenant, what, reason, who) VALUES (?, ?, ?, ?, ?)`,
		msOf(change.At), change.Tenant, change.What, change.Reason, change.Who); err != nil {
		return fmt.Errorf("policy change for %q: %w", p.Tenant, err)
	}
	return nil
}

// UpdatePolicy is a read-modify-write of one tenant's policy in one
// transaction (no change another process makes meanwhile is lost): edit
// gets the stored policy (the zero Policy for tenant when there is none)
// to change in place and returns the audit row; the result is stored as
// SetPolicy stores it and returned. An error from edit stores nothing.
func (db *DB) UpdatePolicy(ctx context.Context, tenant string, edit func(p *Policy) (PolicyChange, error)) (Policy, error) {
	if err := db.writable(); err != nil {
		return Policy{}, err
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return Policy{}, err
	}
	defer tx.Rollback() // a no-op after Commit; on every other path an error is being returned
	if err := db.lockTx(ctx, tx, "costctl_policy:"+tenant); err != nil {
		return Policy{}, err
	}
	p, found, err := scanPolicy(tx.QueryRowContext(ctx, `SELECT `+db.policyCols()+` FROM policies WHERE tenant = ?`, tenant))
	if err != nil {
		return Policy{}, err
	}
	if !found {
		p = Policy{Tenant: tenant}
	}
	change, err := edit(&p)
	if err != nil {
		return Policy{}, err
	}
	p.Tenant, p.UpdatedAt = tenant, change.At
	if err := setPolicyTx(ctx, tx, p, change); err != nil {
		return Policy{}, err
	}
	if err := tx.Commit(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

const allPolicyCols = `tenant, daily_nano, monthly_nano, blocked, sample_bp, cache, routes, updated_ms,
	semantic_cache, similarity_bp, semantic_ttl_ms, min_precision_bp, semantic_off`

// policyCols is allPolicyCols for this ledger's schema: before v12 (read as
// it is) the semantic cache is off.
func (db *DB) policyCols() string {
	if db.noSemCols {
		return `tenant, daily_nano, monthly_nano, blocked, sample_bp, cache, routes, updated_ms, 0, 0, 0, 0, ''`
	}
	return allPolicyCols
}

// scanPolicy reads one policy row; found is false for no row.
func scanPolicy(r scanner) (p Policy, found bool, err error) {
	var daily, monthly, updated, sem, ttl int64
	var routes string
	err = r.Scan(&p.Tenant, &daily, &monthly, &p.Blocked, &p.SampleBP, &p.Cache, &routes, &updated,
		&sem, &p.Similarity, &ttl, &p.MinPrecision, &p.SemanticOff)
	if errors.Is(err, sql.ErrNoRows) {
		return Policy{}, false, nil
	}
	if err != nil {
		return Policy{}, false, err
	}
	p.DailyBudget, p.MonthlyBudget, p.UpdatedAt = pricing.Money(daily), pricing.Money(monthly), timeOfMS(updated)
	p.SemanticCache, p.SemanticTTL = sem != 0, time.Duration(ttl)*time.Millisecond
	if err := json.Unmarshal([]byte(routes), &p.Routes); err != nil {
		return Policy{}, false, fmt.Errorf("policy for %q: routes %q: %w", p.Tenant, routes, err)
	}
	if len(p.Routes) == 0 {
		p.Routes = nil
	}
	return p, true, nil
}

// Policies returns every tenant's policy by tenant (empty, not an error,
// on an older ledger read as it is).
func (db *DB) Policies(ctx context.Context) (map[string]Policy, error) {
	out := map[string]Policy{}
	_, err := db.readControl(ctx, func() error {
		clear(out)
		rows, err := db.sql.QueryContext(ctx, `SELECT `+db.policyCols()+` FROM policies`)
		if err != nil {
			return err
		}
		defer rows.Close() // read-only; rows.Err() is checked below
		for rows.Next() {
			p, _, err := scanPolicy(rows)
			if err != nil {
				return err
			}
			out[p.Tenant] = p
		}
		return rows.Err()
	})
	return out, err
}

// PolicyChanges returns the audit rows of tenant ("" = every tenant),
// oldest first.
func (db *DB) PolicyChanges(ctx context.Context, tenant string) ([]PolicyChange, error) {
	var out []PolicyChange
	_, err := db.readControl(ctx, func() error {
		out = out[:0]
		q, args := `SELECT at_ms, tenant, what, reason, who FROM policy_audit ORDER BY id`, []any(nil)
		if tenant != "" {
			q, args = `SELECT at_ms, tenant, what, reason, who FROM policy_audit WHERE tenant = ? ORDER BY id`, []any{tenant}
		}
		rows, err := db.sql.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close() // read-only; rows.Err() is checked below
		for rows.Next() {
			var c PolicyChange
			var at int64
			if err := rows.Scan(&at, &c.Tenant, &c.What, &c.Reason, &c.Who); err != nil {
				return err
			}
			c.At = timeOfMS(at)
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}
