package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/costctl/costctl/alerts"
	"github.com/costctl/costctl/evaluator"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/semcache"
)

// Default upstreams: the public APIs.
const (
	DefaultOpenAIUpstream    = "https://api.openai.com"
	DefaultAnthropicUpstream = "https://api.anthropic.com"
)

// EventWriter is where served calls go: *ledger.Writer (one per process,
// shared with nothing else in the proxy) implements it.
type EventWriter interface {
	Go(ctx context.Context, events []ledger.Event, judges []ledger.JudgeResult, done func(ledger.InsertResult, error))
}

// SpendReader reads what tenants spent from the ledger's rollups: today's
// and this month's at start, and the spike check's windows. *ledger.DB
// implements it.
type SpendReader interface {
	GroupedSince(ctx context.Context, dim string, start, now time.Time) ([]ledger.GroupRow, error)
	Grouped(ctx context.Context, dim string, start, end time.Time) ([]ledger.GroupRow, error)
}

// Config is what a Server is built from.
type Config struct {
	OpenAIUpstream, AnthropicUpstream string // base URLs ("" = the public APIs)
	OpenAIKey, AnthropicKey           string // upstream keys: sent upstream, never logged, stored or echoed
	Control                           ledger.Control
	Spend                             SpendReader // nil: every tenant starts at $0
	Writer                            EventWriter
	Pricing                           *pricing.Table
	Client                            *http.Client // upstream client (nil: a pooled transport)
	Now                               func() time.Time
	Log                               io.Writer // one line per notable event (nil: discarded); never a key
	SampleOut                         io.Writer // eval records of sampled requests (nil: sampling off)
	CacheTTL                          time.Duration
	CacheMaxBytes                     int64         // bound on cached response bytes (0: 64 MiB)
	PolicyInterval                    time.Duration // how often policies are reloaded (0: 500 ms)
	KeyCacheTTL                       time.Duration // how long a found key is trusted (0: 1 s)
	MaxBodyBytes                      int64         // largest request body (0: 32 MiB)
	Notifier                          Notifier      // budget, block and spike alerts (nil: none)
	SpikeFactor                       float64       // spike alert above this × baseline (≤ 1: no spike alerts)
	SpikeFloor                        pricing.Money // least baseline per 5 minutes (0: DefaultSpikeFloor)
	SpikeInterval                     time.Duration // how often spikes are checked (0: 1 minute)

	// Shared budgets (fleets). Redis, when set, keeps budget counters and
	// the exact cache in Redis (keys under RedisPrefix, "" = "costctl:")
	// and spreads policy changes; else Holds, when set, keeps budget
	// reservations as ledger holds; else budgets live in this process.
	Holds             HoldStore
	Redis             redis.UniversalClient
	RedisPrefix       string
	ReconcileInterval time.Duration // Redis counters reconciled with the ledger (0: 30 s)
	// MaxCallDuration bounds a call with a shared budget (0: 30 minutes):
	// it is cut (and billed what it relayed) before its hold expires.
	MaxCallDuration time.Duration

	// The semantic cache (semantic.go), per tenant policy.
	EmbedUpstream      string            // OpenAI-compatible /v1/embeddings base URL ("" = OpenAIUpstream), called with OpenAIKey
	EmbedModel         string            // "" = semcache.DefaultEmbedModel
	Embedder           semcache.Embedder // nil: an OpenAIEmbedder on EmbedUpstream
	SemanticStore      semcache.Store    // nil: in Redis with Redis (RedisSemStore), else in this process (semcache.NewMemStore)
	SemanticMaxEntries int               // entries per partition (0: DefaultSemanticMaxEntries)
	SemanticMaxTotal   int               // entries in this process's memory store, all partitions (0: DefaultSemanticMaxTotal)
	SemanticLedger     SemanticLedger    // verifications (nil: Control when it implements it)
	VerifySampleBP     int64             // share of semantic hits also sent upstream, basis points (0: none)
	VerifyWindow       time.Duration     // precision measured over (0: DefaultVerifyWindow)
	VerifyMin          int64             // least verifications before a switch-off (0: DefaultVerifyMin)

	// policyTick, when set, replaces the policy reload ticker (tests).
	policyTick <-chan time.Time
}

// holdMargin is how long a hold outlives its call's longest run: time to
// commit the call's row before the hold stops counting.
const holdMargin = 5 * time.Minute

