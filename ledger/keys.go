package ledger

import (
	"context"
	"fmt"
	"strings"
)

// StoredKey is what the ledger holds under an idempotency key: enough for a
// writer whose event was skipped as a duplicate to tell a true duplicate
// (the same content) from a conflict (the key reused for other content).
type StoredKey struct {
	Tenant      string
	ContentHash int64 // 0 for rows written without one (eval, or before ledger v3)
}

// LookupKeys returns the stored tenant and content hash of each of keys that
// is in the ledger (keys not there are absent from the map). Rows are never
// rewritten, so what it returns for a key Insert skipped is what was there
// when Insert ran.
func (db *DB) LookupKeys(ctx context.Context, keys []string) (map[string]StoredKey, error) {
	out := make(map[string]StoredKey, len(keys))
	args := make([]any, 0, lookupChunk)
	for lo := 0; lo < len(keys); lo += lookupChunk {
		chunk := keys[lo:min(lo+lookupChunk, len(keys))]
		args = args[:0]
		for _, k := range chunk {
			args = append(args, k)
		}
		q := `SELECT event_key, tenant, content_hash FROM events WHERE event_key IN (?` + strings.Repeat(",?", len(chunk)-1) + `)`
		if err := db.scanKeys(ctx, q, args, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lookupChunk keys per query, well under SQLite's bound-parameter limit.
const lookupChunk = 500

func (db *DB) scanKeys(ctx context.Context, q string, args []any, out map[string]StoredKey) error {
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("ledger: look up keys: %w", err)
	}
	defer rows.Close() // read-only; rows.Err() is checked below
	for rows.Next() {
		var k string
		var s StoredKey
		if err := rows.Scan(&k, &s.Tenant, &s.ContentHash); err != nil {
			return fmt.Errorf("ledger: look up keys: %w", err)
		}
		out[k] = s
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ledger: look up keys: %w", err)
	}
	return nil
}

// HasKeyPrefix reports whether any event's key starts with prefix (a range
// scan of the key index: cheap on any ledger). prefix must not be empty
// nor end in byte 0xff.
func (db *DB) HasKeyPrefix(ctx context.Context, prefix string) (bool, error) {
	if prefix == "" || prefix[len(prefix)-1] == 0xff {
		return false, fmt.Errorf("ledger: HasKeyPrefix(%q): unsupported prefix", prefix)
	}
	upper := prefix[:len(prefix)-1] + string([]byte{prefix[len(prefix)-1] + 1})
	var found bool
	err := db.sql.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM events WHERE event_key >= ? AND event_key < ?)`, prefix, upper).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("ledger: look up key prefix: %w", err)
	}
	return found, nil
}
