package evaluator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/costctl/costctl/pricing"
)

// judgeClient is one judge of a run: its provider, and what the runner needs
// around it (the endpoint for the cache key and the ledger, the key to
// redact).
type judgeClient struct {
	judge    *Judge
	provider Provider
	endpoint string // base URL, no credentials
	key      string // the API key: only to redact it from server messages
}

func newJudgeClient(j *Judge, baseURL, apiKey string, hc *http.Client, now func() time.Time) (*judgeClient, error) {
	def, ok := providers[j.ProviderName()]
	if !ok {
		return nil, &ConfigError{Msg: fmt.Sprintf("judge %q: provider %q is not known (want one of: %s)", j.Name, j.ProviderName(), providerNames())}
	}
	if hc == nil {
		hc = &http.Client{}
	}
	p, err := def.new(ProviderConfig{Judge: j, BaseURL: baseURL, APIKey: apiKey, HTTPClient: hc, Now: now})
	if err != nil {
		return nil, err
	}
	return &judgeClient{judge: j, provider: p, endpoint: redactURL(strings.TrimRight(baseURL, "/")), key: apiKey}, nil
}

// worst is a call's reservation for a prompt of promptTokens: the usage the
// provider says it can bill at most, and its price (at the long-context
// tier it would fall in).
func (jc *judgeClient) worst(promptTokens int64) (pricing.Usage, pricing.Money) {
	u := jc.provider.WorstUsage(promptTokens)
	return u, jc.judge.Price.Cost(u, false)
}

// callResult is one answered call.
type callResult struct {
	reply     string
	usage     pricing.Usage
	hasUsage  bool // the reply carried a usage block
	latencyMS int64
}

// Fatal errors stop the whole run.
type FatalError struct {
	Msg string
	Err error // the cause, when it can be shown (nil where the message was redacted)
}

func (e *FatalError) Error() string { return e.Msg }

func (e *FatalError) Unwrap() error { return e.Err }

// Retry causes, as counted in the summary.
const (
	Retry429     = "429"
	Retry5xx     = "5xx"
	RetryTimeout = "timeout"
	RetryNetwork = "network"
	RetryRepair  = "repair"
)

// retryPolicy is how calls are retried.
type retryPolicy struct {
	maxRetries int
	timeout    time.Duration
	base, max  time.Duration
	jitter     func() float64 // in [0,1)
	sleep      func(ctx context.Context, d time.Duration) error
	now        func() time.Time
	attempts   *atomic.Int64 // requests sent
	retried    func(cause string)
}

// callHooks let the runner account for attempts that may have been billed.
type callHooks struct {
	// unsettled is called when a sent attempt timed out or was cancelled:
	// the server may bill it. Before a retry it must reserve the budget
	// again (an error stops the call).
	unsettled func(cancelled bool) error
}

// call sends one judge call with retries: the one retry loop, for every
// provider. On a retryable failure it waits (the server's Retry-After when
// it sent one, else exponential backoff with jitter) and tries again, up to
// maxRetries more times. An error before the request left the process (the
// client refused it) is never retried.
func (jc *judgeClient) call(ctx context.Context, rp *retryPolicy, p Prompt, hooks callHooks) (callResult, error) {
	var lastErr error
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return callResult{}, err
		}
		cctx, cancel := context.WithTimeout(ctx, rp.timeout)
		start := rp.now()
		at, err := jc.provider.Send(cctx, p)
		lat := rp.now().Sub(start).Milliseconds()
		timedOut := cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil
		cancel()
		if at.Sent {
			rp.attempts.Add(1)
		}
		if err == nil {
			return callResult{reply: at.Text, usage: at.Usage, hasUsage: at.HasUsage, latencyMS: lat}, nil
		}
		if !at.Sent && ctx.Err() == nil && !timedOut {
			// Refused before sending (the client validates some requests
			// locally): every call would fail the same way.
			return callResult{}, &FatalError{Msg: fmt.Sprintf("judge %q: the request was refused before sending: %s", jc.judge.Name, Redact(oneLine(err), jc.key))}
		}
		if ctx.Err() != nil {
			if at.Sent && hooks.unsettled != nil {
				_ = hooks.unsettled(true)
			}
			return callResult{}, ctx.Err()
		}
		f := jc.provider.Classify(err)
		if timedOut {
			// Our own deadline, whatever error it surfaced as (the server's
			// Retry-After, if its headers came in time, still applies).
			f = Failure{Action: ActRetry, Cause: RetryTimeout, Err: fmt.Errorf("judge call timed out after %s (--timeout)", rp.timeout),
				After: f.After, HasAfter: f.HasAfter}
		}
		cerr := redactFailure(f, jc.key)
		if timedOut && hooks.unsettled != nil {
			if err := hooks.unsettled(false); err != nil {
				return callResult{}, err
			}
		}
		lastErr = cerr
		if f.Action != ActRetry {
			return callResult{}, cerr
		}
		if n >= rp.maxRetries {
			if rp.maxRetries > 0 {
				return callResult{}, fmt.Errorf("%w (after %d retries)", lastErr, rp.maxRetries)
			}
			return callResult{}, lastErr
		}
		if rp.retried != nil {
			rp.retried(f.Cause)
		}
		var wait time.Duration
		if f.HasAfter {
			wait = f.After
		} else {
			d := rp.base << n
			if d > rp.max || d <= 0 {
				d = rp.max
			}
			wait = d/2 + time.Duration(float64(d/2)*rp.jitter())
		}
		if err := rp.sleep(ctx, wait); err != nil {
			return callResult{}, err
		}
	}
}

// redactFailure is a failure's error with the key redacted: a FatalError
// when the run must stop.
func redactFailure(f Failure, key string) error {
	err := f.Err
	if err == nil {
		err = errors.New("judge call failed")
	}
	var fe *FatalError
	if f.Action == ActStop || errors.As(err, &fe) {
		msg := err.Error()
		if fe != nil {
			msg = fe.Msg
		}
		return &FatalError{Msg: Redact(msg, key)}
	}
	return errors.New(Redact(err.Error(), key))
}

// maxRetryAfter caps how long a server may ask a call to wait.
const maxRetryAfter = 10 * time.Minute

// parseRetryAfter reads an HTTP Retry-After header (seconds or an HTTP
// date, capped at maxRetryAfter), for providers that speak HTTP.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
		d := time.Duration(secs * float64(time.Second))
		if d > maxRetryAfter {
			d = maxRetryAfter
		}
		return d, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		if d > maxRetryAfter {
			d = maxRetryAfter
		}
		return d, true
	}
	return 0, false
}

func oneLine(err error) string {
	return clip(strings.Join(strings.Fields(err.Error()), " "), 200)
}
