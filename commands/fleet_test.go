package commands

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/internal/pgtest"
	"github.com/costctl/costctl/ledger"
)

// runIn runs a costctl command in-process against the ledger db (a file or
// a postgres:// URL) at testNow and returns stdout; a non-zero exit fails.
func runIn(t *testing.T, db string, args ...string) string {
	t.Helper()
	tio := newTestIO("")
	if code := Run(context.Background(), testFactory(tio, db), args); code != 0 {
		t.Fatalf("costctl %s: exit %d: %s", strings.Join(args, " "), code, tio.errOut.String())
	}
	return tio.out.String()
}

// One behaviour, two stores: the same usage ingested into an SQLite file
// and into PostgreSQL gives byte-identical reports and top snapshots, and
// db copy moves a ledger from one to the other (twice: the second adds
// nothing) with the same answers.
func TestSQLiteAndPostgresAnswerAlike(t *testing.T) {
	pg := pgtest.DSN(t)
	lite := filepath.Join(t.TempDir(), "ledger.db")
	for _, db := range []string{lite, pg} {
		runIn(t, db, "ingest", "--max-bad", "2", "testdata/ingest/usage.jsonl")
		runIn(t, db, "policy", "set", "--tenant", "acme", "--daily-budget", "50", "--reason", "fleet test")
		// The semantic cache: hits, embedding calls, a policy, verified
		// hits and a tenant the proxy switched off. (db copy takes two
		// identical verification rows for one, as it does audit rows: the
		// times differ here.)
		runIn(t, db, "policy", "set", "--tenant", "globex", "--semantic-cache", "on", "--similarity", "0.97", "--reason", "fleet test")
		runIn(t, db, "policy", "set", "--tenant", "acme", "--semantic-cache", "on", "--reason", "fleet test")
		l, err := ledger.Open(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Insert(context.Background(), semanticEvents(testNow.Add(-5*time.Minute))); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			if err := l.RecordVerification(context.Background(), ledger.Verification{Tenant: "globex", At: testNow.Add(-4*time.Minute + time.Duration(i)*time.Millisecond), Similarity: 0.975, Match: i < 4, Method: "exact"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.SwitchOffSemantic(context.Background(), "globex", "precision 80% < 98%", testNow.Add(-3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	views := [][]string{
		{"report", "--format", "json", "--since", "7d"},
		{"report", "--format", "json", "--since", "30d", "--by", "tenant,model"},
		{"report", "--format", "json", "--since", "7d", "--by", "day,tenant"},
		{"report", "--format", "csv", "--since", "7d", "--by", "user"},
		{"top", "--once", "--format", "json"},
		{"top", "--once", "--format", "json", "--group-by", "model", "--window", "7d"},
		{"policy", "list", "--format", "json"},
		{"policy", "list"},
		{"report", "--since", "7d"},
		{"report", "--format", "csv", "--since", "7d", "--by", "tenant,metric"},
		{"cache", "stats", "--format", "json"},
		{"cache", "stats"},
	}
	for _, v := range views {
		a, b := runIn(t, lite, v...), runIn(t, pg, v...)
		if a != b {
			t.Errorf("costctl %s differs:\nsqlite:\n%s\npostgres:\n%s", strings.Join(v, " "), a, b)
		}
		if len(a) < 40 {
			t.Errorf("costctl %s printed almost nothing: %q", strings.Join(v, " "), a)
		}
	}

	// db copy SQLite → a new PostgreSQL schema, twice; then the copy
	// answers as the original.
	pg2 := pgtest.DSN(t)
	out := runIn(t, lite, "db", "copy", "--from", lite, "--to", pg2)
	if !strings.Contains(out, "events read") {
		t.Fatalf("copy: %s", out)
	}
	again := runIn(t, lite, "db", "copy", "--from", lite, "--to", pg2)
	if !strings.Contains(again, ", 0 added; ") || !strings.Contains(again, "other rows read, 0 added") {
		t.Fatalf("second copy added something: %s", again)
	}
	for _, v := range views {
		if a, b := runIn(t, lite, v...), runIn(t, pg2, v...); a != b {
			t.Errorf("after db copy, costctl %s differs:\nsqlite:\n%s\ncopy:\n%s", strings.Join(v, " "), a, b)
		}
	}
	// And back: PostgreSQL → a new SQLite file.
	back := filepath.Join(t.TempDir(), "back.db")
	runIn(t, lite, "db", "copy", "--from", pg2, "--to", back)
	for _, v := range views {
		if a, b := runIn(t, lite, v...), runIn(t, back, v...); a != b {
			t.Errorf("after copying back, costctl %s differs", strings.Join(v, " "))
		}
	}
	if out := runIn(t, pg, "db", "migrate"); !strings.Contains(out, "nothing to do") || strings.Contains(out, "password") {
		t.Errorf("db migrate: %s", out)
	}
}
