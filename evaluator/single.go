package evaluator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/costctl/costctl/pricing"
)

// SingleJudgeConfig is one judge asked outside a run (SingleJudge).
type SingleJudgeConfig struct {
	// Judge is the judge as a config gives it (provider, model, json mode,
	// max_tokens); its Price is looked up in Table when not set, and a
	// zero MaxTokens takes the config's default.
	Judge      *Judge
	BaseURL    string // the endpoint (may hold credentials; never shown)
	APIKey     string
	HTTPClient *http.Client     // nil: a plain client
	Now        func() time.Time // nil: time.Now
	Table      *pricing.Table   // prices Judge when its Price is nil
	MaxRetries int              // retries after 429, 5xx or a timeout; 0 = DefaultSingleRetries, <0 = none
	Timeout    time.Duration    // per attempt; 0 = DefaultSingleTimeout
}

// Defaults of a SingleJudge.
const (
	DefaultSingleRetries = 2
	DefaultSingleTimeout = time.Minute
)

// SingleJudge asks one judge one question at a time, outside an eval run,
// with the run's provider code, retries (judgeClient.call), verdict parsing
// and one repair turn for an unreadable reply. It has no budget, cache or
// ledger: the caller records what Ask reports. It is safe for concurrent
// use.
type SingleJudge struct {
	jc *judgeClient
	rp *retryPolicy
}

// NewSingleJudge builds a SingleJudge; the judge must be priced.
func NewSingleJudge(cfg SingleJudgeConfig) (*SingleJudge, error) {
	if cfg.Judge == nil || cfg.Judge.Model == "" {
		return nil, errors.New("judge: no model")
	}
	j := *cfg.Judge
	if j.Name == "" {
		j.Name = j.Model
	}
	if j.MaxTokens < 0 {
		return nil, fmt.Errorf("judge %q: max_tokens must be positive", j.Name)
	}
	if j.MaxTokens == 0 {
		j.MaxTokens = DefaultMaxTokens
		if j.IsReasoning() {
			j.MaxTokens = DefaultReasoningMaxTokens
		}
	}
	if j.Price == nil {
		if cfg.Table == nil {
			return nil, fmt.Errorf("judge %q: no pricing table", j.Name)
		}
		m, err := cfg.Table.Lookup(j.Model)
		if err != nil {
			return nil, fmt.Errorf("judge %q: model %q is not priced (%v); add its price with --pricing FILE", j.Name, j.Model, err)
		}
		j.Price = m
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	jc, err := newJudgeClient(&j, cfg.BaseURL, cfg.APIKey, cfg.HTTPClient, now)
	if err != nil {
		return nil, err
	}
	retries := cfg.MaxRetries
	switch {
	case retries == 0:
		retries = DefaultSingleRetries
	case retries < 0:
		retries = 0
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultSingleTimeout
	}
	rp := &retryPolicy{maxRetries: retries, timeout: timeout, base: 500 * time.Millisecond, max: 30 * time.Second,
		jitter: rand.Float64, now: now, attempts: &atomic.Int64{},
		sleep: func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	return &SingleJudge{jc: jc, rp: rp}, nil
}

// Model is the judge's model, as sent.
func (s *SingleJudge) Model() string { return s.jc.judge.Model }

// MaxTokens is the output bound each of the judge's turns is sent with.
func (s *SingleJudge) MaxTokens() int64 { return int64(s.jc.judge.MaxTokens) }

// Endpoint is the judge's base URL without credentials.
func (s *SingleJudge) Endpoint() string { return s.jc.endpoint }

// Ask sends system (the rubric) and user (the question, AnswerInstruction
// appended) to the judge and parses its verdict, with one repair turn when
// the reply cannot be read. The usage and cost are of every answered call
// (both turns after a repair), also when an error is returned after a
// billed call: the caller records them. A reply without a usage block is
// billed from local counts, as in a run. Errors have the API key redacted.
func (s *SingleJudge) Ask(ctx context.Context, system, user string) (Verdict, pricing.Usage, pricing.Money, error) {
	jc := s.jc
	user += "\n\n" + AnswerInstruction
	var total pricing.Usage
	var cost pricing.Money
	call := func(p Prompt) (string, error) {
		res, err := jc.call(ctx, s.rp, p, callHooks{})
		if err != nil {
			return "", err
		}
		u := res.usage
		if worst, _ := jc.worst(jc.provider.PromptBound(p)); !res.hasUsage || u.InputTokens < 0 || u.OutputTokens < 0 ||
			u.CachedInputTokens < 0 || u.CacheWrite5mTokens < 0 || u.CacheWrite1hTokens < 0 ||
			u.CachedInputTokens+u.CacheWrite5mTokens+u.CacheWrite1hTokens > u.InputTokens {
			u = worst
			u.OutputTokens = jc.provider.ReplyTokens(res.reply)
		}
		total.InputTokens += u.InputTokens
		total.CachedInputTokens += u.CachedInputTokens
		total.CacheWrite5mTokens += u.CacheWrite5mTokens
		total.CacheWrite1hTokens += u.CacheWrite1hTokens
		total.OutputTokens += u.OutputTokens
		cost += jc.judge.Price.Cost(u, false)
		return res.reply, nil
	}
	reply, err := call(Prompt{System: system, User: user})
	if err != nil {
		return Verdict{}, total, cost, err
	}
	v, perr := ParseVerdict(reply)
	if perr != nil {
		reply2, err := call(Prompt{System: system, User: user, Repair: &Repair{Reply: reply, Instruction: fmt.Sprintf(repairInstruction, perr)}})
		if err != nil {
			return Verdict{}, total, cost, err
		}
		if v, perr = ParseVerdict(reply2); perr != nil {
			return Verdict{}, total, cost, errors.New(Redact(fmt.Sprintf("unreadable judge reply after one repair retry: %v", perr), jc.key))
		}
	}
	v.Reason = Redact(v.Reason, jc.key)
	return v, total, cost, nil
}
