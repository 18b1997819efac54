// Package batchfake is a fake of the OpenAI and Anthropic judge APIs on
// loopback, live and batch, for tests: one httptest server answers
// POST /v1/chat/completions and POST /v1/messages, OpenAI's Files and
// Batches endpoints, and Anthropic's Message Batches endpoints.
//
// A request's verdict and usage are one deterministic function of its
// system and user text, so a live call and a batch request of the same body
// answer identically. Batches advance one step per GET of the batch
// (OpenAI validating → in_progress → finalizing → completed; Anthropic
// in_progress → ended) and end as Options script them. Counters say what
// was called, submitted and billed. A Server is safe for concurrent use.
package batchfake

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Outcome is how a batch ends.
type Outcome int

// Outcomes.
const (
	// Complete: every request runs.
	Complete Outcome = iota
	// Fail: OpenAI: the batch fails validation (status failed, errors.data,
	// nothing runs). Anthropic has no failed batches: every request is
	// errored.
	Fail
	// Expire: the first half of the requests (n/2, rounded down) run, the
	// rest expire (OpenAI status expired, the rest in the error file with
	// code batch_expired; Anthropic ended with expired results).
	Expire
)

// A cancelled batch (cancel endpoint) runs the first half of its requests
// too: OpenAI reports nothing for the rest (status cancelled; they are
// missing by omission), Anthropic reports them canceled.

// Usage is what one request is billed. Prompt is the whole prompt;
// CacheRead and CacheWrite are the parts of it read from and written to
// the prompt cache (OpenAI reports CacheRead as cached_tokens and no
// writes; Anthropic reports input_tokens = Prompt - CacheRead - CacheWrite).
type Usage struct {
	Prompt, Completion    int64
	CacheRead, CacheWrite int64
}

func (u *Usage) add(v Usage) {
	u.Prompt += v.Prompt
	u.Completion += v.Completion
	u.CacheRead += v.CacheRead
	u.CacheWrite += v.CacheWrite
}

// Options script the fake. The zero value is a working fake that accepts
// any key and completes every batch.
type Options struct {
	// Key, when set, is the only API key accepted (Authorization: Bearer
	// Key for OpenAI, x-api-key: Key for Anthropic); others get 401.
	Key string
	// Judge is the verdict for a request's system and user text (the user
	// text is every non-system message, joined by newlines). Default:
	// DefaultJudge.
	Judge func(system, user string) (score float64, reason string)
	// Usage is what a request is billed. Default: DefaultUsage.
	Usage func(system, user string) Usage
	// Script[i] is how the i-th batch created (batchNo i+1, counted across
	// both APIs) ends; batches past its end Complete. Outcome, when set,
	// overrides it.
	Script  []Outcome
	Outcome func(batchNo int) Outcome
	// Shuffle writes results in a random order (seeded by Seed) instead of
	// the input's.
	Shuffle bool
	Seed    uint64
	// ErrorFor makes a request fail in its batch: OpenAI writes it to the
	// error file with a status_code 400 response; Anthropic reports it
	// errored. Not billed.
	ErrorFor func(customID string) bool
	// PollError makes the poll-th GET of batch batchNo (both from 1) answer
	// 500 without advancing the batch.
	PollError func(batchNo, poll int) bool
	// Now is the clock for created_at (default time.Now).
	Now func() time.Time
}

// DefaultJudge scores a request from a hash of its user text: one of 0,
// 0.25, 0.5, 0.75 or 1, with the reason "fake verdict N" (N = score*4).
func DefaultJudge(_, user string) (float64, string) {
	h := fnv.New32a()
	_, _ = io.WriteString(h, user)
	n := h.Sum32() % 5
	return float64(n) / 4, fmt.Sprintf("fake verdict %d", n)
}

// DefaultUsage bills (len(system)+len(user))/4 + 10 prompt tokens (below
// the request's byte length, hence any honest bound) and 12 completion
// tokens, nothing cached.
func DefaultUsage(system, user string) Usage {
	return Usage{Prompt: int64(len(system)+len(user))/4 + 10, Completion: 12}
}

