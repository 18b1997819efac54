package proxy

import (
	"context"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/costctl/costctl/internal/pgtest"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// fleetMember is one proxy of a fleet: its own ledger handle and Writer
// on the shared ledger file, its own policy ticker.
type fleetMember struct {
	db     *ledger.DB
	writer *ledger.Writer
	srv    *Server
	http   *httptest.Server
	tick   chan time.Time
	closed bool
}

func (m *fleetMember) close() {
	if m.closed {
		return
	}
	m.closed = true
	m.http.Close()
	m.srv.Wait()
	m.srv.Close()
	m.writer.Close()
}

// reload makes m reload its policies, and returns once it has: the loop
// takes a second tick only after the first reload ended.
func (m *fleetMember) reload() {
	m.tick <- time.Now()
	m.tick <- time.Now()
}

// newFleet starts n proxies on one SQLite ledger file and, for redis, one
// Redis prefix. setup runs on the ledger before they start.
func newFleet(t *testing.T, kind string, n int, up *fakeUpstream, setup func(db *ledger.DB)) []*fleetMember {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	if kind == "postgres" {
		path = pgtest.DSN(t)
	}
	first, err := ledger.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	setup(first)
	first.Close()
	var rdb redis.UniversalClient
	var prefix string
	if kind == "redis" {
		rdb, prefix = testRedis(t)
	}
	var ms []*fleetMember
	for i := range n {
		db, err := ledger.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		m := &fleetMember{db: db, writer: ledger.NewWriter(db, ledger.WriterConfig{Queue: 1024}), tick: make(chan time.Time)}
		cfg := Config{
			OpenAIUpstream: up.URL(), AnthropicUpstream: up.URL(), OpenAIKey: testOpenAIKey, AnthropicKey: testAnthropicKey,
			Control: db, Spend: db, Writer: m.writer, Pricing: pricing.MustDefault(), Log: io.Discard,
			KeyCacheTTL: 20 * time.Millisecond, policyTick: m.tick,
		}
		switch kind {
		case "ledger", "postgres":
			cfg.Holds = db
		case "redis":
			cfg.Redis, cfg.RedisPrefix = rdb, prefix
			cfg.ReconcileInterval = time.Hour // by hand below
		}
		m.srv, err = New(context.Background(), cfg)
		if err != nil {
			t.Fatalf("proxy %d: %v", i, err)
		}
		m.http = httptest.NewServer(m.srv)
		ms = append(ms, m)
		t.Cleanup(func() {
			m.close()
			db.Close()
		})
	}
	return ms
}

func fleetCall(t *testing.T, url, key, body string, hdr ...string) resp {
	req, err := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return resp{}
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return resp{}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

// TestProxyFleetSharedBudget: two proxies on one ledger (a SQLite file;
// PostgreSQL when COSTCTL_TEST_POSTGRES is reachable; and, for redis, one
// Redis), 32 concurrent streams each for one tenant whose daily
// budget fits 10.5 worst cases: exactly 10 are admitted across both, the
// other 54 get 429 budget_exceeded, the ledger holds one row per admitted
// stream and its spend is within the budget. Then a block set in the
// ledger is refused by both proxies after their next policy reload.
func TestProxyFleetSharedBudget(t *testing.T) {
	for _, kind := range []string{"ledger", "postgres", "redis"} {
		t.Run(kind, func(t *testing.T) { testFleetSharedBudget(t, kind) })
	}
}

func testFleetSharedBudget(t *testing.T, kind string) {
	ctx := context.Background()
	up := newFakeUpstream(t)
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"go"}],"max_tokens":1000}`
	m, _ := pricing.MustDefault().Lookup("gpt-4o-mini")
	req, _ := parseRequest([]byte(body))
	worst, ok := worstCost(m, promptBound([]byte(body), req), 1000, "")
	if !ok {
		t.Fatal("cannot price the worst case")
	}
	const fit, each = 10, 32
	bm, _ := pricingMoneyFloor(new(big.Rat).Quo(worst.MulInt64(21).Rat(), bigRat(2)))
	secret := "ck-test-fleet-virtualSECRET"
	fleet := newFleet(t, kind, 2, up, func(db *ledger.DB) {
		if err := db.CreateKey(ctx, ledger.VirtualKey{Name: "k", Tenant: "acme", Hash: ledger.HashKey(secret), CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetPolicy(ctx, ledger.Policy{Tenant: "acme", DailyBudget: bm}, ledger.PolicyChange{At: time.Now(), Tenant: "acme", What: "x", Reason: "x", Who: "t"}); err != nil {
			t.Fatal(err)
		}
	})
	var wg sync.WaitGroup
	results := make(chan resp, 2*each)
	for _, fm := range fleet {
		for range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- fleetCall(t, fm.http.URL, secret, body, "X-Test-Mode", "hold")
			}()
		}
	}
	eventually(t, "every call held upstream or refused", func() bool {
		return up.holding.Load()+fleet[0].srv.Refused.Load()+fleet[1].srv.Refused.Load() == 2*each
	})
	admitted := up.holding.Load()
	up.releaseAll()
	wg.Wait()
	close(results)
	count := map[int]int{}
	for r := range results {
		count[r.Status]++
		if r.Status == 429 && (!strings.Contains(r.Body, `"type":"budget_exceeded"`) || !strings.Contains(r.Body, "daily budget") || r.Header.Get("Retry-After") == "") {
			t.Errorf("429 body %s", r.Body)
		}
	}
	if admitted != fit || count[200] != fit || count[429] != 2*each-fit {
		t.Fatalf("admitted %d (want %d), statuses %v", admitted, fit, count)
	}
	t.Logf("admitted by proxy 1: %d, by proxy 2: %d", fleet[0].srv.Served.Load(), fleet[1].srv.Served.Load())
	for _, fm := range fleet {
		fm.close()
	}
	var rows, ok200, d, p int64
	if err := fleet[0].db.SQL().QueryRow(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 200 THEN 1 ELSE 0 END), 0), COALESCE(SUM(cost_dollars), 0), COALESCE(SUM(cost_pico), 0)
		FROM events WHERE source = 'proxy' AND tenant = 'acme'`).Scan(&rows, &ok200, &d, &p); err != nil {
		t.Fatal(err)
	}
	spent := pricing.Amount{Dollars: d}.AddPico(p)
	if rows != fit || ok200 != fit || spent.Sign() <= 0 || spent.Cmp(pricing.AmountFromMoney(bm)) > 0 {
		t.Fatalf("%d rows (%d status 200), spent %s of %s", rows, ok200, spent, bm)
	}
}

