package evaluator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/pricing"
)

// openaiProvider speaks the OpenAI chat completions API (any
// OpenAI-compatible endpoint) through go-openai. go-openai's types stay in
// this file.
type openaiProvider struct {
	judge     *Judge
	client    *openai.Client
	counter   *estimator.Counter
	reasoning bool
	now       func() time.Time
}

func newOpenAIProvider(pc ProviderConfig) (Provider, error) {
	j := pc.Judge
	counter, err := estimator.NewCounter(j.Price)
	if err != nil {
		return nil, err
	}
	cfg := openai.DefaultConfig(pc.APIKey)
	cfg.BaseURL = strings.TrimRight(pc.BaseURL, "/")
	hc := pc.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	wrapped := *hc
	wrapped.Transport = &judgeTransport{base: hc.Transport, zeroTemp: !j.IsReasoning()}
	cfg.HTTPClient = &wrapped
	now := pc.Now
	if now == nil {
		now = time.Now
	}
	return &openaiProvider{judge: j, client: openai.NewClientWithConfig(cfg), counter: counter, reasoning: j.IsReasoning(), now: now}, nil
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
		req.Body.Close() // the body was read in full; the request goes on with a copy
		if err != nil {
			return nil, err
		}
		b = withZeroTemperature(b)
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

// withZeroTemperature adds "temperature": 0 to a JSON object body that
// sets no temperature (what judgeTransport does to a non-reasoning
// request, and what a batch line's body carries).
func withZeroTemperature(b []byte) []byte {
	if len(b) > 0 && b[0] == '{' && !bytes.Contains(b, []byte(`"temperature":`)) {
		b = append([]byte(`{"temperature":0,`), b[1:]...)
	}
	return b
}

// chatMessages are the messages of a judge request: the rubric as system,
// the record as user, then any repair turn.
func chatMessages(system, user string, repair []openai.ChatCompletionMessage) []openai.ChatCompletionMessage {
	msgs := []openai.ChatCompletionMessage{
		{Role: openai.ChatMessageRoleSystem, Content: system},
		{Role: openai.ChatMessageRoleUser, Content: user},
	}
	return append(msgs, repair...)
}

// messages renders a Prompt as chat messages (a repair as the assistant's
// unreadable reply and a user follow-up).
func (*openaiProvider) messages(p Prompt) []openai.ChatCompletionMessage {
	var repair []openai.ChatCompletionMessage
	if p.Repair != nil {
		repair = []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleAssistant, Content: p.Repair.Reply},
			{Role: openai.ChatMessageRoleUser, Content: p.Repair.Instruction},
		}
	}
	return chatMessages(p.System, p.User, repair)
}

// PromptTokens counts the messages locally with the chat formula: what the
// API bills as prompt_tokens when the tokenizer is exact.
func (op *openaiProvider) PromptTokens(p Prompt) int64 {
	msgs := op.messages(p)
	em := make([]estimator.Message, len(msgs))
	for i, m := range msgs {
		em[i] = estimator.Message{Role: m.Role, Content: m.Content, Name: m.Name}
	}
	return op.counter.Chat(em, nil)
}

// PromptBound is promptBound of the messages.
func (op *openaiProvider) PromptBound(p Prompt) int64 { return promptBound(op.messages(p)) }

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

// WorstUsage is the whole prompt at the input price (OpenAI has no cache
// writes) plus a reply of max_tokens (max_completion_tokens for a
// reasoning model, which includes its reasoning).
func (op *openaiProvider) WorstUsage(promptTokens int64) pricing.Usage {
	return pricing.Usage{InputTokens: promptTokens, OutputTokens: int64(op.judge.MaxTokens)}
}

// ReplyTokens counts the reply's text; a reasoning model's hidden reasoning
// is unknown, so it is billed its full completion bound.
func (op *openaiProvider) ReplyTokens(reply string) int64 {
	maxOut := int64(op.judge.MaxTokens)
	if op.reasoning {
		return maxOut
	}
	return min(op.counter.Text(reply), maxOut)
}

// RequestText is the messages as JSON.
func (op *openaiProvider) RequestText(p Prompt) string {
	b, _ := json.Marshal(op.messages(p))
	return string(b)
}

// request is the chat completion request for p.
func (op *openaiProvider) request(p Prompt) openai.ChatCompletionRequest {
	req := openai.ChatCompletionRequest{Model: op.judge.Model, Messages: op.messages(p)}
	if op.reasoning {
		// No temperature: reasoning models accept only the default.
		req.MaxCompletionTokens = op.judge.MaxTokens
	} else {
		//lint:ignore SA1019 max_tokens is what OpenAI-compatible servers other than OpenAI's accept; reasoning models get max_completion_tokens above
		req.MaxTokens = op.judge.MaxTokens // temperature 0 is added by judgeTransport
	}
	if op.judge.JSON() {
		req.ResponseFormat = &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatTypeJSONObject}
	}
	return req
}

