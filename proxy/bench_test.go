package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costctl/costctl/internal/pgtest"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// The proxy's overhead, measured against a loopback upstream on this
// machine, side by side in one run: each client goroutine alternates a
// direct call and the same call through the proxy (real SQLite ledger,
// one Writer), so both see the same load. Reported: p50/p99 latency of
// each and their difference, and proxied requests per second.
//
//	go test ./proxy -run '^$' -bench Proxy -benchtime 3s

const benchReply = `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hello world"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`

const benchBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"say hello"}],"max_tokens":16}`

type benchEnv struct {
	up, px  *httptest.Server
	srv     *Server
	writer  *ledger.Writer
	db      *ledger.DB
	client  *http.Client
	key     string
	closeFn func()
	release chan struct{}
	once    sync.Once
}

func (e *benchEnv) releaseAll() { e.once.Do(func() { close(e.release) }) }

// discardWriter stands in for the ledger to measure the proxy alone.
type discardWriter struct{}

func (discardWriter) Go(_ context.Context, _ []ledger.Event, _ []ledger.JudgeResult, done func(ledger.InsertResult, error)) {
	if done != nil {
		done(ledger.InsertResult{}, nil)
	}
}

func newBenchEnv(b *testing.B, withLedger bool) *benchEnv {
	return newBenchEnvBudget(b, withLedger, "")
}

// newBenchEnvBudget: with store set ("memory", "ledger" holds, "redis"),
// tenant acme has a daily and a monthly budget far above what the run
// spends, so every call reserves and releases in that store.
func newBenchEnvBudget(b *testing.B, withLedger bool, store string) *benchEnv {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n")
			w.(http.Flusher).Flush()
			if r.Header.Get("X-Hold") != "" {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, benchReply)
	}))
	up.Config.SetKeepAlivesEnabled(true)
	dsn := filepath.Join(b.TempDir(), "bench.db")
	if store == "postgres" {
		dsn = pgtest.DSN(b) // the ledger, and its holds, on PostgreSQL
	}
	db, err := ledger.Open(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	secret := "ck-bench-key"
	db.CreateKey(context.Background(), ledger.VirtualKey{Name: "bench", Tenant: "acme", Hash: ledger.HashKey(secret), CreatedAt: time.Now()})
	w := ledger.NewWriter(db, ledger.WriterConfig{Queue: 1024})
	var ew EventWriter = w
	if !withLedger {
		ew = discardWriter{}
	}
	cfg := Config{OpenAIUpstream: up.URL, AnthropicUpstream: up.URL, OpenAIKey: testOpenAIKey,
		Control: db, Spend: db, Writer: ew, Pricing: pricing.MustDefault(), KeyCacheTTL: time.Minute}
	if store != "" {
		if err := db.SetPolicy(context.Background(), ledger.Policy{Tenant: "acme", DailyBudget: pricing.Dollars(1_000_000), MonthlyBudget: pricing.Dollars(1_000_000)},
			ledger.PolicyChange{At: time.Now(), Tenant: "acme", What: "bench", Reason: "bench", Who: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	switch store {
	case "ledger", "postgres":
		cfg.Holds = db
	case "redis":
		cfg.Redis, cfg.RedisPrefix = testRedis(b)
	}
	srv, err := New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	px := httptest.NewServer(srv)
	tr := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 2048, IdleConnTimeout: time.Minute}
	e := &benchEnv{up: up, px: px, srv: srv, writer: w, db: db, client: &http.Client{Transport: tr}, key: secret, release: release}
	e.closeFn = func() {
		e.releaseAll()
		px.Close()
		srv.Wait()
		srv.Close()
		w.Close()
		db.Close()
		up.Close()
		tr.CloseIdleConnections()
	}
	return e
}

func (e *benchEnv) call(b *testing.B, base string, stream bool) time.Duration {
	body := benchBody
	if stream {
		body = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"say hello"}],"max_tokens":16}`
	}
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.key)
	if base == e.up.URL {
		req.Header.Set("Authorization", "Bearer "+testOpenAIKey)
	}
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	start := time.Now()
	res, err := e.client.Do(req)
	if err != nil {
		b.Error(err)
		return 0
	}
	var d time.Duration
	if stream {
		// Time to the first streamed byte.
		one := make([]byte, 1)
		io.ReadFull(res.Body, one)
		d = time.Since(start)
		io.Copy(io.Discard, res.Body)
	} else {
		io.Copy(io.Discard, res.Body)
		d = time.Since(start)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		b.Errorf("status %d", res.StatusCode)
	}
	return d
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// runPairs runs b.N direct+proxied pairs on conc goroutines.
func runPairs(b *testing.B, e *benchEnv, conc int, stream bool) {
	var mu sync.Mutex
	var direct, proxied []time.Duration
	next := make(chan struct{}, 1024)
	go func() {
		for range b.N {
			next <- struct{}{}
		}
		close(next)
	}()
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d, p []time.Duration
			for range next {
				d = append(d, e.call(b, e.up.URL, stream))
				p = append(p, e.call(b, e.px.URL, stream))
			}
			mu.Lock()
			direct = append(direct, d...)
			proxied = append(proxied, p...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	dp50, dp99, pp50, pp99 := pct(direct, .5), pct(direct, .99), pct(proxied, .5), pct(proxied, .99)
	b.ReportMetric(us(dp50), "direct-p50-µs")
	b.ReportMetric(us(pp50), "proxy-p50-µs")
	b.ReportMetric(us(pp50-dp50), "overhead-p50-µs")
	b.ReportMetric(us(dp99), "direct-p99-µs")
	b.ReportMetric(us(pp99), "proxy-p99-µs")
	b.ReportMetric(us(pp99-dp99), "overhead-p99-µs")
	b.ReportMetric(float64(2*b.N)/elapsed.Seconds(), "calls/s")
}

// BenchmarkProxyOverhead: non-streaming, small body, at 1, 64 and 512
// concurrent clients.
func BenchmarkProxyOverhead(b *testing.B) {
	for _, conc := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("clients=%d", conc), func(b *testing.B) {
			e := newBenchEnv(b, true)
			defer e.closeFn()
			runPairs(b, e, conc, false)
		})
	}
	// The same at 1 client with a writer that discards: the ledger's share
	// of the tail (its commits share the 2 cores).
	b.Run("clients=1/ledger=off", func(b *testing.B) {
		e := newBenchEnv(b, false)
		defer e.closeFn()
		runPairs(b, e, 1, false)
	})
	// With a budget, in each store: in memory (one proxy), shared through
	// ledger holds (--shared-budget) on SQLite and on PostgreSQL (where the
	// ledger itself is PostgreSQL too), shared in Redis (--redis).
	for _, store := range []string{"memory", "ledger", "postgres", "redis"} {
		for _, conc := range []int{1, 64} {
			b.Run(fmt.Sprintf("clients=%d/budget=%s", conc, store), func(b *testing.B) {
				e := newBenchEnvBudget(b, true, store)
				defer e.closeFn()
				runPairs(b, e, conc, false)
			})
		}
	}
}

