package pricing

import (
	"errors"
	"fmt"
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

// CostAtExact prices each kind of token in u at its own rate: tier "" or
// "default" at list prices (batch: Batch API prices, as Cost does), "flex"
// or "priority" at that tier's prices. Unlike Cost it never falls back to
// another price: a cache write on a model without that write price, or a
// tier the table does not list, is a *MissingRateError. Batch API prices
// are derived (50% of list) when not listed, as the table documents.
// It is exact (an Amount: dollars and pico-dollars); arithmetic is checked.
func (m *Model) CostAtExact(u Usage, batch bool, tier string) (Amount, error) {
	if u.InputTokens < 0 || u.CachedInputTokens < 0 || u.CacheWrite5mTokens < 0 ||
		u.CacheWrite1hTokens < 0 || u.OutputTokens < 0 {
		return Amount{}, errors.New("negative token count")
	}
	r := m.RatesFor(u.InputTokens)
	missing := func(key string) (Amount, error) { return Amount{}, &MissingRateError{Model: m.Name, Rate: key} }
	var in, cached, w5, w1, out Rate
	switch tier {
	case "", TierDefault:
		if batch && r.NoBatch {
			return missing("batch_input_per_1m")
		}
		if u.CacheWrite5mTokens > 0 && !r.HasCacheWrite5m {
			return missing("cache_write_5m_per_1m")
		}
		if u.CacheWrite1hTokens > 0 && !r.HasCacheWrite1h {
			return missing("cache_write_1h_per_1m")
		}
		in, cached, w5, w1, out = r.tokenRates(batch)
	case TierFlex, TierPriority:
		if batch {
			return Amount{}, fmt.Errorf("a Batch API call has no %s tier", tier)
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
		return Amount{}, fmt.Errorf("unknown service tier %q (want default, flex or priority)", tier)
	}
	var sum Amount
	for _, p := range [...]struct {
		r Rate
		n int64
	}{{in, u.plainInput()}, {cached, u.CachedInputTokens}, {w5, u.CacheWrite5mTokens},
		{w1, u.CacheWrite1hTokens}, {out, u.OutputTokens}} {
		c, err := p.r.CostAmount(p.n)
		if err != nil {
			return Amount{}, ErrCostOutOfRange
		}
		sum = sum.Add(c)
	}
	return sum, nil
}

// CostAt is CostAtExact rounded to the nearest nano-dollar (halves away
// from zero): the Money form eval and displays use; the ledger keeps the
// exact Amount. A cost beyond Money's range is ErrCostOutOfRange.
func (m *Model) CostAt(u Usage, batch bool, tier string) (Money, error) {
	a, err := m.CostAtExact(u, batch, tier)
	if err != nil {
		return 0, err
	}
	c, ok := a.Money()
	if !ok {
		return 0, ErrCostOutOfRange
	}
	return c, nil
}
