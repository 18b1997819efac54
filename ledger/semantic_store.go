package ledger

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/costctl/costctl/pricing"
)

// The semantic cache's entries in the ledger (issue 16, --semantic-store
// ledger): every proxy on one ledger (an SQLite file or PostgreSQL) shares
// them without Redis. A row is one cached answer of a partition (the
// proxy's semcache.Partition), its normalised embedding as little-endian
// float32 bytes, the response as the proxy stores it, and when it was
// stored, last used and expires (0: never). PutSemantic bounds a partition
// to its least recently used; the proxy scans a partition's rows itself.
//
// The entries are a cache, not a record: db copy leaves them out (copy.go)
// and a ledger without them loses nothing but hits.

// semanticEntriesMigration is schema v13 for SQLite (pg false) or
// PostgreSQL. IF NOT EXISTS: a ledger whose version was set back by hand
// migrates again.
func semanticEntriesMigration(pg bool) string {
	integer, blob, text := "INTEGER", "BLOB", "TEXT"
	if pg {
		integer, blob, text = "BIGINT", "BYTEA", `TEXT COLLATE "C"`
	}
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS semantic_entries (
	id           %[3]s PRIMARY KEY,
	"partition"  %[3]s NOT NULL,
	tenant       %[3]s NOT NULL DEFAULT '',
	model        %[3]s NOT NULL DEFAULT '',
	"text"       %[3]s NOT NULL DEFAULT '',
	vector       %[2]s,
	response     %[2]s,
	created_ms   %[1]s NOT NULL DEFAULT 0,
	used_ms      %[1]s NOT NULL DEFAULT 0,
	expires_ms   %[1]s NOT NULL DEFAULT 0,
	cost_dollars %[1]s NOT NULL DEFAULT 0,
	cost_pico    %[1]s NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS semantic_entries_used ON semantic_entries("partition", used_ms);
`, integer, blob, text)
}

// SemanticEntry is one semantic cache entry as the ledger keeps it.
type SemanticEntry struct {
	ID        string
	Partition string
	Tenant    string
	Model     string
	Text      string
	Vector    []float32 // stored as given (the caller normalises)
	Response  []byte
	Created   time.Time
	Used      time.Time // last stored or touched (read only: PutSemantic and TouchSemantic set it)
	Expires   time.Time // zero: never (read only: PutSemantic sets it from its ttl)
	Cost      pricing.Amount
}

// PackVector is v as little-endian float32 bytes.
func PackVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// UnpackVector is the vector PackVector wrote.
func UnpackVector(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// PutSemantic stores e (replacing the entry with its ID), used at now and
// expiring ttl after e.Created (0: never); then, in the same transaction,
// drops the partition's expired entries and its least recently used beyond
// limit (0: unbounded).
func (db *DB) PutSemantic(ctx context.Context, e SemanticEntry, limit int, ttl time.Duration, now time.Time) error {
	if err := db.writable(); err != nil {
		return err
	}
	if e.ID == "" || e.Partition == "" {
		return errors.New("ledger: a semantic cache entry needs an id and a partition")
	}
	var expires int64
	if ttl > 0 {
		expires = e.Created.Add(ttl).UnixMilli()
	}
	resp := e.Response
	if resp == nil {
		resp = []byte{}
	}
	return db.tx(ctx, "store a semantic cache entry", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO semantic_entries (id, "partition", tenant, model, "text", vector, response,
			created_ms, used_ms, expires_ms, cost_dollars, cost_pico) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET "partition" = excluded."partition", tenant = excluded.tenant, model = excluded.model,
			"text" = excluded."text", vector = excluded.vector, response = excluded.response, created_ms = excluded.created_ms,
			used_ms = excluded.used_ms, expires_ms = excluded.expires_ms, cost_dollars = excluded.cost_dollars, cost_pico = excluded.cost_pico`,
			e.ID, e.Partition, e.Tenant, e.Model, e.Text, PackVector(e.Vector), resp,
			e.Created.UnixMilli(), now.UnixMilli(), expires, e.Cost.Dollars, e.Cost.Pico); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM semantic_entries WHERE "partition" = ? AND expires_ms > 0 AND expires_ms <= ?`,
			e.Partition, now.UnixMilli()); err != nil {
			return err
		}
		if limit <= 0 {
			return nil
		}
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM semantic_entries WHERE "partition" = ?`, e.Partition).Scan(&n); err != nil {
			return err
		}
		if n <= int64(limit) {
			return nil
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM semantic_entries WHERE id IN (SELECT id FROM semantic_entries
			WHERE "partition" = ? ORDER BY used_ms, id LIMIT ?)`, e.Partition, n-int64(limit))
		return err
	})
}

// SemanticTexts is the text of every entry of partition not expired at now
// (no vectors or answers: what a store needs to know which questions it
// holds).
func (db *DB) SemanticTexts(ctx context.Context, partition string, now time.Time) ([]string, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT "text" FROM semantic_entries WHERE "partition" = ? AND (expires_ms = 0 OR expires_ms > ?)`,
		partition, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("ledger: semantic cache entries: %w", err)
	}
	defer rows.Close() // read only; rows.Err is checked
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("ledger: semantic cache entries: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: semantic cache entries: %w", err)
	}
	return out, nil
}

// SemanticCandidates is every entry of partition not expired at now.
func (db *DB) SemanticCandidates(ctx context.Context, partition string, now time.Time) ([]SemanticEntry, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, tenant, model, "text", vector, response, created_ms, used_ms, expires_ms,
		cost_dollars, cost_pico FROM semantic_entries WHERE "partition" = ? AND (expires_ms = 0 OR expires_ms > ?)`,
		partition, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("ledger: semantic cache entries: %w", err)
	}
	defer rows.Close() // read only; rows.Err is checked
	var out []SemanticEntry
	for rows.Next() {
		e := SemanticEntry{Partition: partition}
		var vec []byte
		var created, used, expires int64
		if err := rows.Scan(&e.ID, &e.Tenant, &e.Model, &e.Text, &vec, &e.Response, &created, &used, &expires,
			&e.Cost.Dollars, &e.Cost.Pico); err != nil {
			return nil, fmt.Errorf("ledger: semantic cache entries: %w", err)
		}
		e.Vector = UnpackVector(vec)
		e.Created, e.Used = time.UnixMilli(created), time.UnixMilli(used)
		if expires != 0 {
			e.Expires = time.UnixMilli(expires)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: semantic cache entries: %w", err)
	}
	return out, nil
}

// TouchSemantic marks entry id as used at now; an entry dropped meanwhile
// is no error.
func (db *DB) TouchSemantic(ctx context.Context, id string, now time.Time) error {
	if err := db.writable(); err != nil {
		return err
	}
	if _, err := db.sql.ExecContext(ctx, `UPDATE semantic_entries SET used_ms = ? WHERE id = ?`, now.UnixMilli(), id); err != nil {
		return fmt.Errorf("ledger: touch a semantic cache entry: %w", err)
	}
	return nil
}
