// Package ledger is costctl's store: one SQLite file (modernc.org/sqlite,
// pure Go) holding the spend ledger that eval, ingest, top and report share,
// per-minute, per-hour and per-day rollups for fast live views and reports
// (query.go, report.go, livecache.go), and the exact judge
// cache used by eval.
//
// Every row of the ledger is an Event with a Source ("eval", "ingest", and
// later "proxy") and an idempotency key unique within the store, so the same
// usage is never counted twice. Money is stored as integer nano-dollars.
package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" driver
)

// IsBusy reports whether err is SQLite's "database is locked" (another
// connection holds the write lock longer than the busy timeout): worth
// retrying later, unlike other write errors.
func IsBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
	}
	// Another store (or a test's fake) says so by the error's Busy method.
	var b interface{ Busy() bool }
	if errors.As(err, &b) && b.Busy() {
		return true
	}
	return isPgBusy(err)
}

// DB is an open ledger: an SQLite file or a PostgreSQL database
// (dialect.go).
type DB struct {
	sql     *sql.DB
	path    string // the file, or the URL without its password
	dialect dialect
	// readOnly: opened with OpenReadOnly (either store).
	readOnly bool
	// ro is set when the ledger was opened with OpenReadOnly (readonly.go).
	ro *roConnector
	// noHitCols: the schema predates the rollups' cache-hit columns (v4)
	// and has no cache hits, so they read as 0 (only with OpenReadOnly).
	noHitCols bool
	// nanoCost: the schema predates exact costs (v5): rollups keep
	// cost_nano (only with OpenReadOnly).
	nanoCost bool
	// noKindCols: the schema predates the rollups' token-kind columns (v6).
	noKindCols bool
	// noSemCols: the schema predates the semantic cache columns (v12):
	// they read as 0, the policies as semantic cache off.
	noSemCols bool
}

// DefaultPath is where the ledger lives when neither --db nor COSTCTL_DB is
// given: $XDG_STATE_HOME/costctl/costctl.db, else ~/.local/state/costctl/costctl.db.
func DefaultPath(getenv func(string) string) (string, error) {
	if p := getenv("COSTCTL_DB"); p != "" {
		return p, nil
	}
	if s := getenv("XDG_STATE_HOME"); s != "" {
		return filepath.Join(s, "costctl", "costctl.db"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot find a home directory for the ledger; pass --db PATH or set COSTCTL_DB: %w", err)
		}
		home = h
	}
	return filepath.Join(home, ".local", "state", "costctl", "costctl.db"), nil
}

// Open opens (creating it 0600 if needed, in a 0700 directory) the ledger at
// path, in WAL mode with a busy timeout so several costctl processes can
// share it, and applies any pending schema migrations.
//
// path may be a PostgreSQL URL (postgres:// or postgresql://): then Open
// creates the schema in an empty database and refuses one older than this
// build (run costctl db migrate: Migrate) or newer.
func Open(ctx context.Context, path string) (*DB, error) {
	return OpenWith(ctx, path, OpenOptions{})
}

// OpenOptions tune Open.
type OpenOptions struct {
	// BusyTimeout is how long one statement waits for another process's
	// write lock before failing with "database is locked" (default 10 s).
	BusyTimeout time.Duration
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, o OpenOptions) (*DB, error) {
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 10 * time.Second
	}
	if path == "" {
		return nil, errors.New("ledger: empty database path")
	}
	if IsPostgresURL(path) {
		return openPostgres(ctx, path, false, o)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("ledger: create directory for %s: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	f.Close() // only created here, nothing written: SQLite opens it next
	dsn := "file:" + uriPath(path) + fmt.Sprintf("?_pragma=busy_timeout(%d)&", o.BusyTimeout.Milliseconds()) + "_pragma=journal_mode(WAL)&_pragma=foreign_keys(ON)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-8000)&_pragma=wal_autocheckpoint(10000)&_pragma=temp_store(MEMORY)&_txlock=immediate"
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	db := &DB{sql: sdb, path: path}
	if err := db.migrate(ctx); err != nil {
		sdb.Close() // the migration's error is returned
		return nil, fmt.Errorf("ledger: %s: %w", path, err)
	}
	// -wal and -shm files inherit the main file's mode in SQLite; make sure.
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); err == nil {
			_ = os.Chmod(path+suffix, 0o600)
		}
	}
	return db, nil
}

// Path is the file the ledger lives in (a PostgreSQL URL without its
// password).
func (db *DB) Path() string { return db.path }

// Name is how the ledger is shown to a person: its file (another store
// shows its URL, without credentials).
func (db *DB) Name() string { return db.path }

// IsPostgres reports whether the ledger is a PostgreSQL database.
func (db *DB) IsPostgres() bool { return db.dialect == dialectPostgres }

