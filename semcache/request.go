// Package semcache is the core of costctl's conservative semantic cache: a
// provider-neutral view of a chat request, the exact partition a cached
// answer may be reused in, a lexical check that a near-duplicate must pass,
// an in-process store, and an OpenAI-compatible embeddings client.
//
// The package imports nothing of the proxy or the ledger: the proxy (or any
// other consumer) plugs in through the small interfaces defined here
// (Store, Embedder).
//
// A cached answer is only ever reused inside one exact partition (tenant,
// model, every message but the last user message, and every other request
// parameter), and only when the two last user messages are at least
// Threshold similar AND pass Lexical.
package semcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Message is one message of a request: its role, its text (for content
// given as an array of parts, the text parts joined with "\n" in order) and
// Extra, the canonical JSON of everything else the message carries (its
// non-text parts and their positions, tool calls, names, tool call ids, ...).
// Extra is part of the partition hash, also for the last user message.
type Message struct {
	Role  string
	Text  string
	Extra []byte
}

// Request is the provider-neutral view of one chat request.
type Request struct {
	Tenant   string
	Model    string
	Messages []Message
	// Rest is the canonical JSON of every other request field (tools,
	// response_format, temperature, top_p, max_tokens, stop, seed, n, ...):
	// object keys sorted, numbers as written. Fields that only change how
	// the answer is delivered (stream, stream_options) are left out.
	Rest []byte
	// Temperature is the request's temperature when it gave one.
	Temperature *float64
	// Force is the x-costctl-cache: force header.
	Force bool
	// API names the API of a request whose partitions must never be shared
	// with another API's ("responses"); it is "" for chat completions and
	// messages, whose partitions it leaves as they were.
	API string
	// Ineligible, when set, is why the request may never be answered from
	// (or stored in) the semantic cache, whatever Force says.
	Ineligible string
}

// lastUser is the index of the last message when it is a user message, else -1.
func (r *Request) lastUser() int {
	n := len(r.Messages)
	if n == 0 || r.Messages[n-1].Role != "user" {
		return -1
	}
	return n - 1
}

// LastUser is the text of the last message when it is a user message; ok
// is false when the request does not end with a user message.
func LastUser(r *Request) (text string, ok bool) {
	i := r.lastUser()
	if i < 0 {
		return "", false
	}
	return r.Messages[i].Text, true
}

// Eligible reports whether r may be answered from (and stored in) the
// semantic cache, and if not why: it must not be Ineligible, must end with
// a user message that has text, and be deterministic (temperature
// explicitly 0, or Force).
func Eligible(r *Request) (ok bool, why string) {
	if r.Ineligible != "" {
		return false, r.Ineligible
	}
	text, ok := LastUser(r)
	if !ok {
		return false, "the last message is not a user message"
	}
	if strings.TrimSpace(text) == "" {
		return false, "the last user message has no text"
	}
	if r.Force {
		return true, ""
	}
	if r.Temperature == nil {
		return false, "no temperature given (only temperature 0 or x-costctl-cache: force is eligible)"
	}
	if *r.Temperature != 0 {
		return false, fmt.Sprintf("temperature %g is not 0", *r.Temperature)
	}
	return true, ""
}

// Partition is the hex SHA-256 of the tenant, the model, every message but
// the last user message (roles, text and extras, in order), the last user
// message's extra (its non-text parts) and Rest. Each field is length-
// prefixed, so no two different requests share a partition by
// concatenation. A request that does not end with a user message hashes all
// its messages (it is not eligible anyway). A request of another API (API
// set) also hashes its API, so no two APIs share a partition.
func Partition(r *Request) string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte("costctl-semcache-v1"))
	field([]byte(r.Tenant))
	field([]byte(r.Model))
	last := r.lastUser()
	for i, m := range r.Messages {
		if i == last {
			continue
		}
		writeMsg(field, m)
	}
	if last >= 0 {
		field([]byte("last-user-extra"))
		field(r.Messages[last].Extra)
	}
	field([]byte("rest"))
	field(r.Rest)
	if r.API != "" {
		field([]byte("api"))
		field([]byte(r.API))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeMsg(field func([]byte), m Message) {
	field([]byte("msg"))
	field([]byte(m.Role))
	field([]byte(m.Text))
	field(m.Extra)
}

// canonical re-encodes raw JSON with object keys sorted and numbers as
// written (json.Number), without HTML escaping.
func canonical(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("request body is not a JSON object: %v", err)
	}
	if obj == nil {
		return nil, errors.New("request body is not a JSON object")
	}
	if dec.More() {
		return nil, errors.New("request body has data after the JSON object")
	}
	return obj, nil
}

