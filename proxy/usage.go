package proxy

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// request is what the proxy reads from a request body: enough to route,
// bound, cache and sample it. The body itself is forwarded unchanged unless
// the proxy must change it (a routed model, OpenAI's include_usage).
type request struct {
	fields       map[string]json.RawMessage
	Model        string
	Stream       bool
	MaxOut       int64 // the requested output bound (0: none given)
	N            int64 // OpenAI chat choices (output is billed per choice)
	Temperature  *float64
	HasSeed      bool
	ServiceTier  string
	IncludeUsage bool // OpenAI chat: the client asked for the usage chunk
	Images       int64
}

// parseRequest reads the fields the proxy uses from body.
func parseRequest(body []byte) (*request, error) {
	r := &request{fields: map[string]json.RawMessage{}, N: 1}
	if err := json.Unmarshal(body, &r.fields); err != nil {
		return nil, err
	}
	str := func(k string) string {
		var s string
		if v, ok := r.fields[k]; ok {
			_ = json.Unmarshal(v, &s) // a field of another type reads as absent
		}
		return s
	}
	num := func(k string) int64 {
		var n float64
		if v, ok := r.fields[k]; ok && json.Unmarshal(v, &n) == nil && n > 0 && n < 1e12 {
			return int64(n)
		}
		return 0
	}
	r.Model = str("model")
	if v, ok := r.fields["stream"]; ok {
		_ = json.Unmarshal(v, &r.Stream) // not a boolean: not a stream
	}
	for _, k := range []string{"max_completion_tokens", "max_tokens", "max_output_tokens"} {
		if n := num(k); n > 0 {
			r.MaxOut = n
			break
		}
	}
	if n := num("n"); n > 1 {
		r.N = n
	}
	if v, ok := r.fields["temperature"]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		var t float64
		if json.Unmarshal(v, &t) == nil {
			r.Temperature = &t
		}
	}
	if v, ok := r.fields["seed"]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		r.HasSeed = true
	}
	r.ServiceTier = str("service_tier")
	if v, ok := r.fields["stream_options"]; ok {
		var so struct {
			IncludeUsage bool `json:"include_usage"`
		}
		_ = json.Unmarshal(v, &so) // unreadable stream_options: the client did not ask for usage
		r.IncludeUsage = so.IncludeUsage
	}
	r.Images = countImages(body)
	return r, nil
}

// countImages counts image parts (OpenAI image_url / input_image, Anthropic
// "type":"image"), generously: an image may be counted twice, never missed.
func countImages(body []byte) int64 {
	n := bytes.Count(body, []byte(`"image_url"`)) + bytes.Count(body, []byte(`"input_image"`)) + bytes.Count(body, []byte(`"image"`))
	return int64(n)
}

// deterministic: temperature 0, or no temperature and a seed.
func (r *request) deterministic() bool {
	if r.Temperature != nil {
		return *r.Temperature == 0
	}
	return r.HasSeed
}

// Bounds on the prompt tokens an honest server can bill beyond the body's
// bytes (a byte-level BPE never yields more tokens than UTF-8 bytes, and
// the JSON body holds every byte of text plus its framing): a fixed
// preamble, and per image part the most any vision model bills for one
// image (gpt-4o-mini's 2833 + 8 tiles × 5667, the largest published).
const (
	boundFixed    = 64
	boundPerImage = 2833 + 8*5667
)

// promptBound is the most prompt tokens the body can be billed.
func promptBound(body []byte, r *request) int64 {
	return int64(len(body)) + boundFixed + r.Images*boundPerImage
}

// reserveTiers are the service tiers a request may be billed at: the one
// it names, or for "auto" (and anything unknown) the default tier and
// priority, whichever is dearer — the upstream picks.
func reserveTiers(requested string) []string {
	switch requested {
	case "flex", "priority":
		return []string{requested}
	case "", "default", "standard", "standard_only":
		return []string{""}
	}
	return []string{"", "priority"}
}

// worstCost is the most a call with prompt bound in and output bound out
// can cost with m: the prompt priced as plain input, as 5-minute and as
// 1-hour cache writes, at each tier the request may get, whichever is
// dearest. ok is false when the first tier cannot be priced at all.
func worstCost(m *pricing.Model, in, out int64, requestedTier string) (pricing.Amount, bool) {
	var worst pricing.Amount
	for i, tier := range reserveTiers(requestedTier) {
		found := false
		for _, e := range []ledger.Event{
			{InputTokens: in, OutputTokens: out, ServiceTier: tier},
			{InputTokens: in, CacheWrite5mTokens: in, OutputTokens: out, ServiceTier: tier},
			{InputTokens: in, CacheWrite1hTokens: in, OutputTokens: out, ServiceTier: tier},
		} {
			c, ok := ledger.PriceUsage(m, &e)
			if !ok {
				continue // a kind of token or tier the model has no rate for: it cannot be billed so
			}
			found = true
			if c.Cmp(worst) > 0 {
				worst = c
			}
		}
		if !found && i == 0 {
			return pricing.Amount{}, false
		}
	}
	return worst, true
}

// usage is what a call was billed, by kind of token, as ledger.Event
// counts it (InputTokens includes cached and cache-written tokens).
type usage struct {
	Input, Cached, Write5m, Write1h, Output, Reasoning int64
	ServiceTier                                        string
	ok                                                 bool // a usage block was seen
}