// BenchmarkProxyStreamTTFB: time to the first streamed byte, direct and
// through the proxy.
func BenchmarkProxyStreamTTFB(b *testing.B) {
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", conc), func(b *testing.B) {
			e := newBenchEnv(b, true)
			defer e.closeFn()
			runPairs(b, e, conc, true)
		})
	}
}

// BenchmarkProxyThroughput: proxied requests per second (64 clients),
// with the ledger on, and with a writer that discards (the proxy alone).
func BenchmarkProxyThroughput(b *testing.B) {
	b.Run("direct", func(b *testing.B) { throughput(b, true, true) })
	b.Run("ledger=on", func(b *testing.B) { throughput(b, true, false) })
	b.Run("ledger=off", func(b *testing.B) { throughput(b, false, false) })
}

func throughput(b *testing.B, withLedger, direct bool) {
	e := newBenchEnv(b, withLedger)
	defer e.closeFn()
	base := e.px.URL
	if direct {
		base = e.up.URL
	}
	next := make(chan struct{}, 1024)
	go func() {
		for range b.N {
			next <- struct{}{}
		}
		close(next)
	}()
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				e.call(b, base, false)
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	b.StopTimer()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
}

// BenchmarkProxyOpenStreams: memory held by open streams. The whole
// process (clients, proxy, upstream) is measured with n streams held open
// direct and through the proxy; the difference is the proxy's share,
// reported per stream and scaled to 10,000 streams (this machine's file
// limit, 20,000, does not fit 10,000 proxied streams in one process: each
// takes four descriptors here).
//
//	go test ./proxy -run '^$' -bench ProxyOpenStreams -benchtime 1x
func BenchmarkProxyOpenStreams(b *testing.B) {
	const n = 4000
	var direct float64
	for _, mode := range []string{"direct", "proxy"} {
		b.Run(mode, func(b *testing.B) {
			e := newBenchEnv(b, true)
			defer e.closeFn()
			base := e.up.URL
			if mode == "proxy" {
				base = e.px.URL
			}
			before := memInUse()
			var opened, wg sync.WaitGroup
			opened.Add(n)
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":16}`))
					req.Header.Set("Authorization", "Bearer "+e.key)
					if base == e.up.URL {
						req.Header.Set("Authorization", "Bearer "+testOpenAIKey)
					}
					req.Header.Set("Accept", "text/event-stream")
					req.Header.Set("X-Hold", "1")
					res, err := e.client.Do(req)
					if err != nil {
						opened.Done()
						b.Error(err)
						return
					}
					one := make([]byte, 1)
					io.ReadFull(res.Body, one)
					opened.Done()
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}()
			}
			opened.Wait()
			after := memInUse()
			mib := float64(after-before) / (1 << 20)
			b.ReportMetric(mib, "MiB-process")
			if mode == "direct" {
				direct = mib
			} else {
				share := mib - direct
				b.ReportMetric(share*1024/n, "KiB/stream-proxy")
				b.ReportMetric(share*10000/n, "MiB-proxy-at-10k")
			}
			e.releaseAll()
			wg.Wait()
		})
	}
}

