package proxy

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/costctl/costctl/evaluator"
	"github.com/costctl/costctl/internal/fakeembed"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// The semantic cache's side calls (embedding, verification, verify judge)
// reserve against the tenant's budget like any call (semantic.go,
// holdSide).

// semBudgetBody is an eligible chat request whose max_tokens (1000) makes
// its worst case above what the fake upstream bills (1000 prompt tokens,
// 200 of them cached, 50 out), so what is spent can be held to a budget.
func semBudgetBody(user string) string {
	b, _ := json.Marshal([]map[string]string{{"role": "system", "content": semSys}, {"role": "user", "content": user}})
	return fmt.Sprintf(`{"model":"gpt-4o-mini","temperature":0,"messages":%s,"max_tokens":1000}`, b)
}

// ceilMoney is a rounded up to the nano-dollar.
func ceilMoney(t *testing.T, a pricing.Amount) pricing.Money {
	t.Helper()
	if a.Sign() < 0 {
		t.Fatalf("negative amount %s", a)
	}
	m := pricing.Money(a.Dollars)*pricing.NanoPerDollar + pricing.Money(a.Pico/1000)
	if a.Pico%1000 != 0 {
		m++
	}
	return m
}

// callWorst is the worst case of body as the proxy reserves it.
func callWorst(t *testing.T, body string) pricing.Amount {
	t.Helper()
	m, err := pricing.MustDefault().Lookup("gpt-4o-mini")
	if err != nil {
		t.Fatal(err)
	}
	req, err := parseRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	w, ok := worstCost(m, promptBound([]byte(body), req), req.MaxOut, "")
	if !ok {
		t.Fatal("cannot price the worst case")
	}
	return w
}

// fakeCallCost is what the fake upstream's answer to a chat call costs.
func fakeCallCost(t *testing.T) pricing.Amount {
	return priceOf(t, "gpt-4o-mini", ledger.Event{InputTokens: 1000, CachedTokens: 200, OutputTokens: 50})
}

// embedWorstOf is an embedding's worst case: the text's bytes plus 64 at
// the embedding model's input price.
func embedWorstOf(t *testing.T, text string) pricing.Amount {
	return priceOf(t, "text-embedding-3-small", ledger.Event{InputTokens: int64(len(text)) + 64})
}

// embedCostOf is what the fake embedder bills for text (a token a word).
func embedCostOf(t *testing.T, text string) pricing.Amount {
	return priceOf(t, "text-embedding-3-small", ledger.Event{InputTokens: int64(max(len(fakeembed.Words(text)), 1))})
}

// ledgerSpend is tenant's spend in the ledger's proxy rows.
func ledgerSpend(e *env, tenant string) pricing.Amount {
	var s pricing.Amount
	for _, r := range e.rows() {
		if r.Tenant == tenant {
			s = s.Add(r.Cost)
		}
	}
	return s
}

// settled waits until the budget store holds no reservation of tenant and
// counts what the ledger holds, and returns that spend.
func settled(e *env, tenant string) pricing.Amount {
	e.t.Helper()
	var s pricing.Amount
	eventually(e.t, "every reservation of "+tenant+" ended", func() bool {
		s = ledgerSpend(e, tenant)
		day, dayRes := e.spent(tenant)
		return day == s && dayRes.IsZero()
	})
	return s
}

