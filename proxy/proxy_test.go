package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costctl/costctl/alerts"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// syncBuffer is a log that tests read while the proxy writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	t      testing.TB
	db     *ledger.DB
	dbPath string
	up     *fakeUpstream
	srv    *Server
	http   *httptest.Server
	writer *ledger.Writer
	log    *syncBuffer
	sample string
	notes  *notes
	closed bool
}

type notes struct {
	mu sync.Mutex
	a  []alerts.Alert
}

func (n *notes) Notify(a alerts.Alert) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.a = append(n.a, a)
}

func (n *notes) all() []alerts.Alert {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]alerts.Alert(nil), n.a...)
}

// newEnv starts a fake upstream, a real temp ledger and the proxy on
// loopback. mod may change the Config.
func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dbPath: filepath.Join(dir, "ledger.db"), log: &syncBuffer{}, notes: &notes{}}
	db, err := ledger.Open(context.Background(), e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	e.up = newFakeUpstream(t)
	e.writer = ledger.NewWriter(db, ledger.WriterConfig{Queue: 1024})
	e.sample = filepath.Join(dir, "samples.jsonl")
	sf, err := os.OpenFile(e.sample, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		OpenAIUpstream: e.up.URL(), AnthropicUpstream: e.up.URL(),
		OpenAIKey: testOpenAIKey, AnthropicKey: testAnthropicKey,
		Control: db, Spend: db, Writer: e.writer, Pricing: pricing.MustDefault(),
		Log: e.log, SampleOut: sf, PolicyInterval: 20 * time.Millisecond, KeyCacheTTL: 20 * time.Millisecond,
		Notifier: e.notes,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.http = httptest.NewServer(srv)
	t.Cleanup(func() {
		e.close()
		sf.Close()
		db.Close()
	})
	return e
}

// close stops the proxy the way the command does: stop serving, wait for
// handlers, flush.
func (e *env) close() {
	if e.closed {
		return
	}
	e.closed = true
	e.up.releaseAll()
	e.http.Close()
	e.srv.Wait()
	e.srv.Close()
	e.writer.Close()
}

// spent is the tenant's spend and reservations today in the proxy's
// budget store.
func (e *env) spent(tenant string) (day, dayRes pricing.Amount) {
	e.t.Helper()
	day, dayRes, _, _, err := e.srv.store.spent(context.Background(), tenant, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return day, dayRes
}

// key creates a virtual key for tenant and returns its secret.
func (e *env) key(tenant, user, name string) string {
	e.t.Helper()
	secret := "ck-test-" + name + "-virtualSECRET"
	err := e.db.CreateKey(context.Background(), ledger.VirtualKey{Name: name, Tenant: tenant, User: user, Hash: ledger.HashKey(secret), CreatedAt: time.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

func (e *env) setPolicy(p ledger.Policy) {
	e.t.Helper()
	err := e.db.SetPolicy(context.Background(), p, ledger.PolicyChange{At: time.Now(), Tenant: p.Tenant, What: "test", Reason: "test", Who: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
}

// waitPolicy waits until the proxy has loaded p (its reload loop).
func (e *env) waitPolicy(tenant string, ok func(ledger.Policy) bool) {
	e.t.Helper()
	eventually(e.t, "policy of "+tenant+" loaded", func() bool { return ok(e.srv.policy(tenant)) })
}

// eventually polls cond until it holds (or fails the test after a long
// deadline: a hang, not a timing assertion).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type row struct {
	Key, Tenant, User, Endpoint, Metric, Model, Estimate string
	In, Cached, Out, W5, W1, Reasoning                   int64
	Cost                                                 pricing.Amount
	Avoided                                              int64
	Hit                                                  bool
	Latency                                              int64
	Status                                               int64
}

func (e *env) rows() []row {
	e.t.Helper()
	rs, err := e.db.SQL().Query(`SELECT event_key, tenant, user, endpoint, metric, model, estimate, input_tokens, cached_tokens, output_tokens,
		cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, cost_dollars, cost_pico, avoided_nano, cache_hit, latency_ms, status
		FROM events WHERE source = 'proxy' ORDER BY rowid`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.Key, &r.Tenant, &r.User, &r.Endpoint, &r.Metric, &r.Model, &r.Estimate, &r.In, &r.Cached, &r.Out,
			&r.W5, &r.W1, &r.Reasoning, &r.Cost.Dollars, &r.Cost.Pico, &r.Avoided, &r.Hit, &r.Latency, &r.Status); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// waitRows waits until the ledger holds n proxy rows (the writer commits
// asynchronously) and returns them.
func (e *env) waitRows(n int) []row {
	e.t.Helper()
	var rs []row
	eventually(e.t, fmt.Sprintf("%d proxy rows in the ledger", n), func() bool {
		rs = e.rows()
		return len(rs) >= n
	})
	return rs
}

type resp struct {
	Status int
	Header http.Header
	Body   string
}

// do sends a request to the proxy.
func (e *env) do(method, path, key string, anthropicStyle bool, body string, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		if anthropicStyle {
			req.Header.Set("X-Api-Key", key)
			req.Header.Set("Anthropic-Version", "2023-06-01")
		} else {
			req.Header.Set("Authorization", "Bearer "+key)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

func priceOf(t testing.TB, model string, ev ledger.Event) pricing.Amount {
	t.Helper()
	m, err := pricing.MustDefault().Lookup(model)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := ledger.PriceUsage(m, &ev)
	if !ok {
		t.Fatalf("%s: cannot price %+v", model, ev)
	}
	return c
}

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"say hello"}],"max_tokens":100}`
const msgBody = `{"model":"claude-sonnet-4-5","max_tokens":200,"system":"be brief","messages":[{"role":"user","content":"say bonjour"}]}`

func TestProxyChatNonStreaming(t *testing.T) {
	e := newEnv(t, nil)
	k := e.key("acme", "alice", "acme-1")
	r := e.do("POST", "/v1/chat/completions", k, false, chatBody)
	if r.Status != 200 || !strings.Contains(r.Body, "hello world") {
		t.Fatalf("got %d %s", r.Status, r.Body)
	}
	rs := e.waitRows(1)
	got := rs[0]
	want := priceOf(t, "gpt-4o-mini", ledger.Event{InputTokens: 1000, CachedTokens: 200, OutputTokens: 50})
	if got.Tenant != "acme" || got.User != "alice" || got.Metric != "acme-1" || got.Endpoint != "/v1/chat/completions" ||
		got.Model != "gpt-4o-mini" || got.In != 1000 || got.Cached != 200 || got.Out != 50 || got.Cost != want || got.Estimate != "" || got.Status != 200 {
		t.Fatalf("row %+v, want cost %s", got, want)
	}
	if e.up.badAuth.Load() != 0 {
		t.Fatal("upstream saw a wrong key")
	}
}

func TestProxyOtherRoutes(t *testing.T) {
	e := newEnv(t, nil)
	k := e.key("acme", "", "k")
	for _, c := range []struct {
		path, body string
		anth       bool
		want       string
	}{
		{"/v1/responses", `{"model":"gpt-4o-mini","input":"hi","max_output_tokens":50}`, false, "hi there"},
		{"/v1/embeddings", `{"model":"text-embedding-3-small","input":"hi"}`, false, "embedding"},
		{"/v1/messages", msgBody, true, "bonjour"},
		{"/v1/messages/count_tokens", `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`, true, "input_tokens"},
	} {
		r := e.do("POST", c.path, k, c.anth, c.body)
		if r.Status != 200 || !strings.Contains(r.Body, c.want) {
			t.Fatalf("%s: %d %s", c.path, r.Status, r.Body)
		}
	}
	if r := e.do("GET", "/v1/models", k, false, ""); r.Status != 200 || !strings.Contains(r.Body, "gpt-4o-mini") {
		t.Fatalf("models: %d %s", r.Status, r.Body)
	}
	rs := e.waitRows(3) // count_tokens and models are free: no row
	byRoute := map[string]row{}
	for _, r := range rs {
		byRoute[r.Endpoint] = r
	}
	if r := byRoute["/v1/responses"]; r.In != 300 || r.Out != 20 || r.Reasoning != 5 ||
		r.Cost != priceOf(t, "gpt-4o-mini", ledger.Event{InputTokens: 300, OutputTokens: 20}) {
		t.Fatalf("responses row %+v", r)
	}
	if r := byRoute["/v1/embeddings"]; r.In != 8 || r.Cost != priceOf(t, "text-embedding-3-small", ledger.Event{InputTokens: 8}) {
		t.Fatalf("embeddings row %+v", r)
	}
	wantMsg := priceOf(t, "claude-sonnet-4-5", ledger.Event{InputTokens: 550, CachedTokens: 100, CacheWrite5mTokens: 20, CacheWrite1hTokens: 30, OutputTokens: 60})
	if r := byRoute["/v1/messages"]; r.In != 550 || r.Cached != 100 || r.W5 != 20 || r.W1 != 30 || r.Out != 60 || r.Cost != wantMsg {
		t.Fatalf("messages row %+v want %s", r, wantMsg)
	}
	time.Sleep(0)
	if n := len(e.rows()); n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}
}

// sseEvents splits an event stream into its events' data.
func sseData(body string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestProxyChatStreaming(t *testing.T) {
	e := newEnv(t, nil)
	k := e.key("acme", "", "k")
	// Without include_usage: the proxy asks for it, and drops the chunk.
	r := e.do("POST", "/v1/chat/completions", k, false, `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"x"}],"max_tokens":100}`)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%d %v", r.Status, r.Header)
	}
	if !strings.Contains(e.up.lastBody.Load().(string), `"include_usage":true`) {
		t.Fatalf("include_usage not injected: %s", e.up.lastBody.Load())
	}
	data := sseData(r.Body)
	if len(data) != 4 || data[3] != "[DONE]" || strings.Contains(r.Body, `"usage":{`) {
		t.Fatalf("client without include_usage got:\n%s", r.Body)
	}
	// With it: the usage chunk reaches the client.
	r = e.do("POST", "/v1/chat/completions", k, false, `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}],"max_tokens":100}`)
	if data := sseData(r.Body); len(data) != 5 || !strings.Contains(data[3], `"usage":{"prompt_tokens":1000`) {
		t.Fatalf("client with include_usage got:\n%s", r.Body)
	}
	rs := e.waitRows(2)
	want := priceOf(t, "gpt-4o-mini", ledger.Event{InputTokens: 1000, OutputTokens: 50})
	for _, r := range rs {
		if r.In != 1000 || r.Out != 50 || r.Cost != want || r.Estimate != "" {
			t.Fatalf("row %+v", r)
		}
	}
}

func TestProxyMessagesStreaming(t *testing.T) {
	e := newEnv(t, nil)
	k := e.key("acme", "", "k")
	r := e.do("POST", "/v1/messages", k, true, strings.Replace(msgBody, `"max_tokens"`, `"stream":true,"max_tokens"`, 1))
	if r.Status != 200 || !strings.Contains(r.Body, "event: message_stop") || !strings.Contains(r.Body, `"text":"jour"`) {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	rs := e.waitRows(1)
	want := priceOf(t, "claude-sonnet-4-5", ledger.Event{InputTokens: 500, CachedTokens: 100, OutputTokens: 60})
	if r := rs[0]; r.In != 500 || r.Cached != 100 || r.Out != 60 || r.Cost != want || r.Estimate != "" {
		t.Fatalf("row %+v want %s", r, want)
	}
}

func TestProxyCutStreams(t *testing.T) {
	e := newEnv(t, nil)
	k := e.key("acme", "", "k")
	chat := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"x"}],"max_tokens":100}`
	e.do("POST", "/v1/chat/completions", k, false, chat, "X-Test-Mode", "cut")
	rs := e.waitRows(1)
	m, _ := pricing.MustDefault().Lookup("gpt-4o-mini")
	bound := int64(len(e.up.lastBody.Load().(string))) + boundFixed // as forwarded, include_usage added
	wantOut := counterFor(m).Text("hello world")
	if r := rs[0]; r.Estimate != ledger.EstimateNoUsage || r.In != bound || r.Out != wantOut ||
		r.Cost != priceOf(t, "gpt-4o-mini", ledger.Event{InputTokens: bound, OutputTokens: wantOut}) {
		t.Fatalf("cut chat row %+v (bound %d, out %d)", r, bound, wantOut)
	}
	// Anthropic: the input is known from message_start; output estimated.
	e.do("POST", "/v1/messages", k, true, strings.Replace(msgBody, `"max_tokens"`, `"stream":true,"max_tokens"`, 1), "X-Test-Mode", "cut")
	rs = e.waitRows(2)
	if r := rs[1]; r.Estimate != ledger.EstimateNoUsage || r.In != 500 || r.Cached != 100 || r.Out < 1 {
		t.Fatalf("cut messages row %+v", r)
	}
	// A stream that ends without usage.
	e.do("POST", "/v1/chat/completions", k, false, chat, "X-Test-Mode", "nousage")
	rs = e.waitRows(3)
	if r := rs[2]; r.Estimate != ledger.EstimateNoUsage || r.In != bound {
		t.Fatalf("no-usage row %+v", r)
	}
}

func TestProxyAuthAndErrors(t *testing.T) {
	e := newEnv(t, nil)
	k := e.key("acme", "", "acme-key")
	cases := []struct {
		name, method, path, key string
		anth                    bool
		status                  int
		want                    string
	}{
		{"no key", "POST", "/v1/chat/completions", "", false, 401, `{"error":{"code":"authentication_error","message":"no virtual key`},
		{"unknown key openai", "POST", "/v1/chat/completions", "ck-nope", false, 401, `"type":"authentication_error"`},
		{"unknown key anthropic", "POST", "/v1/messages", "ck-nope", true, 401, `{"error":{"message":"unknown or revoked virtual key (costctl keys list shows the active ones)","type":"authentication_error"},"type":"error"}`},
		{"upstream key is not a virtual key", "POST", "/v1/chat/completions", testOpenAIKey, false, 401, "unknown or revoked"},
		{"unknown route", "POST", "/v1/completions", k, false, 404, `does not serve POST /v1/completions`},
		{"unknown route anthropic", "GET", "/v1/files", k, true, 404, `"type":"error"`},
		{"wrong method", "GET", "/v1/chat/completions", k, false, 404, "not_found_error"},
	}
	for _, c := range cases {
		r := e.do(c.method, c.path, c.key, c.anth, chatBody)
		if r.Status != c.status || !strings.Contains(r.Body, c.want) {
			t.Errorf("%s: %d %s", c.name, r.Status, r.Body)
		}
	}
	// An upstream error is passed on, redacted.
	r := e.do("POST", "/v1/chat/completions", k, false, chatBody, "X-Test-Mode", "error")
	if r.Status != 400 || strings.Contains(r.Body, testOpenAIKey) || !strings.Contains(r.Body, "[REDACTED]") {
		t.Fatalf("upstream error: %d %s", r.Status, r.Body)
	}
	// Revoked: 401 once the short key cache lapses.
	if r := e.do("POST", "/v1/chat/completions", k, false, chatBody); r.Status != 200 {
		t.Fatalf("before revoke: %d %s", r.Status, r.Body)
	}
	if err := e.db.RevokeKey(context.Background(), "acme-key", time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "revoked key refused", func() bool {
		return e.do("POST", "/v1/chat/completions", k, false, chatBody).Status == 401
	})
}

func TestProxyBlockAndUnblock(t *testing.T) {
	forBackends(t, testBlockAndUnblock)
}

func testBlockAndUnblock(t *testing.T, be backend) {
	e := newEnv(t, func(c *Config) { be.mod(t, c) })
	k := e.key("acme", "", "k")
	if r := e.do("POST", "/v1/chat/completions", k, false, chatBody); r.Status != 200 {
		t.Fatal(r.Status)
	}
	e.setPolicy(ledger.Policy{Tenant: "acme", Blocked: true})
	var last resp
	eventually(t, "block applied", func() bool {
		last = e.do("POST", "/v1/messages", k, true, msgBody)
		return last.Status == 403
	})
	if !strings.Contains(last.Body, `"type":"tenant_blocked"`) || !strings.Contains(last.Body, "tenant acme is blocked") {
		t.Fatalf("blocked body %s", last.Body)
	}
	e.setPolicy(ledger.Policy{Tenant: "acme"})
	eventually(t, "unblock applied", func() bool { return e.do("POST", "/v1/chat/completions", k, false, chatBody).Status == 200 })
	eventually(t, "block and unblock alerts", func() bool {
		kinds := ""
		for _, a := range e.notes.all() {
			kinds += a.Kind + " "
		}
		return kinds == "blocked unblocked "
	})
	if a := e.notes.all()[0]; a.Who != "test" || a.Reason != "test" || a.Tenant != "acme" {
		t.Fatalf("blocked alert %+v", a)
	}
}

func TestProxyRoute(t *testing.T) {
	e := newEnv(t, nil)
	k := e.key("acme", "", "k")
	e.setPolicy(ledger.Policy{Tenant: "acme", Routes: map[string]string{"gpt-4o": "gpt-4o-mini"}})
	e.waitPolicy("acme", func(p ledger.Policy) bool { return len(p.Routes) == 1 })
	r := e.do("POST", "/v1/chat/completions", k, false, strings.Replace(chatBody, "gpt-4o-mini", "gpt-4o", 1))
	if r.Status != 200 || r.Header.Get("X-Costctl-Routed-From") != "gpt-4o" {
		t.Fatalf("%d %v", r.Status, r.Header)
	}
	if m := e.up.Models(); len(m) != 1 || m[0] != "gpt-4o-mini" {
		t.Fatalf("upstream saw %v", m)
	}
	if rs := e.waitRows(1); rs[0].Model != "gpt-4o-mini" {
		t.Fatalf("row %+v", rs[0])
	}
}

func TestProxyCache(t *testing.T) {
	forBackends(t, testCache)
}

func testCache(t *testing.T, be backend) {
	e := newEnv(t, func(c *Config) { be.mod(t, c) })
	k := e.key("acme", "", "k")
	e.setPolicy(ledger.Policy{Tenant: "acme", Cache: true})
	e.waitPolicy("acme", func(p ledger.Policy) bool { return p.Cache })
	det := `{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"cache me"}],"max_tokens":100}`
	r1 := e.do("POST", "/v1/chat/completions", k, false, det)
	calls := e.up.calls.Load()
	// Same request, keys in another order and a user field: a hit.
	r2 := e.do("POST", "/v1/chat/completions", k, false, `{"max_tokens":100,"user":"u2","messages":[{"content":"cache me","role":"user"}],"temperature":0,"model":"gpt-4o-mini"}`)
	if r2.Status != 200 || r2.Body != r1.Body || r2.Header.Get("X-Costctl-Cache") != "hit" || e.up.calls.Load() != calls {
		t.Fatalf("second call: %d %q (upstream calls %d→%d)", r2.Status, r2.Header.Get("X-Costctl-Cache"), calls, e.up.calls.Load())
	}
	// Streamed from the non-streamed entry: a well-formed stream.
	r3 := e.do("POST", "/v1/chat/completions", k, false, strings.Replace(det, `"temperature"`, `"stream":true,"temperature"`, 1))
	data := sseData(r3.Body)
	if r3.Header.Get("X-Costctl-Cache") != "hit" || e.up.calls.Load() != calls || len(data) != 3 || data[2] != "[DONE]" || !strings.Contains(data[0], `"content":"hello world"`) {
		t.Fatalf("streamed hit: %q\n%s", r3.Header.Get("X-Costctl-Cache"), r3.Body)
	}
	// Not deterministic: forwarded, unless forced.
	nondet := strings.Replace(det, `"temperature":0`, `"temperature":0.7`, 1)
	e.do("POST", "/v1/chat/completions", k, false, nondet)
	e.do("POST", "/v1/chat/completions", k, false, nondet)
	if e.up.calls.Load() != calls+2 {
		t.Fatal("a non-deterministic request was served from the cache")
	}
	e.do("POST", "/v1/chat/completions", k, false, nondet, "X-Costctl-Cache", "force")
	e.do("POST", "/v1/chat/completions", k, false, nondet, "X-Costctl-Cache", "force")
	if e.up.calls.Load() != calls+3 {
		t.Fatal("a forced request was not cached")
	}
	// Anthropic: non-streamed entry, streamed hit.
	e.do("POST", "/v1/messages", k, true, strings.Replace(msgBody, `"max_tokens"`, `"temperature":0,"max_tokens"`, 1))
	c := e.up.calls.Load()
	r4 := e.do("POST", "/v1/messages", k, true, strings.Replace(msgBody, `"max_tokens"`, `"temperature":0,"stream":true,"max_tokens"`, 1))
	if e.up.calls.Load() != c || !strings.Contains(r4.Body, "event: message_stop") || !strings.Contains(r4.Body, `"text":"bonjour"`) {
		t.Fatalf("anthropic streamed hit:\n%s", r4.Body)
	}
	rs := e.waitRows(9)
	hits := 0
	for _, r := range rs {
		if r.Hit {
			hits++
			if !r.Cost.IsZero() || r.Avoided <= 0 {
				t.Fatalf("hit row %+v", r)
			}
		}
	}
	if hits != 4 {
		t.Fatalf("%d hit rows, want 4", hits)
	}
}

func TestProxySampleShare(t *testing.T) {
	e := newEnv(t, nil)
	k := e.key("acme", "", "k")
	e.setPolicy(ledger.Policy{Tenant: "acme", SampleBP: 2500})
	e.waitPolicy("acme", func(p ledger.Policy) bool { return p.SampleBP == 2500 })
	want := 0
	const n = 200
	for i := range n {
		body := fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q%d"}],"max_tokens":100}`, i)
		if sampled("acme", []byte(body), 2500) {
			want++
		}
		if r := e.do("POST", "/v1/chat/completions", k, false, body); r.Status != 200 {
			t.Fatal(r.Status)
		}
	}
	e.close()
	b, err := os.ReadFile(e.sample)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != want || want < n/8 || want > n/2 {
		t.Fatalf("%d samples, want %d (of %d at 25%%)", len(lines), want, n)
	}
	var rec struct {
		ID       string           `json:"id"`
		Input    []map[string]any `json:"input"`
		Output   string           `json:"output"`
		Tenant   string           `json:"tenant"`
		Metadata map[string]any   `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Output != "hello world" || rec.Tenant != "acme" || len(rec.Input) != 1 || rec.Metadata["model"] != "gpt-4o-mini" || rec.Metadata["cost"] == "" {
		t.Fatalf("sample %s", lines[0])
	}
}

// TestProxyBudgetConcurrentStreams: 64 concurrent streams against a daily
// budget that fits exactly 10 worst cases: exactly 54 are refused, and
// what is spent stays within the budget.
func TestProxyBudgetConcurrentStreams(t *testing.T) {
	forBackends(t, testBudgetConcurrentStreams)
}

func testBudgetConcurrentStreams(t *testing.T, be backend) {
	e := newEnv(t, func(c *Config) { be.mod(t, c) })
	k := e.key("acme", "", "k")
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"go"}],"max_tokens":1000}`
	m, _ := pricing.MustDefault().Lookup("gpt-4o-mini")
	req, _ := parseRequest([]byte(body))
	worst, ok := worstCost(m, promptBound([]byte(body), req), 1000, "")
	if !ok {
		t.Fatal("cannot price the worst case")
	}
	const fit, total = 10, 64
	// Budget: 10.5 worst cases, to the nano-dollar below.
	budget := new(big.Rat).Quo(worst.MulInt64(21).Rat(), bigRat(2))
	bm, _ := pricingMoneyFloor(budget)
	e.setPolicy(ledger.Policy{Tenant: "acme", DailyBudget: bm})
	e.waitPolicy("acme", func(p ledger.Policy) bool { return p.DailyBudget == bm })

	var wg sync.WaitGroup
	statuses := make(chan int, total)
	bodies := make(chan string, total)
	for range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.do("POST", "/v1/chat/completions", k, false, body, "X-Test-Mode", "hold")
			statuses <- r.Status
			if r.Status != 200 {
				bodies <- r.Body + " Retry-After=" + r.Header.Get("Retry-After")
			}
		}()
	}
	// Every admitted stream is held upstream until all 64 are decided.
	eventually(t, "10 streams held upstream and 54 refused", func() bool {
		return e.up.holding.Load() == fit && e.srv.Refused.Load() == total-fit
	})
	e.up.releaseAll()
	wg.Wait()
	close(statuses)
	close(bodies)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[200] != fit || count[429] != total-fit {
		t.Fatalf("statuses %v", count)
	}
	b := <-bodies
	if !strings.Contains(b, `"type":"budget_exceeded"`) || !strings.Contains(b, "tenant acme") || !strings.Contains(b, "daily budget") ||
		!strings.Contains(b, "resets at") || strings.HasSuffix(b, "Retry-After=") {
		t.Fatalf("429 body %s", b)
	}
	rs := e.waitRows(fit)
	var spent pricing.Amount
	for _, r := range rs {
		spent = spent.Add(r.Cost)
	}
	if spent.Cmp(pricing.AmountFromMoney(bm)) > 0 || len(rs) != fit {
		t.Fatalf("spent %s over budget %s (%d rows)", spent, bm, len(rs))
	}
	// Every reservation ends once its row is committed.
	eventually(t, "the store's spend is the ledger's, nothing reserved", func() bool {
		day, dayRes := e.spent("acme")
		return day == spent && dayRes.IsZero()
	})
	eventually(t, "a 100% budget alert", func() bool {
		for _, a := range e.notes.all() {
			if a.Kind == alerts.KindBudget100 {
				return true
			}
		}
		return false
	})
	// Exactly one 100% alert per tenant and period per day.
	n100 := 0
	for _, a := range e.notes.all() {
		if a.Kind == alerts.KindBudget100 {
			n100++
		}
	}
	if n100 != 1 {
		t.Fatalf("%d 100%% alerts", n100)
	}
}

