package pricing

import (
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// pydantic's genai-prices (github.com/pydantic/genai-prices, prices/data.json):
// a list of providers, each with an id and its models; a model has an id,
// a context_window and prices — one set, or a list of conditional sets
// (a start_date constraint, or none for the original price) of which the
// last one in force applies. A price is USD per 1M tokens (input_mtok,
// cache_read_mtok, cache_write_mtok, output_mtok), a number or tiered:
// {"base": 3, "tiers": [{"start": 200000, "price": 6}]}, where a prompt
// above a tier's start pays that tier's price for all its tokens (costctl's
// long-context tiers). Audio, per-request and tool prices are not costctl's
// and are left out.

// looksGenAIPrices reports whether doc is genai-prices' list of providers.
func looksGenAIPrices(doc *yaml.Node) bool {
	if doc.Kind != yaml.SequenceNode || len(doc.Content) == 0 {
		return false
	}
	p := doc.Content[0]
	return mapGet(p, "id") != nil && mapGet(p, "models") != nil
}

// genAIFirstParty are the providers whose model ids costctl's table keys
// by the bare name (gpt-4o, claude-sonnet-4-5, gemini-2.5-pro); any other
// provider's model is named "<provider>/<id>" (aws as bedrock) so that a
// host's price never replaces the first party's.
var genAIFirstParty = map[string]string{"openai": "openai", "anthropic": "anthropic", "google": "google"}

// genAIBatchProviders have a Batch API at 50% of list (genai-prices lists no
// batch prices): a new model from any other provider has no batch price.
var genAIBatchProviders = map[string]bool{"openai": true, "anthropic": true, "google": true, "azure": true, "aws": true}

// genAIRateKeys maps genai-prices' price keys to costctl's.
var genAIRateKeys = []struct{ key, own string }{
	{"input_mtok", "input_per_1m"},
	{"cache_read_mtok", "cached_input_per_1m"},
	{"cache_write_mtok", "cache_write_5m_per_1m"},
	{"output_mtok", "output_per_1m"},
}

// tieredPrice is one genai-prices price: base, and a price from each start.
type tieredPrice struct {
	base  Rate
	tiers []genAITier
}

type genAITier struct {
	start int64
	price Rate
}

// at is the price for a prompt above threshold (0: the base price).
func (p *tieredPrice) at(threshold int64) Rate {
	r := p.base
	for _, t := range p.tiers {
		if threshold >= t.start {
			r = t.price
		}
	}
	return r
}

// parseGenAIPrices reads genai-prices' data.json. The whole file is
// checked before anything is merged: a malformed provider, model or price
// is an error naming where it is; a model without both input and output
// prices (embeddings, audio-only) is skipped. now picks each model's price
// in force: the conditional price with the latest start_date not after now.
func parseGenAIPrices(name string, doc *yaml.Node, now time.Time, warns *[]string) (*rawFile, error) {
	out := &rawFile{}
	today := now.UTC().Format("2006-01-02")
	for pi, pn := range doc.Content {
		if pn.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: providers[%d]: expected a provider object", name, pn.Line, pi)
		}
		idn, models := mapGet(pn, "id"), mapGet(pn, "models")
		if idn == nil || idn.Kind != yaml.ScalarNode || idn.Value == "" {
			return nil, fmt.Errorf("%s:%d: providers[%d].id: missing", name, pn.Line, pi)
		}
		provider := idn.Value
		if models == nil || models.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("%s:%d: %s.models: expected a list of models", name, pn.Line, provider)
		}
		for _, mn := range models.Content {
			rm, err := parseGenAIModel(name, provider, mn, today, warns)
			if err != nil {
				return nil, err
			}
			if rm != nil {
				out.models = append(out.models, rm)
			}
		}
	}
	if len(out.models) == 0 {
		return nil, fmt.Errorf("%s: no model in this genai-prices file has input_mtok and output_mtok", name)
	}
	return out, nil
}

