package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costctl/costctl/evaluator"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// fakeJudge is an OpenAI-compatible judge on loopback: answers that both
// say hello are the same, else they differ; "judge-error" in the second
// answer gets a 400.
type fakeJudge struct {
	srv   *httptest.Server
	calls atomic.Int64
	mu    sync.Mutex
	users []string
}

// Usage of every fake judge reply.
const judgePrompt, judgeCompletion = 300, 15

func newFakeJudge(t *testing.T) *fakeJudge {
	j := &fakeJudge{}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.calls.Add(1)
		var req struct {
			Model    string `json:"model"`
			Messages []struct {
				Role, Content string
			} `json:"messages"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &req)
		if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer "+testOpenAIKey ||
			len(req.Messages) != 2 || req.Messages[0].Content != VerifyRubric || req.Model != "gpt-4o-mini" {
			w.WriteHeader(401)
			fmt.Fprintf(w, `{"error":{"message":"unexpected request %s %s"}}`, r.URL.Path, b)
			return
		}
		user := req.Messages[1].Content
		j.mu.Lock()
		j.users = append(j.users, user)
		j.mu.Unlock()
		_, second, _ := strings.Cut(user, "## Answer 2\n")
		verdict := `{"score": 0, "reason": "they differ"}`
		switch {
		case strings.Contains(second, "judge-error"):
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":{"message":"bad request","type":"invalid_request_error"}}`)
			return
		case strings.Contains(strings.ToLower(second), "hello"):
			verdict = `{"score": 1, "reason": "the same greeting (key ` + testOpenAIKey + `)"}`
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"j","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			verdict, judgePrompt, judgeCompletion, judgePrompt+judgeCompletion)
	}))
	t.Cleanup(j.srv.Close)
	return j
}

type verifyRow struct {
	Match          bool
	Method, Detail string
}

func verifications(t *testing.T, db *ledger.DB) []verifyRow {
	t.Helper()
	rs, err := db.SQL().Query(`SELECT "match", method, detail FROM semantic_verify ORDER BY rowid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []verifyRow
	for rs.Next() {
		var v verifyRow
		if err := rs.Scan(&v.Match, &v.Method, &v.Detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestProxySemanticVerifyJudge(t *testing.T) {
	fj := newFakeJudge(t)
	judge, err := evaluator.NewSingleJudge(evaluator.SingleJudgeConfig{Judge: &evaluator.Judge{Model: "gpt-4o-mini"},
		BaseURL: fj.srv.URL + "/v1", APIKey: testOpenAIKey, Table: pricing.MustDefault(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	se := newSemEnv(t, func(c *Config) {
		c.VerifySampleBP = 10_000
		c.SemanticLedger = WithVerifyJudge(c.Control.(SemanticLedger), judge)
	})
	ctx := context.Background()
	k := se.key("acme", "alice", "k")
	se.setPolicy(ledger.Policy{Tenant: "acme", SemanticCache: true, Similarity: 9500})
	se.waitPolicy("acme", func(p ledger.Policy) bool { return p.SemanticCache })
	body := semChat(semSys, semStored, "")
	se.do("POST", "/v1/chat/completions", k, false, body)
	part := se.partition("acme", body)
	eventually(t, "entry stored", func() bool { return se.store.Len(part) == 1 })

	checked := func(n int64) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d verifications", n), func() bool {
			c, _, err := se.db.Precision(ctx, "acme", time.Time{})
			return err == nil && c >= n
		})
	}
	// hit serves the stored "hello world" while the upstream now answers
	// reply; it returns once the verification call was made.
	hit := func(reply string) {
		t.Helper()
		se.up.reply.Store(&reply)
		calls := se.up.calls.Load()
		r := se.do("POST", "/v1/chat/completions", k, false, semChat(semSys, semPara, ""))
		if r.Header.Get("X-Costctl-Cache") != "semantic" || !strings.Contains(r.Body, `"content":"hello world"`) {
			t.Fatalf("not a hit: %q %s", r.Header.Get("X-Costctl-Cache"), r.Body)
		}
		eventually(t, "verification call", func() bool { return se.up.calls.Load() > calls })
	}

	// The same text: exact, no judge call.
	hit("hello world")
	checked(1)
	if n := fj.calls.Load(); n != 0 {
		t.Fatalf("%d judge calls for equal answers", n)
	}
	// Other wording, same answer: the judge says match.
	hit("Hello, world!")
	checked(2)
	// Another answer: the judge says mismatch.
	hit("goodbye world")
	checked(3)
	// The judge fails: the hit is counted neither way.
	hit("judge-error")
	eventually(t, "failed judge call", func() bool { return fj.calls.Load() == 3 })
	se.close() // waits for the verifications in flight and flushes the ledger

	got := verifications(t, se.db)
	want := []verifyRow{
		{Match: true, Method: VerifyExact},
		{Match: true, Method: VerifyJudge, Detail: "the same greeting (key [REDACTED])"},
		{Match: false, Method: VerifyJudge, Detail: "they differ"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("verifications\n got %+v\nwant %+v", got, want)
	}
	fj.mu.Lock()
	if fj.users[0] != "## Answer 1\nhello world\n\n## Answer 2\nHello, world!\n\n"+evaluator.AnswerInstruction {
		t.Errorf("judge asked %q", fj.users[0])
	}
	fj.mu.Unlock()
	if !strings.Contains(se.log.String(), "verify judge for tenant acme failed (hit not counted)") {
		t.Errorf("log: %s", se.log.String())
	}

	// Rows: 1 forwarded call, 5 embeddings, 4 hits, 4 verification calls,
	// 2 answered judge calls (the failed one billed nothing).
	rows := se.rows()
	wantCost := priceOf(t, "gpt-4o-mini", ledger.Event{InputTokens: judgePrompt, OutputTokens: judgeCompletion})
	if m, ok := wantCost.Money(); !ok || m != pricing.Money(judgePrompt*150+judgeCompletion*600) {
		t.Fatalf("judge call price %s", wantCost)
	}
	var judged int
	for _, rw := range rows {
		if rw.Metric != MetricVerifyJudge {
			continue
		}
		judged++
		if rw.Tenant != "acme" || rw.User != "alice" || rw.Model != "gpt-4o-mini" || rw.Endpoint != "/v1/chat/completions" ||
			rw.In != judgePrompt || rw.Out != judgeCompletion || rw.Cost != wantCost || rw.Hit || rw.Status != 200 {
			t.Errorf("judge row %+v", rw)
		}
	}
	if len(rows) != 16 || judged != 2 {
		t.Fatalf("%d rows, %d judge rows", len(rows), judged)
	}
}
