package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// testRedis is a client of the test Redis (COSTCTL_TEST_REDIS, default
// redis://127.0.0.1:6379/0) and a key prefix of this test's own; its keys
// are deleted when the test ends. An unreachable Redis skips the test
// (fails it under COSTCTL_REQUIRE_SERVICES=1).
func testRedis(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	u := os.Getenv("COSTCTL_TEST_REDIS")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("COSTCTL_TEST_REDIS %q: %v", u, err)
	}
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		if os.Getenv("COSTCTL_REQUIRE_SERVICES") == "1" {
			t.Fatalf("redis at %s unreachable and COSTCTL_REQUIRE_SERVICES=1: %v", u, err)
		}
		t.Skipf("redis at %s unreachable (set COSTCTL_TEST_REDIS): %v", u, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "costctl-test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		var keys []string
		it := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return rdb, prefix
}