// openaiError is a failed, sent attempt with the Retry-After its answer
// carried (read by Classify).
type openaiError struct {
	err        error
	retryAfter string
}

func (e *openaiError) Error() string { return e.err.Error() }
func (e *openaiError) Unwrap() error { return e.err }

// Send makes one chat completion request.
func (op *openaiProvider) Send(ctx context.Context, p Prompt) (Attempt, error) {
	at := &attempt{}
	resp, err := op.client.CreateChatCompletion(context.WithValue(ctx, attemptKey{}, at), op.request(p))
	sent := at.sent.Load()
	if err == nil {
		var a Attempt
		if a, err = op.readReply(resp); err == nil {
			a.Sent = sent
			return a, nil
		}
	}
	if !sent {
		return Attempt{}, err
	}
	ra, _ := at.retryAfter.Load().(string)
	return Attempt{Sent: true}, &openaiError{err: err, retryAfter: ra}
}

// readReply reads a chat completion as Send does (and a batch result's
// body): the first choice's content and the usage (cached prompt tokens
// from prompt_tokens_details; HasUsage when any count is set). Sent is left
// to the caller.
func (*openaiProvider) readReply(resp openai.ChatCompletionResponse) (Attempt, error) {
	if len(resp.Choices) == 0 {
		return Attempt{}, errors.New("reply has no choices")
	}
	u := pricing.Usage{InputTokens: int64(resp.Usage.PromptTokens), OutputTokens: int64(resp.Usage.CompletionTokens)}
	if d := resp.Usage.PromptTokensDetails; d != nil {
		u.CachedInputTokens = int64(d.CachedTokens)
	}
	has := resp.Usage.PromptTokens != 0 || resp.Usage.CompletionTokens != 0 || resp.Usage.TotalTokens != 0
	return Attempt{Text: resp.Choices[0].Message.Content, Usage: u, HasUsage: has}, nil
}

// body is the JSON a live Send of p posts: the request as go-openai
// marshals it, with "temperature": 0 for a non-reasoning judge (as
// judgeTransport adds it). A batch line carries it as its body.
func (op *openaiProvider) body(p Prompt) ([]byte, error) {
	req := op.request(p)
	if err := openai.NewReasoningValidator().Validate(req); err != nil {
		return nil, err // a live Send refuses it before sending, too
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if !op.reasoning {
		b = withZeroTemperature(b)
	}
	return b, nil
}

// Classify reads go-openai's error types: out of quota, a refused key and
// 404 stop the run; 429, 5xx, 408/409 and network failures are retried;
// any other 4xx fails the call.
func (op *openaiProvider) Classify(err error) Failure {
	f := classify(err)
	var oe *openaiError
	if errors.As(err, &oe) {
		f.After, f.HasAfter = parseRetryAfter(oe.retryAfter, op.now())
	}
	return f
}

// classify says whether a failed call may be retried (and why, for the
// summary's retry counts), as a one-line error.
func classify(err error) Failure {
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
	retry := func(cause string, err error) Failure { return Failure{Action: ActRetry, Cause: cause, Err: err} }
	switch {
	case status == 429 && code == "insufficient_quota":
		return Failure{Action: ActStop, Err: errors.New("the judge endpoint says the account is out of quota (429 insufficient_quota): add credit or use another key; results so far are saved")}
	case status == 401 || status == 403:
		return Failure{Action: ActStop, Err: fmt.Errorf("the judge endpoint refused the API key (HTTP %d: %s); check OPENAI_API_KEY or the judge's api_key_env", status, msg)}
	case status == 404:
		return Failure{Action: ActStop, Err: fmt.Errorf("the judge endpoint answered 404 (%s); check --base-url and the judge model", msg)}
	case status == 429:
		return retry(Retry429, fmt.Errorf("judge endpoint HTTP %d: %s", status, msg))
	case status >= 500:
		return retry(Retry5xx, fmt.Errorf("judge endpoint HTTP %d: %s", status, msg))
	case status == 408 || status == 409:
		return retry(RetryNetwork, fmt.Errorf("judge endpoint HTTP %d: %s", status, msg))
	case status >= 400:
		return Failure{Action: ActFail, Err: fmt.Errorf("judge endpoint HTTP %d: %s", status, msg)}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return retry(RetryTimeout, fmt.Errorf("judge call timed out: %v", err))
	}
	// Connection refused/reset, a garbled body: worth another try.
	return retry(RetryNetwork, fmt.Errorf("judge call failed: %v", oneLine(err)))
}
