// Package pgtest gives a test its own PostgreSQL schema.
//
// The server is COSTCTL_TEST_POSTGRES (default
// postgres://root@127.0.0.1:5432/test?sslmode=disable). Each call to DSN
// creates a schema t_<random>, returns the server's URL with
// search_path=t_<random> (pgx sends it as a run-time parameter, so every
// connection of the test works in that schema) and drops the schema when
// the test ends. A server that cannot be reached skips the test with the
// reason, unless COSTCTL_REQUIRE_SERVICES=1: then the test fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the server tests use when COSTCTL_TEST_POSTGRES is unset.
const DefaultURL = "postgres://root@127.0.0.1:5432/test?sslmode=disable"

// URL is the server tests use.
func URL() string {
	if u := os.Getenv("COSTCTL_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultURL
}

// DSN returns the URL of a fresh, empty schema of the test server, dropped
// when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	base := URL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unreachable(t, base, err)
	}
	defer func() { _ = conn.Close(context.Background()) }() // only the schema was created, and checked
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer func() { _ = c.Close(context.Background()) }() // the DROP's error is checked
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: COSTCTL_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// unreachable skips t, or fails it when services are required.
func unreachable(t testing.TB, base string, err error) {
	t.Helper()
	shown := base
	if u, perr := url.Parse(base); perr == nil {
		shown = u.Redacted()
	}
	if os.Getenv("COSTCTL_REQUIRE_SERVICES") == "1" {
		t.Fatalf("PostgreSQL unreachable at %s: %v (COSTCTL_REQUIRE_SERVICES=1)", shown, err)
	}
	t.Skipf("PostgreSQL unreachable at %s: %v", shown, err)
}
