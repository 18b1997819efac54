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
	"net/url"
	"strings"
	"time"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/pricing"
)

// The Anthropic Messages API, spoken with net/http: POST {base}/v1/messages
// with x-api-key and anthropic-version. The rubric is a system block marked
// for prompt caching (cache_control ephemeral: a 5-minute cache), so records
// after the first read it at the cache-read rate; the verdict is a forced
// call of the tool "verdict" whose input is the same {score, reason} JSON an
// OpenAI judge writes as text. The wire types stay in this file.

// DefaultAnthropicBaseURL is where anthropic judges are sent when neither
// the judge's base_url, --base-url nor ANTHROPIC_BASE_URL says otherwise.
const DefaultAnthropicBaseURL = "https://api.anthropic.com"

// anthropicVersion is the API version header every request carries.
const anthropicVersion = "2023-06-01"

// verdictTool is the tool a judge with json_mode (the default) must call.
const verdictTool = "verdict"

// anthropicToolPrompt bounds the tool-use system prompt Anthropic adds to a
// request with tools (documented per model as 235–340 tokens for a forced
// tool; counted generously).
const anthropicToolPrompt = 512

// maxAnthropicReply caps how much of a reply body is read.
const maxAnthropicReply = 8 << 20

type anthropicProvider struct {
	judge    *Judge
	url      string // {base}/v1/messages
	key      string
	hc       *http.Client
	counter  *estimator.Counter
	now      func() time.Time
	tools    []anthropicTool // nil without json_mode: the verdict is read from text
	toolJSON string          // tools as sent, for counts and bounds
}

func newAnthropicProvider(pc ProviderConfig) (Provider, error) {
	j := pc.Judge
	counter, err := estimator.NewCounter(j.Price)
	if err != nil {
		return nil, err
	}
	hc := pc.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	wrapped := *hc
	// judgeTransport (judge_openai.go) marks the attempt as sent when it
	// reaches the transport; no body rewriting here.
	wrapped.Transport = &judgeTransport{base: hc.Transport}
	// No redirects: net/http would carry x-api-key to wherever they point.
	wrapped.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	now := pc.Now
	if now == nil {
		now = time.Now
	}
	base := strings.TrimRight(pc.BaseURL, "/")
	if pu, err := url.Parse(base); err != nil || pu.Scheme != "http" && pu.Scheme != "https" || pu.Host == "" {
		shown := "(unparsable)"
		if err == nil {
			shown = redactURL(base)
		}
		return nil, &ConfigError{Msg: fmt.Sprintf("judge %q: the Anthropic base URL %s is not an http(s) URL; fix base_url or ANTHROPIC_BASE_URL", j.Name, shown)}
	}
	u := base + "/v1/messages"
	if strings.HasSuffix(base, "/v1") {
		u = base + "/messages" // a base URL given with its /v1, as OpenAI's are
	}
	ap := &anthropicProvider{judge: j, url: u, key: pc.APIKey, hc: &wrapped, counter: counter, now: now}
	if j.JSON() {
		ap.tools = []anthropicTool{verdictToolDef}
		b, _ := json.Marshal(ap.tools)
		ap.toolJSON = string(b)
	}
	return ap, nil
}

