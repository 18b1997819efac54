package commands

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/internal/fakeembed"
	"github.com/costctl/costctl/pricing"
)

const (
	cacheA = "Please show me all the cheapest direct flights from Paris to Rome on May 2 for two adults with hand luggage and a window seat if possible"
	cacheB = "Can you tell me whether the city museum of modern art is open on Monday mornings during the summer holidays for visitors with children"
)

// cacheRecords is a file whose answers are known (the fake embedder is a
// hashed bag of words): for acme, 9 records, 1 exact duplicate, 2 near
// duplicates at every threshold (a reordering at 1.0, an added "Please"
// at 0.9837), and the lexical check rejecting a changed number (0.9565:
// at 0.90 and 0.95) and an added negation (0.9837: at all three).
func cacheRecords(t *testing.T, dir string) string {
	t.Helper()
	text := func(tenant, input string) string {
		b, _ := json.Marshal(map[string]any{"input": input, "output": "x", "tenant": tenant, "metadata": map[string]any{"model": "gpt-4o-mini"}})
		return string(b)
	}
	chat := func(tenant, system, user string) string {
		b, _ := json.Marshal(map[string]any{"input": []map[string]string{{"role": "system", "content": system}, {"role": "user", "content": user}}, "output": "x", "tenant": tenant, "metadata": map[string]any{"model": "gpt-4o-mini"}})
		return string(b)
	}
	lines := []string{
		text("acme", cacheA),
		text("acme", cacheA), // exact duplicate
		text("acme", "Show me all the cheapest direct flights from Paris to Rome on May 2 for two adults with hand luggage and a window seat if possible please"), // near at 1.0
		text("acme", strings.Replace(cacheA, "May 2", "May 3", 1)), // numbers differ at 0.9565
		text("acme", cacheB),
		text("acme", strings.Replace(cacheB, "is open", "is not open", 1)), // negation at 0.9837
		text("acme", "What is the weather in Oslo"),
		"this is not json",
		chat("acme", "You are a poet.", cacheA), // another system prompt: another partition
		text("acme", "Please "+cacheB),          // near at 0.9837
		text("globex", cacheA),                  // another tenant
	}
	return writeFile(t, dir, "records.jsonl", strings.Join(lines, "\n")+"\n")
}

func cacheProjection(t *testing.T) (int64, pricing.Money) {
	t.Helper()
	m, err := pricing.MustDefault().Lookup("text-embedding-3-small")
	if err != nil {
		t.Fatal(err)
	}
	c, err := estimator.NewCounter(m)
	if err != nil {
		t.Fatal(err)
	}
	var tokens int64
	for _, s := range []string{cacheA,
		"Show me all the cheapest direct flights from Paris to Rome on May 2 for two adults with hand luggage and a window seat if possible please",
		strings.Replace(cacheA, "May 2", "May 3", 1), cacheB, strings.Replace(cacheB, "is open", "is not open", 1),
		"What is the weather in Oslo", cacheA, "Please " + cacheB, cacheA} {
		tokens += c.Text(s)
	}
	return tokens, m.Input.Cost(tokens)
}

// cacheEmbedCost is what tokens of text-embedding-3-small cost (an exact
// 20 nano-dollars a token: no rounding per request).
func cacheEmbedCost(t *testing.T, tokens int64) pricing.Amount {
	t.Helper()
	m, err := pricing.MustDefault().Lookup("text-embedding-3-small")
	if err != nil {
		t.Fatal(err)
	}
	return pricing.AmountFromMoney(m.Input.Cost(tokens))
}

