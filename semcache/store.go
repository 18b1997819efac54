package semcache

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costctl/costctl/pricing"
)

// Entry is one cached answer.
type Entry struct {
	// ID names the entry in its partition; Put sets it to EntryID(Partition,
	// Text) when empty, so storing the same question again replaces it.
	ID        string
	Partition string
	Tenant    string
	Model     string
	Text      string    // the last user message it answered
	Vector    []float32 // its embedding (normalised by the store)
	// Response is the response as the exact cache stores it: opaque bytes.
	Response []byte
	Created  time.Time
	// Cost is what the original call cost: the figure a hit avoids.
	Cost pricing.Amount
}

// Candidate is an entry found by Lookup and its cosine similarity to the
// looked-up vector. Vector is a copy; Response is the store's: read it,
// never change it.
type Candidate struct {
	Entry
	Similarity float64
}

// MaxCandidates bounds how many candidates one Lookup returns.
const MaxCandidates = 8

// Store keeps cached entries by partition. Implementations (in process,
// Redis, the ledger) are safe for concurrent use.
type Store interface {
	// Lookup returns up to MaxCandidates entries of partition whose
	// similarity to vec is at least minSim and that have not expired at
	// now, best first (ties: the newer first).
	Lookup(ctx context.Context, partition string, vec []float32, minSim float64, now time.Time) ([]Candidate, error)
	// Put stores e (replacing an entry with its ID), expiring ttl after
	// e.Created (0: never), and bounds the partition to limit entries
	// (0: unbounded) by dropping the least recently used (stored or touched).
	Put(ctx context.Context, e Entry, limit int, ttl time.Duration) error
	// Touch marks an entry as used (a hit), so it is the last to be dropped.
	Touch(ctx context.Context, partition, id string) error
}

// KeyedStore is a Store that can restrict a lookup to the entries whose
// last user message has one lexical key (LexicalKey of Entry.Text) and can
// say cheaply whether it holds any. Since a hit needs Lexical to pass, and
// Lexical passes exactly when the keys are equal, these are the only
// entries a request can hit: a request whose key no entry has needs no
// embedding to be a miss. Cache uses it when its Store implements it.
type KeyedStore interface {
	Store
	// LookupKey is Lookup among partition's entries with lexical key key.
	LookupKey(ctx context.Context, partition, key string, vec []float32, minSim float64, now time.Time) ([]Candidate, error)
	// Holds says whether partition holds an entry with lexical key key not
	// expired at now. It may say true of an entry that has just gone (the
	// lookup then finds nothing), never false of one that is there.
	Holds(ctx context.Context, partition, key string, now time.Time) (bool, error)
}

// EntryID is the ID Put gives an entry without one.
func EntryID(partition, text string) string {
	h := sha256.Sum256([]byte(partition + "\x00" + text))
	return hex.EncodeToString(h[:16])
}

// MemStore is an in-process Store and KeyedStore. Each partition keeps its
// vectors in chunks of vecChunk entries (a Put never copies the vectors
// already held), each entry's 512-bit SimHash signature in three slices (its
// first word, first half and second half), each entry's expiry in another,
// its entries by lexical key, and a list in recency order. A keyed lookup
// ranks only the entries with the key; a lookup in a whole large partition
// scans the signatures by Hamming distance and computes the exact cosine
// similarity only for the nearest few (see index.go): it may miss an entry,
// never returns one below minSim. Safe for concurrent use.
//
// MaxEntries, when set, bounds the entries of all partitions together:
// beyond it the least recently used partitions (by their last Put or hit)
// are dropped whole, never the one being written to (which then loses its
// own least recently used entries). Sweep drops expired entries and
// partitions left empty.
type MemStore struct {
	MaxEntries int // 0: unbounded

	mu    sync.Mutex
	parts map[string]*memPart
	plru  list.List // of *memPart, most recently used first
	total atomic.Int64
	memo  sigMemo
}