func (u *usage) event(e *ledger.Event) {
	e.InputTokens, e.CachedTokens, e.OutputTokens = u.Input, u.Cached, u.Output
	e.CacheWrite5mTokens, e.CacheWrite1hTokens, e.ReasoningTokens = u.Write5m, u.Write1h, u.Reasoning
	switch u.ServiceTier {
	case "flex", "priority":
		e.ServiceTier = u.ServiceTier
	}
}

// openaiUsage is the usage block of chat completions, embeddings and
// responses (the two naming schemes).
type openaiUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	InputTokens         int64 `json:"input_tokens"`
	OutputTokens        int64 `json:"output_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	InputTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	OutputTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
}

func (o *openaiUsage) usage(tier string) usage {
	u := usage{Input: o.PromptTokens + o.InputTokens, Output: o.CompletionTokens + o.OutputTokens, ServiceTier: tier, ok: true}
	if d := o.PromptTokensDetails; d != nil {
		u.Cached += d.CachedTokens
	}
	if d := o.InputTokensDetails; d != nil {
		u.Cached += d.CachedTokens
	}
	if d := o.CompletionTokensDetails; d != nil {
		u.Reasoning += d.ReasoningTokens
	}
	if d := o.OutputTokensDetails; d != nil {
		u.Reasoning += d.ReasoningTokens
	}
	return u
}

// anthropicUsage is the usage block of a message (and of message_start and
// message_delta events: the latter's fields are cumulative).
type anthropicUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheCreation            *struct {
		Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
	ServiceTier string `json:"service_tier"`
}

// anthropicAcc accumulates Anthropic usage: message_delta's counts replace
// message_start's where given.
type anthropicAcc struct {
	input, output, read, create, w5, w1 int64
	split                               bool
	seen                                bool
	tier                                string
}

func (a *anthropicAcc) add(u *anthropicUsage) {
	if u == nil {
		return
	}
	a.seen = true
	if u.InputTokens != nil {
		a.input = *u.InputTokens
	}
	if u.OutputTokens != nil {
		a.output = *u.OutputTokens
	}
	if u.CacheReadInputTokens != nil {
		a.read = *u.CacheReadInputTokens
	}
	if u.CacheCreationInputTokens != nil {
		a.create = *u.CacheCreationInputTokens
	}
	if u.CacheCreation != nil {
		a.w5, a.w1, a.split = u.CacheCreation.Ephemeral5m, u.CacheCreation.Ephemeral1h, true
	}
	if u.ServiceTier != "" {
		a.tier = u.ServiceTier
	}
}

func (a *anthropicAcc) usage() usage {
	u := usage{Input: a.input + a.read + a.create, Cached: a.read, Output: a.output, ok: a.seen}
	if a.split {
		u.Write5m, u.Write1h = a.w5, a.w1
	} else {
		u.Write5m = a.create
	}
	if a.tier == "priority" {
		u.ServiceTier = "priority"
	}
	return u
}

// replyUsage reads the usage (and the output text, for samples) of a
// non-streamed reply of route kind.
func replyUsage(kind string, body []byte) (usage, string) {
	switch kind {
	case kindMessages:
		var m struct {
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
			Usage *anthropicUsage `json:"usage"`
		}
		if json.Unmarshal(body, &m) != nil || m.Usage == nil {
			return usage{}, ""
		}
		var a anthropicAcc
		a.add(m.Usage)
		var sb strings.Builder
		for _, c := range m.Content {
			if c.Type == "text" {
				sb.WriteString(c.Text)
			}
		}
		return a.usage(), sb.String()
	default:
		var m struct {
			Usage       *openaiUsage `json:"usage"`
			ServiceTier string       `json:"service_tier"`
			Choices     []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
			OutputText string `json:"output_text"`
			Output     []struct {
				Content []struct {
					Type string `json:"type"`
					Text string `json:"text"`
				} `json:"content"`
			} `json:"output"`
		}
		if json.Unmarshal(body, &m) != nil || m.Usage == nil {
			return usage{}, ""
		}
		var sb strings.Builder
		for _, c := range m.Choices {
			sb.WriteString(c.Message.Content)
		}
		for _, o := range m.Output {
			for _, c := range o.Content {
				if c.Type == "output_text" {
					sb.WriteString(c.Text)
				}
			}
		}
		return m.Usage.usage(m.ServiceTier), sb.String()
	}
}

// price prices e with m: the exact cost, or unpriced.
func price(m *pricing.Model, e *ledger.Event) pricing.Amount {
	e.Cost, e.CostExact, e.Unpriced = 0, pricing.Amount{}, true
	c, ok := ledger.PriceUsage(m, e)
	if !ok {
		return pricing.Amount{}
	}
	nano, ok := c.Money()
	if !ok {
		return pricing.Amount{}
	}
	e.Cost, e.CostExact, e.Unpriced = nano, c, false
	return c
}

// counterFor is a token counter for m (o200k_base when m is unknown), for
// the estimate of a cut stream's output.
func counterFor(m *pricing.Model) *estimator.Counter {
	if m != nil {
		if c, err := estimator.NewCounter(m); err == nil {
			return c
		}
	}
	c, _ := estimator.NewCounterForEncoding("o200k_base")
	return c
}
