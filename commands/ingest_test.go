package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/costctl/costctl/ledger"
)

// testNow is the clock of the ingest/top/report tests (a Friday afternoon, UTC).
var testNow = time.Date(2026, 11, 20, 14, 30, 20, 0, time.UTC)

type testIO struct {
	out, errOut bytes.Buffer
	io          *IOStreams
}

func newTestIO(stdin string) *testIO {
	t := &testIO{}
	t.io = &IOStreams{In: strings.NewReader(stdin), Out: &t.out, ErrOut: &t.errOut}
	return t
}

// testFactory is a factory on tio whose ledger is db: COSTCTL_DB is how
// the path reaches the command (Run parses flags, which reset --db).
func testFactory(tio *testIO, db string) *Factory {
	env := map[string]string{"COSTCTL_DB": db, "TZ": "UTC"}
	return &Factory{IO: tio.io, Getenv: func(k string) string { return env[k] }, Now: func() time.Time { return testNow }}
}

// ingestFixture ingests testdata/ingest/usage.jsonl (two bad lines,
// accepted with --max-bad 2) into a new ledger and returns its path.
func ingestFixture(t *testing.T) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "ledger.db")
	tio := newTestIO("")
	if code := Run(context.Background(), testFactory(tio, db), []string{"ingest", "--max-bad", "2", "testdata/ingest/usage.jsonl"}); code != 0 {
		t.Fatalf("ingest exit %d: %s", code, tio.errOut.String())
	}
	return db
}

func TestIngestCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ledger.db")
	tio := newTestIO("")
	code := Run(context.Background(), testFactory(tio, db), []string{"ingest", "--max-bad", "2", "testdata/ingest/usage.jsonl"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, tio.errOut.String())
	}
	assertGolden(t, "ingest/first.out", strings.ReplaceAll(tio.out.String(), db, "LEDGER"))
	assertGolden(t, "ingest/first.err", tio.errOut.String())

	// Again, through standard input: everything is a duplicate.
	data := mustRead(t, "testdata/ingest/usage.jsonl")
	tio = newTestIO(data)
	if code := Run(context.Background(), testFactory(tio, db), []string{"ingest", "--max-bad", "2", "-"}); code != 0 {
		t.Fatalf("exit %d: %s", code, tio.errOut.String())
	}
	assertGolden(t, "ingest/second.out", strings.ReplaceAll(tio.out.String(), db, "LEDGER"))

	// And as JSON.
	tio = newTestIO("")
	if code := Run(context.Background(), testFactory(tio, db), []string{"ingest", "--max-bad", "2", "--format", "json", "testdata/ingest/usage.jsonl"}); code != 0 {
		t.Fatalf("exit %d: %s", code, tio.errOut.String())
	}
	assertGolden(t, "ingest/second.json", strings.ReplaceAll(tio.out.String(), db, "LEDGER"))
	l, err := ledger.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var n int
	if err := l.SQL().QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n); err != nil || n != 21 {
		t.Fatalf("events = %d (%v), want 21", n, err)
	}
}

// Bad lines make ingest exit 1 after storing the good ones, unless there
// are no more than --max-bad of them; a conflict counts as a bad line.
// Exit 1 prints nothing on stdout: the summary goes to stderr.
func TestIngestMaxBad(t *testing.T) {
	dir := t.TempDir()
	good := `{"id":"g%d","ts":"2026-11-20T10:00:00Z","tenant":"acme","model":"gpt-4o","input_tokens":1000,"output_tokens":10}` + "\n"
	var b strings.Builder
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, good, i)
	}
	b.WriteString("not json\n{\"id\":\"x\"}\n")
	log := filepath.Join(dir, "usage.jsonl")
	if err := os.WriteFile(log, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// g2 again with other content: a conflict.
	other := filepath.Join(dir, "other.jsonl")
	if err := os.WriteFile(other, []byte(strings.Replace(fmt.Sprintf(good, 2), `"output_tokens":10`, `"output_tokens":11`, 1)+fmt.Sprintf(good, 4)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		stdout  string
		errTail string
		events  int
	}{
		{"bad lines", []string{"ingest", log}, ExitError, "",
			"ingested 3 · duplicates 0 · bad 2 · unpriced 0 · conflicts 0\n" +
				"cost of ingested events $0.0078 (prices as of 2026-12-01) · ledger LEDGER\n" +
				"costctl: ingest: 2 bad lines, more than --max-bad 0; the rest is saved: fix the lines listed above and ingest again (what is in is skipped as a duplicate), or pass --max-bad 2 to accept them\n", 3},
		{"one more than --max-bad", []string{"ingest", "--max-bad", "1", log}, ExitError, "",
			"costctl: ingest: 2 bad lines, more than --max-bad 1; the rest is saved: fix the lines listed above and ingest again (what is in is skipped as a duplicate), or pass --max-bad 2 to accept them\n", 3},
		{"within --max-bad", []string{"ingest", "--max-bad", "2", log}, ExitOK,
			"ingested 3 · duplicates 0 · bad 2 · unpriced 0 · conflicts 0\n" +
				"cost of ingested events $0.0078 (prices as of 2026-12-01) · ledger LEDGER\n", "", 3},
		{"a conflict", []string{"ingest", other}, ExitError, "",
			"ingested 1 · duplicates 0 · bad 0 · unpriced 0 · conflicts 1\n" +
				"cost of ingested events $0.0026 (prices as of 2026-12-01) · ledger LEDGER\n" +
				"costctl: ingest: 1 conflict, more than --max-bad 0; the rest is saved: fix the lines listed above and ingest again (what is in is skipped as a duplicate), or pass --max-bad 1 to accept them\n", 4},
		{"a conflict within --max-bad", []string{"ingest", "--max-bad", "1", "--format", "json", other}, ExitOK,
			`{
  "version": 1,
  "lines": 2,
  "ingested": 1,
  "duplicates": 0,
  "conflicts": 1,
  "bad": 0,
  "unpriced": 0,
  "unpriced_models": [],
  "cost_usd": "0.0026",
  "prices_as_of": "2026-12-01",
  "ledger": "LEDGER"
}
`, "", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "ledger.db")
			if strings.HasPrefix(tc.name, "a conflict") {
				if code := Run(context.Background(), testFactory(newTestIO(""), db), []string{"ingest", "--max-bad", "2", log}); code != 0 {
					t.Fatalf("setup exit %d", code)
				}
			}
			tio := newTestIO("")
			code := Run(context.Background(), testFactory(tio, db), tc.args)
			stdout := strings.ReplaceAll(tio.out.String(), db, "LEDGER")
			stderr := strings.ReplaceAll(tio.errOut.String(), db, "LEDGER")
			if code != tc.code || stdout != tc.stdout || !strings.HasSuffix(stderr, tc.errTail) {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit %d\nstdout %q\nstderr ending %q", code, stdout, stderr, tc.code, tc.stdout, tc.errTail)
			}
			l, err := ledger.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var n int
			if err := l.SQL().QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n); err != nil || n != tc.events {
				t.Fatalf("events = %d (%v), want %d", n, err, tc.events)
			}
		})
	}
}

