package ledger

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/costctl/costctl/pricing"
)

// A source at an older schema is refused with what to do (db copy reads it
// as it is and would miss columns); once migrated it copies, twice to no
// effect.
func TestCopyFromOlderSchema(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := writeLedger(t, filepath.Join(dir, "old.db"), []Event{ev("a", t0, "acme", "gpt-4o", pricing.Dollars(1))})
	if _, err := src.SQL().Exec("PRAGMA user_version = 11"); err != nil {
		t.Fatal(err)
	}
	dst, err := Open(ctx, filepath.Join(dir, "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	_, err = Copy(ctx, src, dst, nil)
	if err == nil || !strings.Contains(err.Error(), "is at schema version 11 and this costctl copies from version") || !strings.Contains(err.Error(), "db migrate") {
		t.Fatalf("older source: %v", err)
	}
	if _, err := src.SQL().Exec("PRAGMA user_version = " + itoa(SchemaVersion)); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{1, 0} {
		st, err := Copy(ctx, src, dst, nil)
		if err != nil || st.Events != 1 || st.EventsAdded != want {
			t.Fatalf("copy %d: %+v %v", i+1, st, err)
		}
	}
}
