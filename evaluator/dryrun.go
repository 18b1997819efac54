package evaluator

import (
	"context"

	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/records"
)

// DryMetric is what a run would do for one metric.
type DryMetric struct {
	Name         string
	Judge        bool
	Model        string
	ToEvaluate   int64 // records whose when holds (or may hold)
	CacheHits    int64 // verdicts already in the cache
	CallsMin     int64 // calls certainly needed
	CallsMax     int64 // calls needed if every undecided when holds
	PromptTokens int64 // prompt tokens of the CallsMax calls, counted locally
	OutputMax    int64 // max_tokens × CallsMax
	CostLow      pricing.Money
	CostHigh     pricing.Money
	// The same calls at the model's Batch API prices (eval --batch);
	// NoBatch when the price table has none (--batch refuses the judge).
	BatchLow, BatchHigh pricing.Money
	NoBatch             bool
}

// DryResult is a dry run: no request is sent.
type DryResult struct {
	PricesAsOf string
	Records    int64
	Sampled    int64
	BadLines   int64
	Metrics    []*DryMetric
	CostLow    pricing.Money
	CostHigh   pricing.Money
	// BatchLow and BatchHigh are the range at Batch API prices; NoBatch
	// says some judge has none.
	BatchLow, BatchHigh pricing.Money
	NoBatch             bool
}

// DryRun projects a run without any network access: per metric the records
// to evaluate, the cache hits already in the DB, the calls needed, projected
// tokens and a cost range. Free checks are run (they are local), so a when
// on a free check is decided exactly; a when on a judge metric that is not
// cached is undecided and counted only in the upper bound.
//
// The low end is the calls certainly needed at their prompt tokens only (a
// reply costs at least nothing); the high end is every possible call with a
// full max_tokens reply.
func DryRun(ctx context.Context, opts Options) (*DryResult, error) {
	opts.defaults()
	clients, err := newClients(&opts, false)
	if err != nil {
		return nil, err
	}
	res := &DryResult{}
	if opts.Table != nil {
		res.PricesAsOf = opts.Table.AsOf
	}
	byName := map[string]*DryMetric{}
	for _, m := range opts.Config.Order {
		dm := &DryMetric{Name: m.Name, Judge: m.IsJudge()}
		if m.IsJudge() {
			dm.Model = m.judge.Model
			dm.NoBatch = m.judge.Price == nil || m.judge.Price.Rates.NoBatch || providers[m.judge.ProviderName()].batch == nil
		}
		res.Metrics = append(res.Metrics, dm)
		byName[m.Name] = dm
	}
	cs := &counters{}
	st, err := forEachSampled(ctx, &opts, nil, func(seq int64, rec records.Record, _, _ int64) error {
		states := map[string]state{}
		maybe := map[string]bool{}
		for _, m := range opts.Config.Order {
			dm := byName[m.Name]
			holds, unknown, _ := evalWhen(m, states)
			for _, d := range m.deps {
				if maybe[d.Name] {
					unknown = true
				}
			}
			if !holds && !unknown {
				states[m.Name] = state{status: StatusSkipped, known: true}
				continue
			}
			if unknown {
				maybe[m.Name] = true
			}
			dm.ToEvaluate++
			if !m.IsJudge() {
				states[m.Name] = checkState(m, &rec, cs, !unknown)
				continue
			}
			jc := clients[m.judge.Name]
			user := UserMessage(m, &rec)
			key := CacheKey(jc.endpoint, m.judge, m.Prompt, user)
			if opts.DB != nil && !opts.NoCache && !opts.Refresh {
				c, ok, err := opts.DB.GetJudge(ctx, key)
				if err != nil {
					return err
				}
				if ok {
					dm.CacheHits++
					s := state{status: StatusFail, score: c.Score, known: !unknown}
					if c.Score >= m.ThresholdValue() {
						s.status = StatusPass
					}
					states[m.Name] = s
					continue
				}
			}
			p := jc.provider.PromptTokens(Prompt{System: m.Prompt, User: user})
			dm.CallsMax++
			dm.PromptTokens += p
			dm.OutputMax += int64(m.judge.MaxTokens)
			worstU, worst := jc.worst(p)
			dm.CostHigh += worst
			dm.BatchHigh += m.judge.Price.Cost(worstU, true)
			if !unknown {
				dm.CallsMin++
				dm.CostLow += m.judge.Price.Cost(pricing.Usage{InputTokens: p}, false)
				dm.BatchLow += m.judge.Price.Cost(pricing.Usage{InputTokens: p}, true)
			}
			maybe[m.Name] = true // its verdict is unknown until the call
			states[m.Name] = state{}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Records, res.Sampled, res.BadLines = st.records, st.sampled, st.bad
	for _, dm := range res.Metrics {
		res.CostLow += dm.CostLow
		res.CostHigh += dm.CostHigh
		res.BatchLow += dm.BatchLow
		res.BatchHigh += dm.BatchHigh
		res.NoBatch = res.NoBatch || dm.NoBatch
	}
	return res, nil
}

// checkState runs a free check on rec for a when: condition's sake: pass
// (score 1), fail or error; known says whether later metrics may rely on it.
func checkState(m *Metric, rec *records.Record, cs *counters, known bool) state {
	pass, _, err := check(m, rec, cs)
	s := state{status: StatusFail, known: known}
	if err != nil {
		s.status = StatusError
	} else if pass {
		s.status, s.score = StatusPass, 1
	}
	return s
}
