package evaluator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/records"
)

// AnswerInstruction ends every judge user message: the reply format.
const AnswerInstruction = `Answer only with a JSON object: {"score": <number from 0 to 1, where 1 is best>, "reason": "<one short sentence>"}`

// repairInstruction follows a reply that did not parse (one repair retry).
const repairInstruction = `Your reply could not be read (%s). ` + AnswerInstruction

// UserMessage renders the record for a judge. Without a template the layout
// is fixed (sections with no content are left out):
//
//	## Input
//	<input text, or chat messages rendered as "role: content" blocks>
//
//	## Output
//	<output>
//
//	## Expected
//	<expected>
//
//	## Context
//	[1] <first passage>
//
//	[2] <second passage>
//
//	<AnswerInstruction>
//
// With a template, {{id}}, {{input}}, {{output}}, {{expected}} and
// {{context}} (passages as "[n] text" blocks) are replaced and the answer
// instruction is appended after a blank line.
func UserMessage(m *Metric, rec *records.Record) string {
	ctx := renderContext(rec.Context)
	if m.Template != "" {
		body := placeholderRe.ReplaceAllStringFunc(m.Template, func(ph string) string {
			switch strings.TrimSpace(strings.Trim(ph, "{}")) {
			case "id":
				return rec.ID
			case "input":
				return rec.Input
			case "output":
				return rec.Output
			case "expected":
				return rec.Expected
			case "context":
				return ctx
			}
			return ph
		})
		return strings.TrimRight(body, "\n") + "\n\n" + AnswerInstruction
	}
	var b strings.Builder
	section := func(title, body string) {
		if body == "" {
			return
		}
		b.WriteString("## " + title + "\n" + body + "\n\n")
	}
	section("Input", rec.Input)
	b.WriteString("## Output\n" + rec.Output + "\n\n")
	section("Expected", rec.Expected)
	section("Context", ctx)
	b.WriteString(AnswerInstruction)
	return b.String()
}

func renderContext(c []string) string {
	parts := make([]string, len(c))
	for i, p := range c {
		parts[i] = fmt.Sprintf("[%d] %s", i+1, p)
	}
	return strings.Join(parts, "\n\n")
}

// CacheKey is the judge cache key: a SHA-256 over everything that can change
// a verdict — the endpoint, the model as sent, json mode, max_tokens,
// temperature, the system message (the rubric) and the user message (the
// record fields the judge sees, in the layout or template). A metric's name
// and threshold are not part of it: renaming a metric or moving its pass mark
// does not change what the judge is asked, so neither re-buys verdicts (the
// threshold is applied to the cached score).
func CacheKey(endpoint string, j *Judge, system, user string) string {
	h := sha256.New()
	w := func(k, v string) { fmt.Fprintf(h, "%s=%d:%s\n", k, len(v), v) }
	w("v", "costctl-judge-1")
	w("endpoint", endpoint)
	w("model", j.Model)
	w("json_mode", strconv.FormatBool(j.JSON()))
	if j.IsReasoning() {
		// Sent as max_completion_tokens, with the model's own temperature.
		w("max_completion_tokens", strconv.Itoa(j.MaxTokens))
		w("temperature", "default")
	} else {
		w("max_tokens", strconv.Itoa(j.MaxTokens))
		w("temperature", "0")
	}
	w("system", system)
	w("user", user)
	return hex.EncodeToString(h.Sum(nil))
}

// Verdict is a parsed judge reply.
type Verdict struct {
	Score  float64
	Reason string
}

// ParseVerdict reads {"score": 0..1, "reason": "..."} from a reply,
// tolerating code fences and text around the object.
func ParseVerdict(reply string) (Verdict, error) {
	s := strings.TrimSpace(reply)
	if s == "" {
		return Verdict{}, errors.New("empty reply")
	}
	var cands []string
	cands = append(cands, s)
	if i := strings.Index(s, "{"); i >= 0 {
		if k := strings.LastIndex(s, "}"); k > i {
			cands = append(cands, s[i:k+1])
		}
	}
	var lastErr error = errors.New("no JSON object in the reply")
	for _, c := range cands {
		var raw struct {
			Score  json.RawMessage `json:"score"`
			Reason any             `json:"reason"`
		}
		if err := json.Unmarshal([]byte(c), &raw); err != nil {
			continue
		}
		if len(raw.Score) == 0 || string(raw.Score) == "null" {
			lastErr = errors.New(`no "score" in the reply`)
			continue
		}
		var score float64
		txt := strings.Trim(string(raw.Score), `"`)
		f, err := strconv.ParseFloat(strings.TrimSpace(txt), 64)
		if err != nil {
			lastErr = fmt.Errorf("score %s is not a number", clip(string(raw.Score), 20))
			continue
		}
		score = f
		if math.IsNaN(score) || score < 0 || score > 1 {
			lastErr = fmt.Errorf("score %v is outside 0..1", score)
			continue
		}
		v := Verdict{Score: score}
		switch r := raw.Reason.(type) {
		case string:
			v.Reason = r
		case nil:
		default:
			b, _ := json.Marshal(r)
			v.Reason = string(b)
		}
		return v, nil
	}
	return Verdict{}, lastErr
}

