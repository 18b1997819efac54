package commands

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
)

// usageLog3 is three calls: gpt-4o, a fine-tune only a price file knows,
// and a model no table prices.
const usageLog3 = `{"id":"a1","ts":"2026-11-20T10:00:00Z","tenant":"acme","model":"gpt-4o","input_tokens":1000000,"output_tokens":100000}
{"id":"a2","ts":"2026-11-20T11:00:00Z","tenant":"acme","model":"my-finetune","input_tokens":2000000,"output_tokens":0}
{"id":"g1","ts":"2026-11-19T12:00:00Z","tenant":"globex","model":"mystery-llm","input_tokens":500000,"output_tokens":50000}
`

// report and top on a ledger nobody may write — a 0444 file in a 0555
// directory — and on one whose writer left its -wal and -shm: they work,
// the file's bytes and mtime stay, and no file appears beside it.
func TestReadCommandsNeverWriteE2E(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keepWAL   bool
		fileMode  os.FileMode
		dirMode   os.FileMode
		wantFiles string
		warn      bool
	}{
		{name: "0600", fileMode: 0o600, dirMode: 0o700, wantFiles: "ledger.db"},
		{name: "0444 in a 0555 directory", fileMode: 0o444, dirMode: 0o555, wantFiles: "ledger.db", warn: true},
		{name: "0444 with a writer's -wal and -shm", keepWAL: true, fileMode: 0o444, dirMode: 0o555, wantFiles: "ledger.db ledger.db-shm ledger.db-wal", warn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			os.Mkdir(state, 0o700)
			db := filepath.Join(state, "ledger.db")
			// The same three calls, in the last two days (top's windows end now).
			now := time.Now().UTC()
			log := usageLog3
			for old, at := range map[string]time.Duration{"2026-11-20T10:00:00Z": 2 * time.Hour, "2026-11-20T11:00:00Z": time.Hour, "2026-11-19T12:00:00Z": 26 * time.Hour} {
				log = strings.Replace(log, old, now.Add(-at).Format(time.RFC3339), 1)
			}
			writeFile(t, dir, "usage.jsonl", log)
			if r := runCostctl(t, dir, "", nil, "--db", db, "ingest", "usage.jsonl"); r.Code != 0 {
				t.Fatalf("ingest: %d %s", r.Code, r.Stderr)
			}
			var w *ledger.DB
			if tc.keepWAL {
				var err error
				if w, err = ledger.Open(context.Background(), db); err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				ev := ledger.Event{Key: "w1", Time: time.Now().Add(-30 * time.Minute), Source: ledger.SourceIngest,
					Tenant: "initech", Model: "gpt-4o", InputTokens: 1000, Cost: 2_500_000}
				if _, err := w.Insert(context.Background(), []ledger.Event{ev}); err != nil {
					t.Fatal(err)
				}
			}
			os.Chmod(db, tc.fileMode)
			os.Chmod(state, tc.dirMode)
			defer os.Chmod(state, 0o700)
			data, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(db)
			time.Sleep(20 * time.Millisecond)

			warning := ""
			if tc.warn {
				warning = fmt.Sprintf("costctl: warning: ledger %s has mode %04o, open to other users: chmod 600 %s\n", db, tc.fileMode, db)
			}
			r := runCostctl(t, dir, "", nil, "--db", db, "report", "--since", "7d", "--format", "csv")
			wantCSV := "TENANT,CALLS,CACHE HITS,INPUT TOKENS,CACHED,OUTPUT TOKENS,COST USD,SHARE PCT,UNPRICED,AVOIDED USD,CACHE WRITE 5M TOKENS,CACHE WRITE 1H TOKENS,REASONING TOKENS,SEMANTIC HITS,SEMANTIC AVOIDED USD,EMBED CALLS,EMBED COST USD,NET SEMANTIC USD\n" +
				"acme,2,,3000000,0,100000,3.50,100.0,1,,0,0,0,0,0.00,0,0.00,0.00\n" +
				"globex,1,,500000,0,50000,,,1,,0,0,0,0,0.00,0,0.00,0.00\n" +
				"TOTAL,3,,3500000,0,150000,3.50,100.0,2,,0,0,0,0,0.00,0,0.00,0.00\n"
			if tc.keepWAL { // the writer's event, committed to the -wal only
				wantCSV = strings.Replace(wantCSV, "globex,1", "initech,1,,1000,0,0,0.0025,0.1,,,0,0,0,0,0.00,0,0.00,0.00\nglobex,1", 1)
				wantCSV = strings.Replace(wantCSV, "acme,2,,3000000,0,100000,3.50,100.0,1,,0,0,0", "acme,2,,3000000,0,100000,3.50,99.9,1,,0,0,0", 1)
				wantCSV = strings.Replace(wantCSV, "TOTAL,3,,3500000,0,150000,3.50,100.0,2,,0,0,0", "TOTAL,4,,3501000,0,150000,3.5025,100.0,2,,0,0,0", 1)
			}
			if r.Code != 0 || r.Stdout != wantCSV || !strings.HasPrefix(r.Stderr, warning) || strings.Count(r.Stderr, "warning") != b2n(tc.warn) {
				t.Fatalf("report: %d\n%s\nwant\n%s\nstderr %q", r.Code, r.Stdout, wantCSV, r.Stderr)
			}
			r = runCostctl(t, dir, "", nil, "--db", db, "top", "--window", "7d", "--format", "json")
			if r.Code != 0 || !strings.Contains(r.Stdout, `"key": "acme"`) || r.Stderr != warning {
				t.Fatalf("top: %d %q %q", r.Code, r.Stdout, r.Stderr)
			}
			after, _ := os.ReadFile(db)
			st2, _ := os.Stat(db)
			if string(after) != string(data) || !st2.ModTime().Equal(st.ModTime()) {
				t.Fatalf("the ledger changed: mtime %s → %s", st.ModTime(), st2.ModTime())
			}
			es, _ := os.ReadDir(state)
			var names []string
			for _, e := range es {
				names = append(names, e.Name())
			}
			if got := strings.Join(names, " "); got != tc.wantFiles {
				t.Fatalf("files %s, want %s", got, tc.wantFiles)
			}
		})
	}
}

func b2n(b bool) int {
	if b {
		return 1
	}
	return 0
}
