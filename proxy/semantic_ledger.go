package proxy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/semcache"
)

// SemanticEntries is what the ledger-backed semantic cache store needs of
// the ledger: *ledger.DB implements it (ledger/semantic_store.go).
type SemanticEntries interface {
	PutSemantic(ctx context.Context, e ledger.SemanticEntry, limit int, ttl time.Duration, now time.Time) error
	SemanticCandidates(ctx context.Context, partition string, now time.Time) ([]ledger.SemanticEntry, error)
	SemanticTexts(ctx context.Context, partition string, now time.Time) ([]string, error)
	TouchSemantic(ctx context.Context, id string, now time.Time) error
}

// ledgerSemStore is a semcache.Store in the ledger (--semantic-store
// ledger): every proxy on one ledger, an SQLite file or PostgreSQL, shares
// its entries without Redis. Lookup reads the partition's unexpired rows
// and computes the exact cosine similarity of each here (vectors are
// normalised at Put, so it is a dot product); Put bounds the partition to
// its least recently used in the same transaction as the insert; Touch
// marks an entry used at the store's clock. Safe for concurrent use.
type ledgerSemStore struct {
	db  SemanticEntries
	now func() time.Time
}

// NewLedgerSemStore is a semantic cache store in db; now (nil: time.Now)
// is when Touch marks an entry used.
func NewLedgerSemStore(db SemanticEntries, now func() time.Time) semcache.Store {
	if now == nil {
		now = time.Now
	}
	return &ledgerSemStore{db: db, now: now}
}

// Lookup implements semcache.Store.
func (s *ledgerSemStore) Lookup(ctx context.Context, partition string, vec []float32, minSim float64, now time.Time) ([]semcache.Candidate, error) {
	return s.lookup(ctx, partition, "", false, vec, minSim, now)
}

// LookupKey implements semcache.KeyedStore: the partition's rows whose
// text has lexical key key.
func (s *ledgerSemStore) LookupKey(ctx context.Context, partition, key string, vec []float32, minSim float64, now time.Time) ([]semcache.Candidate, error) {
	return s.lookup(ctx, partition, key, true, vec, minSim, now)
}

// Holds implements semcache.KeyedStore.
func (s *ledgerSemStore) Holds(ctx context.Context, partition, key string, now time.Time) (bool, error) {
	texts, err := s.db.SemanticTexts(ctx, partition, now)
	if err != nil {
		return false, fmt.Errorf("semantic cache in the ledger: %w", err)
	}
	for _, t := range texts {
		if semcache.LexicalKey(t) == key {
			return true, nil
		}
	}
	return false, nil
}

func (s *ledgerSemStore) lookup(ctx context.Context, partition, key string, keyed bool, vec []float32, minSim float64, now time.Time) ([]semcache.Candidate, error) {
	rows, err := s.db.SemanticCandidates(ctx, partition, now)
	if err != nil {
		return nil, fmt.Errorf("semantic cache in the ledger: %w", err)
	}
	q := semcache.Normalize(vec)
	var out []semcache.Candidate
	for _, r := range rows {
		if keyed && semcache.LexicalKey(r.Text) != key {
			continue
		}
		if len(r.Vector) != len(q) {
			return nil, fmt.Errorf("semcache: vector has %d dimensions, partition's entries %d", len(q), len(r.Vector))
		}
		sim := semcache.Dot(q, r.Vector)
		if sim < minSim {
			continue
		}
		out = append(out, semcache.Candidate{Entry: semcache.Entry{
			ID: r.ID, Partition: partition, Tenant: r.Tenant, Model: r.Model, Text: r.Text, Vector: r.Vector,
			Response: r.Response, Created: r.Created, Cost: r.Cost,
		}, Similarity: sim})
	}
	return bestFirst(out), nil
}

// Put implements semcache.Store. The entry is used at its creation (the
// cache's clock), as the in-process store has it.
func (s *ledgerSemStore) Put(ctx context.Context, e semcache.Entry, limit int, ttl time.Duration) error {
	if len(e.Vector) == 0 {
		return errors.New("semcache: entry has no vector")
	}
	if e.ID == "" {
		e.ID = semcache.EntryID(e.Partition, e.Text)
	}
	err := s.db.PutSemantic(ctx, ledger.SemanticEntry{ID: e.ID, Partition: e.Partition, Tenant: e.Tenant, Model: e.Model,
		Text: e.Text, Vector: semcache.Normalize(e.Vector), Response: e.Response, Created: e.Created, Cost: e.Cost}, limit, ttl, e.Created)
	if err != nil {
		return fmt.Errorf("semantic cache in the ledger: %w", err)
	}
	return nil
}

// Touch implements semcache.Store: an entry dropped meanwhile is no error.
func (s *ledgerSemStore) Touch(ctx context.Context, _, id string) error {
	if err := s.db.TouchSemantic(ctx, id, s.now()); err != nil {
		return fmt.Errorf("semantic cache in the ledger: %w", err)
	}
	return nil
}

// bestFirst orders a shared store's candidates as the in-process store
// does (highest similarity first, the newer entry on a tie) and keeps at
// most semcache.MaxCandidates.
func bestFirst(out []semcache.Candidate) []semcache.Candidate {
	sort.Slice(out, func(i, j int) bool {
		if out[i].Similarity != out[j].Similarity {
			return out[i].Similarity > out[j].Similarity
		}
		return out[i].Created.After(out[j].Created)
	})
	if len(out) > semcache.MaxCandidates {
		out = out[:semcache.MaxCandidates]
	}
	return out
}
