package commands

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/costctl/costctl/alerts"
	"github.com/costctl/costctl/evaluator"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/proxy"
	"github.com/costctl/costctl/semcache"
)

// ProxyOptions are the inputs of `costctl proxy`.
type ProxyOptions struct {
	IO         *IOStreams
	Getenv     func(string) string
	Now        func() time.Time
	Pricing    func() (*pricing.Table, error)
	Ledger     func(context.Context) (*ledger.DB, error)
	HTTPClient *http.Client // the webhook's client

	Listen            string
	Upstream          string
	AnthropicUpstream string
	SampleOut         string
	Webhook           string
	DrainTimeout      time.Duration
	CacheTTL          time.Duration
	SpikeFactor       float64
	SharedBudget      bool
	Redis             string
	RedisPrefix       string
	RedisReconcile    time.Duration
	MaxCallDuration   time.Duration

	// The semantic cache (per tenant: policy set --semantic-cache on).
	EmbedUpstream      string // "" = Upstream
	EmbedModel         string
	SemanticMaxEntries int
	SemanticMaxTotal   int
	SemanticStore      string // memory, ledger or redis ("" = redis with --redis, else memory)
	VerifySample       string // share of semantic hits verified upstream, percent ("2%")
	VerifyWindow       time.Duration
	VerifyMin          int64
	VerifyJudge        string // OpenAI-compatible judge model for answers that differ ("" = exact match only)
	verifyBP           int64

	// Ready, when set, is called with the address the proxy listens on
	// once it accepts connections (tests listen on port 0).
	Ready func(addr string)
}

