package evaluator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/costctl/costctl/internal/batchfake"
	"github.com/costctl/costctl/pricing"
)

// antFakeAttempt is the Attempt the fake's defaults answer for p through
// the Anthropic API (input_tokens only: the whole prompt as plain input).
func antFakeAttempt(p Prompt) Attempt {
	score, reason := batchfake.DefaultJudge(p.System, p.User)
	u := batchfake.DefaultUsage(p.System, p.User)
	return Attempt{Sent: true, Text: batchfake.Verdict(score, reason), Usage: pricing.Usage{InputTokens: u.Prompt, OutputTokens: u.Completion}, HasUsage: true}
}

func TestAnthropicBatchLineIsTheLiveRequest(t *testing.T) {
	for _, c := range []struct {
		json, reasoning bool
	}{{true, false}, {false, false}, {true, true}} {
		t.Run(fmt.Sprintf("json=%v,reasoning=%v", c.json, c.reasoning), func(t *testing.T) {
			f := batchfake.New(batchfake.Options{Key: batchKey})
			defer f.Close()
			j := batchJudge(t, ProviderAnthropic, "claude-haiku-4-5", c.reasoning)
			j.JSONMode = &c.json
			p, b := batchSetup(t, f, j, f.AnthropicBaseURL(), batchKey)
			prompts := []Prompt{
				{System: "Rate it.", User: "an answer"},
				{System: "Rate it.", User: "an answer", Repair: &Repair{Reply: "", Instruction: "Answer with JSON."}},
			}
			for i, pr := range prompts {
				a, err := p.Send(context.Background(), pr)
				if err != nil {
					t.Fatal(err)
				}
				live := f.LiveBodies()[i]
				line, err := b.Line(fmt.Sprintf("%064x", i), pr)
				if err != nil {
					t.Fatal(err)
				}
				var l struct {
					CustomID string          `json:"custom_id"`
					Params   json.RawMessage `json:"params"`
				}
				if err := json.Unmarshal(line, &l); err != nil {
					t.Fatal(err)
				}
				if l.CustomID != fmt.Sprintf("%064x", i) || !bytes.Equal(l.Params, live) {
					t.Errorf("line\n%s\nlive body\n%s", line, live)
				}
				if bytes.Contains(l.Params, []byte(`"temperature":0`)) == c.reasoning || bytes.Contains(l.Params, []byte(`"tool_choice"`)) != c.json {
					t.Errorf("params %s", l.Params)
				}
				// The batch answers the same request as the live call did.
				info := submitAll(t, b, "l", []string{l.CustomID}, []Prompt{pr})
				_, info = pollStates(t, b, info.RemoteID)
				res := collect(t, b, info)
				if len(res) != 1 || res[0].Attempt != a || res[0].Err != "" {
					t.Errorf("batch %+v, live %+v", res, a)
				}
			}
		})
	}
}

func TestAnthropicBatchCompleted(t *testing.T) {
	ids, ps := batchPrompts(5)
	f := batchfake.New(batchfake.Options{Key: batchKey, Shuffle: true, Seed: 3, ErrorFor: func(id string) bool { return id == ids[1] }})
	defer f.Close()
	j := batchJudge(t, ProviderAnthropic, "claude-haiku-4-5", false)
	// A base URL given with its /v1 works too.
	_, b := batchSetup(t, f, j, f.AnthropicBaseURL()+"/v1/", batchKey)
	if r, n := b.Limits(); r != 100_000 || n != 256_000_000-1024 {
		t.Errorf("limits %d %d", r, n)
	}
	info := submitAll(t, b, "run1-b1", ids, ps)
	if info.RemoteID != "msgbatch_1" || info.State != BatchInProgress || info.RawState != "in_progress" || info.Total != 5 || info.Ended {
		t.Errorf("submitted %+v", info)
	}
	states, info := pollStates(t, b, info.RemoteID)
	want := BatchInfo{RemoteID: "msgbatch_1", State: BatchCompleted, RawState: "ended", Ended: true, Total: 5, Succeeded: 4, Errored: 1,
		ResultsURL: f.URL() + "/v1/messages/batches/msgbatch_1/results"}
	if strings.Join(states, " ") != "completed" || info != want {
		t.Errorf("%v %+v", states, info)
	}
	res := collect(t, b, info)
	got := map[string]BatchResult{}
	var order []string
	for _, r := range res {
		got[r.CustomID] = r
		order = append(order, r.CustomID)
	}
	if len(res) != 5 || len(got) != 5 {
		t.Fatalf("results %+v", res)
	}
	if strings.Join(order, ",") == strings.Join(ids, ",") {
		t.Errorf("results not shuffled")
	}
	for i, id := range ids {
		want := BatchResult{CustomID: id, Attempt: antFakeAttempt(ps[i])}
		if i == 1 {
			want = BatchResult{CustomID: id, Err: "invalid_request_error: The fake refused request " + id + "."}
		}
		if got[id] != want {
			t.Errorf("%d: %+v, want %+v", i, got[id], want)
		}
	}
	if f.BatchesCreated() != 1 || f.MaxSubmitted() != 1 || f.FilesUploaded() != 0 {
		t.Errorf("counters %d %d %d", f.BatchesCreated(), f.MaxSubmitted(), f.FilesUploaded())
	}
	if u := f.BatchUsage(); u.Completion != 4*12 {
		t.Errorf("batch usage %+v", u)
	}
}