// Server is the proxy's http.Handler.
type Server struct {
	cfg     Config
	client  *http.Client
	now     func() time.Time
	store   budgetStore
	shared  bool // budgets shared with other processes (holds or Redis)
	cache   responseCache
	kick    chan struct{} // reload the policies now (a change published on Redis)
	sampler *sampler
	alerts  *alerter

	embedModel *pricing.Model // of the semantic cache's embeddings (nil: unpriced)
	bgWG       sync.WaitGroup // semantic cache work after the answer: verifications, embeddings to store

	policies atomic.Pointer[map[string]ledger.Policy]
	keysMu   sync.Mutex
	keys     map[string]keyEntry

	runID string
	seq   atomic.Int64
	wg    sync.WaitGroup // handlers in flight

	events    chan queued // rows on their way to the Writer (batchLoop)
	batchDone chan struct{}
	closeOnce sync.Once
	stop      chan struct{}
	loopWG    sync.WaitGroup

	logMu        sync.Mutex
	warnedSample atomic.Bool

	// Counters (read by tests and the shutdown line).
	Served, Refused, WriteErrors atomic.Int64
}

// queued is a row on its way to the ledger, with the reservation its
// commit ends.
type queued struct {
	e      ledger.Event
	res    reservation
	hasRes bool
}

type keyEntry struct {
	k   ledger.VirtualKey
	exp time.Time
}

// Route kinds.
const (
	kindChat       = "chat"
	kindResponses  = "responses"
	kindEmbeddings = "embeddings"
	kindModels     = "models"
	kindMessages   = "messages"
	kindCount      = "count_tokens"
)

type routeSpec struct {
	provider, kind string
	billed         bool
}

// routes are the only requests the proxy serves: every other one is a 404,
// so no unpriced passthrough can bypass a budget.
var routes = map[string]routeSpec{
	"POST /v1/chat/completions":      {OpenAI, kindChat, true},
	"POST /v1/responses":             {OpenAI, kindResponses, true},
	"POST /v1/embeddings":            {OpenAI, kindEmbeddings, true},
	"GET /v1/models":                 {OpenAI, kindModels, false},
	"POST /v1/messages":              {Anthropic, kindMessages, true},
	"POST /v1/messages/count_tokens": {Anthropic, kindCount, false},
}

const routeList = "POST /v1/chat/completions, POST /v1/responses, POST /v1/embeddings, GET /v1/models (OpenAI); POST /v1/messages, POST /v1/messages/count_tokens (Anthropic)"