// memInUse is heap and stacks in use after a collection.
func memInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// cannedTransport answers every upstream request in memory.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	io.Copy(io.Discard, r.Body)
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(benchReply)), Request: r}, nil
}

// BenchmarkProxyHandler: the proxy's own work per request (auth from the
// key cache, policy, parse, bound, reservation, pricing, settle, row),
// with no network: an in-memory upstream and response recorder.
func BenchmarkProxyHandler(b *testing.B) {
	db, err := ledger.Open(context.Background(), filepath.Join(b.TempDir(), "h.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	secret := "ck-bench-key"
	db.CreateKey(context.Background(), ledger.VirtualKey{Name: "bench", Tenant: "acme", Hash: ledger.HashKey(secret), CreatedAt: time.Now()})
	db.SetPolicy(context.Background(), ledger.Policy{Tenant: "acme", DailyBudget: pricing.Dollars(1_000_000)}, ledger.PolicyChange{At: time.Now(), Tenant: "acme", What: "x", Reason: "x", Who: "b"})
	srv, err := New(context.Background(), Config{OpenAIKey: testOpenAIKey, Control: db, Spend: db, Writer: discardWriter{},
		Pricing: pricing.MustDefault(), KeyCacheTTL: time.Hour, Client: &http.Client{Transport: cannedTransport{}}})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(benchBody))
		req.Header.Set("Authorization", "Bearer "+secret)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
