package evaluator

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/records"
)

// DefaultBaseURL is the judge endpoint when neither the judge, --base-url
// nor OPENAI_BASE_URL names one.
const DefaultBaseURL = "https://api.openai.com/v1"

// Options configure a run. Durations and the random source are injectable
// so tests run fast and deterministically.
type Options struct {
	Files  []string
	Map    map[string]string
	Config *Config
	DB     *ledger.DB
	Table  *pricing.Table

	HTTPClient *http.Client
	Getenv     func(string) string
	BaseURL    string // --base-url; else OPENAI_BASE_URL; else DefaultBaseURL

	Concurrency int           // default 8
	MaxRetries  int           // retries after the first attempt (0 allowed)
	Timeout     time.Duration // per attempt; default 60s
	BackoffBase time.Duration // first backoff; default 500ms
	BackoffMax  time.Duration // largest backoff; default 30s
	Sleep       func(ctx context.Context, d time.Duration) error
	Rand        *mrand.Rand // jitter; default seeded from the run id

	Sample    Sample
	Seed      uint64
	MinTokens int64

	NoCache, Refresh, StoreText, Strict bool
	MaxCost                             pricing.Money // 0: no cap

	Out      io.Writer                  // JSONL result rows (nil: none)
	BadLine  func(e *records.LineError) // each skipped bad line
	Progress func(Progress)             // after each batch is written
	KeepRows bool                       // keep rows in Result.Rows (for --junit)

	Now   func() time.Time
	RunID string
}

// Progress is the state of a run, reported as batches are written.
type Progress struct {
	Records      int64 // records finished
	Spent        pricing.Money
	Calls        int64
	CacheHits    int64
	Errors       int64
	BytesRead    int64 // of the current file set, for an ETA
	BytesTotal   int64
	Elapsed      time.Duration
	SampledSoFar int64
}

// Row is one record × metric result (the --out JSONL schema).
type Row struct {
	ID           string        `json:"id"`
	Metric       string        `json:"metric"`
	Status       string        `json:"status"` // pass | fail | skipped | error
	Score        *float64      `json:"score"`
	Reason       string        `json:"reason"`
	Model        string        `json:"model"`
	Cached       bool          `json:"cached"`
	InputTokens  int64         `json:"input_tokens"`
	CachedTokens int64         `json:"cached_tokens"`
	OutputTokens int64         `json:"output_tokens"`
	Cost         pricing.Money `json:"cost_usd"`
	LatencyMS    int64         `json:"latency_ms"`
	Error        string        `json:"error"`
}

// Statuses of a row.
const (
	StatusPass    = "pass"
	StatusFail    = "fail"
	StatusSkipped = "skipped"
	StatusError   = "error"
)

// Stop reasons.
const (
	StopNone        = ""
	StopBudget      = "budget"
	StopInterrupted = "interrupted"
	StopFatal       = "fatal"
)

var errBudget = errors.New("budget cap reached")

// run is the state of one Run.
type run struct {
	opts     Options
	cfg      *Config
	clients  map[string]*judgeClient
	budget   *budget
	rp       *retryPolicy
	counters *counters
	requests atomic.Int64

	stopOnce sync.Once
	stopCh   chan struct{}
	stopWhy  atomic.Value // string
	fatal    atomic.Value // error
}

func (r *run) stop(why string, err error) {
	r.stopOnce.Do(func() {
		r.stopWhy.Store(why)
		if err != nil {
			r.fatal.Store(err)
		}
		close(r.stopCh)
	})
}

func (r *run) stopped() bool {
	select {
	case <-r.stopCh:
		return true
	default:
		return false
	}
}

// NewRunID is a sortable run id: UTC time and 6 random hex digits.
func NewRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

func (o *Options) defaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 500 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	if o.RunID == "" {
		o.RunID = NewRunID(o.Now())
	}
	if o.Sleep == nil {
		o.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	if o.Rand == nil {
		o.Rand = mrand.New(mrand.NewPCG(uint64(len(o.RunID)), uint64(o.Now().UnixNano())))
	}
}