// Cache reads and writes in a result's usage are read as the live call
// reads them.
func TestAnthropicBatchCacheUsage(t *testing.T) {
	f := batchfake.New(batchfake.Options{Key: batchKey, Usage: func(system, user string) batchfake.Usage {
		return batchfake.Usage{Prompt: 1000, Completion: 20, CacheRead: 600, CacheWrite: 300}
	}})
	defer f.Close()
	p, b := batchSetup(t, f, batchJudge(t, ProviderAnthropic, "claude-haiku-4-5", false), f.AnthropicBaseURL(), batchKey)
	ids, ps := batchPrompts(1)
	info := submitAll(t, b, "l", ids, ps)
	_, info = pollStates(t, b, info.RemoteID)
	res := collect(t, b, info)
	want := pricing.Usage{InputTokens: 1000, CachedInputTokens: 600, CacheWrite5mTokens: 300, OutputTokens: 20}
	if len(res) != 1 || res[0].Attempt.Usage != want || !res[0].Attempt.HasUsage {
		t.Errorf("%+v", res)
	}
	live, err := p.Send(context.Background(), ps[0])
	if err != nil || live != res[0].Attempt {
		t.Errorf("live %+v %v", live, err)
	}
}

func TestAnthropicBatchExpiredAndCancelled(t *testing.T) {
	f := batchfake.New(batchfake.Options{Key: batchKey, Script: []batchfake.Outcome{batchfake.Expire}})
	defer f.Close()
	_, b := batchSetup(t, f, batchJudge(t, ProviderAnthropic, "claude-haiku-4-5", false), f.AnthropicBaseURL(), batchKey)
	ids, ps := batchPrompts(4)

	info := submitAll(t, b, "l", ids, ps)
	states, info := pollStates(t, b, info.RemoteID)
	if strings.Join(states, " ") != "expired" || info.State != BatchExpired || info.Succeeded != 2 || info.Expired != 2 || info.Total != 4 {
		t.Errorf("%v %+v", states, info)
	}
	want := []BatchResult{
		{CustomID: ids[0], Attempt: antFakeAttempt(ps[0])},
		{CustomID: ids[1], Attempt: antFakeAttempt(ps[1])},
		{CustomID: ids[2], Missing: true},
		{CustomID: ids[3], Missing: true},
	}
	if res := collect(t, b, info); fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("expired results\n%+v\nwant\n%+v", res, want)
	}

	info = submitAll(t, b, "l2", ids, ps)
	c, err := b.Cancel(context.Background(), info.RemoteID)
	if err != nil || c.State != BatchCancelling || c.RawState != "canceling" || c.Ended {
		t.Fatalf("cancel %+v %v", c, err)
	}
	states, info = pollStates(t, b, info.RemoteID)
	if strings.Join(states, " ") != "cancelled" || info.State != BatchCancelled || info.Cancelled != 2 || info.Succeeded != 2 {
		t.Errorf("%v %+v", states, info)
	}
	if res := collect(t, b, info); fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("cancelled results\n%+v\nwant\n%+v", res, want)
	}
	if f.Submitted(ids[0]) != 2 {
		t.Errorf("submitted %d", f.Submitted(ids[0]))
	}
}

