package commands

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

const proxyTestUpstreamKey = "sk-proxy-cmd-test-SECRET-abcdef0123456789"

// holdUpstream is an OpenAI chat upstream whose streams wait on release
// after their first chunk.
type holdUpstream struct {
	srv     *httptest.Server
	held    atomic.Int64
	release chan struct{}
	once    sync.Once
}

func newHoldUpstream(t *testing.T) *holdUpstream {
	u := &holdUpstream{release: make(chan struct{})}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+proxyTestUpstreamKey {
			w.WriteHeader(401)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hel\"}}]}\n\n")
		fl.Flush()
		u.held.Add(1)
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n")
		io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2}}\n\n")
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(func() {
		u.releaseAll()
		u.srv.Close()
	})
	return u
}

func (u *holdUpstream) releaseAll() { u.once.Do(func() { close(u.release) }) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proxyTestLedger creates a ledger with one virtual key for tenant acme
// and returns its path and the key.
func proxyTestLedger(t *testing.T) (string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ledger.db")
	db, err := ledger.Open(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	secret := "ck-proxy-cmd-test-virtual-SECRET"
	if err := db.CreateKey(context.Background(), ledger.VirtualKey{Name: "acme-1", Tenant: "acme", Hash: ledger.HashKey(secret), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return p, secret
}

func proxyRows(t *testing.T, path string) (n int, estimated int) {
	t.Helper()
	db, err := ledger.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.SQL().QueryRow(`SELECT COUNT(*), COALESCE(SUM(estimate != ''), 0) FROM events WHERE source = 'proxy'`).Scan(&n, &estimated); err != nil {
		t.Fatal(err)
	}
	return n, estimated
}

func proxyCall(t *testing.T, addr, key string, stream bool) (int, string) {
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":20}`
	if stream {
		body = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":20}`
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runProxyForTest runs the proxy in-process until ctx ends.
func runProxyForTest(t *testing.T, ctx context.Context, dbPath, upstream string, drain time.Duration, errOut io.Writer, mod ...func(*ProxyOptions)) (addr chan string, done chan error) {
	addr, done = make(chan string, 1), make(chan error, 1)
	opts := &ProxyOptions{
		IO:     &IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: errOut},
		Getenv: func(k string) string { return map[string]string{"OPENAI_API_KEY": proxyTestUpstreamKey}[k] },
		Now:    time.Now, Pricing: pricing.Default,
		Ledger:   func(ctx context.Context) (*ledger.DB, error) { return ledger.Open(ctx, dbPath) },
		Listen:   "127.0.0.1:0",
		Upstream: upstream, AnthropicUpstream: upstream,
		DrainTimeout: drain, CacheTTL: time.Hour, SpikeFactor: 5,
		Ready: func(a string) { addr <- a },
	}
	for _, m := range mod {
		m(opts)
	}
	go func() { done <- runProxy(ctx, opts) }()
	return addr, done
}

// TestProxyDrainNothingLost: interrupted with streams in flight, the proxy
// stops accepting, lets them finish, writes every call and returns nil.
func TestProxyDrainNothingLost(t *testing.T) {
	up := newHoldUpstream(t)
	dbPath, key := proxyTestLedger(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errOut := &lockedBuffer{}
	addrCh, done := runProxyForTest(t, ctx, dbPath, up.srv.URL, time.Minute, errOut)
	addr := <-addrCh
	for range 4 {
		if s, b := proxyCall(t, addr, key, false); s != 200 {
			t.Fatalf("%d %s", s, b)
		}
	}
	const streams = 8
	var wg sync.WaitGroup
	results := make(chan string, streams)
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, b := proxyCall(t, addr, key, true)
			results <- fmt.Sprintf("%d %s", s, b)
		}()
	}
	waitFor(t, "8 streams in flight", func() bool { return up.held.Load() == streams })
	cancel() // SIGTERM
	waitFor(t, "the proxy draining", func() bool { return strings.Contains(errOut.String(), "draining") })
	waitFor(t, "the listener closed", func() bool {
		s, _ := proxyCall(t, addr, key, false)
		return s == 0
	})
	up.releaseAll()
	wg.Wait()
	close(results)
	for r := range results {
		if !strings.HasPrefix(r, "200 ") || !strings.Contains(r, "[DONE]") {
			t.Fatalf("a drained stream: %s", r)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("runProxy: %v", err)
	}
	if n, est := proxyRows(t, dbPath); n != 4+streams || est != 0 {
		t.Fatalf("%d rows (%d estimated), want %d exact", n, est, 4+streams)
	}
	if strings.Contains(errOut.String(), proxyTestUpstreamKey) || strings.Contains(errOut.String(), key) {
		t.Fatal("a key in the proxy's output")
	}
}

// TestProxyDrainTimeoutBillsCutStreams: streams still open when the drain
// timeout ends are cut and billed for what they relayed, estimated.
func TestProxyDrainTimeoutBillsCutStreams(t *testing.T) {
	up := newHoldUpstream(t)
	dbPath, key := proxyTestLedger(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrCh, done := runProxyForTest(t, ctx, dbPath, up.srv.URL, time.Millisecond, &lockedBuffer{})
	addr := <-addrCh
	const streams = 3
	var wg sync.WaitGroup
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			proxyCall(t, addr, key, true)
		}()
	}
	waitFor(t, "streams in flight", func() bool { return up.held.Load() == streams })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runProxy: %v", err)
	}
	wg.Wait()
	if n, est := proxyRows(t, dbPath); n != streams || est != streams {
		t.Fatalf("%d rows (%d estimated), want %d estimated", n, est, streams)
	}
}

// proxyBin is the built binary serving as costctl proxy.
type proxyBin struct {
	cmd    *exec.Cmd
	addr   string
	log    strings.Builder
	rest   chan string
	stdout bytes.Buffer
}

// startProxyBin starts the built binary's proxy on a free loopback port.
func startProxyBin(t *testing.T, dbPath, upstream string) *proxyBin {
	t.Helper()
	home := t.TempDir()
	p := &proxyBin{rest: make(chan string, 1)}
	p.cmd = exec.Command(costctlBin, "--db", dbPath, "proxy", "--listen", "127.0.0.1:0", "--upstream", upstream)
	p.cmd.Env = []string{"HOME=" + home, "XDG_STATE_HOME=" + filepath.Join(home, "state"), "PATH=" + os.Getenv("PATH"), "NO_COLOR=1", "OPENAI_API_KEY=" + proxyTestUpstreamKey}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = &p.stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		p.log.WriteString(line + "\n")
		if a, ok := strings.CutPrefix(line, "costctl proxy: listening on http://"); ok {
			p.addr = strings.Fields(a)[0]
			break
		}
	}
	if p.addr == "" {
		t.Fatalf("no listen line:\n%s", p.log.String())
	}
	go func() {
		var b strings.Builder
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		p.rest <- b.String()
	}()
	return p
}

// stop sends SIGTERM and returns the exit code and everything it printed.
func (p *proxyBin) stop(t *testing.T) (int, string) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.log.WriteString(<-p.rest)
	p.cmd.Wait()
	return p.cmd.ProcessState.ExitCode(), p.log.String() + p.stdout.String()
}

// TestProxyE2ESigterm: the built binary serves calls, and on SIGTERM
// flushes the ledger and exits 0; no key in its output or ledger.
func TestProxyE2ESigterm(t *testing.T) {
	up := newHoldUpstream(t)
	dbPath, key := proxyTestLedger(t)
	p := startProxyBin(t, dbPath, up.srv.URL)
	for range 3 {
		if s, b := proxyCall(t, p.addr, key, false); s != 200 {
			t.Fatalf("%d %s", s, b)
		}
	}
	if s, _ := proxyCall(t, p.addr, "ck-wrong", false); s != 401 {
		t.Fatalf("wrong key: %d", s)
	}
	code, out := p.stop(t)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if n, _ := proxyRows(t, dbPath); n != 3 {
		t.Fatalf("%d rows, want 3\n%s", n, out)
	}
	all := out
	for _, f := range []string{dbPath, dbPath + "-wal"} {
		if b, err := os.ReadFile(f); err == nil {
			all += string(b)
		}
	}
	if strings.Contains(all, proxyTestUpstreamKey) || strings.Contains(all, key) || strings.Contains(all, "SECRET") {
		t.Fatal("a key leaked into output or the ledger")
	}
	if !strings.Contains(out, "3 calls served, 1 refused") {
		t.Fatalf("summary:\n%s", out)
	}
}

// TestProxyE2EKeysAndPolicy: a key from costctl keys create works; costctl
// policy set --block applies to the running proxy (polled), --unblock and
// --route too; the key is printed once, by keys create only.
func TestProxyE2EKeysAndPolicy(t *testing.T) {
	up := newHoldUpstream(t)
	dbPath := filepath.Join(t.TempDir(), "ledger.db")
	r := runCostctl(t, "", "", nil, "--db", dbPath, "keys", "create", "--tenant", "acme", "--name", "acme-1")
	if r.Code != 0 {
		t.Fatalf("keys create: %d %s", r.Code, r.Stderr)
	}
	key := strings.TrimSpace(r.Stdout)
	p := startProxyBin(t, dbPath, up.srv.URL)
	if s, b := proxyCall(t, p.addr, key, false); s != 200 {
		t.Fatalf("%d %s", s, b)
	}
	var outputs strings.Builder
	policy := func(args ...string) {
		r := runCostctl(t, "", "", nil, append([]string{"--db", dbPath, "policy", "set", "--tenant", "acme"}, args...)...)
		if r.Code != 0 {
			t.Fatalf("policy set %v: %d %s", args, r.Code, r.Stderr)
		}
		outputs.WriteString(r.Stdout + r.Stderr)
	}
	policy("--block", "--reason", "runaway loop")
	waitFor(t, "the block applied", func() bool {
		s, b := proxyCall(t, p.addr, key, false)
		return s == 403 && strings.Contains(b, "tenant_blocked")
	})
	policy("--unblock", "--route", "gpt-4o-mini=gpt-4o", "--reason", "fixed")
	waitFor(t, "unblocked and routed", func() bool {
		s, _ := proxyCall(t, p.addr, key, false)
		return s == 200
	})
	code, out := p.stop(t)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out+outputs.String(), key) || strings.Contains(out, proxyTestUpstreamKey) {
		t.Fatal("a key in the output")
	}
	if !strings.Contains(out, "tenant acme blocked") || !strings.Contains(out, "tenant acme unblocked") {
		t.Fatalf("no block/unblock lines:\n%s", out)
	}
}