// Endpoint is the base URL a judge is called at.
func (o *Options) Endpoint(j *Judge) string {
	switch {
	case j.BaseURL != "":
		return j.BaseURL
	case o.BaseURL != "":
		return o.BaseURL
	case o.Getenv != nil && o.Getenv("OPENAI_BASE_URL") != "":
		return o.Getenv("OPENAI_BASE_URL")
	}
	return DefaultBaseURL
}

// KeyEnv is the environment variable holding a judge's API key.
func KeyEnv(j *Judge) string {
	if j.APIKeyEnv != "" {
		return j.APIKeyEnv
	}
	return "OPENAI_API_KEY"
}

// newClients builds a client per judge; with needKeys, a judge without an
// API key in its environment variable is an error (before any request).
func newClients(o *Options, needKeys bool) (map[string]*judgeClient, error) {
	out := map[string]*judgeClient{}
	for _, j := range o.Config.JudgesUsed() {
		key := o.Getenv(KeyEnv(j))
		if needKeys && key == "" {
			return nil, &ConfigError{fmt.Sprintf("judge %q: %s is not set; export the API key for %s (or set api_key_env for the judge); --dry-run needs no key", j.Name, KeyEnv(j), redactURL(o.Endpoint(j)))}
		}
		jc, err := newJudgeClient(j, o.Endpoint(j), key, o.HTTPClient)
		if err != nil {
			return nil, err
		}
		out[j.Name] = jc
	}
	return out, nil
}

// Requests is how many HTTP requests a run sent (for tests and the report).
func (res *Result) RequestsSent() int64 { return res.Requests }

// Run evaluates every (sampled) record of opts.Files against the config's
// metrics. It returns a Result for budget stops and interruptions too (with
// Stop set); err is for failures (a fatal endpoint answer, a database error,
// a bad line under --strict).
func Run(ctx context.Context, opts Options) (*Result, error) {
	opts.defaults()
	clients, err := newClients(&opts, true)
	if err != nil {
		return nil, err
	}
	r := &run{opts: opts, cfg: opts.Config, clients: clients, budget: &budget{cap: opts.MaxCost}, counters: &counters{}, stopCh: make(chan struct{})}
	var jmu sync.Mutex
	r.rp = &retryPolicy{
		maxRetries: opts.MaxRetries, timeout: opts.Timeout, base: opts.BackoffBase, max: opts.BackoffMax,
		sleep: opts.Sleep, now: opts.Now, attempts: &r.requests,
		jitter: func() float64 { jmu.Lock(); defer jmu.Unlock(); return opts.Rand.Float64() },
	}
	res := newResult(opts)
	start := opts.Now()
	wctx := context.WithoutCancel(ctx)
	if opts.DB != nil {
		if err := opts.DB.StartRun(wctx, opts.RunID, ledger.SourceEval, start, fmt.Sprintf("%d file(s)", len(opts.Files))); err != nil {
			return nil, err
		}
	}

	type job struct {
		seq int64
		rec records.Record
	}
	jobs := make(chan job, opts.Concurrency)
	outs := make(chan *outcome, opts.Concurrency*2)
	var wg sync.WaitGroup
	for i := 0; i < opts.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				outs <- r.evalRecord(ctx, j.seq, &j.rec)
			}
		}()
	}

	// The writer: one goroutine owns the DB writes, the out file and the totals.
	var werr error
	wdone := make(chan struct{})
	var progressBytes atomic.Int64
	var progressTotal atomic.Int64
	var sampledSoFar atomic.Int64
	go func() {
		defer close(wdone)
		werr = r.write(wctx, outs, res, func() Progress {
			return Progress{BytesRead: progressBytes.Load(), BytesTotal: progressTotal.Load(), Elapsed: opts.Now().Sub(start), SampledSoFar: sampledSoFar.Load()}
		})
		if werr != nil {
			r.stop(StopFatal, werr)
		}
	}()

	// The producer: read, sample, dispatch; after a budget stop keep reading
	// (no calls) to count what is left.
	rstats, perr := forEachSampled(ctx, &opts, r.stopCh, func(seq int64, rec records.Record, read, total int64) error {
		progressBytes.Store(read)
		progressTotal.Store(total)
		if r.stopped() {
			if r.stopWhy.Load() == StopBudget {
				res.LeftRecords++
				return nil
			}
			return errStopReading
		}
		sampledSoFar.Add(1)
		select {
		case jobs <- job{seq, rec}:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.stopCh:
			if r.stopWhy.Load() == StopBudget {
				res.LeftRecords++
				return nil
			}
			return errStopReading
		}
		return nil
	})
	close(jobs)
	wg.Wait()
	close(outs)
	<-wdone

	res.Records, res.Sampled, res.BadLines = rstats.records, rstats.sampled-res.LeftRecords, rstats.bad
	res.Requests = r.requests.Load()
	res.finish(opts)

	status := "ok"
	var retErr error
	switch {
	case werr != nil:
		status, retErr = "error", werr
	case perr != nil && !errors.Is(perr, errStopReading) && !errors.Is(perr, context.Canceled):
		status, retErr = "error", perr
	case ctx.Err() != nil:
		status, res.Stop = "interrupted", StopInterrupted
	case r.stopped():
		why, _ := r.stopWhy.Load().(string)
		res.Stop = why
		status = why
		if f, ok := r.fatal.Load().(error); ok {
			retErr = f
			status = "error"
		}
	}
	if opts.DB != nil {
		if err := opts.DB.FinishRun(wctx, opts.RunID, status, opts.Now()); err != nil && retErr == nil {
			retErr = err
		}
	}
	return res, retErr
}

