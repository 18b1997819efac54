package semcache

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
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

// EntryID is the ID Put gives an entry without one.
func EntryID(partition, text string) string {
	h := sha256.Sum256([]byte(partition + "\x00" + text))
	return hex.EncodeToString(h[:16])
}

// MemStore is an in-process Store. Each partition keeps its vectors in one
// contiguous slice, a 256-bit SimHash signature per entry in another, and a
// list in recency order. A lookup in a large partition scans the signatures
// by Hamming distance and computes the exact cosine similarity only for the
// nearest few (see index.go): it may miss an entry, never returns one below
// minSim. Safe for concurrent use.
type MemStore struct {
	mu    sync.Mutex
	parts map[string]*memPart
}

type memPart struct {
	mu    sync.RWMutex
	dim   int
	vecs  []float32   // entry in slot i: vecs[i*dim:(i+1)*dim]
	sigs  []signature // entry in slot i: sigs[i]
	hash  *simhasher  // for dim
	slots []*memEntry
	byID  map[string]*memEntry
	lru   list.List // of *memEntry, most recently used first
}

type memEntry struct {
	e       Entry
	expires time.Time // zero: never
	slot    int
	elem    *list.Element
}

// NewMemStore returns an empty in-process store.
func NewMemStore() *MemStore { return &MemStore{parts: map[string]*memPart{}} }

func (s *MemStore) part(partition string, create bool) *memPart {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.parts[partition]
	if p == nil && create {
		p = &memPart{byID: map[string]*memEntry{}}
		s.parts[partition] = p
	}
	return p
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
	dim := p.dim
	consider := func(me *memEntry) {
		sim := Dot(q, p.vecs[me.slot*dim:(me.slot+1)*dim])
		if sim < minSim {
			return
		}
		if !me.expires.IsZero() && !now.Before(me.expires) {
			return
		}
		top = insertHit(top, hit{me, sim})
	}
	bound := hammingBound(minSim)
	if len(p.slots) < exactScanBelow || bound >= sigBits/2 {
		for _, me := range p.slots {
			consider(me)
		}
	} else {
		var nn nearest
		p.prefilter(p.hash.sign(q, nil), bound, now, &nn)
		for _, c := range nn.items() {
			consider(p.slots[c.slot])
		}
	}
	out := make([]Candidate, len(top))
	for i, h := range top {
		out[i] = Candidate{Entry: h.e.e, Similarity: h.sim}
		out[i].Vector = append([]float32(nil), p.vecs[h.e.slot*dim:(h.e.slot+1)*dim]...)
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
	// The signature before the lock: it is the costly part of a Put.
	hash := simhasherFor(len(e.Vector))
	sig := hash.sign(e.Vector, nil)
	p := s.part(e.Partition, true)
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.slots) == 0 {
		p.dim, p.hash = len(e.Vector), hash
	}
	if len(e.Vector) != p.dim {
		return fmt.Errorf("semcache: vector has %d dimensions, partition's entries %d", len(e.Vector), p.dim)
	}
	if me := p.byID[e.ID]; me != nil {
		me.e, me.expires = e, expires
		copy(p.vecs[me.slot*p.dim:], e.Vector)
		p.sigs[me.slot] = sig
		me.e.Vector = nil // held in p.vecs
		p.lru.MoveToFront(me.elem)
		return nil
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
	me := &memEntry{e: e, expires: expires, slot: len(p.slots)}
	p.vecs = append(p.vecs, e.Vector...)
	p.sigs = append(p.sigs, sig)
	me.e.Vector = nil // held in p.vecs; Lookup hands out a copy
	p.slots = append(p.slots, me)
	p.byID[e.ID] = me
	me.elem = p.lru.PushFront(me)
	return nil
}

func (p *memPart) remove(me *memEntry) {
	last := len(p.slots) - 1
	if me.slot != last {
		moved := p.slots[last]
		copy(p.vecs[me.slot*p.dim:(me.slot+1)*p.dim], p.vecs[last*p.dim:(last+1)*p.dim])
		p.sigs[me.slot] = p.sigs[last]
		moved.slot = me.slot
		p.slots[me.slot] = moved
	}
	p.slots[last] = nil
	p.slots = p.slots[:last]
	p.vecs = p.vecs[:last*p.dim]
	p.sigs = p.sigs[:last]
	delete(p.byID, me.e.ID)
	p.lru.Remove(me.elem)
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
	p.mu.Lock()
	defer p.mu.Unlock()
	if me := p.byID[id]; me != nil {
		p.lru.MoveToFront(me.elem)
	}
	return nil
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
	return n
}