func newProxyCmd(f *Factory, runF func(*ProxyOptions) error) *cobra.Command {
	opts := &ProxyOptions{IO: f.IO, Getenv: f.Getenv, Now: f.Now, Pricing: f.Pricing, Ledger: f.OpenLedger, HTTPClient: f.HTTPClient}
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "A cost gateway: virtual keys, hard per-tenant budgets, block/route/sample/cache, every call on the ledger",
		Long: `Serve the OpenAI and Anthropic APIs on --listen (loopback by default) in
front of the real ones, so every call is priced exactly and written to the
ledger (source proxy) as it happens: top shows it live.

Clients use a virtual key from costctl keys create, as Authorization: Bearer
KEY (OpenAI SDKs: set the base URL to http://LISTEN/v1) or x-api-key: KEY
(Anthropic SDKs: base URL http://LISTEN). The proxy swaps it for
OPENAI_API_KEY or ANTHROPIC_API_KEY from its own environment; neither key is
ever forwarded to the wrong side, logged, stored or echoed.

Routes: POST /v1/chat/completions, /v1/responses, /v1/embeddings and GET
/v1/models (OpenAI); POST /v1/messages and /v1/messages/count_tokens
(Anthropic). Every other route is a 404: nothing passes unpriced.

Each tenant's policy (costctl policy set) applies within a second:
  --block              403 tenant_blocked
  --daily-budget, --monthly-budget
                       each request reserves its worst case (prompt bound +
                       max_tokens, else the model's maximum output) before it
                       is sent and settles to its real cost, so spend never
                       exceeds a budget under any concurrency; over it: 429
                       budget_exceeded with Retry-After (budgets reset at
                       00:00 UTC and on the 1st)
  --route FROM=TO      serves FROM with TO (header x-costctl-routed-from)
  --sample PCT         writes that share of requests to --sample-out as
                       costctl eval records
  --cache on           exact cache of deterministic requests (temperature 0,
                       or a seed; or header x-costctl-cache: force), in
                       memory for --cache-ttl; a hit costs $0 and records
                       what it avoided
  --semantic-cache on  deterministic chat completions, messages and responses
                       that miss the exact cache are answered from an
                       earlier request of the same tenant, model and
                       everything but the last user message when the two
                       last user messages agree on numbers, negations and
                       word order and are --similarity alike (header
                       x-costctl-cache: semantic, x-costctl-similarity);
                       only a request that agrees with a stored one is
                       embedded before its call (--embed-upstream,
                       --embed-model; a ledger row, metric
                       semantic-cache:embed), the others after their answer,
                       to be stored; in this process's
                       memory (in Redis with --redis; in the ledger, shared
                       by every proxy on it, with --semantic-store ledger),
                       at most --semantic-max-entries per partition (and
                       --semantic-max-total in all, in memory).
                       --verify-sample of the hits are also sent upstream
                       (billed) and compared: equal texts match; with
                       --verify-judge MODEL, texts that differ are judged
                       (score >= 0.5 is a match) by MODEL on the OpenAI
                       upstream with OPENAI_API_KEY, as an eval judge is
                       (retries, one repair turn), a ledger row of the
                       tenant (metric semantic-cache:verify-judge, its
                       cost); without it they are a mismatch; a judge
                       failure counts the hit neither way. A tenant whose
                       precision over --verify-window (at least
                       --verify-min checks) is below its --min-precision
                       is switched off, with a semantic_off alert

Each served call is one ledger row: source proxy, tenant and user of the
virtual key, metric = the key's name, endpoint = the route
(/v1/chat/completions), the model served, tokens by kind, exact cost,
latency. Refusals (401/403/404/429) and upstream errors are not calls and
write no row; models and count_tokens are free and write none either.

Streams are relayed event by event; a stream cut before its usage is billed
the prompt bound plus the tokens relayed, marked estimated; a call sent and
never answered is billed its worst case, marked unsettled. --webhook URL
gets an alert (JSON with a Slack-compatible text) when a tenant crosses
50/80/100% of a budget, is blocked or unblocked, or spends more than
--spike-factor times its baseline over the last 5 minutes (its spend in the
same hour over the past 7 days, never less than $1 per 5 minutes); at most
one per tenant, kind and period a day, retried with backoff, never on the
request path. SIGTERM or Ctrl-C stops accepting, lets in-flight calls finish
(up to --drain-timeout, then cuts and bills them), flushes the ledger and
exits 0 (1 if a served call could not be written to the ledger).

Fleets: several proxies in front of one ledger share each tenant's budget
with --shared-budget (the default on a PostgreSQL ledger: reservations
are holds in the ledger, checked and taken in one transaction, so the
budget holds in aggregate across every process) or with --redis URL (counters, block changes and the exact cache
in Redis; the ledger stays the record of truth, reconciled on start and
every --redis-reconcile). With a shared budget a call runs at most
--max-call-duration; a proxy that dies holding a reservation keeps it
counted until then plus 5 minutes. Without either, budgets live in the
proxy's memory: right for one proxy.` + exitStatusSection,
		Example: `  OPENAI_API_KEY=sk-... costctl proxy --db spend.db
  costctl proxy --listen 127.0.0.1:9000 --upstream http://127.0.0.1:8080 --sample-out samples.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.DrainTimeout < 0 {
				return usageErrorf("--drain-timeout must not be negative")
			}
			if opts.CacheTTL <= 0 {
				return usageErrorf("--cache-ttl must be positive (e.g. 24h)")
			}
			if opts.SpikeFactor <= 1 {
				return usageErrorf("--spike-factor must be above 1 (e.g. 5)")
			}
			if opts.MaxCallDuration <= 0 {
				return usageErrorf("--max-call-duration must be positive (e.g. 30m)")
			}
			if opts.RedisReconcile <= 0 {
				return usageErrorf("--redis-reconcile must be positive (e.g. 30s)")
			}
			if opts.Redis != "" {
				if _, err := redis.ParseURL(opts.Redis); err != nil {
					return usageErrorf("--redis: want redis://[USER:PASSWORD@]HOST:PORT[/DB] or rediss://...: %v", redactURLError(err, opts.Redis))
				}
			}
			switch opts.SemanticStore {
			case "", proxy.SemStoreMemory, proxy.SemStoreLedger:
			case proxy.SemStoreRedis:
				if opts.Redis == "" {
					return usageErrorf("--semantic-store redis needs --redis URL")
				}
			default:
				return usageErrorf("--semantic-store %q: want memory, ledger or redis", opts.SemanticStore)
			}
			if opts.SemanticMaxEntries <= 0 {
				return usageErrorf("--semantic-max-entries must be positive (e.g. 10000)")
			}
			if opts.SemanticMaxTotal <= 0 {
				return usageErrorf("--semantic-max-total must be positive (e.g. 100000)")
			}
			if opts.VerifyWindow <= 0 {
				return usageErrorf("--verify-window must be positive (e.g. 168h)")
			}
			if opts.VerifyMin <= 0 {
				return usageErrorf("--verify-min must be positive (e.g. 20)")
			}
			if opts.VerifyJudge != "" && strings.TrimSpace(opts.VerifyJudge) != opts.VerifyJudge {
				return usageErrorf("--verify-judge %q: want a model name", opts.VerifyJudge)
			}
			if strings.TrimSpace(opts.EmbedModel) == "" {
				return usageErrorf("--embed-model must not be empty")
			}
			bp, err := parseVerifySample(opts.VerifySample)
			if err != nil {
				return err
			}
			opts.verifyBP = bp
			if _, _, err := net.SplitHostPort(opts.Listen); err != nil {
				return usageErrorf("--listen %q: want HOST:PORT (e.g. 127.0.0.1:8787)", opts.Listen)
			}
			if runF != nil {
				return runF(opts)
			}
			return runProxy(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Listen, "listen", "127.0.0.1:8787", "address to serve on (loopback unless told otherwise)")
	fl.StringVar(&opts.Upstream, "upstream", proxy.DefaultOpenAIUpstream, "OpenAI upstream base URL")
	fl.StringVar(&opts.AnthropicUpstream, "anthropic-upstream", proxy.DefaultAnthropicUpstream, "Anthropic upstream base URL")
	fl.StringVar(&opts.SampleOut, "sample-out", "", "append sampled requests to FILE as costctl eval records (JSONL)")
	fl.StringVar(&opts.Webhook, "webhook", "", "POST budget and block alerts as JSON to URL (Slack-compatible text)")
	fl.DurationVar(&opts.DrainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, how long in-flight calls may finish")
	fl.DurationVar(&opts.CacheTTL, "cache-ttl", 24*time.Hour, "how long a cached answer is served")
	fl.Float64Var(&opts.SpikeFactor, "spike-factor", 5, "alert when a tenant burns this many times its baseline")
	fl.BoolVar(&opts.SharedBudget, "shared-budget", false, "share budgets with every proxy on this ledger (reservations held in the ledger; always on with a PostgreSQL ledger)")
	fl.StringVar(&opts.Redis, "redis", "", "keep budget counters, block changes, the exact cache and the semantic cache in Redis at URL (redis://HOST:PORT/DB)")
	fl.StringVar(&opts.RedisPrefix, "redis-prefix", "costctl:", "prefix of every Redis key (isolates deployments)")
	fl.DurationVar(&opts.RedisReconcile, "redis-reconcile", 30*time.Second, "how often Redis budget counters are reconciled with the ledger")
	fl.DurationVar(&opts.MaxCallDuration, "max-call-duration", 30*time.Minute, "with a shared budget, the longest a call may run")
	fl.StringVar(&opts.EmbedUpstream, "embed-upstream", "", "semantic cache: OpenAI-compatible /v1/embeddings base URL, called with OPENAI_API_KEY (default: --upstream)")
	fl.StringVar(&opts.EmbedModel, "embed-model", semcache.DefaultEmbedModel, "semantic cache: embedding model (priced from the table)")
	fl.IntVar(&opts.SemanticMaxEntries, "semantic-max-entries", proxy.DefaultSemanticMaxEntries, "semantic cache: entries per partition (least recently used out)")
	fl.IntVar(&opts.SemanticMaxTotal, "semantic-max-total", proxy.DefaultSemanticMaxTotal, "semantic cache in memory: entries in all partitions (least recently used partitions out)")
	fl.StringVar(&opts.SemanticStore, "semantic-store", "", "semantic cache: where entries live: memory, ledger (shared by every proxy on the ledger) or redis (default: redis with --redis, else memory)")
	fl.StringVar(&opts.VerifySample, "verify-sample", "0%", "semantic cache: share of hits also sent upstream (billed) and compared, e.g. 2%")
	fl.DurationVar(&opts.VerifyWindow, "verify-window", proxy.DefaultVerifyWindow, "semantic cache: precision is measured over this window")
	fl.StringVar(&opts.VerifyJudge, "verify-judge", "", "semantic cache: OpenAI-compatible judge model (priced in the table) deciding whether a verified hit's answer and the upstream's agree when their texts differ (default: exact match only)")
	fl.Int64Var(&opts.VerifyMin, "verify-min", proxy.DefaultVerifyMin, "semantic cache: least verified hits before a tenant below its --min-precision is switched off")
	return cmd
}

// parseVerifySample reads --verify-sample, a share in percent ("2%", "2",
// "0.5%"), as basis points.
func parseVerifySample(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "%")
	if !sampleRE().MatchString(t) {
		return 0, usageErrorf("invalid --verify-sample %q: a share in percent, like 2%% or 0.5 (0: off)", s)
	}
	r, _ := new(big.Rat).SetString(t)
	r.Mul(r, big.NewRat(100, 1))
	switch {
	case !r.IsInt():
		return 0, usageErrorf("invalid --verify-sample %q: the finest share is 0.01%%", s)
	case r.Cmp(big.NewRat(10_000, 1)) > 0:
		return 0, usageErrorf("invalid --verify-sample %q: a share is 0 to 100%%", s)
	}
	return r.Num().Int64(), nil
}

func runProxy(ctx context.Context, opts *ProxyOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	table, err := opts.Pricing()
	if err != nil {
		return err
	}
	oaKey, anKey := opts.Getenv("OPENAI_API_KEY"), opts.Getenv("ANTHROPIC_API_KEY")
	if oaKey == "" && anKey == "" {
		return errors.New("no upstream key: set OPENAI_API_KEY and/or ANTHROPIC_API_KEY in the proxy's environment")
	}
	var verifyJudge *evaluator.SingleJudge
	if opts.VerifyJudge != "" {
		if oaKey == "" {
			return usageErrorf("--verify-judge %s: the judge is called on the OpenAI upstream with OPENAI_API_KEY, which is not set", opts.VerifyJudge)
		}
		upstream := opts.Upstream
		if upstream == "" {
			upstream = proxy.DefaultOpenAIUpstream
		}
		verifyJudge, err = evaluator.NewSingleJudge(evaluator.SingleJudgeConfig{Judge: &evaluator.Judge{Name: "verify", Model: opts.VerifyJudge},
			BaseURL: strings.TrimRight(upstream, "/") + "/v1", APIKey: oaKey, Now: opts.Now, Table: table})
		if err != nil {
			return usageErrorf("--verify-judge: %v", err)
		}
	}
	db, err := opts.Ledger(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	var sampleOut *os.File
	if opts.SampleOut != "" {
		sampleOut, err = os.OpenFile(opts.SampleOut, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("--sample-out: %s (check the directory exists and is writable)", describeFSError(err))
		}
		defer sampleOut.Close() // early returns only: after serving it is closed below, checked
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %v (is another proxy running? pick another port)", opts.Listen, err)
	}
	writer := ledger.NewWriter(db, ledger.WriterConfig{Queue: 1024})
	writerClosed := false
	defer func() {
		if !writerClosed {
			writer.Close()
		}
	}()
	var rdb *redis.Client
	if opts.Redis != "" {
		ro, err := redis.ParseURL(opts.Redis)
		if err != nil {
			_ = ln.Close() // nothing was served on it
			return usageErrorf("--redis: %v", redactURLError(err, opts.Redis))
		}
		rdb = redis.NewClient(ro)
		defer func() { _ = rdb.Close() }() // its last commands were answered: nothing to flush
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = rdb.Ping(pctx).Err()
		cancel()
		if err != nil {
			_ = ln.Close() // nothing was served on it
			return fmt.Errorf("--redis: cannot reach %s: %v", ro.Addr, redactURLError(err, opts.Redis))
		}
	}
	notifier, closeNotifier := newProxyNotifier(opts)
	cfg := proxy.Config{
		OpenAIUpstream: opts.Upstream, AnthropicUpstream: opts.AnthropicUpstream,
		OpenAIKey: oaKey, AnthropicKey: anKey,
		Control: db, Spend: db, Writer: writer, Pricing: table,
		Now: opts.Now, Log: opts.IO.ErrOut, CacheTTL: opts.CacheTTL, Notifier: notifier, SpikeFactor: opts.SpikeFactor,
	}
	if sampleOut != nil {
		cfg.SampleOut = sampleOut
	}
	budgetMode := "budgets in this process"
	switch {
	case rdb != nil:
		cfg.Redis, cfg.RedisPrefix, cfg.ReconcileInterval = rdb, opts.RedisPrefix, opts.RedisReconcile
		budgetMode = "budgets, block changes, exact and semantic cache shared in redis " + rdb.Options().Addr + " (prefix " + opts.RedisPrefix + ")"
	case opts.SharedBudget || db.IsPostgres():
		// On PostgreSQL a fleet shares the ledger: holds by default.
		cfg.Holds = db
		budgetMode = "budgets shared through the ledger"
	}
	cfg.MaxCallDuration = opts.MaxCallDuration
	cfg.EmbedUpstream, cfg.EmbedModel, cfg.SemanticMaxEntries, cfg.SemanticMaxTotal = opts.EmbedUpstream, opts.EmbedModel, opts.SemanticMaxEntries, opts.SemanticMaxTotal
	cfg.VerifySampleBP, cfg.VerifyWindow, cfg.VerifyMin, cfg.SemanticLedger = opts.verifyBP, opts.VerifyWindow, opts.VerifyMin, db
	cfg.SemanticLedger = proxy.WithVerifyJudge(cfg.SemanticLedger, verifyJudge)
	var semRedis redis.UniversalClient
	if rdb != nil {
		semRedis = rdb
	}
	if cfg.SemanticStore, err = proxy.SemanticStoreFor(opts.SemanticStore, db, semRedis, opts.RedisPrefix, opts.Now); err != nil {
		_ = ln.Close() // nothing was served on it
		return usageErrorf("--semantic-store: %v", err)
	}
	srv, err := proxy.New(ctx, cfg)
	if err != nil {
		_ = ln.Close() // nothing was served on it
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	addr := ln.Addr().String()
	fmt.Fprintf(opts.IO.ErrOut, "costctl proxy: listening on http://%s (OpenAI base URL http://%s/v1, Anthropic http://%s); ledger %s; %s; %s\n",
		addr, addr, addr, db.Path(), table.AsOfLabel(), budgetMode)
	if ip := net.ParseIP(strings.Trim(host(addr), "[]")); ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(opts.IO.ErrOut, "costctl proxy: warning: %s is not a loopback address: anyone who can reach it with a virtual key spends through it\n", addr)
	}
	if opts.Ready != nil {
		opts.Ready(addr)
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	// Stop accepting, let in-flight calls finish (bounded), then cut what
	// is left: their handlers bill what was relayed before they return.
	fmt.Fprintf(opts.IO.ErrOut, "costctl proxy: stopping: draining in-flight calls (up to %s)\n", opts.DrainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), opts.DrainTimeout)
	defer cancel()
	if err := hs.Shutdown(dctx); err != nil {
		fmt.Fprintf(opts.IO.ErrOut, "costctl proxy: drain timeout reached: cutting the calls still open (billed for what they relayed)\n")
		_ = hs.Close() // cuts the calls still open: their handlers bill what they relayed before they return
	}
	srv.Wait()
	srv.Close()
	closeNotifier()
	if sampleOut != nil {
		if err := sampleOut.Close(); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "costctl proxy: warning: --sample-out %s: %v (the last samples may be lost)\n", opts.SampleOut, err)
		}
	}
	writer.Close()
	writerClosed = true
	fmt.Fprintf(opts.IO.ErrOut, "costctl proxy: stopped: %d calls served, %d refused, %d ledger write errors\n",
		srv.Served.Load(), srv.Refused.Load(), srv.WriteErrors.Load())
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("proxy: %w", serveErr)
	}
	if n := srv.WriteErrors.Load(); n > 0 {
		return fmt.Errorf("%d served calls could not be written to the ledger %s (see the errors above)", n, db.Path())
	}
	return nil
}

// redactURLError removes the password of a Redis URL from err's text.
func redactURLError(err error, rawURL string) string {
	msg := err.Error()
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "****")
		}
	}
	return msg
}

func host(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// newProxyNotifier is the webhook behind --webhook (none without one):
// alerts are queued off the request path, retried with backoff, and a
// failure is one line on stderr (never the URL, which often holds a
// secret).
func newProxyNotifier(opts *ProxyOptions) (proxy.Notifier, func()) {
	if opts.Webhook == "" {
		return nil, func() {}
	}
	n := alerts.New(opts.Webhook, opts.HTTPClient, opts.Now)
	var mu sync.Mutex
	n.OnFailure(func(a alerts.Alert, err error) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(opts.IO.ErrOut, "costctl proxy: warning: alert %s for tenant %s not delivered: %v\n", a.Kind, a.Tenant, err)
	})
	return n, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "costctl proxy: warning: alerts still queued at exit were not delivered\n")
		}
	}
}
