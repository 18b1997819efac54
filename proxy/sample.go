package proxy

import (
	"bufio"
	"encoding/json"
	"hash/fnv"
	"io"
	"sync"

	"github.com/costctl/costctl/ledger"
)

// sampled says whether a tenant's request is in its sample share (basis
// points): a stable hash of tenant and body, so the same request is always
// in or out, and the share of distinct requests sampled is bp/10000.
func sampled(tenant string, body []byte, bp int64) bool {
	if bp >= 10000 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write(body)
	return int64(h.Sum64()%10000) < bp
}

// sampleRecord is one line of --sample-out: a record in costctl eval's
// input format (id, input as chat messages, output, tenant, metadata).
type sampleRecord struct {
	ID       string          `json:"id"`
	Input    json.RawMessage `json:"input"`
	Output   string          `json:"output"`
	Tenant   string          `json:"tenant"`
	Metadata map[string]any  `json:"metadata"`
}

// sampler writes sample records on its own goroutine, off the request
// path; when it falls behind by more than its queue, samples are dropped
// (and counted) rather than slowing requests.
type sampler struct {
	ch      chan sampleRecord
	done    chan struct{}
	dropped int64
	mu      sync.Mutex
	logf    func(string, ...any)
}

func newSampler(w io.Writer, logf func(string, ...any)) *sampler {
	s := &sampler{ch: make(chan sampleRecord, 1024), done: make(chan struct{}), logf: logf}
	go func() {
		defer close(s.done)
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		for rec := range s.ch {
			if err := enc.Encode(rec); err != nil {
				logf("cannot write a sample: %v", err)
			}
			if len(s.ch) == 0 {
				if err := bw.Flush(); err != nil {
					logf("cannot write samples: %v", err)
				}
			}
		}
		if err := bw.Flush(); err != nil {
			logf("cannot write the last samples: %v", err)
		}
	}()
	return s
}

func (s *sampler) add(c *call, e ledger.Event, text string) {
	rec := sampleRecord{ID: e.Key, Input: sampleInput(c), Output: text, Tenant: c.key.Tenant, Metadata: map[string]any{
		"model": e.Model, "cost": e.CostExact.String(), "user": e.User, "key": e.Metric, "route": e.Endpoint,
		"time": e.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"), "input_tokens": e.InputTokens, "output_tokens": e.OutputTokens,
		"source": ledger.SourceProxy,
	}}
	if e.CacheHit {
		rec.Metadata["cache_hit"] = true
		rec.Metadata["cost"] = "0.00"
	}
	if e.Estimate != "" {
		rec.Metadata["estimate"] = e.Estimate
	}
	select {
	case s.ch <- rec:
	default:
		s.mu.Lock()
		s.dropped++
		n := s.dropped
		s.mu.Unlock()
		if n == 1 || n%1000 == 0 {
			s.logf("sample writer is behind: %d samples dropped", n)
		}
	}
}

func (s *sampler) close() {
	close(s.ch)
	<-s.done
}

// sampleInput is the request's input as chat messages: OpenAI chat
// messages as sent; Anthropic's system text first as a system message;
// the responses API's input as given.
func sampleInput(c *call) json.RawMessage {
	f := c.req.fields
	switch c.rt.kind {
	case kindMessages:
		var msgs []json.RawMessage
		if sys, ok := f["system"]; ok {
			var text string
			if json.Unmarshal(sys, &text) != nil {
				var parts []struct {
					Text string `json:"text"`
				}
				_ = json.Unmarshal(sys, &parts) // neither text nor parts: no system text in the sample
				for _, p := range parts {
					text += p.Text
				}
			}
			m, _ := json.Marshal(map[string]string{"role": "system", "content": text})
			msgs = append(msgs, m)
		}
		var rest []json.RawMessage
		_ = json.Unmarshal(f["messages"], &rest) // unreadable messages: the sample has the system text only
		b, _ := json.Marshal(append(msgs, rest...))
		return b
	case kindResponses:
		if v, ok := f["input"]; ok {
			return v
		}
	case kindEmbeddings:
		if v, ok := f["input"]; ok {
			return v
		}
	}
	if v, ok := f["messages"]; ok {
		return v
	}
	return json.RawMessage(`""`)
}
