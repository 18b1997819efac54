package evaluator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/records"
)

// eval --batch: the judge calls a run needs go through the providers' Batch
// APIs at their batch rates instead of being sent one by one.
//
// A batch run works in rounds. Each round reads the records as a live run
// does (checks, sampling, when: conditions) and, for every judge call that
// is neither cached nor already waiting in a submitted batch, writes a batch
// request — to the ledger first, then to the provider. It then waits for
// the batches to end and collects their results into the ledger (the billed
// calls, at batch rates) and the judge cache. A when: that depends on a
// judge verdict is decided in the next round, once that verdict is in, so a
// chain of k judges takes k rounds. When a round has nothing to submit and
// nothing to wait for, the records are read one last time by the live
// runner with every judge call answered from what the rounds collected (or
// the cache): the rows, totals and ledger are those of a live run, the cost
// is the batch cost, and no live call is ever made.

// BatchStore is what a batch run needs of the ledger beyond Store.
// *ledger.DB implements it.
type BatchStore interface {
	Store
	CreateBatch(ctx context.Context, b ledger.Batch, reqs []ledger.BatchRequest) error
	UpdateBatch(ctx context.Context, b ledger.Batch) error
	AbandonBatch(ctx context.Context, id string) error
	CollectResults(ctx context.Context, events []ledger.Event, judges []ledger.JudgeResult, results []ledger.RequestResult) error
	FinishBatch(ctx context.Context, b ledger.Batch) error
	Batches(ctx context.Context, open bool) ([]ledger.Batch, error)
	OpenRequests(ctx context.Context, keys []string) (map[string]string, error)
	Requests(ctx context.Context, batchID string) (map[string]ledger.BatchRequest, error)
}

// BatchOptions configure a batch run.
type BatchOptions struct {
	// NoWait submits what can be submitted, collects what has ended, and
	// returns instead of waiting; the run that finds everything collected
	// writes the results.
	NoWait bool
	// PollBase is the first wait between status polls (default 5s),
	// doubling up to PollMax (default 60s).
	PollBase, PollMax time.Duration
	// MaxRequests and MaxBytes split batches below the provider's limits
	// (0: the provider's own).
	MaxRequests int
	MaxBytes    int64
	// Progress is called after each poll and each submission.
	Progress func(BatchProgress)
	// BeforeRows is called once every result is in, before the rows are
	// written (the command empties its output files here, so a --no-wait
	// run that returns pending leaves an earlier run's files alone).
	BeforeRows func() error
}

// BatchProgress is the state of a batch run while it waits.
type BatchProgress struct {
	Round    int
	Batches  int   // batches this run submitted or waits for
	Open     int   // of them, not yet collected
	Requests int64 // requests in them
	Done     int64 // requests the providers report finished
	Spent    pricing.Money
	Note     string // what just happened ("submitted …", "collected …"), or ""
}

// BatchSummary is what a batch run did (Result.Batch).
type BatchSummary struct {
	Rounds    int   // rounds that submitted requests
	Submitted int64 // requests submitted by this run
	Batches   int   // batches submitted by this run
	Collected int64 // results collected by this run
	Waited    int   // batches collected by this run (its own and earlier runs')
	Cut       int64 // requests not submitted: they would have crossed --max-cost
	Missing   int64 // requests whose batch ended without running them: the next run resubmits them
	Errored   int64 // requests the provider answered with an error
	Pending   bool  // --no-wait returned before every result was in: no rows were written
	Open      []ledger.Batch
	Reserved  pricing.Money // worst case of the requests still open
}

// outcome kinds of a batch request in this run.
const (
	batchOK      = iota + 1 // a verdict
	batchErr                // an error row (a request error, an unreadable reply)
	batchMissing            // its batch ended without running it
	batchCut                // not submitted: the cap
)

// batchOutcome is a batch request's result as this run collected it.
type batchOutcome struct {
	kind   int
	score  float64
	reason string
	errMsg string
	billed bool          // event is a billed call
	event  ledger.Event  // the billed call, already on the ledger
	usage  pricing.Usage // for the cache-hit avoided figure of duplicates
	used   atomic.Bool   // the last pass has counted its billed call
}