// semBudgetSetup stores semStored's answer for acme (a miss, under a
// generous budget), then sets acme's daily budget to what budget returns
// given the spend so far; it returns the key and that budget.
func semBudgetSetup(t *testing.T, se *semEnv, budget func(spent pricing.Amount) pricing.Money) (string, pricing.Money) {
	t.Helper()
	k := se.key("acme", "alice", "k")
	se.setPolicy(ledger.Policy{Tenant: "acme", SemanticCache: true, Similarity: 9500, DailyBudget: pricing.Dollars(1)})
	se.waitPolicy("acme", func(p ledger.Policy) bool { return p.SemanticCache && p.DailyBudget == pricing.Dollars(1) })
	body := semBudgetBody(semStored)
	if r := se.do("POST", "/v1/chat/completions", k, false, body); r.Status != 200 || r.Header.Get("X-Costctl-Cache") == "semantic" {
		t.Fatalf("miss: %d %q %s", r.Status, r.Header.Get("X-Costctl-Cache"), r.Body)
	}
	part := se.partition("acme", body)
	eventually(t, "entry stored", func() bool { return se.store.Len(part) == 1 })
	spent := settled(se.env, "acme")
	if want := embedCostOf(t, semStored).Add(fakeCallCost(t)); spent != want {
		t.Fatalf("the miss cost %s, want %s", spent, want)
	}
	b := budget(spent)
	se.setPolicy(ledger.Policy{Tenant: "acme", SemanticCache: true, Similarity: 9500, DailyBudget: b})
	se.waitPolicy("acme", func(p ledger.Policy) bool { return p.DailyBudget == b })
	return k, b
}

// semHit sends semPara for acme and fails unless it is a semantic hit.
func semHit(t *testing.T, se *semEnv, k string) {
	t.Helper()
	r := se.do("POST", "/v1/chat/completions", k, false, semBudgetBody(semPara))
	if r.Status != 200 || r.Header.Get("X-Costctl-Cache") != "semantic" || !strings.Contains(r.Body, `"content":"hello world"`) {
		t.Fatalf("not a hit: %d %q %s", r.Status, r.Header.Get("X-Costctl-Cache"), r.Body)
	}
}

// TestProxySemanticBudgetSkipsVerification: a daily budget with room for
// a hit's embedding but not for the verification's worst case: the hit is
// served, the verification is not sent, nothing is counted, and the
// ledger's spend stays within the budget.
func TestProxySemanticBudgetSkipsVerification(t *testing.T) {
	se := newSemEnv(t, func(c *Config) { c.VerifySampleBP = 10_000 })
	k, budget := semBudgetSetup(t, se, func(spent pricing.Amount) pricing.Money {
		return ceilMoney(t, spent.Add(embedWorstOf(t, semPara)))
	})
	// Without the reservation the verification would fit the budget's
	// arithmetic of old (no reservation at all) and be sent.
	after := pricing.AmountFromMoney(budget).Sub(embedWorstOf(t, semPara)).Add(embedCostOf(t, semPara))
	if after.Add(callWorst(t, semBudgetBody(semPara))).Cmp(pricing.AmountFromMoney(budget)) <= 0 {
		t.Fatal("setup: the verification's worst case fits the budget")
	}
	calls, embeds := se.up.calls.Load(), se.fe.Calls()
	semHit(t, se, k)
	const skipped = "semantic cache: verification for tenant acme skipped (hit not counted): tenant acme is over its daily budget"
	eventually(t, "the verification skipped or sent", func() bool {
		return strings.Contains(se.log.String(), skipped) || se.up.calls.Load() != calls
	})
	se.close()
	if !strings.Contains(se.log.String(), skipped) {
		t.Errorf("log:\n%s", se.log.String())
	}
	if n := se.up.calls.Load(); n != calls {
		t.Fatalf("upstream calls %d→%d: the verification was sent", calls, n)
	}
	if n := se.fe.Calls(); n != embeds+1 {
		t.Fatalf("embedding calls %d→%d, want one", embeds, n)
	}
	if v := verifications(t, se.db); len(v) != 0 {
		t.Fatalf("verifications %+v", v)
	}
	// Rows: the miss's embedding and call, the hit's embedding, the hit.
	rows := se.rows()
	var callRows int
	for _, rw := range rows {
		if !rw.Hit && rw.Metric != ledger.MetricEmbed {
			callRows++
		}
	}
	if len(rows) != 4 || callRows != 1 {
		t.Fatalf("%d rows, %d call rows: %+v", len(rows), callRows, rows)
	}
	if s := ledgerSpend(se.env, "acme"); s.Cmp(pricing.AmountFromMoney(budget)) > 0 {
		t.Fatalf("spent %s over the budget %s", s, budget)
	}
	for _, line := range strings.Split(strings.TrimSpace(se.log.String()), "\n") {
		if !strings.Contains(line, " costctl proxy: ") {
			t.Fatalf("a log entry spans lines:\n%s", se.log.String())
		}
	}
}