// TestProxyFleetBlock: a block set in the ledger is refused by every
// proxy of a fleet once each has reloaded its policies once (every
// PolicyInterval, 500 ms by default). With Redis, the first proxy to see
// it publishes the change and the others reload at once: the second proxy
// here gets no tick of its own.
func TestProxyFleetBlock(t *testing.T) {
	for _, kind := range []string{"ledger", "postgres", "redis"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			up := newFakeUpstream(t)
			secret := "ck-test-fleet-block-virtualSECRET"
			fleet := newFleet(t, kind, 2, up, func(db *ledger.DB) {
				if err := db.CreateKey(ctx, ledger.VirtualKey{Name: "k", Tenant: "acme", Hash: ledger.HashKey(secret), CreatedAt: time.Now()}); err != nil {
					t.Fatal(err)
				}
			})
			for _, fm := range fleet {
				if r := fleetCall(t, fm.http.URL, secret, chatBody); r.Status != 200 {
					t.Fatalf("before the block: %d %s", r.Status, r.Body)
				}
			}
			if _, err := fleet[0].db.UpdatePolicy(ctx, "acme", func(p *ledger.Policy) (ledger.PolicyChange, error) {
				p.Blocked = true
				return ledger.PolicyChange{At: time.Now(), Tenant: "acme", What: "block", Reason: "fleet test", Who: "t"}, nil
			}); err != nil {
				t.Fatal(err)
			}
			if kind == "redis" {
				fleet[0].reload()
				// The second proxy reloads on the published change:
				// waiting for it is waiting for a goroutine, not a
				// timing assertion (it has no ticker at all).
				eventually(t, "the second proxy reloaded on the published change", func() bool { return fleet[1].srv.policy("acme").Blocked })
			} else {
				for _, fm := range fleet {
					fm.reload()
				}
			}
			for i, fm := range fleet {
				if r := fleetCall(t, fm.http.URL, secret, chatBody); r.Status != 403 || !strings.Contains(r.Body, "tenant_blocked") {
					t.Fatalf("proxy %d after its reload: %d %s", i+1, r.Status, r.Body)
				}
			}
		})
	}
}