// batchRun is the state of one RunBatch.
type batchRun struct {
	opts     *Options
	bo       BatchOptions
	store    BatchStore
	clients  map[string]*judgeClient
	apis     map[string]batchAPI // by judge name
	outcomes map[string]*batchOutcome
	waiting  map[string]*ledger.Batch // open batches this run waits for, by id
	flags    *run                     // flagged usage counts (checkUsage)
	sum      *BatchSummary
	spent    pricing.Money // collected by this run
	reserved pricing.Money // worst case of what it waits for
	capped   bool
	seq      int
	round    int
	done     map[string]int64 // batch id → requests the provider reports finished
	prepared map[string]bool  // batches this run wrote, for the abandon path
}

// RunBatch is Run through the providers' Batch APIs (see the comment at
// the top of this file). With NoWait it may return a Result of nil and a
// summary with Pending: the batches are submitted and a rerun collects them.
func RunBatch(ctx context.Context, opts Options, bo BatchOptions) (*Result, *BatchSummary, error) {
	opts.defaults()
	if bo.PollBase <= 0 {
		bo.PollBase = 5 * time.Second
	}
	if bo.PollMax <= 0 {
		bo.PollMax = 60 * time.Second
	}
	store, ok := opts.DB.(BatchStore)
	if !ok || opts.DB == nil {
		return nil, nil, &ConfigError{Msg: "--batch needs a ledger (--db): batches and their results are kept there"}
	}
	if opts.NoCache || opts.Refresh {
		return nil, nil, &ConfigError{Msg: "--batch collects verdicts into the judge cache and answers from it: it cannot be used with --no-cache or --refresh"}
	}
	clients, err := newClients(&opts, true)
	if err != nil {
		return nil, nil, err
	}
	b := &batchRun{opts: &opts, bo: bo, store: store, clients: clients, apis: map[string]batchAPI{},
		outcomes: map[string]*batchOutcome{}, waiting: map[string]*ledger.Batch{}, sum: &BatchSummary{},
		flags: &run{counters: &counters{}}, done: map[string]int64{}, prepared: map[string]bool{}}
	for _, j := range opts.Config.JudgesUsed() {
		api, err := newBatchAPIFor(&opts, j, clients[j.Name])
		if err != nil {
			return nil, nil, err
		}
		b.apis[j.Name] = api
	}
	wctx := context.WithoutCancel(ctx)
	if err := store.StartRun(wctx, opts.RunID, ledger.SourceEval, opts.Now(), fmt.Sprintf("%d file(s), batch", len(opts.Files))); err != nil {
		return nil, nil, err
	}
	if err := b.recover(ctx); err != nil {
		return nil, b.sum, err
	}
	for b.round = 1; ; b.round++ {
		submitted, err := b.plan(ctx)
		if err != nil {
			return nil, b.sum, err
		}
		if submitted > 0 {
			b.sum.Rounds++
		}
		if len(b.waiting) == 0 {
			break
		}
		if err := b.wait(ctx); err != nil {
			if errors.Is(err, errPending) {
				b.sum.Pending = true
				for _, id := range sortedKeys(b.waiting) {
					b.sum.Open = append(b.sum.Open, *b.waiting[id])
				}
				b.sum.Reserved = b.reserved
				return nil, b.sum, store.FinishRun(wctx, opts.RunID, "pending", opts.Now())
			}
			return nil, b.sum, err
		}
		if b.round > 2*len(opts.Config.Order)+2 {
			// Each round decides at least one more metric of every record
			// still waiting; more rounds than that means a result keeps
			// coming back missing. What is missing is reported below.
			break
		}
	}
	// The rows: a live run answered from the batches and the cache.
	if bo.BeforeRows != nil {
		if err := bo.BeforeRows(); err != nil {
			return nil, b.sum, err
		}
	}
	final := opts
	final.batch = b
	final.MaxCost = 0 // spending was capped when submitting; the final pass spends nothing
	res, err := Run(ctx, final)
	if res != nil {
		res.Batch = b.sum
		res.MaxCost = opts.MaxCost
		res.Flagged += b.flags.flagged.Load()
		if s, ok := b.flags.flagWhy.Load().(string); ok && res.FlaggedWhy == "" {
			res.FlaggedWhy = s
		}
		if res.Stop == StopNone {
			switch {
			case b.sum.Cut > 0:
				res.Stop = StopBudget
			case b.sum.Missing > 0:
				res.Stop = StopIncomplete
			}
		}
	}
	return res, b.sum, err
}

// StopIncomplete: a batch ended (expired, cancelled, failed) without
// running some requests; their rows are not_run and a rerun resubmits them.
const StopIncomplete = "incomplete"