// New builds a proxy: it loads the policies and today's and this month's
// spend per tenant, and starts the policy reload loop. Close stops it.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Control == nil || cfg.Writer == nil || cfg.Pricing == nil {
		return nil, errors.New("proxy: Control, Writer and Pricing are required")
	}
	if cfg.OpenAIUpstream == "" {
		cfg.OpenAIUpstream = DefaultOpenAIUpstream
	}
	if cfg.AnthropicUpstream == "" {
		cfg.AnthropicUpstream = DefaultAnthropicUpstream
	}
	cfg.OpenAIUpstream = strings.TrimRight(cfg.OpenAIUpstream, "/")
	cfg.AnthropicUpstream = strings.TrimRight(cfg.AnthropicUpstream, "/")
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.PolicyInterval <= 0 {
		cfg.PolicyInterval = 500 * time.Millisecond
	}
	if cfg.KeyCacheTTL <= 0 {
		cfg.KeyCacheTTL = time.Second
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 32 << 20
	}
	if cfg.CacheMaxBytes <= 0 {
		cfg.CacheMaxBytes = 64 << 20
	}
	if cfg.SpikeFloor <= 0 {
		cfg.SpikeFloor = DefaultSpikeFloor
	}
	if cfg.SpikeInterval <= 0 {
		cfg.SpikeInterval = time.Minute
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 24 * time.Hour
	}
	if cfg.RedisPrefix == "" {
		cfg.RedisPrefix = "costctl:"
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = 30 * time.Second
	}
	if cfg.MaxCallDuration <= 0 {
		cfg.MaxCallDuration = 30 * time.Minute
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: NewTransport()}
	}
	var id [6]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read does not fail (it crashes the program instead)
	s := &Server{cfg: cfg, client: client, now: cfg.Now, keys: map[string]keyEntry{},
		runID: hex.EncodeToString(id[:]), stop: make(chan struct{}), kick: make(chan struct{}, 1)}
	holder := "proxy " + s.runID
	if h, err := os.Hostname(); err == nil {
		holder += " on " + h
	}
	holdTTL := cfg.MaxCallDuration + holdMargin
	switch {
	case cfg.Redis != nil:
		s.store = &redisBudgets{rdb: cfg.Redis, prefix: cfg.RedisPrefix, spend: cfg.Spend, ttl: holdTTL, logf: s.logf}
		s.cache = &redisCache{rdb: cfg.Redis, prefix: cfg.RedisPrefix, ttl: cfg.CacheTTL, logf: s.logf, timeout: time.Second}
		s.shared = true
	case cfg.Holds != nil:
		s.store = &ledgerBudgets{h: cfg.Holds, ttl: holdTTL, holder: holder, logf: s.logf}
		s.shared = true
	default:
		s.store = &memBudgets{b: newBudgets(), spend: cfg.Spend}
	}
	if s.cache == nil {
		mc := newCache(cfg.CacheMaxBytes, cfg.CacheTTL)
		mc.nowFunc = cfg.Now
		s.cache = mc
	}
	s.alerts = newAlerter(cfg.Notifier)
	s.semSetup()
	if err := s.reloadPolicies(ctx); err != nil {
		return nil, err
	}
	if err := s.store.refresh(ctx, s.now(), s.allPolicies()); err != nil {
		return nil, err
	}
	if cfg.SampleOut != nil {
		s.sampler = newSampler(cfg.SampleOut, s.logf)
	}
	s.events, s.batchDone = make(chan queued, 4096), make(chan struct{})
	go s.batchLoop()
	s.loopWG.Add(3)
	go s.policyLoop()
	go s.spikeLoop()
	go s.semSweepLoop()
	if cfg.Redis != nil {
		ps := s.subscribe()
		s.loopWG.Add(2)
		go s.reconcileLoop()
		go s.subscribePolicies(ps)
	}
	return s, nil
}

// NewTransport is the upstream transport: pooled keep-alive connections
// sized for many concurrent streams, no overall timeout (a stream may run
// for minutes).
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 512
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// Wait returns when every handler that started has returned (after the
// http.Server stopped accepting): each has queued its ledger row by then.
func (s *Server) Wait() { s.wg.Wait() }

// Close stops the policy and spike loops, hands the last rows to the
// Writer and flushes the sampler. Call it after Wait. The ledger Writer
// and the Notifier belong to the caller, which closes them after Close,
// so every served call is committed.
func (s *Server) Close() {
	s.closeOnce.Do(s.close)
}

func (s *Server) close() {
	s.bgWG.Wait() // their rows go to the ledger too
	close(s.stop)
	s.loopWG.Wait()
	close(s.events)
	<-s.batchDone
	if s.sampler != nil {
		s.sampler.close()
	}
}

func (s *Server) logf(format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	line = evaluator.Redact(line, s.cfg.OpenAIKey, s.cfg.AnthropicKey)
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.cfg.Log, "%s costctl proxy: %s\n", s.now().UTC().Format(time.RFC3339), line)
}

