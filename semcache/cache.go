package semcache

import (
	"context"
	"fmt"
	"time"

	"github.com/costctl/costctl/pricing"
)

// DefaultThreshold is the similarity a hit needs unless told otherwise.
const DefaultThreshold = 0.95

// Cache answers a request from Store only inside its exact partition, when
// the best stored last user message is at least Threshold similar AND
// passes Lexical.
type Cache struct {
	Store     Store
	Threshold float64       // 0: DefaultThreshold
	Limit     int           // entries per partition; 0: unbounded
	TTL       time.Duration // 0: entries never expire
	Now       func() time.Time
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Cache) threshold() float64 {
	if c.Threshold > 0 {
		return c.Threshold
	}
	return DefaultThreshold
}

// Lookup finds the answer for req, whose last user message embeds to vec.
// hit is nil on a miss; reason says why it hit or missed ("not eligible:
// ...", "no entry at similarity ≥ 0.95", "0.97 similar but numbers differ:
// 2 vs 3"). A hit is touched in the store (it counts as use).
func (c *Cache) Lookup(ctx context.Context, req *Request, vec []float32) (hit *Candidate, reason string) {
	if ok, why := Eligible(req); !ok {
		return nil, "not eligible: " + why
	}
	text, _ := LastUser(req)
	th := c.threshold()
	var (
		cands []Candidate
		err   error
	)
	if ks, ok := c.Store.(KeyedStore); ok {
		cands, err = ks.LookupKey(ctx, Partition(req), LexicalKey(text), vec, th, c.now())
	} else {
		cands, err = c.Store.Lookup(ctx, Partition(req), vec, th, c.now())
	}
	if err != nil {
		return nil, "store: " + err.Error()
	}
	if len(cands) == 0 {
		if ks, ok := c.Store.(KeyedStore); ok {
			if holds, err := ks.Holds(ctx, Partition(req), LexicalKey(text), c.now()); err == nil && !holds {
				return nil, "no entry with the same numbers, negations and content words"
			}
		}
		return nil, fmt.Sprintf("no entry at similarity ≥ %.2f", th)
	}
	var first string
	for i := range cands {
		cand := &cands[i]
		// The partition is a hash: never trust it alone.
		if cand.Tenant != req.Tenant || cand.Model != req.Model {
			continue
		}
		ok, why := Lexical(text, cand.Text)
		if ok {
			if err := c.Store.Touch(ctx, cand.Partition, cand.ID); err != nil {
				return nil, "store: " + err.Error()
			}
			return cand, fmt.Sprintf("hit at similarity %.4f", cand.Similarity)
		}
		if first == "" {
			first = fmt.Sprintf("%.4f similar but %s", cand.Similarity, why)
		}
	}
	if first == "" {
		return nil, fmt.Sprintf("no entry at similarity ≥ %.2f", th)
	}
	return nil, first
}

// Holds says whether a lookup of req could hit: false when the store (a
// KeyedStore) holds no live entry in req's partition whose last user
// message has req's lexical key, so req is a miss whatever its embedding
// (no embedding is needed to know it). A store that cannot tell, or an
// error, says true.
func (c *Cache) Holds(ctx context.Context, req *Request) bool {
	ks, ok := c.Store.(KeyedStore)
	if !ok {
		return true
	}
	if ok, _ := Eligible(req); !ok {
		return false
	}
	text, _ := LastUser(req)
	holds, err := ks.Holds(ctx, Partition(req), LexicalKey(text), c.now())
	return holds || err != nil
}

// Put stores response as the answer to req (an eligible request), with the
// embedding vec of its last user message and the cost of the call it came
// from.
func (c *Cache) Put(ctx context.Context, req *Request, vec []float32, response []byte, cost pricing.Amount) error {
	if ok, why := Eligible(req); !ok {
		return fmt.Errorf("semcache: not eligible: %s", why)
	}
	text, _ := LastUser(req)
	return c.Store.Put(ctx, Entry{
		Partition: Partition(req), Tenant: req.Tenant, Model: req.Model, Text: text,
		Vector: vec, Response: response, Created: c.now(), Cost: cost,
	}, c.Limit, c.TTL)
}