var errPending = errors.New("batches pending")

// newBatchAPIFor builds a judge's Batch API client, refusing a judge whose
// provider has no Batch API or whose model has no batch price: a batch
// rate is never assumed.
func newBatchAPIFor(o *Options, j *Judge, jc *judgeClient) (batchAPI, error) {
	def := providers[j.ProviderName()]
	if def.batch == nil {
		return nil, &ConfigError{Msg: fmt.Sprintf("judge %q: provider %s has no Batch API that costctl speaks; run it without --batch", j.Name, j.ProviderName())}
	}
	if j.Price == nil || j.Price.Rates.NoBatch {
		asOf := ""
		if o.Table != nil {
			asOf = " (as of " + o.Table.AsOf + ")"
		}
		return nil, &ConfigError{Msg: fmt.Sprintf("judge %q: the price table%s has no Batch API price for %s, so --batch would have to guess its cost; run it live or add batch_input/batch_output prices with --pricing", j.Name, asOf, j.Model)}
	}
	return def.batch(BatchConfig{Judge: j, BaseURL: o.Endpoint(j), APIKey: jc.key, HTTPClient: o.HTTPClient, Provider: jc.provider, Now: o.Now})
}

// apiFor is the client of the judge that speaks to a batch's provider,
// endpoint and model (judges may have been renamed since it was
// submitted); ok is false when no judge of this config does.
func (b *batchRun) apiFor(bt *ledger.Batch) (*judgeClient, batchAPI, bool) {
	names := sortedKeys(b.apis)
	for _, n := range names {
		jc := b.clients[n]
		if jc.judge.ProviderName() == bt.Provider && jc.endpoint == bt.Endpoint && jc.judge.Model == bt.Model {
			return jc, b.apis[n], true
		}
	}
	return nil, nil, false
}

// recover settles batches an earlier run wrote but may not have created at
// the provider (it stopped in between): one the provider has is adopted,
// one it does not is abandoned, so its requests are planned again.
func (b *batchRun) recover(ctx context.Context) error {
	open, err := b.store.Batches(ctx, true)
	if err != nil {
		return err
	}
	for i := range open {
		bt := &open[i]
		if bt.State != ledger.BatchPreparing {
			continue
		}
		_, api, ok := b.apiFor(bt)
		if !ok {
			continue
		}
		info, found, err := api.Find(ctx, bt.ID, bt.Created, int(bt.Requests))
		if err != nil {
			return fmt.Errorf("batch %s was written but may not have been submitted, and the provider could not be asked: %w", bt.ID, err)
		}
		if !found {
			if err := b.store.AbandonBatch(ctx, bt.ID); err != nil {
				return err
			}
			continue
		}
		bt.RemoteID, bt.State, bt.Updated = info.RemoteID, info.State, b.opts.Now()
		if err := b.store.UpdateBatch(ctx, *bt); err != nil {
			return err
		}
	}
	return nil
}

// submission is one batch being written: its requests and their lines in
// a temporary file (a batch may hold 200 MB).
type submission struct {
	jc     *judgeClient
	api    batchAPI
	file   *os.File
	reqs   []ledger.BatchRequest
	bytes  int64
	worst  pricing.Money
	maxN   int
	maxB   int64
	closed bool
}

func (s *submission) fits(line int) bool {
	return len(s.reqs) < s.maxN && s.bytes+int64(line)+1 <= s.maxB
}

