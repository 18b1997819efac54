package ledger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// Reading never writes.
//
// OpenReadOnly is how report and top open the ledger: SQLite's mode=ro (and
// query_only), no journal_mode pragma, no migration, no table created. The
// ledger file's bytes and mtime stay as they were, and no -wal or -shm file
// is left behind that was not there before — so a 0444 ledger, one in a
// read-only directory, or someone else's file can be read safely.
//
// The ledger is in WAL mode, and SQLite reads a WAL database through its
// -wal and -shm files, creating them when they are missing (and leaving
// them, with the main file's mode, when the connection is read-only). So
// each connection looks first:
//
//   - a non-empty -wal with its -shm (a writer is running, or one crashed):
//     a plain mode=ro connection reads through them, as any SQLite reader
//     does, and sees what the writer commits;
//   - no -wal, or an empty one: every committed page is in the main file, so
//     the connection is opened immutable=1, which reads the main file alone
//     and creates nothing;
//   - a non-empty -wal without its -shm: reading it would create a -shm, so
//     OpenReadOnly refuses, saying how to recover.
//
// Connections are not pooled, so each read decides afresh: a live top sees
// a writer that starts after it. An immutable read that overlaps a writer
// starting and checkpointing could see pages change under it; DB.read
// notices (the main file or -wal changed while it read) and reads again.

// OpenReadOnly opens the ledger at path for reading only (report, top). A
// missing file, one that is not a costctl ledger, or a schema newer than
// this build are one-line errors. A schema older than this build is read
// as it is, without migrating it, when this build can read it exactly
// (see checkSchema); otherwise the error says how to upgrade it.
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	return OpenReadOnlyWith(ctx, path, OpenOptions{})
}

// OpenReadOnlyWith is OpenReadOnly with options (BusyTimeout: how long a
// read waits while a writer recovers the WAL).
func OpenReadOnlyWith(ctx context.Context, path string, o OpenOptions) (*DB, error) {
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 10 * time.Second
	}
	if path == "" {
		return nil, errors.New("ledger: empty database path")
	}
	if IsPostgresURL(path) {
		return openPostgres(ctx, path, true, o)
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("no ledger at %s", path)
	case err != nil:
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	case st.IsDir():
		return nil, fmt.Errorf("%s is a directory, not a costctl ledger: point --db or COSTCTL_DB at the ledger file", path)
	}
	base, err := sqlite.NewConnector("file::memory:")
	if err != nil {
		return nil, err
	}
	c := &roConnector{path: path, busyMS: o.BusyTimeout.Milliseconds(), drv: base.Driver()}
	sdb := sql.OpenDB(c)
	sdb.SetMaxIdleConns(0)
	db := &DB{sql: sdb, path: path, ro: c, readOnly: true}
	if err := db.read(func() error { return db.checkSchema(ctx) }); err != nil {
		sdb.Close() // read-only; the schema check's error is returned
		return nil, err
	}
	return db, nil
}