// TestProxyRedisReconcile: the ledger is the record of truth for the
// Redis counters. Spend another writer adds joins at the next
// reconciliation; a lost Redis (its keys gone, holds and all) is rebuilt
// from the ledger before its next reservation, so it never admits past
// the ledger's spend.
func TestProxyRedisReconcile(t *testing.T) {
	ctx := context.Background()
	db, err := ledger.Open(ctx, filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pol := ledger.Policy{Tenant: "acme", DailyBudget: pricing.Dollars(5)}
	if err := db.SetPolicy(ctx, pol, ledger.PolicyChange{At: time.Now(), Tenant: "acme", What: "x", Reason: "x", Who: "t"}); err != nil {
		t.Fatal(err)
	}
	w := ledger.NewWriter(db, ledger.WriterConfig{})
	defer w.Close()
	rdb, prefix := testRedis(t)
	s, err := New(ctx, Config{Control: db, Spend: db, Writer: w, Pricing: pricing.MustDefault(), OpenAIKey: testOpenAIKey,
		Redis: rdb, RedisPrefix: prefix, ReconcileInterval: time.Hour, policyTick: make(chan time.Time)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	usd := func(d int64) pricing.Amount { return pricing.AmountFromMoney(pricing.Dollars(d)) }
	now := time.Now()
	// A hold of $1, then $3 by another writer, reconciled.
	r, over, err := s.store.reserve(ctx, "acme", pol, usd(1), now)
	if err != nil || over != nil {
		t.Fatal(err, over)
	}
	if _, err := db.Insert(ctx, []ledger.Event{{Key: "ingest:x", Time: now, Source: ledger.SourceIngest, Tenant: "acme", Model: "gpt-4o-mini",
		InputTokens: 1, Cost: pricing.Dollars(3), CostExact: usd(3)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.store.refresh(ctx, now, s.allPolicies()); err != nil {
		t.Fatal(err)
	}
	if day, res, _, _, err := s.store.spent(ctx, "acme", now); err != nil || day != usd(3) || res != usd(1) {
		t.Fatalf("after reconcile: spent %s reserved %s (%v)", day, res, err)
	}
	// $3 + $1 held: $2 more does not fit.
	if _, over, _ := s.store.reserve(ctx, "acme", pol, usd(2), now); over == nil || over.spent != usd(4) {
		t.Fatalf("over %+v", over)
	}
	s.store.done(ctx, r, rowNone, now, pricing.Amount{}, now)
	// Redis loses everything: the next reservation rebuilds from the
	// ledger ($3 spent), so $3 more is refused and $2 admitted.
	var keys []string
	it := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if len(keys) == 0 {
		t.Fatal("no keys under the prefix")
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	if _, over, err := s.store.reserve(ctx, "acme", pol, usd(3), now); err != nil || over == nil || over.spent != usd(3) {
		t.Fatalf("after a lost redis: over %+v (%v)", over, err)
	}
	if _, over, err := s.store.reserve(ctx, "acme", pol, usd(2), now); err != nil || over != nil {
		t.Fatalf("after a lost redis: $2 refused: %+v (%v)", over, err)
	}
}

// cutControl is a ledger whose policy reads fail once cut: a proxy that
// cannot reach the ledger for a moment.
type cutControl struct {
	ledger.Control
	cut atomic.Bool
}

func (c *cutControl) Policies(ctx context.Context) (map[string]ledger.Policy, error) {
	if c.cut.Load() {
		return nil, errors.New("ledger unreachable")
	}
	return c.Control.Policies(ctx)
}

// With --redis the block flags are kept in Redis: the proxy that sees a
// block in the ledger writes every tenant's flags there and announces it;
// another proxy takes the flags from Redis at once, even while it cannot
// read the ledger itself.
func TestProxyRedisFlags(t *testing.T) {
	ctx := context.Background()
	db, err := ledger.Open(ctx, filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.SetPolicy(ctx, ledger.Policy{Tenant: "globex", SampleBP: 100}, ledger.PolicyChange{At: time.Now(), Tenant: "globex", What: "sample", Reason: "x", Who: "t"}); err != nil {
		t.Fatal(err)
	}
	rdb, prefix := testRedis(t)
	w := ledger.NewWriter(db, ledger.WriterConfig{})
	defer w.Close()
	var srvs []*Server
	var ticks []chan time.Time
	ctl := &cutControl{Control: db}
	for i := 0; i < 2; i++ {
		var c ledger.Control = db
		if i == 1 {
			c = ctl
		}
		tick := make(chan time.Time)
		s, err := New(ctx, Config{Control: c, Spend: db, Writer: w, Pricing: pricing.MustDefault(), OpenAIKey: testOpenAIKey, Log: io.Discard,
			Redis: rdb, RedisPrefix: prefix, ReconcileInterval: time.Hour, policyTick: tick})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		srvs, ticks = append(srvs, s), append(ticks, tick)
	}
	ctl.cut.Store(true)
	if _, err := db.UpdatePolicy(ctx, "acme", func(p *ledger.Policy) (ledger.PolicyChange, error) {
		p.Blocked = true
		return ledger.PolicyChange{At: time.Now(), Tenant: "acme", What: "block", Reason: "redis flags test", Who: "t"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	ticks[0] <- time.Now() // the first proxy's reload sees the block
	// Waiting for the second proxy's subscriber goroutine (it has no
	// ticker and cannot read the ledger): not a timing assertion.
	eventually(t, "the second proxy took the flags from redis", func() bool { return srvs[1].policy("acme").Blocked })
	if got := srvs[1].policy("globex").SampleBP; got != 100 {
		t.Fatalf("globex sample share on the second proxy: %d", got)
	}
	m, err := rdb.HGetAll(ctx, prefix+"flags").Result()
	if err != nil || m["acme"] != "1,0" || m["globex"] != "0,100" || len(m) != 2 {
		t.Fatalf("redis flags %v %v", m, err)
	}
}
