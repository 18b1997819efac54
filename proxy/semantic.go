package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/costctl/costctl/alerts"
	"github.com/costctl/costctl/evaluator"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/semcache"
)

// The semantic cache (issue 16), per tenant (policy --semantic-cache on).
//
// A chat completion, message or response that is eligible (semcache.Eligible:
// temperature 0, or x-costctl-cache: force) and missed the exact cache is
// first probed by its lexical key (semcache.Cache.Holds): when no entry of
// its partition shares it, it is a miss with no embedding. Otherwise its
// last user message is embedded through an OpenAI-compatible
// /v1/embeddings upstream (Config.EmbedUpstream, the OpenAI upstream's key);
// the embedding call is a ledger row of its own (metric
// ledger.MetricEmbed, the embedding model, its exact cost). A failed
// embedding is a miss: the request goes upstream. The vector is looked up
// in the request's exact partition (semcache.Partition: tenant, model and
// everything but the last user message) at the tenant's similarity; a hit
// also passes semcache.Lexical and names the same tenant and model. It is
// served as the exact cache serves (a streaming request gets a stream built
// from the stored answer) with x-costctl-cache: semantic and
// x-costctl-similarity, and is a ledger row with CacheHit and Semantic,
// cost 0 and the avoided cost. A miss is forwarded and, when its answer is
// complete and has usage, stored (the same entry the exact cache keeps),
// after the client has it; a miss not embedded before its call is embedded
// then, in the background.
//
// Budgets: the calls made on a tenant's behalf (the embedding, a
// verification, a verify judge's question) reserve their worst case like
// any call (holdSide) and are skipped when the budget has no room.
//
// Verification: Config.VerifySampleBP of the hits are also sent upstream
// after the hit was served, billed and recorded like any call; the two
// answers' texts are compared exactly and, when they differ and a verify
// judge is set (WithVerifyJudge), a judge decides; the result is a
// ledger.Verification. When the tenant's precision over VerifyWindow, with
// at least VerifyMin checks, falls below its MinPrecision, its semantic
// cache is switched off (ledger SwitchOffSemantic, an audit row) and a
// semantic_off alert says why.

// SemanticLedger is what verification needs of the ledger: *ledger.DB
// implements it.
type SemanticLedger interface {
	RecordVerification(ctx context.Context, v ledger.Verification) error
	Precision(ctx context.Context, tenant string, since time.Time) (checked, matched int64, err error)
	SwitchOffSemantic(ctx context.Context, tenant, reason string, at time.Time) error
}

// Semantic cache defaults.
const (
	DefaultSemanticMaxEntries = 10_000
	DefaultSemanticMaxTotal   = 100_000
	// semSweepEvery is how often expired entries (and partitions left
	// empty, or idle local indexes of the Redis store) are dropped.
	semSweepEvery       = time.Minute
	DefaultVerifyWindow = 7 * 24 * time.Hour
	DefaultVerifyMin    = 20
	defaultEmbedTimeout = 10 * time.Second
	verifyTimeout       = 5 * time.Minute
)

// semState is what a call carries for the semantic cache: its view and the
// embedding of its last user message.
type semState struct {
	req *semcache.Request
	vec []float32
}

