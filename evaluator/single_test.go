package evaluator

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/costctl/costctl/pricing"
)

func TestSingleJudgeAsk(t *testing.T) {
	f := newFake(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		writeReply(w, `{"score": 1, "reason": "same facts"}`)
		return true
	})
	sj, err := NewSingleJudge(SingleJudgeConfig{Judge: &Judge{Model: "gpt-4o-mini"}, BaseURL: f.srv.URL + "/v1", APIKey: testKey,
		Table: pricing.MustDefault()})
	if err != nil {
		t.Fatal(err)
	}
	v, u, cost, err := sj.Ask(context.Background(), "Compare.", "A: 4\nB: four")
	if err != nil {
		t.Fatal(err)
	}
	if v.Score != 1 || v.Reason != "same facts" {
		t.Errorf("verdict %+v", v)
	}
	if u != (pricing.Usage{InputTokens: fakePrompt, CachedInputTokens: fakeCached, OutputTokens: fakeCompletion}) {
		t.Errorf("usage %+v", u)
	}
	if cost != oneCallCost {
		t.Errorf("cost %s, want %s", cost.Display(), oneCallCost.Display())
	}
	if n := f.requests.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	req := f.bodies[0]
	if req.Model != "gpt-4o-mini" || len(req.Messages) != 2 || req.Messages[0].Content != "Compare." ||
		!strings.HasPrefix(req.Messages[1].Content, "A: 4\nB: four\n\n") || !strings.HasSuffix(req.Messages[1].Content, AnswerInstruction) {
		t.Errorf("request %+v", req)
	}
	if f.auth[0] != "Bearer "+testKey {
		t.Errorf("auth %q", f.auth[0])
	}
	if sj.Model() != "gpt-4o-mini" || strings.Contains(sj.Endpoint(), testKey) {
		t.Errorf("model %q endpoint %q", sj.Model(), sj.Endpoint())
	}
}

func TestSingleJudgeRepairAndRetry(t *testing.T) {
	f := newFake(t, func(n int64, req openai.ChatCompletionRequest, w http.ResponseWriter, r *http.Request) bool {
		switch n {
		case 1:
			http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusServiceUnavailable)
		case 2:
			writeReply(w, "not json "+testKey)
		default:
			writeReply(w, `{"score": 0, "reason": "differ; key `+testKey+`"}`)
		}
		return true
	})
	sj, err := NewSingleJudge(SingleJudgeConfig{Judge: &Judge{Model: "gpt-4o-mini"}, BaseURL: f.srv.URL + "/v1", APIKey: testKey,
		Table: pricing.MustDefault(), MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	sj.rp.sleep = func(context.Context, time.Duration) error { return nil }
	v, u, cost, err := sj.Ask(context.Background(), "Compare.", "A\nB")
	if err != nil {
		t.Fatal(err)
	}
	if v.Score != 0 || strings.Contains(v.Reason, testKey) {
		t.Errorf("verdict %+v", v)
	}
	if u.InputTokens != 2*fakePrompt || u.OutputTokens != 2*fakeCompletion || cost != 2*oneCallCost {
		t.Errorf("usage %+v cost %s: want two billed calls", u, cost.Display())
	}
	if n := f.requests.Load(); n != 3 || len(f.bodies[2].Messages) != 4 {
		t.Errorf("%d requests (last has %d messages), want 3 with a repair turn", n, len(f.bodies[len(f.bodies)-1].Messages))
	}
}

func TestSingleJudgeUnpriced(t *testing.T) {
	if _, err := NewSingleJudge(SingleJudgeConfig{Judge: &Judge{Model: "no-such-model-xyz"}, Table: pricing.MustDefault()}); err == nil {
		t.Fatal("an unpriced judge was accepted")
	}
}

// TestSingleJudgeMaxTokens: the output bound a SingleJudge sends, which the
// proxy reserves against a budget: the config's, else the default.
func TestSingleJudgeMaxTokens(t *testing.T) {
	for _, tc := range []struct {
		model string
		set   int
		want  int64
	}{{"gpt-4o-mini", 0, DefaultMaxTokens}, {"gpt-4o-mini", 77, 77}, {"o3-mini", 0, DefaultReasoningMaxTokens}} {
		j, err := NewSingleJudge(SingleJudgeConfig{Judge: &Judge{Model: tc.model, MaxTokens: tc.set}, Table: pricing.MustDefault()})
		if err != nil {
			t.Fatal(err)
		}
		if got := j.MaxTokens(); got != tc.want {
			t.Errorf("%s max_tokens %d: MaxTokens() = %d, want %d", tc.model, tc.set, got, tc.want)
		}
	}
}
