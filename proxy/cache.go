package proxy

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/costctl/costctl/pricing"
)

// The exact response cache, opt-in per tenant (policy --cache on).
//
// Key: SHA-256 of tenant, upstream base URL, the model served and the
// request body in canonical form (keys sorted, numbers as written) without
// stream, stream_options and user. Only deterministic requests are cached
// (temperature 0, or no temperature and a seed) unless the client sends
// x-costctl-cache: force. An entry holds the answer as the upstream sent
// it, non-streamed or streamed (or both, once each kind was seen); a
// streaming request served from a non-streamed entry gets a well-formed
// event stream built from it (chat completions, messages and responses with
// text content), and anything else is a miss that fills in the missing form.
//
// The cache lives in memory: entries expire after --cache-ttl and the
// least recently used go first beyond a size bound (64 MiB of answers);
// it starts empty at every start of the proxy. With --redis it lives in
// Redis instead, shared by every proxy there (cache_redis.go).
type cache struct {
	mu      sync.Mutex
	max     int64
	ttl     time.Duration
	size    int64
	m       map[string]*list.Element
	lru     *list.List // front: most recently used
	nowFunc func() time.Time
}

type cacheEntry struct {
	key         string
	full        []byte // non-streamed answer
	events      []byte // streamed answer, the raw event stream
	contentType string // of full
	usage       usage
	kind        string
	text        string
	exp         time.Time
}

func (e *cacheEntry) bytes() int64 {
	return int64(len(e.full) + len(e.events) + len(e.text) + len(e.key) + 128)
}

func newCache(max int64, ttl time.Duration) *cache {
	return &cache{max: max, ttl: ttl, m: map[string]*list.Element{}, lru: list.New(), nowFunc: time.Now}
}

func (c *cache) get(key string, now time.Time) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.exp) {
		c.remove(el)
		return nil
	}
	c.lru.MoveToFront(el)
	return e
}

func (c *cache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.lru.Remove(el)
	delete(c.m, e.key)
	c.size -= e.bytes()
}

// put stores e under key, merged with an entry already there (a streamed
// and a non-streamed answer to the same request).
func (c *cache) put(key string, e *cacheEntry) {
	if c == nil {
		return
	}
	e.key = key
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.nowFunc()
	if el, ok := c.m[key]; ok {
		old := el.Value.(*cacheEntry)
		if now.Before(old.exp) {
			if e.full == nil {
				e.full, e.contentType = old.full, old.contentType
			}
			if e.events == nil {
				e.events = old.events
			}
		}
		c.remove(el)
	}
	e.exp = now.Add(c.ttl)
	if e.bytes() > c.max {
		return
	}
	c.m[key] = c.lru.PushFront(e)
	c.size += e.bytes()
	for c.size > c.max {
		c.remove(c.lru.Back())
	}
}