// TestProxySemanticBudgetSkipsJudge: a daily budget with room for the
// hit's embedding and its verification but not for the verify judge's
// worst case: the verification is sent and billed, the judge is not asked,
// the hit is counted neither way, the spend stays within the budget.
func TestProxySemanticBudgetSkipsJudge(t *testing.T) {
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
	verifyWorst := callWorst(t, semBudgetBody(semPara))
	k, budget := semBudgetSetup(t, se, func(spent pricing.Amount) pricing.Money {
		return ceilMoney(t, spent.Add(embedWorstOf(t, semPara)).Add(verifyWorst))
	})
	// The judge's worst case: the rubric and both answers, plus the
	// judge's max_tokens (evaluator.DefaultMaxTokens), and a repair turn.
	m, _ := pricing.MustDefault().Lookup("gpt-4o-mini")
	jw, why := judgeWorst(m, "gpt-4o-mini", evaluator.DefaultMaxTokens, VerifyRubric, "## Answer 1\nhello world\n\n## Answer 2\nHello, world!")
	if why != "" {
		t.Fatal(why)
	}
	oneTurn := priceOf(t, "gpt-4o-mini", ledger.Event{InputTokens: judgePrompt, OutputTokens: int64(evaluator.DefaultMaxTokens)})
	if jw.Cmp(oneTurn) <= 0 {
		t.Fatalf("judge worst case %s below one turn of %d prompt tokens and max_tokens %d (%s)", jw, judgePrompt, evaluator.DefaultMaxTokens, oneTurn)
	}
	before := pricing.AmountFromMoney(budget).Sub(embedWorstOf(t, semPara)).Sub(verifyWorst).
		Add(embedCostOf(t, semPara)).Add(fakeCallCost(t)) // at least what is spent before the judge
	if before.Add(jw).Cmp(pricing.AmountFromMoney(budget)) <= 0 {
		t.Fatal("setup: the judge's worst case fits the budget")
	}
	reply := "Hello, world!" // other text: only a judge can say it matches
	se.up.reply.Store(&reply)
	calls := se.up.calls.Load()
	semHit(t, se, k)
	const skipped = "semantic cache: verify judge for tenant acme skipped (hit not counted): tenant acme is over its daily budget"
	eventually(t, "the judge skipped or asked", func() bool {
		return strings.Contains(se.log.String(), skipped) || fj.calls.Load() != 0
	})
	se.close()
	if !strings.Contains(se.log.String(), skipped) {
		t.Errorf("log:\n%s", se.log.String())
	}
	if n := fj.calls.Load(); n != 0 {
		t.Fatalf("%d judge calls", n)
	}
	if n := se.up.calls.Load(); n != calls+1 {
		t.Fatalf("upstream calls %d→%d, want the verification only", calls, n)
	}
	if v := verifications(t, se.db); len(v) != 0 {
		t.Fatalf("verifications %+v", v)
	}
	rows := se.rows()
	var callRows, judgeRows int
	for _, rw := range rows {
		switch {
		case rw.Metric == MetricVerifyJudge:
			judgeRows++
		case !rw.Hit && rw.Metric != ledger.MetricEmbed:
			callRows++
			if rw.Cost != fakeCallCost(t) {
				t.Fatalf("call row %+v", rw)
			}
		}
	}
	if len(rows) != 5 || callRows != 2 || judgeRows != 0 {
		t.Fatalf("%d rows, %d call rows, %d judge rows", len(rows), callRows, judgeRows)
	}
	if s := ledgerSpend(se.env, "acme"); s.Cmp(pricing.AmountFromMoney(budget)) > 0 {
		t.Fatalf("spent %s over the budget %s", s, budget)
	}
}

