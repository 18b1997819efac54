package commands

import (
	"bytes"
	"context"
	"errors"
	"io"
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

// ingestFixture ingests testdata/ingest/usage.jsonl into a new ledger and returns its path.
func ingestFixture(t *testing.T) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "ledger.db")
	tio := newTestIO("")
	if code := Run(context.Background(), testFactory(tio, db), []string{"ingest", "testdata/ingest/usage.jsonl"}); code != 0 {
		t.Fatalf("ingest exit %d: %s", code, tio.errOut.String())
	}
	return db
}

func TestIngestCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ledger.db")
	tio := newTestIO("")
	code := Run(context.Background(), testFactory(tio, db), []string{"ingest", "testdata/ingest/usage.jsonl"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, tio.errOut.String())
	}
	assertGolden(t, "ingest/first.out", strings.ReplaceAll(tio.out.String(), db, "LEDGER"))
	assertGolden(t, "ingest/first.err", tio.errOut.String())

	// Again, through standard input: everything is a duplicate.
	data := mustRead(t, "testdata/ingest/usage.jsonl")
	tio = newTestIO(data)
	if code := Run(context.Background(), testFactory(tio, db), []string{"ingest", "-"}); code != 0 {
		t.Fatalf("exit %d: %s", code, tio.errOut.String())
	}
	assertGolden(t, "ingest/second.out", strings.ReplaceAll(tio.out.String(), db, "LEDGER"))
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
	want := "ingested 1 · duplicates 0 · bad 0 · unpriced 0\n" +
		"cost of ingested events $0.0026 (prices as of 2025-12-01) · ledger " + db + "\n" +
		"costctl: ingest: read stdin: input/output error\n"
	if code != ExitError || tio.out.Len() != 0 || tio.errOut.String() != want {
		t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit 1, no stdout, stderr %q", code, tio.out.String(), tio.errOut.String(), want)
	}
}
