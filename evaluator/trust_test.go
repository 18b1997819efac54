package evaluator

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/records"
)

// writeUsage answers with content and the given usage (prompt -1: no usage block).
func writeUsage(w http.ResponseWriter, content string, prompt, cached, completion int) {
	w.Header().Set("Content-Type", "application/json")
	usage := ""
	if prompt != -1 {
		usage = fmt.Sprintf(`,"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d}}`,
			prompt, completion, prompt+completion, cached)
	}
	fmt.Fprintf(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}]%s}`, content, usage)
}

// honest answers every request with the default verdict and a usage an
// honest server could bill (100 prompt tokens, 20 completion tokens).
func honest(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
	writeUsage(w, defaultVerdict(req), 100, 0, 20)
	return true
}

// honestCost is honest's usage at gpt-4o-mini prices.
const honestCost = pricing.Money(100*150 + 20*600)

// rawRows are the rows as written (not sorted).
func rawRows(t *testing.T, b []byte) []Row {
	var rows []Row
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r Row
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("row %s: %v", l, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// maxWorst is the largest reservation any record of nRecords(n) needs on
// oneJudge: the prompt bound at the input price plus max_tokens of output.
func maxWorst(t *testing.T, e *env, cfg *Config, n int) pricing.Money {
	m := cfg.Order[0]
	var w pricing.Money
	for i := 0; i < n; i++ {
		rec := records.Record{ID: fmt.Sprintf("r%03d", i), Input: fmt.Sprintf("question %d", i), Output: fmt.Sprintf("a good answer %d", i)}
		b := promptBound(chatMessages(m.Prompt, UserMessage(m, &rec), nil))
		w = max(w, m.judge.Price.Cost(pricing.Usage{InputTokens: b, OutputTokens: int64(m.judge.MaxTokens)}, false))
	}
	return w
}

func TestReasoningJudgeWire(t *testing.T) {
	e := newEnv(t, honest)
	cfg := e.config(`
judges:
  r: {model: gpt-5-mini}
  c: {model: gpt-4o-mini}
metrics:
  - {name: a, type: judge, judge: r, prompt: Rate A.}
  - {name: b, type: judge, judge: c, prompt: Rate B.}
`)
	res, rows := e.run(e.opts(cfg, e.file("r.jsonl", nRecords(2))))
	if res.Errors != 0 || len(rows) != 4 || e.fake.requests.Load() != 4 || len(e.sleeps) != 0 {
		t.Fatalf("errors=%d rows=%s requests=%d sleeps=%v", res.Errors, brief(rows), e.fake.requests.Load(), e.sleeps)
	}
	for _, r := range rows {
		if r.Status != StatusPass {
			t.Errorf("row %+v", r)
		}
	}
	for _, raw := range e.fake.raw {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		_, hasMax := m["max_tokens"]
		temp, hasTemp := m["temperature"]
		switch m["model"] {
		case "gpt-5-mini":
			if m["max_completion_tokens"] != float64(DefaultReasoningMaxTokens) || hasMax || hasTemp {
				t.Errorf("reasoning request: %s", raw)
			}
		case "gpt-4o-mini":
			if m["max_tokens"] != float64(256) || !hasTemp || temp != float64(0) || !bytes.Contains(raw, []byte(`"temperature":0,`)) {
				t.Errorf("chat request: %s", raw)
			}
			if _, ok := m["max_completion_tokens"]; ok {
				t.Errorf("chat request has max_completion_tokens: %s", raw)
			}
		default:
			t.Errorf("model %v", m["model"])
		}
	}
	// Each judge's reservation is its own completion bound.
	if got := res.Metrics[0].Name + "/" + fmt.Sprint(cfg.Judges["r"].MaxTokens); got != "a/4096" && got != "b/4096" {
		t.Errorf("reasoning max tokens: %s", got)
	}
}

func TestLocalValidationErrorNotRetried(t *testing.T) {
	e := newEnv(t, honest)
	// reasoning: false on a gpt-5 model makes go-openai refuse max_tokens
	// before sending: a local error, the same for every call.
	cfg := e.config(`
judges:
  r: {model: gpt-5-mini, reasoning: false}