// Wire types of the Messages API (only what a judge sends and reads).
type (
	anthropicRequest struct {
		Model       string              `json:"model"`
		MaxTokens   int                 `json:"max_tokens"`
		Temperature *float64            `json:"temperature,omitempty"`
		System      []anthropicBlock    `json:"system"`
		Messages    []anthropicMessage  `json:"messages"`
		Tools       []anthropicTool     `json:"tools,omitempty"`
		ToolChoice  *anthropicToolUseOf `json:"tool_choice,omitempty"`
	}
	anthropicBlock struct {
		Type         string                 `json:"type"`
		Text         string                 `json:"text"`
		CacheControl *anthropicCacheControl `json:"cache_control,omitempty"`
	}
	anthropicCacheControl struct {
		Type string `json:"type"`
	}
	anthropicMessage struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	anthropicTool struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"input_schema"`
	}
	anthropicToolUseOf struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}

	anthropicResponse struct {
		Type       string `json:"type"`
		StopReason string `json:"stop_reason"`
		Content    []struct {
			Type  string          `json:"type"`
			Text  string          `json:"text"`
			Name  string          `json:"name"`
			Input json.RawMessage `json:"input"`
		} `json:"content"`
		Usage *anthropicUsage `json:"usage"`
	}
	anthropicUsage struct {
		InputTokens   *int64 `json:"input_tokens"`
		OutputTokens  *int64 `json:"output_tokens"`
		CacheRead     int64  `json:"cache_read_input_tokens"`
		CacheCreation int64  `json:"cache_creation_input_tokens"`
		Split         *struct {
			W5 int64 `json:"ephemeral_5m_input_tokens"`
			W1 int64 `json:"ephemeral_1h_input_tokens"`
		} `json:"cache_creation"`
	}
	anthropicErrorBody struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
)

var verdictToolDef = anthropicTool{
	Name:        verdictTool,
	Description: "Record the verdict on the output: a score from 0 to 1 (1 is best) and one short sentence of reason.",
	InputSchema: json.RawMessage(`{"type":"object","properties":{"score":{"type":"number","description":"from 0 to 1, where 1 is best"},"reason":{"type":"string","description":"one short sentence"}},"required":["score","reason"]}`),
}

// system is the rubric as one system block marked for prompt caching.
func (*anthropicProvider) system(p Prompt) []anthropicBlock {
	return []anthropicBlock{{Type: "text", Text: p.System, CacheControl: &anthropicCacheControl{Type: "ephemeral"}}}
}

// messages are the record as the user turn, then any repair turn: the
// unreadable reply as the assistant's text and the instruction as the user's.
func (*anthropicProvider) messages(p Prompt) []anthropicMessage {
	msgs := []anthropicMessage{{Role: "user", Content: p.User}}
	if p.Repair != nil {
		reply := p.Repair.Reply
		if strings.TrimSpace(reply) == "" {
			reply = "(no verdict)" // the API refuses an empty assistant turn
		}
		msgs = append(msgs, anthropicMessage{Role: "assistant", Content: reply}, anthropicMessage{Role: "user", Content: p.Repair.Instruction})
	}
	return msgs
}

// request is the Messages request for p: temperature 0 (a reasoning judge
// keeps the model's default), and with json_mode the forced verdict tool.
func (ap *anthropicProvider) request(p Prompt) anthropicRequest {
	req := anthropicRequest{Model: ap.judge.Model, MaxTokens: ap.judge.MaxTokens, System: ap.system(p), Messages: ap.messages(p)}
	if !ap.judge.IsReasoning() {
		zero := 0.0
		req.Temperature = &zero
	}
	if ap.tools != nil {
		req.Tools = ap.tools
		req.ToolChoice = &anthropicToolUseOf{Type: "tool", Name: verdictTool}
	}
	return req
}

// PromptTokens counts the system block, the messages and the tool locally
// (an o200k_base stand-in: Anthropic's tokenizer is not public).
func (ap *anthropicProvider) PromptTokens(p Prompt) int64 {
	msgs := []estimator.Message{{Role: "system", Content: p.System}}
	for _, m := range ap.messages(p) {
		msgs = append(msgs, estimator.Message{Role: m.Role, Content: m.Content})
	}
	n := ap.counter.Chat(msgs, nil)
	if ap.tools != nil {
		n += ap.counter.Text(ap.toolJSON) + anthropicToolPrompt
	}
	return n
}

// PromptBound is the bytes of everything the request carries (no byte-level
// tokenizer yields more tokens than bytes), the tool and its system prompt,
// and a few tokens per message.
func (ap *anthropicProvider) PromptBound(p Prompt) int64 {
	n := int64(boundFixed) + int64(len(p.System)) + boundPerMessage
	for _, m := range ap.messages(p) {
		n += int64(len(m.Role)+len(m.Content)) + boundPerMessage
	}
	if ap.tools != nil {
		n += int64(len(ap.toolJSON)) + anthropicToolPrompt
	}
	return n
}

// WorstUsage is the whole prompt billed as its dearest kind — plain input,
// 5-minute or 1-hour cache writes, whichever costs most at the tier the
// prompt falls in — plus a reply of max_tokens.
func (ap *anthropicProvider) WorstUsage(promptTokens int64) pricing.Usage {
	out := int64(ap.judge.MaxTokens)
	worst := pricing.Usage{InputTokens: promptTokens, OutputTokens: out}
	for _, u := range []pricing.Usage{
		{InputTokens: promptTokens, CacheWrite5mTokens: promptTokens, OutputTokens: out},
		{InputTokens: promptTokens, CacheWrite1hTokens: promptTokens, OutputTokens: out},
	} {
		if ap.judge.Price.Cost(u, false) > ap.judge.Price.Cost(worst, false) {
			worst = u
		}
	}
	return worst
}

// ReplyTokens counts the reply (the tool input as JSON), at most max_tokens.
func (ap *anthropicProvider) ReplyTokens(reply string) int64 {
	return min(ap.counter.Text(reply), int64(ap.judge.MaxTokens))
}

// RequestText is the system blocks and messages as JSON.
func (ap *anthropicProvider) RequestText(p Prompt) string {
	b, _ := json.Marshal(struct {
		System   []anthropicBlock   `json:"system"`
		Messages []anthropicMessage `json:"messages"`
	}{ap.system(p), ap.messages(p)})
	return string(b)
}

// anthropicError is a failed, sent attempt: an HTTP error answer (status,
// the body's error type and message, Retry-After) or a reply that could not
// be read or fetched.
type anthropicError struct {
	status     int
	errType    string
	msg        string
	retryAfter string
	err        error // a transport failure or an unreadable reply
}

func (e *anthropicError) Error() string {
	if e.status == 0 {
		return e.err.Error()
	}
	if e.errType != "" {
		return fmt.Sprintf("HTTP %d %s: %s", e.status, e.errType, e.msg)
	}
	return fmt.Sprintf("HTTP %d: %s", e.status, e.msg)
}

func (e *anthropicError) Unwrap() error { return e.err }

// body is the JSON a live Send of p posts (a batch line's params).
func (ap *anthropicProvider) body(p Prompt) ([]byte, error) { return json.Marshal(ap.request(p)) }

// Send makes one Messages request.
func (ap *anthropicProvider) Send(ctx context.Context, p Prompt) (Attempt, error) {
	body, err := ap.body(p)
	if err != nil {
		return Attempt{}, err
	}
	at := &attempt{}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, attemptKey{}, at), http.MethodPost, ap.url, bytes.NewReader(body))
	if err != nil {
		return Attempt{}, fmt.Errorf("judge base_url cannot be used: %v", unwrapURLError(err))
	}
	req.Header.Set("x-api-key", ap.key)
	req.Header.Set("anthropic-version", anthropicVersion)
	req.Header.Set("content-type", "application/json")
	resp, err := ap.hc.Do(req)
	if err != nil {
		// The URL is left out of the message (it may hold credentials).
		err = unwrapURLError(err)
		if !at.sent.Load() {
			return Attempt{}, err
		}
		return Attempt{Sent: true}, &anthropicError{err: err}
	}
	defer resp.Body.Close() // read only; a read error is returned below
	raw, rerr := io.ReadAll(io.LimitReader(resp.Body, maxAnthropicReply))
	if resp.StatusCode/100 == 3 {
		return Attempt{Sent: true}, &anthropicError{status: resp.StatusCode, msg: "redirected to " + redactURL(resp.Header.Get("Location"))}
	}
	if resp.StatusCode/100 != 2 {
		e := &anthropicError{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
		var eb anthropicErrorBody
		if json.Unmarshal(raw, &eb) == nil && eb.Error.Message != "" {
			e.errType, e.msg = eb.Error.Type, eb.Error.Message
		} else {
			e.msg = strings.TrimSpace(string(raw))
			if e.msg == "" {
				e.msg = http.StatusText(resp.StatusCode)
			}
		}
		e.msg = clip(strings.Join(strings.Fields(e.msg), " "), 200)
		return Attempt{Sent: true}, e
	}
	if rerr != nil {
		return Attempt{Sent: true}, &anthropicError{err: fmt.Errorf("reading the reply: %v", unwrapURLError(rerr))}
	}
	a, err := ap.readMessage(raw)
	a.Sent = true
	return a, err
}

// readMessage reads a Messages API answer as Send does (and a batch
// result's message): the verdict text and the usage. Sent is left to the
// caller; an unreadable answer is an *anthropicError.
func (ap *anthropicProvider) readMessage(raw []byte) (Attempt, error) {
	var r anthropicResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return Attempt{}, &anthropicError{err: fmt.Errorf("reply is not a Messages API answer: %v", err)}
	}
	if r.Type != "" && r.Type != "message" {
		return Attempt{}, &anthropicError{err: fmt.Errorf("reply is a %q, not a message", clip(r.Type, 40))}
	}
	u, has := r.Usage.usage()
	return Attempt{Text: ap.replyText(&r), Usage: u, HasUsage: has}, nil
}

// replyText is the verdict tool's input as JSON; without a tool call (or
// without json_mode) the text blocks, which the runner parses or repairs
// like any unreadable reply.
func (ap *anthropicProvider) replyText(r *anthropicResponse) string {
	if ap.tools != nil {
		for _, c := range r.Content {
			if c.Type == "tool_use" && c.Name == verdictTool && len(c.Input) > 0 {
				var b bytes.Buffer
				if json.Compact(&b, c.Input) == nil {
					return b.String()
				}
				return string(c.Input)
			}
		}
	}
	var parts []string
	for _, c := range r.Content {
		if c.Type == "text" {
			parts = append(parts, c.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// usage maps Anthropic's usage onto pricing.Usage: input_tokens excludes
// cache reads and writes, so the prompt is input + reads + writes; writes
// are split by cache_creation into 5-minute and 1-hour ones (a bare
// cache_creation_input_tokens is 5-minute writes, as is any excess of it
// over the split).
func (u *anthropicUsage) usage() (pricing.Usage, bool) {
	if u == nil || u.InputTokens == nil && u.OutputTokens == nil {
		return pricing.Usage{}, false
	}
	var out pricing.Usage
	if u.OutputTokens != nil {
		out.OutputTokens = *u.OutputTokens
	}
	out.CachedInputTokens = u.CacheRead
	if u.Split != nil {
		out.CacheWrite5mTokens, out.CacheWrite1hTokens = u.Split.W5, u.Split.W1
		if extra := u.CacheCreation - u.Split.W5 - u.Split.W1; extra > 0 {
			out.CacheWrite5mTokens += extra
		}
	} else {
		out.CacheWrite5mTokens = u.CacheCreation
	}
	var in int64
	if u.InputTokens != nil {
		in = *u.InputTokens
	}
	out.InputTokens = in + out.CachedInputTokens + out.CacheWrite5mTokens + out.CacheWrite1hTokens
	if in < 0 {
		out.InputTokens = in // impossible: the runner flags it and bills local counts
	}
	return out, true
}

// unwrapURLError drops the method and URL net/http puts around an error.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// Classify reads the status and the error body's type: a redirect, a
// refused key, permission, no such model and no credit stop the run; 429 (rate limits),
// 529 (overloaded), other 5xx, 408/409 and network failures are retried,
// with the server's Retry-After; any other 4xx (invalid_request_error, a
// request too large) fails the call.
func (ap *anthropicProvider) Classify(err error) Failure {
	var ae *anthropicError
	if !errors.As(err, &ae) {
		return Failure{Action: ActRetry, Cause: RetryNetwork, Err: fmt.Errorf("judge call failed: %v", oneLine(err))}
	}
	after, hasAfter := parseRetryAfter(ae.retryAfter, ap.now())
	retry := func(cause string, err error) Failure {
		return Failure{Action: ActRetry, Cause: cause, Err: err, After: after, HasAfter: hasAfter}
	}
	status := ae.status
	detail := ae.Error()
	switch {
	case status == 0:
		var ne net.Error
		if errors.As(ae.err, &ne) && ne.Timeout() {
			return retry(RetryTimeout, fmt.Errorf("judge call timed out: %v", oneLine(ae.err)))
		}
		return retry(RetryNetwork, fmt.Errorf("judge call failed: %v", oneLine(ae.err)))
	case status/100 == 3:
		return Failure{Action: ActStop, Err: fmt.Errorf("the Anthropic endpoint answered %s, which a judge does not follow (the API key would go with it); set base_url or ANTHROPIC_BASE_URL to the final URL", detail)}
	case status == 401 || status == 403:
		return Failure{Action: ActStop, Err: fmt.Errorf("the Anthropic endpoint refused the API key (%s); check %s or the judge's api_key_env", detail, KeyEnv(ap.judge))}
	case status == 404:
		return Failure{Action: ActStop, Err: fmt.Errorf("the Anthropic endpoint answered %s; check the judge's model and base_url (or ANTHROPIC_BASE_URL)", detail)}
	case status == 402 || ae.errType == "billing_error" || strings.Contains(strings.ToLower(ae.msg), "credit balance"):
		return Failure{Action: ActStop, Err: fmt.Errorf("the Anthropic endpoint says the account cannot be billed (%s): add credit or use another key; results so far are saved", detail)}
	case status == 429:
		return retry(Retry429, fmt.Errorf("judge endpoint %s", detail))
	case status >= 500:
		return retry(Retry5xx, fmt.Errorf("judge endpoint %s", detail))
	case status == 408 || status == 409:
		return retry(RetryNetwork, fmt.Errorf("judge endpoint %s", detail))
	}
	return Failure{Action: ActFail, Err: fmt.Errorf("judge endpoint %s", detail)}
}