func parseGenAIModel(file, provider string, mn *yaml.Node, today string, warns *[]string) (*rawModel, error) {
	if mn.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: %s.models: expected a model object", file, mn.Line, provider)
	}
	idn := mapGet(mn, "id")
	if idn == nil || idn.Kind != yaml.ScalarNode || strings.TrimSpace(idn.Value) == "" {
		return nil, fmt.Errorf("%s:%d: %s.models: a model without an id", file, mn.Line, provider)
	}
	id := idn.Value
	path := provider + "." + id
	pn := mapGet(mn, "prices")
	if pn == nil {
		return nil, fmt.Errorf("%s:%d: %s.prices: missing", file, mn.Line, path)
	}
	// The price in force: one set, or the last conditional set whose
	// start_date has come (a set without a constraint is the original).
	chosen, pricesPath := pn, path+".prices"
	if pn.Kind == yaml.SequenceNode {
		chosen = nil
		best := ""
		for i, cp := range pn.Content {
			at := fmt.Sprintf("%s.prices[%d]", path, i)
			if cp.Kind != yaml.MappingNode || mapGet(cp, "prices") == nil {
				return nil, fmt.Errorf("%s:%d: %s: expected {constraint, prices}", file, cp.Line, at)
			}
			start := ""
			if c := mapGet(cp, "constraint"); c != nil && c.Kind == yaml.MappingNode {
				sd := mapGet(c, "start_date")
				if sd == nil {
					continue // a time-of-day price (off-peak): not costctl's
				}
				if !validDate(sd.Value) {
					return nil, fmt.Errorf("%s:%d: %s.constraint.start_date: %q is not a date (YYYY-MM-DD)", file, sd.Line, at, sd.Value)
				}
				if sd.Value > today {
					continue // announced, not yet in force
				}
				start = sd.Value
			}
			if chosen == nil || start >= best {
				chosen, best, pricesPath = mapGet(cp, "prices"), start, at+".prices"
			}
		}
		if chosen == nil {
			return nil, fmt.Errorf("%s:%d: %s.prices: no price in force on %s", file, pn.Line, path, today)
		}
	}
	if chosen.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: %s: expected a map of prices", file, chosen.Line, pricesPath)
	}
	prices := map[string]*tieredPrice{}
	for _, k := range genAIRateKeys {
		v := mapGet(chosen, k.key)
		if v == nil {
			continue
		}
		p, err := genAIPrice(file, pricesPath+"."+k.key, k.own, v, warns)
		if err != nil {
			return nil, err
		}
		prices[k.own] = p
	}
	if prices["input_per_1m"] == nil || prices["output_per_1m"] == nil {
		return nil, nil // not a token-priced chat model
	}
	name := strings.ToLower(id)
	prov := provider
	if fp, ok := genAIFirstParty[provider]; ok {
		prov = fp
	} else {
		host := provider
		if host == "aws" {
			host = "bedrock"
		}
		name = host + "/" + name
	}
	rm := &rawModel{name: name, provider: &prov}
	if cw := mapGet(mn, "context_window"); cw != nil {
		if c, err := strconv.ParseInt(cw.Value, 10, 64); err == nil && c > 0 {
			rm.contextWindow = &c
		}
	}
	src := "genai-prices " + file + " (" + provider + " " + id + ")"
	rm.source = &src
	// Every tier start of any price is a long-context threshold; at each,
	// every price is the one in force there.
	var starts []int64
	for _, p := range prices {
		for _, t := range p.tiers {
			i := sort.Search(len(starts), func(i int) bool { return starts[i] >= t.start })
			if i == len(starts) || starts[i] != t.start {
				starts = append(starts[:i], append([]int64{t.start}, starts[i:]...)...)
			}
		}
	}
	fill := func(rr *rawRates, threshold int64) {
		for own, p := range prices {
			r := p.at(threshold)
			*rateKeys[own](rr) = &r
		}
	}
	fill(&rm.rates, 0)
	// genai-prices writes every tier a price has: a model without any
	// is priced flat, and loses a long-context tier the table had.
	rm.long = []*rawLong{}
	for _, s := range starts {
		lr := &rawLong{above: s}
		fill(&lr.rates, s)
		rm.long = append(rm.long, lr)
	}
	return rm, nil
}

