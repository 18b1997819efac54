package evaluator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
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
	w("max_tokens", strconv.Itoa(j.MaxTokens))
	w("temperature", "0")
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
	judge    *Judge
	endpoint string // base URL, no credentials
	client   *openai.Client
	counter  *estimator.Counter
}

// raKey carries a slot for the Retry-After header through the request context.
type raKey struct{}

type retryAfterTransport struct{ base http.RoundTripper }

func (t *retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if resp != nil {
		if slot, ok := req.Context().Value(raKey{}).(*atomic.Value); ok {
			slot.Store(resp.Header.Get("Retry-After"))
		}
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
	wrapped.Transport = &retryAfterTransport{base: hc.Transport}
	cfg.HTTPClient = &wrapped
	return &judgeClient{judge: j, endpoint: redactURL(cfg.BaseURL), client: openai.NewClientWithConfig(cfg), counter: counter}, nil
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

// chatMessages are the messages of a judge request.
func chatMessages(system, user string, repair []openai.ChatCompletionMessage) []openai.ChatCompletionMessage {
	msgs := []openai.ChatCompletionMessage{
		{Role: openai.ChatMessageRoleSystem, Content: system},
		{Role: openai.ChatMessageRoleUser, Content: user},
	}
	return append(msgs, repair...)
}

// promptTokens counts a request's prompt locally with the chat formula.
func (jc *judgeClient) promptTokens(msgs []openai.ChatCompletionMessage) int64 {
	em := make([]estimator.Message, len(msgs))
	for i, m := range msgs {
		em[i] = estimator.Message{Role: m.Role, Content: m.Content, Name: m.Name}
	}
	n := jc.counter.Chat(em, nil)
	if !jc.counter.Exact() {
		// A stand-in tokenizer: leave a wide margin so the cap holds.
		n = n + n/4 + 32
	}
	return n + 8
}

// worstCost is a call's reservation: its prompt at the full input price plus
// a reply of max_tokens.
func (jc *judgeClient) worstCost(promptTokens int64) pricing.Money {
	return jc.judge.Price.Cost(pricing.Usage{InputTokens: promptTokens, OutputTokens: int64(jc.judge.MaxTokens)}, false)
}

// callResult is one billed HTTP call.
type callResult struct {
	reply     string
	usage     pricing.Usage
	latencyMS int64
}

// Fatal errors stop the whole run.
type FatalError struct{ Msg string }

func (e *FatalError) Error() string { return e.Msg }

// retryPolicy is how calls are retried.
type retryPolicy struct {
	maxRetries int
	timeout    time.Duration
	base, max  time.Duration
	jitter     func() float64 // in [0,1)
	sleep      func(ctx context.Context, d time.Duration) error
	now        func() time.Time
	attempts   *atomic.Int64 // HTTP requests sent
}

// errTimeout marks a call that timed out: it may have been billed.
var errTimeout = errors.New("timed out")

// call sends one chat completion with retries. On a retryable failure it
// waits (Retry-After when the server sent one, else exponential backoff with
// jitter) and tries again, up to maxRetries more times.
func (jc *judgeClient) call(ctx context.Context, rp *retryPolicy, msgs []openai.ChatCompletionMessage, onTimeout func() error) (callResult, error) {
	req := openai.ChatCompletionRequest{
		Model:     jc.judge.Model,
		Messages:  msgs,
		MaxTokens: jc.judge.MaxTokens,
		// go-openai omits a zero temperature (omitempty); the smallest
		// positive float32 is sent instead, which servers treat as greedy.
		Temperature: math.SmallestNonzeroFloat32,
	}
	if jc.judge.JSON() {
		req.ResponseFormat = &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatTypeJSONObject}
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return callResult{}, err
		}
		slot := &atomic.Value{}
		cctx, cancel := context.WithTimeout(context.WithValue(ctx, raKey{}, slot), rp.timeout)
		start := rp.now()
		rp.attempts.Add(1)
		resp, err := jc.client.CreateChatCompletion(cctx, req)
		lat := rp.now().Sub(start).Milliseconds()
		timedOut := cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil
		cancel()
		if err == nil {
			if len(resp.Choices) == 0 {
				err = errors.New("reply has no choices")
			} else {
				u := pricing.Usage{InputTokens: int64(resp.Usage.PromptTokens), OutputTokens: int64(resp.Usage.CompletionTokens)}
				if d := resp.Usage.PromptTokensDetails; d != nil {
					u.CachedInputTokens = int64(d.CachedTokens)
				}
				return callResult{reply: resp.Choices[0].Message.Content, usage: u, latencyMS: lat}, nil
			}
		}
		if ctx.Err() != nil {
			return callResult{}, ctx.Err()
		}
		retry, wait, cerr := classify(err, timedOut, rp.timeout)
		if timedOut && onTimeout != nil {
			if err := onTimeout(); err != nil {
				return callResult{}, err
			}
		}
		lastErr = cerr
		var fe *FatalError
		if errors.As(cerr, &fe) || !retry {
			return callResult{}, cerr
		}
		if attempt >= rp.maxRetries {
			if rp.maxRetries > 0 {
				return callResult{}, fmt.Errorf("%w (after %d retries)", lastErr, rp.maxRetries)
			}
			return callResult{}, lastErr
		}
		if ra, ok := parseRetryAfter(slot, rp.now()); ok {
			wait = ra
		} else {
			d := rp.base << attempt
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

func parseRetryAfter(slot *atomic.Value, now time.Time) (time.Duration, bool) {
	v, _ := slot.Load().(string)
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

// classify says whether a failed call may be retried, as a one-line error.
func classify(err error, timedOut bool, timeout time.Duration) (retry bool, wait time.Duration, out error) {
	if timedOut {
		return true, 0, fmt.Errorf("judge call timed out after %s (--timeout)", timeout)
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
		return false, 0, &FatalError{"the judge endpoint says the account is out of quota (429 insufficient_quota): add credit or use another key; results so far are saved"}
	case status == 401 || status == 403:
		return false, 0, &FatalError{fmt.Sprintf("the judge endpoint refused the API key (HTTP %d: %s); check OPENAI_API_KEY or the judge's api_key_env", status, msg)}
	case status == 404:
		return false, 0, &FatalError{fmt.Sprintf("the judge endpoint answered 404 (%s); check --base-url and the judge model", msg)}
	case status == 429 || status == 408 || status == 409 || status >= 500:
		return true, 0, fmt.Errorf("judge endpoint HTTP %d: %s", status, msg)
	case status >= 400:
		return false, 0, fmt.Errorf("judge endpoint HTTP %d: %s", status, msg)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true, 0, fmt.Errorf("judge call timed out: %v", err)
	}
	// Connection refused/reset, a garbled body: worth another try.
	return true, 0, fmt.Errorf("judge call failed: %v", oneLine(err))
}

func oneLine(err error) string {
	return clip(strings.Join(strings.Fields(err.Error()), " "), 200)
}
