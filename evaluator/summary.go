package evaluator

import (
	"math"
	"math/big"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// MetricStats are the totals of one metric.
type MetricStats struct {
	Name         string
	Type         string
	Judge        bool
	Evaluated    int64 // pass + fail + error
	Passed       int64
	Failed       int64
	Skipped      int64
	Errors       int64
	ScoreSum     float64
	Scored       int64
	Calls        int64
	CacheHits    int64
	InputTokens  int64
	CachedTokens int64
	OutputTokens int64
	Cost         pricing.Money
	NotRun       int64 // rows not run because the run stopped

	skipPrompt  int64 // prompt tokens (counted locally) of the calls a when skipped
	replyTokens int64 // output tokens of the verdicts used (calls and cache hits)
	replies     int64
}

// PassRate is passed/(passed+failed); ok=false when nothing was judged.
// Errors are counted apart and are not failures.
func (m *MetricStats) PassRate() (float64, bool) {
	n := m.Passed + m.Failed
	if n == 0 {
		return 0, false
	}
	return float64(m.Passed) / float64(n), true
}

// CI95 is the Wilson score 95% interval of the pass rate.
func (m *MetricStats) CI95() (lo, hi float64, ok bool) {
	return Wilson(m.Passed, m.Passed+m.Failed, 1.959963984540054)
}

// MeanScore is the mean score over pass and fail rows.
func (m *MetricStats) MeanScore() (float64, bool) {
	if m.Scored == 0 {
		return 0, false
	}
	return m.ScoreSum / float64(m.Scored), true
}

// Wilson is the Wilson score interval for k successes in n trials at z.
func Wilson(k, n int64, z float64) (lo, hi float64, ok bool) {
	if n <= 0 || k < 0 || k > n {
		return 0, 0, false
	}
	p := float64(k) / float64(n)
	nf := float64(n)
	z2 := z * z
	den := 1 + z2/nf
	center := (p + z2/(2*nf)) / den
	half := z / den * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	lo, hi = math.Max(0, center-half), math.Min(1, center+half)
	return lo, hi, true
}

// Result is what a run did.
type Result struct {
	RunID       string
	PricesAsOf  string
	Records     int64 // valid records read
	Sampled     int64 // records chosen (by --sample/--min-tokens) and started
	BadLines    int64
	Metrics     []*MetricStats
	Requests    int64 // HTTP requests sent (retries included)
	Stop        string
	StopDetail  string        // why an overbill stop happened, by how much
	MaxCost     pricing.Money // the cap (0: none)
	LeftRecords int64         // sampled records not started because the run stopped
	NotRun      int64         // record × metric evaluations not run because the run stopped
	Rows        []Row         // with Options.KeepRows
	Batch       *BatchSummary // a batch run's submissions and collections (nil: a live run)

	RecordsPassed int64            // records with no fail, error or not_run row
	Retries       map[string]int64 // retries by cause (429, 5xx, timeout, network, repair)
	Estimated     int64            // calls billed from local counts (no or invalid usage)
	Unsettled     int64            // attempts sent, then cancelled or timed out: recorded at their worst case
	UnsettledCost pricing.Money
	Flagged       int64  // usage blocks that were invalid or over the request's bound
	FlaggedWhy    string // the first of them
	Unrecorded    int64  // paid calls that could not be written to the ledger
	FirstError    string // "ID METRIC: error" of the first error row

	Calls        int64
	CacheHits    int64
	Errors       int64
	Cost         pricing.Money
	AvoidedCache pricing.Money // current-price cost of the cached verdicts used
	AvoidedSkip  pricing.Money // estimated cost of the judge calls a when skipped (see skipAvoided)
	AvoidedSamp  pricing.Money // estimate: baseline per sampled record × records not sampled
	Baseline     pricing.Money // every sampled record on every judge metric, no cache, no skips

	byName    map[string]*MetricStats
	done      int64
	spent     pricing.Money
	calls     int64
	cacheHits int64
	errors    int64
	keepRows  bool
}

func newResult(o Options) *Result {
	res := &Result{RunID: o.RunID, byName: map[string]*MetricStats{}, keepRows: o.KeepRows}
	if o.Table != nil {
		res.PricesAsOf = o.Table.AsOf
	}
	for _, m := range o.Config.Order {
		ms := &MetricStats{Name: m.Name, Type: m.Type, Judge: m.IsJudge()}
		res.Metrics = append(res.Metrics, ms)
		res.byName[m.Name] = ms
	}
	return res
}

// add folds one record's outcome into the totals (writer goroutine only).
func (res *Result) add(o *outcome) {
	res.done++
	res.NotRun += o.notRun
	res.AvoidedCache += o.avoidedCache
	for m, p := range o.skipPrompt {
		res.byName[m].skipPrompt += p
	}
	for _, ev := range o.events {
		ms := res.byName[ev.Metric]
		switch {
		case ev.CacheHit:
			ms.CacheHits++
			res.cacheHits++
			ms.replyTokens += ev.OutputTokens
			ms.replies++
			continue
		case ev.Estimate == ledger.EstimateUnsettled:
			res.Unsettled++
			res.UnsettledCost += ev.Cost
		default:
			ms.Calls++
			res.calls++
			ms.replyTokens += ev.OutputTokens
			ms.replies++
			if ev.Estimate != "" {
				res.Estimated++
			}
		}
		ms.InputTokens += ev.InputTokens
		ms.CachedTokens += ev.CachedTokens
		ms.OutputTokens += ev.OutputTokens
		ms.Cost += ev.Cost
		res.spent += ev.Cost
	}
	passed := len(o.rows) > 0
	for _, r := range o.rows {
		ms := res.byName[r.Metric]
		switch r.Status {
		case StatusFail, StatusError, StatusNotRun:
			passed = false
		}
		switch r.Status {
		case StatusPass:
			ms.Passed++
		case StatusFail:
			ms.Failed++
		case StatusSkipped:
			ms.Skipped++
		case StatusError:
			ms.Errors++
			res.errors++
			if res.FirstError == "" {
				res.FirstError = r.ID + " " + r.Metric + ": " + r.Error
			}
		case StatusNotRun:
			ms.NotRun++
		}
		if r.Status != StatusSkipped && r.Status != StatusNotRun {
			ms.Evaluated++
		}
		if r.Score != nil && (r.Status == StatusPass || r.Status == StatusFail) {
			ms.ScoreSum += *r.Score
			ms.Scored++
		}
	}
	if passed {
		res.RecordsPassed++
	}
	if res.keepRows {
		res.Rows = append(res.Rows, o.rows...)
	}
}

// finish computes the totals; it runs after Stop is set, so a stopped run's
// records never started are not counted as sampling savings.
func (res *Result) finish(o Options) {
	res.MaxCost = o.MaxCost
	res.Calls, res.CacheHits, res.Errors, res.Cost = res.calls, res.cacheHits, res.errors, res.spent
	res.AvoidedSkip = 0
	for _, m := range o.Config.Order {
		if ms := res.byName[m.Name]; m.IsJudge() && ms.Skipped > 0 {
			res.AvoidedSkip += skipAvoided(m, ms)
		}
	}
	res.Baseline = res.Cost + res.AvoidedCache + res.AvoidedSkip
	if res.Sampled > 0 && res.Records > res.Sampled && res.Stop == StopNone {
		per := new(big.Rat).Mul(res.Baseline.Rat(), big.NewRat(res.Records-res.Sampled, res.Sampled))
		if m, err := pricing.MoneyFromRat(per); err == nil {
			res.AvoidedSamp = m
		}
	}
}

// skipAvoided estimates what the calls a when skipped would have cost: their
// prompts counted locally as a real call is billed, at the input price, and
// replies as long as this metric's verdicts (calls and cache hits) averaged
// in the run (max_tokens when there was none). A fully cached rerun thus
// values its skips as the run that paid for them did.
func skipAvoided(m *Metric, ms *MetricStats) pricing.Money {
	out := m.judge.MaxTokens
	if ms.replies > 0 {
		out = int((ms.replyTokens + ms.replies - 1) / ms.replies)
	}
	r := m.judge.Price.RatesFor(ms.skipPrompt / ms.Skipped)
	return r.Input.Cost(ms.skipPrompt) + r.Output.Cost(int64(out)*ms.Skipped)
}

// Avoided is the total cost avoided: cache, cascade skips and sampling.
func (res *Result) Avoided() pricing.Money {
	return res.AvoidedCache + res.AvoidedSkip + res.AvoidedSamp
}

// JSONReport is the --format json schema (version 1).
type JSONReport struct {
	Version    int          `json:"version"`
	RunID      string       `json:"run_id"`
	PricesAsOf string       `json:"prices_as_of"`
	Records    int64        `json:"records"`
	Sampled    int64        `json:"sampled"`
	BadLines   int64        `json:"bad_lines"`
	Metrics    []JSONMetric `json:"metrics"`
	Total      JSONTotal    `json:"total"`
	// RecordsPassed counts records that passed every metric they ran.
	RecordsPassed int64            `json:"records_passed"`
	Retries       map[string]int64 `json:"retries"`
	Stop          *JSONStop        `json:"stop"` // null when the run finished
	// Batch is what a batch run (--batch) submitted and collected; absent
	// for a live run.
	Batch *JSONBatch `json:"batch,omitempty"`
}

// JSONBatch is a batch run's submissions and collections.
type JSONBatch struct {
	Pending   bool          `json:"pending"` // --no-wait returned before every result was in
	Rounds    int           `json:"rounds"`
	Batches   int           `json:"batches_submitted"`
	Submitted int64         `json:"requests_submitted"`
	Collected int64         `json:"results_collected"`
	Errored   int64         `json:"request_errors"`
	Cut       int64         `json:"requests_cut_by_cap"`
	Missing   int64         `json:"requests_missing"`
	Open      []JSONOpen    `json:"open_batches"`
	Reserved  pricing.Money `json:"open_reserved_usd"`
}

// JSONOpen is a batch still running.
type JSONOpen struct {
	ID       string `json:"id"`
	RemoteID string `json:"provider_id"`
	Provider string `json:"provider"`
	Model    string `json:"model"`
	State    string `json:"state"`
	Requests int64  `json:"requests"`
}

// JSON is the summary's JSON block.
func (s *BatchSummary) JSON() *JSONBatch {
	jb := &JSONBatch{Pending: s.Pending, Rounds: s.Rounds, Batches: s.Batches, Submitted: s.Submitted, Collected: s.Collected,
		Errored: s.Errored, Cut: s.Cut, Missing: s.Missing, Open: []JSONOpen{}, Reserved: s.Reserved}
	for _, b := range s.Open {
		jb.Open = append(jb.Open, JSONOpen{ID: b.ID, RemoteID: b.RemoteID, Provider: b.Provider, Model: b.Model, State: b.State, Requests: b.Requests})
	}
	return jb
}

// JSONStop says why and where a run stopped early.
type JSONStop struct {
	Reason      string         `json:"reason"` // budget | overbill | interrupted | fatal
	Cap         *pricing.Money `json:"cap_usd"`
	Spent       pricing.Money  `json:"spent_usd"`
	RecordsLeft int64          `json:"records_left"`
	NotRun      int64          `json:"not_run"`
	Detail      string         `json:"detail,omitempty"`
}

// JSONMetric is one metric in the JSON report; rates are null when nothing
// was judged.
type JSONMetric struct {
	Name         string        `json:"name"`
	Evaluated    int64         `json:"evaluated"`
	Passed       int64         `json:"passed"`
	Failed       int64         `json:"failed"`
	Skipped      int64         `json:"skipped"`
	Errors       int64         `json:"errors"`
	PassRate     *float64      `json:"pass_rate"`
	CI95         []float64     `json:"ci95"`
	MeanScore    *float64      `json:"mean_score"`
	Calls        int64         `json:"calls"`
	CacheHits    int64         `json:"cache_hits"`
	InputTokens  int64         `json:"input_tokens"`
	CachedTokens int64         `json:"cached_tokens"`
	OutputTokens int64         `json:"output_tokens"`
	Cost         pricing.Money `json:"cost_usd"`
	NotRun       int64         `json:"not_run"`
}

// JSONTotal is the totals block of the JSON report.
type JSONTotal struct {
	Calls     int64         `json:"calls"`
	CacheHits int64         `json:"cache_hits"`
	Errors    int64         `json:"errors"`
	Cost      pricing.Money `json:"cost_usd"`
	Avoided   pricing.Money `json:"avoided_usd"`
	Baseline  pricing.Money `json:"baseline_usd"`
	// Estimated calls were billed from local counts (no or invalid usage);
	// unsettled attempts (cancelled or timed out after sending) at their
	// worst case; flagged usage blocks were invalid or over the bound.
	Estimated     int64         `json:"estimated_calls"`
	Unsettled     int64         `json:"unsettled_calls"`
	UnsettledCost pricing.Money `json:"unsettled_usd"`
	Flagged       int64         `json:"flagged_usage"`
}

func round6(f float64) float64 { return math.Round(f*1e6) / 1e6 }

// JSON is the --format json report.
func (res *Result) JSON() JSONReport {
	rep := JSONReport{Version: 1, RunID: res.RunID, PricesAsOf: res.PricesAsOf, Records: res.Records, Sampled: res.Sampled,
		BadLines: res.BadLines, Metrics: []JSONMetric{},
		Total: JSONTotal{Calls: res.Calls, CacheHits: res.CacheHits, Errors: res.Errors, Cost: res.Cost, Avoided: res.Avoided(), Baseline: res.Baseline,
			Estimated: res.Estimated, Unsettled: res.Unsettled, UnsettledCost: res.UnsettledCost, Flagged: res.Flagged},
		RecordsPassed: res.RecordsPassed, Retries: map[string]int64{}}
	for _, c := range []string{Retry429, Retry5xx, RetryTimeout, RetryNetwork, RetryRepair} {
		rep.Retries[c] = res.Retries[c]
	}
	if res.Batch != nil {
		rep.Batch = res.Batch.JSON()
	}
	if res.Stop != StopNone {
		st := &JSONStop{Reason: res.Stop, Spent: res.Cost, RecordsLeft: res.LeftRecords, NotRun: res.NotRun, Detail: res.StopDetail}
		if res.MaxCost > 0 {
			c := res.MaxCost
			st.Cap = &c
		}
		rep.Stop = st
	}
	for _, m := range res.Metrics {
		jm := JSONMetric{Name: m.Name, Evaluated: m.Evaluated, Passed: m.Passed, Failed: m.Failed, Skipped: m.Skipped, Errors: m.Errors,
			Calls: m.Calls, CacheHits: m.CacheHits, InputTokens: m.InputTokens, CachedTokens: m.CachedTokens, OutputTokens: m.OutputTokens, Cost: m.Cost,
			NotRun: m.NotRun}
		if pr, ok := m.PassRate(); ok {
			v := round6(pr)
			jm.PassRate = &v
			lo, hi, _ := m.CI95()
			jm.CI95 = []float64{round6(lo), round6(hi)}
		}
		if ms, ok := m.MeanScore(); ok {
			v := round6(ms)
			jm.MeanScore = &v
		}
		rep.Metrics = append(rep.Metrics, jm)
	}
	return rep
}