// TestProxySemanticBudgetEmbedding: a budget below the embedding's worst
// case sends no embedding; the request is a miss that its own reservation
// then refuses. An unpriced embedding model with a budget is skipped too
// (the request served as a miss); without a budget it is embedded as
// before. Each question has an entry with its lexical key planted (an
// answer that cannot be served), so the embedding is asked for before the
// call, not only to store its answer.
func TestProxySemanticBudgetEmbedding(t *testing.T) {
	t.Run("over budget", func(t *testing.T) {
		se := newSemEnv(t, nil)
		k := se.key("acme", "", "k")
		budget := ceilMoney(t, embedWorstOf(t, semStored)) - 1
		if budget <= 0 || pricing.AmountFromMoney(budget).Cmp(embedCostOf(t, semStored)) < 0 {
			t.Fatalf("setup: budget %s", budget)
		}
		se.setPolicy(ledger.Policy{Tenant: "acme", SemanticCache: true, DailyBudget: budget})
		se.waitPolicy("acme", func(p ledger.Policy) bool { return p.SemanticCache && p.DailyBudget == budget })
		se.plant(t, "acme", semBudgetBody(semStored))
		r := se.do("POST", "/v1/chat/completions", k, false, semBudgetBody(semStored))
		if r.Status != 429 || !strings.Contains(r.Body, `"type":"budget_exceeded"`) || r.Header.Get("X-Costctl-Cache") == "semantic" {
			t.Fatalf("%d %q %s", r.Status, r.Header.Get("X-Costctl-Cache"), r.Body)
		}
		if n := se.fe.Calls(); n != 0 {
			t.Fatalf("%d embedding calls", n)
		}
		if n := se.up.calls.Load(); n != 0 {
			t.Fatalf("%d upstream calls", n)
		}
		if !strings.Contains(se.log.String(), "semantic cache: embedding for tenant acme skipped (served as a miss): tenant acme is over its daily budget") {
			t.Fatalf("log:\n%s", se.log.String())
		}
		se.close()
		if rows := se.rows(); len(rows) != 0 {
			t.Fatalf("rows %+v", rows)
		}
		if day, dayRes := se.spent("acme"); !day.IsZero() || !dayRes.IsZero() {
			t.Fatalf("store: spent %s, reserved %s", day, dayRes)
		}
	})
	t.Run("budget store unreachable", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		se := newSemEnv(t, func(c *Config) { c.Redis = rdb })
		k := se.key("acme", "", "k")
		se.setPolicy(ledger.Policy{Tenant: "acme", SemanticCache: true, DailyBudget: pricing.Dollars(1)})
		se.waitPolicy("acme", func(p ledger.Policy) bool { return p.SemanticCache })
		se.plant(t, "acme", semBudgetBody(semStored))
		r := se.do("POST", "/v1/chat/completions", k, false, semBudgetBody(semStored))
		if r.Status != 503 || se.fe.Calls() != 0 || se.up.calls.Load() != 0 {
			t.Fatalf("%d, %d embedding calls, %d upstream calls: %s", r.Status, se.fe.Calls(), se.up.calls.Load(), r.Body)
		}
		if !strings.Contains(se.log.String(), "semantic cache: embedding for tenant acme skipped (served as a miss): the budget store cannot be reached: ") {
			t.Fatalf("log:\n%s", se.log.String())
		}
	})
	t.Run("unpriced embedding model", func(t *testing.T) {
		se := newSemEnv(t, func(c *Config) { c.EmbedModel = "zz-unpriced-embedder" })
		if se.srv.embedModel != nil {
			t.Fatal("setup: the embedding model has a price")
		}
		k := se.key("acme", "", "k")
		kg := se.key("globex", "", "kg")
		se.setPolicy(ledger.Policy{Tenant: "acme", SemanticCache: true, DailyBudget: pricing.Dollars(1)})
		se.setPolicy(ledger.Policy{Tenant: "globex", SemanticCache: true})
		se.waitPolicy("acme", func(p ledger.Policy) bool { return p.SemanticCache })
		se.waitPolicy("globex", func(p ledger.Policy) bool { return p.SemanticCache })
		se.plant(t, "acme", semBudgetBody(semStored))
		r := se.do("POST", "/v1/chat/completions", k, false, semBudgetBody(semStored))
		if r.Status != 200 || r.Header.Get("X-Costctl-Cache") == "semantic" {
			t.Fatalf("%d %q %s", r.Status, r.Header.Get("X-Costctl-Cache"), r.Body)
		}
		if n, u := se.fe.Calls(), se.up.calls.Load(); n != 0 || u != 1 {
			t.Fatalf("%d embedding calls, %d upstream calls", n, u)
		}
		if !strings.Contains(se.log.String(), "semantic cache: embedding for tenant acme skipped (served as a miss): the embedding model zz-unpriced-embedder has no price") {
			t.Fatalf("log:\n%s", se.log.String())
		}
		// No budget: embedded as before (an unpriced row), to store the
		// answer (no entry could have matched it).
		if r := se.do("POST", "/v1/chat/completions", kg, false, semBudgetBody(semStored)); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		eventually(t, "the answer embedded to be stored", func() bool { return se.fe.Calls() == 1 })
		se.close()
		var embedRows int
		for _, rw := range se.rows() {
			if rw.Metric == ledger.MetricEmbed {
				embedRows++
				if rw.Tenant != "globex" {
					t.Fatalf("embedding row %+v", rw)
				}
			}
		}
		if embedRows != 1 {
			t.Fatalf("%d embedding rows", embedRows)
		}
	})
}

