package ledger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/stdlib"
)

// Two stores, one DB type.
//
// A ledger is an SQLite file (the embedded default) or a PostgreSQL
// database (a URL: postgres://, postgresql://). *DB is the same type for
// both; its dialect says which, and the few statements that differ ask it
// (the insert of events, INDEXED BY hints, the schema and its version).
// Everything else is written once, in SQL both accept: `?` placeholders
// (rewritten to $n for PostgreSQL by rebind, for every statement, at the
// driver: see pgConnector), "user" quoted, CASE instead of boolean sums,
// upserts whose SET names the table of the row it updates.

type dialect uint8

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// lockTx serializes transactions that name the same thing (a tenant's
// policy, a key) across processes: a read-modify-write in PostgreSQL's
// read committed transactions could otherwise lose a write. On SQLite
// every write transaction already holds the database's write lock.
func (db *DB) lockTx(ctx context.Context, tx *sql.Tx, name string) error {
	if db.dialect != dialectPostgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, name)
	return err
}

// indexedBy is SQLite's INDEXED BY hint (PostgreSQL's planner takes none).
func (db *DB) indexedBy(index string) string {
	if db.dialect == dialectPostgres {
		return ""
	}
	return "INDEXED BY " + index
}

// IsPostgresURL reports whether dsn names a PostgreSQL ledger
// (postgres:// or postgresql://) rather than an SQLite file.
func IsPostgresURL(dsn string) bool {
	l := strings.ToLower(dsn)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// RedactURL is dsn without its password, for messages and Name().
func RedactURL(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		// Unparseable: show the scheme and host part only, never what
		// might be a password.
		if i := strings.Index(dsn, "@"); i >= 0 {
			if j := strings.Index(dsn, "://"); j >= 0 && j < i {
				return dsn[:j+3] + "xxxxx" + dsn[i:]
			}
			return "xxxxx" + dsn[i:]
		}
		return dsn
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// rebind rewrites the `?` (and `?NNN`) placeholders of an SQLite statement
// as PostgreSQL's $n, leaving string literals, quoted identifiers and
// comments alone. It is the one rewrite every statement on PostgreSQL goes
// through (pgConn).
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch c {
		case '\'', '"':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c { // doubled quote inside
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(q) {
				j = len(q) - 1
			}
			b.WriteString(q[i : j+1])
			i = j
		case '-':
			if i+1 < len(q) && q[i+1] == '-' {
				j := strings.IndexByte(q[i:], '\n')
				if j < 0 {
					j = len(q) - i - 1
				}
				b.WriteString(q[i : i+j+1])
				i += j
				continue
			}
			b.WriteByte(c)
		case '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			b.WriteByte('$')
			if j > i+1 {
				b.WriteString(q[i+1 : j])
				i = j - 1
			} else {
				n++
				b.WriteString(itoa(n))
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return string(buf[i:])
}

// pgConnector opens pgx connections (database/sql, stdlib) whose
// statements are rebound and whose bool arguments are sent as integers
// (the ledger's flags are integer columns on both stores).
type pgConnector struct{ inner driver.Connector }

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		_ = conn.Close()
		return nil, errors.New("ledger: unexpected PostgreSQL driver connection")
	}
	return &pgConn{sc}, nil
}

func (c pgConnector) Driver() driver.Driver { return c.inner.Driver() }

// pgConn is a stdlib connection that rebinds every statement.
type pgConn struct{ *stdlib.Conn }

var (
	_ driver.ConnPrepareContext = (*pgConn)(nil)
	_ driver.ExecerContext      = (*pgConn)(nil)
	_ driver.QueryerContext     = (*pgConn)(nil)
	_ driver.NamedValueChecker  = (*pgConn)(nil)
	_ driver.ConnBeginTx        = (*pgConn)(nil)
	_ driver.SessionResetter    = (*pgConn)(nil)
	_ driver.Pinger             = (*pgConn)(nil)
)

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(context.Background(), rebind(query))
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(query))
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, rebind(query), args)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, rebind(query), args)
}

// CheckNamedValue sends a bool as 0 or 1: flags are integer columns.
func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error {
	if b, ok := nv.Value.(bool); ok {
		nv.Value = b2i(b)
	}
	return nil
}