// cacheKey hashes the tenant, upstream, model and canonical body.
func cacheKey(tenant, upstream, model string, fields map[string]json.RawMessage) (string, error) {
	canon := make(map[string]any, len(fields))
	for k, v := range fields {
		switch k {
		case "stream", "stream_options", "user":
			continue
		}
		d := json.NewDecoder(bytes.NewReader(v))
		d.UseNumber()
		var x any
		if err := d.Decode(&x); err != nil {
			return "", err
		}
		canon[k] = x
	}
	b, err := json.Marshal(canon) // map keys sorted at every level
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, s := range []string{tenant, upstream, model} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cacheLookup serves c from the cache when its tenant has the cache on and
// an entry fits; it returns whether it answered. A hit is a ledger row
// with cost 0 and the avoided cost.
func (s *Server) cacheLookup(w http.ResponseWriter, r *http.Request, c *call) bool {
	if !c.pol.Cache || (c.rt.kind != kindChat && c.rt.kind != kindMessages && c.rt.kind != kindResponses && c.rt.kind != kindEmbeddings) {
		return false
	}
	if r.Header.Get("X-Costctl-Cache") != "force" && !c.req.deterministic() {
		return false
	}
	base, _ := s.upstream(c.rt.provider)
	key, err := cacheKey(c.key.Tenant, base, c.req.Model, c.req.fields)
	if err != nil {
		return false
	}
	c.cacheable, c.cacheKey = true, key
	e := s.cache.get(key, s.now())
	body, ctype := cachedBody(c, e)
	if body == nil {
		w.Header().Set("X-Costctl-Cache", "miss")
		return false
	}
	h := w.Header()
	h.Set("X-Costctl-Cache", "hit")
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // a client gone away still got its hit recorded (cost 0)
	ev := s.event(c)
	ev.Status = http.StatusOK
	e.usage.event(&ev)
	avoided := price(c.model, &ev)
	if m, ok := avoided.Money(); ok && !ev.Unpriced {
		ev.Avoided = m
	}
	ev.Cost, ev.CostExact, ev.CacheHit, ev.Unpriced = 0, pricing.Amount{}, true, false
	s.record(ev)
	s.served(c, ev, e.text)
	return true
}

// cachedBody is the answer entry e gives c (nil: none fits): its
// non-streamed answer, its streamed one, or a stream built from the
// non-streamed one; and its content type.
func cachedBody(c *call, e *cacheEntry) ([]byte, string) {
	switch {
	case e == nil:
	case !c.req.Stream && e.full != nil:
		return e.full, e.contentType
	case c.req.Stream && e.events != nil:
		body := e.events
		if c.rt.kind == kindChat && !c.req.IncludeUsage {
			body = dropUsageChunks(body)
		}
		return body, "text/event-stream"
	case c.req.Stream && e.full != nil:
		if b, ok := synthesizeStream(c.rt.kind, e.full, c.req.IncludeUsage); ok {
			return b, "text/event-stream"
		}
	}
	return nil, "application/json"
}

// dropUsageChunks removes the usage-only chunk from a chat event stream
// (for a client that did not ask for it).
func dropUsageChunks(stream []byte) []byte {
	var out []byte
	for _, ev := range bytes.SplitAfter(stream, []byte("\n\n")) {
		data, ok := bytes.CutPrefix(bytes.TrimSpace(ev), []byte("data: "))
		if ok && bytes.Contains(data, []byte(`"usage":{`)) {
			var ch struct {
				Choices []json.RawMessage `json:"choices"`
			}
			if json.Unmarshal(data, &ch) == nil && len(ch.Choices) == 0 {
				continue
			}
		}
		out = append(out, ev...)
	}
	return out
}

// synthesizeStream builds a well-formed event stream from a non-streamed
// answer with text content only (chat completions, messages, responses).
func synthesizeStream(kind string, full []byte, includeUsage bool) ([]byte, bool) {
	var b bytes.Buffer
	data := func(event string, v any) {
		j, _ := json.Marshal(v)
		if event != "" {
			fmt.Fprintf(&b, "event: %s\n", event)
		}
		fmt.Fprintf(&b, "data: %s\n\n", j)
	}
	switch kind {
	case kindChat:
		var m struct {
			ID                string          `json:"id"`
			Created           int64           `json:"created"`
			Model             string          `json:"model"`
			SystemFingerprint string          `json:"system_fingerprint,omitempty"`
			Usage             json.RawMessage `json:"usage"`
			Choices           []struct {
				Index   int `json:"index"`
				Message struct {
					Role      string          `json:"role"`
					Content   *string         `json:"content"`
					ToolCalls json.RawMessage `json:"tool_calls"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if json.Unmarshal(full, &m) != nil {
			return nil, false
		}
		chunk := func(choices any, usage json.RawMessage) map[string]any {
			c := map[string]any{"id": m.ID, "object": "chat.completion.chunk", "created": m.Created, "model": m.Model, "choices": choices}
			if m.SystemFingerprint != "" {
				c["system_fingerprint"] = m.SystemFingerprint
			}
			if usage != nil {
				c["usage"] = usage
			}
			return c
		}
		for _, ch := range m.Choices {
			if len(ch.Message.ToolCalls) > 0 && !bytes.Equal(ch.Message.ToolCalls, []byte("null")) {
				return nil, false
			}
			content := ""
			if ch.Message.Content != nil {
				content = *ch.Message.Content
			}
			data("", chunk([]any{map[string]any{"index": ch.Index, "delta": map[string]any{"role": "assistant", "content": content}, "finish_reason": nil}}, nil))
			data("", chunk([]any{map[string]any{"index": ch.Index, "delta": map[string]any{}, "finish_reason": ch.FinishReason}}, nil))
		}
		if includeUsage && m.Usage != nil {
			data("", chunk([]any{}, m.Usage))
		}
		b.WriteString("data: [DONE]\n\n")
		return b.Bytes(), true
	case kindMessages:
		var m struct {
			ID           string          `json:"id"`
			Type         string          `json:"type"`
			Role         string          `json:"role"`
			Model        string          `json:"model"`
			StopReason   *string         `json:"stop_reason"`
			StopSequence *string         `json:"stop_sequence"`
			Usage        json.RawMessage `json:"usage"`
			Content      []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		}
		if json.Unmarshal(full, &m) != nil {
			return nil, false
		}
		var u map[string]any
		_ = json.Unmarshal(m.Usage, &u) // a usage block that does not read leaves the counts out of the start event
		start := map[string]any{}
		for k, v := range u {
			start[k] = v
		}
		start["output_tokens"] = 1
		data("message_start", map[string]any{"type": "message_start", "message": map[string]any{
			"id": m.ID, "type": "message", "role": m.Role, "model": m.Model, "content": []any{},
			"stop_reason": nil, "stop_sequence": nil, "usage": start}})
		for i, c := range m.Content {
			if c.Type != "text" {
				return nil, false
			}
			data("content_block_start", map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]any{"type": "text", "text": ""}})
			data("content_block_delta", map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "text_delta", "text": c.Text}})
			data("content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
		}
		data("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": m.StopReason, "stop_sequence": m.StopSequence},
			"usage": map[string]any{"output_tokens": u["output_tokens"]}})
		data("message_stop", map[string]any{"type": "message_stop"})
		return b.Bytes(), true
	case kindResponses:
		return synthesizeResponses(full)
	}
	return nil, false
}

// synthesizeResponses builds a Responses API event stream from a
// non-streamed response whose output is messages of output_text and refusal
// parts (and reasoning items without a summary), as the API streams it:
// response.created, response.in_progress, per item output_item.added, per
// part content_part.added, one delta, the done events, output_item.done,
// and response.completed (response.incomplete for an incomplete response)
// with the stored response whole. Anything else (a tool call, a reasoning
// summary, a failed response) gives no stream.
func synthesizeResponses(full []byte) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(full))
	dec.UseNumber() // numbers as the upstream wrote them
	var resp map[string]any
	if dec.Decode(&resp) != nil || resp == nil {
		return nil, false
	}
	final := "response.completed"
	switch resp["status"] {
	case nil, "completed":
	case "incomplete":
		final = "response.incomplete"
	default:
		return nil, false
	}
	output, ok := resp["output"].([]any)
	if !ok && resp["output"] != nil {
		return nil, false
	}
	var b bytes.Buffer
	seq := 0
	send := func(v map[string]any) bool {
		v["sequence_number"] = seq
		seq++
		j, err := json.Marshal(v)
		if err != nil {
			return false
		}
		fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", v["type"], j)
		return true
	}
	start := make(map[string]any, len(resp))
	for k, v := range resp {
		start[k] = v
	}
	start["status"], start["output"], start["usage"] = "in_progress", []any{}, nil
	if !send(map[string]any{"type": "response.created", "response": start}) ||
		!send(map[string]any{"type": "response.in_progress", "response": start}) {
		return nil, false
	}
	for i, o := range output {
		item, ok := o.(map[string]any)
		if !ok {
			return nil, false
		}
		added := make(map[string]any, len(item))
		for k, v := range item {
			added[k] = v
		}
		var parts []any
		switch item["type"] {
		case "message":
			if parts, ok = item["content"].([]any); !ok && item["content"] != nil {
				return nil, false
			}
			added["status"], added["content"] = "in_progress", []any{}
		case "reasoning":
			if s, ok := item["summary"].([]any); item["summary"] != nil && (!ok || len(s) > 0) {
				return nil, false // its summary would stream as events of its own
			}
			if item["content"] != nil {
				return nil, false
			}
		default:
			return nil, false
		}
		id, _ := item["id"].(string)
		if !send(map[string]any{"type": "response.output_item.added", "output_index": i, "item": added}) {
			return nil, false
		}
		for j, p := range parts {
			part, ok := p.(map[string]any)
			if !ok {
				return nil, false
			}
			at := func(typ string) map[string]any {
				return map[string]any{"type": typ, "item_id": id, "output_index": i, "content_index": j}
			}
			var field, delta, done string
			switch part["type"] {
			case "output_text":
				field, delta, done = "text", "response.output_text.delta", "response.output_text.done"
			case "refusal":
				field, delta, done = "refusal", "response.refusal.delta", "response.refusal.done"
			default:
				return nil, false
			}
			text, ok := part[field].(string)
			if !ok {
				return nil, false
			}
			empty := map[string]any{"type": part["type"], field: ""}
			if part["type"] == "output_text" {
				empty["annotations"] = []any{}
			}
			ev := at("response.content_part.added")
			ev["part"] = empty
			if !send(ev) {
				return nil, false
			}
			ev = at(delta)
			ev["delta"] = text
			if !send(ev) {
				return nil, false
			}
			ev = at(done)
			ev[field] = text
			if !send(ev) {
				return nil, false
			}
			ev = at("response.content_part.done")
			ev["part"] = part
			if !send(ev) {
				return nil, false
			}
		}
		if !send(map[string]any{"type": "response.output_item.done", "output_index": i, "item": item}) {
			return nil, false
		}
	}
	if !send(map[string]any{"type": final, "response": resp}) {
		return nil, false
	}
	return b.Bytes(), true
}
