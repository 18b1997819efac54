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

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/records"
)

// DefaultBaseURL is the endpoint of an openai judge when neither the judge,
// --base-url nor OPENAI_BASE_URL names one.
const DefaultBaseURL = "https://api.openai.com/v1"

// Options configure a run. Durations and the random source are injectable
// so tests run fast and deterministically.
type Options struct {
	Files  []string
	Map    map[string]string
	Config *Config
	DB     Store // nil: no cache, no ledger
	Table  *pricing.Table

	HTTPClient *http.Client
	Getenv     func(string) string
	BaseURL    string    // --base-url; else the provider's variable (OPENAI_BASE_URL); else its default (DefaultBaseURL)
	Stdin      io.Reader // what the input "-" reads

	Concurrency int           // default 8
	MaxRetries  int           // retries after the first attempt (0 allowed)
	Timeout     time.Duration // per attempt; default 60s
	BackoffBase time.Duration // first backoff; default 500ms
	BackoffMax  time.Duration // largest backoff; default 30s
	Sleep       func(ctx context.Context, d time.Duration) error
	Rand        *mrand.Rand // jitter; default seeded from the run id
	// WriteRetryFor is how long a busy ledger is retried before the run
	// stops (default 60s). No call is sent while a write is retried.
	WriteRetryFor time.Duration

	Sample    Sample
	Seed      uint64
	MinTokens int64
	// Shard keeps only this shard's records (--shard i/n); every count of
	// the run (records, sampled, savings) is this shard's.
	Shard Shard
	// SharedBudget, when set, holds each call's worst case in a budget
	// shared with other processes (--shard with --max-cost) instead of
	// checking MaxCost here.
	SharedBudget SharedBudget

	NoCache, Refresh, StoreText, Strict bool
	MaxCost                             pricing.Money // 0: no cap

	Out      io.Writer                  // JSONL result rows in input order (nil: none)
	BadLine  func(e *records.LineError) // each skipped bad line
	Progress func(Progress)             // after rows are written
	KeepRows bool                       // keep rows in Result.Rows (for --junit)

	Now   func() time.Time
	RunID string

	// batch, in the last pass of a batch run (batch.go), answers every
	// judge call from the batches collected or the cache: no call is sent.
	batch *batchRun
}

// Progress is the state of a run, reported as records are written.
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
	Status       string        `json:"status"` // pass | fail | skipped | error | not_run
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
	// Estimated names why Cost is not the server's usage × price
	// (no_usage, bad_usage, unsettled); empty when it is.
	Estimated string `json:"estimated,omitempty"`
}

// Statuses of a row.
const (
	StatusPass    = "pass"
	StatusFail    = "fail"
	StatusSkipped = "skipped"
	StatusError   = "error"
	StatusNotRun  = "not_run" // the run stopped before this metric of a started record
)

