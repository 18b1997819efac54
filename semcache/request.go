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
// semantic cache, and if not why: it must end with a user message that has
// text, and be deterministic (temperature explicitly 0, or Force).
func Eligible(r *Request) (ok bool, why string) {
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
// its messages (it is not eligible anyway).
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
				s, ok := obj["text"].(string)
				if !ok {
					return "", nil, fmt.Errorf("content part %d: text is not a string", i)
				}
				texts = append(texts, s)
				shape := map[string]any{}
				for k, v := range obj {
					if k != "text" {
						shape[k] = v
					}
				}
				parts = append(parts, shape)
				continue
			}
			parts = append(parts, obj)
		}
		return strings.Join(texts, "\n"), parts, nil
	}
	return "", nil, errors.New("content is neither a string nor an array of parts")
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
	extra := map[string]any{}
	for k, v := range obj {
		if k != "role" && k != "content" {
			extra[k] = v
		}
	}
	if parts != nil {
		extra["content_parts"] = parts
	}
	var eb []byte
	if len(extra) > 0 {
		if eb, err = canonical(extra); err != nil {
			return Message{}, err
		}
	}
	return Message{Role: role, Text: text, Extra: eb}, nil
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

// ParseOpenAI reads an OpenAI chat completions request body into a Request
// for tenant (force is the x-costctl-cache: force header).
func ParseOpenAI(body []byte, tenant string, force bool) (*Request, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	r := &Request{Tenant: tenant, Force: force}
	r.Model, _ = obj["model"].(string)
	msgs, ok := obj["messages"].([]any)
	if !ok {
		return nil, errors.New("request has no messages array")
	}
	for i, m := range msgs {
		mo, ok := m.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("message %d is not an object", i)
		}
		msg, err := message(mo, i)
		if err != nil {
			return nil, err
		}
		r.Messages = append(r.Messages, msg)
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
	msgs, ok := obj["messages"].([]any)
	if !ok {
		return nil, errors.New("request has no messages array")
	}
	for i, m := range msgs {
		mo, ok := m.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("message %d is not an object", i)
		}
		msg, err := message(mo, i)
		if err != nil {
			return nil, err
		}
		if msg.Role == "system" {
			return nil, fmt.Errorf("message %d: role system is not a Messages API role", i)
		}
		r.Messages = append(r.Messages, msg)
	}
	if r.Temperature, err = temperature(obj); err != nil {
		return nil, err
	}
	if r.Rest, err = rest(obj, "system"); err != nil {
		return nil, err
	}
	return r, nil
}