metrics:
  - {name: a, type: judge, judge: r, prompt: Rate A.}
`)
	o := e.opts(cfg, e.file("r.jsonl", nRecords(5)))
	res, err := Run(context.Background(), o)
	var fe *FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), `judge "r": the request was refused before sending: this model is not supported MaxTokens`) {
		t.Fatalf("err = %v", err)
	}
	if e.fake.requests.Load() != 0 || res.Requests != 0 || len(e.sleeps) != 0 || res.Retries[RetryNetwork] != 0 {
		t.Errorf("requests=%d/%d sleeps=%v retries=%v", e.fake.requests.Load(), res.Requests, e.sleeps, res.Retries)
	}
}

func TestDryRunReservesReasoningOutput(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config(`
judges:
  r: {model: gpt-5-mini}
metrics:
  - {name: a, type: judge, judge: r, prompt: Rate A.}
`)
	o := e.opts(cfg, e.file("r.jsonl", nRecords(3)))
	dr, err := DryRun(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	m := dr.Metrics[0]
	price := cfg.Judges["r"].Price
	want := price.Cost(pricing.Usage{InputTokens: m.PromptTokens, OutputTokens: 3 * 4096}, false)
	if m.OutputMax != 3*4096 || m.CostHigh != want {
		t.Errorf("dry run: output max %d cost high %s, want %d and %s", m.OutputMax, m.CostHigh, 3*4096, want)
	}
}

// The cap is reached, not merely approached: a run ends within one call's
// worst case of it, at any concurrency, and never above it.
func TestBudgetCapReached(t *testing.T) {
	for _, conc := range []int{1, 8, 32} {
		t.Run(fmt.Sprint(conc), func(t *testing.T) {
			e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
				time.Sleep(time.Duration(n%3) * time.Millisecond)
				return honest(n, req, w, r)
			})
			cfg := e.config(oneJudge)
			o := e.opts(cfg, e.file("r.jsonl", nRecords(300)))
			o.Concurrency = conc
			o.MaxCost = pricing.Money(3_000_000) // $0.003: about 111 calls of $0.000027
			res, rows := e.run(o)
			_, ledgerCost, _ := e.ledgerSum(res.RunID)
			worst := maxWorst(t, e, cfg, 300)
			if res.Stop != StopBudget || ledgerCost != res.Cost || res.Cost > o.MaxCost || o.MaxCost-res.Cost >= worst {
				t.Fatalf("stop=%q spent %s (ledger %s) of cap %s; must end within one worst case (%s)", res.Stop, res.Cost, ledgerCost, o.MaxCost, worst)
			}
			if res.Calls != int64(res.Cost/honestCost) || res.Flagged != 0 {
				t.Errorf("calls=%d cost=%s flagged=%d", res.Calls, res.Cost, res.Flagged)
			}
			t.Logf("concurrency %d: spent %s of %s (%.1f%%), %d calls; one worst case is %s", conc, res.Cost, o.MaxCost,
				100*float64(res.Cost)/float64(o.MaxCost), res.Calls, worst)
			_ = rows
		})
	}
}

func TestOverbillStopsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name               string
		prompt, completion int
		cost               pricing.Money
	}{
		{"prompt", 100_000, 20, 100_000*150 + 20*600}, // a tokenizer that counts 100k tokens for a short prompt
		{"completion", 100, 5000, 100*150 + 5000*600}, // a reply far over max_tokens 256
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
				writeUsage(w, defaultVerdict(req), tc.prompt, 0, tc.completion)
				return true
			})
			o := e.opts(e.config(oneJudge), e.file("r.jsonl", nRecords(20)))
			o.Concurrency = 1
			o.MaxCost = pricing.Dollars(1)
			var out bytes.Buffer
			o.Out = &out
			res, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			n, cost, _ := e.ledgerSum(res.RunID)
			if res.Stop != StopOverbill || e.fake.requests.Load() != 1 || n != 1 || cost != tc.cost || res.Cost != tc.cost || res.LeftRecords+res.Sampled != 20 || res.LeftRecords < 18 {
				t.Fatalf("stop=%q requests=%d ledger %d/%s result %s left %d", res.Stop, e.fake.requests.Load(), n, cost, res.Cost, res.LeftRecords)
			}
			if !strings.Contains(res.StopDetail, "billed "+tc.cost.Display()+" for one call where at most ") || res.Flagged != 1 {
				t.Errorf("detail %q flagged %d", res.StopDetail, res.Flagged)
			}
			// The verdict was paid for: it is kept and cached.
			rows := rawRows(t, out.Bytes())
			if len(rows) == 0 || rows[0].Status != StatusPass || rows[0].Cost != tc.cost || int64(len(rows)) != res.Sampled || res.NotRun != res.Sampled-1 {
				t.Errorf("rows %+v", rows)
			}
			if j := res.JSON(); j.Stop == nil || j.Stop.Reason != "overbill" || j.Stop.Spent != tc.cost || *j.Stop.Cap != pricing.Dollars(1) {
				t.Errorf("json stop %+v", j.Stop)
			}
		})
	}
}

func TestMissingAndInvalidUsageAreEstimated(t *testing.T) {
	const reply = `{"score": 0.9, "reason": "fine"}`
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(req.Messages[1].Content, "answer 0") {
			writeUsage(w, reply, -1, 0, 0) // no usage block
		} else {
			writeUsage(w, reply, -5, 0, 20) // impossible
		}
		return true
	})
	cfg := e.config(oneJudge)
	f := e.file("r.jsonl", nRecords(2))
	res, rows := e.run(e.opts(cfg, f))
	m := cfg.Order[0]
	counter, err := estimator.NewCounter(m.judge.Price)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{ledger.EstimateNoUsage, ledger.EstimateBadUsage} {
		rec := records.Record{Input: fmt.Sprintf("question %d", i), Output: fmt.Sprintf("a good answer %d", i)}
		bound := promptBound(chatMessages(m.Prompt, UserMessage(m, &rec), nil))
		cost := m.judge.Price.Cost(pricing.Usage{InputTokens: bound, OutputTokens: counter.Text(reply)}, false)
		if r := rows[i]; r.Estimated != want || r.Cost != cost || r.Cost == 0 || r.InputTokens != bound || r.Status != StatusPass {
			t.Errorf("row %d = %+v, want estimated %s at %s", i, r, want, cost)
		}
	}
	var est []string
	rs, err := e.db.SQL().Query(`SELECT estimate FROM events WHERE run_id = ? ORDER BY event_key`, res.RunID)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var s string
		rs.Scan(&s)
		est = append(est, s)
	}
	rs.Close()
	if strings.Join(est, ",") != "no_usage,bad_usage" || res.Estimated != 2 || res.Flagged != 1 || !strings.Contains(res.FlaggedWhy, "invalid usage (prompt_tokens -5") {
		t.Errorf("ledger estimates %v, result estimated %d flagged %d (%s)", est, res.Estimated, res.Flagged, res.FlaggedWhy)
	}
}

func TestCancelledCallsRecordedAtWorstCase(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var arrived atomic.Int64
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		if arrived.Add(1) == 4 {
			cancel() // Ctrl-C with 4 calls sent and unanswered
		}
		<-r.Context().Done()
		return true
	})
	cfg := e.config(oneJudge)
	o := e.opts(cfg, e.file("r.jsonl", nRecords(4)))
	o.Concurrency = 4
	res, err := Run(ctx, o)
	if err != nil || res.Stop != StopInterrupted {
		t.Fatalf("err=%v stop=%q", err, res.Stop)
	}
	var n int64
	var cost int64
	e.db.SQL().QueryRow(`SELECT COUNT(*), SUM(cost_dollars * 1000000000 + cost_pico / 1000) FROM events WHERE run_id = ? AND estimate = 'unsettled'`, res.RunID).Scan(&n, &cost)
	var want pricing.Money
	m := cfg.Order[0]
	for i := 0; i < 4; i++ {
		rec := records.Record{Input: fmt.Sprintf("question %d", i), Output: fmt.Sprintf("a good answer %d", i)}
		want += m.judge.Price.Cost(pricing.Usage{InputTokens: promptBound(chatMessages(m.Prompt, UserMessage(m, &rec), nil)), OutputTokens: 256}, false)
	}
	if n != 4 || pricing.Money(cost) != want || res.Unsettled != 4 || res.UnsettledCost != want || res.Cost != want {
		t.Errorf("unsettled events %d cost %s, result %d %s (cost %s), want 4 at %s", n, pricing.Money(cost), res.Unsettled, res.UnsettledCost, res.Cost, want)
	}
}

func TestTimedOutAttemptRecorded(t *testing.T) {
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			<-r.Context().Done() // longer than the timeout
			return true
		}
		return honest(n, req, w, r)
	})
	o := e.opts(e.config(oneJudge), e.file("r.jsonl", nRecords(1)))
	o.Timeout = 50 * time.Millisecond
	res, rows := e.run(o)
	if res.Unsettled != 1 || res.Calls != 1 || rows[0].Status != StatusPass || res.Retries[RetryTimeout] != 1 || res.Cost != honestCost+res.UnsettledCost {
		t.Errorf("unsettled=%d calls=%d row=%+v retries=%v cost=%s", res.Unsettled, res.Calls, rows[0], res.Retries, res.Cost)
	}
	if n, cost, _ := e.ledgerSum(res.RunID); n != 2 || cost != res.Cost {
		t.Errorf("ledger %d events %s", n, cost)
	}
}

// lockLedger holds the ledger's write lock from another connection until
// the returned function is called.
func lockLedger(t *testing.T, path string) func() {
	sdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sdb.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		sdb.Close()
	}
}

func TestBusyLedgerRetriedThenSaved(t *testing.T) {
	var unlock func()
	var locked atomic.Bool
	var e *env
	e = newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		if locked.CompareAndSwap(false, true) {
			unlock = lockLedger(t, filepath.Join(e.dir, "busy.db"))
			time.AfterFunc(300*time.Millisecond, unlock)
		}
		return honest(n, req, w, r)
	})
	db, err := ledger.OpenWith(context.Background(), filepath.Join(e.dir, "busy.db"), ledger.OpenOptions{BusyTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	o := e.opts(e.config(oneJudge), e.file("r.jsonl", nRecords(20)))
	o.DB = db
	o.WriteRetryFor = 30 * time.Second
	var out bytes.Buffer
	o.Out = &out
	res, err := Run(context.Background(), o)
	if err != nil || res.Stop != StopNone {
		t.Fatalf("err=%v stop=%q", err, res.Stop)
	}
	var n int64
	db.SQL().QueryRow(`SELECT COUNT(*) FROM events WHERE run_id = ?`, res.RunID).Scan(&n)
	if n != 20 || e.fake.requests.Load() != 20 || res.Unrecorded != 0 {
		t.Errorf("events %d requests %d unrecorded %d", n, e.fake.requests.Load(), res.Unrecorded)
	}
}

func TestLedgerWriteFailureStopsSending(t *testing.T) {
	var once sync.Once
	var e *env
	var unlock func()
	e = newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		// Every answer waits until another process holds the write lock.
		once.Do(func() { unlock = lockLedger(t, filepath.Join(e.dir, "busy.db")) })
		return honest(n, req, w, r)
	})
	db, err := ledger.OpenWith(context.Background(), filepath.Join(e.dir, "busy.db"), ledger.OpenOptions{BusyTimeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	o := e.opts(e.config(oneJudge), e.file("r.jsonl", nRecords(200)))
	o.DB = db
	o.Concurrency = 4
	o.WriteRetryFor = 200 * time.Millisecond
	res, err := Run(context.Background(), o)
	if unlock != nil {
		unlock()
	}
	if err == nil || !strings.Contains(err.Error(), "the ledger cannot be written") || res.Stop != StopFatal {
		t.Fatalf("err=%v stop=%q", err, res.Stop)
	}
	// Every worker blocks on its write: no call is sent after the first
	// one that could not be saved, beyond those already in flight.
	if got := e.fake.requests.Load(); got > 4 || res.Unrecorded < 1 || res.Unrecorded > 4 {
		t.Errorf("requests %d, unrecorded %d", got, res.Unrecorded)
	}
}

func TestIdenticalRequestsSentOnce(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&b, `{"id":"r%02d","input":"question %d","output":"a good answer %d"}`+"\n", i, i%10, i%10)
	}
	for _, noCache := range []bool{false, true} {
		t.Run(fmt.Sprint("no-cache=", noCache), func(t *testing.T) {
			e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
				time.Sleep(2 * time.Millisecond)
				return honest(n, req, w, r)
			})
			o := e.opts(e.config(oneJudge), e.file("r.jsonl", b.String()))
			o.Concurrency = 8
			o.NoCache = noCache
			res, rows := e.run(o)
			if e.fake.requests.Load() != 10 || res.Calls != 10 || res.CacheHits != 20 || res.Cost != 10*honestCost || len(rows) != 30 {
				t.Errorf("requests=%d calls=%d hits=%d cost=%s rows=%d", e.fake.requests.Load(), res.Calls, res.CacheHits, res.Cost, len(rows))
			}
			if res.AvoidedCache != 20*honestCost {
				t.Errorf("avoided %s", res.AvoidedCache)
			}
		})
	}
}

func TestBudgetStopSummary(t *testing.T) {
	e := newEnv(t, honest)
	cfg := e.config(`