// plan reads the records once and submits a batch request for every judge
// call that can be decided now and is neither answered nor waiting. It
// returns how many requests it submitted.
func (b *batchRun) plan(ctx context.Context) (_ int64, retErr error) {
	o := b.opts
	subs := map[string]*submission{}
	defer func() {
		for _, s := range subs {
			if err := s.discard(); err != nil && retErr == nil {
				retErr = err
			}
		}
	}()
	open, err := b.store.Batches(ctx, true)
	if err != nil {
		return 0, err
	}
	openByID := map[string]*ledger.Batch{}
	for i := range open {
		openByID[open[i].ID] = &open[i]
	}
	seen := map[string]bool{}
	var submitted int64
	_, err = forEachSampled(ctx, o, nil, func(_ int64, rec records.Record, _, _ int64) error {
		states := map[string]state{}
		deferred := map[string]bool{}
		for _, m := range o.Config.Order {
			holds, unknown, _ := evalWhen(m, states)
			for _, d := range m.deps {
				if deferred[d.Name] {
					unknown = true
				}
			}
			if unknown {
				deferred[m.Name] = true
				continue
			}
			if !holds {
				states[m.Name] = state{status: StatusSkipped, known: true}
				continue
			}
			if !m.IsJudge() {
				states[m.Name] = checkState(m, &rec, b.flags.counters, true)
				continue
			}
			jc := b.clients[m.judge.Name]
			user := UserMessage(m, &rec)
			key := CacheKey(jc.endpoint, m.judge, m.Prompt, user)
			if oc := b.outcomes[key]; oc != nil {
				switch oc.kind {
				case batchOK:
					states[m.Name] = verdictState(m, oc.score)
				case batchErr:
					states[m.Name] = state{status: StatusError, known: true}
				default:
					deferred[m.Name] = true // not run in this run
				}
				continue
			}
			if c, ok, err := o.DB.GetJudge(ctx, key); err != nil {
				return err
			} else if ok {
				states[m.Name] = verdictState(m, c.Score)
				continue
			}
			deferred[m.Name] = true
			if seen[key] {
				continue
			}
			seen[key] = true
			ids, err := b.store.OpenRequests(ctx, []string{key})
			if err != nil {
				return err
			}
			if id, ok := ids[key]; ok {
				if bt := openByID[id]; bt != nil && b.waiting[id] == nil {
					if _, _, ok := b.apiFor(bt); ok {
						b.waiting[id] = bt
						b.reserved += bt.Reserved
						b.note(fmt.Sprintf("waiting for batch %s (%d requests, submitted %s)", bt.ID, bt.Requests, bt.Created.Format(time.RFC3339)))
					}
				}
				if b.waiting[id] != nil {
					continue
				}
			}
			p := Prompt{System: m.Prompt, User: user}
			bound := jc.provider.PromptBound(p)
			worst := m.judge.Price.Cost(jc.provider.WorstUsage(bound), true)
			if b.capped || o.MaxCost > 0 && b.spent+b.reserved+worst > o.MaxCost {
				// The batch is cut to fit the cap: this request and every
				// later one wait for a rerun with a larger --max-cost.
				b.capped = true
				b.outcomes[key] = &batchOutcome{kind: batchCut}
				b.sum.Cut++
				continue
			}
			line, err := b.apis[m.judge.Name].Line(key, p)
			if err != nil {
				return err
			}
			s := subs[m.judge.Name]
			if s != nil && !s.fits(len(line)) {
				if err := b.submit(ctx, s); err != nil {
					return err
				}
				s = nil
			}
			if s == nil {
				if s, err = b.newSubmission(jc, b.apis[m.judge.Name]); err != nil {
					return err
				}
				subs[m.judge.Name] = s
			}
			if _, err := s.file.Write(append(line, '\n')); err != nil {
				return fmt.Errorf("writing a batch file: %w", err)
			}
			s.bytes += int64(len(line)) + 1
			s.worst += worst
			s.reqs = append(s.reqs, ledger.BatchRequest{CustomID: key, Metric: m.Name, Tenant: rec.Tenant, Bound: bound, Worst: worst})
			b.reserved += worst
			submitted++
		}
		return nil
	})
	if err != nil {
		return submitted, err
	}
	for _, n := range sortedKeys(subs) {
		if err := b.submit(ctx, subs[n]); err != nil {
			return submitted, err
		}
	}
	return submitted, nil
}

func verdictState(m *Metric, score float64) state {
	st := state{status: StatusFail, score: score, known: true}
	if score >= m.ThresholdValue() {
		st.status = StatusPass
	}
	return st
}

func (b *batchRun) newSubmission(jc *judgeClient, api batchAPI) (*submission, error) {
	f, err := os.CreateTemp("", "costctl-batch-*.jsonl") // 0600
	if err != nil {
		return nil, fmt.Errorf("a batch file cannot be written: %w", err)
	}
	maxN, maxB := api.Limits()
	if b.bo.MaxRequests > 0 && b.bo.MaxRequests < maxN {
		maxN = b.bo.MaxRequests
	}
	if b.bo.MaxBytes > 0 && b.bo.MaxBytes < maxB {
		maxB = b.bo.MaxBytes
	}
	return &submission{jc: jc, api: api, file: f, maxN: maxN, maxB: maxB}, nil
}