// judgeClient calls one judge's endpoint.
type judgeClient struct {
	judge     *Judge
	endpoint  string // base URL, no credentials
	client    *openai.Client
	counter   *estimator.Counter
	key       string // the API key: only to redact it from server messages
	reasoning bool
}

// attemptKey carries an *attempt through the request context to the transport.
type attemptKey struct{}

// attempt is what the transport saw of one request: whether it left the
// process (a failure before that is local and never retried or billed) and
// the Retry-After header of the answer.
type attempt struct {
	sent       atomic.Bool
	retryAfter atomic.Value // string
}

// judgeTransport marks requests as sent, keeps Retry-After, and adds
// "temperature": 0 to the body of a non-reasoning request: go-openai omits a
// zero temperature (omitempty), and the API's default is 1.
type judgeTransport struct {
	base     http.RoundTripper
	zeroTemp bool
}

func (t *judgeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	if t.zeroTemp && req.Body != nil && req.Method == http.MethodPost {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(b) > 0 && b[0] == '{' && !bytes.Contains(b, []byte(`"temperature":`)) {
			b = append([]byte(`{"temperature":0,`), b[1:]...)
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	at, _ := req.Context().Value(attemptKey{}).(*attempt)
	if at != nil {
		at.sent.Store(true)
	}
	resp, err := base.RoundTrip(req)
	if resp != nil && at != nil {
		at.retryAfter.Store(resp.Header.Get("Retry-After"))
	}
	return resp, err
}

func newJudgeClient(j *Judge, baseURL, apiKey string, hc *http.Client) (*judgeClient, error) {
	counter, err := estimator.NewCounter(j.Price)
	if err != nil {
		return nil, err
	}
	cfg := openai.DefaultConfig(apiKey)
	cfg.BaseURL = strings.TrimRight(baseURL, "/")
	if hc == nil {
		hc = &http.Client{}
	}
	wrapped := *hc
	wrapped.Transport = &judgeTransport{base: hc.Transport, zeroTemp: !j.IsReasoning()}
	cfg.HTTPClient = &wrapped
	return &judgeClient{judge: j, endpoint: redactURL(cfg.BaseURL), client: openai.NewClientWithConfig(cfg), counter: counter,
		key: apiKey, reasoning: j.IsReasoning()}, nil
}

// redactURL drops credentials and query from a URL so it can be stored and shown.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return strings.TrimRight(u.String(), "/")
}

// secretRes match credentials a server may echo in an error message.
var secretRes = []*regexp.Regexp{
	regexp.MustCompile(`(?i)(authorization|proxy-authorization)(["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token)\s+)?[^\s"',;&}]+`),
	regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+`),
	regexp.MustCompile(`(?i)(x-api-key|api[-_]?key|x-goog-api-key|access[-_]?token|secret|password)(["']?\s*[:=]\s*["']?)[^\s"',;&}]+`),
	regexp.MustCompile(`\b(sk|pk|rk)-[A-Za-z0-9_-]{8,}`),
}

// Redact removes API keys from text that came from a server or an error
// before it reaches a terminal, a result row or a report: the given key
// values wherever they appear, and anything that looks like a credential
// (Authorization headers, Bearer tokens, x-api-key, ?api-key= query values,
// sk-… keys).
func Redact(s string, keys ...string) string {
	for _, k := range keys {
		if len(k) >= 4 {
			s = strings.ReplaceAll(s, k, "[REDACTED]")
		}
	}
	for i, re := range secretRes {
		switch i {
		case 0, 2:
			s = re.ReplaceAllString(s, "${1}${2}[REDACTED]")
		case 1:
			s = re.ReplaceAllStringFunc(s, func(m string) string {
				return m[:strings.IndexAny(m, " \t")] + " [REDACTED]"
			})
		default:
			s = re.ReplaceAllString(s, "[REDACTED]")
		}
	}
	return s
}

// chatMessages are the messages of a judge request.
func chatMessages(system, user string, repair []openai.ChatCompletionMessage) []openai.ChatCompletionMessage {
	msgs := []openai.ChatCompletionMessage{
		{Role: openai.ChatMessageRoleSystem, Content: system},
		{Role: openai.ChatMessageRoleUser, Content: user},
	}
	return append(msgs, repair...)
}

// promptTokens counts a request's prompt locally with the chat formula: what
// the API bills as prompt_tokens when the tokenizer is exact. It values
// calls not made (cascade skips) and projects dry runs; it is not a bound.
func (jc *judgeClient) promptTokens(msgs []openai.ChatCompletionMessage) int64 {
	em := make([]estimator.Message, len(msgs))
	for i, m := range msgs {
		em[i] = estimator.Message{Role: m.Role, Content: m.Content, Name: m.Name}
	}
	return jc.counter.Chat(em, nil)
}

// Bounds on what an honest server can bill as prompt tokens beyond the
// message bytes: a chat template's special tokens per message and a
// fixed preamble (some servers add a default system text).
const (
	boundPerMessage = 8
	boundFixed      = 64
)

// promptBound is the most prompt tokens an honest server can bill for msgs,
// whatever its tokenizer: a byte-level BPE (or byte fallback) never yields
// more tokens than UTF-8 bytes, and a chat template adds a few tokens per
// message. The budget reserves this, not the local count, so a server that
// counts differently cannot push spend over the cap.
func promptBound(msgs []openai.ChatCompletionMessage) int64 {
	n := int64(boundFixed)
	for _, m := range msgs {
		n += int64(len(m.Role)+len(m.Content)+len(m.Name)) + boundPerMessage
	}
	return n
}

// maxOutput is the completion bound sent with every request (max_tokens, or
// max_completion_tokens for a reasoning model, which includes its reasoning).
func (jc *judgeClient) maxOutput() int64 { return int64(jc.judge.MaxTokens) }

// worstCost is a call's reservation: the prompt bound at the full input price
// (the long-context tier it would fall in) plus a reply of maxOutput.
func (jc *judgeClient) worstCost(promptBound int64) pricing.Money {
	return jc.judge.Price.Cost(pricing.Usage{InputTokens: promptBound, OutputTokens: jc.maxOutput()}, false)
}

// callResult is one billed HTTP call.
type callResult struct {
	reply     string
	usage     pricing.Usage
	hasUsage  bool // the reply carried a usage block
	latencyMS int64
}

// Fatal errors stop the whole run.
type FatalError struct{ Msg string }

func (e *FatalError) Error() string { return e.Msg }

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
	attempts   *atomic.Int64 // HTTP requests sent
	retried    func(cause string)
}

// callHooks let the runner account for attempts that may have been billed.
type callHooks struct {
	// unsettled is called when a sent attempt timed out or was cancelled:
	// the server may bill it. Before a retry it must reserve the budget
	// again (an error stops the call).
	unsettled func(cancelled bool) error
}

// call sends one chat completion with retries. On a retryable failure it
// waits (Retry-After when the server sent one, else exponential backoff with
// jitter) and tries again, up to maxRetries more times. An error before the
// request left the process (the client refused it) is never retried.
func (jc *judgeClient) call(ctx context.Context, rp *retryPolicy, msgs []openai.ChatCompletionMessage, hooks callHooks) (callResult, error) {
	req := openai.ChatCompletionRequest{Model: jc.judge.Model, Messages: msgs}
	if jc.reasoning {
		// No temperature: reasoning models accept only the default.
		req.MaxCompletionTokens = jc.judge.MaxTokens
	} else {
		req.MaxTokens = jc.judge.MaxTokens // temperature 0 is added by judgeTransport
	}
	if jc.judge.JSON() {
		req.ResponseFormat = &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatTypeJSONObject}
	}
	var lastErr error
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return callResult{}, err
		}
		at := &attempt{}
		cctx, cancel := context.WithTimeout(context.WithValue(ctx, attemptKey{}, at), rp.timeout)
		start := rp.now()
		resp, err := jc.client.CreateChatCompletion(cctx, req)
		lat := rp.now().Sub(start).Milliseconds()
		timedOut := cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil
		cancel()
		if at.sent.Load() {
			rp.attempts.Add(1)
		}
		if err == nil {
			if len(resp.Choices) == 0 {
				err = errors.New("reply has no choices")
			} else {
				u := pricing.Usage{InputTokens: int64(resp.Usage.PromptTokens), OutputTokens: int64(resp.Usage.CompletionTokens)}
				if d := resp.Usage.PromptTokensDetails; d != nil {
					u.CachedInputTokens = int64(d.CachedTokens)
				}
				has := resp.Usage.PromptTokens != 0 || resp.Usage.CompletionTokens != 0 || resp.Usage.TotalTokens != 0
				return callResult{reply: resp.Choices[0].Message.Content, usage: u, hasUsage: has, latencyMS: lat}, nil
			}
		}
		if !at.sent.Load() && ctx.Err() == nil && !timedOut {
			// Refused before sending (go-openai validates some requests
			// locally): every call would fail the same way.
			return callResult{}, &FatalError{fmt.Sprintf("judge %q: the request was refused before sending: %s", jc.judge.Name, Redact(oneLine(err), jc.key))}
		}
		if ctx.Err() != nil {
			if at.sent.Load() && hooks.unsettled != nil {
				_ = hooks.unsettled(true)
			}
			return callResult{}, ctx.Err()
		}
		retry, cause, cerr := classify(err, timedOut, rp.timeout)
		cerr = redactErr(cerr, jc.key)
		if timedOut && hooks.unsettled != nil {
			if err := hooks.unsettled(false); err != nil {
				return callResult{}, err
			}
		}
		lastErr = cerr
		var fe *FatalError
		if errors.As(cerr, &fe) || !retry {
			return callResult{}, cerr
		}
		if n >= rp.maxRetries {
			if rp.maxRetries > 0 {
				return callResult{}, fmt.Errorf("%w (after %d retries)", lastErr, rp.maxRetries)
			}
			return callResult{}, lastErr
		}
		if rp.retried != nil {
			rp.retried(cause)
		}
		var wait time.Duration
		if ra, ok := parseRetryAfter(at, rp.now()); ok {
			wait = ra
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

// redactErr redacts an error's message, keeping a FatalError fatal.
func redactErr(err error, key string) error {
	if err == nil {
		return nil
	}
	var fe *FatalError
	if errors.As(err, &fe) {
		return &FatalError{Redact(fe.Msg, key)}
	}
	return errors.New(Redact(err.Error(), key))
}

func parseRetryAfter(at *attempt, now time.Time) (time.Duration, bool) {
	v, _ := at.retryAfter.Load().(string)
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
		d := time.Duration(secs * float64(time.Second))
		if d > 10*time.Minute {
			d = 10 * time.Minute
		}
		return d, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		if d > 10*time.Minute {
			d = 10 * time.Minute
		}
		return d, true
	}
	return 0, false
}

// classify says whether a failed call may be retried (and why, for the
// summary's retry counts), as a one-line error.
func classify(err error, timedOut bool, timeout time.Duration) (retry bool, cause string, out error) {
	if timedOut {
		return true, RetryTimeout, fmt.Errorf("judge call timed out after %s (--timeout)", timeout)
	}
	status, code, msg := 0, "", ""
	var ae *openai.APIError
	var re *openai.RequestError
	switch {
	case errors.As(err, &ae):
		status, msg = ae.HTTPStatusCode, ae.Message
		if s, ok := ae.Code.(string); ok {
			code = s
		}
		if code == "" {
			code = ae.Type
		}
		if ae.Type == "insufficient_quota" {
			code = "insufficient_quota"
		}
	case errors.As(err, &re):
		status = re.HTTPStatusCode
		msg = strings.TrimSpace(string(re.Body))
		if strings.Contains(msg, "insufficient_quota") {
			code = "insufficient_quota"
		}
		if msg == "" && re.Err != nil {
			msg = re.Err.Error()
		}
	}
	msg = clip(strings.Join(strings.Fields(msg), " "), 200)
	switch {
	case status == 429 && code == "insufficient_quota":
		return false, "", &FatalError{"the judge endpoint says the account is out of quota (429 insufficient_quota): add credit or use another key; results so far are saved"}
	case status == 401 || status == 403:
		return false, "", &FatalError{fmt.Sprintf("the judge endpoint refused the API key (HTTP %d: %s); check OPENAI_API_KEY or the judge's api_key_env", status, msg)}
	case status == 404:
		return false, "", &FatalError{fmt.Sprintf("the judge endpoint answered 404 (%s); check --base-url and the judge model", msg)}
	case status == 429:
		return true, Retry429, fmt.Errorf("judge endpoint HTTP %d: %s", status, msg)
	case status >= 500:
		return true, Retry5xx, fmt.Errorf("judge endpoint HTTP %d: %s", status, msg)
	case status == 408 || status == 409:
		return true, RetryNetwork, fmt.Errorf("judge endpoint HTTP %d: %s", status, msg)
	case status >= 400:
		return false, "", fmt.Errorf("judge endpoint HTTP %d: %s", status, msg)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true, RetryTimeout, fmt.Errorf("judge call timed out: %v", err)
	}
	// Connection refused/reset, a garbled body: worth another try.
	return true, RetryNetwork, fmt.Errorf("judge call failed: %v", oneLine(err))
}

func oneLine(err error) string {
	return clip(strings.Join(strings.Fields(err.Error()), " "), 200)
}
