package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/pricing"
)

// files lists a directory: name → size, mode (the -wal/-shm a reader must
// not leave behind show up here).
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range es {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fmt.Sprintf("%d %v", fi.Size(), fi.Mode())
	}
	return out
}

// fileStamp is a file's bytes and mtime.
func fileStamp(t *testing.T, p string) (string, time.Time) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), st.ModTime()
}

// readAll runs every read report and top do and returns what they said.
func readAll(t *testing.T, db *DB) string {
	t.Helper()
	ctx := context.Background()
	now := t0.Add(time.Hour)
	tot, err := db.Totals(ctx, t0.Add(-24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	since, err := db.TotalsSince(ctx, t0.Add(-24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	g, err := db.GroupedSince(ctx, "tenant", t0.Add(-24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	cached, err := db.NewLiveCache().GroupedSince(ctx, "tenant", t0.Add(-24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	series, err := db.MinuteSeries(ctx, now, 90)
	if err != nil {
		t.Fatal(err)
	}
	var calls int64
	for _, s := range series {
		calls += s.Calls
	}
	rep, err := db.Report(ctx, ReportQuery{By: []string{"tenant", "model"}, Start: t0.Add(-24 * time.Hour), End: now, Loc: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%+v\n%+v\n%+v\n%+v\nseries calls %d\n%+v", tot, since, sortedRows(g), sortedRows(cached), calls, rep)
}

func writeLedger(t *testing.T, path string, evs []Event) *DB {
	t.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Insert(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return db
}

// report and top read a ledger without changing it, whatever state its
// files are in: its bytes and mtime stay, and no -wal/-shm is left that
// was not there. (Tests run as root, which file modes do not stop; what
// shows the reader is read-only is that nothing changed.)
func TestOpenReadOnlyChangesNothing(t *testing.T) {
	ctx := context.Background()
	evs := []Event{
		ev("a", t0.Add(-90*time.Minute), "acme", "gpt-4o", pricing.Dollars(1)),
		ev("b", t0.Add(-30*time.Minute), "globex", "gpt-4o-mini", pricing.Dollars(2)),
	}
	for _, tc := range []struct {
		name     string
		writer   bool        // a writer keeps the ledger open (its -wal and -shm exist)
		fileMode os.FileMode // 0: leave as created (0600)
		dirMode  os.FileMode
	}{
		{name: "checkpointed, no -wal or -shm"},
		{name: "file 0444", fileMode: 0o444},
		{name: "read-only directory", fileMode: 0o444, dirMode: 0o555},
		{name: "writer open: -wal and -shm", writer: true},
		{name: "writer open, file 0444", writer: true, fileMode: 0o444},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "l.db")
			w := writeLedger(t, path, evs)
			want := readAll(t, w)
			if !tc.writer {
				w.Close()
			} else {
				defer w.Close()
			}
			if tc.fileMode != 0 {
				os.Chmod(path, tc.fileMode)
			}
			if tc.dirMode != 0 {
				os.Chmod(dir, tc.dirMode)
				defer os.Chmod(dir, 0o700)
			}
			before := files(t, dir)
			if _, ok := before["l.db-wal"]; ok != tc.writer {
				t.Fatalf("setup: files %v", before)
			}
			data, mtime := fileStamp(t, path)
			time.Sleep(10 * time.Millisecond) // an mtime change would show

			db, err := OpenReadOnly(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			// Through the writer's WAL when there is one, else the main file alone.
			if dsn, _ := db.ro.dsn(); strings.Contains(dsn, "immutable=1") == tc.writer {
				t.Fatalf("dsn %s with a writer %v", dsn, tc.writer)
			}
			if got := readAll(t, db); got != want {
				t.Fatalf("read-only reads\n%s\nwant\n%s", got, want)
			}
			if _, err := db.Insert(ctx, []Event{ev("c", t0, "x", "gpt-4o", 1)}); err == nil {
				t.Fatal("a read-only ledger accepted an insert")
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			d2, m2 := fileStamp(t, path)
			if d2 != data || !m2.Equal(mtime) {
				t.Fatalf("the ledger changed: %d → %d bytes, mtime %s → %s", len(data), len(d2), mtime, m2)
			}
			if tc.writer {
				return // the writer's -wal/-shm may grow; it owns them
			}
			if after := files(t, dir); !reflect.DeepEqual(after, before) {
				t.Fatalf("files before %v, after %v", before, after)
			}
		})
	}
}

// A reader sees what a writer commits: one already running, and one that
// starts after the reader opened the ledger (top runs for hours).
func TestOpenReadOnlySeesWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	w := writeLedger(t, path, []Event{ev("a", t0.Add(-time.Minute), "acme", "gpt-4o", pricing.Dollars(1))})
	w.Close() // no -wal: the reader starts on the main file alone
	db, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	calls := func() int64 {
		t.Helper()
		tot, err := db.TotalsSince(ctx, t0.Add(-time.Hour), t0)
		if err != nil {
			t.Fatal(err)
		}
		return tot.Calls
	}
	if n := calls(); n != 1 {
		t.Fatalf("calls %d, want 1", n)
	}
	w = writeLedger(t, path, []Event{ev("b", t0.Add(-time.Minute), "acme", "gpt-4o", pricing.Dollars(1))})
	if n := calls(); n != 2 {
		t.Fatalf("after a writer started: calls %d, want 2", n)
	}
	if _, err := w.Insert(ctx, []Event{ev("c", t0.Add(-time.Minute), "acme", "gpt-4o", pricing.Dollars(1))}); err != nil {
		t.Fatal(err)
	}
	if n := calls(); n != 3 {
		t.Fatalf("while the writer runs: calls %d, want 3", n)
	}
	w.Close()
	if n := calls(); n != 3 {
		t.Fatalf("after the writer closed: calls %d, want 3", n)
	}
}

// What OpenReadOnly refuses, each on one line.
func TestOpenReadOnlyRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	os.WriteFile(p("text.db"), []byte("not a database, just some text that is long enough to have a header\n"), 0o600)
	os.WriteFile(p("empty.db"), nil, 0o600)
	os.Mkdir(p("dir.db"), 0o700)
	raw := func(name string, stmts ...string) {
		db, err := sql.Open("sqlite", "file:"+p(name))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	raw("other.db", "CREATE TABLE notes (x)")
	w := writeLedger(t, p("newer.db"), nil)
	w.SQL().Exec("PRAGMA user_version = 99")
	w.Close()
	// A v3 ledger (before the rollups kept cache hits apart) holding one.
	hit := ev("h", t0, "acme", "gpt-4o", 0)
	hit.CacheHit, hit.Avoided = true, pricing.Dollars(1)
	w = writeLedger(t, p("v3hits.db"), []Event{hit})
	downgradeToV3(t, w)
	w.Close()
	// A -wal with committed pages but no -shm (someone deleted it).
	w = writeLedger(t, p("noshm.db"), nil)
	w.SQL().Exec("PRAGMA wal_autocheckpoint = 0")
	w.Insert(ctx, []Event{ev("a", t0, "acme", "gpt-4o", 1)})
	wal, err := os.ReadFile(p("noshm.db") + "-wal")
	if err != nil || len(wal) == 0 {
		t.Fatalf("setup: -wal %d bytes, %v", len(wal), err)
	}
	w.Close()
	os.WriteFile(p("noshm.db")+"-wal", wal, 0o600)
	os.Remove(p("noshm.db") + "-shm")

	for _, tc := range []struct{ name, want string }{
		{"missing.db", "no ledger at " + p("missing.db")},
		{"dir.db", p("dir.db") + " is a directory, not a costctl ledger: point --db or COSTCTL_DB at the ledger file"},
		{"text.db", p("text.db") + " is not a costctl ledger (not an SQLite database): point --db or COSTCTL_DB at the ledger that ingest or eval writes"},
		{"empty.db", p("empty.db") + " is not a costctl ledger (an empty database): point --db or COSTCTL_DB at the ledger that ingest or eval writes"},
		{"other.db", p("other.db") + " is not a costctl ledger (no events table): point --db or COSTCTL_DB at the ledger that ingest or eval writes"},
		{"newer.db", fmt.Sprintf("ledger %s has schema version 99, newer than this costctl reads (%d): upgrade costctl", p("newer.db"), SchemaVersion)},
		{"v3hits.db", fmt.Sprintf("ledger %s has schema version 3, which counts eval cache hits as calls; report and top never write, so upgrade it once with any command that writes (costctl --db %s ingest /dev/null), then run this again", p("v3hits.db"), p("v3hits.db"))},
		{"noshm.db", fmt.Sprintf("ledger %[1]s has a write-ahead log (%[1]s-wal) but no %[1]s-shm, and reading it would create one: recover it once with any command that writes (costctl --db %[1]s ingest /dev/null), then run this again", p("noshm.db"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := files(t, dir)
			db, err := OpenReadOnly(ctx, p(tc.name))
			if err == nil {
				db.Close()
				t.Fatal("opened")
			}
			if err.Error() != tc.want {
				t.Fatalf("error\n%s\nwant\n%s", err, tc.want)
			}
			if after := files(t, dir); !reflect.DeepEqual(after, before) {
				t.Fatalf("files before %v, after %v", before, after)
			}
		})
	}
	// The advice works: a write migrates, and then it reads.
	w, err = Open(ctx, p("v3hits.db"))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	db, err := OpenReadOnly(ctx, p("v3hits.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tot, err := db.TotalsSince(ctx, t0.Add(-time.Hour), t0)
	if err != nil || tot.Calls != 0 || tot.CacheHits != 1 || tot.InputTokens != 0 || tot.AvoidedInputTokens != 100 || tot.Avoided != usd(pricing.Dollars(1)) {
		t.Fatalf("after upgrading: %+v %v", tot, err)
	}
}

// downgradeToV3 turns a ledger into what a v3 build wrote: the same events
// and rollups (Insert has not changed), without migration v4's columns and
// trigger.
func downgradeToV3(t *testing.T, db *DB) { downgrade(t, db, 3) }

// downgrade turns a ledger into what a build of schema version v wrote.
func downgrade(t *testing.T, db *DB, v int) {
	t.Helper()
	// v9 → v8: no cache-write tokens in the judge cache; v8 → v7: no
	// status column; v7 → v6: no control tables (they are harmless to a
	// v6 reader and left).
	stmts := append(downgradeV13Stmts(), "ALTER TABLE judge_cache DROP COLUMN cache_write_5m_tokens", "ALTER TABLE judge_cache DROP COLUMN cache_write_1h_tokens",
		"ALTER TABLE events DROP COLUMN status")
	// v6 → v5: no token kinds in the rollups.
	for _, l := range rollupLevels {
		for _, c := range kindCols {
			stmts = append(stmts, "ALTER TABLE "+l.table+" DROP COLUMN "+c)
		}
	}
	// v5 → v4: nano-dollar costs in the rollups, no exact cost columns.
	for _, l := range rollupLevels {
		stmts = append(stmts, "ALTER TABLE "+l.table+" ADD COLUMN cost_nano INTEGER NOT NULL DEFAULT 0",
			"UPDATE "+l.table+" SET cost_nano = cost_dollars * 1000000000 + cost_pico / 1000",
			"ALTER TABLE "+l.table+" DROP COLUMN cost_dollars", "ALTER TABLE "+l.table+" DROP COLUMN cost_pico")
	}
	// (this build leaves events.cost_nano 0; a v4 build wrote it)
	stmts = append(stmts, "UPDATE events SET cost_nano = cost_dollars * 1000000000 + cost_pico / 1000",
		"ALTER TABLE events DROP COLUMN cost_dollars", "ALTER TABLE events DROP COLUMN cost_pico")
	for _, l := range rollupLevels {
		for _, c := range hitCols {
			stmts = append(stmts, "ALTER TABLE "+l.table+" DROP COLUMN "+c.col)
		}
	}
	if v < 3 {
		for _, c := range []string{"cache_write_5m_tokens", "cache_write_1h_tokens", "reasoning_tokens", "batch", "service_tier", "content_hash"} {
			stmts = append(stmts, "ALTER TABLE events DROP COLUMN "+c)
		}
	}
	if v < 2 {
		stmts = append(stmts, "ALTER TABLE events DROP COLUMN estimate")
	}
	stmts = append(stmts, fmt.Sprintf("PRAGMA user_version = %d", v))
	for _, s := range stmts {
		if _, err := db.SQL().Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// A ledger older than this build without cache hits reads as it is — the
// v2/v3 event columns missing too: the same answers as after migrating, and
// the file stays at its version.
func TestOpenReadOnlyOlderSchema(t *testing.T) {
	ctx := context.Background()
	for _, v := range []int{1, 2, 3} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "old.db")
			evs := []Event{
				ev("a", t0.Add(-90*time.Minute), "acme", "gpt-4o", pricing.Dollars(1)),
				ev("b", t0.Add(-30*time.Minute), "globex", "gpt-4o-mini", pricing.Dollars(2)),
			}
			w := writeLedger(t, path, evs)
			want := readAll(t, w)
			downgrade(t, w, v)
			w.Close()
			data, mtime := fileStamp(t, path)
			db, err := OpenReadOnly(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if !db.noHitCols {
				t.Fatal("an old ledger has no hit columns")
			}
			if got := readAll(t, db); got != want {
				t.Fatalf("v%d reads\n%s\nwant\n%s", v, got, want)
			}
			db.Close()
			if d, m := fileStamp(t, path); d != data || !m.Equal(mtime) {
				t.Fatal("reading an old ledger changed it")
			}
			var got int
			raw, _ := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
			defer raw.Close()
			if raw.QueryRow("PRAGMA user_version").Scan(&got); got != v {
				t.Fatalf("user_version %d, want %d (not migrated)", got, v)
			}
			// Any write migrates it, keeping the events.
			w, err = Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if got := readAll(t, w); got != want {
				t.Fatalf("after migrating v%d\n%s\nwant\n%s", v, got, want)
			}
		})
	}
}

// An immutable read (no -wal) that the file changes under is read again;
// one whose file keeps changing is an error.
func TestReadRetriesWhenTheFileChanges(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	writeLedger(t, path, nil).Close()
	db, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	touch := func() {
		st, _ := os.Stat(path)
		if err := os.Chtimes(path, time.Now(), st.ModTime().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		changes int // reads during which the file changes
		calls   int
		err     string
	}{
		{"stable", 0, 1, ""},
		{"changed once", 1, 2, ""},
		{"changed twice", 2, 3, ""},
		{"keeps changing", 100, readRetries, "ledger " + path + " kept changing while it was read; run this again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := db.read(func() error {
				calls++
				if calls <= tc.changes {
					touch()
				}
				return nil
			})
			if calls != tc.calls || fmt.Sprint(err) != map[bool]string{true: "<nil>", false: tc.err}[tc.err == ""] {
				t.Fatalf("%d calls, err %v; want %d, %q", calls, err, tc.calls, tc.err)
			}
		})
	}
}

// Paths with characters an SQLite URI gives a meaning are opened as named.
func TestOpenReadOnlyURIPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b#c%d")
	os.Mkdir(dir, 0o700)
	path := filepath.Join(dir, "l.db")
	writeLedger(t, path, []Event{ev("a", t0.Add(-time.Minute), "acme", "gpt-4o", 1)}).Close()
	db, err := OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tot, err := db.TotalsSince(context.Background(), t0.Add(-time.Hour), t0)
	if err != nil || tot.Calls != 1 {
		t.Fatalf("%+v %v", tot, err)
	}
	names := []string{}
	for n := range files(t, dir) {
		names = append(names, n)
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "l.db" {
		t.Fatalf("files %v", names)
	}
}
