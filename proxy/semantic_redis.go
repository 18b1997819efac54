package proxy

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/semcache"
)

// RedisSemStore is a semcache.Store in Redis (--redis), shared by every
// proxy on it: Redis holds the fleet's entries, each proxy a local index of
// their vectors that it keeps in step with Redis through a change feed.
//
// In Redis a partition is three keys: PREFIX sem:e:PARTITION, a hash of
// entry ID to the entry (JSON, its normalised vector as little-endian
// float32 bytes); PREFIX sem:u:PARTITION, a sorted set of entry IDs by last
// use (a Redis counter, PREFIX sem:seq, so the order is one across the
// fleet); and PREFIX sem:x:PARTITION, the partition's change feed: a stream
// with one event per Put, fields n (the event's number in the feed: 1, 2,
// ...), put (the ID stored), del (a JSON list of the IDs the Put dropped as
// least recently used, when any) and l (the Put's bound). One Lua script
// does a Put: it stores the entry, bumps its use, drops the least recently
// used beyond the bound and appends the event, atomically, so the feed's
// order is Redis's order. The feed is trimmed to about max(bound, 1,024)
// events (100,000 when unbounded); the three keys expire TTL after the last
// Put, so an idle partition goes away. The first two keys are as before the
// feed existed; entries stored by a proxy without the feed reach the
// others' indexes only when they next load the partition. As before, the
// keys must be on one Redis node (the script names sem:seq beside the
// partition's keys): no Redis Cluster.
//
// Each proxy keeps, per partition, a semcache.MemStore holding only each
// entry's ID, vector, creation and expiry (no text, no response): the
// local index. It is loaded on the partition's first lookup (the feed's
// last event, then the entries by HSCAN ordered by their use, then the
// events since that one replayed: the result is Redis's state whatever
// changed during the scan). Every Lookup first brings it up to date: it
// reads the feed's events after the last one applied (XRANGE, usually
// none), drops the IDs dropped, and fetches (HMGET) and indexes the entries
// stored. When the feed has no longer the event after the last applied (it
// was trimmed past this proxy, or expired and began again at 1), the
// partition is loaded again. Concurrent lookups of one partition share
// catch-ups: a lookup waits for one that began after it arrived, so it
// sees every Put that completed before it. The local index then yields up
// to semcache.MaxCandidates IDs (best first, at least minSim, not expired
// by their TTL); only those entries are read from Redis (one HMGET) and
// their similarity is computed again on the stored vector: a candidate
// below minSim, expired, or gone from Redis meanwhile is not returned.
// Touch marks a use in Redis (it does not change which entries exist, so
// it is not in the feed) and in the local index. The local index holds no
// more entries than Redis (drops are applied before stores) and is bounded
// by the latest Put's bound. Safe for concurrent use.
type RedisSemStore struct {
	rdb    redis.UniversalClient
	prefix string

	mu    sync.Mutex
	parts map[string]*redisSemPart
}

// redisSemPart is a partition's local index and its place in the feed.
type redisSemPart struct {
	idx  atomic.Pointer[semcache.MemStore] // nil until loaded
	used atomic.Int64                      // last looked up or written, Unix ns

	// Only the catch-up running (cur) reads or writes these.
	loaded bool
	lastID string // the feed's last event applied ("0-0": none)
	lastN  int64  // and its number
	limit  int    // the latest Put's bound (0: unbounded)

	mu   sync.Mutex
	cur  *semCatchUp // running
	next *semCatchUp // to run after cur
}

// semCatchUp is one catch-up of a partition's local index with the feed.
type semCatchUp struct {
	done chan struct{}
	err  error // set before done is closed
}

const (
	// semFeedPage is how many events one XRANGE reads.
	semFeedPage = 512
	// semScanPage is the COUNT of a load's HSCAN.
	semScanPage = 512
	// semCatchUpTimeout bounds one catch-up (it outlives the lookup that
	// started it: others may wait for it).
	semCatchUpTimeout = 30 * time.Second
	// semReloads bounds the loads of one catch-up.
	semReloads = 3
)

// semFeedLen is about how many events a partition's feed keeps for a Put
// bounded to limit entries: a proxy further behind loads the partition
// again, which costs about as much as catching up.
func semFeedLen(limit int) int {
	if limit <= 0 {
		return 100_000
	}
	return max(limit, 1024)
}

// NewRedisSemStore is a store under prefix (e.g. "costctl:").
func NewRedisSemStore(rdb redis.UniversalClient, prefix string) *RedisSemStore {
	return &RedisSemStore{rdb: rdb, prefix: prefix, parts: map[string]*redisSemPart{}}
}

