// Package fakeembed is a deterministic fake of an OpenAI-compatible
// embeddings endpoint on loopback, for tests: POST /v1/embeddings (and
// /embeddings) returns for each input a hashed bag of its words: Dims
// dimensions, each lower-cased word (a run of letters or digits) adds ±1 to
// the dimension its FNV hash picks, the vector is L2-normalised. So a
// paraphrase with the same words in another order scores 1, a text with
// one word changed scores high but below 1. Usage is one token per word
// (at least one per input; TokensPerWord changes that). A Server is safe for concurrent use.
package fakeembed

import (
	"encoding/json"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"unicode"
)

// Dims is the vectors' dimension.
const Dims = 256

// Server is a running fake.
type Server struct {
	*httptest.Server
	// Key, when set, is the bearer token every request must carry.
	Key string
	// TokensPerWord is how many prompt tokens a word is billed (0: one),
	// to play a server that bills more than a local count. Set it before
	// the first request.
	TokensPerWord int64

	mu     sync.Mutex
	calls  int
	inputs int
	tokens int64
}

// New starts a fake on loopback; close it with Close.
func New() *Server {
	s := &Server{}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/embeddings", s.handle)
	mux.HandleFunc("/embeddings", s.handle)
	s.Server = httptest.NewServer(mux)
	return s
}

// Calls is the number of embedding requests answered.
func (s *Server) Calls() int { s.mu.Lock(); defer s.mu.Unlock(); return s.calls }

// Inputs is the number of texts embedded.
func (s *Server) Inputs() int { s.mu.Lock(); defer s.mu.Unlock(); return s.inputs }

// Tokens is the number of prompt tokens billed.
func (s *Server) Tokens() int64 { s.mu.Lock(); defer s.mu.Unlock(); return s.tokens }

// Words splits text as the fake does: lower-cased runs of letters or digits.
func Words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// Vector is the fake's embedding of text.
func Vector(text string) []float32 {
	v := make([]float64, Dims)
	for _, w := range Words(text) {
		h := fnv.New64a()
		h.Write([]byte(w))
		x := h.Sum64()
		sign := 1.0
		if x&(1<<63) != 0 {
			sign = -1
		}
		v[x%Dims] += sign
	}
	var n float64
	for _, x := range v {
		n += x * x
	}
	out := make([]float32, Dims)
	if n == 0 {
		out[0] = 1
		return out
	}
	n = math.Sqrt(n)
	for i, x := range v {
		out[i] = float32(x / n)
	}
	return out
}

func apiError(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body) // the client sees a short body if this fails
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, `{"error":{"message":"POST only"}}`, http.StatusMethodNotAllowed)
		return
	}
	if s.Key != "" && r.Header.Get("Authorization") != "Bearer "+s.Key {
		apiError(w, http.StatusUnauthorized, `{"error":{"message":"Incorrect API key provided"}}`)
		return
	}
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model == "" {
		apiError(w, http.StatusBadRequest, `{"error":{"message":"want {\"model\",\"input\"}"}}`)
		return
	}
	var inputs []string
	if err := json.Unmarshal(req.Input, &inputs); err != nil {
		var one string
		if err := json.Unmarshal(req.Input, &one); err != nil {
			apiError(w, http.StatusBadRequest, `{"error":{"message":"input: want a string or an array of strings"}}`)
			return
		}
		inputs = []string{one}
	}
	type datum struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	var resp struct {
		Object string  `json:"object"`
		Data   []datum `json:"data"`
		Model  string  `json:"model"`
		Usage  struct {
			PromptTokens int64 `json:"prompt_tokens"`
			TotalTokens  int64 `json:"total_tokens"`
		} `json:"usage"`
	}
	resp.Object, resp.Model = "list", req.Model
	for i, in := range inputs {
		resp.Data = append(resp.Data, datum{Object: "embedding", Index: i, Embedding: Vector(in)})
		resp.Usage.PromptTokens += int64(max(len(Words(in)), 1)) * max(s.TokensPerWord, 1)
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	s.mu.Lock()
	s.calls++
	s.inputs += len(inputs)
	s.tokens += resp.Usage.PromptTokens
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp) // the client sees a short body if this fails
}