// TestProxyWebhookAlerts: crossing 50% of a budget posts one alert however
// many calls follow; a block posts one with who and why; nothing carries
// a key.
func TestProxyWebhookAlerts(t *testing.T) {
	up := newHoldUpstream(t)
	dbPath, key := proxyTestLedger(t)
	var mu sync.Mutex
	var posts []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		posts = append(posts, m)
		mu.Unlock()
	}))
	defer hook.Close()
	got := func() []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		return append([]map[string]any(nil), posts...)
	}
	db, err := ledger.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	almost := pricing.Money(499_999_990) // $0.49999999 spent today
	if _, err := db.Insert(context.Background(), []ledger.Event{{Key: "ingest:w1", Time: time.Now(), Source: "ingest", Tenant: "acme", Model: "gpt-4o-mini",
		InputTokens: 1, Cost: almost, CostExact: pricing.AmountFromMoney(almost)}}); err != nil {
		t.Fatal(err)
	}
	change := func(p ledger.Policy, reason string) {
		if err := db.SetPolicy(context.Background(), p, ledger.PolicyChange{At: time.Now(), Tenant: "acme", What: "test", Reason: reason, Who: "oncall"}); err != nil {
			t.Fatal(err)
		}
	}
	change(ledger.Policy{Tenant: "acme", DailyBudget: pricing.Dollars(1)}, "budget")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrCh, done := runProxyForTest(t, ctx, dbPath, up.srv.URL, time.Minute, &lockedBuffer{}, func(o *ProxyOptions) {
		o.Webhook = hook.URL
		o.HTTPClient = hook.Client()
	})
	addr := <-addrCh
	for range 5 {
		if s, b := proxyCall(t, addr, key, false); s != 200 {
			t.Fatalf("%d %s", s, b)
		}
	}
	change(ledger.Policy{Tenant: "acme", DailyBudget: pricing.Dollars(1), Blocked: true}, "runaway loop")
	waitFor(t, "the block applied", func() bool {
		s, _ := proxyCall(t, addr, key, false)
		return s == 403
	})
	waitFor(t, "two alerts", func() bool { return len(got()) >= 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ps := got()
	if len(ps) != 2 || ps[0]["kind"] != "budget_50" || ps[0]["tenant"] != "acme" || ps[0]["period"] != "daily" ||
		ps[1]["kind"] != "blocked" || ps[1]["who"] != "oncall" || ps[1]["reason"] != "runaway loop" {
		t.Fatalf("webhook got %v", ps)
	}
	b, _ := json.Marshal(ps)
	if bytes.Contains(b, []byte(key)) || bytes.Contains(b, []byte(proxyTestUpstreamKey)) {
		t.Fatal("a key in an alert")
	}
}

// TestProxyFlags: flags fill ProxyOptions; bad values are usage errors.
func TestProxyFlags(t *testing.T) {
	var got *ProxyOptions
	run := func(args ...string) (err error) {
		got, err = parseProxyFlags(args...)
		return err
	}
	if err := run(); err != nil || got.Listen != "127.0.0.1:8787" || got.Upstream != "https://api.openai.com" ||
		got.AnthropicUpstream != "https://api.anthropic.com" || got.DrainTimeout != 30*time.Second || got.CacheTTL != 24*time.Hour || got.SpikeFactor != 5 {
		t.Fatalf("defaults: %v %+v", err, got)
	}
	if err := run("--listen", "0.0.0.0:9000", "--upstream", "http://u", "--anthropic-upstream", "http://a", "--sample-out", "s.jsonl",
		"--webhook", "http://h", "--drain-timeout", "5s", "--cache-ttl", "1h", "--spike-factor", "3"); err != nil ||
		got.Listen != "0.0.0.0:9000" || got.Upstream != "http://u" || got.AnthropicUpstream != "http://a" || got.SampleOut != "s.jsonl" ||
		got.Webhook != "http://h" || got.DrainTimeout != 5*time.Second || got.CacheTTL != time.Hour || got.SpikeFactor != 3 {
		t.Fatalf("flags: %v %+v", err, got)
	}
	f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}, Getenv: func(string) string { return "" }, Now: time.Now}
	for _, bad := range [][]string{{"--listen", "8787"}, {"--cache-ttl", "0s"}, {"--spike-factor", "1"}, {"--drain-timeout", "-1s"}, {"extra"}, {"--nope"}} {
		var errb bytes.Buffer
		f.IO.ErrOut = &errb
		if code := Run(context.Background(), f, append([]string{"proxy"}, bad...)); code != ExitUsage {
			t.Errorf("%v: exit %d (%s), want a usage error", bad, code, errb.String())
		}
	}
}

