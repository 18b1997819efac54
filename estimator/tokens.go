// Package estimator counts tokens exactly (through package tokenizer, with
// each model's encoding from the price table and OpenAI's chat formula) and
// projects what LLM traffic will cost under each cost lever.
package estimator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/tokenizer"
)

// Counter counts tokens the way one model is billed.
type Counter struct {
	enc    *tokenizer.Encoding
	exact  bool
	vision VisionRule
}

// NewCounter returns a counter for m's encoding. Models without a public
// tokenizer (Claude, Gemini) are counted with o200k_base and Exact() is false.
func NewCounter(m *pricing.Model) (*Counter, error) {
	name := m.Encoding
	if name == "" {
		name = "o200k_base"
	}
	enc, err := tokenizer.Get(name)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Name, err)
	}
	return &Counter{enc: enc, exact: m.ExactTokenizer, vision: VisionRuleFor(m.Name)}, nil
}

// NewCounterForEncoding returns an exact counter for a tiktoken encoding.
func NewCounterForEncoding(name string) (*Counter, error) {
	enc, err := tokenizer.Get(name)
	if err != nil {
		return nil, err
	}
	return &Counter{enc: enc, exact: true, vision: VisionRuleFor("")}, nil
}

// WithVision returns a copy of c that bills images by model's rule.
func (c *Counter) WithVision(model string) *Counter {
	cc := *c
	cc.vision = VisionRuleFor(model)
	return &cc
}

// Encoding is the tiktoken encoding's name.
func (c *Counter) Encoding() string { return c.enc.Name() }

// Exact reports whether counts are the provider's own (false: an o200k_base
// stand-in for a model whose tokenizer is not public).
func (c *Counter) Exact() bool { return c.exact }

// Tokenizer is the underlying encoding, for streaming counts.
func (c *Counter) Tokenizer() *tokenizer.Encoding { return c.enc }

// Text counts s as ordinary text (special-token strings count as text).
func (c *Counter) Text(s string) int64 { return int64(c.enc.Count(s)) }

// Message is one chat message; Content is its text (text parts joined),
// Images its image parts.
type Message struct {
	Role    string
	Content string
	Name    string
	Images  []Image
}

// OpenAI's chat formula (the "How to count tokens with tiktoken" cookbook):
// every message costs 3 tokens of framing plus its role, content and name
// (a name adds 1 more), and every reply is primed with 3 tokens.
const (
	tokensPerMessage = 3
	tokensPerName    = 1
	tokensReplyPrime = 3
)

// Chat counts what the API bills as prompt_tokens for msgs (and tool
// definitions, counted as the cookbook's num_tokens_for_tools does).
func (c *Counter) Chat(msgs []Message, tools []json.RawMessage) int64 {
	return c.ChatCount(msgs, tools).Tokens
}

// ChatCounted is a chat count with what its images contributed.
type ChatCounted struct {
	Tokens       int64 // all billed prompt tokens, images included
	ImageTokens  int64
	Images       int
	ApproxImages int // remote images (counted as low detail) or a model whose image rule is not documented
}

// ChatCount is Chat with the image breakdown.
func (c *Counter) ChatCount(msgs []Message, tools []json.RawMessage) ChatCounted {
	var r ChatCounted
	n := int64(tokensReplyPrime)
	for _, m := range msgs {
		n += tokensPerMessage + c.Text(m.Role) + c.Text(m.Content)
		if m.Name != "" {
			n += c.Text(m.Name) + tokensPerName
		}
		for _, im := range m.Images {
			t, approx := c.vision.ImageTokens(im)
			r.ImageTokens += t
			r.Images++
			if approx {
				r.ApproxImages++
			}
		}
	}
	r.Tokens = n + r.ImageTokens + c.tools(tools)
	return r
}

type toolDef struct {
	Type     string `json:"type"`
	Function *struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		Parameters  struct {
			Properties orderedProps `json:"properties"`
		} `json:"parameters"`
	} `json:"function"`
}

type prop struct {
	Name        string
	Type        string
	Description string
	Enum        []string
	HasEnum     bool
}

// orderedProps keeps JSON object order, which the token formula walks.
type orderedProps []prop

func (o *orderedProps) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return errors.New("properties: expected an object")
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		var raw struct {
			Type        any    `json:"type"`
			Description string `json:"description"`
			Enum        []any  `json:"enum"`
		}
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		p := prop{Name: kt.(string), Description: raw.Description, HasEnum: raw.Enum != nil}
		switch t := raw.Type.(type) {
		case string:
			p.Type = t
		case []any:
			var parts []string
			for _, x := range t {
				parts = append(parts, fmt.Sprint(x))
			}
			p.Type = strings.Join(parts, "|")
		}
		for _, e := range raw.Enum {
			p.Enum = append(p.Enum, fmt.Sprint(e))
		}
		*o = append(*o, p)
	}
	_, err = dec.Token()
	return err
}

func (c *Counter) tools(tools []json.RawMessage) int64 {
	if len(tools) == 0 {
		return 0
	}
	// Per-encoding framing constants from the cookbook: gpt-4o family
	// (o200k_base) and gpt-4/gpt-3.5-turbo (cl100k_base).
	funcInit, propInit, propKey, enumInit, enumItem, funcEnd := int64(7), int64(3), int64(3), int64(-3), int64(3), int64(12)
	if c.enc.Name() != "o200k_base" {
		funcInit = 10
	}
	n := int64(0)
	for _, raw := range tools {
		var t toolDef
		if err := json.Unmarshal(raw, &t); err != nil || t.Function == nil {
			// Not a function tool we can model: count its JSON as text.
			n += c.Text(string(raw))
			continue
		}
		f := t.Function
		n += funcInit
		n += c.Text(f.Name + ":" + strings.TrimSuffix(f.Description, "."))
		if len(f.Parameters.Properties) > 0 {
			n += propInit
			for _, p := range f.Parameters.Properties {
				n += propKey
				if p.HasEnum {
					n += enumInit
					for _, e := range p.Enum {
						n += enumItem + c.Text(e)
					}
				}
				n += c.Text(p.Name + ":" + p.Type + ":" + strings.TrimSuffix(p.Description, "."))
			}
		}
	}
	return n + funcEnd
}