// Server is the fake. Its URL serves both APIs.
type Server struct {
	srv  *httptest.Server
	opts Options

	mu           sync.Mutex
	rng          *rand.Rand
	liveCalls    int
	liveBodies   [][]byte
	files        map[string]*file
	fileOrder    int
	uploads      int
	batchNo      int
	openai       map[string]*oaBatch
	openaiOrder  []string // creation order
	anthropic    map[string]*antBatch
	antOrder     []string
	submitted    map[string]int
	lastBody     map[string][]byte
	liveUsage    Usage
	batchUsage   Usage
	reqNo        int
	batchesTotal int
}

type file struct {
	id, name, purpose string
	data              []byte
	created           int64
}

// item is one request of a batch and, once run, its result line.
type item struct {
	customID string
	body     []byte // the chat completion request or the Messages params
	result   []byte // the result line (without newline), set when it ended
	ok       bool   // ran and succeeded (billed)
	errored  bool
}

type batchCommon struct {
	no       int
	id       string
	items    []*item
	polls    int
	outcome  Outcome
	created  time.Time
	cancel   bool // a cancel was asked
	ended    bool
	ranCount int // requests run (the first ranCount items)
}

type oaBatch struct {
	batchCommon
	status       string
	inputFile    string
	outputFile   string
	errorFile    string
	metadata     map[string]string
	failMessages []string
}

type antBatch struct {
	batchCommon
	status string // in_progress, canceling, ended
}

// New starts a fake on loopback. Close it when done.
func New(opts Options) *Server {
	s := &Server{
		opts:      opts,
		files:     map[string]*file{},
		openai:    map[string]*oaBatch{},
		anthropic: map[string]*antBatch{},
		submitted: map[string]int{},
		lastBody:  map[string][]byte{},
		rng:       rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15)),
	}
	if s.opts.Judge == nil {
		s.opts.Judge = DefaultJudge
	}
	if s.opts.Usage == nil {
		s.opts.Usage = DefaultUsage
	}
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the server's root (http://127.0.0.1:port): the Anthropic base URL.
func (s *Server) URL() string { return s.srv.URL }

// OpenAIBaseURL is URL()+"/v1", the OpenAI base URL.
func (s *Server) OpenAIBaseURL() string { return s.srv.URL + "/v1" }

// AnthropicBaseURL is URL(), the Anthropic base URL.
func (s *Server) AnthropicBaseURL() string { return s.srv.URL }

// Client is an *http.Client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// LiveCalls is how many live calls (chat completions or messages) were
// answered.
func (s *Server) LiveCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.liveCalls
}

// LiveBodies are the bodies of the live calls answered, in order.
func (s *Server) LiveBodies() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, len(s.liveBodies))
	copy(out, s.liveBodies)
	return out
}

// BatchesCreated is how many batches were created (both APIs).
func (s *Server) BatchesCreated() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batchesTotal
}

// FilesUploaded is how many files were uploaded to /v1/files.
func (s *Server) FilesUploaded() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploads
}

// Submitted is how many batches the request customID was submitted in.
func (s *Server) Submitted(customID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.submitted[customID]
}

// MaxSubmitted is the most batches any one request was submitted in (0
// before any batch).
func (s *Server) MaxSubmitted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := 0
	for _, n := range s.submitted {
		m = max(m, n)
	}
	return m
}

// SubmittedIDs are the custom_ids submitted in batches, sorted.
func (s *Server) SubmittedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.submitted))
	for id := range s.submitted {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// SubmittedBody is the request body (OpenAI) or params (Anthropic) last
// submitted in a batch for customID, nil if none.
func (s *Server) SubmittedBody(customID string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastBody[customID]
}

// LiveUsage is the usage billed for live calls, summed.
func (s *Server) LiveUsage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.liveUsage
}

// BatchUsage is the usage billed for batch requests that ran and
// succeeded, summed.
func (s *Server) BatchUsage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batchUsage
}

// --- routing ---