var errStopReading = errors.New("stop reading")

type readStats struct{ records, sampled, bad int64 }

// forEachSampled streams the files and calls fn for each sampled record with
// its ordinal (1-based, over all files). A count sample reads the files
// twice: once to find the hash threshold, once to evaluate.
func forEachSampled(ctx context.Context, o *Options, stop <-chan struct{}, fn func(seq int64, rec records.Record, read, total int64) error) (readStats, error) {
	var st readStats
	var minCounter *counters
	if o.MinTokens > 0 {
		minCounter = &counters{}
	}
	keepMin := func(rec *records.Record) (bool, error) {
		if minCounter == nil {
			return true, nil
		}
		c, err := minCounter.get("o200k_base")
		if err != nil {
			return false, err
		}
		return c.Text(rec.Input)+c.Text(rec.Output) >= o.MinTokens, nil
	}
	var threshold uint64
	if o.Sample.Count > 0 {
		bk := &bottomK{k: int(o.Sample.Count)}
		err := scan(ctx, o, false, func(rec records.Record, _, _ int64) error {
			ok, err := keepMin(&rec)
			if err != nil || !ok {
				return err
			}
			bk.add(SampleHash(o.Seed, rec.ID))
			return nil
		})
		if err != nil {
			return st, err
		}
		threshold = bk.threshold()
	}
	var seq int64
	err := scan(ctx, o, true, func(rec records.Record, read, total int64) error {
		st.records++
		ok, err := keepMin(&rec)
		if err != nil || !ok {
			return err
		}
		switch {
		case o.Sample.Count > 0:
			ok = SampleHash(o.Seed, rec.ID) <= threshold
		case !o.Sample.all():
			ok = inFraction(SampleHash(o.Seed, rec.ID), o.Sample.Fraction)
		}
		if !ok {
			return nil
		}
		st.sampled++
		seq++
		return fn(seq, rec, read, total)
	}, &st.bad)
	return st, err
}

// scan reads every file; report says whether bad lines are reported (and
// counted into bad[0]).
func scan(ctx context.Context, o *Options, report bool, fn func(rec records.Record, read, total int64) error, bad ...*int64) error {
	var doneBytes, total int64
	for _, f := range o.Files {
		rd, err := records.Open(f, records.Options{Map: o.Map})
		if err != nil {
			return &InputError{err.Error()}
		}
		_, size := rd.Progress()
		total += size
		for {
			if err := ctx.Err(); err != nil {
				rd.Close()
				return err
			}
			rec, err := rd.Next()
			if err == io.EOF {
				break
			}
			var le *records.LineError
			if errors.As(err, &le) {
				if !report {
					continue
				}
				if o.Strict {
					rd.Close()
					return &InputError{le.Error() + " (--strict)"}
				}
				if len(bad) > 0 {
					*bad[0]++
				}
				if o.BadLine != nil {
					o.BadLine(le)
				}
				continue
			}
			if err != nil {
				rd.Close()
				return err
			}
			read, _ := rd.Progress()
			if err := fn(rec, doneBytes+read, total); err != nil {
				rd.Close()
				return err
			}
		}
		read, _ := rd.Progress()
		doneBytes += read
		rd.Close()
	}
	return nil
}

