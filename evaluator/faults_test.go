package evaluator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

const oneJudge = `
judges:
  small: {model: gpt-4o-mini}
metrics:
  - {name: quality, type: judge, judge: small, prompt: Rate it.}
`

func nRecords(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"id":"r%03d","input":"question %d","output":"a good answer %d"}`+"\n", i, i, i)
	}
	return b.String()
}

func TestRetryAfter500AndTimeout(t *testing.T) {
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
			fmt.Fprint(w, `{"error":{"message":"slow down","type":"rate_limit","code":"rate_limit_exceeded"}}`)
			return true
		case 2:
			w.WriteHeader(502)
			fmt.Fprint(w, `bad gateway`)
			return true
		case 3:
			select { // longer than the 50ms timeout
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
			return true
		}
		return false
	})
	o := e.opts(e.config(oneJudge), e.file("r.jsonl", nRecords(1)))
	o.Timeout = 50 * time.Millisecond
	res, rows := e.run(o)
	if rows[0].Status != "pass" || e.fake.requests.Load() != 4 || res.Requests != 4 || res.Calls != 1 {
		t.Fatalf("rows=%s requests=%d calls=%d", brief(rows), e.fake.requests.Load(), res.Calls)
	}
	if len(e.sleeps) != 3 || e.sleeps[0] != 7*time.Second {
		t.Errorf("sleeps = %v, want Retry-After 7s first then two backoffs", e.sleeps)
	}
	for _, d := range e.sleeps[1:] {
		if d <= 0 || d > 4*time.Millisecond {
			t.Errorf("backoff %v outside (0, max]", d)
		}
	}
}

func TestRetriesExhaustedIsErrorRow(t *testing.T) {
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(500)
		fmt.Fprint(w, `{"error":{"message":"boom","type":"server_error"}}`)
		return true
	})
	o := e.opts(e.config(oneJudge), e.file("r.jsonl", nRecords(2)))
	o.MaxRetries = 2
	res, rows := e.run(o)
	if e.fake.requests.Load() != 6 || res.Errors != 2 {
		t.Fatalf("requests=%d errors=%d", e.fake.requests.Load(), res.Errors)
	}
	if rows[0].Status != "error" || rows[0].Score != nil || rows[0].Error != "judge endpoint HTTP 500: boom (after 2 retries)" {
		t.Errorf("row = %+v", rows[0])
	}
	if n, _ := e.db.JudgeCacheCount(context.Background()); n != 0 {
		t.Errorf("errors were cached: %d", n)
	}
}

func TestUnparseableRepairThenError(t *testing.T) {
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		user := req.Messages[1].Content
		switch {
		case strings.Contains(user, "answer 0") && len(req.Messages) == 2:
			writeReply(w, "I think it is fine.")
		case strings.Contains(user, "answer 0"):
			if !strings.HasPrefix(req.Messages[3].Content, "Your reply could not be read (no JSON object in the reply).") {
				writeReply(w, "bad repair prompt")
				return true
			}
			writeReply(w, `Sure! {"score": "0.75", "reason": "ok"} hope that helps`)
		case strings.Contains(user, "answer 1"):
			writeReply(w, `{"score": 7}`)
		default:
			return false
		}
		return true
	})
	f := e.file("r.jsonl", nRecords(2))
	o := e.opts(e.config(oneJudge), f)
	res, rows := e.run(o)
	if rows[0].Status != "pass" || *rows[0].Score != 0.75 || rows[0].Cost != 2*oneCallCost || rows[0].InputTokens != 2*fakePrompt {
		t.Errorf("repaired row = %+v", rows[0])
	}
	if rows[1].Status != "error" || rows[1].Score != nil || rows[1].Error != "unreadable judge reply after one repair retry: score 7 is outside 0..1" {
		t.Errorf("error row = %+v", rows[1])
	}
	if res.Calls != 4 || res.Errors != 1 || res.Metrics[0].Failed != 0 {
		t.Errorf("calls=%d errors=%d failed=%d", res.Calls, res.Errors, res.Metrics[0].Failed)
	}
	n, cost, _ := e.ledgerSum(res.RunID)
	if n != 4 || cost != 4*oneCallCost {
		t.Errorf("ledger rows %d cost %s", n, cost)
	}
	// The error is not cached: a rerun asks again (twice: call + repair).
	e.run(e.opts(e.config(oneJudge), f))
	if got := e.fake.requests.Load(); got != 6 {
		t.Errorf("rerun requests total %d, want 6", got)
	}
}

func TestInsufficientQuotaStops(t *testing.T) {
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(429)
		fmt.Fprint(w, `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`)
		return true
	})
	o := e.opts(e.config(oneJudge), e.file("r.jsonl", nRecords(50)))
	o.Concurrency = 1
	res, err := Run(context.Background(), o)
	var fe *FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "out of quota (429 insufficient_quota)") {
		t.Fatalf("err = %v", err)
	}
	if e.fake.requests.Load() != 1 || res.Stop != StopFatal {
		t.Errorf("requests = %d stop=%q", e.fake.requests.Load(), res.Stop)
	}
}

func TestBudgetCapUnderConcurrency(t *testing.T) {
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		time.Sleep(2 * time.Millisecond)
		return false
	})
	f := e.file("r.jsonl", nRecords(200))
	cfg := e.config(oneJudge)
	o := e.opts(cfg, f)
	o.Concurrency = 32
	o.MaxCost = pricing.Money(5_000_000) // $0.005: ~24 worst-case reservations, ~37 real calls
	res, rows := e.run(o)
	if res.Stop != StopBudget {
		t.Fatalf("stop = %q", res.Stop)
	}
	_, cost, _ := e.ledgerSum("")
	if cost > o.MaxCost || res.Cost != cost {
		t.Fatalf("spent %s (result %s) over cap %s", cost, res.Cost, o.MaxCost)
	}
	judged := 0
	for _, r := range rows {
		if r.Status != StatusNotRun {
			judged++
		}
	}
	if int64(judged) != res.Calls || res.LeftRecords == 0 || res.LeftRecords+res.Sampled != 200 || int64(len(rows)) != res.Sampled {
		t.Errorf("rows=%d judged=%d calls=%d left=%d sampled=%d", len(rows), judged, res.Calls, res.LeftRecords, res.Sampled)
	}
	first := e.fake.requests.Load()
	// A larger cap continues from the cache: no record is asked twice.
	o = e.opts(cfg, f)
	o.Concurrency = 32
	o.MaxCost = pricing.Dollars(1)
	res2, rows2 := e.run(o)
	if res2.Stop != StopNone || len(rows2) != 200 || res2.CacheHits != res.Calls || e.fake.requests.Load()-first != 200-res.Calls {
		t.Errorf("second run: stop=%q rows=%d hits=%d new requests=%d", res2.Stop, len(rows2), res2.CacheHits, e.fake.requests.Load()-first)
	}
}

func TestDryRunSendsNothing(t *testing.T) {
	e := newEnv(t, nil)
	f := e.file("r.jsonl", threeRecords)
	cfg := e.config(testConfig)
	o := e.opts(cfg, f)
	o.Getenv = func(string) string { return "" } // no key needed
	dr, err := DryRun(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if e.fake.requests.Load() != 0 {
		t.Fatalf("dry run sent %d requests", e.fake.requests.Load())
	}
	byName := map[string]*DryMetric{}
	for _, m := range dr.Metrics {
		byName[m.Name] = m
	}
	if q := byName["quality"]; q.ToEvaluate != 3 || q.CallsMin != 3 || q.CallsMax != 3 || q.CacheHits != 0 {
		t.Errorf("quality = %+v", q)
	}
	if d := byName["deep"]; d.CallsMin != 0 || d.CallsMax != 3 || d.CostLow != 0 || d.CostHigh == 0 {
		t.Errorf("deep = %+v", d)
	}
	if dr.CostLow <= 0 || dr.CostHigh <= dr.CostLow {
		t.Errorf("range %s – %s", dr.CostLow, dr.CostHigh)
	}
	// After a real run the dry run sees the cache and decides the when exactly.
	e.run(e.opts(cfg, f))
	dr, _ = DryRun(context.Background(), o)
	for _, m := range dr.Metrics {
		byName[m.Name] = m
	}
	if q, d := byName["quality"], byName["deep"]; q.CacheHits != 3 || q.CallsMax != 0 || d.ToEvaluate != 2 || d.CacheHits != 2 || d.CallsMax != 0 || dr.CostHigh != 0 {
		t.Errorf("after run: quality %+v deep %+v", q, d)
	}
}

func TestCancelAndResume(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		if n == 20 {
			cancel() // Ctrl-C while requests are in flight
		}
		return false
	})
	f := e.file("r.jsonl", nRecords(100))
	cfg := e.config(oneJudge)
	o := e.opts(cfg, f)
	var out strings.Builder
	o.Out = &out
	res, err := Run(ctx, o)
	if err != nil || res.Stop != StopInterrupted {
		t.Fatalf("err=%v stop=%q", err, res.Stop)
	}
	var rows1 []Row
	for _, r := range parseRows(t, []byte(out.String())) {
		if r.Status != StatusNotRun {
			rows1 = append(rows1, r)
		}
	}
	if len(rows1) == 0 || len(rows1) >= 100 {
		t.Fatalf("first run wrote %d rows", len(rows1))
	}
	for i := 1; i < len(rows1); i++ {
		if rows1[i].ID == rows1[i-1].ID {
			t.Fatalf("duplicate row %s", rows1[i].ID)
		}
	}
	res2, rows2 := e.run(e.opts(cfg, f))
	if len(rows2) != 100 {
		t.Fatalf("resume wrote %d rows", len(rows2))
	}
	for i, r := range rows2 {
		if r.ID != fmt.Sprintf("r%03d", i) || r.Status != "pass" {
			t.Fatalf("row %d = %+v", i, r)
		}
	}
	// Everything the first run wrote is a cache hit now, and nothing else is.
	// (Count the second run's own requests: a request the first run
	// abandoned on cancel may still reach the fake server late.)
	if res2.CacheHits < int64(len(rows1)) || res2.Requests != 100-res2.CacheHits {
		t.Errorf("hits=%d first rows=%d new requests=%d", res2.CacheHits, len(rows1), res2.Requests)
	}
}

func sampledIDs(t *testing.T, e *env, f string, s Sample, seed uint64, conc int) []string {
	o := e.opts(e.config(`
