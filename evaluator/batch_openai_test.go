package evaluator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/internal/batchfake"
	"github.com/costctl/costctl/pricing"
)

const batchKey = "sk-batch-test-SECRET-never-leak-0123456789"

// batchJudge is a judge of model on provider, priced from the default table.
func batchJudge(t *testing.T, provider, model string, reasoning bool) *Judge {
	t.Helper()
	price, err := pricing.MustDefault().Lookup(model)
	if err != nil {
		t.Fatal(err)
	}
	maxTokens := 256
	if reasoning {
		maxTokens = 4096
	}
	return &Judge{Name: "j", Provider: provider, Model: model, MaxTokens: maxTokens, Reasoning: &reasoning, Price: price}
}

// batchSetup builds the live provider and the batch client of j against f.
func batchSetup(t *testing.T, f *batchfake.Server, j *Judge, base, key string) (Provider, batchAPI) {
	t.Helper()
	def := providers[j.ProviderName()]
	p, err := def.new(ProviderConfig{Judge: j, BaseURL: base, APIKey: key, HTTPClient: f.Client()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := def.batch(BatchConfig{Judge: j, BaseURL: base, APIKey: key, HTTPClient: f.Client(), Provider: p})
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

// batchPrompts are n prompts and their custom_ids (64 hex digits).
func batchPrompts(n int) ([]string, []Prompt) {
	ids := make([]string, n)
	ps := make([]Prompt, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%064x", i+1)
		ps[i] = Prompt{System: "Rate the answer from 0 to 1.", User: fmt.Sprintf("## Input\nquestion %d\n\n## Output\nanswer %d", i, i)}
	}
	return ids, ps
}

// batchInput is the lines of ps, each with its newline.
func batchInput(t *testing.T, b batchAPI, ids []string, ps []Prompt) []byte {
	t.Helper()
	var buf bytes.Buffer
	for i, p := range ps {
		line, err := b.Line(ids[i], p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.ContainsRune(line, '\n') {
			t.Fatalf("line has a newline: %s", line)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func submitAll(t *testing.T, b batchAPI, label string, ids []string, ps []Prompt) BatchInfo {
	t.Helper()
	in := batchInput(t, b, ids, ps)
	info, err := b.Submit(context.Background(), label, bytes.NewReader(in), len(ps), int64(len(in)))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// pollStates polls until the batch ends and returns the states seen.
func pollStates(t *testing.T, b batchAPI, id string) ([]string, BatchInfo) {
	t.Helper()
	var states []string
	for range 10 {
		info, err := b.Status(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, info.State)
		if info.Ended {
			return states, info
		}
	}
	t.Fatalf("batch %s never ended: %v", id, states)
	return nil, BatchInfo{}
}

func collect(t *testing.T, b batchAPI, info BatchInfo) []BatchResult {
	t.Helper()
	var out []BatchResult
	if err := b.Results(context.Background(), info, func(r BatchResult) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// fakeAttempt is the Attempt the fake's defaults answer for p (OpenAI:
// the whole prompt as prompt_tokens).
func fakeAttempt(p Prompt) Attempt {
	score, reason := batchfake.DefaultJudge(p.System, p.User)
	u := batchfake.DefaultUsage(p.System, p.User)
	text := batchfake.Verdict(score, reason)
	return Attempt{Sent: true, Text: text, Usage: pricing.Usage{InputTokens: u.Prompt, CachedInputTokens: u.CacheRead, OutputTokens: u.Completion}, HasUsage: true}
}

func TestOpenAIBatchLineIsTheLiveRequest(t *testing.T) {
	for _, c := range []struct {
		model     string
		reasoning bool
	}{{"gpt-4o-mini", false}, {"gpt-5-mini", true}} {
		t.Run(c.model, func(t *testing.T) {
			f := batchfake.New(batchfake.Options{Key: batchKey})
			defer f.Close()
			j := batchJudge(t, ProviderOpenAI, c.model, c.reasoning)
			p, b := batchSetup(t, f, j, f.OpenAIBaseURL(), batchKey)
			prompts := []Prompt{
				{System: "Rate it.", User: "an answer"},
				{System: "Rate it.", User: "an answer", Repair: &Repair{Reply: "oops", Instruction: "Answer with JSON."}},
			}
			for i, pr := range prompts {
				if _, err := p.Send(context.Background(), pr); err != nil {
					t.Fatal(err)
				}
				live := f.LiveBodies()[i]
				line, err := b.Line("cid", pr)
				if err != nil {
					t.Fatal(err)
				}
				var l struct {
					CustomID string          `json:"custom_id"`
					Method   string          `json:"method"`
					URL      string          `json:"url"`
					Body     json.RawMessage `json:"body"`
				}
				if err := json.Unmarshal(line, &l); err != nil {
					t.Fatal(err)
				}
				if l.CustomID != "cid" || l.Method != "POST" || l.URL != "/v1/chat/completions" {
					t.Errorf("line %s", line)
				}
				if !bytes.Equal(l.Body, live) {
					t.Errorf("batch body\n%s\nlive body\n%s", l.Body, live)
				}
				hasTemp := bytes.Contains(l.Body, []byte(`"temperature":0,`))
				if hasTemp == c.reasoning {
					t.Errorf("temperature in %s (reasoning %v)", l.Body, c.reasoning)
				}
			}
		})
	}
}

func TestOpenAIBatchCompleted(t *testing.T) {
	ids, ps := batchPrompts(5)
	f := batchfake.New(batchfake.Options{Key: batchKey, Shuffle: true, Seed: 7, ErrorFor: func(id string) bool { return id == ids[2] }})
	defer f.Close()
	j := batchJudge(t, ProviderOpenAI, "gpt-4o-mini", false)
	p, b := batchSetup(t, f, j, f.OpenAIBaseURL(), batchKey)

	if r, n := b.Limits(); r != 50_000 || n != 200_000_000 {
		t.Errorf("limits %d %d", r, n)
	}
	info := submitAll(t, b, "run1-b1", ids, ps)
	if info.RemoteID != "batch_1" || info.State != BatchValidating || info.RawState != "validating" || info.Ended || info.InputFileID != "file-1" {
		t.Errorf("submitted %+v", info)
	}
	states, info := pollStates(t, b, info.RemoteID)
	if strings.Join(states, " ") != "in_progress finalizing completed" {
		t.Errorf("states %v", states)
	}
	if info.State != BatchCompleted || info.Total != 5 || info.Succeeded != 4 || info.Errored != 1 || info.OutputFileID == "" || info.ErrorFileID == "" || info.Error != "" {
		t.Errorf("ended %+v", info)
	}
	res := collect(t, b, info)
	var order []string
	got := map[string]BatchResult{}
	for _, r := range res {
		order = append(order, r.CustomID)
		got[r.CustomID] = r
	}
	if len(res) != 5 || len(got) != 5 {
		t.Fatalf("results %+v", res)
	}
	if sort.StringsAreSorted(order[:4]) { // the output file's 4 lines, then the error file's
		t.Errorf("output not shuffled: %v", order)
	}
	for i, id := range ids {
		r := got[id]
		if i == 2 {
			want := BatchResult{CustomID: id, Err: "HTTP 400: The fake refused request " + id + "."}
			if r != want {
				t.Errorf("errored %+v", r)
			}
			continue
		}
		if r.Err != "" || r.Missing || r.Attempt != fakeAttempt(ps[i]) {
			t.Errorf("%d: %+v, want %+v", i, r, fakeAttempt(ps[i]))
		}
		// The same prompt sent live reads the same.
		live, err := p.Send(context.Background(), ps[i])
		if err != nil || live != r.Attempt {
			t.Errorf("%d: live %+v %v, batch %+v", i, live, err, r.Attempt)
		}
	}
	if f.FilesUploaded() != 1 || f.BatchesCreated() != 1 || f.MaxSubmitted() != 1 || f.Submitted(ids[4]) != 1 {
		t.Errorf("counters: files %d batches %d max %d", f.FilesUploaded(), f.BatchesCreated(), f.MaxSubmitted())
	}
	if lu, bu := f.LiveUsage(), f.BatchUsage(); lu != bu || bu.Completion != 4*12 {
		t.Errorf("usage live %+v batch %+v", lu, bu)
	}
}

func TestOpenAIBatchExpiredHalf(t *testing.T) {
	f := batchfake.New(batchfake.Options{Key: batchKey, Script: []batchfake.Outcome{batchfake.Expire}})
	defer f.Close()
	_, b := batchSetup(t, f, batchJudge(t, ProviderOpenAI, "gpt-4o-mini", false), f.OpenAIBaseURL(), batchKey)
	ids, ps := batchPrompts(4)
	info := submitAll(t, b, "l", ids, ps)
	states, info := pollStates(t, b, info.RemoteID)
	if strings.Join(states, " ") != "in_progress finalizing expired" || info.State != BatchExpired || info.RawState != "expired" || info.Succeeded != 2 {
		t.Errorf("%v %+v", states, info)
	}
	res := collect(t, b, info)
	want := []BatchResult{
		{CustomID: ids[0], Attempt: fakeAttempt(ps[0])},
		{CustomID: ids[1], Attempt: fakeAttempt(ps[1])},
		{CustomID: ids[2], Missing: true},
		{CustomID: ids[3], Missing: true},
	}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("results\n%+v\nwant\n%+v", res, want)
	}
}

func TestOpenAIBatchFailed(t *testing.T) {
	f := batchfake.New(batchfake.Options{Key: batchKey, Script: []batchfake.Outcome{batchfake.Complete, batchfake.Fail}})
	defer f.Close()
	_, b := batchSetup(t, f, batchJudge(t, ProviderOpenAI, "gpt-4o-mini", false), f.OpenAIBaseURL(), batchKey)
	ids, ps := batchPrompts(2)
	submitAll(t, b, "first", ids, ps)
	info := submitAll(t, b, "second", ids, ps)
	states, info := pollStates(t, b, info.RemoteID)
	want := BatchInfo{RemoteID: "batch_2", State: BatchFailed, RawState: "failed", Ended: true, InputFileID: info.InputFileID,
		Error: "The batch was refused by the fake (scripted failure)."}
	if strings.Join(states, " ") != "failed" || info != want {
		t.Errorf("%v %+v", states, info)
	}
	if res := collect(t, b, info); len(res) != 0 {
		t.Errorf("results of a failed batch: %+v", res)
	}
	if f.Submitted(ids[0]) != 2 {
		t.Errorf("submitted %d", f.Submitted(ids[0]))
	}
}

func TestOpenAIBatchCancel(t *testing.T) {
	f := batchfake.New(batchfake.Options{Key: batchKey})
	defer f.Close()
	_, b := batchSetup(t, f, batchJudge(t, ProviderOpenAI, "gpt-4o-mini", false), f.OpenAIBaseURL(), batchKey)
	ids, ps := batchPrompts(4)
	info := submitAll(t, b, "l", ids, ps)
	if _, err := b.Status(context.Background(), info.RemoteID); err != nil {
		t.Fatal(err)
	}
	c, err := b.Cancel(context.Background(), info.RemoteID)
	if err != nil || c.State != BatchCancelling || c.Ended {
		t.Fatalf("cancel %+v %v", c, err)
	}
	states, info := pollStates(t, b, info.RemoteID)
	if strings.Join(states, " ") != "cancelled" || info.State != BatchCancelled || info.Succeeded != 2 {
		t.Errorf("%v %+v", states, info)
	}
	res := collect(t, b, info)
	want := []BatchResult{{CustomID: ids[0], Attempt: fakeAttempt(ps[0])}, {CustomID: ids[1], Attempt: fakeAttempt(ps[1])}}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("results %+v", res)
	}
	// An ended batch cannot be cancelled: a plain (retryable) error.
	_, err = b.Cancel(context.Background(), info.RemoteID)
	var fe *FatalError
	if err == nil || errors.As(err, &fe) || err.Error() != "OpenAI batch API HTTP 409: Cannot cancel a batch with status cancelled." {
		t.Errorf("cancel again: %v", err)
	}
}

func TestOpenAIBatchFind(t *testing.T) {
	f := batchfake.New(batchfake.Options{Key: batchKey})
	defer f.Close()
	_, b := batchSetup(t, f, batchJudge(t, ProviderOpenAI, "gpt-4o-mini", false), f.OpenAIBaseURL(), batchKey)
	ids, ps := batchPrompts(1)
	for i := range 150 { // two list pages
		submitAll(t, b, fmt.Sprintf("label-%d", i), ids, ps)
	}
	info, ok, err := b.Find(context.Background(), "label-3", time.Time{}, 1)
	if err != nil || !ok || info.RemoteID != "batch_4" || info.State != BatchValidating {
		t.Errorf("find: %+v %v %v", info, ok, err)
	}
	_, ok, err = b.Find(context.Background(), "label-none", time.Time{}, 1)
	if err != nil || ok {
		t.Errorf("find of no batch: %v %v", ok, err)
	}
}

func TestOpenAIBatchErrors(t *testing.T) {
	f := batchfake.New(batchfake.Options{Key: batchKey, PollError: func(_, poll int) bool { return poll == 1 }})
	defer f.Close()
	j := batchJudge(t, ProviderOpenAI, "gpt-4o-mini", false)
	ids, ps := batchPrompts(2)

	// A refused key: fatal, naming the variable, without the key.
	wrong := "sk-wrong-SECRET-key-9876543210"
	_, bad := batchSetup(t, f, j, f.OpenAIBaseURL(), wrong)
	in := batchInput(t, bad, ids, ps)
	_, err := bad.Submit(context.Background(), "l", bytes.NewReader(in), 2, int64(len(in)))
	var fe *FatalError
	if !errors.As(err, &fe) || strings.Contains(err.Error(), wrong) ||
		err.Error() != `uploading the batch input: judge "j": the OpenAI Batch API refused the API key (HTTP 401: Incorrect API key provided.); check OPENAI_API_KEY or the judge's api_key_env` {
		t.Errorf("bad key: %v", err)
	}
	// No Batch API at the base URL: fatal.
	_, nob := batchSetup(t, f, j, f.URL()+"/elsewhere", batchKey)
	_, err = nob.Status(context.Background(), "batch_1")
	if !errors.As(err, &fe) || err.Error() != `judge "j": the OpenAI endpoint has no Batch API there, or not this batch (HTTP 404: no route GET /elsewhere/batches/batch_1); check base_url` {
		t.Errorf("404: %v", err)
	}

	_, b := batchSetup(t, f, j, f.OpenAIBaseURL(), batchKey)
	// A size that is not the input's: refused, no batch created.
	_, err = b.Submit(context.Background(), "l", bytes.NewReader(in), 2, int64(len(in))+5)
	if err == nil || f.BatchesCreated() != 0 {
		t.Errorf("short input: %v, %d batches", err, f.BatchesCreated())
	}
	_, err = b.Submit(context.Background(), "l", bytes.NewReader(in), 2, int64(len(in))-5)
	if err == nil || f.BatchesCreated() != 0 {
		t.Errorf("long input: %v, %d batches", err, f.BatchesCreated())
	}
	// A 500 on a poll is a plain error; the next poll goes on.
	info := submitAll(t, b, "l", ids, ps)
	_, err = b.Status(context.Background(), info.RemoteID)
	if err == nil || errors.As(err, &fe) || err.Error() != "OpenAI batch API HTTP 500: The server had an error (scripted)." {
		t.Errorf("500: %v", err)
	}
	states, _ := pollStates(t, b, info.RemoteID)
	if strings.Join(states, " ") != "in_progress finalizing completed" {
		t.Errorf("states after a 500: %v", states)
	}
	// A network failure is a plain error without the URL.
	f2 := batchfake.New(batchfake.Options{})
	_, gone := batchSetup(t, f2, j, "http://user:pw-SECRET@"+strings.TrimPrefix(f2.OpenAIBaseURL(), "http://"), batchKey)
	f2.Close()
	_, err = gone.Status(context.Background(), "batch_1")
	if err == nil || errors.As(err, &fe) || strings.Contains(err.Error(), "SECRET") || !strings.HasPrefix(err.Error(), "OpenAI batch API request failed: ") {
		t.Errorf("network: %v", err)
	}
	// Results of a batch not ended are refused.
	if err := b.Results(context.Background(), BatchInfo{RemoteID: "x", RawState: "in_progress"}, nil); err == nil {
		t.Error("results of a running batch")
	}
}

// A few MB of input is streamed through a pipe, and a result line far past
// 64 KiB is read whole.
func TestOpenAIBatchLarge(t *testing.T) {
	long := strings.Repeat("very long reason ", 20_000) // 340 KB
	f := batchfake.New(batchfake.Options{Key: batchKey, Judge: func(_, user string) (float64, string) {
		if strings.HasSuffix(user, "answer 0") {
			return 1, long
		}
		return 0.5, "ok"
	}})
	defer f.Close()
	_, b := batchSetup(t, f, batchJudge(t, ProviderOpenAI, "gpt-4o-mini", false), f.OpenAIBaseURL(), batchKey)
	const n = 3000
	ids, ps := batchPrompts(n)
	pad := strings.Repeat("x", 1500)
	var size int64
	lines := make([][]byte, n)
	for i := range ps {
		ps[i].User = pad + ps[i].User
		l, err := b.Line(ids[i], ps[i])
		if err != nil {
			t.Fatal(err)
		}
		lines[i] = l
		size += int64(len(l)) + 1
	}
	pr, pw := io.Pipe()
	go func() {
		for _, l := range lines {
			if _, err := pw.Write(append(l, '\n')); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	info, err := b.Submit(context.Background(), "big", pr, n, size)
	if err != nil {
		t.Fatal(err)
	}
	if size < 4<<20 {
		t.Fatalf("input only %d bytes", size)
	}
	_, info = pollStates(t, b, info.RemoteID)
	if info.Total != n || info.Succeeded != n {
		t.Fatalf("%+v", info)
	}
	count := 0
	err = b.Results(context.Background(), info, func(r BatchResult) error {
		count++
		if r.CustomID == ids[0] && r.Attempt.Text != `{"score":1,"reason":"`+long+`"}` {
			t.Errorf("long reply read as %d bytes", len(r.Attempt.Text))
		}
		return nil
	})
	if err != nil || count != n {
		t.Errorf("results %d %v", count, err)
	}
	// fn's error stops Results and is returned as is.
	stop := errors.New("stop")
	if err := b.Results(context.Background(), info, func(BatchResult) error { return stop }); err != stop {
		t.Errorf("fn error: %v", err)
	}
}