// policyLoop reloads the policies every PolicyInterval, so a change made
// with costctl policy applies within about a second.
func (s *Server) policyLoop() {
	defer s.loopWG.Done()
	tick := s.cfg.policyTick
	if tick == nil {
		t := time.NewTicker(s.cfg.PolicyInterval)
		defer t.Stop()
		tick = t.C
	}
	failing := false
	n := 0
	for {
		select {
		case <-s.stop:
			return
		case <-tick:
		case <-s.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.reloadPolicies(ctx)
		// Other writers' spend (ingest, eval, another proxy) joins the
		// budgets at every SpendEvery-th reload (Redis: reconcileLoop).
		if n++; err == nil && n%spendEvery == 0 && s.cfg.Redis == nil {
			err = s.store.refresh(ctx, s.now(), s.allPolicies())
		}
		cancel()
		if err != nil && !failing {
			s.logf("cannot reload policies or spend (keeping the last ones): %v", err)
		}
		failing = err != nil
	}
}

// spendEvery: the ledger's spend per tenant is read again every few policy
// reloads (2 s at the default 500 ms), a handful of rollup queries.
const spendEvery = 4

func (s *Server) reloadPolicies(ctx context.Context) error {
	p, err := s.cfg.Control.Policies(ctx)
	if err != nil {
		return fmt.Errorf("proxy: read policies: %w", err)
	}
	if p == nil {
		p = map[string]ledger.Policy{}
	}
	old := s.policies.Swap(&p)
	if old != nil && s.cfg.Redis != nil && !reflect.DeepEqual(*old, p) {
		s.publishPolicyChange(ctx, p)
	}
	if s.sampler == nil && !s.warnedSample.Load() {
		for t, np := range p {
			if np.SampleBP > 0 && s.warnedSample.CompareAndSwap(false, true) {
				s.logf("warning: tenant %s has a sample share but this proxy runs without --sample-out: no samples are written", t)
			}
		}
	}
	if old == nil {
		return nil
	}
	for t, np := range p {
		if (*old)[t].Blocked != np.Blocked {
			s.blockChanged(ctx, t, np.Blocked)
		}
	}
	for t, op := range *old {
		if _, ok := p[t]; !ok && op.Blocked {
			s.blockChanged(ctx, t, false)
		}
	}
	return nil
}

// blockChanged raises a blocked or unblocked alert, with who changed the
// policy and why (the last audit row).
func (s *Server) blockChanged(ctx context.Context, tenant string, blocked bool) {
	kind := alerts.KindUnblocked
	if blocked {
		kind = alerts.KindBlocked
	}
	s.logf("tenant %s %s", tenant, kind)
	if !s.alerts.on() {
		return
	}
	a := alerts.Alert{Tenant: tenant, Kind: kind, At: s.now()}
	if ch, err := s.cfg.Control.PolicyChanges(ctx, tenant); err == nil && len(ch) > 0 {
		last := ch[len(ch)-1]
		for _, c := range ch {
			if c.At.After(last.At) {
				last = c
			}
		}
		a.Who, a.Reason = last.Who, last.Reason
	}
	s.alerts.send(a)
}

func (s *Server) allPolicies() map[string]ledger.Policy {
	if p := s.policies.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Server) policy(tenant string) ledger.Policy {
	if p := s.policies.Load(); p != nil {
		return (*p)[tenant]
	}
	return ledger.Policy{}
}

// lookupKey finds the active virtual key with this secret; found keys are
// trusted for KeyCacheTTL (so a revocation applies within it).
func (s *Server) lookupKey(ctx context.Context, secret string) (ledger.VirtualKey, bool, error) {
	h := ledger.HashKey(secret)
	now := s.now()
	s.keysMu.Lock()
	e, ok := s.keys[h]
	s.keysMu.Unlock()
	if ok && now.Before(e.exp) {
		return e.k, true, nil
	}
	k, found, err := s.cfg.Control.KeyByHash(ctx, h)
	if err != nil {
		return ledger.VirtualKey{}, false, err
	}
	if !found || !k.RevokedAt.IsZero() {
		s.keysMu.Lock()
		delete(s.keys, h)
		s.keysMu.Unlock()
		return ledger.VirtualKey{}, false, nil
	}
	s.keysMu.Lock()
	if len(s.keys) > 100_000 {
		clear(s.keys)
	}
	s.keys[h] = keyEntry{k: k, exp: now.Add(s.cfg.KeyCacheTTL)}
	s.keysMu.Unlock()
	return k, true, nil
}

// virtualKey is the secret a client sent: Authorization: Bearer (OpenAI
// SDKs) or x-api-key (Anthropic SDKs).
func virtualKey(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			return strings.TrimSpace(a[7:])
		}
	}
	return strings.TrimSpace(r.Header.Get("X-Api-Key"))
}

// guessProvider picks the error format for a request to no known route.
func guessProvider(r *http.Request) string {
	if r.Header.Get("X-Api-Key") != "" || r.Header.Get("Anthropic-Version") != "" {
		return Anthropic
	}
	return OpenAI
}

func (s *Server) upstream(provider string) (base, key string) {
	if provider == Anthropic {
		return s.cfg.AnthropicUpstream, s.cfg.AnthropicKey
	}
	return s.cfg.OpenAIUpstream, s.cfg.OpenAIKey
}

func keyEnv(provider string) string {
	if provider == Anthropic {
		return "ANTHROPIC_API_KEY"
	}
	return "OPENAI_API_KEY"
}