// TestProxySemanticBudgetConcurrent: 24 concurrent hits of one tenant,
// each with its embedding and a verification (--verify-sample 100%),
// against a daily budget of the spend so far plus three verifications'
// worst cases: what the ledger records stays within the budget, on every
// budget store, and every reservation ends.
func TestProxySemanticBudgetConcurrent(t *testing.T) {
	forBackends(t, testSemanticBudgetConcurrent)
}

func testSemanticBudgetConcurrent(t *testing.T, be backend) {
	se := newSemEnv(t, func(c *Config) {
		be.mod(t, c)
		c.VerifySampleBP = 10_000
	})
	verifyWorst := callWorst(t, semBudgetBody(semPara))
	k, budget := semBudgetSetup(t, se, func(spent pricing.Amount) pricing.Money {
		return ceilMoney(t, spent.Add(verifyWorst.MulInt64(3)))
	})
	const n = 24
	calls := se.up.calls.Load()
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := se.do("POST", "/v1/chat/completions", k, false, semBudgetBody(semPara))
			statuses <- r.Status
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 && s != 429 {
			t.Fatalf("status %d", s)
		}
	}
	se.close() // waits for the verifications and commits every row
	spent := ledgerSpend(se.env, "acme")
	if spent.Cmp(pricing.AmountFromMoney(budget)) > 0 {
		t.Fatalf("spent %s over the budget %s", spent, budget)
	}
	if _, dayRes := se.spent("acme"); !dayRes.IsZero() {
		t.Fatalf("%s still reserved", dayRes)
	}
	sent := se.up.calls.Load() - calls
	if sent >= n || !strings.Contains(se.log.String(), "skipped") {
		t.Fatalf("%d upstream calls for %d hits and no side call skipped: the budget did not bind\n%s", sent, n, se.log.String())
	}
}
