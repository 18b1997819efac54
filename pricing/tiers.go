package pricing

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Processing tiers a call can be billed at (OpenAI's service_tier).
const (
	TierDefault  = "default"
	TierFlex     = "flex"
	TierPriority = "priority"
)

// MissingRateError is CostAt's answer for a usage with a kind of token the
// table has no price for: the call is unpriced, never billed at list price.
type MissingRateError struct {
	Model string
	Rate  string // the price key that is missing, e.g. "flex_input_per_1m"
}

func (e *MissingRateError) Error() string {
	return fmt.Sprintf("%s has no %s price (add it with --pricing FILE)", e.Model, e.Rate)
}

// ErrCostOutOfRange is returned by CostAt when a cost does not fit in Money.
var ErrCostOutOfRange = errors.New("cost out of range")

// CostAt prices each kind of token in u at its own rate: tier "" or
// "default" at list prices (batch: Batch API prices, as Cost does), "flex"
// or "priority" at that tier's prices. Unlike Cost it never falls back to
// another price: a cache write on a model without that write price, or a
// tier the table does not list, is a *MissingRateError. Batch API prices
// are derived (50% of list) when not listed, as the table documents.
// Arithmetic is checked: a cost beyond Money's range is ErrCostOutOfRange.
func (m *Model) CostAt(u Usage, batch bool, tier string) (Money, error) {
	if u.InputTokens < 0 || u.CachedInputTokens < 0 || u.CacheWrite5mTokens < 0 ||
		u.CacheWrite1hTokens < 0 || u.OutputTokens < 0 {
		return 0, errors.New("negative token count")
	}
	r := m.RatesFor(u.InputTokens)
	missing := func(key string) (Money, error) { return 0, &MissingRateError{Model: m.Name, Rate: key} }
	var in, cached, w5, w1, out Rate
	switch tier {
	case "", TierDefault:
		if u.CacheWrite5mTokens > 0 && !r.HasCacheWrite5m {
			return missing("cache_write_5m_per_1m")
		}
		if u.CacheWrite1hTokens > 0 && !r.HasCacheWrite1h {
			return missing("cache_write_1h_per_1m")
		}
		in, cached, w5, w1, out = r.tokenRates(batch)
	case TierFlex, TierPriority:
		if batch {
			return 0, fmt.Errorf("a Batch API call has no %s tier", tier)
		}
		t := r.Flex
		if tier == TierPriority {
			t = r.Priority
		}
		if !t.Listed() {
			return missing(tier + "_input_per_1m")
		}
		if u.CacheWrite5mTokens > 0 || u.CacheWrite1hTokens > 0 {
			return missing(tier + " cache write")
		}
		in, cached, out = t.Input, t.CachedInput, t.Output
	default:
		return 0, fmt.Errorf("unknown service tier %q (want default, flex or priority)", tier)
	}
	var sum Money
	for _, p := range [...]struct {
		r Rate
		n int64
	}{{in, u.plainInput()}, {cached, u.CachedInputTokens}, {w5, u.CacheWrite5mTokens},
		{w1, u.CacheWrite1hTokens}, {out, u.OutputTokens}} {
		c, ok := checkedCost(p.r, p.n)
		if !ok || sum > math.MaxInt64-c {
			return 0, ErrCostOutOfRange
		}
		sum += c
	}
	return sum, nil
}

// checkedCost is Rate.Cost for non-negative inputs, reporting a result
// that does not fit in Money instead of saturating or wrapping.
func checkedCost(r Rate, n int64) (Money, bool) {
	if n == 0 || r == 0 {
		return 0, true
	}
	if n < 0 || r < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(n), uint64(r))
	if hi >= 1000 {
		return 0, false
	}
	q, rem := bits.Div64(hi, lo, 1000)
	if q >= math.MaxInt64 {
		return 0, false
	}
	if rem >= 500 {
		q++
	}
	return Money(q), true
}