// call is one request in flight.
type call struct {
	rt         routeSpec
	path       string
	key        ledger.VirtualKey
	pol        ledger.Policy
	req        *request
	body       []byte // as forwarded
	origBody   []byte // as received (sampling, cache key)
	model      *pricing.Model
	bound      int64
	maxOut     int64
	routedFrom string
	start      time.Time
	res        reservation
	settled    bool
	cacheKey   string
	cacheable  bool
	sem        *semState // a semantic cache miss to store
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.wg.Add(1)
	defer s.wg.Done()
	rt, ok := routes[r.Method+" "+r.URL.Path]
	if !ok {
		s.Refused.Add(1)
		writeError(w, guessProvider(r), apiError{status: http.StatusNotFound, typ: ErrNotFound,
			msg: fmt.Sprintf("costctl proxy does not serve %s %s; it serves only %s, so no call escapes pricing and budgets", r.Method, r.URL.Path, routeList)})
		return
	}
	fail := func(e apiError) {
		s.Refused.Add(1)
		writeError(w, rt.provider, e)
	}
	secret := virtualKey(r)
	if secret == "" {
		fail(apiError{status: 401, typ: ErrAuth, msg: "no virtual key: send it as Authorization: Bearer KEY or x-api-key: KEY (create one with costctl keys create --tenant T)"})
		return
	}
	vk, found, err := s.lookupKey(r.Context(), secret)
	if err != nil {
		s.logf("key lookup failed: %v", err)
		fail(apiError{status: 503, typ: ErrUpstream, msg: "costctl proxy cannot read its key store right now; retry shortly", retryAfter: time.Second})
		return
	}
	if !found {
		fail(apiError{status: 401, typ: ErrAuth, msg: "unknown or revoked virtual key (costctl keys list shows the active ones)"})
		return
	}
	pol := s.policy(vk.Tenant)
	if pol.Blocked {
		fail(apiError{status: 403, typ: ErrBlocked, msg: fmt.Sprintf("tenant %s is blocked by costctl policy; an operator lifts it with costctl policy set --tenant %s --unblock --reason TEXT", vk.Tenant, vk.Tenant)})
		return
	}
	base, upKey := s.upstream(rt.provider)
	if upKey == "" {
		fail(apiError{status: 502, typ: ErrNoUpstreamKey, msg: fmt.Sprintf("costctl proxy has no %s: set it in the proxy's environment and restart it", keyEnv(rt.provider))})
		return
	}
	c := &call{rt: rt, path: r.URL.Path, key: vk, pol: pol, start: s.now()}
	if !rt.billed {
		s.passthrough(w, r, c, base, upKey)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(apiError{status: 413, typ: ErrTooLarge, msg: fmt.Sprintf("request body is over %d bytes", s.cfg.MaxBodyBytes)})
			return
		}
		return // the client went away
	}
	c.origBody, c.body = body, body
	if c.req, err = parseRequest(body); err != nil {
		fail(apiError{status: 400, typ: ErrInvalid, msg: "request body is not a JSON object: " + err.Error()})
		return
	}
	if c.req.Model == "" {
		fail(apiError{status: 400, typ: ErrInvalid, msg: "request has no model"})
		return
	}
	if !s.prepare(c) {
		fail(apiError{status: 400, typ: ErrInvalid, msg: "request body could not be rewritten"})
		return
	}
	if to := c.routedFrom; to != "" {
		w.Header().Set("X-Costctl-Routed-From", c.routedFrom)
	}
	// The cache: a hit costs nothing and needs no reservation.
	if s.cacheLookup(w, r, c) || s.semanticLookup(w, r, c) {
		return
	}
	if e := s.reserve(r.Context(), c); e != nil {
		fail(*e)
		return
	}
	defer func() {
		if !c.settled {
			// No row: the reservation ends here.
			s.settle(c, pricing.Amount{})
			s.store.done(context.WithoutCancel(r.Context()), c.res, rowNone, c.start, pricing.Amount{}, s.now())
		}
	}()
	if s.shared {
		// A shared budget's hold expires: the call is cut before it does.
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.MaxCallDuration)
		defer cancel()
		r = r.WithContext(ctx)
	}
	s.forward(w, r, c, base, upKey)
}

