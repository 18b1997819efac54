// Package redistest gives a test the test Redis and a key prefix of its
// own.
//
// The server is COSTCTL_TEST_REDIS (default redis://127.0.0.1:6379/0).
// Every key under the test's prefix is deleted when the test ends. A
// server that cannot be reached skips the test with the reason, unless
// COSTCTL_REQUIRE_SERVICES=1: then the test fails.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is the server tests use when COSTCTL_TEST_REDIS is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL is the server tests use.
func URL() string {
	if u := os.Getenv("COSTCTL_TEST_REDIS"); u != "" {
		return u
	}
	return DefaultURL
}

// Client returns a client of the test Redis and this test's key prefix
// ("costctl-test:<random>:"); the client is closed and the prefix's keys
// deleted when t ends.
func Client(t testing.TB) (*redis.Client, string) {
	t.Helper()
	u := URL()
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("COSTCTL_TEST_REDIS %q: %v", u, err)
	}
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close() // never used
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
			if err := rdb.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("redistest: delete %d keys under %s: %v", len(keys), prefix, err)
			}
		}
		_ = rdb.Close() // the deletes above are checked
	})
	return rdb, prefix
}
