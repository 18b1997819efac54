package ledger

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/costctl/costctl/internal/pgtest"
)

// A test of behaviour runs against both stores: forEachStore runs fn as
// subtests sqlite and postgres (the latter in a schema of its own, skipped
// when no server is reachable: internal/pgtest). open opens another handle
// on the subtest's ledger (closed when the subtest ends), so a test can
// play several processes.
func forEachStore(t *testing.T, fn func(t *testing.T, open func() *DB)) {
	t.Helper()
	for _, s := range []string{"sqlite", "postgres"} {
		t.Run(s, func(t *testing.T) {
			fn(t, storeOpener(t, s))
		})
	}
}

// storeDSN is a fresh ledger of the store ("sqlite" or "postgres").
func storeDSN(t testing.TB, store string) string {
	t.Helper()
	if store == "postgres" {
		return pgtest.DSN(t)
	}
	return filepath.Join(t.TempDir(), "l.db")
}

func storeOpener(t testing.TB, store string) func() *DB {
	dsn := storeDSN(t, store)
	return func() *DB {
		t.Helper()
		db, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
}

// openPG is a fresh PostgreSQL ledger (the test is skipped without a server).
func openPG(t testing.TB) *DB { return storeOpener(t, "postgres")() }
