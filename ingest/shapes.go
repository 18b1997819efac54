package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// Shape names the usage shape a line was read as.
type Shape string

// The usage shapes ingest detects per line. README.md ("Usage shapes")
// shows one example of each; testdata/shapes/<shape>.jsonl holds the same
// lines, golden-tested.
const (
	ShapeOpenAIChat      Shape = "openai_chat"      // Chat Completions object
	ShapeOpenAIResponses Shape = "openai_responses" // Responses API object
	ShapeAnthropic       Shape = "anthropic"        // Messages API message (or its usage)
	ShapeGemini          Shape = "gemini"           // generateContent response (usageMetadata)
	ShapeOpenAIBatch     Shape = "openai_batch"     // Batch API output line
	ShapeFlat            Shape = "flat"             // costctl's own flat event
)

// Shapes lists every shape, in the order detection tries them.
var Shapes = []Shape{ShapeOpenAIBatch, ShapeGemini, ShapeOpenAIChat, ShapeOpenAIResponses, ShapeAnthropic, ShapeFlat}

// readShape detects l's shape and fills e's model and token kinds from it;
// it returns the raw timestamp the shape carries.
//
// Detection: a "custom_id" with a "response" or "error" is a Batch API line; a
// "usageMetadata" object is Gemini; a "usage" object is OpenAI or
// Anthropic — by "object" ("chat.completion…", "response") or "type"
// ("message") when given, else by its keys (prompt_tokens: Chat
// Completions; cache_read_input_tokens / cache_creation_input_tokens /
// cache_creation: Anthropic; input_tokens_details / output_tokens_details /
// total_tokens: Responses; input_tokens and output_tokens alone:
// Anthropic, which prices the same). Anything else is a flat event.
func readShape(l *line, e *ledger.Event) (Shape, json.RawMessage, error) {
	switch {
	case len(l.CustomID) > 0 && (len(l.Response) > 0 || len(l.Error) > 0):
		ts, err := readBatch(l, e)
		return ShapeOpenAIBatch, ts, err
	case l.UsageMetadata != nil:
		return ShapeGemini, firstTime(l.CreateTime, l.TS, l.Created), readGemini(l, e)
	case l.Usage != nil:
		switch shape := usageShape(l); shape {
		case ShapeOpenAIChat:
			return shape, firstTime(l.Created, l.TS), readChat(l, e, "usage.")
		case ShapeOpenAIResponses:
			return shape, firstTime(l.CreatedAt, l.TS, l.Created), readResponses(l, e, "usage.")
		default:
			return shape, firstTime(l.TS, l.Created), readAnthropic(l, e)
		}
	}
	return ShapeFlat, firstTime(l.TS, l.Created), readFlat(l, e)
}

func usageShape(l *line) Shape {
	u := l.Usage
	switch obj := rawString(l.Object); {
	case strings.HasPrefix(obj, "chat.completion"):
		return ShapeOpenAIChat
	case obj == "response":
		return ShapeOpenAIResponses
	}
	switch {
	case rawString(l.Type) == "message":
		return ShapeAnthropic
	case u.Prompt != nil || u.Completion != nil:
		return ShapeOpenAIChat
	case u.CacheRead != nil || u.CacheCreation != nil || u.CacheSplit != nil:
		return ShapeAnthropic
	case u.InDetails != nil || u.OutDetails != nil || u.Total != nil:
		return ShapeOpenAIResponses
	}
	return ShapeAnthropic
}

// rawString is raw's string value, or "" when it is not a JSON string.
func rawString(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func firstTime(raws ...json.RawMessage) json.RawMessage {
	for _, r := range raws {
		if len(r) > 0 && string(r) != "null" {
			return r
		}
	}
	return nil
}

func model(e *ledger.Event, field string, names ...string) error {
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			e.Model = n
			return nil
		}
	}
	return fmt.Errorf("missing %q", field)
}

// setTier reads a service tier: "default" (also "standard", Anthropic's
// name, and "auto", which is served at default or a prepaid tier), "flex"
// or "priority"; Anthropic's "batch" marks a Message Batches call.
func setTier(e *ledger.Event, field string, tier *string) error {
	if tier == nil {
		return nil
	}
	switch t := strings.ToLower(strings.TrimSpace(*tier)); t {
	case "":
	case "default", "standard", "auto":
		e.ServiceTier = pricing.TierDefault
	case pricing.TierFlex, pricing.TierPriority:
		e.ServiceTier = t
	case "batch":
		e.Batch = true
	default:
		return fmt.Errorf("field %q: unknown service tier %q (want default, flex or priority)", field, *tier)
	}
	return nil
}