func TestAnthropicBatchFind(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := now
	f := batchfake.New(batchfake.Options{Key: batchKey, Now: func() time.Time { return clock }})
	defer f.Close()
	_, b := batchSetup(t, f, batchJudge(t, ProviderAnthropic, "claude-haiku-4-5", false), f.AnthropicBaseURL(), batchKey)
	ids, ps := batchPrompts(3)
	ctx := context.Background()

	// Old batches of 3 (before the window) and many recent ones of 1, on
	// several pages.
	clock = now.Add(-time.Hour)
	submitAll(t, b, "old", ids, ps)
	clock = now
	for range 120 {
		submitAll(t, b, "one", ids[:1], ps[:1])
	}
	_, ok, err := b.Find(ctx, "x", now.Add(-30*time.Second), 3)
	if err != nil || ok {
		t.Errorf("find before the batch: %v %v", ok, err)
	}
	clock = now.Add(10 * time.Second)
	submitAll(t, b, "mine", ids[:2], ps[:2])
	info, ok, err := b.Find(ctx, "x", now.Add(10*time.Second), 2)
	if err != nil || !ok || info.RemoteID != "msgbatch_122" || info.Total != 2 {
		t.Errorf("find: %+v %v %v", info, ok, err)
	}
	// Within the minute's slack.
	info, ok, err = b.Find(ctx, "x", now.Add(50*time.Second), 2)
	if err != nil || !ok || info.RemoteID != "msgbatch_122" {
		t.Errorf("find with slack: %+v %v %v", info, ok, err)
	}
	_, _, err = b.Find(ctx, "x", now, 1)
	var fe *FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "120 Anthropic batches of 1 requests") || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("ambiguous: %v", err)
	}
}

func TestAnthropicBatchErrors(t *testing.T) {
	f := batchfake.New(batchfake.Options{Key: batchKey, PollError: func(_, poll int) bool { return poll == 1 }})
	defer f.Close()
	j := batchJudge(t, ProviderAnthropic, "claude-haiku-4-5", false)
	ids, ps := batchPrompts(3)

	wrong := "sk-ant-wrong-SECRET-9876543210"
	_, bad := batchSetup(t, f, j, f.AnthropicBaseURL(), wrong)
	in := batchInput(t, bad, ids, ps)
	_, err := bad.Submit(context.Background(), "l", bytes.NewReader(in), 3, int64(len(in)))
	var fe *FatalError
	if !errors.As(err, &fe) || strings.Contains(err.Error(), wrong) ||
		err.Error() != `creating the batch: judge "j": the Anthropic Batch API refused the API key (HTTP 401: invalid x-api-key); check ANTHROPIC_API_KEY or the judge's api_key_env` {
		t.Errorf("bad key: %v", err)
	}

	_, b := batchSetup(t, f, j, f.AnthropicBaseURL(), batchKey)
	// Miscounted input aborts the request: no batch.
	for _, c := range []struct {
		in   []byte
		n    int
		size int64
	}{
		{in, 2, int64(len(in))},                              // more lines than n
		{in, 4, int64(len(in))},                              // fewer
		{in[:len(in)-1], 3, int64(len(in)) - 1},              // no final newline
		{append([]byte("\n"), in...), 3, int64(len(in)) + 1}, // a blank line
		{in, 3, int64(len(in)) + 3},                          // size too big
	} {
		if _, err := b.Submit(context.Background(), "l", bytes.NewReader(c.in), c.n, c.size); err == nil {
			t.Errorf("n %d size %d: no error", c.n, c.size)
		}
	}
	if f.BatchesCreated() != 0 {
		t.Errorf("%d batches created from bad input", f.BatchesCreated())
	}
	info := submitAll(t, b, "l", ids, ps)
	_, err = b.Status(context.Background(), info.RemoteID)
	if err == nil || errors.As(err, &fe) || err.Error() != "Anthropic batch API HTTP 500: Internal server error (scripted)" {
		t.Errorf("500: %v", err)
	}
	if states, _ := pollStates(t, b, info.RemoteID); strings.Join(states, " ") != "completed" {
		t.Errorf("states %v", states)
	}
	_, err = b.Status(context.Background(), "msgbatch_nope")
	if !errors.As(err, &fe) || err.Error() != `judge "j": the Anthropic endpoint has no Batch API there, or not this batch (HTTP 404: No such batch: msgbatch_nope); check base_url` {
		t.Errorf("404: %v", err)
	}
}

// A few MB of requests are streamed into the body from a pipe.
func TestAnthropicBatchLarge(t *testing.T) {
	f := batchfake.New(batchfake.Options{Key: batchKey})
	defer f.Close()
	_, b := batchSetup(t, f, batchJudge(t, ProviderAnthropic, "claude-haiku-4-5", false), f.AnthropicBaseURL(), batchKey)
	const n = 3000
	ids, ps := batchPrompts(n)
	pad := strings.Repeat("y", 1500)
	lines := make([][]byte, n)
	var size int64
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
	if err != nil || size < 4<<20 {
		t.Fatalf("%v (%d bytes)", err, size)
	}
	_, info = pollStates(t, b, info.RemoteID)
	if info.Total != n || info.Succeeded != n {
		t.Fatalf("%+v", info)
	}
	count := 0
	if err := b.Results(context.Background(), info, func(r BatchResult) error {
		if r.Attempt != antFakeAttempt(ps[count]) {
			t.Errorf("%d: %+v", count, r)
		}
		count++
		return nil
	}); err != nil || count != n {
		t.Errorf("results %d %v", count, err)
	}
}