// prepare routes the model, injects include_usage, looks the model up and
// bounds the call.
func (s *Server) prepare(c *call) bool {
	modified := false
	if to, ok := c.pol.Routes[c.req.Model]; ok && to != "" && to != c.req.Model {
		c.routedFrom = c.req.Model
		c.req.Model = to
		c.req.fields["model"], _ = json.Marshal(to)
		modified = true
	}
	if c.rt.kind == kindChat && c.req.Stream && !c.req.IncludeUsage {
		so := map[string]json.RawMessage{}
		if v, ok := c.req.fields["stream_options"]; ok {
			_ = json.Unmarshal(v, &so) // stream_options that do not read are replaced by include_usage alone
		}
		so["include_usage"] = json.RawMessage("true")
		c.req.fields["stream_options"], _ = json.Marshal(so)
		modified = true
	}
	if modified {
		b, err := json.Marshal(c.req.fields)
		if err != nil {
			return false
		}
		c.body = b
	}
	c.model, _ = s.cfg.Pricing.Lookup(c.req.Model)
	c.bound = promptBound(c.body, c.req) // what is forwarded: a routed model or include_usage may add bytes
	if c.rt.kind != kindEmbeddings {
		c.maxOut = c.req.MaxOut
		if c.maxOut == 0 && c.model != nil {
			c.maxOut = c.model.MaxOutput
			if c.maxOut == 0 {
				c.maxOut = c.model.ContextWindow
			}
		}
		c.maxOut *= c.req.N
	}
	return true
}

func budgeted(p ledger.Policy) bool { return p.DailyBudget > 0 || p.MonthlyBudget > 0 }

// worstCase is the most c can cost (its prompt bound and maximum output),
// or why it cannot be bounded while its tenant has a budget.
func (s *Server) worstCase(c *call) (pricing.Amount, *apiError) {
	tenant := c.key.Tenant
	var worst pricing.Amount
	if c.model != nil && (c.maxOut > 0 || c.rt.kind == kindEmbeddings) {
		if w, ok := worstCost(c.model, c.bound, c.maxOut, c.req.ServiceTier); ok {
			worst = w
		} else if budgeted(c.pol) {
			return pricing.Amount{}, &apiError{status: 400, typ: ErrUnpriced, msg: fmt.Sprintf("model %s has no price for service tier %q in costctl's table and tenant %s has a budget; leave service_tier out or add the rates with --pricing FILE", c.req.Model, c.req.ServiceTier, tenant)}
		}
	} else if budgeted(c.pol) {
		if c.model == nil {
			return pricing.Amount{}, &apiError{status: 400, typ: ErrUnpriced, msg: fmt.Sprintf("model %s has no price in costctl's table and tenant %s has a budget, so the call cannot be bounded; add its price with --pricing FILE or route it to a priced model", c.req.Model, tenant)}
		}
		return pricing.Amount{}, &apiError{status: 400, typ: ErrInvalid, msg: fmt.Sprintf("model %s publishes no maximum output and the request sets none; set max_tokens so tenant %s's budget can bound the call", c.req.Model, tenant)}
	}
	return worst, nil
}

// reserve holds the call's worst case against the tenant's budgets.
func (s *Server) reserve(ctx context.Context, c *call) *apiError {
	worst, e := s.worstCase(c)
	if e != nil {
		return e
	}
	tenant := c.key.Tenant
	res, over, err := s.store.reserve(ctx, tenant, c.pol, worst, c.start)
	if err != nil {
		s.logf("budget store unavailable: %v", err)
		return &apiError{status: 503, typ: ErrUpstream, msg: "costctl proxy cannot reach its budget store right now; retry shortly", retryAfter: time.Second}
	}
	if over != nil {
		s.alerts.budget(tenant, over.period, over.budget, over.spent, 100, c.start) // settled + in flight: what the budget is holding
		return &apiError{status: 429, typ: ErrBudget, msg: over.Error(), retryAfter: over.resetAt.Sub(c.start)}
	}
	c.res = res
	return nil
}

// settle ends the call's reservation with its cost and raises threshold
// alerts.
func (s *Server) settle(c *call, actual pricing.Amount) {
	if c.settled {
		return
	}
	c.settled = true
	sp := s.store.settle(c.res, actual, s.now())
	pol := s.policy(c.key.Tenant)
	s.alerts.crossed(sp, pol, s.now())
}

// settleEvent settles c with e's cost; a call the table could not price
// (a tier or kind of token without a rate) keeps its reservation as its
// cost, so an unknown cost never frees budget.
func (s *Server) settleEvent(c *call, e *ledger.Event, cost pricing.Amount) {
	if e.Unpriced {
		cost = c.res.amt
		c.res.unpriced = true
	}
	s.settle(c, cost)
}