// discard closes and removes the batch file (it holds record text: it
// must not stay behind in the temp directory).
func (s *submission) discard() error {
	if s.closed {
		return nil
	}
	s.closed = true
	cerr := s.file.Close()
	if err := os.Remove(s.file.Name()); err != nil {
		return fmt.Errorf("removing the batch file %s: %w", s.file.Name(), err)
	}
	if cerr != nil {
		return fmt.Errorf("closing the batch file %s: %w", s.file.Name(), cerr)
	}
	return nil
}

// submit writes the batch and its requests to the ledger, then creates it
// at the provider and records its id. A failed creation is retried (after
// asking the provider whether it was created after all) up to
// --max-retries times; a batch the provider never created is abandoned.
func (b *batchRun) submit(ctx context.Context, s *submission) (retErr error) {
	defer func() {
		if err := s.discard(); err != nil && retErr == nil {
			retErr = err
		}
	}()
	if len(s.reqs) == 0 {
		return nil
	}
	b.seq++
	now := b.opts.Now()
	bt := ledger.Batch{ID: fmt.Sprintf("%s-%d", b.opts.RunID, b.seq), Provider: s.jc.judge.ProviderName(), Endpoint: s.jc.endpoint,
		Judge: s.jc.judge.Name, Model: s.jc.judge.Model, RunID: b.opts.RunID, Round: b.round, Requests: int64(len(s.reqs)),
		Reserved: s.worst, Created: now, Updated: now, State: ledger.BatchPreparing}
	if err := b.store.CreateBatch(ctx, bt, s.reqs); err != nil {
		return err
	}
	var info BatchInfo
	var lastErr error
	delay := b.opts.BackoffBase
	for attempt := 0; ; attempt++ {
		if _, err := s.file.Seek(0, 0); err != nil {
			return err
		}
		var err error
		info, err = s.api.Submit(ctx, bt.ID, s.file, len(s.reqs), s.bytes)
		if err == nil {
			break
		}
		lastErr = err
		// Created after all (the answer was lost)? Then adopt it.
		if found, ok, ferr := s.api.Find(ctx, bt.ID, bt.Created, len(s.reqs)); ferr == nil && ok {
			info, lastErr = found, nil
			break
		}
		var fe *FatalError
		if errors.As(err, &fe) || ctx.Err() != nil || attempt >= b.opts.MaxRetries {
			if aerr := b.store.AbandonBatch(context.WithoutCancel(ctx), bt.ID); aerr != nil {
				return errors.Join(lastErr, aerr)
			}
			if fe != nil {
				return fe
			}
			return &FatalError{Msg: fmt.Sprintf("judge %q: the batch could not be submitted: %v", s.jc.judge.Name, Redact(err.Error(), s.jc.key)), Err: err}
		}
		if err := b.opts.Sleep(ctx, delay); err != nil {
			return err
		}
		delay = min(2*delay, b.opts.BackoffMax)
	}
	bt.RemoteID, bt.State, bt.Updated = info.RemoteID, info.State, b.opts.Now()
	if err := b.store.UpdateBatch(context.WithoutCancel(ctx), bt); err != nil {
		return err
	}
	b.waiting[bt.ID] = &bt
	b.sum.Batches++
	b.sum.Submitted += int64(len(s.reqs))
	b.note(fmt.Sprintf("submitted batch %s: %d requests to %s (%s), worst case %s at batch rates", bt.ID, len(s.reqs), s.jc.judge.Model, bt.RemoteID, s.worst.Display()))
	return nil
}

// note reports progress with a note.
func (b *batchRun) note(msg string) {
	if b.bo.Progress == nil {
		return
	}
	p := BatchProgress{Round: b.round, Batches: len(b.waiting), Spent: b.spent, Note: msg}
	for id, bt := range b.waiting {
		p.Requests += bt.Requests
		p.Done += b.done[id]
		if bt.Open() {
			p.Open++
		}
	}
	b.bo.Progress(p)
}