func (s *RedisSemStore) entriesKey(p string) string { return s.prefix + "sem:e:" + p }
func (s *RedisSemStore) usesKey(p string) string    { return s.prefix + "sem:u:" + p }
func (s *RedisSemStore) feedKey(p string) string    { return s.prefix + "sem:x:" + p }
func (s *RedisSemStore) seqKey() string             { return s.prefix + "sem:seq" }

func (s *RedisSemStore) part(partition string) *redisSemPart {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.parts[partition]
	if p == nil {
		p = &redisSemPart{lastID: "0-0"}
		s.parts[partition] = p
	}
	p.used.Store(time.Now().UnixNano())
	return p
}

// semIdle is how long a partition's local index is kept without a lookup
// or a Put; a later lookup loads it again from Redis.
const semIdle = 10 * time.Minute

// Sweep drops the local indexes of partitions idle for semIdle at now (the
// entries stay in Redis) and returns how many it dropped.
func (s *RedisSemStore) Sweep(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for name, p := range s.parts {
		if now.Sub(time.Unix(0, p.used.Load())) >= semIdle {
			delete(s.parts, name)
			n++
		}
	}
	return n
}

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

// redisSemIndexed is what the local index needs of a stored entry (the
// rest of the JSON is skipped, not decoded).
type redisSemIndexed struct {
	ID        string `json:"id"`
	Text      string `json:"text"` // for its lexical key (semcache.KeyedStore)
	Vector    []byte `json:"vector"`
	CreatedNS int64  `json:"created_ns"`
	ExpiresNS int64  `json:"expires_ns,omitempty"`
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
	return s.lookup(ctx, partition, "", false, vec, minSim, now)
}

// LookupKey implements semcache.KeyedStore: the local index ranks only the
// entries with lexical key key.
func (s *RedisSemStore) LookupKey(ctx context.Context, partition, key string, vec []float32, minSim float64, now time.Time) ([]semcache.Candidate, error) {
	return s.lookup(ctx, partition, key, true, vec, minSim, now)
}

// Holds implements semcache.KeyedStore from the local index, once it has
// caught up with every Put finished before the call.
func (s *RedisSemStore) Holds(ctx context.Context, partition, key string, now time.Time) (bool, error) {
	p := s.part(partition)
	if err := s.catchUp(ctx, partition, p); err != nil {
		return false, fmt.Errorf("semantic cache in redis: %w", err)
	}
	return p.idx.Load().Holds(ctx, partition, key, now)
}