// hop-by-hop and credential headers never cross the proxy.
var dropRequestHeaders = []string{"Authorization", "X-Api-Key", "Proxy-Authorization", "Cookie", "Connection",
	"Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection", "Accept-Encoding", "Content-Length", "Host",
	"X-Costctl-Cache"}

var dropResponseHeaders = []string{"Connection", "Keep-Alive", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection",
	"Content-Length", "Content-Encoding", "Set-Cookie"}

// upstreamRequest builds the request to the upstream with its own key.
func upstreamRequest(ctx context.Context, r *http.Request, provider, base, key string, body []byte) (*http.Request, error) {
	u := base + r.URL.Path
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	up, err := http.NewRequestWithContext(ctx, r.Method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		up.Header[k] = vs
	}
	for _, h := range dropRequestHeaders {
		up.Header.Del(h)
	}
	if provider == Anthropic {
		up.Header.Set("X-Api-Key", key)
		if up.Header.Get("Anthropic-Version") == "" {
			up.Header.Set("Anthropic-Version", "2023-06-01")
		}
	} else {
		up.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		up.Header.Set("Content-Type", "application/json")
	}
	return up, nil
}

func copyResponseHeaders(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = vs
	}
	for _, h := range dropResponseHeaders {
		dst.Del(h)
	}
}

// passthrough serves the free routes (GET /v1/models, count_tokens): no
// budget, no ledger row.
func (s *Server) passthrough(w http.ResponseWriter, r *http.Request, c *call, base, key string) {
	var body []byte
	if r.Method == http.MethodPost {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
		if err != nil {
			return
		}
		body = b
	}
	up, err := upstreamRequest(r.Context(), r, c.rt.provider, base, key, body)
	if err != nil {
		writeError(w, c.rt.provider, apiError{status: 502, typ: ErrUpstream, msg: "cannot build the upstream request"})
		return
	}
	resp, err := s.client.Do(up)
	if err != nil {
		s.upstreamFailed(w, r, c, err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return
	}
	if resp.StatusCode >= 300 {
		b = []byte(s.redact(string(b), r))
	}
	copyResponseHeaders(w.Header(), resp.Header)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(b) // a client gone away: the free routes bill nothing
}

// redact removes both upstream keys and the client's virtual key from text
// an upstream sent.
func (s *Server) redact(text string, r *http.Request) string {
	return evaluator.Redact(text, s.cfg.OpenAIKey, s.cfg.AnthropicKey, virtualKey(r))
}

func (s *Server) upstreamFailed(w http.ResponseWriter, r *http.Request, c *call, err error) {
	if r.Context().Err() != nil {
		return // the client went away
	}
	msg := s.redact(err.Error(), r)
	s.logf("upstream %s unreachable: %s", c.rt.provider, msg)
	writeError(w, c.rt.provider, apiError{status: 502, typ: ErrUpstream, msg: "costctl proxy could not reach the upstream: " + msg})
}

// forward sends the call upstream and relays the answer.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, c *call, base, key string) {
	// Whether the request was written to the upstream: one that was, and
	// got no answer, may be billed.
	var sent atomic.Bool
	ctx := httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				sent.Store(true)
			}
		},
	})
	up, err := upstreamRequest(ctx, r, c.rt.provider, base, key, c.body)
	if err != nil {
		writeError(w, c.rt.provider, apiError{status: 502, typ: ErrUpstream, msg: "cannot build the upstream request"})
		return
	}
	resp, err := s.client.Do(up)
	if err != nil {
		if sent.Load() {
			// Sent, then cut or cancelled before an answer: recorded at
			// its worst case, as eval records such a call.
			s.recordUnsettled(c)
		}
		s.upstreamFailed(w, r, c, err)
		return
	}
	defer resp.Body.Close()
	copyResponseHeaders(w.Header(), resp.Header)
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		b = []byte(s.redact(string(b), r))
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(b) // a client gone away: an upstream error bills nothing
		return
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		s.relayStream(w, r, c, resp)
		return
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		// Sent and cut before the whole answer: it may be billed, so it
		// is recorded at its worst case.
		s.recordUnsettled(c)
		if r.Context().Err() == nil {
			writeError(w, c.rt.provider, apiError{status: 502, typ: ErrUpstream, msg: "the upstream answer was cut short"})
		}
		return
	}
	u, text := replyUsage(c.rt.kind, b)
	e := s.event(c)
	e.Status = int64(resp.StatusCode)
	if u.ok {
		u.event(&e)
	} else {
		e.InputTokens, e.OutputTokens, e.Estimate = c.bound, counterFor(c.model).Text(text), ledger.EstimateNoUsage
	}
	cost := price(c.model, &e)
	s.settleEvent(c, &e, cost)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(b) // a client gone away: the call is billed below all the same
	s.recordCall(c, e)
	s.served(c, e, text)
	if c.cacheable && u.ok {
		s.cache.put(c.cacheKey, &cacheEntry{full: b, contentType: resp.Header.Get("Content-Type"), usage: u, kind: c.rt.kind, text: text})
	}
	if c.sem != nil && u.ok {
		// The client has its whole answer before the entry is stored:
		// storing (a signature, a store write) is not on its path.
		_ = http.NewResponseController(w).Flush() // a client gone away: the entry is stored all the same
		s.semPut(c, &cacheEntry{full: b, contentType: resp.Header.Get("Content-Type"), usage: u, kind: c.rt.kind, text: text}, cost)
	}
}