var (
	reFileContent = regexp.MustCompile(`^/v1/files/([^/]+)/content$`)
	reOABatch     = regexp.MustCompile(`^/v1/batches/([^/]+)$`)
	reOACancel    = regexp.MustCompile(`^/v1/batches/([^/]+)/cancel$`)
	reAntBatch    = regexp.MustCompile(`^/v1/messages/batches/([^/]+)$`)
	reAntResults  = regexp.MustCompile(`^/v1/messages/batches/([^/]+)/results$`)
	reAntCancel   = regexp.MustCompile(`^/v1/messages/batches/([^/]+)/cancel$`)
	reCustomID    = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	anthropic := strings.HasPrefix(p, "/v1/messages")
	if s.opts.Key != "" {
		ok := r.Header.Get("Authorization") == "Bearer "+s.opts.Key
		if anthropic {
			ok = r.Header.Get("x-api-key") == s.opts.Key
		}
		if !ok {
			if anthropic {
				antError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
			} else {
				oaError(w, http.StatusUnauthorized, "invalid_api_key", "Incorrect API key provided.")
			}
			return
		}
	}
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	var m []string
	match := func(re *regexp.Regexp) bool { m = re.FindStringSubmatch(p); return m != nil }
	switch {
	case post && p == "/v1/chat/completions":
		s.liveOpenAI(w, r)
	case post && p == "/v1/messages":
		s.liveAnthropic(w, r)
	case post && p == "/v1/files":
		s.upload(w, r)
	case get && match(reFileContent):
		s.fileContent(w, m[1])
	case post && p == "/v1/batches":
		s.createOpenAI(w, r)
	case get && p == "/v1/batches":
		s.listOpenAI(w, r)
	case get && match(reOABatch):
		s.getOpenAI(w, m[1])
	case post && match(reOACancel):
		s.cancelOpenAI(w, m[1])
	case post && p == "/v1/messages/batches":
		s.createAnthropic(w, r)
	case get && p == "/v1/messages/batches":
		s.listAnthropic(w, r)
	case get && match(reAntResults):
		s.resultsAnthropic(w, m[1])
	case get && match(reAntBatch):
		s.getAnthropic(w, m[1])
	case post && match(reAntCancel):
		s.cancelAnthropic(w, m[1])
	default:
		if anthropic {
			antError(w, http.StatusNotFound, "not_found_error", "no route "+r.Method+" "+p)
		} else {
			oaError(w, http.StatusNotFound, "not_found", "no route "+r.Method+" "+p)
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oaError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "code": code, "param": nil}})
}

func antError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
}

// --- answers ---

// openaiRequest is what the fake reads of a chat completion request.
type openaiRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
}

// texts are a chat request's system text and the rest of its messages.
func (q *openaiRequest) texts() (string, string) {
	var sys, user []string
	for _, m := range q.Messages {
		if m.Role == "system" || m.Role == "developer" {
			sys = append(sys, m.Content)
		} else {
			user = append(user, m.Content)
		}
	}
	return strings.Join(sys, "\n"), strings.Join(user, "\n")
}

// Verdict is the verdict as the fake's judge writes it:
// {"score":S,"reason":R}, S in the shortest form ('f', -1).
func Verdict(score float64, reason string) string {
	b, _ := json.Marshal(reason)
	return `{"score":` + strconv.FormatFloat(score, 'f', -1, 64) + `,"reason":` + string(b) + `}`
}

// openaiAnswer is the chat completion for a request body, and its usage.
func (s *Server) openaiAnswer(body []byte, id string) (json.RawMessage, Usage, error) {
	var q openaiRequest
	if err := json.Unmarshal(body, &q); err != nil {
		return nil, Usage{}, fmt.Errorf("body is not JSON: %v", err)
	}
	if q.Model == "" || len(q.Messages) == 0 {
		return nil, Usage{}, fmt.Errorf("model and messages are required")
	}
	sys, user := q.texts()
	score, reason := s.opts.Judge(sys, user)
	u := s.opts.Usage(sys, user)
	resp := map[string]any{
		"id": "chatcmpl-" + id, "object": "chat.completion", "created": 1700000000, "model": q.Model,
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": Verdict(score, reason)}, "finish_reason": "stop"}},
		"usage": map[string]any{
			"prompt_tokens": u.Prompt, "completion_tokens": u.Completion, "total_tokens": u.Prompt + u.Completion,
			"prompt_tokens_details": map[string]any{"cached_tokens": u.CacheRead},
		},
	}
	b, _ := json.Marshal(resp)
	return b, u, nil
}

