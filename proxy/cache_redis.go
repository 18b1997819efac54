package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// responseCache is where exact-cache entries live: in memory (cache) or
// in Redis (redisCache), shared by every proxy on it.
type responseCache interface {
	get(key string, now time.Time) *cacheEntry
	put(key string, e *cacheEntry)
}

// redisCache keeps the exact cache in Redis (--redis): the same keys
// (PREFIX cache:KEY, KEY as in cacheKey), the same entries (a
// non-streamed and a streamed answer, merged) and the same TTL
// (--cache-ttl, as a Redis expiry). Its size is Redis's to bound
// (maxmemory and an eviction policy). A Redis that cannot be reached is a
// miss, never an error to the client.
type redisCache struct {
	rdb     redis.UniversalClient
	prefix  string
	ttl     time.Duration
	logf    func(string, ...any)
	warned  atomic.Bool
	timeout time.Duration
}

// redisEntry is a cacheEntry as stored.
type redisEntry struct {
	Full        []byte `json:"full,omitempty"`
	Events      []byte `json:"events,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Usage       usage  `json:"usage"`
	Kind        string `json:"kind"`
	Text        string `json:"text,omitempty"`
}

func (c *redisCache) rkey(key string) string { return c.prefix + "cache:" + key }

func (c *redisCache) failed(err error) {
	if err != nil && !errors.Is(err, redis.Nil) && c.warned.CompareAndSwap(false, true) {
		c.logf("exact cache in redis unavailable (serving misses): %v", err)
	}
}

func (c *redisCache) load(ctx context.Context, key string) *cacheEntry {
	b, err := c.rdb.Get(ctx, c.rkey(key)).Bytes()
	if err != nil {
		c.failed(err)
		return nil
	}
	var re redisEntry
	if json.Unmarshal(b, &re) != nil {
		return nil
	}
	re.Usage.ok = true // only answers with usage are cached
	return &cacheEntry{key: key, full: re.Full, events: re.Events, contentType: re.ContentType, usage: re.Usage, kind: re.Kind, text: re.Text}
}

func (c *redisCache) get(key string, _ time.Time) *cacheEntry {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return c.load(ctx, key)
}

// put stores e under key, merged with the entry there (a streamed and a
// non-streamed answer to one request).
func (c *redisCache) put(key string, e *cacheEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if old := c.load(ctx, key); old != nil {
		if e.full == nil {
			e.full, e.contentType = old.full, old.contentType
		}
		if e.events == nil {
			e.events = old.events
		}
	}
	b, err := json.Marshal(redisEntry{Full: e.full, Events: e.events, ContentType: e.contentType, Usage: e.usage, Kind: e.kind, Text: e.text})
	if err != nil {
		return
	}
	c.failed(c.rdb.Set(ctx, c.rkey(key), b, c.ttl).Err())
}