// content splits a message content (a string or an array of parts) into
// its text (text parts joined by "\n", in order) and the shapes of its
// parts: a text part without its text, any other part whole.
func content(v any) (text string, parts []any, err error) {
	switch c := v.(type) {
	case nil:
		return "", nil, nil
	case string:
		return c, nil, nil
	case []any:
		var texts []string
		for i, p := range c {
			obj, ok := p.(map[string]any)
			if !ok {
				return "", nil, fmt.Errorf("content part %d is not an object", i)
			}
			if obj["type"] == "text" {
				s, shape, err := textPart(obj, i)
				if err != nil {
					return "", nil, err
				}
				texts, parts = append(texts, s), append(parts, shape)
				continue
			}
			parts = append(parts, obj)
		}
		return strings.Join(texts, "\n"), parts, nil
	}
	return "", nil, errors.New("content is neither a string nor an array of parts")
}

// textPart is text content part i's text and its shape (the part without
// its text, which stays in the partition).
func textPart(obj map[string]any, i int) (string, map[string]any, error) {
	s, ok := obj["text"].(string)
	if !ok {
		return "", nil, fmt.Errorf("content part %d: text is not a string", i)
	}
	shape := map[string]any{}
	for k, v := range obj {
		if k != "text" {
			shape[k] = v
		}
	}
	return s, shape, nil
}

// message builds a Message from a decoded message object.
func message(obj map[string]any, i int) (Message, error) {
	role, ok := obj["role"].(string)
	if !ok {
		return Message{}, fmt.Errorf("message %d has no role", i)
	}
	text, parts, err := content(obj["content"])
	if err != nil {
		return Message{}, fmt.Errorf("message %d: %v", i, err)
	}
	eb, err := messageExtra(obj, parts, "role", "content")
	if err != nil {
		return Message{}, err
	}
	return Message{Role: role, Text: text, Extra: eb}, nil
}

// messageExtra is the canonical JSON of a message's fields but skip, with
// its non-text content parts (nil when there is nothing else).
func messageExtra(obj map[string]any, parts []any, skip ...string) ([]byte, error) {
	extra := map[string]any{}
	for k, v := range obj {
		if !slices.Contains(skip, k) {
			extra[k] = v
		}
	}
	if parts != nil {
		extra["content_parts"] = parts
	}
	if len(extra) == 0 {
		return nil, nil
	}
	return canonical(extra)
}

func temperature(obj map[string]any) (*float64, error) {
	v, ok := obj["temperature"]
	if !ok || v == nil {
		return nil, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return nil, errors.New("temperature is not a number")
	}
	f, err := n.Float64()
	if err != nil {
		return nil, fmt.Errorf("temperature: %v", err)
	}
	return &f, nil
}

// omitted are the fields left out of Rest: the model and the messages
// (hashed on their own) and how the answer is delivered.
var omitted = map[string]bool{"model": true, "messages": true, "stream": true, "stream_options": true}

func rest(obj map[string]any, skip ...string) ([]byte, error) {
	r := map[string]any{}
	for k, v := range obj {
		if omitted[k] {
			continue
		}
		skipped := false
		for _, s := range skip {
			skipped = skipped || k == s
		}
		if !skipped {
			r[k] = v
		}
	}
	return canonical(r)
}

