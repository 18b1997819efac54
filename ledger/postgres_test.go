package ledger

import (
	"context"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/costctl/costctl/internal/pgtest"
	"github.com/costctl/costctl/pricing"
)

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT ? , ?`: `SELECT $1 , $2`,
		`WHERE a = '?' AND "b?" = ? -- why?` + "\n": `WHERE a = '?' AND "b?" = $1 -- why?` + "\n",
		`SET x = ?1 + ?2, y = ?2`:                   `SET x = $1 + $2, y = $2`,
		`'it''s ?' || ?`:                            `'it''s ?' || $1`,
		`no params`:                                 `no params`,
	} {
		if got := rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://bob:s3cret@db:5432/x?sslmode=disable": "postgres://bob:xxxxx@db:5432/x?sslmode=disable",
		"postgresql://db/x?password=s3cret":               "postgresql://db/x?password=xxxxx",
		"postgres://bob@db/x":                             "postgres://bob@db/x",
	} {
		if got := RedactURL(in); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	if !IsPostgresURL("PostgreSQL://x") || !IsPostgresURL("postgres://x") || IsPostgresURL("/tmp/postgres.db") {
		t.Fatal("IsPostgresURL")
	}
}

// Both stores' migrations end at the same version: a later migration is
// appended to both.
func TestPostgresMigrationsKeepSQLiteNumbers(t *testing.T) {
	if pgSchemaVersion() != SchemaVersion {
		t.Fatalf("PostgreSQL schema v%d, SQLite v%d", pgSchemaVersion(), SchemaVersion)
	}
	for i := 1; i < len(pgMigrations); i++ {
		if pgMigrations[i].version != pgMigrations[i-1].version+1 {
			t.Fatalf("PostgreSQL migrations %v skip a version", pgMigrations)
		}
	}
}

func TestIsBusyPostgres(t *testing.T) {
	for code, want := range map[string]bool{"40001": true, "40P01": true, "55P03": true, "23505": false} {
		if got := IsBusy(fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code})); got != want {
			t.Errorf("IsBusy(%s) = %v", code, got)
		}
	}
}

// Open creates the schema in an empty database; Migrate then has nothing
// to do; an older schema is refused until migrated, a newer one always.
func TestPostgresSchemaVersions(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	if _, err := OpenReadOnly(ctx, dsn); err == nil || !strings.Contains(err.Error(), "not a costctl ledger") {
		t.Fatalf("read-only open of an empty database: %v", err)
	}
	from, to, err := Migrate(ctx, dsn)
	if err != nil || from != 0 || to != SchemaVersion {
		t.Fatalf("Migrate of an empty database: %d → %d, %v", from, to, err)
	}
	db, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if from, to, err := Migrate(ctx, dsn); err != nil || from != SchemaVersion || to != SchemaVersion {
		t.Fatalf("Migrate of a current ledger: %d → %d, %v", from, to, err)
	}
	set := func(v int) {
		if _, err := db.SQL().Exec(`UPDATE costctl_schema SET version = ?`, v); err != nil {
			t.Fatal(err)
		}
	}
	set(SchemaVersion + 1)
	for _, open := range []func(context.Context, string) (*DB, error){Open, OpenReadOnly} {
		if _, err := open(ctx, dsn); err == nil || !strings.Contains(err.Error(), "newer than this costctl") {
			t.Fatalf("newer schema: %v", err)
		}
	}
	if _, _, err := Migrate(ctx, dsn); err == nil || !strings.Contains(err.Error(), "newer than this costctl") {
		t.Fatalf("Migrate of a newer schema: %v", err)
	}
	set(SchemaVersion - 1)
	for _, open := range []func(context.Context, string) (*DB, error){Open, OpenReadOnly} {
		if _, err := open(ctx, dsn); err == nil || !strings.Contains(err.Error(), "run costctl db migrate") {
			t.Fatalf("older schema: %v", err)
		}
	}
	set(SchemaVersion)
}

// A database with an events table that costctl did not create is not
// taken over.
func TestPostgresRefusesForeignTables(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	raw := openPG(t) // another schema: create the foreign table through it
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	if _, err := raw.SQL().Exec(`CREATE TABLE ` + schema + `.events (id int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dsn); err == nil || !strings.Contains(err.Error(), "not a costctl ledger") {
		t.Fatalf("foreign events table: %v", err)
	}
}