// semSetup fills in the semantic cache's defaults and parts.
func (s *Server) semSetup() {
	cfg := &s.cfg
	if cfg.EmbedUpstream == "" {
		cfg.EmbedUpstream = cfg.OpenAIUpstream
	}
	if cfg.EmbedModel == "" {
		cfg.EmbedModel = semcache.DefaultEmbedModel
	}
	if cfg.SemanticMaxEntries <= 0 {
		cfg.SemanticMaxEntries = DefaultSemanticMaxEntries
	}
	if cfg.SemanticMaxTotal <= 0 {
		cfg.SemanticMaxTotal = DefaultSemanticMaxTotal
	}
	if cfg.VerifyWindow <= 0 {
		cfg.VerifyWindow = DefaultVerifyWindow
	}
	if cfg.VerifyMin <= 0 {
		cfg.VerifyMin = DefaultVerifyMin
	}
	switch {
	case cfg.SemanticStore != nil:
	case cfg.Redis != nil:
		cfg.SemanticStore = NewRedisSemStore(cfg.Redis, cfg.RedisPrefix)
	default:
		cfg.SemanticStore = semcache.NewMemStore()
	}
	if ms, ok := cfg.SemanticStore.(*semcache.MemStore); ok && ms.MaxEntries == 0 {
		ms.MaxEntries = cfg.SemanticMaxTotal
	}
	if cfg.Embedder == nil {
		cfg.Embedder = &semcache.OpenAIEmbedder{BaseURL: cfg.EmbedUpstream, APIKey: cfg.OpenAIKey, Model: cfg.EmbedModel, Client: s.client}
	}
	if cfg.SemanticLedger == nil {
		if sl, ok := cfg.Control.(SemanticLedger); ok {
			cfg.SemanticLedger = sl
		}
	}
	s.embedModel, _ = cfg.Pricing.Lookup(cfg.EmbedModel)
}

// semSweeper is a semantic store that can drop what has expired or gone
// idle (semcache.MemStore, RedisSemStore).
type semSweeper interface{ Sweep(now time.Time) int }

// semSweepLoop sweeps the semantic store every semSweepEvery, so a proxy's
// memory holds only live entries and partitions in use.
func (s *Server) semSweepLoop() {
	defer s.loopWG.Done()
	sw, ok := s.cfg.SemanticStore.(semSweeper)
	if !ok {
		return
	}
	t := time.NewTicker(semSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			sw.Sweep(s.now())
		}
	}
}

// Where the semantic cache keeps its entries (costctl proxy
// --semantic-store).
const (
	SemStoreMemory = "memory" // this process only (semcache.NewMemStore)
	SemStoreLedger = "ledger" // the ledger, shared by every proxy on it (NewLedgerSemStore)
	SemStoreRedis  = "redis"  // Redis, shared by every proxy on it (NewRedisSemStore)
)

// SemanticStoreFor is the semantic cache store kind names: "" is redis
// with rdb, else memory; ledger needs db, redis needs rdb. now (nil:
// time.Now) is the ledger store's clock.
func SemanticStoreFor(kind string, db SemanticEntries, rdb redis.UniversalClient, prefix string, now func() time.Time) (semcache.Store, error) {
	if kind == "" {
		kind = SemStoreMemory
		if rdb != nil {
			kind = SemStoreRedis
		}
	}
	switch kind {
	case SemStoreMemory:
		return semcache.NewMemStore(), nil
	case SemStoreLedger:
		if db == nil {
			return nil, fmt.Errorf("semantic cache store %q needs a ledger", kind)
		}
		return NewLedgerSemStore(db, now), nil
	case SemStoreRedis:
		if rdb == nil {
			return nil, fmt.Errorf("semantic cache store %q needs --redis", kind)
		}
		return NewRedisSemStore(rdb, prefix), nil
	}
	return nil, fmt.Errorf("semantic cache store %q: want %s, %s or %s", kind, SemStoreMemory, SemStoreLedger, SemStoreRedis)
}