func TestCacheAnalyzeSemanticE2E(t *testing.T) {
	fake := fakeembed.New()
	defer fake.Close()
	fake.Key = "sk-e2e-secret"
	dir := t.TempDir()
	path := cacheRecords(t, dir)
	env := []string{"OPENAI_API_KEY=sk-e2e-secret"}
	res := runCostctl(t, dir, "", env, "cache", "analyze", path, "--semantic", "--base-url", fake.URL, "--batch-size", "4", "--examples", "1")
	if res.Code != 0 {
		t.Fatalf("exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	tokens, cost := cacheProjection(t)
	wantErr := fmt.Sprintf("%s:8: invalid JSON: ", path)
	if !strings.Contains(res.Stderr, wantErr) {
		t.Errorf("stderr lacks the bad line %q:\n%s", wantErr, res.Stderr)
	}
	wantProj := fmt.Sprintf("cache analyze: 9 texts to embed with text-embedding-3-small, %d tokens (counted locally, cl100k_base), projected cost %s\n", tokens, cost.Display())
	if !strings.Contains(res.Stderr, wantProj) {
		t.Errorf("stderr lacks %q:\n%s", wantProj, res.Stderr)
	}
	if fake.Calls() != 3 || fake.Inputs() != 9 {
		t.Errorf("fake: %d calls, %d inputs; want 3 batches of ≤4 = 9 inputs", fake.Calls(), fake.Inputs())
	}
	for _, want := range []string{
		"TENANT  RECORDS  EXACT DUP  NEAR ≥0.90  NEAR ≥0.95  NEAR ≥0.98  LEXICAL REJECTED  CACHE HIT\n",
		"acme          9  1 (11.1%)   2 (22.2%)   2 (22.2%)   2 (22.2%)             2/2/1      33.3%\n",
		"globex        1   0 (0.0%)    0 (0.0%)    0 (0.0%)    0 (0.0%)             0/0/0       0.0%\n",
		"total        10  1 (10.0%)   2 (20.0%)   2 (20.0%)   2 (20.0%)             2/2/1      30.0%\n",
		"acme ≥0.90  1.0000  \"Show me all the cheapest direct flights from Paris to Rome on May 2 for two adults with hand luggage and a window seat if possible please\"",
		"~ \"" + cacheA + "\"",
		"acme ≥0.98  0.9837  \"Can you tell me whether the city museum of modern art is not open on Monday mornings during the summer holidays for visitors with children\"",
		"lexical rejected: \"" + cacheB + "\" (negations differ: not vs (none))",
		"acme ≥0.90  0.9565  \"Please show me all the cheapest direct flights from Paris to Rome on May 3",
		"(numbers differ: 3 2 vs 2 2)",
		fmt.Sprintf("records 10, bad lines 1; embedded 9 of 9 texts with text-embedding-3-small in 3 request(s), %d tokens billed, spent %s (projected %s)\n", fake.Tokens(), cacheEmbedCost(t, fake.Tokens()).Display(), cost.Display()),
		"for estimate (exact duplicates + near duplicates at 0.95 that pass the lexical check):\n  costctl estimate ... --cache-hit 30.0%\n",
	} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if strings.Contains(res.Stdout+res.Stderr, "sk-e2e-secret") {
		t.Error("the key was printed")
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	}
}

func TestCacheAnalyzeJSONE2E(t *testing.T) {
	fake := fakeembed.New()
	defer fake.Close()
	dir := t.TempDir()
	path := cacheRecords(t, dir)
	res := runCostctl(t, dir, "", []string{"OPENAI_BASE_URL=" + fake.URL + "/v1"}, "cache", "analyze", path, "--semantic", "--format", "json", "--examples", "0")
	if res.Code != 0 {
		t.Fatalf("exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	var rep struct {
		Version    int       `json:"version"`
		Records    int64     `json:"records"`
		BadLines   int64     `json:"bad_lines"`
		Semantic   bool      `json:"semantic"`
		Thresholds []float64 `json:"thresholds"`
		Embedding  struct {
			Model         string `json:"model"`
			Texts         int64  `json:"texts"`
			TokensCounted int64  `json:"tokens_counted"`
			Projected     string `json:"projected_cost"`
			Embedded      int64  `json:"embedded"`
			TokensBilled  int64  `json:"tokens_billed"`
			Spent         string `json:"spent"`
			Requests      int64  `json:"requests"`
			Partial       bool   `json:"partial"`
		} `json:"embedding"`
		Tenants []struct {
			Tenant          string  `json:"tenant"`
			Records         int64   `json:"records"`
			ExactDuplicates int64   `json:"exact_duplicates"`
			ExactRate       float64 `json:"exact_rate"`
			Near            []struct {
				Similarity      float64           `json:"similarity"`
				Duplicates      int64             `json:"duplicates"`
				LexicalRejected int64             `json:"lexical_rejected"`
				Examples        []json.RawMessage `json:"examples"`
			} `json:"near"`
			CacheHit float64 `json:"cache_hit"`
		} `json:"tenants"`
		CacheHit string `json:"cache_hit"`
		Estimate string `json:"estimate"`
	}
	dec := json.NewDecoder(strings.NewReader(res.Stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err == nil {
		t.Fatal("the schema check should see fields this test leaves out (total)")
	}
	if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, res.Stdout)
	}
	tokens, cost := cacheProjection(t)
	e := rep.Embedding
	if rep.Version != 1 || rep.Records != 10 || rep.BadLines != 1 || !rep.Semantic || fmt.Sprint(rep.Thresholds) != "[0.9 0.95 0.98]" ||
		e.Model != "text-embedding-3-small" || e.Texts != 9 || e.TokensCounted != tokens || e.Projected != cost.String() ||
		e.Embedded != 9 || e.Requests != 1 || e.TokensBilled != fake.Tokens() || e.Partial ||
		rep.CacheHit != "30.0%" || rep.Estimate != "costctl estimate ... --cache-hit 30.0%" {
		t.Fatalf("report:\n%s", res.Stdout)
	}
	if want := cacheEmbedCost(t, fake.Tokens()).String(); e.Spent != want {
		t.Errorf("spent %s, want %s", e.Spent, want)
	}
	if len(rep.Tenants) != 2 || rep.Tenants[0].Tenant != "acme" || rep.Tenants[1].Tenant != "globex" {
		t.Fatalf("tenants: %s", res.Stdout)
	}
	a := rep.Tenants[0]
	got := fmt.Sprintf("%d %d", a.Records, a.ExactDuplicates)
	for _, n := range a.Near {
		got += fmt.Sprintf(" %.2f:%d/%d/%d", n.Similarity, n.Duplicates, n.LexicalRejected, len(n.Examples))
	}
	if want := "9 1 0.90:2/2/0 0.95:2/2/0 0.98:2/1/0"; got != want {
		t.Errorf("acme: %s, want %s", got, want)
	}
}

func TestCacheAnalyzeMaxCostE2E(t *testing.T) {
	fake := fakeembed.New()
	defer fake.Close()
	dir := t.TempDir()
	path := cacheRecords(t, dir)
	_, cost := cacheProjection(t)
	res := runCostctl(t, dir, "", []string{"OPENAI_API_KEY=sk-x"}, "cache", "analyze", path, "--semantic", "--base-url", fake.URL, "--max-cost", "0.000001")
	if res.Code != ExitBudget {
		t.Fatalf("exit %d, want %d\n%s%s", res.Code, ExitBudget, res.Stdout, res.Stderr)
	}
	want := fmt.Sprintf("costctl: projected embedding cost %s is above --max-cost $0.000001: nothing sent\n", cost.Display())
	if !strings.HasSuffix(res.Stderr, want) || res.Stdout != "" || fake.Calls() != 0 {
		t.Fatalf("stderr %q (want suffix %q), stdout %q, %d calls", res.Stderr, want, res.Stdout, fake.Calls())
	}
	// A cap above the projection runs to the end.
	res = runCostctl(t, dir, "", []string{"OPENAI_API_KEY=sk-x"}, "cache", "analyze", path, "--semantic", "--base-url", fake.URL, "--max-cost", "0.01")
	if res.Code != 0 || fake.Calls() != 1 {
		t.Fatalf("exit %d, %d calls\n%s%s", res.Code, fake.Calls(), res.Stdout, res.Stderr)
	}
}

// A server that bills twice the local count: the first batch of 4 is sent
// (its worst case fits the cap), the second would cross it and is not.
func TestCacheAnalyzeMaxCostStopsE2E(t *testing.T) {
	fake := fakeembed.New()
	defer fake.Close()
	fake.TokensPerWord = 2
	dir := t.TempDir()
	path := cacheRecords(t, dir)
	_, cost := cacheProjection(t)
	res := runCostctl(t, dir, "", []string{"OPENAI_API_KEY=sk-x"}, "cache", "analyze", path, "--semantic", "--base-url", fake.URL, "--batch-size", "4", "--max-cost", cost.String(), "--format", "json")
	if res.Code != ExitBudget || fake.Calls() != 1 || fake.Inputs() != 4 {
		t.Fatalf("exit %d, %d calls, %d inputs\n%s%s", res.Code, fake.Calls(), fake.Inputs(), res.Stdout, res.Stderr)
	}
	spent := cacheEmbedCost(t, fake.Tokens())
	if spent.Cmp(pricing.AmountFromMoney(cost)) > 0 {
		t.Fatalf("spent %s past the cap %s", spent.Display(), cost.Display())
	}
	want := fmt.Sprintf("costctl: budget cap %s reached: %s spent; 4 of 9 texts embedded, the near-duplicate rates cover only those\n", cost.Display(), spent.Display())
	if !strings.HasSuffix(res.Stderr, want) {
		t.Errorf("stderr %q, want suffix %q", res.Stderr, want)
	}
	var rep struct {
		Embedding struct {
			Embedded int64  `json:"embedded"`
			Spent    string `json:"spent"`
			Partial  bool   `json:"partial"`
		} `json:"embedding"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil || rep.Embedding.Embedded != 4 || !rep.Embedding.Partial || rep.Embedding.Spent != spent.String() {
		t.Errorf("report %+v (%v):\n%s", rep, err, res.Stdout)
	}
}

func TestCacheAnalyzeExactOnlyE2E(t *testing.T) {
	fake := fakeembed.New()
	defer fake.Close()
	dir := t.TempDir()
	path := cacheRecords(t, dir)
	res := runCostctl(t, dir, "", []string{"OPENAI_BASE_URL=" + fake.URL}, "cache", "analyze", path)
	if res.Code != 0 {
		t.Fatalf("exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, want := range []string{
		"TENANT  RECORDS  EXACT DUP  CACHE HIT",
		"acme          9  1 (11.1%)      11.1%",
		"total        10  1 (10.0%)      10.0%",
		"records 10, bad lines 1\nfor estimate (exact duplicates only; --semantic adds near duplicates):\n  costctl estimate ... --cache-hit 10.0%\n",
	} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, res.Stdout)
		}
	}
	if fake.Calls() != 0 || strings.Contains(res.Stderr, "texts to embed") {
		t.Errorf("without --semantic: %d calls; stderr %s", fake.Calls(), res.Stderr)
	}
	// --semantic to OpenAI without a key is refused before anything is read.
	res = runCostctl(t, dir, "", nil, "cache", "analyze", path, "--semantic")
	if res.Code != ExitUsage || !strings.Contains(res.Stderr, "needs OPENAI_API_KEY") {
		t.Errorf("no key: exit %d %s", res.Code, res.Stderr)
	}
	// An embedding model the table has no price for is refused.
	res = runCostctl(t, dir, "", []string{"OPENAI_API_KEY=sk-x"}, "cache", "analyze", path, "--semantic", "--base-url", fake.URL, "--embed-model", "my-embedder")
	if res.Code != ExitUsage || !strings.HasPrefix(res.Stderr, "costctl: --embed-model my-embedder has no price in the table (") ||
		!strings.HasSuffix(res.Stderr, "): give one with --pricing FILE\n") || strings.Count(res.Stderr, "\n") != 1 || fake.Calls() != 0 {
		t.Errorf("unpriced model: exit %d %q", res.Code, res.Stderr)
	}
}
