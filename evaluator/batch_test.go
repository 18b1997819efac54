package evaluator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costctl/costctl/internal/batchfake"
	"github.com/costctl/costctl/internal/pgtest"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

const runBatchKey = "sk-batch-SECRET-never-leak-0123456789"

// batchConfig chains two judges: deep runs only where quality passed, so
// a batch run takes two rounds.
const batchConfig = `
judges:
  small: {model: %s, provider: %s}
metrics:
  - {name: no_ssn, type: regex, pattern: '\b\d{3}-\d{2}-\d{4}\b', expect: absent}
  - name: quality
    type: judge
    judge: small
    threshold: 0.5
    prompt: Rate the answer's quality.
  - name: deep
    type: judge
    judge: small
    when: quality.pass
    prompt: Check the facts.
`

type benv struct {
	t        *testing.T
	dir      string
	fake     *batchfake.Server
	table    *pricing.Table
	cfg      *Config
	file     string
	provider string
	sleeps   int
}

// newBatchEnv writes n records (the last repeats the first's content under
// another id: one request serves both) and a config for provider.
func newBatchEnv(t *testing.T, provider string, n int, fo batchfake.Options) *benv {
	t.Helper()
	fo.Key = runBatchKey
	e := &benv{t: t, dir: t.TempDir(), fake: batchfake.New(fo), provider: provider}
	t.Cleanup(e.fake.Close)
	table, err := pricing.Default()
	if err != nil {
		t.Fatal(err)
	}
	e.table = table
	model := "gpt-4o-mini"
	if provider == ProviderAnthropic {
		model = "claude-haiku-4-5"
	}
	if e.cfg, err = ParseConfig("eval.yaml", []byte(fmt.Sprintf(batchConfig, model, provider)), table); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, `{"id":"r%d","input":"question %d","output":"answer number %d","tenant":"t%d"}`+"\n", i, i, i*7, i%3)
	}
	fmt.Fprintf(&b, `{"id":"dup","input":"question 1","output":"answer number 7","tenant":"t1"}`+"\n")
	e.file = filepath.Join(e.dir, "recs.jsonl")
	if err := os.WriteFile(e.file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *benv) db(name string) *ledger.DB {
	e.t.Helper()
	db, err := ledger.Open(context.Background(), filepath.Join(e.dir, name))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db
}

func (e *benv) opts(db *ledger.DB, out *bytes.Buffer) Options {
	env := map[string]string{"OPENAI_API_KEY": runBatchKey, "ANTHROPIC_API_KEY": runBatchKey, "ANTHROPIC_BASE_URL": e.fake.AnthropicBaseURL()}
	o := Options{Files: []string{e.file}, Config: e.cfg, DB: db, Table: e.table, HTTPClient: e.fake.Client(),
		Getenv: func(k string) string { return env[k] }, BaseURL: e.fake.OpenAIBaseURL(), Concurrency: 4, MaxRetries: 2,
		Sleep: func(ctx context.Context, d time.Duration) error { e.sleeps++; return ctx.Err() }, Seed: 1}
	if out != nil {
		o.Out = out
	}
	return o
}

// verdicts are a run's rows without what differs between live and batch
// (cost, cache flags, latency), sorted.
func verdicts(t *testing.T, out *bytes.Buffer) []string {
	t.Helper()
	var vs []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r Row
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		s := "nil"
		if r.Score != nil {
			s = fmt.Sprint(*r.Score)
		}
		vs = append(vs, fmt.Sprintf("%s %s %s %s %q %q", r.ID, r.Metric, r.Status, s, r.Reason, r.Error))
	}
	sort.Strings(vs)
	return vs
}

func (e *benv) live(db *ledger.DB) (*Result, []string) {
	e.t.Helper()
	var out bytes.Buffer
	res, err := Run(context.Background(), e.opts(db, &out))
	if err != nil {
		e.t.Fatal(err)
	}
	return res, verdicts(e.t, &out)
}

func (e *benv) batch(db *ledger.DB, bo BatchOptions, maxCost pricing.Money) (*Result, *BatchSummary, []string, error) {
	e.t.Helper()
	var out bytes.Buffer
	o := e.opts(db, &out)
	o.MaxCost = maxCost
	res, sum, err := RunBatch(context.Background(), o, bo)
	if res == nil {
		return nil, sum, nil, err
	}
	return res, sum, verdicts(e.t, &out), err
}