// genAIPrice reads one price: a number, or {base, tiers: [{start, price}]}.
func genAIPrice(file, at, own string, v *yaml.Node, warns *[]string) (*tieredPrice, error) {
	one := func(n *yaml.Node, where string) (Rate, error) {
		if n == nil || n.Kind != yaml.ScalarNode {
			return 0, fmt.Errorf("%s:%d: %s: expected a price in USD per 1M tokens", file, lineOf(n, v), where)
		}
		r, w, err := genAIRate(n.Value, own)
		if err != nil {
			return 0, fmt.Errorf("%s:%d: %s: %v", file, n.Line, where, err)
		}
		if w != "" && warns != nil {
			*warns = append(*warns, fmt.Sprintf("%s:%d: %s: %s", file, n.Line, where, w))
		}
		return r, nil
	}
	if v.Kind == yaml.ScalarNode {
		r, err := one(v, at)
		return &tieredPrice{base: r}, err
	}
	if v.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: %s: expected a number or {base, tiers}", file, v.Line, at)
	}
	base, err := one(mapGet(v, "base"), at+".base")
	if err != nil {
		return nil, err
	}
	p := &tieredPrice{base: base}
	tn := mapGet(v, "tiers")
	if tn == nil || tn.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: %s.tiers: expected a list of {start, price}", file, v.Line, at)
	}
	for i, t := range tn.Content {
		where := fmt.Sprintf("%s.tiers[%d]", at, i)
		sn := mapGet(t, "start")
		var start int64
		if sn != nil {
			start, err = strconv.ParseInt(sn.Value, 10, 64)
		}
		if sn == nil || err != nil || start <= 0 {
			return nil, fmt.Errorf("%s:%d: %s.start: expected a positive whole number of tokens", file, t.Line, where)
		}
		if len(p.tiers) > 0 && start <= p.tiers[len(p.tiers)-1].start {
			return nil, fmt.Errorf("%s:%d: %s.start: tiers must ascend by start", file, t.Line, where)
		}
		r, err := one(mapGet(t, "price"), where+".price")
		if err != nil {
			return nil, err
		}
		p.tiers = append(p.tiers, genAITier{start: start, price: r})
	}
	return p, nil
}

func lineOf(n, fallback *yaml.Node) int {
	if n != nil {
		return n.Line
	}
	return fallback.Line
}

// genAIRate parses a genai-prices price (USD per 1M tokens, a JSON number
// that may carry float noise) to the nearest $0.000001 per 1M, with the
// same unit checks as costctl's own format.
func genAIRate(s, own string) (Rate, string, error) {
	p, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return 0, "", fmt.Errorf("invalid price %q: not a number", s)
	}
	if p.Sign() < 0 {
		return 0, "", fmt.Errorf("invalid price %q: negative", s)
	}
	// Round to the Rate grid, then apply the own format's checks to the
	// rounded decimal.
	m, err := MoneyFromRat(new(big.Rat).Quo(p, big.NewRat(1000, 1)))
	if err != nil {
		return 0, "", fmt.Errorf("invalid price %q: %v", s, err)
	}
	if p.Sign() > 0 && m == 0 {
		return 0, "", fmt.Errorf("%s per 1M tokens is too small to represent (costctl keeps prices to $0.000001 per 1M); check the unit", s)
	}
	r, w, err := scalarRate(&yaml.Node{Kind: yaml.ScalarNode, Value: Rate(m).Per1M()}, own)
	if err != nil {
		// Name the value as the file wrote it.
		return 0, "", fmt.Errorf("%s", strings.Replace(err.Error(), strconv.Quote(Rate(m).Per1M()), strconv.Quote(s), 1))
	}
	return r, w, nil
}