// SQL exposes the handle for packages that add their own queries.
func (db *DB) SQL() *sql.DB { return db.sql }

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// migrations[i]() brings the schema from user_version i to i+1 (built
// only when a ledger is migrated: most commands never need the text).
var migrations = []func() string{
	// v1: events, rollups, judge cache, runs.
	func() string {
		return `
CREATE TABLE events (
	id             INTEGER PRIMARY KEY,
	event_key      TEXT    NOT NULL UNIQUE,   -- idempotency key: source-scoped id or hash
	ts_ms          INTEGER NOT NULL,          -- Unix milliseconds, UTC
	source         TEXT    NOT NULL,          -- eval | ingest | proxy
	run_id         TEXT    NOT NULL DEFAULT '',
	tenant         TEXT    NOT NULL DEFAULT '',
	user           TEXT    NOT NULL DEFAULT '',
	endpoint       TEXT    NOT NULL DEFAULT '',
	metric         TEXT    NOT NULL DEFAULT '',
	model          TEXT    NOT NULL DEFAULT '',
	input_tokens   INTEGER NOT NULL DEFAULT 0, -- all prompt tokens, cached included
	cached_tokens  INTEGER NOT NULL DEFAULT 0,
	output_tokens  INTEGER NOT NULL DEFAULT 0,
	cost_nano      INTEGER NOT NULL DEFAULT 0, -- 0 when unpriced (see unpriced)
	avoided_nano   INTEGER NOT NULL DEFAULT 0, -- what a cache hit or skip saved
	unpriced       INTEGER NOT NULL DEFAULT 0,
	cache_hit      INTEGER NOT NULL DEFAULT 0,
	latency_ms     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_ts ON events(ts_ms);

-- One row per (bucket, dimension, key): the live view and burn rates read
-- these, never the events table. dim is tenant|model|user|endpoint|source|metric|all.
CREATE TABLE rollup_minute (
	minute         INTEGER NOT NULL,          -- Unix minutes
	dim            TEXT    NOT NULL,
	key            TEXT    NOT NULL,
	calls          INTEGER NOT NULL DEFAULT 0,
	input_tokens   INTEGER NOT NULL DEFAULT 0,
	cached_tokens  INTEGER NOT NULL DEFAULT 0,
	output_tokens  INTEGER NOT NULL DEFAULT 0,
	cost_nano      INTEGER NOT NULL DEFAULT 0,
	unpriced_calls INTEGER NOT NULL DEFAULT 0,
	cache_hits     INTEGER NOT NULL DEFAULT 0,
	latency_ms_sum INTEGER NOT NULL DEFAULT 0,
	latency_calls  INTEGER NOT NULL DEFAULT 0, -- calls with a known latency (latency_ms > 0)
	PRIMARY KEY (dim, minute, key)
) WITHOUT ROWID;

CREATE TABLE rollup_hour (
	hour           INTEGER NOT NULL,          -- Unix hours
	dim            TEXT    NOT NULL,
	key            TEXT    NOT NULL,
	calls          INTEGER NOT NULL DEFAULT 0,
	input_tokens   INTEGER NOT NULL DEFAULT 0,
	cached_tokens  INTEGER NOT NULL DEFAULT 0,
	output_tokens  INTEGER NOT NULL DEFAULT 0,
	cost_nano      INTEGER NOT NULL DEFAULT 0,
	unpriced_calls INTEGER NOT NULL DEFAULT 0,
	cache_hits     INTEGER NOT NULL DEFAULT 0,
	latency_ms_sum INTEGER NOT NULL DEFAULT 0,
	latency_calls  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (dim, hour, key)
) WITHOUT ROWID;

-- Whole UTC days, so week-long windows over many keys (users) stay cheap.
CREATE TABLE rollup_day (
	day            INTEGER NOT NULL,          -- Unix days (UTC)
	dim            TEXT    NOT NULL,
	key            TEXT    NOT NULL,
	calls          INTEGER NOT NULL DEFAULT 0,
	input_tokens   INTEGER NOT NULL DEFAULT 0,
	cached_tokens  INTEGER NOT NULL DEFAULT 0,
	output_tokens  INTEGER NOT NULL DEFAULT 0,
	cost_nano      INTEGER NOT NULL DEFAULT 0,
	unpriced_calls INTEGER NOT NULL DEFAULT 0,
	cache_hits     INTEGER NOT NULL DEFAULT 0,
	latency_ms_sum INTEGER NOT NULL DEFAULT 0,
	latency_calls  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (dim, day, key)
) WITHOUT ROWID;

-- Writes per UTC day: Insert bumps the days it touched, so a reader may
-- keep the sums of past days until they change (LiveCache).
CREATE TABLE rollup_epoch (
	day            INTEGER PRIMARY KEY,       -- Unix days (UTC)
	writes         INTEGER NOT NULL DEFAULT 0
);

-- Exact judge cache: key is a hash of everything that can change a result.
-- Prompt and response text only when the user asked (--store-text).
CREATE TABLE judge_cache (
	key            TEXT    PRIMARY KEY,
	metric         TEXT    NOT NULL,
	model          TEXT    NOT NULL,
	score          REAL    NOT NULL,
	reason         TEXT    NOT NULL DEFAULT '',
	input_tokens   INTEGER NOT NULL DEFAULT 0,
	cached_tokens  INTEGER NOT NULL DEFAULT 0,
	output_tokens  INTEGER NOT NULL DEFAULT 0,
	cost_nano      INTEGER NOT NULL DEFAULT 0,
	latency_ms     INTEGER NOT NULL DEFAULT 0,
	created_ms     INTEGER NOT NULL,
	request_text   TEXT,
	response_text  TEXT
) WITHOUT ROWID;

CREATE TABLE runs (
	id             TEXT    PRIMARY KEY,
	source         TEXT    NOT NULL,
	started_ms     INTEGER NOT NULL,
	finished_ms    INTEGER,
	status         TEXT    NOT NULL DEFAULT 'running',
	detail         TEXT    NOT NULL DEFAULT ''
);
`
	},
	// v2: why an event's cost is an estimate ('' = the server's usage × price;
	// no_usage, bad_usage, unsettled: see Event.Estimate).
	func() string {
		return `
ALTER TABLE events ADD COLUMN estimate TEXT NOT NULL DEFAULT '';
`
	},
	// v3: each kind of token stored apart (cache writes, reasoning), how the
	// call was billed (batch, service tier), and a hash of an ingested
	// event's content so a reused id with other content is a conflict.
	func() string {
		return `
ALTER TABLE events ADD COLUMN cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN batch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN service_tier TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN content_hash INTEGER NOT NULL DEFAULT 0;
`
	},
	// v4: the rollups keep cache hits' tokens and avoided cost apart, so
	// reads can count calls and tokens a provider billed (rollup_hits.go).
	hitRollupsMigration,
	// v5: exact costs (whole dollars + pico-dollars) in events and rollups;
	// the cache-hit rollup columns are kept by Insert (exact.go).
	costMigration,
	// v6: the rollups keep cache-write and reasoning tokens apart (exact.go).
	kindsMigration,
	// v7: what costctl proxy enforces: virtual keys, tenant policies and
	// their audit trail (control_sqlite.go).
	func() string { return controlMigration },
	// v8: the HTTP status a proxied call's client got.
	func() string { return "ALTER TABLE events ADD COLUMN status INTEGER NOT NULL DEFAULT 0;\n" },
	// v9: a cached verdict keeps the cache-write tokens its call paid for,
	// so what a reuse avoided is priced exactly.
	func() string {
		return "ALTER TABLE judge_cache ADD COLUMN cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0;\n" +
			"ALTER TABLE judge_cache ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0;\n"
	},
	// v10: Batch API submissions and their requests (batch.go).
	func() string { return batchMigration },
	// v11: budget holds shared by processes on one ledger (holds.go).
	func() string { return holdsMigration },
	// v12: semantic cache hits and embedding calls in events and rollups,
	// the tenants' semantic cache policy, verification results
	// (semantic.go).
	func() string { return semanticMigration(false) },
	// v13: the semantic cache's entries, shared by the proxies on a ledger
	// (semantic_store.go).
	func() string { return semanticEntriesMigration(false) },
}