// Stop reasons.
const (
	StopNone        = ""
	StopBudget      = "budget"
	StopOverbill    = "overbill" // the server billed a call beyond its reservation
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
	commit   *committer
	flights  *flights
	retries  sync.Map // cause → *atomic.Int64
	flagged  atomic.Int64
	flagWhy  atomic.Value // string: the first flagged usage

	stopOnce sync.Once
	stopCh   chan struct{}
	stopWhy  atomic.Value // string
	fatal    atomic.Value // error
	overbill atomic.Value // string: what was billed beyond the reservation
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

func (r *run) retried(cause string) {
	v, _ := r.retries.LoadOrStore(cause, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
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
	if o.WriteRetryFor <= 0 {
		o.WriteRetryFor = 60 * time.Second
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

// Endpoint is the base URL a judge is called at: its base_url, else
// --base-url, else its provider's variable (OPENAI_BASE_URL), else its
// provider's default.
func (o *Options) Endpoint(j *Judge) string {
	def := providers[j.ProviderName()]
	switch {
	case j.BaseURL != "":
		return j.BaseURL
	case o.BaseURL != "" && j.ProviderName() == ProviderOpenAI:
		// --base-url names an OpenAI-compatible endpoint: a config that
		// mixes providers must not send its Anthropic judges there.
		return o.BaseURL
	case o.Getenv != nil && def.baseURLEnv != "" && o.Getenv(def.baseURLEnv) != "":
		return o.Getenv(def.baseURLEnv)
	}
	return def.baseURL
}

// KeyEnv is the environment variable holding a judge's API key: its
// api_key_env, else its provider's (OPENAI_API_KEY).
func KeyEnv(j *Judge) string {
	if j.APIKeyEnv != "" {
		return j.APIKeyEnv
	}
	return providers[j.ProviderName()].keyEnv
}

// newClients builds a client per judge; with needKeys, a judge without an
// API key in its environment variable is an error (before any request).
func newClients(o *Options, needKeys bool) (map[string]*judgeClient, error) {
	out := map[string]*judgeClient{}
	for _, j := range o.Config.JudgesUsed() {
		key := o.Getenv(KeyEnv(j))
		if needKeys && key == "" {
			return nil, &ConfigError{Msg: fmt.Sprintf("judge %q: %s is not set; export the API key for %s (or set api_key_env for the judge); --dry-run needs no key", j.Name, KeyEnv(j), redactURL(o.Endpoint(j)))}
		}
		jc, err := newJudgeClient(j, o.Endpoint(j), key, o.HTTPClient, o.Now)
		if err != nil {
			return nil, err
		}
		out[j.Name] = jc
	}
	return out, nil
}

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
	r := &run{opts: opts, cfg: opts.Config, clients: clients, budget: newBudget(opts.MaxCost, opts.SharedBudget), counters: &counters{},
		stopCh: make(chan struct{}), flights: &flights{m: map[string]*flight{}, keep: opts.NoCache || opts.Refresh}}
	var jmu sync.Mutex
	r.rp = &retryPolicy{
		maxRetries: opts.MaxRetries, timeout: opts.Timeout, base: opts.BackoffBase, max: opts.BackoffMax,
		sleep: opts.Sleep, now: opts.Now, attempts: &r.requests, retried: r.retried,
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
	r.commit = newCommitter(opts.DB, opts.WriteRetryFor, func(err error) {
		r.stop(StopFatal, fmt.Errorf("the ledger cannot be written (%v); stopped sending judge calls", err))
	})

	type job struct {
		seq int64
		rec records.Record
	}
	jobs := make(chan job, opts.Concurrency)
	outs := make(chan *outcome, opts.Concurrency*2)
	// window bounds how far dispatch runs ahead of the oldest unwritten
	// record, so rows are written in input order in bounded memory.
	window := make(chan struct{}, max(4*opts.Concurrency, 256))
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

	// The writer: one goroutine owns the out file and the totals.
	var werr error
	wdone := make(chan struct{})
	var progressBytes atomic.Int64
	var progressTotal atomic.Int64
	var sampledSoFar atomic.Int64
	go func() {
		defer close(wdone)
		werr = r.write(outs, window, res, func() Progress {
			return Progress{BytesRead: progressBytes.Load(), BytesTotal: progressTotal.Load(), Elapsed: opts.Now().Sub(start), SampledSoFar: sampledSoFar.Load()}
		})
		if werr != nil {
			r.stop(StopFatal, werr)
		}
	}()

	// The producer: read, sample, dispatch; after a budget stop keep reading
	// (no calls) to count what is left.
	leftover := func() error {
		switch r.stopWhy.Load() {
		case StopBudget, StopOverbill:
			res.LeftRecords++
			return nil
		}
		return errStopReading
	}
	rstats, perr := forEachSampled(ctx, &opts, r.stopCh, func(seq int64, rec records.Record, read, total int64) error {
		progressBytes.Store(read)
		progressTotal.Store(total)
		if r.stopped() {
			return leftover()
		}
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.stopCh:
			return leftover()
		}
		sampledSoFar.Add(1)
		select {
		case jobs <- job{seq, rec}:
		case <-ctx.Done():
			<-window
			return ctx.Err()
		case <-r.stopCh:
			<-window
			return leftover()
		}
		return nil
	})
	close(jobs)
	wg.Wait()
	close(outs)
	<-wdone
	r.commit.close()

	res.Records, res.Sampled, res.BadLines = rstats.records, rstats.sampled-res.LeftRecords, rstats.bad
	res.Requests = r.requests.Load()
	res.Unrecorded = r.commit.unrecorded.Load()
	res.Flagged = r.flagged.Load()
	if s, ok := r.flagWhy.Load().(string); ok {
		res.FlaggedWhy = s
	}
	r.retries.Range(func(k, v any) bool {
		if res.Retries == nil {
			res.Retries = map[string]int64{}
		}
		res.Retries[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})

	status := "ok"
	var retErr error
	switch {
	case werr != nil:
		status, retErr = "error", werr
	case perr != nil && !errors.Is(perr, errStopReading) && !errors.Is(perr, context.Canceled):
		status, retErr = "error", perr
	case ctx.Err() != nil && !r.stopped():
		status, res.Stop = "interrupted", StopInterrupted
	case r.stopped():
		why, _ := r.stopWhy.Load().(string)
		res.Stop = why
		status = why
		if f, ok := r.fatal.Load().(error); ok {
			retErr = f
			status = "error"
		}
		if s, ok := r.overbill.Load().(string); ok {
			res.StopDetail = s
		}
	}
	if retErr != nil && res.Stop == StopNone {
		res.Stop = StopFatal
	}
	res.finish(opts)
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
		if !o.Shard.Holds(rec.ID) {
			return nil // another shard's record
		}
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
		rd, err := records.Open(f, records.Options{Map: o.Map, Stdin: o.Stdin})
		if err != nil {
			return &InputError{Msg: err.Error(), Unreadable: true, Err: err}
		}
		_, size := rd.Progress()
		total += size
		for {
			if err := ctx.Err(); err != nil {
				rd.Close() // only read: a close error cannot lose data
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
					rd.Close() // only read: a close error cannot lose data
					return &InputError{Msg: le.Error() + " (--strict)", Err: le}
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
				rd.Close() // only read: a close error cannot lose data
				return err
			}
			read, _ := rd.Progress()
			if err := fn(rec, doneBytes+read, total); err != nil {
				rd.Close() // only read: a close error cannot lose data
				return err
			}
		}
		read, _ := rd.Progress()
		doneBytes += read
		rd.Close() // only read: a close error cannot lose data
	}
	return nil
}

// InputError is unusable input: a file that cannot be read (Unreadable) or
// a bad line under --strict.
type InputError struct {
	Msg        string
	Unreadable bool
	Err        error // the cause, if any
}

func (e *InputError) Error() string { return e.Msg }

func (e *InputError) Unwrap() error { return e.Err }

// outcome is what one record produced, handed to the writer.
type outcome struct {
	seq          int64
	rows         []Row
	events       []ledger.Event // paid calls, unsettled attempts and cache hits (already committed)
	notRun       int64          // metrics not run because the run stopped
	avoidedCache pricing.Money
	skipPrompt   map[string]int64 // metric → prompt tokens of judge calls a when skipped
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

// stopReason is the reason a not_run row gives.
func (r *run) stopReason(ctx context.Context) string {
	switch r.stopWhy.Load() {
	case StopBudget:
		return "not run: the budget cap (--max-cost) was reached"
	case StopOverbill:
		return "not run: the run stopped after a call was billed beyond its reservation"
	case StopFatal:
		return "not run: the run stopped on an error"
	}
	if ctx.Err() != nil {
		return "not run: interrupted"
	}
	return "not run: the run stopped"
}

// evalRecord runs every metric of one record in order. When the run stops
// part way, the metrics left get not_run rows, so no record is half-written.
func (r *run) evalRecord(ctx context.Context, seq int64, rec *records.Record) *outcome {
	out := &outcome{seq: seq}
	states := map[string]state{}
	notRun := func(i int) *outcome {
		why := r.stopReason(ctx)
		for _, m := range r.cfg.Order[i:] {
			row := Row{ID: rec.ID, Metric: m.Name, Status: StatusNotRun, Reason: why}
			if m.IsJudge() {
				row.Model = m.judge.Model
			}
			out.rows = append(out.rows, row)
		}
		out.notRun += int64(len(r.cfg.Order) - i)
		return out
	}
	for i, m := range r.cfg.Order {
		if ctx.Err() != nil || r.stopped() {
			return notRun(i)
		}
		row := Row{ID: rec.ID, Metric: m.Name}
		if m.IsJudge() {
			row.Model = m.judge.Model
		}
		holds, unknown, why := evalWhen(m, states)
		if !holds && unknown {
			// A metric it depends on did not run (a batch run's request
			// that was cut by the cap or never ran): neither can this one.
			row.Status, row.Reason = StatusNotRun, "not run: a metric its when depends on did not run"
			out.rows = append(out.rows, row)
			out.notRun++
			continue
		}
		if !holds {
			row.Status, row.Reason = StatusSkipped, why
			if m.IsJudge() {
				jc := r.clients[m.judge.Name]
				if out.skipPrompt == nil {
					out.skipPrompt = map[string]int64{}
				}
				out.skipPrompt[m.Name] += jc.provider.PromptTokens(Prompt{System: m.Prompt, User: UserMessage(m, rec)})
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
			case errors.Is(err, errStopped), ctx.Err() != nil:
			case errors.As(err, &fe):
				r.stop(StopFatal, fe)
			default:
				r.stop(StopFatal, err)
			}
			return notRun(i)
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

// checkUsage validates a reply's usage block against what an honest server
// can bill for the request (worst: the provider's WorstUsage of the prompt
// bound), and returns the usage to bill: the server's own, or, when it sent
// none or an impossible one, an estimate from local counts (the worst
// prompt and the provider's count of the reply; for a reasoning model,
// whose hidden reasoning is unknown, its full completion bound).
func (r *run) checkUsage(jc *judgeClient, res callResult, worst pricing.Usage) (pricing.Usage, string) {
	u := res.usage
	bound, maxOut := worst.InputTokens, worst.OutputTokens
	estimate := func() pricing.Usage {
		e := worst
		e.OutputTokens = jc.provider.ReplyTokens(res.reply)
		return e
	}
	flag := func(why string) {
		r.flagged.Add(1)
		r.flagWhy.CompareAndSwap(nil, why)
	}
	switch {
	case !res.hasUsage:
		return estimate(), ledger.EstimateNoUsage
	case u.InputTokens < 0 || u.OutputTokens < 0 || u.CachedInputTokens < 0 || u.CacheWrite5mTokens < 0 || u.CacheWrite1hTokens < 0 ||
		u.CachedInputTokens+u.CacheWrite5mTokens+u.CacheWrite1hTokens > u.InputTokens:
		flag(fmt.Sprintf("judge %q: invalid usage (prompt_tokens %d, cached_tokens %d, completion_tokens %d); billed from local counts",
			jc.judge.Name, u.InputTokens, u.CachedInputTokens, u.OutputTokens))
		return estimate(), ledger.EstimateBadUsage
	case u.InputTokens > bound || u.OutputTokens > maxOut:
		flag(fmt.Sprintf("judge %q: usage over what the request allows (prompt_tokens %d, bound %d; completion_tokens %d, max %d); billed as reported",
			jc.judge.Name, u.InputTokens, bound, u.OutputTokens, maxOut))
	}
	return u, ""
}

// judgeMetric fills row for a judge metric: from this run's identical
// request, from the cache, or by calling the judge (with one repair retry
// for an unreadable reply). It returns an error only when the run must stop;
// a failed record is an error row.
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
			CacheWrite5mTokens: u.CacheWrite5mTokens, CacheWrite1hTokens: u.CacheWrite1hTokens,
			OutputTokens: u.OutputTokens, Cost: cost, Avoided: avoided, CacheHit: hit, LatencyMS: lat}
	}
	pass := func(score float64) string {
		if score >= m.ThresholdValue() {
			return StatusPass
		}
		return StatusFail
	}
	hit := func(score float64, reason string, u pricing.Usage) {
		avoided := price.Cost(u, r.opts.batch != nil) // what this run would have paid: batch rates in a batch run
		row.Status, row.Score, row.Reason, row.Cached = pass(score), scorePtr(score), reason, true
		row.InputTokens, row.CachedTokens, row.OutputTokens = u.InputTokens, u.CachedInputTokens, u.OutputTokens
		out.avoidedCache += avoided
		ev := event("cache", u, 0, avoided, true, 0)
		out.events = append(out.events, ev)
		r.commit.commitAsync([]ledger.Event{ev})
	}

	// Identical requests in this run are sent once.
	var fl *flight
	for {
		f, leader := r.flights.join(key)
		if leader {
			fl = f
			break
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.stopCh:
			return errStopped
		}
		switch res := f.res; {
		case res.ok:
			hit(res.score, res.reason, res.usage)
			return nil
		case !res.aborted:
			row.Status, row.Error = StatusError, res.errMsg
			return nil
		}
		// The leader stopped without an answer: lead a new attempt.
	}
	result := flightResult{aborted: true}
	defer func() { r.flights.finish(key, fl, result) }()

	if b := r.opts.batch; b != nil {
		if oc := b.outcomes[key]; oc != nil {
			first := !oc.used.Swap(true)
			if oc.kind == batchOK && !first {
				// Its call is counted once, on the first record that used
				// it; the others are cache hits, as in a live run.
				hit(oc.score, oc.reason, oc.usage)
				result = flightResult{ok: true, score: oc.score, reason: oc.reason, usage: oc.usage}
				return nil
			}
			result = r.batchRow(oc, m, row, out, first)
			return nil
		}
	}
	if r.opts.DB != nil && !r.opts.NoCache && !r.opts.Refresh {
		c, ok, err := r.opts.DB.GetJudge(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &FatalError{Msg: err.Error(), Err: err}
		}
		if ok {
			u := pricing.Usage{InputTokens: c.InputTokens, CachedInputTokens: c.CachedTokens, OutputTokens: c.OutputTokens,
				CacheWrite5mTokens: c.CacheWrite5mTokens, CacheWrite1hTokens: c.CacheWrite1hTokens}
			hit(c.Score, c.Reason, u)
			result = flightResult{ok: true, score: c.Score, reason: c.Reason, usage: u}
			return nil
		}
	}

	if r.opts.batch != nil {
		// Neither collected nor cached (the cache was changed meanwhile):
		// a batch run never calls live.
		row.Status, row.Reason = StatusNotRun, "not run: no batch result for this request; rerun to submit it"
		out.notRun++
		return nil
	}
	prompt := Prompt{System: system, User: user}
	var total pricing.Usage
	var totalCost pricing.Money
	var totalLat int64
	callNo, unsettledNo := 0, 0
	estimated := ""
	// doCall reserves the call's worst case, sends it and settles the
	// budget. A paid call's event is returned, not yet committed: the
	// caller commits it, with the verdict when there is one.
	doCall := func(p Prompt) (callResult, *ledger.Event, error) {
		bound := jc.provider.PromptBound(p)
		worstUsage, worst := jc.worst(bound)
		h, err := r.budget.reserve(ctx, r.stopCh, worst)
		if err != nil {
			return callResult{}, nil, err
		}
		holding := true
		hooks := callHooks{unsettled: func(cancelled bool) error {
			// Sent, then cancelled or timed out: the server may bill it.
			// Record its worst case (marked unsettled) before anything else.
			unsettledNo++
			ev := event(fmt.Sprintf("%d-unsettled-%d", callNo+1, unsettledNo), worstUsage, worst, 0, false, 0)
			ev.Estimate = ledger.EstimateUnsettled
			serr := r.budget.settle(h, worst)
			holding = false
			totalCost += worst
			out.events = append(out.events, ev)
			if err := r.commit.commit([]ledger.Event{ev}, nil); err != nil {
				return &FatalError{Msg: fmt.Sprintf("the ledger cannot be written: %v", err), Err: err}
			}
			if serr != nil {
				return serr
			}
			if cancelled {
				return nil
			}
			if h, err = r.budget.reserve(ctx, r.stopCh, worst); err != nil {
				return err
			}
			holding = true
			return nil
		}}
		res, err := jc.call(ctx, r.rp, p, hooks)
		if err != nil {
			if holding {
				if serr := r.budget.settle(h, 0); serr != nil {
					return res, nil, serr
				}
			}
			return res, nil, err
		}
		u, est := r.checkUsage(jc, res, worstUsage)
		cost := price.Cost(u, false)
		if err := r.budget.settle(h, cost); err != nil {
			// The call is paid: its event is still returned and committed;
			// the run stops sending.
			r.stop(StopFatal, err)
		}
		if cost > worst {
			r.overbill.CompareAndSwap(nil, fmt.Sprintf("judge %q billed %s for one call where at most %s was reserved (prompt_tokens %d, bound %d; completion_tokens %d, max %d): %s over; the endpoint counts more tokens than the request can hold",
				jc.judge.Name, cost.Display(), worst.Display(), u.InputTokens, bound, u.OutputTokens, worstUsage.OutputTokens, (cost-worst).Display()))
			r.stop(StopOverbill, nil)
		}
		callNo++
		if est != "" {
			estimated = est
		}
		total.InputTokens += u.InputTokens
		total.CachedInputTokens += u.CachedInputTokens
		total.CacheWrite5mTokens += u.CacheWrite5mTokens
		total.CacheWrite1hTokens += u.CacheWrite1hTokens
		total.OutputTokens += u.OutputTokens
		totalCost += cost
		totalLat += res.latencyMS
		ev := event(fmt.Sprint(callNo), u, cost, 0, false, res.latencyMS)
		ev.Estimate = est
		out.events = append(out.events, ev)
		return res, &ev, nil
	}
	commit := func(ev *ledger.Event, jr *ledger.JudgeResult) error {
		var judges []ledger.JudgeResult
		if jr != nil {
			judges = append(judges, *jr)
		}
		if err := r.commit.commit([]ledger.Event{*ev}, judges); err != nil {
			return &FatalError{Msg: fmt.Sprintf("the ledger cannot be written: %v", err), Err: err}
		}
		return nil
	}
	fill := func() {
		row.InputTokens, row.CachedTokens, row.OutputTokens = total.InputTokens, total.CachedInputTokens, total.OutputTokens
		row.Cost, row.LatencyMS, row.Estimated = totalCost, totalLat, estimated
	}
	// callFailed turns a failed call into the row's error, or, when the run
	// is stopping (budget, Ctrl-C, a fatal error), into no row at all: the
	// billed calls so far are on the ledger and a rerun asks again.
	callFailed := func(err error) error {
		var fe *FatalError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errBudget), errors.Is(err, errStopped), errors.As(err, &fe):
			return err
		}
		fill()
		row.Status, row.Error = StatusError, Redact(err.Error(), jc.key)
		result = flightResult{errMsg: row.Error}
		return nil
	}
	res, ev, err := doCall(prompt)
	if err != nil {
		return callFailed(err)
	}
	v, perr := ParseVerdict(res.reply)
	reply := res.reply
	if perr != nil {
		if err := commit(ev, nil); err != nil {
			return err
		}
		if r.stopped() {
			// The call overbilled (or the run stopped meanwhile): no repair.
			return errStopped
		}
		r.retried(RetryRepair)
		res2, ev2, err := doCall(Prompt{System: system, User: user, Repair: &Repair{Reply: res.reply, Instruction: fmt.Sprintf(repairInstruction, perr)}})
		if err != nil {
			return callFailed(err)
		}
		ev = ev2
		reply = res2.reply
		v, perr = ParseVerdict(res2.reply)
		if perr != nil {
			if err := commit(ev, nil); err != nil {
				return err
			}
			fill()
			row.Status = StatusError
			row.Error = Redact(fmt.Sprintf("unreadable judge reply after one repair retry: %v", perr), jc.key)
			result = flightResult{errMsg: row.Error}
			return nil
		}
	}
	fill()
	row.Status, row.Score, row.Reason = pass(v.Score), scorePtr(v.Score), Redact(v.Reason, jc.key)
	var jr *ledger.JudgeResult
	if r.opts.DB != nil && !r.opts.NoCache {
		jr = &ledger.JudgeResult{Key: key, Metric: m.Name, Model: m.judge.Model, Score: v.Score, Reason: row.Reason,
			InputTokens: total.InputTokens, CachedTokens: total.CachedInputTokens, OutputTokens: total.OutputTokens,
			CacheWrite5mTokens: total.CacheWrite5mTokens, CacheWrite1hTokens: total.CacheWrite1hTokens,
			Cost: totalCost, LatencyMS: totalLat, Created: now}
		if r.opts.StoreText {
			jr.RequestText, jr.ResponseText = jc.provider.RequestText(prompt), reply
		}
	}
	if err := commit(ev, jr); err != nil {
		return err
	}
	result = flightResult{ok: true, score: v.Score, reason: row.Reason, usage: total}
	return nil
}

// batchRow fills a judge row from what a batch run collected for its
// request: the verdict or error and the billed call (already on the
// ledger, counted here for the totals), or not_run when the request was cut
// by the cap or never ran.
func (r *run) batchRow(oc *batchOutcome, m *Metric, row *Row, out *outcome, first bool) flightResult {
	if oc.billed && first {
		ev := oc.event
		out.events = append(out.events, ev)
		row.InputTokens, row.CachedTokens, row.OutputTokens = ev.InputTokens, ev.CachedTokens, ev.OutputTokens
		row.Cost, row.Estimated = ev.Cost, ev.Estimate
	}
	switch oc.kind {
	case batchOK:
		row.Status, row.Score, row.Reason = verdictState(m, oc.score).status, scorePtr(oc.score), oc.reason
		return flightResult{ok: true, score: oc.score, reason: oc.reason, usage: oc.usage}
	case batchErr:
		row.Status, row.Error = StatusError, oc.errMsg
		return flightResult{errMsg: oc.errMsg}
	case batchCut:
		row.Status, row.Reason = StatusNotRun, "not run: the budget cap (--max-cost) was reached before this request could be submitted"
	default:
		row.Status, row.Reason = StatusNotRun, "not run: its batch ended (expired, cancelled or failed) before it ran; rerun to resubmit it"
	}
	out.notRun++
	return flightResult{aborted: true}
}

// write is the single writer of rows: it puts outcomes back in input order,
// appends their rows to the out file and keeps the totals. Each written
// record frees a slot of window.
func (r *run) write(outs <-chan *outcome, window <-chan struct{}, res *Result, prog func() Progress) error {
	var bw *bufio.Writer
	if r.opts.Out != nil {
		bw = bufio.NewWriterSize(r.opts.Out, 64<<10)
	}
	var firstErr error
	pending := map[int64]*outcome{}
	next := int64(1)
	for o := range outs {
		pending[o.seq] = o
		wrote := false
		for {
			p, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			<-window
			wrote = true
			res.add(p)
			if bw != nil && firstErr == nil {
				for i := range p.rows {
					b, _ := json.Marshal(&p.rows[i])
					bw.Write(b)        // bufio keeps the first error: the Flush below returns it
					bw.WriteByte('\n') // likewise
				}
			}
		}
		if !wrote {
			continue
		}
		if bw != nil && firstErr == nil && len(outs) == 0 {
			if err := bw.Flush(); err != nil {
				firstErr = fmt.Errorf("writing results: %w", err)
				r.stop(StopFatal, firstErr)
			}
		}
		if r.opts.Progress != nil {
			p := prog()
			p.Records, p.Spent, p.Calls, p.CacheHits, p.Errors = res.done, res.spent, res.calls, res.cacheHits, res.errors
			r.opts.Progress(p)
		}
	}
	if bw != nil && firstErr == nil {
		if err := bw.Flush(); err != nil {
			firstErr = fmt.Errorf("writing results: %w", err)
		}
	}
	return firstErr
}