// anthropicRequest is what the fake reads of a Messages request.
type anthropicRequest struct {
	Model    string          `json:"model"`
	System   json.RawMessage `json:"system"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name string `json:"name"`
	} `json:"tools"`
}

// blockText is a string or a list of text blocks, as text.
func blockText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []struct {
		Type, Text string
	}
	_ = json.Unmarshal(raw, &blocks)
	parts := make([]string, 0, len(blocks))
	for _, b := range blocks {
		parts = append(parts, b.Text)
	}
	return strings.Join(parts, "\n")
}

// anthropicAnswer is the message for a request's params, and its usage.
func (s *Server) anthropicAnswer(body []byte, id string) (json.RawMessage, Usage, error) {
	var q anthropicRequest
	if err := json.Unmarshal(body, &q); err != nil {
		return nil, Usage{}, fmt.Errorf("body is not JSON: %v", err)
	}
	if q.Model == "" || len(q.Messages) == 0 {
		return nil, Usage{}, fmt.Errorf("model and messages are required")
	}
	sys := blockText(q.System)
	var user []string
	for _, m := range q.Messages {
		user = append(user, blockText(m.Content))
	}
	u := strings.Join(user, "\n")
	score, reason := s.opts.Judge(sys, u)
	usage := s.opts.Usage(sys, u)
	verdict := Verdict(score, reason)
	content := []any{map[string]any{"type": "text", "text": verdict}}
	stop := "end_turn"
	for _, t := range q.Tools {
		if t.Name == "verdict" {
			content = []any{map[string]any{"type": "tool_use", "id": "toolu_" + id, "name": "verdict", "input": json.RawMessage(verdict)}}
			stop = "tool_use"
		}
	}
	resp := map[string]any{
		"id": "msg_" + id, "type": "message", "role": "assistant", "model": q.Model,
		"content": content, "stop_reason": stop, "stop_sequence": nil,
		"usage": map[string]any{
			"input_tokens":                usage.Prompt - usage.CacheRead - usage.CacheWrite,
			"cache_read_input_tokens":     usage.CacheRead,
			"cache_creation_input_tokens": usage.CacheWrite,
			"output_tokens":               usage.Completion,
		},
	}
	b, _ := json.Marshal(resp)
	return b, usage, nil
}

func (s *Server) nextID() string {
	s.reqNo++
	return strconv.Itoa(s.reqNo)
}

func (s *Server) liveOpenAI(w http.ResponseWriter, r *http.Request) {
	s.live(w, r, s.openaiAnswer, func(msg string) { oaError(w, http.StatusBadRequest, "invalid_request", msg) })
}

func (s *Server) liveAnthropic(w http.ResponseWriter, r *http.Request) {
	s.live(w, r, s.anthropicAnswer, func(msg string) { antError(w, http.StatusBadRequest, "invalid_request_error", msg) })
}

// live answers one live call with answer, counting it and its usage.
func (s *Server) live(w http.ResponseWriter, r *http.Request, answer func(body []byte, id string) (json.RawMessage, Usage, error), refuse func(msg string)) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		refuse(err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp, u, err := answer(body, s.nextID())
	if err != nil {
		refuse(err.Error())
		return
	}
	s.liveCalls++
	s.liveBodies = append(s.liveBodies, body)
	s.liveUsage.add(u)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(resp)
}

// --- OpenAI files and batches ---

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	mr, err := r.MultipartReader()
	if err != nil {
		oaError(w, http.StatusBadRequest, "bad_upload", err.Error())
		return
	}
	f := &file{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			oaError(w, http.StatusBadRequest, "bad_upload", err.Error())
			return
		}
		data, err := io.ReadAll(part)
		if err != nil {
			oaError(w, http.StatusBadRequest, "bad_upload", err.Error())
			return
		}
		switch part.FormName() {
		case "purpose":
			f.purpose = string(data)
		case "file":
			f.name, f.data = part.FileName(), data
		}
	}
	if f.purpose != "batch" || f.name == "" {
		oaError(w, http.StatusBadRequest, "bad_upload", "want purpose=batch and a file part")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fileOrder++
	f.id = fmt.Sprintf("file-%d", s.fileOrder)
	f.created = s.opts.Now().Unix()
	s.files[f.id] = f
	s.uploads++
	writeJSON(w, http.StatusOK, map[string]any{"id": f.id, "object": "file", "bytes": len(f.data), "created_at": f.created, "filename": f.name, "purpose": f.purpose})
}

// newFile stores a file the fake writes (output and error files).
func (s *Server) newFile(purpose string, lines [][]byte) string {
	s.fileOrder++
	f := &file{id: fmt.Sprintf("file-%d", s.fileOrder), name: purpose + ".jsonl", purpose: purpose, created: s.opts.Now().Unix()}
	for _, l := range lines {
		f.data = append(append(f.data, l...), '\n')
	}
	s.files[f.id] = f
	return f.id
}

func (s *Server) fileContent(w http.ResponseWriter, id string) {
	s.mu.Lock()
	f := s.files[id]
	s.mu.Unlock()
	if f == nil {
		oaError(w, http.StatusNotFound, "not_found", "No such File object: "+id)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(f.data)
}

// outcome is how batch batchNo ends.
func (s *Server) outcome(no int) Outcome {
	if s.opts.Outcome != nil {
		return s.opts.Outcome(no)
	}
	if no-1 < len(s.opts.Script) {
		return s.opts.Script[no-1]
	}
	return Complete
}

// submit counts a batch's requests as submitted.
func (s *Server) submit(items []*item) {
	for _, it := range items {
		s.submitted[it.customID]++
		s.lastBody[it.customID] = it.body
	}
}

func (s *Server) createOpenAI(w http.ResponseWriter, r *http.Request) {
	var q struct {
		InputFileID      string            `json:"input_file_id"`
		Endpoint         string            `json:"endpoint"`
		CompletionWindow string            `json:"completion_window"`
		Metadata         map[string]string `json:"metadata"`
	}
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
		oaError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if q.Endpoint != "/v1/chat/completions" || q.CompletionWindow != "24h" {
		oaError(w, http.StatusBadRequest, "bad_request", "want endpoint /v1/chat/completions and completion_window 24h")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[q.InputFileID]
	if f == nil {
		oaError(w, http.StatusBadRequest, "bad_request", "No such File object: "+q.InputFileID)
		return
	}
	s.batchNo++
	s.batchesTotal++
	b := &oaBatch{status: "validating", inputFile: f.id, metadata: q.Metadata}
	b.no, b.id, b.created = s.batchNo, fmt.Sprintf("batch_%d", s.batchNo), s.opts.Now()
	b.outcome = s.outcome(b.no)
	seen := map[string]bool{}
	for i, line := range strings.Split(strings.TrimRight(string(f.data), "\n"), "\n") {
		var l struct {
			CustomID string          `json:"custom_id"`
			Method   string          `json:"method"`
			URL      string          `json:"url"`
			Body     json.RawMessage `json:"body"`
		}
		err := json.Unmarshal([]byte(line), &l)
		switch {
		case err != nil:
			b.failMessages = append(b.failMessages, fmt.Sprintf("line %d: not JSON: %v", i+1, err))
		case l.CustomID == "" || l.Method != "POST" || l.URL != "/v1/chat/completions" || len(l.Body) == 0:
			b.failMessages = append(b.failMessages, fmt.Sprintf("line %d: want custom_id, method POST, url /v1/chat/completions and body", i+1))
		case seen[l.CustomID]:
			b.failMessages = append(b.failMessages, fmt.Sprintf("line %d: duplicate custom_id %s", i+1, l.CustomID))
		default:
			seen[l.CustomID] = true
			b.items = append(b.items, &item{customID: l.CustomID, body: l.Body})
		}
	}
	if b.outcome == Fail && len(b.failMessages) == 0 {
		b.failMessages = []string{"The batch was refused by the fake (scripted failure)."}
	}
	s.submit(b.items) // a failing batch was submitted too
	s.openai[b.id] = b
	s.openaiOrder = append(s.openaiOrder, b.id)
	writeJSON(w, http.StatusOK, s.oaObject(b))
}

func (s *Server) oaObject(b *oaBatch) map[string]any {
	var total, completed, failed int
	if b.status != "validating" && b.status != "failed" {
		total = len(b.items)
	}
	for _, it := range b.items {
		if it.result != nil && it.ok {
			completed++
		} else if it.result != nil && it.errored {
			failed++
		}
	}
	var errs any
	if b.status == "failed" {
		data := []any{}
		for _, m := range b.failMessages {
			data = append(data, map[string]any{"code": "invalid_request", "message": m, "param": nil, "line": nil})
		}
		errs = map[string]any{"object": "list", "data": data}
	}
	nullable := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	return map[string]any{
		"id": b.id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": errs,
		"input_file_id": b.inputFile, "completion_window": "24h", "status": b.status,
		"output_file_id": nullable(b.outputFile), "error_file_id": nullable(b.errorFile),
		"created_at":     b.created.Unix(),
		"request_counts": map[string]any{"total": total, "completed": completed, "failed": failed},
		"metadata":       b.metadata,
	}
}

// run settles a batch's requests: the first ran run (succeeded, or errored
// by ErrorFor); the rest get no result unless missing writes one (the
// expired or canceled line).
func run(c *batchCommon, ran int, answer func(it *item) ([]byte, bool), missing func(it *item) []byte) {
	c.ranCount = ran
	c.ended = true
	for i, it := range c.items {
		if i < ran {
			it.result, it.ok = answer(it)
			it.errored = !it.ok
		} else {
			it.result = missing(it)
		}
	}
}

// finishOpenAI ends b as status, running its first ran requests.
func (s *Server) finishOpenAI(b *oaBatch, status string, ran int) {
	b.status = status
	var outLines, errLines [][]byte
	run(&b.batchCommon, ran, func(it *item) ([]byte, bool) {
		id := s.nextID()
		if s.opts.ErrorFor != nil && s.opts.ErrorFor(it.customID) {
			line, _ := json.Marshal(map[string]any{"id": "batch_req_" + id, "custom_id": it.customID, "error": nil,
				"response": map[string]any{"status_code": 400, "request_id": "req_" + id, "body": map[string]any{
					"error": map[string]any{"message": "The fake refused request " + it.customID + ".", "type": "invalid_request_error", "param": nil, "code": nil}}}})
			errLines = append(errLines, line)
			return line, false
		}
		resp, u, err := s.openaiAnswer(it.body, id)
		if err != nil {
			line, _ := json.Marshal(map[string]any{"id": "batch_req_" + id, "custom_id": it.customID, "error": nil,
				"response": map[string]any{"status_code": 400, "request_id": "req_" + id, "body": map[string]any{
					"error": map[string]any{"message": err.Error(), "type": "invalid_request_error", "param": nil, "code": nil}}}})
			errLines = append(errLines, line)
			return line, false
		}
		s.batchUsage.add(u)
		line, _ := json.Marshal(map[string]any{"id": "batch_req_" + id, "custom_id": it.customID, "error": nil,
			"response": map[string]any{"status_code": 200, "request_id": "req_" + id, "body": resp}})
		outLines = append(outLines, line)
		return line, true
	}, func(it *item) []byte {
		if status != "expired" {
			return nil // completed: none; cancelled: left out
		}
		line, _ := json.Marshal(map[string]any{"id": "batch_req_" + s.nextID(), "custom_id": it.customID, "response": nil,
			"error": map[string]any{"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
		errLines = append(errLines, line)
		return line
	})
	if s.opts.Shuffle {
		s.rng.Shuffle(len(outLines), func(i, j int) { outLines[i], outLines[j] = outLines[j], outLines[i] })
		s.rng.Shuffle(len(errLines), func(i, j int) { errLines[i], errLines[j] = errLines[j], errLines[i] })
	}
	if len(outLines) > 0 {
		b.outputFile = s.newFile("batch_output", outLines)
	}
	if len(errLines) > 0 {
		b.errorFile = s.newFile("batch_error", errLines)
	}
}

// poll counts a GET of a batch; false when PollError answers 500.
func (s *Server) poll(w http.ResponseWriter, c *batchCommon, anthropic bool) bool {
	c.polls++
	if s.opts.PollError != nil && s.opts.PollError(c.no, c.polls) {
		if anthropic {
			antError(w, http.StatusInternalServerError, "api_error", "Internal server error (scripted)")
		} else {
			oaError(w, http.StatusInternalServerError, "server_error", "The server had an error (scripted).")
		}
		return false
	}
	return true
}

func (s *Server) getOpenAI(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.openai[id]
	if b == nil {
		oaError(w, http.StatusNotFound, "not_found", "No such batch: "+id)
		return
	}
	if !s.poll(w, &b.batchCommon, false) {
		return
	}
	n := len(b.items)
	switch b.status {
	case "validating":
		if len(b.failMessages) > 0 {
			b.status = "failed"
			b.ended = true
		} else {
			b.status = "in_progress"
		}
	case "in_progress":
		b.status = "finalizing"
	case "finalizing":
		if b.outcome == Expire {
			s.finishOpenAI(b, "expired", n/2)
		} else {
			s.finishOpenAI(b, "completed", n)
		}
	case "cancelling":
		ran := n / 2
		if len(b.failMessages) > 0 {
			ran = 0 // cancelled before a failing validation ended
		}
		s.finishOpenAI(b, "cancelled", ran)
	}
	writeJSON(w, http.StatusOK, s.oaObject(b))
}

func (s *Server) cancelOpenAI(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.openai[id]
	if b == nil {
		oaError(w, http.StatusNotFound, "not_found", "No such batch: "+id)
		return
	}
	if b.ended {
		oaError(w, http.StatusConflict, "batch_not_cancellable", "Cannot cancel a batch with status "+b.status+".")
		return
	}
	b.cancel = true
	b.status = "cancelling"
	writeJSON(w, http.StatusOK, s.oaObject(b))
}

// page is one page of a newest-first list after the id after.
func page(ids []string, after string, limit int) (out []string, more bool) {
	start := 0
	if after != "" {
		start = len(ids)
		for i, id := range ids {
			if id == after {
				start = i + 1
			}
		}
	}
	end := min(start+limit, len(ids))
	return ids[start:end], end < len(ids)
}

// newestFirst is ids reversed.
func newestFirst(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[len(ids)-1-i] = id
	}
	return out
}

func limitOf(r *http.Request) int {
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 || limit > 100 {
		limit = 20
	}
	return limit
}

func (s *Server) listOpenAI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, more := page(newestFirst(s.openaiOrder), r.URL.Query().Get("after"), limitOf(r))
	data := []any{}
	for _, id := range ids {
		data = append(data, s.oaObject(s.openai[id]))
	}
	var first, last any
	if len(ids) > 0 {
		first, last = ids[0], ids[len(ids)-1]
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more})
}

// --- Anthropic message batches ---

func (s *Server) createAnthropic(w http.ResponseWriter, r *http.Request) {
	var q struct {
		Requests []struct {
			CustomID string          `json:"custom_id"`
			Params   json.RawMessage `json:"params"`
		} `json:"requests"`
	}
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
		antError(w, http.StatusBadRequest, "invalid_request_error", "body is not JSON: "+err.Error())
		return
	}
	if len(q.Requests) == 0 {
		antError(w, http.StatusBadRequest, "invalid_request_error", "requests: at least one request is required")
		return
	}
	b := &antBatch{status: "in_progress"}
	seen := map[string]bool{}
	for i, rq := range q.Requests {
		switch {
		case !reCustomID.MatchString(rq.CustomID):
			antError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("requests.%d.custom_id: must match ^[a-zA-Z0-9_-]{1,64}$", i))
			return
		case seen[rq.CustomID]:
			antError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("requests.%d.custom_id: duplicate %s", i, rq.CustomID))
			return
		case len(rq.Params) == 0:
			antError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("requests.%d.params: required", i))
			return
		}
		seen[rq.CustomID] = true
		b.items = append(b.items, &item{customID: rq.CustomID, body: rq.Params})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batchNo++
	s.batchesTotal++
	b.no, b.id, b.created = s.batchNo, fmt.Sprintf("msgbatch_%d", s.batchNo), s.opts.Now()
	b.outcome = s.outcome(b.no)
	s.submit(b.items)
	s.anthropic[b.id] = b
	s.antOrder = append(s.antOrder, b.id)
	writeJSON(w, http.StatusOK, s.antObject(b))
}

func (s *Server) antObject(b *antBatch) map[string]any {
	var processing, succeeded, errored, canceled, expired int
	for i, it := range b.items {
		switch {
		case !b.ended:
			processing++
		case i < b.ranCount && it.ok:
			succeeded++
		case i < b.ranCount:
			errored++
		case b.cancel:
			canceled++
		default:
			expired++
		}
	}
	var ended, results any
	if b.ended {
		ended = b.created.Add(time.Minute).UTC().Format(time.RFC3339Nano)
		results = s.srv.URL + "/v1/messages/batches/" + b.id + "/results"
	}
	var cancelAt any
	if b.cancel {
		cancelAt = b.created.Add(30 * time.Second).UTC().Format(time.RFC3339Nano)
	}
	return map[string]any{
		"id": b.id, "type": "message_batch", "processing_status": b.status,
		"request_counts": map[string]any{"processing": processing, "succeeded": succeeded, "errored": errored, "canceled": canceled, "expired": expired},
		"ended_at":       ended, "created_at": b.created.UTC().Format(time.RFC3339Nano),
		"expires_at":          b.created.Add(24 * time.Hour).UTC().Format(time.RFC3339Nano),
		"cancel_initiated_at": cancelAt, "archived_at": nil, "results_url": results,
	}
}

// finishAnthropic ends b, running its first ran requests.
func (s *Server) finishAnthropic(b *antBatch, ran int) {
	b.status = "ended"
	missing := "expired"
	if b.cancel {
		missing = "canceled"
	}
	run(&b.batchCommon, ran, func(it *item) ([]byte, bool) {
		id := s.nextID()
		errored := func(msg string) []byte {
			line, _ := json.Marshal(map[string]any{"custom_id": it.customID, "result": map[string]any{"type": "errored",
				"error": map[string]any{"type": "error", "error": map[string]any{"type": "invalid_request_error", "message": msg}}}})
			return line
		}
		if b.outcome == Fail || s.opts.ErrorFor != nil && s.opts.ErrorFor(it.customID) {
			return errored("The fake refused request " + it.customID + "."), false
		}
		resp, u, err := s.anthropicAnswer(it.body, id)
		if err != nil {
			return errored(err.Error()), false
		}
		s.batchUsage.add(u)
		line, _ := json.Marshal(map[string]any{"custom_id": it.customID, "result": map[string]any{"type": "succeeded", "message": resp}})
		return line, true
	}, func(it *item) []byte {
		line, _ := json.Marshal(map[string]any{"custom_id": it.customID, "result": map[string]any{"type": missing}})
		return line
	})
}

func (s *Server) getAnthropic(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.anthropic[id]
	if b == nil {
		antError(w, http.StatusNotFound, "not_found_error", "No such batch: "+id)
		return
	}
	if !s.poll(w, &b.batchCommon, true) {
		return
	}
	n := len(b.items)
	switch {
	case b.status == "canceling":
		s.finishAnthropic(b, n/2)
	case b.status == "in_progress" && b.outcome == Expire:
		s.finishAnthropic(b, n/2)
	case b.status == "in_progress":
		s.finishAnthropic(b, n)
	}
	writeJSON(w, http.StatusOK, s.antObject(b))
}

func (s *Server) resultsAnthropic(w http.ResponseWriter, id string) {
	s.mu.Lock()
	b := s.anthropic[id]
	var lines [][]byte
	ended := b != nil && b.ended
	if ended {
		for _, it := range b.items {
			if it.result != nil {
				lines = append(lines, it.result)
			}
		}
		if s.opts.Shuffle {
			s.rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
		}
	}
	s.mu.Unlock()
	switch {
	case b == nil:
		antError(w, http.StatusNotFound, "not_found_error", "No such batch: "+id)
		return
	case !ended:
		antError(w, http.StatusConflict, "invalid_request_error", "Batch "+id+" is still processing.")
		return
	}
	w.Header().Set("Content-Type", "application/x-jsonl")
	for _, l := range lines {
		_, _ = w.Write(append(l, '\n'))
	}
}

func (s *Server) cancelAnthropic(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.anthropic[id]
	if b == nil {
		antError(w, http.StatusNotFound, "not_found_error", "No such batch: "+id)
		return
	}
	if !b.ended {
		b.cancel = true
		b.status = "canceling"
	}
	writeJSON(w, http.StatusOK, s.antObject(b))
}

func (s *Server) listAnthropic(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, more := page(newestFirst(s.antOrder), r.URL.Query().Get("after_id"), limitOf(r))
	data := []any{}
	for _, id := range ids {
		data = append(data, s.antObject(s.anthropic[id]))
	}
	var first, last any
	if len(ids) > 0 {
		first, last = ids[0], ids[len(ids)-1]
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "first_id": first, "last_id": last, "has_more": more})
}
