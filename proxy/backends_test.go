package proxy

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/costctl/costctl/internal/redistest"
	"github.com/costctl/costctl/ledger"
)

// backend is one budget store the budget tests run against: its mod
// turns a Config (whose Control is the test's *ledger.DB) onto it.
type backend struct {
	name string
	mod  func(t testing.TB, c *Config)
}

// backends are the three budget stores: in memory, ledger holds, Redis.
var backends = []backend{
	{"memory", func(testing.TB, *Config) {}},
	{"ledger", func(_ testing.TB, c *Config) { c.Holds = c.Control.(*ledger.DB) }},
	{"redis", func(t testing.TB, c *Config) {
		c.Redis, c.RedisPrefix = testRedis(t)
		c.ReconcileInterval = 10 * time.Millisecond
	}},
}

// forBackends runs f as a subtest against each budget store.
func forBackends(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// testRedis is a client of the test Redis and a key prefix of this test's
// own (internal/redistest).
func testRedis(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	return redistest.Client(t)
}