judges:
  small: {model: gpt-4o-mini}
metrics:
  - {name: q1, type: judge, judge: small, prompt: Rate one.}
  - {name: q2, type: judge, judge: small, prompt: Rate two.}
`)
	o := e.opts(cfg, e.file("r.jsonl", nRecords(400)))
	o.Sample = Sample{Fraction: 0.5}
	o.MaxCost = pricing.Money(1_000_000)
	var out bytes.Buffer
	o.Out = &out
	res, err := Run(context.Background(), o)
	if err != nil || res.Stop != StopBudget {
		t.Fatalf("err=%v stop=%q", err, res.Stop)
	}
	if res.AvoidedSamp != 0 {
		t.Errorf("a budget stop counted %s of sampling savings", res.AvoidedSamp)
	}
	j := res.JSON()
	if j.Stop == nil || j.Stop.Reason != "budget" || *j.Stop.Cap != o.MaxCost || j.Stop.Spent != res.Cost || j.Stop.RecordsLeft != res.LeftRecords || j.Stop.RecordsLeft == 0 {
		t.Errorf("json stop = %+v", j.Stop)
	}
	// No record is half-written: every record with rows has both metrics.
	rows := rawRows(t, out.Bytes())
	per := map[string][]string{}
	for _, r := range rows {
		per[r.ID] = append(per[r.ID], r.Metric+":"+r.Status)
	}
	notRun := 0
	for id, ms := range per {
		if len(ms) != 2 {
			t.Errorf("record %s has rows %v", id, ms)
		}
		for _, m := range ms {
			if strings.HasSuffix(m, ":not_run") {
				notRun++
			}
		}
	}
	if int64(len(per)) != res.Sampled || int64(notRun) != res.NotRun {
		t.Errorf("records with rows %d, sampled %d; not_run rows %d, NotRun %d", len(per), res.Sampled, notRun, res.NotRun)
	}
}

func TestRowsInInputOrder(t *testing.T) {
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		time.Sleep(time.Duration((n*7)%5) * time.Millisecond)
		return honest(n, req, w, r)
	})
	o := e.opts(e.config(oneJudge), e.file("r.jsonl", nRecords(100)))
	o.Concurrency = 16
	o.KeepRows = true
	var out bytes.Buffer
	o.Out = &out
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	rows := rawRows(t, out.Bytes())
	if len(rows) != 100 || len(res.Rows) != 100 {
		t.Fatalf("rows %d kept %d", len(rows), len(res.Rows))
	}
	for i := range rows {
		if want := fmt.Sprintf("r%03d", i); rows[i].ID != want || res.Rows[i].ID != want {
			t.Fatalf("row %d is %s (kept %s), want %s", i, rows[i].ID, res.Rows[i].ID, want)
		}
	}
}

// A when-skipped call is valued at the prompt a real call bills (no safety
// margin) and the metric's mean reply; a fully cached rerun values it the
// same, so the baseline does not grow.
func TestCascadeSavingsExactAndStable(t *testing.T) {
	e := newEnv(t, nil)
	f := e.file("r.jsonl", threeRecords)
	cfg := e.config(testConfig)
	res, _ := e.run(e.opts(cfg, f))
	deep := cfg.Order[2]
	rec := records.Record{ID: "b", Input: "q2", Output: "bad, call 123-45-6789"}
	counter, _ := estimator.NewCounter(deep.judge.Price)
	msgs := chatMessages(deep.Prompt, UserMessage(deep, &rec), nil)
	em := []estimator.Message{{Role: msgs[0].Role, Content: msgs[0].Content}, {Role: msgs[1].Role, Content: msgs[1].Content}}
	want := pricing.Money(150*counter.Chat(em, nil) + 20*600)
	if res.AvoidedSkip != want {
		t.Errorf("avoided by the skip %s, want %s", res.AvoidedSkip, want)
	}
	if res.RecordsPassed != 2 {
		t.Errorf("records passed %d, want 2 (a and c)", res.RecordsPassed)
	}
	res2, _ := e.run(e.opts(cfg, f))
	if res2.Calls != 0 || res2.AvoidedSkip != res.AvoidedSkip || res2.Baseline != res.Baseline {
		t.Errorf("cached rerun: calls %d skip %s baseline %s; first run skip %s baseline %s", res2.Calls, res2.AvoidedSkip, res2.Baseline, res.AvoidedSkip, res.Baseline)
	}
}

func TestRetriesByCause(t *testing.T) {
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		switch n {
		case 1:
			w.WriteHeader(429)
			fmt.Fprint(w, `{"error":{"message":"slow down","type":"rate_limit"}}`)
		case 2, 3:
			w.WriteHeader(503)
			fmt.Fprint(w, `{"error":{"message":"busy","type":"server_error"}}`)
		case 4:
			writeUsage(w, "not json at all", 100, 0, 20)
		default:
			return honest(n, req, w, r)
		}
		return true
	})
	o := e.opts(e.config(oneJudge), e.file("r.jsonl", nRecords(1)))
	res, _ := e.run(o)
	want := map[string]int64{"429": 1, "5xx": 2, "repair": 1}
	if fmt.Sprint(res.Retries) != fmt.Sprint(want) {
		t.Errorf("retries %v, want %v", res.Retries, want)
	}
	if j := res.JSON(); fmt.Sprint(j.Retries) != "map[429:1 5xx:2 network:0 repair:1 timeout:0]" {
		t.Errorf("json retries %v", j.Retries)
	}
}

func TestServerEchoedKeysRedacted(t *testing.T) {
	e := newEnv(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"error":{"message":"bad header Authorization: %s; x-api-key: other-key-123; see https://h/v1?api-key=qq-999&x=1","type":"invalid_request_error"}}`, r.Header.Get("Authorization"))
		return true
	})
	o := e.opts(e.config(oneJudge), e.file("r.jsonl", nRecords(1)))
	_, rows := e.run(o)
	got := rows[0].Error
	for _, leak := range []string{testKey, "SECRET", "other-key-123", "qq-999"} {
		if strings.Contains(got, leak) {
			t.Fatalf("row error leaks %q: %s", leak, got)
		}
	}
	if got != "judge endpoint HTTP 400: bad header Authorization: [REDACTED]; x-api-key: [REDACTED]; see https://h/v1?api-key=[REDACTED]&x=1" {
		t.Errorf("row error = %s", got)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"Authorization: Bearer abc.def; next": "Authorization: [REDACTED]; next",
		`{"authorization":"Bearer xyz"}`:      `{"authorization":"[REDACTED]"}`,
		"token Bearer abc123 expired":         "token Bearer [REDACTED] expired",
		"x-api-key=k1&y=2":                    "x-api-key=[REDACTED]&y=2",
		"key sk-proj-ABCDEFGH12345 is bad":    "key [REDACTED] is bad",
		"https://x/v1?api_key=zz":             "https://x/v1?api_key=[REDACTED]",
		"nothing secret-free here: rate=0.5":  "nothing secret-free here: rate=0.5",
		"the known key " + testKey + " shown": "the known key [REDACTED] shown",
	} {
		if got := Redact(in, testKey); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