// messages reads a request's "messages" array.
func messages(obj map[string]any) ([]Message, error) {
	msgs, ok := obj["messages"].([]any)
	if !ok {
		return nil, errors.New("request has no messages array")
	}
	out := make([]Message, 0, len(msgs))
	for i, m := range msgs {
		mo, ok := m.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("message %d is not an object", i)
		}
		msg, err := message(mo, i)
		if err != nil {
			return nil, err
		}
		out = append(out, msg)
	}
	return out, nil
}

// ParseOpenAI reads an OpenAI chat completions request body into a Request
// for tenant (force is the x-costctl-cache: force header).
func ParseOpenAI(body []byte, tenant string, force bool) (*Request, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	r := &Request{Tenant: tenant, Force: force}
	r.Model, _ = obj["model"].(string)
	if r.Messages, err = messages(obj); err != nil {
		return nil, err
	}
	if r.Temperature, err = temperature(obj); err != nil {
		return nil, err
	}
	if r.Rest, err = rest(obj); err != nil {
		return nil, err
	}
	return r, nil
}

// ParseAnthropic reads an Anthropic Messages request body into a Request:
// system (a string or text blocks) becomes a leading "system" message.
func ParseAnthropic(body []byte, tenant string, force bool) (*Request, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	r := &Request{Tenant: tenant, Force: force}
	r.Model, _ = obj["model"].(string)
	if sys, ok := obj["system"]; ok && sys != nil {
		text, parts, err := content(sys)
		if err != nil {
			return nil, fmt.Errorf("system: %v", err)
		}
		m := Message{Role: "system", Text: text}
		if parts != nil {
			if m.Extra, err = canonical(map[string]any{"content_parts": parts}); err != nil {
				return nil, err
			}
		}
		r.Messages = append(r.Messages, m)
	}
	msgs, err := messages(obj)
	if err != nil {
		return nil, err
	}
	for i, msg := range msgs {
		if msg.Role == "system" {
			return nil, fmt.Errorf("message %d: role system is not a Messages API role", i)
		}
	}
	r.Messages = append(r.Messages, msgs...)
	if r.Temperature, err = temperature(obj); err != nil {
		return nil, err
	}
	if r.Rest, err = rest(obj, "system"); err != nil {
		return nil, err
	}
	return r, nil
}

// ParseResponses reads an OpenAI Responses API request body (POST
// /v1/responses) into a Request (API "responses").
//
// instructions becomes a leading message of role "instructions" (not
// "system": a system or developer message in input is another request).
// input is a string (one user message) or a list of items: a message (type
// "message" or none; role user, assistant, system or developer; content a
// string or content parts) becomes a Message as a chat message does, a
// content of one bare input_text part reading as that string; any other
// item (function_call, function_call_output, reasoning, item_reference, ...)
// becomes a Message of role "item" whose Extra is the item whole, in
// canonical form. Every other field (model aside, stream and stream_options
// left out) is in Rest: tools, tool_choice, text, temperature, top_p,
// reasoning, max_output_tokens, previous_response_id, conversation, store,
// metadata, ...
//
// Whatever force says, the request is Ineligible when it runs in the
// background (background not false: the answer is fetched later, not
// returned), when it names a conversation (the upstream appends each turn
// to it; an answer from the cache would not), and when its last user message
// is not plain text (a part other than input_text: an image, a file, audio).
func ParseResponses(body []byte, tenant string, force bool) (*Request, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	r := &Request{Tenant: tenant, Force: force, API: "responses"}
	r.Model, _ = obj["model"].(string)
	if ins, ok := obj["instructions"]; ok && ins != nil {
		m := Message{Role: "instructions"}
		if s, ok := ins.(string); ok {
			m.Text = s
		} else if m.Extra, err = canonical(map[string]any{"instructions": ins}); err != nil {
			return nil, err
		}
		r.Messages = append(r.Messages, m)
	}
	var plain []bool // per message: its content is text only
	for range r.Messages {
		plain = append(plain, true)
	}
	switch in := obj["input"].(type) {
	case nil:
	case string:
		r.Messages = append(r.Messages, Message{Role: "user", Text: in})
		plain = append(plain, true)
	case []any:
		for i, it := range in {
			item, ok := it.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("input item %d is not an object", i)
			}
			m, p, err := responsesItem(item, i)
			if err != nil {
				return nil, err
			}
			r.Messages = append(r.Messages, m)
			plain = append(plain, p)
		}
	default:
		return nil, errors.New("input is neither a string nor a list of items")
	}
	if r.Temperature, err = temperature(obj); err != nil {
		return nil, err
	}
	rest := map[string]any{}
	for k, v := range obj {
		switch k {
		case "model", "input", "instructions", "stream", "stream_options":
			continue
		}
		rest[k] = v
	}
	if r.Rest, err = canonical(rest); err != nil {
		return nil, err
	}
	switch bg := obj["background"]; bg {
	case nil, false:
	default:
		r.Ineligible = fmt.Sprintf("background is %s: the answer is fetched later, not returned", jsonText(bg))
	}
	if conv, ok := obj["conversation"]; r.Ineligible == "" && ok && conv != nil {
		r.Ineligible = "the request names a conversation: the upstream adds each turn to it, an answer from the cache would not"
	}
	if last := r.lastUser(); r.Ineligible == "" && last >= 0 && !plain[last] {
		r.Ineligible = "the last user message is not plain text (it has a part other than input_text)"
	}
	return r, nil
}