// batchRows counts the ledger's events billed at batch rates.
func batchRows(t *testing.T, db *ledger.DB) (n, hits int64, cost pricing.Money) {
	t.Helper()
	var c int64
	var pico int64
	if err := db.SQL().QueryRow(`SELECT COUNT(*), COALESCE(SUM(cost_dollars),0), COALESCE(SUM(cost_pico),0) FROM events WHERE batch = 1`).Scan(&n, &c, &pico); err != nil {
		t.Fatal(err)
	}
	c = c*1_000_000_000 + pico/1000
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM events WHERE cache_hit = 1`).Scan(&hits); err != nil {
		t.Fatal(err)
	}
	return n, hits, pricing.Money(c)
}

// The first end-to-end promise, for both providers: --batch gives
// the verdicts a live run gives on the same data, at exactly half the
// cost; its results fill the cache, so a live run afterwards sends
// nothing; the when: chain takes two rounds; the ledger rows say batch.
func TestBatchEqualsLiveAtHalfPrice(t *testing.T) {
	for _, provider := range []string{ProviderOpenAI, ProviderAnthropic} {
		t.Run(provider, func(t *testing.T) {
			e := newBatchEnv(t, provider, 40, batchfake.Options{Shuffle: true, Seed: 7})
			liveRes, liveRows := e.live(e.db("live.db"))
			if e.fake.LiveCalls() == 0 || e.fake.BatchesCreated() != 0 {
				t.Fatalf("live run: %d live calls, %d batches", e.fake.LiveCalls(), e.fake.BatchesCreated())
			}
			liveCalls := e.fake.LiveCalls()

			db := e.db("batch.db")
			res, sum, rows, err := e.batch(db, BatchOptions{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if e.fake.LiveCalls() != liveCalls {
				t.Fatalf("the batch run made %d live calls", e.fake.LiveCalls()-liveCalls)
			}
			if strings.Join(rows, "\n") != strings.Join(liveRows, "\n") {
				t.Fatalf("batch verdicts differ from live:\n%s\nlive:\n%s", strings.Join(rows, "\n"), strings.Join(liveRows, "\n"))
			}
			if sum.Rounds != 2 || sum.Batches != 2 || e.fake.BatchesCreated() != 2 {
				t.Fatalf("rounds %d, batches %d (fake %d); want 2 and 2", sum.Rounds, sum.Batches, e.fake.BatchesCreated())
			}
			if res.Calls != liveRes.Calls || sum.Submitted != liveRes.Calls || sum.Collected != liveRes.Calls {
				t.Fatalf("calls: batch %d (submitted %d, collected %d), live %d", res.Calls, sum.Submitted, sum.Collected, liveRes.Calls)
			}
			if res.Cost*2 != liveRes.Cost || res.Cost == 0 {
				t.Fatalf("batch cost %s, live %s: want exactly half", res.Cost.Display(), liveRes.Cost.Display())
			}
			if e.fake.MaxSubmitted() != 1 {
				t.Fatalf("a request was submitted %d times", e.fake.MaxSubmitted())
			}
			n, _, cost := batchRows(t, db)
			if n != res.Calls || cost != res.Cost {
				t.Fatalf("ledger: %d batch rows costing %s; want %d costing %s", n, cost.Display(), res.Calls, res.Cost.Display())
			}
			if res.Stop != StopNone {
				t.Fatalf("stop %q", res.Stop)
			}
			bs, _ := db.Batches(context.Background(), false)
			var bcost pricing.Money
			for _, b := range bs {
				if b.State != ledger.BatchCollected || b.Succeeded != b.Requests || b.Reserved < b.Cost {
					t.Fatalf("batch %+v", b)
				}
				bcost += b.Cost
			}
			if bcost != res.Cost {
				t.Fatalf("batches cost %s, run %s", bcost.Display(), res.Cost.Display())
			}

			// A live run of the same config on the batch ledger: all cached.
			before := e.fake.LiveCalls()
			again, againRows := e.live(db)
			if e.fake.LiveCalls() != before || again.Calls != 0 || again.CacheHits != liveRes.Calls+liveRes.CacheHits {
				t.Fatalf("live after batch: %d requests, %d calls, %d hits", e.fake.LiveCalls()-before, again.Calls, again.CacheHits)
			}
			if strings.Join(againRows, "\n") != strings.Join(liveRows, "\n") {
				t.Fatal("cached verdicts differ from live")
			}
			// What reusing them avoided is the batch price paid.
			if again.AvoidedCache != liveRes.Cost {
				t.Logf("avoided on a live rerun: %s (list price of the cached calls)", again.AvoidedCache.Display())
			}
		})
	}
}

// --no-wait submits and returns; rerunning it never submits a request
// twice: it polls, collects what ended, submits the next round, and the
// run that finds everything in writes the rows.
func TestBatchNoWaitResumesWithoutResubmitting(t *testing.T) {
	e := newBatchEnv(t, ProviderOpenAI, 12, batchfake.Options{})
	db := e.db("l.db")
	res, sum, _, err := e.batch(db, BatchOptions{NoWait: true}, 0)
	if err != nil || res != nil || !sum.Pending || sum.Batches != 1 || len(sum.Open) != 1 {
		t.Fatalf("first: res %v sum %+v err %v", res, sum, err)
	}
	bs, err := db.Batches(context.Background(), true)
	if err != nil || len(bs) != 1 || bs[0].RemoteID == "" || bs[0].Requests != sum.Submitted {
		t.Fatalf("ledger batches %+v %v", bs, err)
	}
	var runs int
	for i := 0; i < 20; i++ {
		res, _, _, err = e.batch(db, BatchOptions{NoWait: true}, 0)
		runs++
		if err != nil {
			t.Fatal(err)
		}
		if res != nil {
			break
		}
	}
	if res == nil {
		t.Fatal("never finished")
	}
	if e.fake.MaxSubmitted() != 1 || e.fake.BatchesCreated() != 2 {
		t.Fatalf("max submitted %d, batches %d; want 1 and 2 (two rounds)", e.fake.MaxSubmitted(), e.fake.BatchesCreated())
	}
	if res.NotRun != 0 || res.Stop != StopNone {
		t.Fatalf("final: not run %d, stop %q", res.NotRun, res.Stop)
	}
	all, _ := db.Batches(context.Background(), false)
	for _, b := range all {
		if b.State != ledger.BatchCollected || b.Succeeded != b.Requests {
			t.Fatalf("batch %+v", b)
		}
	}
	t.Logf("finished after %d reruns", runs)
}

// A batch that expires half done keeps its finished results; the rows of
// the rest are not_run, and the next run resubmits only those.
func TestBatchExpiredHalfResubmitsOnlyMissing(t *testing.T) {
	e := newBatchEnv(t, ProviderAnthropic, 10, batchfake.Options{Script: []batchfake.Outcome{batchfake.Expire}})
	db := e.db("l.db")
	res, sum, rows, err := e.batch(db, BatchOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := e.fake.SubmittedIDs()
	if sum.Missing == 0 || res.Stop != StopIncomplete || res.NotRun == 0 {
		t.Fatalf("missing %d, stop %q, not run %d", sum.Missing, res.Stop, res.NotRun)
	}
	notRun := 0
	for _, r := range rows {
		if strings.Contains(r, " not_run ") {
			notRun++
		}
	}
	if int64(notRun) != res.NotRun {
		t.Fatalf("%d not_run rows, summary %d", notRun, res.NotRun)
	}
	res2, sum2, _, err := e.batch(db, BatchOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Stop != StopNone || res2.NotRun != 0 {
		t.Fatalf("second run: stop %q, not run %d", res2.Stop, res2.NotRun)
	}
	var resubmitted int64
	for _, id := range e.fake.SubmittedIDs() {
		if n := e.fake.Submitted(id); n > 1 {
			resubmitted++
		}
	}
	// Only the first batch's missing requests go again (the second round's
	// deep requests are new, submitted once).
	if resubmitted != sum.Missing {
		t.Fatalf("resubmitted %d, missing %d (first run submitted %d)", resubmitted, sum.Missing, len(first))
	}
	if sum2.Submitted <= sum.Missing-1 {
		t.Fatalf("second run submitted %d", sum2.Submitted)
	}
}

// Per-request errors are error rows, never cached and never a score of 0;
// a rerun asks again.
func TestBatchRequestErrorsAreErrorRows(t *testing.T) {
	// The first two requests the fake sees fail (whatever order it asks in).
	var mu sync.Mutex
	bad := map[string]bool{}
	e := newBatchEnv(t, ProviderOpenAI, 8, batchfake.Options{ErrorFor: func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		if len(bad) < 2 {
			bad[id] = true
		}
		return bad[id]
	}})
	db := e.db("l.db")
	res, sum, rows, err := e.batch(db, BatchOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Errored != 2 || res.Errors < 2 {
		t.Fatalf("errored %d, error rows %d; want 2 and at least 2 (a duplicate record shares a request)", sum.Errored, res.Errors)
	}
	// A rerun asks again for exactly the errored requests.
	if _, sum2, _, err := e.batch(db, BatchOptions{}, 0); err != nil || sum2.Submitted != 2 {
		t.Fatalf("rerun submitted %d (%v); want the 2 errored", sum2.Submitted, err)
	}
	for id := range bad {
		if e.fake.Submitted(id) != 2 {
			t.Fatalf("errored %s submitted %d times", id, e.fake.Submitted(id))
		}
	}
	for _, r := range rows {
		if strings.Contains(r, " error ") && !strings.Contains(r, " nil ") {
			t.Fatalf("an error row has a score: %s", r)
		}
	}
	n, _ := db.JudgeCacheCount(context.Background())
	if n != sum.Collected {
		t.Fatalf("cache holds %d, want %d (errored requests are not billed, not cached)", n, sum.Collected)
	}
}

// --max-cost reserves each request's worst case at batch rates and cuts the
// batch to fit: spent never crosses the cap; the rest is not_run.
func TestBatchCapCutsToFit(t *testing.T) {
	e := newBatchEnv(t, ProviderOpenAI, 30, batchfake.Options{})
	db := e.db("l.db")
	// Find one request's worst case, and cap at 5½ of them.
	jc, err := newJudgeClient(e.cfg.Judges["small"], e.fake.OpenAIBaseURL(), runBatchKey, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	m := e.cfg.Order[1]
	p := Prompt{System: m.Prompt, User: "## Input\nquestion 10\n\n## Output\nanswer number 70\n\n" + AnswerInstruction}
	worst := m.judge.Price.Cost(jc.provider.WorstUsage(jc.provider.PromptBound(p)), true)
	capUSD := worst*11/2 + 1
	res, sum, _, err := e.batch(db, BatchOptions{}, capUSD)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Cut == 0 || res.Stop != StopBudget || res.NotRun == 0 {
		t.Fatalf("cut %d, stop %q, not run %d", sum.Cut, res.Stop, res.NotRun)
	}
	if res.Cost > capUSD {
		t.Fatalf("spent %s over the cap %s", res.Cost.Display(), capUSD.Display())
	}
	if sum.Submitted > 6 || sum.Submitted < 4 {
		t.Fatalf("submitted %d requests under a cap of about 5.5 worst cases", sum.Submitted)
	}
}

// Batches split at the request limit; every request still lands once.
func TestBatchSplitsAtLimits(t *testing.T) {
	e := newBatchEnv(t, ProviderOpenAI, 25, batchfake.Options{})
	db := e.db("l.db")
	res, sum, _, err := e.batch(db, BatchOptions{MaxRequests: 7}, 0)
	if err != nil {
		t.Fatal(err)
	}
	bs, _ := db.Batches(context.Background(), false)
	var total int64
	for _, b := range bs {
		if b.Requests > 7 {
			t.Fatalf("batch %s holds %d requests", b.ID, b.Requests)
		}
		total += b.Requests
	}
	if total != sum.Submitted || res.Calls != sum.Submitted || e.fake.MaxSubmitted() != 1 {
		t.Fatalf("total %d, submitted %d, calls %d", total, sum.Submitted, res.Calls)
	}
	// 24 distinct quality requests → 4 batches; deep's round adds more.
	if sum.Batches < 5 {
		t.Fatalf("%d batches", sum.Batches)
	}
}

// A status poll that fails is asked again at the next poll.
func TestBatchPollErrorIsRetried(t *testing.T) {
	e := newBatchEnv(t, ProviderOpenAI, 6, batchfake.Options{PollError: func(batchNo, poll int) bool { return poll <= 2 }})
	res, _, _, err := e.batch(e.db("l.db"), BatchOptions{}, 0)
	if err != nil || res.Stop != StopNone {
		t.Fatalf("%v %v", err, res)
	}
}

// A batch written to the ledger but never created at the provider (the
// process stopped in between) is abandoned and its requests planned again.
func TestBatchPreparingIsAbandoned(t *testing.T) {
	e := newBatchEnv(t, ProviderAnthropic, 4, batchfake.Options{})
	db := e.db("l.db")
	ctx := context.Background()
	jc, err := newJudgeClient(e.cfg.Judges["small"], e.fake.AnthropicBaseURL(), runBatchKey, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateBatch(ctx, ledger.Batch{ID: "old-1", Provider: ProviderAnthropic, Endpoint: jc.endpoint, Judge: "small",
		Model: "claude-haiku-4-5", Created: time.Now().Add(-time.Hour)}, []ledger.BatchRequest{{CustomID: "x", Metric: "quality"}}); err != nil {
		t.Fatal(err)
	}
	res, _, _, err := e.batch(db, BatchOptions{}, 0)
	if err != nil || res.Stop != StopNone {
		t.Fatalf("%v %+v", err, res)
	}
	if _, ok, _ := db.FindBatch(ctx, "old-1"); ok {
		t.Fatal("the never-created batch is still in the ledger")
	}
}

// A model without a batch price is refused: the cost is never guessed.
func TestBatchRefusesModelWithoutBatchPrice(t *testing.T) {
	e := newBatchEnv(t, ProviderOpenAI, 3, batchfake.Options{})
	e.cfg.Judges["small"].Price.Rates.NoBatch = true
	defer func() { e.cfg.Judges["small"].Price.Rates.NoBatch = false }()
	_, _, _, err := e.batch(e.db("l.db"), BatchOptions{}, 0)
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "has no Batch API price for gpt-4o-mini") {
		t.Fatalf("%v", err)
	}
	if e.fake.BatchesCreated() != 0 {
		t.Fatal("a batch was created")
	}
}

// The dry run's batch range is the live range at batch rates: half.
func TestDryRunBatchIsHalf(t *testing.T) {
	e := newBatchEnv(t, ProviderOpenAI, 10, batchfake.Options{})
	dr, err := DryRun(context.Background(), e.opts(e.db("l.db"), nil))
	if err != nil {
		t.Fatal(err)
	}
	if dr.NoBatch || dr.BatchHigh*2 != dr.CostHigh || dr.BatchLow*2 != dr.CostLow || dr.CostLow == 0 {
		t.Fatalf("live %s–%s, batch %s–%s", dr.CostLow.Display(), dr.CostHigh.Display(), dr.BatchLow.Display(), dr.BatchHigh.Display())
	}
}

// A batch the provider created but whose id never reached the ledger (the
// process died between the two) is found by its label and adopted, not
// submitted again.
func TestBatchPreparingIsAdopted(t *testing.T) {
	e := newBatchEnv(t, ProviderOpenAI, 3, batchfake.Options{})
	db := e.db("l.db")
	ctx := context.Background()
	o := e.opts(db, nil)
	o.defaults()
	clients, err := newClients(&o, true)
	if err != nil {
		t.Fatal(err)
	}
	jc := clients["small"]
	api, err := newBatchAPIFor(&o, jc.judge, jc)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	for _, k := range []string{"k1", "k2"} {
		line, err := api.Line(k, Prompt{System: "s", User: "u " + k})
		if err != nil {
			t.Fatal(err)
		}
		body.Write(append(line, '\n'))
	}
	created := time.Now()
	if err := db.CreateBatch(ctx, ledger.Batch{ID: "lost-1", Provider: ProviderOpenAI, Endpoint: jc.endpoint, Judge: "small", Model: "gpt-4o-mini", Created: created},
		[]ledger.BatchRequest{{CustomID: "k1", Metric: "quality"}, {CustomID: "k2", Metric: "quality"}}); err != nil {
		t.Fatal(err)
	}
	info, err := api.Submit(ctx, "lost-1", bytes.NewReader(body.Bytes()), 2, int64(body.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := e.batch(db, BatchOptions{}, 0); err != nil {
		t.Fatal(err)
	}
	got, ok, _ := db.FindBatch(ctx, "lost-1")
	if !ok || got.RemoteID != info.RemoteID || got.State == ledger.BatchPreparing {
		t.Fatalf("lost batch: %+v (provider id %s)", got, info.RemoteID)
	}
	if e.fake.Submitted("k1") != 1 {
		t.Fatalf("k1 submitted %d times", e.fake.Submitted("k1"))
	}
}

// The same batch run on a PostgreSQL ledger: the batches, their requests
// and the collected verdicts live there, with the same rows as live.
func TestBatchOnPostgres(t *testing.T) {
	e := newBatchEnv(t, ProviderOpenAI, 12, batchfake.Options{Shuffle: true, Seed: 2})
	liveRes, liveRows := e.live(e.db("live.db"))
	db, err := ledger.Open(context.Background(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, sum, rows, err := e.batch(db, BatchOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows, "\n") != strings.Join(liveRows, "\n") || res.Cost*2 != liveRes.Cost || sum.Rounds != 2 {
		t.Fatalf("postgres batch: cost %s (live %s), rounds %d\n%s", res.Cost.Display(), liveRes.Cost.Display(), sum.Rounds, strings.Join(rows, "\n"))
	}
	bs, err := db.Batches(context.Background(), false)
	if err != nil || len(bs) != 2 || bs[0].State != ledger.BatchCollected {
		t.Fatalf("batches %+v %v", bs, err)
	}
}