// wait polls the open batches this run waits for, with backoff, collecting
// each as it ends, until none is open. With NoWait it polls once and
// returns errPending if any is still open.
func (b *batchRun) wait(ctx context.Context) error {
	delay := b.bo.PollBase
	for {
		openN := 0
		for _, id := range sortedKeys(b.waiting) {
			bt := b.waiting[id]
			if !bt.Open() {
				continue
			}
			jc, api, _ := b.apiFor(bt)
			info, err := api.Status(ctx, bt.RemoteID)
			if err != nil {
				var fe *FatalError
				if errors.As(err, &fe) || ctx.Err() != nil {
					return err
				}
				openN++ // asked again at the next poll
				continue
			}
			b.done[id] = info.Succeeded + info.Errored
			if info.State != bt.State {
				bt.State, bt.Updated, bt.Error = info.State, b.opts.Now(), info.Error
				if err := b.store.UpdateBatch(ctx, *bt); err != nil {
					return err
				}
			}
			if !info.Ended {
				openN++
				continue
			}
			if err := b.collect(ctx, jc, api, bt, info); err != nil {
				return err
			}
		}
		b.note("")
		if openN == 0 {
			return nil
		}
		if b.bo.NoWait {
			return errPending
		}
		if err := b.opts.Sleep(ctx, delay); err != nil {
			return err
		}
		delay = min(2*delay, b.bo.PollMax)
	}
}