// OpenReadOnly on PostgreSQL reads what a writer wrote, never writes, and
// never shows the password.
func TestPostgresReadOnly(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	w, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Insert(ctx, []Event{ev("a", t0, "acme", "gpt-4o", pricing.Dollars(2))}); err != nil {
		t.Fatal(err)
	}
	withPass := strings.Replace(dsn, "://root@", "://root:s3cret@", 1) // trust auth ignores it
	r, err := OpenReadOnly(ctx, withPass)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if strings.Contains(r.Path()+r.Name(), "s3cret") || !strings.Contains(r.Name(), "xxxxx") {
		t.Fatalf("name %q shows the password", r.Name())
	}
	tot, err := r.Totals(ctx, t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil || tot.Calls != 1 || tot.Cost != usd(pricing.Dollars(2)) {
		t.Fatalf("totals %+v %v", tot, err)
	}
	if _, err := r.Insert(ctx, []Event{ev("b", t0, "acme", "gpt-4o", 1)}); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("a read-only handle wrote: %v", err)
	}
	if err := r.SetPolicy(ctx, Policy{Tenant: "acme"}, PolicyChange{At: t0, What: "x", Reason: "y"}); err == nil {
		t.Fatal("a read-only handle changed a policy")
	}
	if _, err := r.Reprice(ctx, RepriceOptions{Table: pricing.MustDefault()}); err == nil {
		t.Fatal("a read-only handle repriced")
	}
}

// Large inserts go through COPY on PostgreSQL; what Insert says (inserted,
// duplicates and which) is the same as on SQLite, for keys already stored,
// keys repeated within a call and within a chunk, and the rollups agree.
func TestInsertResultsEqualAcrossStores(t *testing.T) {
	ctx := context.Background()
	batches := [][]Event{}
	mk := func(lo, hi int, dup ...int) []Event {
		var evs []Event
		for i := lo; i < hi; i++ {
			e := ev(fmt.Sprintf("k%05d", i), t0.Add(time.Duration(i)*time.Second), fmt.Sprint("t", i%7), fmt.Sprint("m", i%3), pricing.Money(i))
			e.User, e.CacheHit, e.LatencyMS = fmt.Sprint("u", i%5), i%11 == 0, int64(i%13)
			evs = append(evs, e)
		}
		for _, d := range dup {
			evs = append(evs, evs[d])
		}
		return evs
	}
	batches = append(batches, mk(0, 10), mk(5, 15, 0, 3), mk(0, 3000, 7, 2999), mk(2500, 25000, 100, 21000), mk(30, 31))
	var results [2][]InsertResult
	var reports [2]string
	for i, s := range []string{"sqlite", "postgres"} {
		db := storeOpener(t, s)()
		for _, b := range batches {
			res, err := db.Insert(ctx, b)
			if err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			results[i] = append(results[i], res)
		}
		checkRollups(t, db)
		var rep []string
		for _, by := range [][]string{{"tenant"}, {"user", "day"}, {"model", "tenant", "hour"}} {
			rows, err := db.Report(ctx, ReportQuery{By: by, Start: t0.Add(-time.Hour), End: t0.Add(24 * time.Hour), Loc: time.UTC})
			if err != nil {
				t.Fatal(err)
			}
			rep = append(rep, fmt.Sprintf("%+v", rows))
		}
		reports[i] = strings.Join(rep, "\n")
	}
	if !reflect.DeepEqual(results[0], results[1]) {
		t.Fatalf("insert results differ:\nsqlite   %+v\npostgres %+v", results[0], results[1])
	}
	if r := results[0][3]; r.Inserted != 25000-3000 || r.Duplicates != 502 {
		t.Fatalf("big insert %d/%d", r.Inserted, r.Duplicates)
	}
	if reports[0] != reports[1] {
		t.Fatalf("reports differ:\nsqlite   %s\npostgres %s", reports[0], reports[1])
	}
}

// Writers on several handles of one PostgreSQL ledger, writing
// overlapping events at once, count each event once.
func TestPostgresConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	open := storeOpener(t, "postgres")
	errs := make(chan error, 4)
	var inserted [4]int
	for w := 0; w < 4; w++ {
		db := open()
		go func() {
			wr := NewWriter(db, WriterConfig{})
			defer wr.Close()
			for j := 0; j < 20; j++ {
				var evs []Event
				for i := 0; i < 100; i++ {
					n := (j*100 + i*7 + w*13) % 3000
					evs = append(evs, ev(fmt.Sprint("k", n), t0.Add(time.Duration(n)*time.Second), fmt.Sprint("t", n%5), "gpt-4o", 1))
				}
				res, err := wr.Write(ctx, evs, nil)
				if err != nil {
					errs <- err
					return
				}
				inserted[w] += res.Inserted
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	db := open()
	var n int64
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if sum := inserted[0] + inserted[1] + inserted[2] + inserted[3]; int64(sum) != n {
		t.Fatalf("writers say %d inserted, the ledger holds %d", sum, n)
	}
	checkRollups(t, db)
}