// --source keeps two systems' ids apart; a bad name is a usage error.
func TestIngestSource(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "usage.jsonl")
	if err := os.WriteFile(log, []byte(`{"id":1,"tenant":"acme","ts":"2026-11-20T10:00:00Z","model":"gpt-4o","input_tokens":1000,"output_tokens":10}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "ledger.db")
	for _, args := range [][]string{{"ingest", log}, {"ingest", "--source", "billing-eu", log}, {"ingest", "--source", "billing-eu", log}} {
		tio := newTestIO("")
		if code := Run(context.Background(), testFactory(tio, db), args); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, tio.errOut.String())
		}
	}
	l, err := ledger.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var keys string
	if err := l.SQL().QueryRow(`SELECT group_concat(event_key, ' ') FROM (SELECT event_key FROM events ORDER BY id)`).Scan(&keys); err != nil ||
		keys != "ingest:flat:acme:id:1 ingest:billing-eu:acme:id:1" {
		t.Fatalf("keys %q (%v)", keys, err)
	}
}

func TestIngestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"ingest"}, ExitUsage, "costctl: ingest: give one or more FILEs, or - for standard input\n"},
		{[]string{"ingest", "-", "-"}, ExitUsage, "costctl: ingest: - (standard input) can be given only once\n"},
		{[]string{"ingest", "testdata/ingest/usage.jsonl", "testdata/ingest/missing.jsonl"}, ExitError, "costctl: ingest: testdata/ingest/missing.jsonl: no such file or directory\n"},
		{[]string{"ingest", "testdata"}, ExitUsage, "costctl: ingest: testdata is a directory; give the log files in it\n"},
		{[]string{"ingest", "--source", "a:b", "x.jsonl"}, ExitUsage, "costctl: ingest: --source: invalid source \"a:b\": want 1 to 64 letters, digits, '.', '_' or '-' (not \"id\" or \"sha256\")\n"},
		{[]string{"ingest", "--source", "id", "x.jsonl"}, ExitUsage, "costctl: ingest: --source: invalid source \"id\": want 1 to 64 letters, digits, '.', '_' or '-' (not \"id\" or \"sha256\")\n"},
		{[]string{"ingest", "--max-bad", "-1", "x.jsonl"}, ExitUsage, "costctl: ingest: --max-bad must be 0 or more\n"},
		{[]string{"ingest", "--format", "csv", "x.jsonl"}, ExitUsage, "costctl: invalid --format \"csv\" (expected table, json)\n"},
	} {
		tio := newTestIO("")
		db := filepath.Join(t.TempDir(), "ledger.db")
		if code := Run(context.Background(), testFactory(tio, db), tc.args); code != tc.code || tio.errOut.String() != tc.msg {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tc.args, code, tio.errOut.String(), tc.code, tc.msg)
		}
		if tio.out.Len() != 0 {
			t.Errorf("%v: nothing must be ingested, got %q", tc.args, tio.out.String())
		}
	}
}

// A run that fails part-way prints nothing on stdout; the summary of what
// was saved before the failure goes to stderr, above the error.
func TestIngestFailurePrintsNothingOnStdout(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ledger.db")
	tio := newTestIO("")
	tio.io.In = io.MultiReader(strings.NewReader(`{"id":"a","model":"gpt-4o","input_tokens":1000,"output_tokens":10}`+"\n"),
		iotest.ErrReader(errors.New("input/output error")))
	code := Run(context.Background(), testFactory(tio, db), []string{"ingest", "-"})
	want := "ingested 1 · duplicates 0 · bad 0 · unpriced 0 · conflicts 0\n" +
		"cost of ingested events $0.0026 (prices as of 2026-12-01) · ledger " + db + "\n" +
		"costctl: ingest: read stdin: input/output error\n"
	if code != ExitError || tio.out.Len() != 0 || tio.errOut.String() != want {
		t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit 1, no stdout, stderr %q", code, tio.out.String(), tio.errOut.String(), want)
	}
}