// InputError is unusable input (a missing file, a bad line under --strict).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// outcome is what one record produced, handed to the writer.
type outcome struct {
	rows         []Row
	events       []ledger.Event
	cache        []ledger.JudgeResult
	notRun       int64 // metrics not run because the run stopped
	avoidedCache pricing.Money
	skipPrompt   map[string]int64 // metric → prompt tokens of judge calls a when skipped
	spent        pricing.Money
	calls        int64
	cacheHits    int64
}

// state is a finished metric of a record, for when conditions.
type state struct {
	status string
	score  float64
	known  bool
}

func evalWhen(m *Metric, states map[string]state) (holds, unknown bool, why string) {
	for _, c := range m.conds {
		st := states[c.Metric]
		if !st.known {
			return false, true, ""
		}
		ok := false
		switch c.Kind {
		case "pass":
			ok = st.status == StatusPass
		case "fail":
			ok = st.status == StatusFail
		case "score":
			if st.status == StatusPass || st.status == StatusFail {
				switch c.Op {
				case ">=":
					ok = st.score >= c.Value
				case "<=":
					ok = st.score <= c.Value
				case ">":
					ok = st.score > c.Value
				case "<":
					ok = st.score < c.Value
				case "==":
					ok = st.score == c.Value
				case "!=":
					ok = st.score != c.Value
				}
			}
		}
		if !ok {
			desc := st.status
			switch st.status {
			case StatusPass:
				desc = "passed"
			case StatusFail:
				desc = "failed"
			}
			if c.Kind == "score" && (st.status == StatusPass || st.status == StatusFail) {
				desc = fmt.Sprintf("scored %s", formatScore(st.score))
			}
			return false, false, fmt.Sprintf("when %s does not hold (%s %s)", c.Text, c.Metric, desc)
		}
	}
	return true, false, ""
}

func formatScore(f float64) string {
	return fmt.Sprintf("%.4g", f)
}

func scorePtr(f float64) *float64 { return &f }

// evalRecord runs every metric of one record in order.
func (r *run) evalRecord(ctx context.Context, seq int64, rec *records.Record) *outcome {
	out := &outcome{}
	states := map[string]state{}
	for i, m := range r.cfg.Order {
		if ctx.Err() != nil || r.stopped() {
			out.notRun += int64(len(r.cfg.Order) - i)
			return out
		}
		row := Row{ID: rec.ID, Metric: m.Name}
		if m.IsJudge() {
			row.Model = m.judge.Model
		}
		holds, _, why := evalWhen(m, states)
		if !holds {
			row.Status, row.Reason = StatusSkipped, why
			if m.IsJudge() {
				jc := r.clients[m.judge.Name]
				if out.skipPrompt == nil {
					out.skipPrompt = map[string]int64{}
				}
				out.skipPrompt[m.Name] += jc.promptTokens(chatMessages(m.Prompt, UserMessage(m, rec), nil))
			}
			states[m.Name] = state{status: StatusSkipped, known: true}
			out.rows = append(out.rows, row)
			continue
		}
		if !m.IsJudge() {
			pass, reason, err := check(m, rec, r.counters)
			if err != nil {
				row.Status, row.Error = StatusError, err.Error()
			} else {
				row.Status, row.Reason = StatusFail, reason
				score := 0.0
				if pass {
					row.Status, score = StatusPass, 1
				}
				row.Score = scorePtr(score)
				states[m.Name] = state{status: row.Status, score: score, known: true}
			}
			if row.Status == StatusError {
				states[m.Name] = state{status: StatusError, known: true}
			}
			out.rows = append(out.rows, row)
			continue
		}
		err := r.judgeMetric(ctx, seq, rec, m, &row, out)
		if err != nil {
			// The run is stopping (budget, Ctrl-C, fatal): this metric and
			// the rest of the record are not run; a rerun resumes them.
			var fe *FatalError
			switch {
			case errors.Is(err, errBudget):
				r.stop(StopBudget, nil)
			case errors.As(err, &fe):
				r.stop(StopFatal, fe)
			}
			out.notRun += int64(len(r.cfg.Order) - i)
			return out
		}
		st := state{status: row.Status, known: true}
		if row.Score != nil {
			st.score = *row.Score
		}
		states[m.Name] = st
		out.rows = append(out.rows, row)
	}
	return out
}