// semView is c's request as the semantic cache sees it, or nil when c is
// not a candidate (policy off, another route, not eligible).
func (s *Server) semView(r *http.Request, c *call) *semcache.Request {
	if !c.pol.SemanticCache {
		return nil
	}
	force := r.Header.Get("X-Costctl-Cache") == "force"
	var (
		req *semcache.Request
		err error
	)
	switch c.rt.kind {
	case kindChat:
		req, err = semcache.ParseOpenAI(c.body, c.key.Tenant, force)
	case kindMessages:
		req, err = semcache.ParseAnthropic(c.body, c.key.Tenant, force)
	case kindResponses:
		req, err = semcache.ParseResponses(c.body, c.key.Tenant, force)
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	if ok, _ := semcache.Eligible(req); !ok {
		return nil
	}
	return req
}

func (s *Server) semCache(p ledger.Policy) *semcache.Cache {
	return &semcache.Cache{Store: s.cfg.SemanticStore, Threshold: float64(p.Similarity) / 10_000,
		Limit: s.cfg.SemanticMaxEntries, TTL: p.SemanticTTL, Now: s.now}
}

// embed embeds text for c and records the embedding call; a failure is
// logged and returns nil. For a tenant with a budget the call first
// reserves its worst case (embedWorst); a refusal (over budget, an
// unpriced embedding model, a budget store that does not answer) is
// logged and returns nil: the request is a miss, and its own reservation
// decides.
func (s *Server) embed(ctx context.Context, c *call, text string) []float32 {
	ctx, cancel := context.WithTimeout(ctx, defaultEmbedTimeout)
	defer cancel()
	start := s.now()
	sc := &call{key: c.key, pol: c.pol, start: start, model: s.embedModel}
	worst, unbounded := s.embedWorst(text)
	held, skip := s.holdSide(ctx, sc, worst, unbounded)
	if skip != "" {
		s.logf("semantic cache: embedding for tenant %s skipped (served as a miss): %s", c.key.Tenant, skip)
		return nil
	}
	vecs, u, err := s.cfg.Embedder.Embed(ctx, []string{text})
	if err != nil {
		s.releaseSide(sc, held)
		s.logf("semantic cache: embedding for tenant %s failed (served as a miss): %v", c.key.Tenant, err)
		return nil
	}
	ev := ledger.Event{
		Key:       fmt.Sprintf("proxy:%s:%d", s.runID, s.seq.Add(1)),
		Time:      start,
		Source:    ledger.SourceProxy,
		Tenant:    c.key.Tenant,
		User:      c.key.User,
		Endpoint:  "/v1/embeddings",
		Metric:    ledger.MetricEmbed,
		Model:     s.cfg.EmbedModel,
		Status:    http.StatusOK,
		LatencyMS: max(s.now().Sub(start).Milliseconds(), 0),
	}
	if s.embedModel != nil {
		ev.Model = s.embedModel.Name
	}
	ev.InputTokens = u.PromptTokens
	s.recordSide(sc, held, ev, price(s.embedModel, &ev))
	if len(vecs) != 1 {
		return nil
	}
	return vecs[0]
}

// semanticLookup serves c from the semantic cache when its tenant has it
// on and a stored answer fits; it returns whether it answered. A miss
// leaves c.sem set so the answer is stored.
func (s *Server) semanticLookup(w http.ResponseWriter, r *http.Request, c *call) bool {
	req := s.semView(r, c)
	if req == nil {
		return false
	}
	cache := s.semCache(c.pol)
	if !cache.Holds(r.Context(), req) {
		// No entry has this question's numbers, negations and content
		// words: a miss whatever its embedding. The answer is embedded and
		// stored after the client has it (semPut).
		c.sem = &semState{req: req}
		return false
	}
	text, _ := semcache.LastUser(req)
	vec := s.embed(r.Context(), c, text)
	if vec == nil {
		return false
	}
	c.sem = &semState{req: req, vec: vec}
	cand, _ := cache.Lookup(r.Context(), req, vec)
	// Never another tenant's answer, whatever the store returned.
	if cand == nil || cand.Tenant != c.key.Tenant || cand.Tenant != req.Tenant {
		return false
	}
	e := decodeSemEntry(cand.Response)
	if e == nil || e.kind != c.rt.kind {
		return false
	}
	body, ctype := cachedBody(c, e)
	if body == nil {
		return false
	}
	h := w.Header()
	h.Set("X-Costctl-Cache", "semantic")
	h.Set("X-Costctl-Similarity", strconv.FormatFloat(cand.Similarity, 'f', 4, 64))
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // a client gone away still got its hit recorded (cost 0)
	ev := s.event(c)
	ev.Status = http.StatusOK
	e.usage.event(&ev)
	avoided := price(c.model, &ev)
	if m, ok := cand.Cost.Money(); ok && cand.Cost.Sign() > 0 {
		ev.Avoided = m
	} else if m, ok := avoided.Money(); ok && !ev.Unpriced {
		ev.Avoided = m
	}
	ev.Cost, ev.CostExact, ev.CacheHit, ev.Semantic, ev.Unpriced = 0, pricing.Amount{}, true, true, false
	s.record(ev)
	s.served(c, ev, e.text)
	s.maybeVerify(r, c, e.text, cand.Similarity)
	return true
}

// semPut stores the answer of a semantic miss. A miss that was not
// embedded (no entry could have matched it) is embedded now, in the
// background: the client has its answer, and the handler returns at once.
func (s *Server) semPut(c *call, e *cacheEntry, cost pricing.Amount) {
	if c.sem == nil {
		return
	}
	b, err := json.Marshal(redisEntry{Full: e.full, Events: e.events, ContentType: e.contentType, Usage: e.usage, Kind: e.kind, Text: e.text})
	if err != nil {
		return
	}
	put := func(vec []float32) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.semCache(c.pol).Put(ctx, c.sem.req, vec, b, cost); err != nil {
			s.logf("semantic cache: cannot store an answer for tenant %s: %v", c.key.Tenant, err)
		}
	}
	if c.sem.vec != nil {
		put(c.sem.vec)
		return
	}
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		text, _ := semcache.LastUser(c.sem.req)
		if vec := s.embed(context.Background(), c, text); vec != nil {
			put(vec)
		}
	}()
}