func (s *RedisSemStore) lookup(ctx context.Context, partition, key string, keyed bool, vec []float32, minSim float64, now time.Time) ([]semcache.Candidate, error) {
	p := s.part(partition)
	if err := s.catchUp(ctx, partition, p); err != nil {
		return nil, fmt.Errorf("semantic cache in redis: %w", err)
	}
	idx := p.idx.Load()
	var (
		local []semcache.Candidate
		err   error
	)
	if keyed {
		local, err = idx.LookupKey(ctx, partition, key, vec, minSim, now)
	} else {
		local, err = idx.Lookup(ctx, partition, vec, minSim, now)
	}
	if err != nil || len(local) == 0 {
		return nil, err
	}
	ids := make([]string, len(local))
	for i, c := range local {
		ids[i] = c.ID
	}
	vals, err := s.rdb.HMGet(ctx, s.entriesKey(partition), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("semantic cache in redis: %w", err)
	}
	q := semcache.Normalize(vec)
	out := make([]semcache.Candidate, 0, len(vals))
	for i, raw := range vals {
		str, ok := raw.(string)
		if !ok {
			continue // gone from Redis since
		}
		var re redisSemEntry
		if json.Unmarshal([]byte(str), &re) != nil || re.ID != ids[i] {
			continue
		}
		if re.ExpiresNS != 0 && now.UnixNano() >= re.ExpiresNS {
			continue
		}
		v := unpackVector(re.Vector)
		if len(v) != len(q) {
			continue
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

// catchUp brings p's local index up to date with the feed: it waits for a
// catch-up that begins after it is called, running it itself when none is
// running. The catch-up runs on its own context (it may serve other
// lookups); ctx only bounds the wait.
func (s *RedisSemStore) catchUp(ctx context.Context, partition string, p *redisSemPart) error {
	p.mu.Lock()
	var c *semCatchUp
	run := false
	switch {
	case p.cur == nil:
		c = &semCatchUp{done: make(chan struct{})}
		p.cur, run = c, true
	case p.next == nil:
		c = &semCatchUp{done: make(chan struct{})}
		p.next = c
	default:
		c = p.next
	}
	p.mu.Unlock()
	if run {
		s.runCatchUp(context.WithoutCancel(ctx), partition, p, c)
	}
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runCatchUp runs c, then starts the catch-up queued behind it (if any) in
// a goroutine of its own.
func (s *RedisSemStore) runCatchUp(ctx context.Context, partition string, p *redisSemPart, c *semCatchUp) {
	cctx, cancel := context.WithTimeout(ctx, semCatchUpTimeout)
	c.err = s.follow(cctx, partition, p)
	cancel()
	p.mu.Lock()
	close(c.done)
	next := p.next
	p.cur, p.next = next, nil
	p.mu.Unlock()
	if next != nil {
		go s.runCatchUp(ctx, partition, p, next)
	}
}

// semEvent is one event of a partition's feed.
type semEvent struct {
	n     int64
	put   string
	del   []string
	limit int // -1: not given
}

func parseSemEvent(m redis.XMessage) (semEvent, error) {
	ev := semEvent{limit: -1}
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	n, err := strconv.ParseInt(str("n"), 10, 64)
	if err != nil {
		return ev, fmt.Errorf("feed event %s: number %q", m.ID, str("n"))
	}
	ev.n, ev.put = n, str("put")
	if d := str("del"); d != "" {
		if err := json.Unmarshal([]byte(d), &ev.del); err != nil {
			return ev, fmt.Errorf("feed event %s: del: %w", m.ID, err)
		}
	}
	if l := str("l"); l != "" {
		if ev.limit, err = strconv.Atoi(l); err != nil {
			return ev, fmt.Errorf("feed event %s: bound %q", m.ID, l)
		}
	}
	return ev, nil
}

// follow loads p when it is not loaded and applies the feed's events after
// the last applied, loading again when the feed lost the next one.
func (s *RedisSemStore) follow(ctx context.Context, partition string, p *redisSemPart) error {
	loads := 0
	load := func() error {
		if loads++; loads > semReloads {
			return errors.New("the partition's feed moves faster than it loads")
		}
		return s.load(ctx, partition, p)
	}
	if !p.loaded {
		if err := load(); err != nil {
			return err
		}
	}
	for {
		msgs, err := s.rdb.XRangeN(ctx, s.feedKey(partition), "("+p.lastID, "+", semFeedPage).Result()
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		evs := make([]semEvent, len(msgs))
		gap := false
		for i, m := range msgs {
			if evs[i], err = parseSemEvent(m); err != nil {
				return err
			}
			if evs[i].n != p.lastN+1+int64(i) {
				gap = true
				break
			}
		}
		if gap {
			if err := load(); err != nil {
				return err
			}
			continue
		}
		if err := s.apply(ctx, partition, p, evs); err != nil {
			return err
		}
		p.lastID, p.lastN = msgs[len(msgs)-1].ID, evs[len(evs)-1].n
		if len(msgs) < semFeedPage {
			return nil
		}
	}
}

// apply applies events to p's local index: the IDs whose last event drops
// them are dropped, then those stored are read from Redis and indexed, in
// the order of their last store.
func (s *RedisSemStore) apply(ctx context.Context, partition string, p *redisSemPart, evs []semEvent) error {
	type last struct {
		put bool
		at  int
	}
	final := map[string]last{}
	at := 0
	for _, ev := range evs {
		for _, id := range ev.del {
			final[id] = last{false, at}
			at++
		}
		if ev.put != "" {
			final[ev.put] = last{true, at}
			at++
		}
		if ev.limit >= 0 {
			p.limit = ev.limit
		}
	}
	var dels, puts []string
	for id, l := range final {
		if l.put {
			puts = append(puts, id)
		} else {
			dels = append(dels, id)
		}
	}
	idx := p.idx.Load()
	idx.Delete(partition, dels...)
	if len(puts) == 0 {
		return nil
	}
	sort.Slice(puts, func(i, j int) bool { return final[puts[i]].at < final[puts[j]].at })
	vals, err := s.rdb.HMGet(ctx, s.entriesKey(partition), puts...).Result()
	if err != nil {
		return err
	}
	for i, raw := range vals {
		str, ok := raw.(string)
		if !ok {
			idx.Delete(partition, puts[i]) // dropped by a later event
			continue
		}
		var ie redisSemIndexed
		if json.Unmarshal([]byte(str), &ie) != nil || ie.ID != puts[i] {
			idx.Delete(partition, puts[i])
			continue
		}
		indexPut(idx, partition, &ie, p.limit)
	}
	return nil
}

// indexPut puts ie in the local index idx, bounded to limit entries. An
// entry the index refuses (another dimension than the partition's) is left
// out: it could not match a lookup there.
func indexPut(idx *semcache.MemStore, partition string, ie *redisSemIndexed, limit int) {
	var ttl time.Duration
	if ie.ExpiresNS != 0 {
		ttl = max(time.Duration(ie.ExpiresNS-ie.CreatedNS), 1)
	}
	e := semcache.Entry{ID: ie.ID, Partition: partition, Text: ie.Text, Vector: unpackVector(ie.Vector), Created: time.Unix(0, ie.CreatedNS)}
	_ = idx.Put(context.Background(), e, limit, ttl) // refused: another dimension, see above

}

// load builds p's local index afresh: the feed's last event and the uses
// (one snapshot), then every entry by HSCAN, indexed from the least
// recently used; follow then replays the events after that one, so entries
// changed during the scan end as Redis has them.
func (s *RedisSemStore) load(ctx context.Context, partition string, p *redisSemPart) error {
	pipe := s.rdb.TxPipeline()
	top := pipe.XRevRangeN(ctx, s.feedKey(partition), "+", "-", 1)
	uses := pipe.ZRangeWithScores(ctx, s.usesKey(partition), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	lastID, lastN, limit := "0-0", int64(0), p.limit
	if msgs := top.Val(); len(msgs) == 1 {
		ev, err := parseSemEvent(msgs[0])
		if err != nil {
			return err
		}
		lastID, lastN = msgs[0].ID, ev.n
		if ev.limit >= 0 {
			limit = ev.limit
		}
	}
	used := make(map[string]float64, len(uses.Val()))
	for _, z := range uses.Val() {
		if id, ok := z.Member.(string); ok {
			used[id] = z.Score
		}
	}
	seen := map[string]bool{}
	var ents []redisSemIndexed
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, s.entriesKey(partition), cursor, "", semScanPage).Result()
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			var ie redisSemIndexed
			if seen[kv[i]] || json.Unmarshal([]byte(kv[i+1]), &ie) != nil || ie.ID != kv[i] {
				continue
			}
			seen[kv[i]] = true
			ents = append(ents, ie)
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	sort.Slice(ents, func(i, j int) bool {
		if ui, uj := used[ents[i].ID], used[ents[j].ID]; ui != uj {
			return ui < uj
		}
		return ents[i].CreatedNS < ents[j].CreatedNS
	})
	idx := semcache.NewMemStore()
	for i := range ents {
		indexPut(idx, partition, &ents[i], limit)
	}
	p.idx.Store(idx)
	p.loaded, p.lastID, p.lastN, p.limit = true, lastID, lastN, limit
	return nil
}

// semPutScript stores an entry, bumps its use, drops the least recently
// used beyond the bound and appends the event to the feed. KEYS: entries,
// uses, feed, seq; ARGV: ID, entry JSON, TTL in ms (0: none), bound (0:
// none), the feed's length.
var semPutScript = redis.NewScript(`
local ek, uk, xk, sk = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, ttl, limit = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])
local seq = redis.call('INCR', sk)
redis.call('HSET', ek, id, ARGV[2])
redis.call('ZADD', uk, seq, id)
local dropped = {}
if limit > 0 then
  local n = redis.call('ZCARD', uk)
  if n > limit then
    dropped = redis.call('ZRANGE', uk, 0, n - limit - 1)
    for i = 1, #dropped, 1000 do
      local j = math.min(i + 999, #dropped)
      redis.call('HDEL', ek, unpack(dropped, i, j))
      redis.call('ZREM', uk, unpack(dropped, i, j))
    end
  end
end
local ev = 1
local top = redis.call('XREVRANGE', xk, '+', '-', 'COUNT', 1)
if #top > 0 then
  local f = top[1][2]
  for i = 1, #f, 2 do
    if f[i] == 'n' then ev = tonumber(f[i + 1]) + 1 end
  end
end
if #dropped > 0 then
  redis.call('XADD', xk, 'MAXLEN', '~', ARGV[5], '*', 'n', ev, 'put', id, 'l', limit, 'del', cjson.encode(dropped))
else
  redis.call('XADD', xk, 'MAXLEN', '~', ARGV[5], '*', 'n', ev, 'put', id, 'l', limit)
end
if ttl > 0 then
  redis.call('PEXPIRE', ek, ttl)
  redis.call('PEXPIRE', uk, ttl)
  redis.call('PEXPIRE', xk, ttl)
end
return ev
`)

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
	var ttlMS int64
	if ttl > 0 {
		re.ExpiresNS = e.Created.Add(ttl).UnixNano()
		ttlMS = max(ttl.Milliseconds(), 1)
	}
	b, err := json.Marshal(re)
	if err != nil {
		return err
	}
	limit = max(limit, 0)
	keys := []string{s.entriesKey(e.Partition), s.usesKey(e.Partition), s.feedKey(e.Partition), s.seqKey()}
	if err := semPutScript.Run(ctx, s.rdb, keys, e.ID, b, ttlMS, limit, semFeedLen(limit)).Err(); err != nil {
		return fmt.Errorf("semantic cache in redis: %w", err)
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
	s.mu.Lock()
	p := s.parts[partition]
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	if idx := p.idx.Load(); idx != nil {
		return idx.Touch(ctx, partition, id)
	}
	return nil
}