// recordUnsettled bills a call that was sent but got no (whole) answer at
// its worst case (the prompt bound and the output bound), marked
// ledger.EstimateUnsettled: it may have been billed in full.
func (s *Server) recordUnsettled(c *call) {
	e := s.event(c)
	e.InputTokens, e.OutputTokens, e.Estimate = c.bound, c.maxOut, ledger.EstimateUnsettled
	s.settleEvent(c, &e, price(c.model, &e))
	s.recordCall(c, e)
	s.Served.Add(1)
}

// event is the ledger row of c, without usage and cost.
func (s *Server) event(c *call) ledger.Event {
	end := s.now()
	model := c.req.Model
	if c.model != nil {
		model = c.model.Name
	}
	return ledger.Event{
		Key:       fmt.Sprintf("proxy:%s:%d", s.runID, s.seq.Add(1)),
		Time:      c.start,
		Source:    ledger.SourceProxy,
		Tenant:    c.key.Tenant,
		User:      c.key.User,
		Endpoint:  c.path,
		Metric:    c.key.Name,
		Model:     model,
		LatencyMS: max(end.Sub(c.start).Milliseconds(), 0),
	}
}

// record queues e for the ledger. Rows are handed to the Writer in
// batches (every batchEvery or batchMax rows, whichever comes first), so
// a busy proxy commits a few large transactions rather than many small
// ones; a row is committed well within a second of its call's end.
func (s *Server) record(e ledger.Event) {
	s.events <- queued{e: e}
}

// recordCall queues c's row; its reservation ends once the row is
// committed.
func (s *Server) recordCall(c *call, e ledger.Event) {
	s.events <- queued{e: e, res: c.res, hasRes: true}
}

const (
	batchEvery = 20 * time.Millisecond
	batchMax   = 512
)

func (s *Server) batchLoop() {
	defer close(s.batchDone)
	t := time.NewTicker(batchEvery)
	defer t.Stop()
	var buf []queued
	flush := func() {
		if len(buf) == 0 {
			return
		}
		qs := buf
		buf = make([]queued, 0, 64)
		evs := make([]ledger.Event, len(qs))
		for i := range qs {
			evs[i] = qs[i].e
		}
		s.cfg.Writer.Go(context.Background(), evs, nil, func(_ ledger.InsertResult, err error) {
			o := rowCommitted
			if err != nil {
				s.WriteErrors.Add(int64(len(evs)))
				s.logf("ledger write of %d rows failed: %v", len(evs), err)
				o = rowFailed
			}
			now := s.now()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := range qs {
				if qs[i].hasRes {
					s.store.done(ctx, qs[i].res, o, qs[i].e.Time, qs[i].e.CostExact, now)
				}
			}
		})
	}
	for {
		select {
		case q, ok := <-s.events:
			if !ok {
				flush()
				return
			}
			buf = append(buf, q)
			if len(buf) >= batchMax {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}

// served does what follows a served call: sampling.
func (s *Server) served(c *call, e ledger.Event, text string) {
	s.Served.Add(1)
	if s.sampler != nil && c.pol.SampleBP > 0 && sampled(c.key.Tenant, c.origBody, c.pol.SampleBP) {
		s.sampler.add(c, e, text)
	}
}