func jsonText(v any) string {
	b, err := canonical(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// responsesItem builds the Message of input item i, and says whether its
// content is plain text (input_text parts only).
func responsesItem(obj map[string]any, i int) (Message, bool, error) {
	if typ, ok := obj["type"]; ok && typ != "message" {
		if _, ok := typ.(string); !ok {
			return Message{}, false, fmt.Errorf("input item %d: type is not a string", i)
		}
		eb, err := canonical(obj)
		if err != nil {
			return Message{}, false, err
		}
		return Message{Role: "item", Extra: eb}, false, nil
	}
	role, ok := obj["role"].(string)
	if !ok {
		return Message{}, false, fmt.Errorf("input item %d is a message without a role", i)
	}
	switch role {
	case "user", "assistant", "system", "developer":
	default:
		return Message{}, false, fmt.Errorf("input item %d: role %q is not a Responses API role", i, role)
	}
	text, parts, plain, err := responsesContent(obj["content"])
	if err != nil {
		return Message{}, false, fmt.Errorf("input item %d: %v", i, err)
	}
	eb, err := messageExtra(obj, parts, "role", "content", "type")
	if err != nil {
		return Message{}, false, err
	}
	return Message{Role: role, Text: text, Extra: eb}, plain, nil
}

// responsesContent splits a Responses message content (a string or content
// parts) into its text (input_text and output_text parts joined by "\n", in
// order), the shapes of its parts (a text part without its text, any other
// part whole; nil for a string or one bare input_text part, which mean the
// same) and whether it is plain text (input_text parts only).
func responsesContent(v any) (text string, parts []any, plain bool, err error) {
	switch c := v.(type) {
	case string:
		return c, nil, true, nil
	case []any:
		if len(c) == 1 {
			if p, ok := c[0].(map[string]any); ok && len(p) == 2 && p["type"] == "input_text" {
				if s, ok := p["text"].(string); ok {
					return s, nil, true, nil
				}
			}
		}
		plain = true
		texts := []string{}
		parts = []any{}
		for i, p := range c {
			obj, ok := p.(map[string]any)
			if !ok {
				return "", nil, false, fmt.Errorf("content part %d is not an object", i)
			}
			switch obj["type"] {
			case "input_text", "output_text":
				s, shape, err := textPart(obj, i)
				if err != nil {
					return "", nil, false, err
				}
				texts, parts = append(texts, s), append(parts, shape)
				plain = plain && obj["type"] == "input_text"
			default:
				parts = append(parts, obj)
				plain = false
			}
		}
		return strings.Join(texts, "\n"), parts, plain, nil
	}
	return "", nil, false, errors.New("content is neither a string nor a list of content parts")
}
