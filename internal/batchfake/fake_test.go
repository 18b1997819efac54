package batchfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func call(t *testing.T, s *Server, method, path string, header map[string]string, body io.Reader) (int, []byte) {
	t.Helper()
	// Errors are reported with Error, not Fatal: call runs in goroutines.
	req, err := http.NewRequest(method, s.URL()+path, body)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Error(err)
	}
	return resp.StatusCode, b
}

const key = "k-test"

var (
	oaAuth  = map[string]string{"Authorization": "Bearer " + key}
	antAuth = map[string]string{"x-api-key": key}
)

func TestLiveAnswersAndAuth(t *testing.T) {
	s := New(Options{Key: key})
	defer s.Close()
	oaBody := `{"model":"m","messages":[{"role":"system","content":"sys"},{"role":"user","content":"hello"}]}`
	code, out := call(t, s, "POST", "/v1/chat/completions", oaAuth, strings.NewReader(oaBody))
	score, reason := DefaultJudge("sys", "hello")
	var oa struct {
		Choices []struct{ Message struct{ Content string } }
		Usage   struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		}
	}
	if err := json.Unmarshal(out, &oa); err != nil || code != 200 || oa.Choices[0].Message.Content != Verdict(score, reason) ||
		oa.Usage.PromptTokens != (3+5)/4+10 || oa.Usage.CompletionTokens != 12 {
		t.Errorf("%d %s", code, out)
	}
	antBody := `{"model":"m","max_tokens":9,"system":[{"type":"text","text":"sys"}],"messages":[{"role":"user","content":"hello"}],"tools":[{"name":"verdict"}]}`
	code, out = call(t, s, "POST", "/v1/messages", antAuth, strings.NewReader(antBody))
	var ant struct {
		Content []struct {
			Type, Name string
			Input      json.RawMessage
		}
		Usage struct {
			InputTokens int64 `json:"input_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(out, &ant); err != nil || code != 200 || ant.Content[0].Type != "tool_use" || ant.Content[0].Name != "verdict" ||
		string(ant.Content[0].Input) != Verdict(score, reason) || ant.Usage.InputTokens != 12 {
		t.Errorf("%d %s", code, out)
	}
	if s.LiveCalls() != 2 || s.LiveUsage() != (Usage{Prompt: 24, Completion: 24}) {
		t.Errorf("%d %+v", s.LiveCalls(), s.LiveUsage())
	}
	// Wrong or missing keys: 401; an OpenAI header does not open Anthropic.
	for _, c := range []struct {
		path string
		h    map[string]string
	}{{"/v1/chat/completions", nil}, {"/v1/messages", oaAuth}, {"/v1/batches", map[string]string{"Authorization": "Bearer nope"}}} {
		if code, _ := call(t, s, "POST", c.path, c.h, strings.NewReader(oaBody)); code != 401 {
			t.Errorf("%s: %d", c.path, code)
		}
	}
	if s.LiveCalls() != 2 {
		t.Errorf("refused calls counted")
	}
}

func upload(t *testing.T, s *Server, lines ...string) string {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", "in.jsonl")
	for _, l := range lines {
		_, _ = io.WriteString(fw, l+"\n")
	}
	_ = mw.Close()
	h := map[string]string{"Content-Type": mw.FormDataContentType(), "Authorization": oaAuth["Authorization"]}
	code, out := call(t, s, "POST", "/v1/files", h, &buf)
	var f struct{ ID string }
	if err := json.Unmarshal(out, &f); err != nil || code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	return f.ID
}

func TestOpenAILifecycleAndList(t *testing.T) {
	s := New(Options{Key: key, PollError: func(no, poll int) bool { return no == 1 && poll == 2 }})
	defer s.Close()
	line := func(id string) string {
		return fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":%q}]}}`, id, id)
	}
	var batchIDs []string
	for i := range 3 {
		fid := upload(t, s, line("a"), line("b"))
		code, out := call(t, s, "POST", "/v1/batches", oaAuth, strings.NewReader(fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"costctl_batch":"L%d"}}`, fid, i)))
		var b struct{ ID, Status string }
		if err := json.Unmarshal(out, &b); err != nil || code != 200 || b.Status != "validating" {
			t.Fatalf("%d %s", code, out)
		}
		batchIDs = append(batchIDs, b.ID)
	}
	var statuses []string
	for range 5 {
		code, out := call(t, s, "GET", "/v1/batches/"+batchIDs[0], oaAuth, nil)
		var b struct{ Status string }
		_ = json.Unmarshal(out, &b)
		statuses = append(statuses, fmt.Sprintf("%d:%s", code, b.Status))
	}
	if got := strings.Join(statuses, " "); got != "200:in_progress 500: 200:finalizing 200:completed 200:completed" {
		t.Errorf("statuses %s", got)
	}
	// Newest first, paged with after.
	_, out := call(t, s, "GET", "/v1/batches?limit=2", oaAuth, nil)
	var page struct {
		Data []struct {
			ID       string
			Metadata map[string]string
		}
		HasMore bool   `json:"has_more"`
		LastID  string `json:"last_id"`
	}
	_ = json.Unmarshal(out, &page)
	if len(page.Data) != 2 || page.Data[0].ID != batchIDs[2] || page.Data[0].Metadata["costctl_batch"] != "L2" || !page.HasMore || page.LastID != batchIDs[1] {
		t.Errorf("page 1 %s", out)
	}
	_, out = call(t, s, "GET", "/v1/batches?limit=2&after="+page.LastID, oaAuth, nil)
	page.Data = nil
	_ = json.Unmarshal(out, &page)
	if len(page.Data) != 1 || page.Data[0].ID != batchIDs[0] || page.HasMore {
		t.Errorf("page 2 %s", out)
	}
	if s.BatchesCreated() != 3 || s.FilesUploaded() != 3 || s.Submitted("a") != 3 || s.MaxSubmitted() != 3 ||
		strings.Join(s.SubmittedIDs(), ",") != "a,b" || !strings.Contains(string(s.SubmittedBody("b")), `"content":"b"`) {
		t.Errorf("counters")
	}
	if u := s.BatchUsage(); u != (Usage{Prompt: 2 * 10, Completion: 24}) { // (0+1)/4 + 10 each
		t.Errorf("batch usage %+v", u)
	}
}

func TestAnthropicBatchRefusesBadRequests(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	for _, body := range []string{
		`{"requests":[]}`,
		`{"requests":[{"custom_id":"a b","params":{}}]}`,
		`{"requests":[{"custom_id":"a","params":{"model":"m"}},{"custom_id":"a","params":{"model":"m"}}]}`,
		`{"requests":[`,
	} {
		if code, out := call(t, s, "POST", "/v1/messages/batches", nil, strings.NewReader(body)); code != 400 {
			t.Errorf("%s: %d %s", body, code, out)
		}
	}
	if s.BatchesCreated() != 0 {
		t.Errorf("created %d", s.BatchesCreated())
	}
}

// Concurrent live calls and batches (run with -race).
func TestConcurrent(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			body := fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":"r%d"}]}`, i)
			if code, _ := call(t, s, "POST", "/v1/chat/completions", nil, strings.NewReader(body)); code != 200 {
				t.Errorf("live %d", code)
			}
			req := fmt.Sprintf(`{"requests":[{"custom_id":"c%d","params":{"model":"m","messages":[{"role":"user","content":"r"}]}}]}`, i)
			code, out := call(t, s, "POST", "/v1/messages/batches", nil, strings.NewReader(req))
			var b struct{ ID string }
			_ = json.Unmarshal(out, &b)
			if code != 200 {
				t.Errorf("batch %d", code)
			}
			call(t, s, "GET", "/v1/messages/batches/"+b.ID, nil, nil)
			call(t, s, "GET", "/v1/messages/batches/"+b.ID+"/results", nil, nil)
			_ = s.MaxSubmitted()
		})
	}
	wg.Wait()
	if s.LiveCalls() != 20 || s.BatchesCreated() != 20 || s.MaxSubmitted() != 1 {
		t.Errorf("%d %d %d", s.LiveCalls(), s.BatchesCreated(), s.MaxSubmitted())
	}
}
