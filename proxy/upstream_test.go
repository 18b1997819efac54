package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Upstream keys of the tests: they must never show up in any output, log,
// sample or ledger file.
const (
	testOpenAIKey    = "sk-upstream-openai-SECRET-0123456789abcdef"
	testAnthropicKey = "sk-ant-upstream-SECRET-0123456789abcdef"
)

// fakeUpstream speaks both wire formats on loopback. The request header
// X-Test-Mode picks a behaviour: "" (normal), "error" (a 400 that echoes
// the key it was sent), "cut" (a stream cut after two events), "nousage"
// (a stream that ends without usage), "hold" (a stream that waits on
// release after its first event), "failed" (a Responses stream that ends
// in response.failed, with usage).
type fakeUpstream struct {
	srv      *httptest.Server
	calls    atomic.Int64
	holding  atomic.Int64
	release  chan struct{}
	mu       sync.Mutex
	models   []string // model of each billed call, in order
	badAuth  atomic.Int64
	lastBody atomic.Value // string
	// reply, when set, is the content of the non-streamed chat answer
	// (else "hello world").
	reply atomic.Pointer[string]
}

func newFakeUpstream(t testing.TB) *fakeUpstream {
	u := &fakeUpstream{release: make(chan struct{})}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(func() {
		u.releaseAll()
		u.srv.Close()
	})
	return u
}

func (u *fakeUpstream) releaseAll() {
	select {
	case <-u.release:
	default:
		close(u.release)
	}
}

func (u *fakeUpstream) URL() string { return u.srv.URL }

func (u *fakeUpstream) Models() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.models...)
}

func (u *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	u.calls.Add(1)
	anthropic := strings.HasPrefix(r.URL.Path, "/v1/messages")
	if anthropic {
		if r.Header.Get("X-Api-Key") != testAnthropicKey || r.Header.Get("Authorization") != "" {
			u.badAuth.Add(1)
			w.WriteHeader(401)
			fmt.Fprintf(w, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key %s"}}`, r.Header.Get("X-Api-Key"))
			return
		}
	} else if r.Header.Get("Authorization") != "Bearer "+testOpenAIKey || r.Header.Get("X-Api-Key") != "" {
		u.badAuth.Add(1)
		w.WriteHeader(401)
		fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s","type":"invalid_request_error"}}`, r.Header.Get("Authorization"))
		return
	}
	mode := r.Header.Get("X-Test-Mode")
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	u.lastBody.Store(string(body))
	var req struct {
		Model         string `json:"model"`
		Stream        bool   `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	json.Unmarshal(body, &req)
	if mode == "drop" {
		// Read the request, then hang up without an answer.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	if mode == "error" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"error":{"message":"bad request; you sent key %s","type":"invalid_request_error"}}`, testOpenAIKey)
		return
	}
	if r.URL.Path == "/v1/messages/count_tokens" {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"input_tokens":12}`)
		return
	}
	u.mu.Lock()
	u.models = append(u.models, req.Model)
	u.mu.Unlock()
	switch r.URL.Path {
	case "/v1/chat/completions":
		if req.Stream {
			u.chatStream(w, req.Model, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, mode)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		content := "hello world"
		if p := u.reply.Load(); p != nil {
			content = *p
		}
		fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":50,"total_tokens":1050,"prompt_tokens_details":{"cached_tokens":200},"completion_tokens_details":{"reasoning_tokens":0}}}`, req.Model, content)
	case "/v1/responses":
		if req.Stream {
			w.Header().Set("Content-Type", "text/event-stream")
			fl := w.(http.Flusher)
			ev := func(name, data string) {
				fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
				fl.Flush()
			}
			ev("response.created", `{"type":"response.created","response":{"id":"resp_2","status":"in_progress"}}`)
			ev("response.output_text.delta", `{"type":"response.output_text.delta","delta":"hi "}`)
			if mode == "cut" {
				panic(http.ErrAbortHandler)
			}
			ev("response.output_text.delta", `{"type":"response.output_text.delta","delta":"there"}`)
			if mode == "failed" {
				ev("response.failed", `{"type":"response.failed","response":{"id":"resp_2","status":"failed","error":{"code":"server_error","message":"boom"},"usage":{"input_tokens":300,"output_tokens":2,"input_tokens_details":{"cached_tokens":0},"output_tokens_details":{"reasoning_tokens":0}}}}`)
				return
			}
			ev("response.completed", `{"type":"response.completed","response":{"id":"resp_2","status":"completed","usage":{"input_tokens":300,"output_tokens":20,"input_tokens_details":{"cached_tokens":100},"output_tokens_details":{"reasoning_tokens":5}}}}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"resp_1","object":"response","model":%q,"output":[{"type":"message","content":[{"type":"output_text","text":"hi there"}]}],"usage":{"input_tokens":300,"output_tokens":20,"input_tokens_details":{"cached_tokens":0},"output_tokens_details":{"reasoning_tokens":5}}}`, req.Model)
	case "/v1/embeddings":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":%q,"usage":{"prompt_tokens":8,"total_tokens":8}}`, req.Model)
	case "/v1/messages":
		if req.Stream {
			u.messagesStream(w, req.Model, mode)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":"bonjour"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":400,"cache_read_input_tokens":100,"cache_creation_input_tokens":50,"cache_creation":{"ephemeral_5m_input_tokens":20,"ephemeral_1h_input_tokens":30},"output_tokens":60}}`, req.Model)
	default:
		w.WriteHeader(404)
	}
}

func (u *fakeUpstream) hold(mode string) {
	if mode == "hold" {
		u.holding.Add(1)
		<-u.release
	}
}

func (u *fakeUpstream) chatStream(w http.ResponseWriter, model string, includeUsage bool, mode string) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	chunk := func(s string) {
		fmt.Fprintf(w, "data: %s\n\n", s)
		fl.Flush()
	}
	head := fmt.Sprintf(`"id":"chatcmpl-2","object":"chat.completion.chunk","created":1700000000,"model":%q`, model)
	usageField := ""
	if includeUsage {
		usageField = `,"usage":null`
	}
	chunk(`{` + head + `,"choices":[{"index":0,"delta":{"role":"assistant","content":"hel"},"finish_reason":null}]` + usageField + `}`)
	u.hold(mode)
	chunk(`{` + head + `,"choices":[{"index":0,"delta":{"content":"lo world"},"finish_reason":null}]` + usageField + `}`)
	if mode == "cut" {
		panic(http.ErrAbortHandler)
	}
	chunk(`{` + head + `,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]` + usageField + `}`)
	if includeUsage && mode != "nousage" {
		chunk(`{` + head + `,"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":50,"total_tokens":1050}}`)
	}
	chunk(`[DONE]`)
}

func (u *fakeUpstream) messagesStream(w http.ResponseWriter, model, mode string) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	ev := func(name, data string) {
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
		fl.Flush()
	}
	ev("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","model":%q,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":400,"cache_read_input_tokens":100,"cache_creation_input_tokens":0,"output_tokens":1}}}`, model))
	ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"bon"}}`)
	u.hold(mode)
	ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"jour"}}`)
	if mode == "cut" {
		panic(http.ErrAbortHandler)
	}
	ev("content_block_stop", `{"type":"content_block_stop","index":0}`)
	ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":60}}`)
	ev("message_stop", `{"type":"message_stop"}`)
}