func decodeSemEntry(b []byte) *cacheEntry {
	var re redisEntry
	if json.Unmarshal(b, &re) != nil {
		return nil
	}
	re.Usage.ok = true // only answers with usage are stored
	return &cacheEntry{full: re.Full, events: re.Events, contentType: re.ContentType, usage: re.Usage, kind: re.Kind, text: re.Text}
}

// maybeVerify sends the sampled share of hits upstream in the background.
func (s *Server) maybeVerify(r *http.Request, c *call, cachedText string, sim float64) {
	bp := s.cfg.VerifySampleBP
	if bp <= 0 || s.cfg.SemanticLedger == nil {
		return
	}
	if bp < 10_000 && rand.Int64N(10_000) >= bp {
		return
	}
	fields := make(map[string]json.RawMessage, len(c.req.fields))
	for k, v := range c.req.fields {
		if k != "stream" && k != "stream_options" {
			fields[k] = v
		}
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return
	}
	base, key := s.upstream(c.rt.provider)
	up, err := upstreamRequest(context.Background(), r, c.rt.provider, base, key, body)
	if err != nil {
		return
	}
	vc := *c
	vc.start = s.now()
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
		defer cancel()
		s.verify(up.WithContext(ctx), &vc, cachedText, sim)
	}()
}

