package commands

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costctl/costctl/internal/redistest"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// fleetRedis is the test Redis's URL and a key prefix of this test's own
// (internal/redistest).
func fleetRedis(t *testing.T) (url, prefix string) {
	t.Helper()
	_, prefix = redistest.Client(t)
	return redistest.URL(), prefix
}

// startProxyBinArgs starts the built binary's proxy with extra flags.
func startProxyBinArgs(t *testing.T, dbPath, upstream string, extra ...string) *proxyBin {
	t.Helper()
	home := t.TempDir()
	p := &proxyBin{rest: make(chan string, 1)}
	args := append([]string{"--db", dbPath, "proxy", "--listen", "127.0.0.1:0", "--upstream", upstream}, extra...)
	p.cmd = exec.Command(costctlBin, args...)
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

// TestProxyE2EFleetSharedBudget: two proxy processes (the built binary)
// on one ledger file, sharing the budget through the ledger
// (--shared-budget) or through one Redis (--redis), 32 concurrent
// streamed calls each for one tenant with a daily budget of a few calls'
// worst case: while the admitted streams are held open upstream, the rest
// get 429 budget_exceeded; the ledger then holds exactly one row per
// admitted stream and its spend is within the budget. Then a block set
// with costctl policy set reaches both processes (each refuses with 403).
func TestProxyE2EFleetSharedBudget(t *testing.T) {
	for _, mode := range []string{"shared-budget", "redis"} {
		t.Run(mode, func(t *testing.T) {
			var flags []string
			if mode == "redis" {
				u, prefix := fleetRedis(t)
				flags = []string{"--redis", u, "--redis-prefix", prefix}
			} else {
				flags = []string{"--shared-budget"}
			}
			up := newHoldUpstream(t)
			dbPath, key := proxyTestLedger(t)
			// A second key of the tenant probes for the block: its calls
			// (served until the block applies) are told apart by metric.
			probe := "ck-proxy-fleet-probe-virtual-SECRET"
			if db, err := ledger.Open(context.Background(), dbPath); err != nil {
				t.Fatal(err)
			} else {
				err := db.CreateKey(context.Background(), ledger.VirtualKey{Name: "probe", Tenant: "acme", Hash: ledger.HashKey(probe), CreatedAt: time.Now()})
				db.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			budget := "0.0004"
			if r := runCostctl(t, "", "", nil, "--db", dbPath, "policy", "set", "--tenant", "acme", "--daily-budget", budget, "--reason", "e2e"); r.Code != 0 {
				t.Fatalf("policy set: %d %s", r.Code, r.Stderr)
			}
			ps := []*proxyBin{startProxyBinArgs(t, dbPath, up.srv.URL, flags...), startProxyBinArgs(t, dbPath, up.srv.URL, flags...)}
			const each = 32
			var refused, other atomic.Int64
			var wg sync.WaitGroup
			for _, p := range ps {
				for range each {
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
			}
			waitFor(t, "all 64 calls admitted (held) or refused", func() bool { return up.held.Load()+refused.Load() == 2*each })
			admitted := up.held.Load()
			up.releaseAll()
			wg.Wait()
			if admitted == 0 || refused.Load() == 0 || other.Load() != 0 {
				t.Fatalf("admitted %d, refused %d, other %d", admitted, refused.Load(), other.Load())
			}
			t.Logf("%d streams admitted across both proxies, %d refused", admitted, refused.Load())

			// A block set with costctl policy reaches both.
			if r := runCostctl(t, "", "", nil, "--db", dbPath, "policy", "set", "--tenant", "acme", "--block", "--reason", "e2e block"); r.Code != 0 {
				t.Fatalf("policy set --block: %d %s", r.Code, r.Stderr)
			}
			for i, p := range ps {
				waitFor(t, "the block applied by proxy "+string(rune('1'+i)), func() bool {
					s, _ := proxyCall(t, p.addr, probe, false)
					return s == 403
				})
			}
			for _, p := range ps {
				if code, out := p.stop(t); code != 0 {
					t.Fatalf("exit %d:\n%s", code, out)
				}
			}
			db, err := ledger.OpenReadOnly(context.Background(), dbPath)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var rows, ok200, dollars, pico int64
			if err := db.SQL().QueryRow(`SELECT COALESCE(SUM(metric = 'acme-1'), 0), COALESCE(SUM(metric = 'acme-1' AND status = 200), 0),
				COALESCE(SUM(cost_dollars), 0), COALESCE(SUM(cost_pico), 0)
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
		})
	}
}