// checkSchema decides whether this build can read the ledger as it is.
func (db *DB) checkSchema(ctx context.Context) error {
	path := db.path
	var v int
	if err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return db.openError(err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("ledger %s has schema version %d, newer than this costctl reads (%d): upgrade costctl", path, v, SchemaVersion)
	}
	tables := map[string]bool{}
	rows, err := db.sql.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		return db.openError(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close() // read-only; the scan error is returned
			return db.openError(err)
		}
		tables[n] = true
	}
	rows.Close() // read-only; rows.Err() is checked next
	if err := rows.Err(); err != nil {
		return db.openError(err)
	}
	for _, t := range []string{"events", "rollup_minute", "rollup_hour", "rollup_day", "rollup_epoch"} {
		if !tables[t] {
			why := "no " + t + " table"
			if len(tables) == 0 {
				why = "an empty database"
			}
			return fmt.Errorf("%s is not a costctl ledger (%s): point --db or COSTCTL_DB at the ledger that ingest or eval writes", path, why)
		}
	}
	// Before v5 costs are nano-dollars (exact.go): read them as such.
	var exact int
	if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('rollup_day') WHERE name = 'cost_dollars'`).Scan(&exact); err != nil {
		return db.openError(err)
	}
	db.nanoCost = exact == 0
	// Before v6 the rollups do not keep cache writes and reasoning apart:
	// they read as 0 until a write command upgrades the ledger.
	var kinds int
	if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('rollup_day') WHERE name = 'reasoning_tokens'`).Scan(&kinds); err != nil {
		return db.openError(err)
	}
	db.noKindCols = kinds == 0
	// Before v12 there are no semantic cache hits nor embedding columns:
	// they read as 0, and every policy as semantic cache off.
	var sem int
	if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('rollup_day') WHERE name = 'semantic_hits'`).Scan(&sem); err != nil {
		return db.openError(err)
	}
	db.noSemCols = sem == 0
	// Before v4 the rollups have no cache-hit columns (rollup_hits.go).
	// Without any cache hit in the ledger they are all 0, and the ledger
	// reads exactly as a migrated one; with some, calls and tokens cannot
	// be told from cache hits without migrating.
	for _, l := range rollupLevels {
		var n int
		if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name IN ('hit_input_tokens', 'hit_cached_tokens', 'hit_output_tokens', 'avoided_nano')`,
			l.table).Scan(&n); err != nil {
			return db.openError(err)
		}
		if n == len(hitCols) {
			continue
		}
		var hits bool
		if err := db.sql.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM rollup_day WHERE dim = 'all' AND cache_hits != 0)`).Scan(&hits); err != nil {
			return db.openError(err)
		}
		if hits {
			return fmt.Errorf("ledger %s has schema version %d, which counts eval cache hits as calls; report and top never write, so upgrade it once with any command that writes (costctl --db %s ingest /dev/null), then run this again",
				path, v, path)
		}
		db.noHitCols = true
		break
	}
	return nil
}

// openError turns SQLite's answer to a first read into one line.
func (db *DB) openError(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == 26 { // SQLITE_NOTADB
		return fmt.Errorf("%s is not a costctl ledger (not an SQLite database): point --db or COSTCTL_DB at the ledger that ingest or eval writes", db.path)
	}
	var ce *checkError
	if errors.As(err, &ce) {
		return ce
	}
	return fmt.Errorf("ledger %s: %w", db.path, err)
}

// checkError is a refusal from the connector, already one line.
type checkError struct{ msg string }

func (e *checkError) Error() string { return e.msg }

// roConnector opens each read-only connection as the files on disk allow
// (see the comment at the top of this file).
type roConnector struct {
	path   string
	busyMS int64
	drv    driver.Driver
}

func (c *roConnector) Driver() driver.Driver { return c.drv }

func (c *roConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dsn, err := c.dsn()
	if err != nil {
		return nil, err
	}
	conn, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return conn.Connect(ctx)
}

// dsn is the connection string for the ledger as it is now.
func (c *roConnector) dsn() (string, error) {
	base := "file:" + uriPath(c.path) + fmt.Sprintf("?mode=ro&_pragma=busy_timeout(%d)&_pragma=query_only(1)", c.busyMS)
	for try := 0; ; try++ {
		if fileSize(c.path+"-wal") <= 0 {
			return base + "&immutable=1", nil
		}
		if _, err := os.Stat(c.path + "-shm"); err == nil {
			return base, nil
		}
		// A writer closing removes its -shm just before its (by then
		// checkpointed) -wal: look again before refusing.
		if try == 3 {
			return "", &checkError{fmt.Sprintf("ledger %s has a write-ahead log (%s-wal) but no %s-shm, and reading it would create one: "+
				"recover it once with any command that writes (costctl --db %s ingest /dev/null), then run this again", c.path, c.path, c.path, c.path)}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fileState is what a checkpoint changes: the main file and the -wal.
type fileState struct {
	size, wal int64
	mtime     time.Time
}

func (c *roConnector) state() fileState {
	s := fileState{size: -1, wal: fileSize(c.path + "-wal")}
	if st, err := os.Stat(c.path); err == nil {
		s.size, s.mtime = st.Size(), st.ModTime()
	}
	return s
}

// readRetries is how often read tries again when the file changed under
// an immutable read.
const readRetries = 3

// read runs fn, one read of the ledger. On a read-only ledger read without
// a -wal (immutable connections) it checks that neither the main file nor
// the -wal changed meanwhile — a writer that started and checkpointed could
// have changed pages under fn — and runs fn again if they did (by then
// the writer's -wal is there and is read through). fn must start afresh
// each time.
func (db *DB) read(fn func() error) error {
	if db.ro == nil {
		return fn()
	}
	for try := 1; ; try++ {
		before := db.ro.state()
		err := fn()
		if before.wal > 0 {
			return err // read through the WAL: SQLite keeps the snapshot consistent
		}
		if db.ro.state() == before {
			return err
		}
		if try == readRetries {
			return fmt.Errorf("ledger %s kept changing while it was read; run this again", db.path)
		}
	}
}

// fileSize is the size of the file at p, -1 when there is none.
func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return -1
	}
	return st.Size()
}

// uriPath escapes the characters an SQLite URI filename gives a meaning.
func uriPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}