// verify makes the call a hit stood in for, bills it and compares. For a
// tenant with a budget the call first reserves the worst case the original
// call would have had (worstCase); a refusal skips the verification,
// counted neither way (logged).
func (s *Server) verify(up *http.Request, c *call, cachedText string, sim float64) {
	var unbounded string
	worst, e := s.worstCase(c)
	if e != nil {
		unbounded = e.msg
	}
	held, skip := s.holdSide(up.Context(), c, worst, unbounded)
	if skip != "" {
		s.logf("semantic cache: verification for tenant %s skipped (hit not counted): %s", c.key.Tenant, skip)
		return
	}
	resp, err := s.client.Do(up)
	if err != nil {
		s.releaseSide(c, held)
		s.logf("semantic cache: verification call for tenant %s failed: %s", c.key.Tenant, evaluator.Redact(err.Error(), s.cfg.OpenAIKey, s.cfg.AnthropicKey))
		return
	}
	defer resp.Body.Close() // read-only
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil || resp.StatusCode/100 != 2 {
		s.releaseSide(c, held)
		s.logf("semantic cache: verification call for tenant %s got no answer (HTTP %d)", c.key.Tenant, resp.StatusCode)
		return
	}
	u, text := replyUsage(c.rt.kind, b)
	ev := s.event(c)
	ev.Status = int64(resp.StatusCode)
	if u.ok {
		u.event(&ev)
	} else {
		ev.InputTokens, ev.OutputTokens, ev.Estimate = c.bound, counterFor(c.model).Text(text), ledger.EstimateNoUsage
	}
	s.recordSide(c, held, ev, price(c.model, &ev))
	s.Served.Add(1)
	match := strings.TrimSpace(text) == strings.TrimSpace(cachedText)
	method, detail := VerifyExact, ""
	sl := s.cfg.SemanticLedger
	if jl, ok := sl.(*judgedLedger); ok {
		sl = jl.SemanticLedger
		if !match {
			var ok bool
			if match, detail, ok = s.judgeAnswers(jl.judge, c, cachedText, text); !ok {
				return
			}
			method = VerifyJudge
		}
	}
	if !match && method == VerifyExact {
		detail = "the upstream answered differently"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := s.now()
	if err := sl.RecordVerification(ctx, ledger.Verification{Tenant: c.key.Tenant, At: now, Similarity: min(max(sim, -1), 1),
		Match: match, Method: method, Detail: detail}); err != nil {
		s.logf("semantic cache: cannot record a verification for tenant %s: %v", c.key.Tenant, err)
		return
	}
	s.checkPrecision(ctx, c.key.Tenant, now)
}

// How a verification compared the two answers (ledger.Verification.Method).
const (
	VerifyExact = "exact" // the texts are equal (after trimming space)
	VerifyJudge = "judge" // they are not; the verify judge decided
)

// MetricVerifyJudge is the ledger metric of a verify judge's call.
const MetricVerifyJudge = "semantic-cache:verify-judge"

// VerifyRubric is the verify judge's system message.
const VerifyRubric = "Two answers to the same request follow. Score 1 if they give the same answer (same facts, numbers, decision), 0 if they differ in substance."

// verifyJudgeTimeout bounds a verify judge's question, retries included.
const verifyJudgeTimeout = 2 * time.Minute

// judgedLedger is a SemanticLedger whose verifications ask a judge when
// the two answers are not equal (WithVerifyJudge).
type judgedLedger struct {
	SemanticLedger
	judge *evaluator.SingleJudge
}

// WithVerifyJudge makes verification ask judge (costctl proxy
// --verify-judge) whether a verified hit's answer and the upstream's agree
// when their texts differ: a score of at least 0.5 is a match, recorded
// with method VerifyJudge and the judge's reason. Equal texts stay
// VerifyExact with no judge call. Each judge call is a ledger row of the
// hit's tenant (metric MetricVerifyJudge, the judge's model, its cost);
// when the judge fails, the hit is not counted either way. Set the result
// as Config.SemanticLedger.
func WithVerifyJudge(sl SemanticLedger, judge *evaluator.SingleJudge) SemanticLedger {
	if judge == nil || sl == nil {
		return sl
	}
	return &judgedLedger{SemanticLedger: sl, judge: judge}
}

// judgeAnswers asks j whether the cached and the upstream answer agree
// and records the judge call; ok is false when the judge gave no verdict
// (logged). For a tenant with a budget the question first reserves its
// worst case (judgeWorst); a refusal skips it: no verdict.
func (s *Server) judgeAnswers(j *evaluator.SingleJudge, c *call, cachedText, upstreamText string) (match bool, reason string, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), verifyJudgeTimeout)
	defer cancel()
	user := "## Answer 1\n" + strings.TrimSpace(cachedText) + "\n\n## Answer 2\n" + strings.TrimSpace(upstreamText)
	start := s.now()
	m, _ := s.cfg.Pricing.Lookup(j.Model())
	jc := &call{key: c.key, pol: c.pol, start: start, model: m}
	worst, unbounded := judgeWorst(m, j.Model(), j.MaxTokens(), VerifyRubric, user)
	held, skip := s.holdSide(ctx, jc, worst, unbounded)
	if skip != "" {
		s.logf("semantic cache: verify judge for tenant %s skipped (hit not counted): %s", c.key.Tenant, skip)
		return false, "", false
	}
	v, u, _, err := j.Ask(ctx, VerifyRubric, user)
	if u == (pricing.Usage{}) {
		s.releaseSide(jc, held)
	} else {
		ev := ledger.Event{
			Key:                fmt.Sprintf("proxy:%s:%d", s.runID, s.seq.Add(1)),
			Time:               start,
			Source:             ledger.SourceProxy,
			Tenant:             c.key.Tenant,
			User:               c.key.User,
			Endpoint:           "/v1/chat/completions",
			Metric:             MetricVerifyJudge,
			Model:              j.Model(),
			Status:             http.StatusOK,
			InputTokens:        u.InputTokens,
			CachedTokens:       u.CachedInputTokens,
			CacheWrite5mTokens: u.CacheWrite5mTokens,
			CacheWrite1hTokens: u.CacheWrite1hTokens,
			OutputTokens:       u.OutputTokens,
			LatencyMS:          max(s.now().Sub(start).Milliseconds(), 0),
		}
		if m != nil {
			ev.Model = m.Name
		}
		s.recordSide(jc, held, ev, price(m, &ev))
	}
	if err != nil {
		s.logf("semantic cache: verify judge for tenant %s failed (hit not counted): %s", c.key.Tenant,
			evaluator.Redact(oneLineErr(err), s.cfg.OpenAIKey, s.cfg.AnthropicKey))
		return false, "", false
	}
	return v.Score >= 0.5, evaluator.Redact(v.Reason, s.cfg.OpenAIKey, s.cfg.AnthropicKey), true
}