// SchemaVersion is the schema version this build writes (SQLite's
// user_version; PostgreSQL's costctl_schema, whose migrations keep the
// same numbers: postgres.go).
var SchemaVersion = len(migrations)

func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close() // gives the connection back; the migration's Commit is checked
	var v int
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("not a costctl database (or unreadable): %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this costctl understands (%d); upgrade costctl", v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op after Commit; on every other path an error is being returned
	// Re-read inside the write transaction: another process may have migrated.
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	for i := v; i < len(migrations); i++ {
		for _, stmt := range splitSQL(migrations[i]()) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				if addsColumn(stmt) && strings.Contains(err.Error(), "duplicate column name") {
					continue // already there: a ledger whose user_version was set back by hand
				}
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return err
	}
	return tx.Commit()
}

// splitSQL cuts a migration into statements at ";\n", keeping a CREATE
// TRIGGER whole (its body's statements end with ";\n" too, up to END).
func splitSQL(s string) []string {
	var out []string
	inTrigger := false
	for _, part := range strings.Split(s, ";\n") {
		var lines []string
		for _, l := range strings.Split(part, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 {
			continue
		}
		stmt := strings.Join(lines, "\n")
		if inTrigger {
			out[len(out)-1] += ";\n" + stmt
		} else {
			out = append(out, stmt)
			inTrigger = strings.HasPrefix(strings.ToUpper(strings.TrimSpace(stmt)), "CREATE TRIGGER")
		}
		if inTrigger && strings.EqualFold(strings.TrimSpace(lines[len(lines)-1]), "END") {
			inTrigger = false
		}
	}
	return out
}

// addsColumn reports whether stmt is an ALTER TABLE ... ADD COLUMN, which a
// migration may find already done.
func addsColumn(stmt string) bool {
	u := strings.ToUpper(strings.Join(strings.Fields(stmt), " "))
	return strings.HasPrefix(u, "ALTER TABLE ") && strings.Contains(u, " ADD COLUMN ")
}