type memPart struct {
	name    string
	elem    *list.Element // in MemStore.plru
	dropped bool          // taken out of the store (under mu): Puts go to a new one
	total   *atomic.Int64 // the store's

	mu    sync.RWMutex
	dim   int
	vecs  [][]float32 // chunks of vecChunk entries; slot i: vec(i)
	w0    []uint64    // entry in slot i: its signature's first word w0[i]
	lo    []half      // and its first half lo[i]
	hi    []half      // and its second half hi[i]
	exp   []int64     // and its expiry exp[i], Unix ns (math.MaxInt64: never)
	hash  *simhasher  // for dim
	slots []*memEntry
	byID  map[string]*memEntry
	byKey map[string][]*memEntry // by the lexical key of their text
	lru   list.List              // of *memEntry, most recently used first
}

type memEntry struct {
	e       Entry
	key     string    // LexicalKey(e.Text)
	expires time.Time // zero: never
	slot    int
	elem    *list.Element
}

// vecChunk is how many entries' vectors one chunk of a partition holds.
const vecChunk = 64

// vec is the vector of the entry in slot i.
func (p *memPart) vec(i int) []float32 {
	o := (i % vecChunk) * p.dim
	return p.vecs[i/vecChunk][o : o+p.dim : o+p.dim]
}

// expNS is an expiry as exp holds it.
func expNS(t time.Time) int64 {
	if t.IsZero() {
		return math.MaxInt64
	}
	return t.UnixNano()
}

// NewMemStore returns an empty in-process store.
func NewMemStore() *MemStore { return &MemStore{parts: map[string]*memPart{}} }

// part is partition (nil when there is none and !create); create also marks
// it the most recently used.
func (s *MemStore) part(partition string, create bool) *memPart {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.parts[partition]
	if p == nil && create {
		p = &memPart{name: partition, total: &s.total, byID: map[string]*memEntry{}, byKey: map[string][]*memEntry{}}
		p.elem = s.plru.PushFront(p)
		s.parts[partition] = p
	} else if p != nil && create {
		s.plru.MoveToFront(p.elem)
	}
	return p
}

// Partitions is how many partitions the store holds.
func (s *MemStore) Partitions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.parts)
}

// Entries is how many entries the store holds, in all partitions.
func (s *MemStore) Entries() int { return int(s.total.Load()) }

// drop takes p out of the store (s.mu held); its entries go when its
// caller empties it.
func (s *MemStore) drop(p *memPart) {
	delete(s.parts, p.name)
	s.plru.Remove(p.elem)
}

// empty removes every entry of p and marks it dropped.
func (p *memPart) empty() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropped = true
	for len(p.slots) > 0 {
		p.remove(p.slots[len(p.slots)-1])
	}
}

// bound drops the least recently used partitions but keep while the store
// holds more than MaxEntries, then keep's least recently used entries.
func (s *MemStore) bound(keep string) {
	for s.MaxEntries > 0 && s.total.Load() > int64(s.MaxEntries) {
		s.mu.Lock()
		var victim *memPart
		for el := s.plru.Back(); el != nil; el = el.Prev() {
			if p := el.Value.(*memPart); p.name != keep {
				victim = p
				break
			}
		}
		if victim != nil {
			s.drop(victim)
		}
		s.mu.Unlock()
		if victim != nil {
			victim.empty()
			continue
		}
		p := s.part(keep, false)
		if p == nil {
			return
		}
		p.mu.Lock()
		for s.total.Load() > int64(s.MaxEntries) && len(p.slots) > 0 {
			p.remove(p.lru.Back().Value.(*memEntry))
		}
		p.mu.Unlock()
		return
	}
}

// Len is the number of entries in partition (expired ones not yet dropped
// included).
func (s *MemStore) Len(partition string) int {
	p := s.part(partition, false)
	if p == nil {
		return 0
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.slots)
}

// Lookup implements Store.
func (s *MemStore) Lookup(ctx context.Context, partition string, vec []float32, minSim float64, now time.Time) ([]Candidate, error) {
	return s.lookup(ctx, partition, "", false, vec, minSim, now)
}

// LookupKey implements KeyedStore: only the entries with lexical key key
// are ranked, exactly (no prefilter).
func (s *MemStore) LookupKey(ctx context.Context, partition, key string, vec []float32, minSim float64, now time.Time) ([]Candidate, error) {
	return s.lookup(ctx, partition, key, true, vec, minSim, now)
}

