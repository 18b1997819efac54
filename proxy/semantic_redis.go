package proxy

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/semcache"
)

// RedisSemStore is a semcache.Store in Redis (--redis), shared by every
// proxy on it. A partition is two keys: PREFIX sem:e:PARTITION, a hash of
// entry ID to the entry (JSON, its normalised vector as little-endian
// float32 bytes), and PREFIX sem:u:PARTITION, a sorted set of entry IDs by
// last use (a Redis counter, PREFIX sem:seq, so the order is one across
// the fleet). Lookup reads the partition and scans it here; Put drops the
// least recently used beyond the bound; both keys expire TTL after the
// last Put, so an idle partition goes away. Safe for concurrent use.
type RedisSemStore struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisSemStore is a store under prefix (e.g. "costctl:").
func NewRedisSemStore(rdb redis.UniversalClient, prefix string) *RedisSemStore {
	return &RedisSemStore{rdb: rdb, prefix: prefix}
}

func (s *RedisSemStore) entriesKey(p string) string { return s.prefix + "sem:e:" + p }
func (s *RedisSemStore) usesKey(p string) string    { return s.prefix + "sem:u:" + p }
func (s *RedisSemStore) seqKey() string             { return s.prefix + "sem:seq" }

// redisSemEntry is a semcache.Entry as stored.
type redisSemEntry struct {
	ID          string `json:"id"`
	Tenant      string `json:"tenant"`
	Model       string `json:"model"`
	Text        string `json:"text"`
	Vector      []byte `json:"vector"`
	Response    []byte `json:"response"`
	CreatedNS   int64  `json:"created_ns"`
	ExpiresNS   int64  `json:"expires_ns,omitempty"` // 0: never
	CostDollars int64  `json:"cost_dollars"`
	CostPico    int64  `json:"cost_pico"`
}

func packVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func unpackVector(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// Lookup implements semcache.Store.
func (s *RedisSemStore) Lookup(ctx context.Context, partition string, vec []float32, minSim float64, now time.Time) ([]semcache.Candidate, error) {
	all, err := s.rdb.HGetAll(ctx, s.entriesKey(partition)).Result()
	if err != nil {
		return nil, fmt.Errorf("semantic cache in redis: %w", err)
	}
	q := semcache.Normalize(vec)
	var out []semcache.Candidate
	for _, raw := range all {
		var re redisSemEntry
		if json.Unmarshal([]byte(raw), &re) != nil {
			continue
		}
		if re.ExpiresNS != 0 && now.UnixNano() >= re.ExpiresNS {
			continue
		}
		v := unpackVector(re.Vector)
		if len(v) != len(q) {
			return nil, fmt.Errorf("semcache: vector has %d dimensions, partition's entries %d", len(q), len(v))
		}
		sim := semcache.Dot(q, v)
		if sim < minSim {
			continue
		}
		out = append(out, semcache.Candidate{Entry: semcache.Entry{
			ID: re.ID, Partition: partition, Tenant: re.Tenant, Model: re.Model, Text: re.Text, Vector: v,
			Response: re.Response, Created: time.Unix(0, re.CreatedNS),
			Cost: pricing.Amount{Dollars: re.CostDollars, Pico: re.CostPico},
		}, Similarity: sim})
	}
	return bestFirst(out), nil
}

// Put implements semcache.Store.
func (s *RedisSemStore) Put(ctx context.Context, e semcache.Entry, limit int, ttl time.Duration) error {
	if len(e.Vector) == 0 {
		return errors.New("semcache: entry has no vector")
	}
	if e.ID == "" {
		e.ID = semcache.EntryID(e.Partition, e.Text)
	}
	re := redisSemEntry{ID: e.ID, Tenant: e.Tenant, Model: e.Model, Text: e.Text, Vector: packVector(semcache.Normalize(e.Vector)),
		Response: e.Response, CreatedNS: e.Created.UnixNano(), CostDollars: e.Cost.Dollars, CostPico: e.Cost.Pico}
	if ttl > 0 {
		re.ExpiresNS = e.Created.Add(ttl).UnixNano()
	}
	b, err := json.Marshal(re)
	if err != nil {
		return err
	}
	seq, err := s.rdb.Incr(ctx, s.seqKey()).Result()
	if err != nil {
		return fmt.Errorf("semantic cache in redis: %w", err)
	}
	ek, uk := s.entriesKey(e.Partition), s.usesKey(e.Partition)
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, ek, e.ID, b)
	pipe.ZAdd(ctx, uk, redis.Z{Score: float64(seq), Member: e.ID})
	if ttl > 0 {
		pipe.PExpire(ctx, ek, ttl)
		pipe.PExpire(ctx, uk, ttl)
	}
	card := pipe.ZCard(ctx, uk)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("semantic cache in redis: %w", err)
	}
	if n := card.Val(); limit > 0 && n > int64(limit) {
		old, err := s.rdb.ZRange(ctx, uk, 0, n-int64(limit)-1).Result()
		if err != nil {
			return fmt.Errorf("semantic cache in redis: %w", err)
		}
		if len(old) > 0 {
			members := make([]any, len(old))
			for i, id := range old {
				members[i] = id
			}
			pipe := s.rdb.TxPipeline()
			pipe.HDel(ctx, ek, old...)
			pipe.ZRem(ctx, uk, members...)
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("semantic cache in redis: %w", err)
			}
		}
	}
	return nil
}

// Touch implements semcache.Store: an entry dropped meanwhile is no error.
func (s *RedisSemStore) Touch(ctx context.Context, partition, id string) error {
	seq, err := s.rdb.Incr(ctx, s.seqKey()).Result()
	if err != nil {
		return fmt.Errorf("semantic cache in redis: %w", err)
	}
	if err := s.rdb.ZAddXX(ctx, s.usesKey(partition), redis.Z{Score: float64(seq), Member: id}).Err(); err != nil {
		return fmt.Errorf("semantic cache in redis: %w", err)
	}
	return nil
}
