package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/costctl/costctl/ledger"
)

// maxSampleText bounds the output text kept for a sample or a cut
// stream's estimate.
const maxSampleText = 1 << 20

// streamState is what a relayed event stream reported.
type streamState struct {
	kind      string
	dropUsage bool // OpenAI chat: the client did not ask for the usage chunk
	usage     usage
	anth      anthropicAcc
	text      strings.Builder
	done      bool   // the stream's last event arrived
	failed    bool   // it said the call failed (responses: response.failed): never cached
	events    []byte // the raw stream, kept for the cache (nil: not kept)
	keep      bool
}

func (st *streamState) addText(s string) {
	if st.text.Len()+len(s) <= maxSampleText {
		st.text.WriteString(s)
	}
}

// inspect reads one event's data and says whether to forward the event.
func (st *streamState) inspect(data []byte) bool {
	if len(data) == 0 {
		return true
	}
	switch st.kind {
	case kindChat:
		if bytes.Equal(data, []byte("[DONE]")) {
			st.done = true
			return true
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage       *openaiUsage `json:"usage"`
			ServiceTier string       `json:"service_tier"`
		}
		if json.Unmarshal(data, &ch) != nil {
			return true
		}
		for _, c := range ch.Choices {
			st.addText(c.Delta.Content)
		}
		if ch.Usage != nil {
			st.usage = ch.Usage.usage(ch.ServiceTier)
			if len(ch.Choices) == 0 && st.dropUsage {
				return false
			}
		}
	case kindResponses:
		var ev struct {
			Type     string `json:"type"`
			Delta    string `json:"delta"`
			Response *struct {
				Usage       *openaiUsage `json:"usage"`
				ServiceTier string       `json:"service_tier"`
			} `json:"response"`
		}
		if json.Unmarshal(data, &ev) != nil {
			return true
		}
		switch ev.Type {
		case "response.output_text.delta":
			st.addText(ev.Delta)
		case "response.completed", "response.incomplete", "response.failed":
			st.done, st.failed = true, ev.Type == "response.failed"
			if ev.Response != nil && ev.Response.Usage != nil {
				st.usage = ev.Response.Usage.usage(ev.Response.ServiceTier)
			}
		}
	case kindMessages:
		var ev struct {
			Type    string `json:"type"`
			Message *struct {
				Usage *anthropicUsage `json:"usage"`
			} `json:"message"`
			Delta *struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"delta"`
			Usage *anthropicUsage `json:"usage"`
		}
		if json.Unmarshal(data, &ev) != nil {
			return true
		}
		switch ev.Type {
		case "message_start":
			if ev.Message != nil {
				st.anth.add(ev.Message.Usage)
			}
		case "content_block_delta":
			if ev.Delta != nil && ev.Delta.Type == "text_delta" {
				st.addText(ev.Delta.Text)
			}
		case "message_delta":
			st.anth.add(ev.Usage)
		case "message_stop":
			st.done = true
		}
	}
	return true
}

// final is the stream's usage: what it reported, and whether that is the
// whole call's.
func (st *streamState) final() (usage, bool) {
	if st.kind == kindMessages {
		return st.anth.usage(), st.anth.seen && st.done
	}
	return st.usage, st.usage.ok
}

// relay copies an event stream to the client event by event, flushing
// after each; it never holds more than one event.
func (st *streamState) relay(w io.Writer, flush func() error, body io.Reader) (clientErr, upstreamErr error) {
	br := bufio.NewReaderSize(body, 4<<10)
	var ev, data []byte
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A long line: collect it whole.
			full := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				full = append(full, line...)
			}
			line = full
		}
		if len(line) > 0 {
			ev = append(ev, line...)
			trimmed := bytes.TrimRight(line, "\r\n")
			if len(trimmed) == 0 {
				// The end of an event.
				if st.keep {
					st.events = append(st.events, ev...)
				}
				if st.inspect(data) {
					if _, werr := w.Write(ev); werr != nil {
						return werr, nil
					}
					if werr := flush(); werr != nil {
						return werr, nil
					}
				}
				ev, data = ev[:0], data[:0]
			} else if rest, ok := bytes.CutPrefix(trimmed, []byte("data:")); ok {
				if len(data) > 0 {
					data = append(data, '\n')
				}
				data = append(data, bytes.TrimPrefix(rest, []byte(" "))...)
			}
		}
		if err != nil {
			var werr error
			if len(ev) > 0 && st.inspect(data) {
				// A last event without its blank line.
				if _, werr = w.Write(ev); werr == nil {
					werr = flush()
				}
			}
			if err == io.EOF {
				return werr, nil
			}
			return werr, err
		}
	}
}

// relayStream relays a streamed answer and bills it: the usage it
// reported, or, for a stream cut before its usage, an estimate (the prompt
// bound and the tokens relayed), marked as such.
func (s *Server) relayStream(w http.ResponseWriter, r *http.Request, c *call, resp *http.Response) {
	st := &streamState{kind: c.rt.kind, dropUsage: c.rt.kind == kindChat && !c.req.IncludeUsage, keep: c.cacheable || c.sem != nil}
	rc := http.NewResponseController(w)
	flush := func() error {
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil // a writer that cannot flush still gets every event
	}
	w.WriteHeader(resp.StatusCode)
	clientErr := flush()
	var upErr error
	if clientErr == nil {
		clientErr, upErr = st.relay(w, flush, resp.Body)
	}
	u, complete := st.final()
	e := s.event(c)
	e.Status = int64(resp.StatusCode)
	if complete {
		u.event(&e)
	} else {
		out := counterFor(c.model).Text(st.text.String())
		if u.ok && c.rt.kind == kindMessages {
			u.Output = max(u.Output, out)
			u.event(&e)
		} else {
			e.InputTokens, e.OutputTokens = c.bound, out
		}
		e.Estimate = ledger.EstimateNoUsage
		switch {
		case clientErr != nil || r.Context().Err() != nil:
			s.logf("stream %s for tenant %s cut by the client; billed an estimate", e.Key, c.key.Tenant)
		case upErr != nil:
			s.logf("stream %s for tenant %s cut by the upstream (%s); billed an estimate", e.Key, c.key.Tenant, s.redact(upErr.Error(), r))
		default:
			s.logf("stream %s for tenant %s ended without usage; billed an estimate", e.Key, c.key.Tenant)
		}
	}
	cost := price(c.model, &e)
	s.settleEvent(c, &e, cost)
	s.recordCall(c, e)
	s.served(c, e, st.text.String())
	keep := complete && st.done && !st.failed && clientErr == nil && upErr == nil
	if c.cacheable && keep {
		s.cache.put(c.cacheKey, &cacheEntry{events: st.events, contentType: resp.Header.Get("Content-Type"), usage: u, kind: c.rt.kind, text: st.text.String()})
	}
	if c.sem != nil && keep {
		s.semPut(c, &cacheEntry{events: st.events, contentType: resp.Header.Get("Content-Type"), usage: u, kind: c.rt.kind, text: st.text.String()}, cost)
	}
}