// readChat: prompt_tokens includes prompt_tokens_details.cached_tokens;
// completion_tokens includes completion_tokens_details.reasoning_tokens.
func readChat(l *line, e *ledger.Event, at string) error {
	u := l.Usage
	if err := model(e, "model", l.Model); err != nil {
		return err
	}
	var err error
	if e.InputTokens, err = required(at+"prompt_tokens", u.Prompt); err != nil {
		return err
	}
	if e.OutputTokens, err = required(at+"completion_tokens", u.Completion); err != nil {
		return err
	}
	if u.PromptDetails != nil {
		if e.CachedTokens, err = tokens(at+"prompt_tokens_details.cached_tokens", u.PromptDetails.Cached); err != nil {
			return err
		}
	}
	if u.CompletionDetails != nil {
		if e.ReasoningTokens, err = tokens(at+"completion_tokens_details.reasoning_tokens", u.CompletionDetails.Reasoning); err != nil {
			return err
		}
	}
	return setTier(e, "service_tier", l.Tier)
}

// readResponses: input_tokens includes input_tokens_details.cached_tokens;
// output_tokens includes output_tokens_details.reasoning_tokens.
func readResponses(l *line, e *ledger.Event, at string) error {
	u := l.Usage
	if err := model(e, "model", l.Model); err != nil {
		return err
	}
	var err error
	if e.InputTokens, err = required(at+"input_tokens", u.In); err != nil {
		return err
	}
	if e.OutputTokens, err = required(at+"output_tokens", u.Out); err != nil {
		return err
	}
	if u.InDetails != nil {
		if e.CachedTokens, err = tokens(at+"input_tokens_details.cached_tokens", u.InDetails.Cached); err != nil {
			return err
		}
	}
	if u.OutDetails != nil {
		if e.ReasoningTokens, err = tokens(at+"output_tokens_details.reasoning_tokens", u.OutDetails.Reasoning); err != nil {
			return err
		}
	}
	return setTier(e, "service_tier", l.Tier)
}

// readAnthropic: input_tokens excludes cache reads and writes, so the
// prompt is input + cache_read + cache_creation. Writes are split into
// cache_creation.ephemeral_5m/1h_input_tokens; a bare
// cache_creation_input_tokens is 5-minute writes.
func readAnthropic(l *line, e *ledger.Event) error {
	u := l.Usage
	if err := model(e, "model", l.Model); err != nil {
		return err
	}
	in, err := required("usage.input_tokens", u.In)
	if err != nil {
		return err
	}
	if e.OutputTokens, err = required("usage.output_tokens", u.Out); err != nil {
		return err
	}
	if e.CachedTokens, err = tokens("usage.cache_read_input_tokens", u.CacheRead); err != nil {
		return err
	}
	creation, err := tokens("usage.cache_creation_input_tokens", u.CacheCreation)
	if err != nil {
		return err
	}
	if s := u.CacheSplit; s != nil {
		if e.CacheWrite5mTokens, err = tokens("usage.cache_creation.ephemeral_5m_input_tokens", s.W5); err != nil {
			return err
		}
		if e.CacheWrite1hTokens, err = tokens("usage.cache_creation.ephemeral_1h_input_tokens", s.W1); err != nil {
			return err
		}
		if split := e.CacheWrite5mTokens + e.CacheWrite1hTokens; u.CacheCreation != nil && creation != split {
			return fmt.Errorf("usage.cache_creation_input_tokens (%d) is not ephemeral_5m + ephemeral_1h (%d)", creation, split)
		}
	} else {
		e.CacheWrite5mTokens = creation
	}
	e.InputTokens = in + e.CachedTokens + e.CacheWrite5mTokens + e.CacheWrite1hTokens
	tier := u.Tier
	if tier == nil {
		tier = l.Tier
	}
	return setTier(e, "usage.service_tier", tier)
}

// readGemini: promptTokenCount includes cachedContentTokenCount;
// toolUsePromptTokenCount (tool results fed back) is further input;
// output is candidatesTokenCount + thoughtsTokenCount (thoughts are not
// inside candidates). Gemini leaves zero counts out, so only
// promptTokenCount is required.
func readGemini(l *line, e *ledger.Event) error {
	g := l.UsageMetadata
	if err := model(e, "modelVersion", l.ModelVersion, l.Model); err != nil {
		return err
	}
	prompt, err := required("usageMetadata.promptTokenCount", g.Prompt)
	if err != nil {
		return err
	}
	tool, err := tokens("usageMetadata.toolUsePromptTokenCount", g.ToolPrompt)
	if err != nil {
		return err
	}
	cand, err := tokens("usageMetadata.candidatesTokenCount", g.Candidates)
	if err != nil {
		return err
	}
	if e.ReasoningTokens, err = tokens("usageMetadata.thoughtsTokenCount", g.Thoughts); err != nil {
		return err
	}
	if e.CachedTokens, err = tokens("usageMetadata.cachedContentTokenCount", g.Cached); err != nil {
		return err
	}
	e.InputTokens, e.OutputTokens = prompt+tool, cand+e.ReasoningTokens
	return nil
}