// collect writes an ended batch's results: each billed call (at batch
// rates) with its verdict, each request's state; then marks it collected.
// Requests the provider did not report never ran: the next run resubmits
// them.
func (b *batchRun) collect(ctx context.Context, jc *judgeClient, api batchAPI, bt *ledger.Batch, info BatchInfo) error {
	reqs, err := b.store.Requests(ctx, bt.ID)
	if err != nil {
		return err
	}
	now := b.opts.Now()
	var events []ledger.Event
	var judges []ledger.JudgeResult
	var results []ledger.RequestResult
	flush := func() error {
		if len(results) == 0 {
			return nil
		}
		err := b.store.CollectResults(context.WithoutCancel(ctx), events, judges, results)
		events, judges, results = events[:0], judges[:0], results[:0]
		return err
	}
	price := jc.judge.Price
	err = api.Results(ctx, info, func(res BatchResult) error {
		rq, ok := reqs[res.CustomID]
		if !ok || rq.State != ledger.RequestPending {
			return nil // not ours, or collected before (a rerun after a crash)
		}
		rq.State = "seen"
		reqs[res.CustomID] = rq
		key := res.CustomID
		switch {
		case res.Missing:
			results = append(results, ledger.RequestResult{BatchID: bt.ID, CustomID: key, State: ledger.RequestMissing})
			b.outcomes[key] = &batchOutcome{kind: batchMissing}
			b.sum.Missing++
		case res.Err != "":
			msg := Redact(res.Err, jc.key)
			results = append(results, ledger.RequestResult{BatchID: bt.ID, CustomID: key, State: ledger.RequestError, Error: msg})
			b.outcomes[key] = &batchOutcome{kind: batchErr, errMsg: msg}
			b.sum.Errored++
		default:
			worstU := jc.provider.WorstUsage(rq.Bound)
			u, est := b.flags.checkUsage(jc, callResult{reply: res.Attempt.Text, usage: res.Attempt.Usage, hasUsage: res.Attempt.HasUsage}, worstU)
			cost := price.Cost(u, true)
			ev := ledger.Event{Key: ledger.BatchEventKey(bt.ID, key), Time: now, Source: ledger.SourceEval, RunID: b.opts.RunID, Tenant: rq.Tenant,
				Endpoint: bt.Endpoint, Metric: rq.Metric, Model: bt.Model, InputTokens: u.InputTokens, CachedTokens: u.CachedInputTokens,
				CacheWrite5mTokens: u.CacheWrite5mTokens, CacheWrite1hTokens: u.CacheWrite1hTokens, OutputTokens: u.OutputTokens,
				Cost: cost, Batch: true, Estimate: est}
			events = append(events, ev)
			b.spent += cost
			b.sum.Collected++
			v, perr := ParseVerdict(res.Attempt.Text)
			if perr != nil {
				msg := Redact(fmt.Sprintf("unreadable judge reply (a batch result gets no repair turn; a rerun asks again): %v", perr), jc.key)
				results = append(results, ledger.RequestResult{BatchID: bt.ID, CustomID: key, State: ledger.RequestError, Error: msg})
				b.outcomes[key] = &batchOutcome{kind: batchErr, errMsg: msg, billed: true, event: ev, usage: u}
				b.sum.Errored++
				break
			}
			reason := Redact(v.Reason, jc.key)
			jr := ledger.JudgeResult{Key: key, Metric: rq.Metric, Model: bt.Model, Score: v.Score, Reason: reason,
				InputTokens: u.InputTokens, CachedTokens: u.CachedInputTokens, OutputTokens: u.OutputTokens,
				CacheWrite5mTokens: u.CacheWrite5mTokens, CacheWrite1hTokens: u.CacheWrite1hTokens, Cost: cost, Created: now}
			if b.opts.StoreText {
				jr.ResponseText = res.Attempt.Text
			}
			judges = append(judges, jr)
			results = append(results, ledger.RequestResult{BatchID: bt.ID, CustomID: key, State: ledger.RequestOK})
			b.outcomes[key] = &batchOutcome{kind: batchOK, score: v.Score, reason: reason, billed: true, event: ev, usage: u}
		}
		if len(results) >= 500 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	for key, rq := range reqs {
		if rq.State == ledger.RequestPending || rq.State == ledger.RequestMissing {
			if b.outcomes[key] == nil {
				b.outcomes[key] = &batchOutcome{kind: batchMissing}
				b.sum.Missing++
			}
		}
	}
	bt.State, bt.Updated, bt.Error = ledger.BatchCollected, b.opts.Now(), info.Error
	if err := b.store.FinishBatch(context.WithoutCancel(ctx), *bt); err != nil {
		return err
	}
	b.reserved -= bt.Reserved
	b.sum.Waited++
	b.note(fmt.Sprintf("collected batch %s (%s): %d results, %s", bt.ID, info.State, len(reqs), b.spent.Display()))
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// BatchControl reaches a batch's provider outside a run (eval batches
// cancel): through the config's judge that speaks to the batch's provider,
// endpoint and model when a config is given, else the provider's defaults
// (its key variable, the endpoint the batch was sent to).
type BatchControl struct {
	Config     *Config // optional
	Table      *pricing.Table
	Getenv     func(string) string
	HTTPClient *http.Client
	BaseURL    string // --base-url, as eval takes it
	Now        func() time.Time
}

// client builds the Batch API client for bt.
func (bc *BatchControl) client(bt ledger.Batch) (batchAPI, error) {
	o := &Options{Config: bc.Config, Table: bc.Table, Getenv: bc.Getenv, HTTPClient: bc.HTTPClient, BaseURL: bc.BaseURL, Now: bc.Now}
	o.defaults()
	var judge *Judge
	if bc.Config != nil {
		for _, j := range bc.Config.JudgesUsed() {
			if j.ProviderName() == bt.Provider && j.Model == bt.Model && redactURL(strings.TrimRight(o.Endpoint(j), "/")) == bt.Endpoint {
				judge = j
				break
			}
		}
	}
	if judge == nil {
		judge = &Judge{Name: bt.Judge, Provider: bt.Provider, Model: bt.Model, BaseURL: bt.Endpoint, MaxTokens: DefaultMaxTokens}
		if bc.Table != nil {
			if m, err := bc.Table.Lookup(bt.Model); err == nil {
				judge.Price = m
			}
		}
		if judge.Price == nil {
			judge.Price = &pricing.Model{Name: bt.Model}
		}
	}
	if _, ok := providers[judge.ProviderName()]; !ok {
		return nil, &ConfigError{Msg: fmt.Sprintf("batch %s: provider %q is not known to this costctl", bt.ID, bt.Provider)}
	}
	key := o.Getenv(KeyEnv(judge))
	if key == "" {
		return nil, &ConfigError{Msg: fmt.Sprintf("batch %s: %s is not set; export the API key the batch was submitted with (or pass the --config whose judge names it)", bt.ID, KeyEnv(judge))}
	}
	jc, err := newJudgeClient(judge, o.Endpoint(judge), key, o.HTTPClient, o.Now)
	if err != nil {
		return nil, err
	}
	return newBatchAPIFor(o, judge, jc)
}

// CancelBatch asks bt's provider to cancel it. The batch ends later with
// its finished results kept; the next run of its eval collects them and
// resubmits what did not run.
func CancelBatch(ctx context.Context, bc BatchControl, bt ledger.Batch) (BatchInfo, error) {
	if bt.RemoteID == "" {
		return BatchInfo{}, &ConfigError{Msg: fmt.Sprintf("batch %s was never created at the provider (state %s): there is nothing to cancel; the next run abandons it", bt.ID, bt.State)}
	}
	api, err := bc.client(bt)
	if err != nil {
		return BatchInfo{}, err
	}
	return api.Cancel(ctx, bt.RemoteID)
}