// Holds implements KeyedStore.
func (s *MemStore) Holds(ctx context.Context, partition, key string, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p := s.part(partition, false)
	if p == nil {
		return false, nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, me := range p.byKey[key] {
		if me.expires.IsZero() || now.Before(me.expires) {
			return true, nil
		}
	}
	return false, nil
}

func (s *MemStore) lookup(ctx context.Context, partition, key string, keyed bool, vec []float32, minSim float64, now time.Time) ([]Candidate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := s.part(partition, false)
	if p == nil {
		return nil, nil
	}
	q := Normalize(vec)
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(p.slots) == 0 {
		return nil, nil
	}
	if len(q) != p.dim {
		return nil, fmt.Errorf("semcache: vector has %d dimensions, partition's entries %d", len(q), p.dim)
	}
	var top []hit
	consider := func(me *memEntry) {
		sim := Dot(q, p.vec(me.slot))
		if sim < minSim {
			return
		}
		if !me.expires.IsZero() && !now.Before(me.expires) {
			return
		}
		top = insertHit(top, hit{me, sim})
	}
	bound := hammingBound(minSim)
	switch {
	case keyed:
		for _, me := range p.byKey[key] {
			consider(me)
		}
	case len(p.slots) < exactScanBelow || bound.total >= sigBits/2:
		for _, me := range p.slots {
			consider(me)
		}
	default:
		var nn nearest
		sig := p.hash.sign(q, nil)
		s.memo.put(q, sig)
		p.prefilter(sig, bound, now, &nn)
		for _, c := range nn.items() {
			consider(p.slots[c.slot])
		}
	}
	out := make([]Candidate, len(top))
	for i, h := range top {
		out[i] = Candidate{Entry: h.e.e, Similarity: h.sim}
		out[i].Vector = append([]float32(nil), p.vec(h.e.slot)...)
	}
	return out, nil
}

// Put implements Store.
func (s *MemStore) Put(ctx context.Context, e Entry, limit int, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(e.Vector) == 0 {
		return errors.New("semcache: entry has no vector")
	}
	if e.ID == "" {
		e.ID = EntryID(e.Partition, e.Text)
	}
	e.Vector = Normalize(e.Vector)
	var expires time.Time
	if ttl > 0 {
		expires = e.Created.Add(ttl)
	}
	// The signature before the lock: it is the costly part of a Put (and
	// usually known: a miss's Put follows its Lookup of the same vector).
	hash := simhasherFor(len(e.Vector))
	sig, ok := s.memo.take(e.Vector)
	if !ok {
		sig = hash.sign(e.Vector, nil)
	}
	key := LexicalKey(e.Text)
	for {
		p := s.part(e.Partition, true)
		done, err := p.put(e, key, sig, hash, expires, limit)
		if done {
			s.bound(e.Partition)
			return err
		}
	}
}

// put stores e in p; done is false when p was dropped meanwhile (the caller
// puts it in the partition's new memPart).
func (p *memPart) put(e Entry, key string, sig signature, hash *simhasher, expires time.Time, limit int) (done bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dropped {
		return false, nil
	}
	if len(p.slots) == 0 && p.dim != len(e.Vector) {
		p.dim, p.hash, p.vecs = len(e.Vector), hash, nil
	}
	if len(e.Vector) != p.dim {
		return true, fmt.Errorf("semcache: vector has %d dimensions, partition's entries %d", len(e.Vector), p.dim)
	}
	if me := p.byID[e.ID]; me != nil {
		if me.key != key {
			p.unkey(me)
			me.key = key
			p.byKey[key] = append(p.byKey[key], me)
		}
		me.e, me.expires = e, expires
		copy(p.vec(me.slot), e.Vector)
		p.w0[me.slot], p.lo[me.slot], p.hi[me.slot], p.exp[me.slot] = sig.lo[0], sig.lo, sig.hi, expNS(expires)
		me.e.Vector = nil // held in p.vecs
		p.lru.MoveToFront(me.elem)
		return true, nil
	}
	// Expired entries at the cold end go first, then the least recently used.
	for back := p.lru.Back(); back != nil; back = p.lru.Back() {
		me := back.Value.(*memEntry)
		if me.expires.IsZero() || e.Created.Before(me.expires) {
			break
		}
		p.remove(me)
	}
	for limit > 0 && len(p.slots) >= limit {
		p.remove(p.lru.Back().Value.(*memEntry))
	}
	me := &memEntry{e: e, key: key, expires: expires, slot: len(p.slots)}
	p.byKey[key] = append(p.byKey[key], me)
	if me.slot/vecChunk == len(p.vecs) {
		p.vecs = append(p.vecs, make([]float32, vecChunk*p.dim))
	}
	copy(p.vec(me.slot), e.Vector)
	p.w0, p.lo, p.hi, p.exp = append(p.w0, sig.lo[0]), append(p.lo, sig.lo), append(p.hi, sig.hi), append(p.exp, expNS(expires))
	me.e.Vector = nil // held in p.vecs; Lookup hands out a copy
	p.slots = append(p.slots, me)
	p.byID[e.ID] = me
	me.elem = p.lru.PushFront(me)
	p.total.Add(1)
	return true, nil
}

func (p *memPart) remove(me *memEntry) {
	last := len(p.slots) - 1
	if me.slot != last {
		moved := p.slots[last]
		copy(p.vec(me.slot), p.vec(last))
		p.w0[me.slot], p.lo[me.slot], p.hi[me.slot], p.exp[me.slot] = p.w0[last], p.lo[last], p.hi[last], p.exp[last]
		moved.slot = me.slot
		p.slots[me.slot] = moved
	}
	p.slots[last] = nil
	p.slots = p.slots[:last]
	// Keep one spare chunk, so a partition at its bound (a drop, then a
	// Put) does not allocate a chunk each time.
	if keep := last/vecChunk + 2; len(p.vecs) > keep {
		clear(p.vecs[keep:])
		p.vecs = p.vecs[:keep]
	}
	p.w0, p.lo, p.hi, p.exp = p.w0[:last], p.lo[:last], p.hi[:last], p.exp[:last]
	delete(p.byID, me.e.ID)
	p.unkey(me)
	p.lru.Remove(me.elem)
	p.total.Add(-1)
}

// unkey takes me out of p.byKey.
func (p *memPart) unkey(me *memEntry) {
	l := p.byKey[me.key]
	for i, x := range l {
		if x == me {
			l[i] = l[len(l)-1]
			l[len(l)-1] = nil
			l = l[:len(l)-1]
			break
		}
	}
	if len(l) == 0 {
		delete(p.byKey, me.key)
	} else {
		p.byKey[me.key] = l
	}
}

// Touch implements Store. An unknown entry (dropped meanwhile) is no error.
func (s *MemStore) Touch(ctx context.Context, partition, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := s.part(partition, false)
	if p == nil {
		return nil
	}
	s.mu.Lock()
	if s.parts[partition] == p {
		s.plru.MoveToFront(p.elem) // a hit: the partition is in use
	}
	s.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if me := p.byID[id]; me != nil {
		p.lru.MoveToFront(me.elem)
	}
	return nil
}

// Delete drops the entries ids of partition from the store (unknown ones
// are skipped) and returns how many it dropped. A store mirroring another
// (the proxy's Redis store keeps a MemStore as its local index) needs it to
// follow drops made elsewhere.
func (s *MemStore) Delete(partition string, ids ...string) int {
	p := s.part(partition, false)
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, id := range ids {
		if me := p.byID[id]; me != nil {
			p.remove(me)
			n++
		}
	}
	return n
}

// Sweep drops every entry expired at now and returns how many it dropped.
func (s *MemStore) Sweep(now time.Time) int {
	s.mu.Lock()
	parts := make([]*memPart, 0, len(s.parts))
	for _, p := range s.parts {
		parts = append(parts, p)
	}
	s.mu.Unlock()
	n := 0
	for _, p := range parts {
		p.mu.Lock()
		for i := len(p.slots) - 1; i >= 0; i-- {
			if i < len(p.slots) {
				me := p.slots[i]
				if !me.expires.IsZero() && !now.Before(me.expires) {
					p.remove(me)
					n++
				}
			}
		}
		p.mu.Unlock()
	}
	// Partitions left empty go; one written to meanwhile stays.
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range parts {
		if s.parts[p.name] != p || !p.mu.TryLock() {
			continue
		}
		if len(p.slots) == 0 {
			p.dropped = true
			s.drop(p)
		}
		p.mu.Unlock()
	}
	return n
}