metrics:
  - {name: j, type: json}
`), f)
	o.Sample, o.Seed, o.Concurrency, o.DB = s, seed, conc, nil
	_, rows := e.run(o)
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	sort.Strings(ids)
	return ids
}

func TestSamplingStable(t *testing.T) {
	e := newEnv(t, nil)
	lines := strings.Split(strings.TrimSpace(nRecords(400)), "\n")
	f1 := e.file("a.jsonl", strings.Join(lines, "\n"))
	rev := append([]string(nil), lines...)
	sort.Sort(sort.Reverse(sort.StringSlice(rev)))
	f2 := e.file("b.jsonl", strings.Join(rev, "\n"))
	a := sampledIDs(t, e, f1, Sample{Fraction: 0.25}, 0, 1)
	b := sampledIDs(t, e, f2, Sample{Fraction: 0.25}, 0, 16)
	if !reflect.DeepEqual(a, b) || len(a) < 70 || len(a) > 130 {
		t.Fatalf("fraction sample differs by order/concurrency or is off: %d vs %d", len(a), len(b))
	}
	c := sampledIDs(t, e, f2, Sample{Fraction: 0.25}, 1, 4)
	if reflect.DeepEqual(a, c) {
		t.Error("another seed chose the same records")
	}
	k1 := sampledIDs(t, e, f1, Sample{Count: 37}, 5, 1)
	k2 := sampledIDs(t, e, f2, Sample{Count: 37}, 5, 8)
	if len(k1) != 37 || !reflect.DeepEqual(k1, k2) {
		t.Errorf("count sample: %d, equal=%v", len(k1), reflect.DeepEqual(k1, k2))
	}
}

func TestTwoHandlesOneDB(t *testing.T) {
	e := newEnv(t, nil)
	f := e.file("r.jsonl", nRecords(60))
	cfg := e.config(oneJudge)
	db2, err := ledger.Open(context.Background(), filepath.Join(e.dir, "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, db := range []*ledger.DB{e.db, db2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := e.opts(cfg, f)
			o.DB = db
			o.RunID = fmt.Sprintf("run-%d", i)
			_, errs[i] = Run(context.Background(), o)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("errors: %v %v", errs[0], errs[1])
	}
	n, _, _ := e.ledgerSum("")
	var calls, hits int64
	e.db.SQL().QueryRow(`SELECT SUM(cache_hit=0), SUM(cache_hit=1) FROM events`).Scan(&calls, &hits)
	if n != 120 || calls != e.fake.requests.Load() || calls+hits != 120 {
		t.Errorf("events=%d calls=%d hits=%d requests=%d", n, calls, hits, e.fake.requests.Load())
	}
	if c, _ := e.db.JudgeCacheCount(context.Background()); c != 60 {
		t.Errorf("cache entries %d", c)
	}
}

func TestKeyNeverLeaks(t *testing.T) {
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":{"message":"bad request","type":"invalid_request_error"}}`)
			return true
		}
		return false
	})
	f := e.file("r.jsonl", nRecords(3))
	o := e.opts(e.config(oneJudge), f)
	o.StoreText = true
	var out strings.Builder
	o.Out = &out
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	e.db.Close()
	dump := out.String() + fmt.Sprint(res)
	for _, name := range []string{"l.db", "l.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(e.dir, name))
		dump += string(b)
	}
	if strings.Contains(dump, testKey) || strings.Contains(dump, "SECRET") {
		t.Fatal("the API key leaked into the output or the database")
	}
	if !strings.Contains(out.String(), "judge endpoint HTTP 400: bad request") {
		t.Errorf("400 row missing: %s", out.String())
	}
	// A missing key is one clear error before any request.
	o = e.opts(e.config(oneJudge), f)
	o.Getenv = func(string) string { return "" }
	before := e.fake.requests.Load()
	_, err = Run(context.Background(), o)
	if err == nil || err.Error() != `judge "small": OPENAI_API_KEY is not set; export the API key for `+e.fake.srv.URL+`/v1 (or set api_key_env for the judge); --dry-run needs no key` || e.fake.requests.Load() != before {
		t.Errorf("missing key: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	table := pricing.MustDefault()
	for _, tc := range []struct{ src, want string }{
		{"metrics:\n  - {name: a, type: judge, judge: big, prompt: x}\njudges:\n  small: {model: gpt-4o-mini}\n", `config e.yaml: metric "a": judge: "big" is not defined (judges: small)`},
		{"metrics:\n  - {name: a, type: regex, pattern: '(('}\n", `config e.yaml: metric "a": pattern: missing closing ): ` + "`((`"},
		{"metrics:\n  - {name: a, type: json, when: b.pass}\n  - {name: b, type: json, when: a.fail}\n", `config e.yaml: metric "a": when conditions make a cycle: a → b → a`},
		{"metrics:\n  - {name: a, type: json, when: zz.pass}\n", `config e.yaml: metric "a": when "zz.pass" names unknown metric "zz"`},
		{"metrics:\n  - {name: a, type: json, when: a.score}\n", `config e.yaml: metric "a": when: "a.score": score needs a comparison, e.g. a.score >= 0.5`},
		{"judges:\n  small: {model: gpt-nope-9}\nmetrics:\n  - {name: a, type: json}\n", `config e.yaml: judge "small": model "gpt-nope-9" is not priced`},
		{"metrics:\n  - {name: a, type: jsn}\n", `config e.yaml: metric "a": type: "jsn" is not regex, keyword, json, length or judge`},
		{"metrics:\n  - {name: a, type: json, colour: red}\n", `config e.yaml: line 2: field colour not found in a metric`},
		{"metrics:\n  - {name: a, type: judge, judge: s, prompt: x, template: '{{outptu}}'}\njudges:\n  s: {model: gpt-4o-mini}\n", `config e.yaml: metric "a": template: unknown placeholder {{outptu}}`},
		{"", `config e.yaml: empty; run costctl eval init to write a starter config`},
	} {
		_, err := ParseConfig("e.yaml", []byte(tc.src), table)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q:\n got %v\nwant %s", tc.src, err, tc.want)
		}
	}
	if _, err := ParseConfig("starter", []byte(StarterConfig), table); err != nil {
		t.Errorf("starter config: %v", err)
	}
}

func TestWilsonAndSample(t *testing.T) {
	lo, hi, _ := Wilson(8, 10, 1.959963984540054)
	if fmt.Sprintf("%.4f %.4f", lo, hi) != "0.4902 0.9433" {
		t.Errorf("wilson(8,10) = %.4f %.4f", lo, hi)
	}
	lo, hi, _ = Wilson(0, 5, 1.959963984540054)
	if fmt.Sprintf("%.4f %.4f", lo, hi) != "0.0000 0.4345" {
		t.Errorf("wilson(0,5) = %.4f %.4f", lo, hi)
	}
	for in, want := range map[string]Sample{"10%": {Fraction: 0.1}, "0.25": {Fraction: 0.25}, "500": {Count: 500}, "1.0": {Fraction: 1}} {
		if got, err := ParseSample(in); err != nil || got != want {
			t.Errorf("ParseSample(%q) = %v %v", in, got, err)
		}
	}
	for _, in := range []string{"0", "-3", "150%", "1.5", "abc"} {
		if _, err := ParseSample(in); err == nil {
			t.Errorf("ParseSample(%q) accepted", in)
		}
	}
}