// judgeMetric fills row for a judge metric: from the cache, or by calling
// the judge (with one repair retry for an unreadable reply). It returns an
// error only when the run must stop; a failed record is an error row.
func (r *run) judgeMetric(ctx context.Context, seq int64, rec *records.Record, m *Metric, row *Row, out *outcome) error {
	jc := r.clients[m.judge.Name]
	price := m.judge.Price
	system, user := m.Prompt, UserMessage(m, rec)
	key := CacheKey(jc.endpoint, m.judge, system, user)
	now := r.opts.Now()
	evKey := func(suffix string) string { return fmt.Sprintf("eval:%s:%d:%s:%s", r.opts.RunID, seq, m.Name, suffix) }
	event := func(suffix string, u pricing.Usage, cost, avoided pricing.Money, hit bool, lat int64) ledger.Event {
		return ledger.Event{Key: evKey(suffix), Time: now, Source: ledger.SourceEval, RunID: r.opts.RunID, Tenant: rec.Tenant,
			Endpoint: jc.endpoint, Metric: m.Name, Model: m.judge.Model, InputTokens: u.InputTokens, CachedTokens: u.CachedInputTokens,
			OutputTokens: u.OutputTokens, Cost: cost, Avoided: avoided, CacheHit: hit, LatencyMS: lat}
	}
	pass := func(score float64) string {
		if score >= m.ThresholdValue() {
			return StatusPass
		}
		return StatusFail
	}
	if r.opts.DB != nil && !r.opts.NoCache && !r.opts.Refresh {
		c, ok, err := r.opts.DB.GetJudge(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &FatalError{err.Error()}
		}
		if ok {
			u := pricing.Usage{InputTokens: c.InputTokens, CachedInputTokens: c.CachedTokens, OutputTokens: c.OutputTokens}
			avoided := price.Cost(u, false)
			row.Status, row.Score, row.Reason, row.Cached = pass(c.Score), scorePtr(c.Score), c.Reason, true
			row.InputTokens, row.CachedTokens, row.OutputTokens = u.InputTokens, u.CachedInputTokens, u.OutputTokens
			out.avoidedCache += avoided
			out.cacheHits++
			out.events = append(out.events, event("cache", u, 0, avoided, true, 0))
			return nil
		}
	}

	msgs := chatMessages(system, user, nil)
	var total pricing.Usage
	var totalCost pricing.Money
	var totalLat int64
	callNo := 0
	doCall := func(msgs []openai.ChatCompletionMessage) (callResult, error) {
		worst := jc.worstCost(jc.promptTokens(msgs))
		if !r.budget.reserve(worst) {
			return callResult{}, errBudget
		}
		held := worst
		res, err := jc.call(ctx, r.rp, msgs, func() error {
			// A timed-out call may still be billed: count its worst case as
			// spent and reserve again before retrying.
			r.budget.settle(held, held)
			held = 0
			if !r.budget.reserve(worst) {
				return errBudget
			}
			held = worst
			return nil
		})
		if err != nil {
			r.budget.settle(held, 0)
			return res, err
		}
		cost := price.Cost(res.usage, false)
		r.budget.settle(held, cost)
		callNo++
		total.InputTokens += res.usage.InputTokens
		total.CachedInputTokens += res.usage.CachedInputTokens
		total.OutputTokens += res.usage.OutputTokens
		totalCost += cost
		totalLat += res.latencyMS
		out.calls++
		out.spent += cost
		out.events = append(out.events, event(fmt.Sprint(callNo), res.usage, cost, 0, false, res.latencyMS))
		return res, nil
	}
	fill := func() {
		row.InputTokens, row.CachedTokens, row.OutputTokens = total.InputTokens, total.CachedInputTokens, total.OutputTokens
		row.Cost, row.LatencyMS = totalCost, totalLat
	}
	// callFailed turns a failed call into the row's error, or, when the run
	// is stopping (budget, Ctrl-C, a fatal error), into no row at all: the
	// billed calls so far are in out.events and a rerun asks again.
	callFailed := func(err error) error {
		var fe *FatalError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errBudget) || errors.As(err, &fe):
			return err
		}
		fill()
		row.Status, row.Error = StatusError, err.Error()
		return nil
	}
	res, err := doCall(msgs)
	if err != nil {
		return callFailed(err)
	}
	v, perr := ParseVerdict(res.reply)
	reply := res.reply
	if perr != nil {
		repair := []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleAssistant, Content: res.reply},
			{Role: openai.ChatMessageRoleUser, Content: fmt.Sprintf(repairInstruction, perr)},
		}
		res2, err := doCall(chatMessages(system, user, repair))
		if err != nil {
			return callFailed(err)
		}
		reply = res2.reply
		v, perr = ParseVerdict(res2.reply)
		if perr != nil {
			fill()
			row.Status = StatusError
			row.Error = fmt.Sprintf("unreadable judge reply after one repair retry: %v", perr)
			return nil
		}
	}
	fill()
	row.Status, row.Score, row.Reason = pass(v.Score), scorePtr(v.Score), v.Reason
	if r.opts.DB != nil && !r.opts.NoCache {
		jr := ledger.JudgeResult{Key: key, Metric: m.Name, Model: m.judge.Model, Score: v.Score, Reason: v.Reason,
			InputTokens: total.InputTokens, CachedTokens: total.CachedInputTokens, OutputTokens: total.OutputTokens,
			Cost: totalCost, LatencyMS: totalLat, Created: now}
		if r.opts.StoreText {
			b, _ := json.Marshal(msgs)
			jr.RequestText, jr.ResponseText = string(b), reply
		}
		out.cache = append(out.cache, jr)
	}
	return nil
}