func TestProxyBudgetLoadedFromLedger(t *testing.T) {
	forBackends(t, testBudgetLoadedFromLedger)
}

func testBudgetLoadedFromLedger(t *testing.T, be backend) {
	// Spend already in the ledger today counts against the budget.
	dir := t.TempDir()
	db, err := ledger.Open(context.Background(), filepath.Join(dir, "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Insert(context.Background(), []ledger.Event{{Key: "ingest:x", Time: time.Now(), Source: "ingest", Tenant: "acme", Model: "gpt-4o-mini",
		InputTokens: 1, Cost: pricing.Dollars(5), CostExact: pricing.AmountFromMoney(pricing.Dollars(5))}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPolicy(context.Background(), ledger.Policy{Tenant: "acme", DailyBudget: pricing.Dollars(5)}, ledger.PolicyChange{At: time.Now(), Tenant: "acme", What: "x", Reason: "x", Who: "t"}); err != nil {
		t.Fatal(err)
	}
	w := ledger.NewWriter(db, ledger.WriterConfig{})
	defer w.Close()
	cfg := Config{Control: db, Spend: db, Writer: w, Pricing: pricing.MustDefault(), OpenAIKey: testOpenAIKey}
	be.mod(t, &cfg)
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	day, _, month, _, err := s.store.spent(context.Background(), "acme", time.Now())
	if err != nil || day.Cmp(pricing.AmountFromMoney(pricing.Dollars(5))) != 0 || month.Cmp(day) < 0 {
		t.Fatalf("loaded day %s month %s (%v)", day, month, err)
	}
	_, over, err := s.store.reserve(context.Background(), "acme", ledger.Policy{DailyBudget: pricing.Dollars(5)}, pricing.AmountFromPico(1), time.Now())
	if err != nil || over == nil {
		t.Fatal("a tenant at its budget got a reservation")
	}
}

// TestProxyNoKeyLeaks: neither upstream key nor any virtual key appears in
// any answer, log line, sample or the ledger files.
func TestProxyNoKeyLeaks(t *testing.T) {
	e := newEnv(t, nil)
	k := e.key("acme", "", "k")
	e.setPolicy(ledger.Policy{Tenant: "acme", SampleBP: 10000})
	e.waitPolicy("acme", func(p ledger.Policy) bool { return p.SampleBP == 10000 })
	var answers strings.Builder
	for _, mode := range []string{"", "error", "cut", "nousage"} {
		answers.WriteString(e.do("POST", "/v1/chat/completions", k, false, chatBody, "X-Test-Mode", mode).Body)
		answers.WriteString(e.do("POST", "/v1/messages", k, true, strings.Replace(msgBody, `"max_tokens"`, `"stream":true,"max_tokens"`, 1), "X-Test-Mode", mode).Body)
	}
	// An upstream that rejects the key echoes it back: redacted too.
	bad := newEnv(t, func(c *Config) {
		c.OpenAIKey = "sk-wrong-upstream-key-SECRET-999999"
		c.AnthropicKey = "sk-ant-wrong-SECRET-88888888"
	})
	bk := bad.key("acme", "", "bk")
	answers.WriteString(bad.do("POST", "/v1/chat/completions", bk, false, chatBody).Body)
	answers.WriteString(bad.do("POST", "/v1/messages", bk, true, msgBody).Body)
	answers.WriteString(bad.do("GET", "/v1/models", bk, false, "").Body)
	e.close()
	bad.close()
	files := []string{e.sample}
	for _, p := range []string{e.dbPath, e.dbPath + "-wal", bad.dbPath, bad.dbPath + "-wal"} {
		if _, err := os.Stat(p); err == nil {
			files = append(files, p)
		}
	}
	all := answers.String() + e.log.String() + bad.log.String()
	for _, f := range files {
		b, _ := os.ReadFile(f)
		all += string(b)
	}
	for _, secret := range []string{testOpenAIKey, testAnthropicKey, k, bk, "sk-wrong-upstream-key-SECRET-999999", "sk-ant-wrong-SECRET-88888888", "SECRET"} {
		if strings.Contains(all, secret) {
			t.Fatalf("%q leaked", secret)
		}
	}
	if !strings.Contains(all, "[REDACTED]") {
		t.Fatal("expected a redacted upstream error")
	}
}

func bigRat(n int64) *big.Rat { return big.NewRat(n, 1) }

// pricingMoneyFloor is r dollars rounded down to the nano-dollar.
func pricingMoneyFloor(r *big.Rat) (pricing.Money, bool) {
	x := new(big.Rat).Mul(r, big.NewRat(int64(pricing.NanoPerDollar), 1))
	q := new(big.Int).Quo(x.Num(), x.Denom())
	return pricing.Money(q.Int64()), q.IsInt64()
}

func TestProxyBudgetThresholdAlerts(t *testing.T) {
	n := &notes{}
	a := newAlerter(n)
	b := newBudgets()
	now := time.Now()
	p := ledger.Policy{Tenant: "acme", DailyBudget: pricing.Dollars(1)}
	cents := func(c int64) pricing.Amount {
		return pricing.AmountFromMoney(pricing.Money(c) * pricing.NanoPerDollar / 100)
	}
	var got []string
	for _, c := range []int64{40, 20, 25, 5, 10} { // 40, 60 (50%), 85 (80%), 90, 100 (100%)
		r, over := b.reserve("acme", p, cents(c), now)
		if over != nil {
			t.Fatal(over)
		}
		a.crossed(b.settle(r, cents(c), now), p, now)
	}
	for _, al := range n.all() {
		got = append(got, al.Kind+" "+al.Period+" "+al.Spend.String())
	}
	want := []string{"budget_50 daily 0.60", "budget_80 daily 0.85", "budget_100 daily 1.00"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("alerts %q, want %q", got, want)
	}
	// A refusal at 100% raises nothing new the same day.
	if _, over := b.reserve("acme", p, cents(1), now); over == nil {
		t.Fatal("reserved past the budget")
	}
	a.budget("acme", "daily", p.DailyBudget, cents(100), 100, now)
	if len(n.all()) != 3 {
		t.Fatalf("%d alerts", len(n.all()))
	}
}

func TestProxySpikeAlert(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.SpikeFactor = 5
		c.SpikeFloor = pricing.NanoPerDollar / 100 // $0.01 per 5 minutes
		c.SpikeInterval = time.Hour                // checked by hand below
	})
	now := time.Now()
	var evs []ledger.Event
	add := func(tenant string, at time.Time, milli int64) {
		c := pricing.Money(milli) * pricing.NanoPerDollar / 1000
		evs = append(evs, ledger.Event{Key: fmt.Sprintf("ingest:%d", len(evs)), Time: at, Source: "ingest", Tenant: tenant, Model: "gpt-4o-mini",
			InputTokens: 1, Cost: c, CostExact: pricing.AmountFromMoney(c)})
	}
	for d := 1; d <= 7; d++ {
		// $0.084 in this hour on each past day: $0.007 per 5 minutes.
		add("acme", now.AddDate(0, 0, -d).Add(-30*time.Minute), 84)
		add("calm", now.AddDate(0, 0, -d).Add(-30*time.Minute), 84)
	}
	add("acme", now.Add(-time.Minute), 100) // 0.10 > 5 × max(0.007, 0.01)
	add("calm", now.Add(-time.Minute), 20)  // 0.02 < 0.05
	add("small", now.Add(-time.Minute), 40) // no baseline: the floor, 0.04 < 0.05
	if _, err := e.db.Insert(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.checkSpikes(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	e.srv.checkSpikes(context.Background(), now) // the same day: no second alert
	got := e.notes.all()
	if len(got) != 1 || got[0].Tenant != "acme" || got[0].Kind != alerts.KindSpike || got[0].Spend.String() != "0.10" ||
		got[0].Baseline.String() != "0.007" || got[0].Window != 5*time.Minute {
		t.Fatalf("alerts %+v", got)
	}
}

func TestProxyResponsesStreaming(t *testing.T) {
	e := newEnv(t, nil)
	k := e.key("acme", "", "k")
	body := `{"model":"gpt-4o-mini","stream":true,"input":"hi","max_output_tokens":50}`
	r := e.do("POST", "/v1/responses", k, false, body)
	if r.Status != 200 || !strings.Contains(r.Body, "event: response.completed") {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if strings.Contains(e.up.lastBody.Load().(string), "stream_options") {
		t.Fatal("stream_options sent to the responses API")
	}
	e.do("POST", "/v1/responses", k, false, body, "X-Test-Mode", "cut")
	rs := e.waitRows(2)
	if r := rs[0]; r.In != 300 || r.Cached != 100 || r.Out != 20 || r.Reasoning != 5 || r.Estimate != "" ||
		r.Cost != priceOf(t, "gpt-4o-mini", ledger.Event{InputTokens: 300, CachedTokens: 100, OutputTokens: 20}) {
		t.Fatalf("row %+v", r)
	}
	if r := rs[1]; r.Estimate != ledger.EstimateNoUsage || r.In != int64(len(body))+boundFixed || r.Out < 1 {
		t.Fatalf("cut row %+v", r)
	}
}

// TestProxyClientCutsStream: a client that goes away mid-stream leaves a
// row billed for what was relayed (estimated), and the reservation freed.
func TestProxyClientCutsStream(t *testing.T) {
	forBackends(t, testClientCutsStream)
}

func testClientCutsStream(t *testing.T, be backend) {
	e := newEnv(t, func(c *Config) {
		be.mod(t, c)
		// A budget, so the shared stores take holds.
		if err := c.Control.(*ledger.DB).SetPolicy(context.Background(), ledger.Policy{Tenant: "acme", DailyBudget: pricing.Dollars(100)},
			ledger.PolicyChange{At: time.Now(), Tenant: "acme", What: "x", Reason: "x", Who: "t"}); err != nil {
			t.Fatal(err)
		}
	})
	k := e.key("acme", "", "k")
	for _, c := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"x"}],"max_tokens":100}`},
		{"/v1/messages", strings.Replace(msgBody, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", e.http.URL+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+k)
		req.Header.Set("X-Test-Mode", "hold")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 10)
		if _, err := io.ReadFull(res.Body, buf); err != nil {
			t.Fatal(err)
		}
		cancel()
		res.Body.Close()
	}
	rs := e.waitRows(2)
	for _, r := range rs {
		if r.Estimate != ledger.EstimateNoUsage || r.In == 0 {
			t.Fatalf("row %+v", r)
		}
	}
	for _, r := range rs {
		if r.Endpoint == "/v1/messages" && (r.In != 500 || r.Cached != 100) {
			t.Fatalf("messages row %+v: not the input message_start reported", r)
		}
	}
	eventually(t, "reservations freed", func() bool {
		_, res := e.spent("acme")
		return res.IsZero()
	})
}

// TestProxyUpstreamFailures: an upstream that hangs up after reading the
// request may have billed it: a row at the worst case, marked unsettled.
// An upstream that cannot be reached billed nothing: a 502, no row.
func TestProxyUpstreamFailures(t *testing.T) {
	forBackends(t, testUpstreamFailures)
}

func testUpstreamFailures(t *testing.T, be backend) {
	budget := func(c *Config) {
		be.mod(t, c)
		if err := c.Control.(*ledger.DB).SetPolicy(context.Background(), ledger.Policy{Tenant: "acme", DailyBudget: pricing.Dollars(100)},
			ledger.PolicyChange{At: time.Now(), Tenant: "acme", What: "x", Reason: "x", Who: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, budget)
	k := e.key("acme", "", "k")
	r := e.do("POST", "/v1/chat/completions", k, false, chatBody, "X-Test-Mode", "drop")
	if r.Status != 502 || !strings.Contains(r.Body, `"type":"upstream_error"`) {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	rs := e.waitRows(1)
	bound := int64(len(chatBody)) + boundFixed
	if rs[0].Estimate != ledger.EstimateUnsettled || rs[0].Status != 0 || rs[0].In != bound || rs[0].Out != 100 ||
		rs[0].Cost != priceOf(t, "gpt-4o-mini", ledger.Event{InputTokens: bound, OutputTokens: 100}) {
		t.Fatalf("row %+v", rs[0])
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	e2 := newEnv(t, func(c *Config) { budget(c); c.OpenAIUpstream = deadURL })
	k2 := e2.key("acme", "", "k2")
	if r := e2.do("POST", "/v1/chat/completions", k2, false, chatBody); r.Status != 502 || strings.Contains(r.Body, testOpenAIKey) {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	e2.close()
	if rs := e2.rows(); len(rs) != 0 {
		t.Fatalf("rows %+v", rs)
	}
	if _, res := e2.spent("acme"); !res.IsZero() {
		t.Fatalf("reservation left: %s", res)
	}
}

// Spend another writer adds after the proxy started (an ingest, an eval,
// another proxy) joins the tenant's budget within a few policy reloads;
// the proxy's own committed rows are not counted twice.
func TestProxyBudgetSeesOtherWriters(t *testing.T) {
	forBackends(t, testBudgetSeesOtherWriters)
}

func testBudgetSeesOtherWriters(t *testing.T, be backend) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := ledger.Open(ctx, filepath.Join(dir, "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.SetPolicy(ctx, ledger.Policy{Tenant: "acme", DailyBudget: pricing.Dollars(5)}, ledger.PolicyChange{At: time.Now(), Tenant: "acme", What: "x", Reason: "x", Who: "t"}); err != nil {
		t.Fatal(err)
	}
	w := ledger.NewWriter(db, ledger.WriterConfig{})
	defer w.Close()
	cfg := Config{Control: db, Spend: db, Writer: w, Pricing: pricing.MustDefault(), OpenAIKey: testOpenAIKey, PolicyInterval: 10 * time.Millisecond}
	be.mod(t, &cfg)
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// This process's own call: settled, then committed (as the writer's
	// callback does), then read back by a refresh — counted once.
	now := time.Now()
	r, over, err := s.store.reserve(ctx, "acme", ledger.Policy{DailyBudget: pricing.Dollars(5)}, pricing.AmountFromMoney(pricing.Dollars(1)), now)
	if err != nil || over != nil {
		t.Fatal(err, over)
	}
	own := pricing.AmountFromMoney(pricing.Dollars(1) / 2)
	s.store.settle(r, own, now)
	if _, err := db.Insert(ctx, []ledger.Event{{Key: "proxy:own", Time: now, Source: ledger.SourceProxy, Tenant: "acme", Model: "gpt-4o-mini",
		InputTokens: 1, Cost: pricing.Dollars(1) / 2, CostExact: own}}); err != nil {
		t.Fatal(err)
	}
	s.store.done(ctx, r, rowCommitted, now, own, now)
	// Another writer: $4 more.
	if _, err := db.Insert(ctx, []ledger.Event{{Key: "ingest:late", Time: now, Source: ledger.SourceIngest, Tenant: "acme", Model: "gpt-4o-mini",
		InputTokens: 1, Cost: pricing.Dollars(4), CostExact: pricing.AmountFromMoney(pricing.Dollars(4))}}); err != nil {
		t.Fatal(err)
	}
	want := pricing.AmountFromMoney(pricing.Dollars(4) + pricing.Dollars(1)/2)
	eventually(t, "the other writer's $4 in the budget", func() bool {
		day, _, _, _, err := s.store.spent(ctx, "acme", time.Now())
		return err == nil && day.Cmp(want) == 0
	})
	// $4.50 of $5 spent: a $0.60 worst case no longer fits, $0.40 does.
	if _, over, err := s.store.reserve(ctx, "acme", ledger.Policy{DailyBudget: pricing.Dollars(5)}, pricing.AmountFromMoney(pricing.Dollars(6)/10), time.Now()); err != nil || over == nil {
		t.Fatal("a reservation past the budget was admitted", err)
	}
	if _, over, err := s.store.reserve(ctx, "acme", ledger.Policy{DailyBudget: pricing.Dollars(5)}, pricing.AmountFromMoney(pricing.Dollars(4)/10), time.Now()); err != nil || over != nil {
		t.Fatalf("a reservation within the budget was refused: %v %v", over, err)
	}
}