// TestProxyNeedsAnUpstreamKey: without OPENAI_API_KEY or ANTHROPIC_API_KEY
// the proxy does not start, and says which variables to set.
func TestProxyNeedsAnUpstreamKey(t *testing.T) {
	opts := &ProxyOptions{IO: &IOStreams{Out: io.Discard, ErrOut: io.Discard}, Getenv: func(string) string { return "" },
		Pricing: pricing.Default, Listen: "127.0.0.1:0"}
	err := runProxy(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "OPENAI_API_KEY") || !strings.Contains(err.Error(), "ANTHROPIC_API_KEY") {
		t.Fatalf("err %v", err)
	}
}

// TestProxyE2EConcurrentStreamsBudget: through the built binary, 64
// concurrent streamed calls for one tenant with a daily budget of a few
// calls' worst case: while the admitted streams are held open upstream,
// the rest are refused with 429 budget_exceeded; once they end, the
// ledger's spend for the tenant is within the budget and holds exactly one
// row per admitted stream, each with the status its client got.
func TestProxyE2EConcurrentStreamsBudget(t *testing.T) {
	up := newHoldUpstream(t)
	dbPath, key := proxyTestLedger(t)
	budget := "0.0004"
	if r := runCostctl(t, "", "", nil, "--db", dbPath, "policy", "set", "--tenant", "acme", "--daily-budget", budget, "--reason", "e2e"); r.Code != 0 {
		t.Fatalf("policy set: %d %s", r.Code, r.Stderr)
	}
	p := startProxyBin(t, dbPath, up.srv.URL)
	const n = 64
	var refused, other atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, b := proxyCall(t, p.addr, key, true)
			switch {
			case s == 429 && strings.Contains(b, "budget_exceeded"):
				refused.Add(1)
			case s == 200 && strings.Contains(b, "[DONE]"):
			default:
				other.Add(1)
				t.Errorf("unexpected answer %d %s", s, b)
			}
		}()
	}
	// Every request is decided while the admitted ones are still open.
	waitFor(t, "all 64 calls admitted (held) or refused", func() bool { return up.held.Load()+refused.Load() == n })
	admitted := up.held.Load()
	up.releaseAll()
	wg.Wait()
	if admitted == 0 || refused.Load() == 0 || other.Load() != 0 {
		t.Fatalf("admitted %d, refused %d, other %d", admitted, refused.Load(), other.Load())
	}
	t.Logf("%d streams admitted, %d refused", admitted, refused.Load())
	if code, out := p.stop(t); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	db, err := ledger.OpenReadOnly(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, ok200 int64
	var dollars, pico int64
	if err := db.SQL().QueryRow(`SELECT COUNT(*), COALESCE(SUM(status = 200), 0), COALESCE(SUM(cost_dollars), 0), COALESCE(SUM(cost_pico), 0)
		FROM events WHERE source = 'proxy' AND tenant = 'acme'`).Scan(&rows, &ok200, &dollars, &pico); err != nil {
		t.Fatal(err)
	}
	spent := pricing.Amount{Dollars: dollars}.AddPico(pico)
	limit, err := pricing.ParseMoney(budget)
	if err != nil {
		t.Fatal(err)
	}
	if rows != admitted || ok200 != admitted || spent.Cmp(pricing.AmountFromMoney(limit)) > 0 || spent.Sign() <= 0 {
		t.Fatalf("%d rows (%d with status 200) for %d admitted streams; spent %s of a %s budget", rows, ok200, admitted, spent, budget)
	}
}

// parseProxyFlags parses `costctl proxy` flags only (the command does not
// run) and returns the options they filled.
func parseProxyFlags(args ...string) (*ProxyOptions, error) {
	f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}, Getenv: func(string) string { return "" }, Now: time.Now}
	var got *ProxyOptions
	cmd := newProxyCmd(f, func(o *ProxyOptions) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.Execute()
	return got, err
}