// write is the single writer: it batches outcomes into DB transactions,
// appends rows to the out file and keeps the totals.
func (r *run) write(ctx context.Context, outs <-chan *outcome, res *Result, prog func() Progress) error {
	var bw *bufio.Writer
	if r.opts.Out != nil {
		bw = bufio.NewWriterSize(r.opts.Out, 64<<10)
	}
	var batch []*outcome
	var firstErr error
	flush := func() {
		if len(batch) == 0 || firstErr != nil {
			batch = batch[:0]
			return
		}
		var events []ledger.Event
		var cache []ledger.JudgeResult
		for _, o := range batch {
			events = append(events, o.events...)
			cache = append(cache, o.cache...)
		}
		if r.opts.DB != nil {
			// Events first: a verdict is never cached without its cost on
			// the ledger. Both are idempotent, so a crash between them is safe.
			if len(events) > 0 {
				if _, err := r.opts.DB.Insert(ctx, events); err != nil {
					firstErr = err
					return
				}
			}
			if len(cache) > 0 {
				if err := r.opts.DB.PutJudges(ctx, cache); err != nil {
					firstErr = err
					return
				}
			}
		}
		for _, o := range batch {
			res.add(o)
			if bw != nil {
				for i := range o.rows {
					b, _ := json.Marshal(&o.rows[i])
					bw.Write(b)
					bw.WriteByte('\n')
				}
			}
		}
		if bw != nil {
			if err := bw.Flush(); err != nil {
				firstErr = fmt.Errorf("writing results: %w", err)
				return
			}
		}
		batch = batch[:0]
		if r.opts.Progress != nil {
			p := prog()
			p.Records, p.Spent, p.Calls, p.CacheHits, p.Errors = res.done, res.spent, res.calls, res.cacheHits, res.errors
			r.opts.Progress(p)
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case o, ok := <-outs:
			if !ok {
				flush()
				return firstErr
			}
			batch = append(batch, o)
			if len(batch) >= 64 {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// budget reserves each call's worst case under a mutex so that spent plus
// reserved never exceeds the cap, whatever the concurrency.
type budget struct {
	mu       sync.Mutex
	cap      pricing.Money // 0: no cap
	spent    pricing.Money
	reserved pricing.Money
}

func (b *budget) reserve(x pricing.Money) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cap > 0 && b.spent+b.reserved+x > b.cap {
		return false
	}
	b.reserved += x
	return true
}

func (b *budget) settle(reserved, actual pricing.Money) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserved -= reserved
	b.spent += actual
}