func oneLineErr(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// Side calls: the calls the semantic cache makes on a tenant's behalf
// (an embedding, a verification, a verify judge's question) are billed to
// the tenant, so for a tenant with a budget each reserves its worst case
// through the budget store before it is sent, as a forwarded call does,
// and its reservation ends the same way: settled with the row's cost and
// released once the row is committed (recordCall), or at once when there
// is no row. A call that cannot be reserved (over budget, an unpriced
// model, a budget store that does not answer) is not sent.

// sideReserveTimeout bounds a side call's reservation: a budget store that
// does not answer skips the call rather than hold anything up.
const sideReserveTimeout = 2 * time.Second

// holdSide reserves worst for sc (its tenant, policy and start set) when
// its tenant has a budget. skip, when not empty, is why the call must not
// be sent (unbounded: why its worst case is unknown); held says a
// reservation was taken, to end with recordSide or releaseSide.
func (s *Server) holdSide(ctx context.Context, sc *call, worst pricing.Amount, unbounded string) (held bool, skip string) {
	if !budgeted(sc.pol) {
		return false, ""
	}
	if unbounded != "" {
		return false, unbounded
	}
	ctx, cancel := context.WithTimeout(ctx, sideReserveTimeout)
	defer cancel()
	res, over, err := s.store.reserve(ctx, sc.key.Tenant, sc.pol, worst, sc.start)
	switch {
	case err != nil:
		return false, "the budget store cannot be reached: " + oneLineErr(err)
	case over != nil:
		return false, over.Error()
	}
	sc.res = res
	return true, ""
}

// recordSide records a side call's row; a held reservation settles to its
// cost and is released once the row is committed.
func (s *Server) recordSide(sc *call, held bool, ev ledger.Event, cost pricing.Amount) {
	if !held {
		s.record(ev)
		return
	}
	s.settleEvent(sc, &ev, cost)
	s.recordCall(sc, ev)
}

// releaseSide ends the held reservation of a side call that writes no row.
func (s *Server) releaseSide(sc *call, held bool) {
	if !held {
		return
	}
	s.settle(sc, pricing.Amount{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.store.done(ctx, sc.res, rowNone, sc.start, pricing.Amount{}, s.now())
}

// embedWorst is the most embedding text can cost: its bytes plus the
// fixed preamble (the bound promptBound uses: a byte-level BPE never yields
// more tokens than UTF-8 bytes) at the embedding model's input price, or
// why it cannot be priced.
func (s *Server) embedWorst(text string) (pricing.Amount, string) {
	if s.embedModel != nil {
		if w, ok := worstCost(s.embedModel, int64(len(text))+boundFixed, 0, ""); ok {
			return w, ""
		}
	}
	return pricing.Amount{}, fmt.Sprintf("the embedding model %s has no price in costctl's table and the tenant has a budget; add its price with --pricing FILE", s.cfg.EmbedModel)
}

// Bounds of a verify judge's question: the messages' bytes plus, per
// message, its role and a chat template's tokens, plus a fixed preamble
// (as evaluator bounds a judge's prompt); a repair turn's instruction
// holds a short parse error.
const (
	judgeBoundPerMessage = 16
	judgeRepairBytes     = 128
)

// judgeWorst is the most a verify judge's question (system, user) can
// cost with m: what evaluator.SingleJudge.Ask can bill, its first turn
// and the one repair turn it may add (the first prompt, the first reply
// and the repair instruction), each with a reply of the judge's
// max_tokens, maxOut (SingleJudge.MaxTokens).
func judgeWorst(m *pricing.Model, model string, maxOut int64, system, user string) (pricing.Amount, string) {
	if m == nil {
		return pricing.Amount{}, fmt.Sprintf("the judge's model %s has no price in costctl's table and the tenant has a budget", model)
	}
	first := int64(len(system)+len(user)+2+len(evaluator.AnswerInstruction)) + 2*judgeBoundPerMessage + boundFixed
	repair := first + maxOut + judgeRepairBytes + int64(len(evaluator.AnswerInstruction)) + 2*judgeBoundPerMessage
	w1, ok1 := worstCost(m, first, maxOut, "")
	w2, ok2 := worstCost(m, repair, maxOut, "")
	if !ok1 || !ok2 {
		return pricing.Amount{}, fmt.Sprintf("the judge's model %s has no price in costctl's table and the tenant has a budget", model)
	}
	return w1.Add(w2), ""
}

// checkPrecision switches tenant's semantic cache off when its measured
// precision is below its minimum.
func (s *Server) checkPrecision(ctx context.Context, tenant string, now time.Time) {
	pol := s.policy(tenant)
	if !pol.SemanticCache {
		return
	}
	minBP := pol.MinPrecision
	if minBP <= 0 {
		minBP = ledger.DefaultMinPrecisionBP
	}
	sl := s.cfg.SemanticLedger
	checked, matched, err := sl.Precision(ctx, tenant, now.Add(-s.cfg.VerifyWindow))
	if err != nil {
		s.logf("semantic cache: cannot read tenant %s's precision: %v", tenant, err)
		return
	}
	// Exactly: matched / checked < minBP / 10000.
	if checked < s.cfg.VerifyMin || matched*10_000 >= minBP*checked {
		return
	}
	reason := fmt.Sprintf("measured precision %.1f%% < %.1f%% over %d verified hits",
		float64(matched)*100/float64(checked), float64(minBP)/100, checked)
	if err := sl.SwitchOffSemantic(ctx, tenant, reason, now); err != nil {
		s.logf("semantic cache: cannot switch tenant %s's semantic cache off (%s): %v", tenant, reason, err)
		return
	}
	s.logf("semantic cache of tenant %s switched off: %s", tenant, reason)
	select {
	case s.kick <- struct{}{}: // reload the policies now
	default:
	}
	s.alerts.send(alerts.Alert{Tenant: tenant, Kind: alerts.KindSemanticOff, Who: ledger.SemanticSwitcher, Reason: reason, At: now})
}