// readBatch reads one line of a Batch API output file: the response body
// is a Chat Completions (or Responses) object, billed at batch rates. A
// failed request is a bad line: nothing was billed.
func readBatch(l *line, e *ledger.Event) (json.RawMessage, error) {
	if len(l.Error) > 0 && string(l.Error) != "null" {
		return nil, fmt.Errorf("batch request failed: %s", errorText(l.Error))
	}
	if string(l.Response) == "null" {
		return nil, errors.New(`batch line has neither "response" nor "error"`)
	}
	var r struct {
		Status *int            `json:"status_code"`
		Body   json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(l.Response, &r); err != nil {
		return nil, errors.New(`field "response": want an object with "status_code" and "body"`)
	}
	if r.Status == nil {
		return nil, errors.New(`missing "response.status_code"`)
	}
	if *r.Status != 200 {
		var b struct {
			Error json.RawMessage `json:"error"`
		}
		_ = json.Unmarshal(r.Body, &b)
		if len(b.Error) > 0 && string(b.Error) != "null" {
			return nil, fmt.Errorf("batch request failed with status %d: %s", *r.Status, errorText(b.Error))
		}
		return nil, fmt.Errorf("batch request failed with status %d", *r.Status)
	}
	if len(r.Body) == 0 || string(r.Body) == "null" {
		return nil, errors.New(`missing "response.body"`)
	}
	var body line
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return nil, prefixed("response.body.", jsonReason(err))
	}
	if body.Usage == nil {
		return nil, errors.New(`missing "response.body.usage"`)
	}
	read, ts := readChat, body.Created
	if usageShape(&body) == ShapeOpenAIResponses {
		read, ts = readResponses, body.CreatedAt
	}
	if err := read(&body, e, "response.body.usage."); err != nil {
		return nil, prefixed("response.body.", err)
	}
	// The Batch API bills its own rate: the body's service_tier is not a
	// second discount.
	e.Batch, e.ServiceTier = true, ""
	return firstTime(ts, l.TS), nil
}

// prefixed names a body field by its path in the whole line.
func prefixed(at string, err error) error {
	s := err.Error()
	for _, q := range []string{`missing "`, `field "`} {
		if strings.HasPrefix(s, q) && !strings.HasPrefix(s, q+at) {
			return errors.New(q + at + s[len(q):])
		}
	}
	return err
}

// errorText is "code: message" from an error object, or the raw JSON.
func errorText(raw json.RawMessage) string {
	var o struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(raw, &o) != nil || (o.Message == "" && len(o.Code) == 0) {
		if s := rawString(raw); s != "" {
			return s
		}
		return string(bytes.TrimSpace(raw))
	}
	code := rawString(o.Code)
	if code == "" && len(o.Code) > 0 && string(o.Code) != "null" {
		code = string(o.Code)
	}
	switch {
	case code == "":
		return o.Message
	case o.Message == "":
		return code
	}
	return code + ": " + o.Message
}

// readFlat reads costctl's own flat event. input_tokens is the whole
// prompt: cached_input_tokens and the cache writes are part of it.
func readFlat(l *line, e *ledger.Event) error {
	if err := model(e, "model", l.Model); err != nil {
		return err
	}
	if l.In == nil {
		return errors.New(`missing "input_tokens" (or an OpenAI "usage" object)`)
	}
	var err error
	for _, f := range []struct {
		name string
		p    *int64
		dst  *int64
	}{
		{"input_tokens", l.In, &e.InputTokens},
		{"output_tokens", l.Out, &e.OutputTokens},
		{"cached_input_tokens", l.Cached, &e.CachedTokens},
		{"cache_write_5m_tokens", l.W5, &e.CacheWrite5mTokens},
		{"cache_write_1h_tokens", l.W1, &e.CacheWrite1hTokens},
		{"reasoning_tokens", l.Reasoning, &e.ReasoningTokens},
	} {
		if f.name == "output_tokens" && f.p == nil {
			return errors.New(`missing "output_tokens"`)
		}
		if *f.dst, err = tokens(f.name, f.p); err != nil {
			return err
		}
	}
	if err := setTier(e, "service_tier", l.Tier); err != nil {
		return err
	}
	if l.Batch != nil && *l.Batch {
		if e.ServiceTier == pricing.TierFlex || e.ServiceTier == pricing.TierPriority {
			return fmt.Errorf(`"batch": true and "service_tier": %q exclude each other`, e.ServiceTier)
		}
		e.Batch = true
	}
	return nil
}

// priceEvent sets e's cost from m, each kind of token at its own rate
// (batch, flex and priority rates as the event says). A kind the table
// has no rate for leaves the event unpriced (cost unknown), never at list
// price; so does a nil m (an unknown model).
func priceEvent(m *pricing.Model, e *ledger.Event) {
	e.Cost, e.CostExact, e.Unpriced = 0, pricing.Amount{}, true
	c, ok := ledger.PriceUsage(m, e) // the same pricing reprice applies
	if !ok {
		return
	}
	nano, ok := c.Money()
	if !ok {
		return
	}
	// The ledger keeps the exact cost; Cost is it to the nano-dollar.
	e.Cost, e.CostExact, e.Unpriced = nano, c, false
}
