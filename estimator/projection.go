package estimator

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strings"

	"github.com/costctl/costctl/pricing"
)

// Step names, in waterfall order: the baseline, then each lever's key.
const (
	StepBaseline    = "baseline"
	StepSample      = KeySample
	StepCascade     = KeyCascade
	StepEscalate    = KeyEscalate
	StepCacheHit    = KeyCacheHit
	StepPromptCache = KeyPromptCache
	StepBatch       = KeyBatch
	StepInfra       = KeyInfra
)

// FreeTier is the cascade tier name for checks that make no API call
// (regex, keyword, schema): it costs nothing.
const FreeTier = "free"

// CascadeTier is one judge tier and the share of evaluations it handles.
type CascadeTier struct {
	Name  string   // FreeTier or a model name as the user wrote it
	Share *big.Rat // 0..1
}

// Cascade is a judge hierarchy; its shares sum to 1.
type Cascade []CascadeTier

// String writes the cascade back as a spec: "free:0.5,gpt-4o-mini:0.5".
func (c Cascade) String() string {
	parts := make([]string, len(c))
	for i, t := range c {
		parts[i] = t.Name + ":" + DecimalString(t.Share, 12)
	}
	return strings.Join(parts, ",")
}

// Escalation is a judge hierarchy in which each stage sees its own share
// of the evaluations ("gpt-4o-mini:1,gpt-4o:0.2": the cheap model judges
// everything, the expensive one re-judges 20%). Unlike a Cascade the shares
// need not sum to 1; FreeTier is a stage that costs nothing.
type Escalation []CascadeTier

// String writes the escalation back as a spec: "gpt-4o-mini:1,gpt-4o:0.2".
func (x Escalation) String() string { return Cascade(x).String() }

// Levers are the cost levers of one projection. A nil field is a lever
// that is not set (it neither appears in the waterfall nor changes cost).
type Levers struct {
	Model       string // baseline model; "" means Inputs.Model
	Sample      *big.Rat
	Cascade     Cascade
	Escalate    Escalation
	CacheHit    *big.Rat
	PromptCache *big.Rat
	Batch       *big.Rat
	Infra       *pricing.Money // fixed USD per month
}

// Clone returns a copy of l that can be changed independently.
func (l Levers) Clone() Levers {
	c := l
	if l.Cascade != nil {
		c.Cascade = append(Cascade(nil), l.Cascade...)
	}
	if l.Escalate != nil {
		c.Escalate = append(Escalation(nil), l.Escalate...)
	}
	return c
}

// Inputs are what every projection of one run shares: volume, average
// tokens per request, the baseline model and optional price overrides.
type Inputs struct {
	RequestsPerMonth int64    // ≥ 1
	Days             int64    // days per month, ≥ 1
	InputTokens      *big.Rat // average prompt tokens per request
	OutputTokens     *big.Rat // average completion tokens per request
	Model            string   // baseline model name (looked up in Table)

	// Overrides (USD per token as pricing.Rate; nil = from the table). They
	// apply to the baseline model wherever it is used, including a cascade
	// tier that names it.
	InputPrice  *pricing.Rate
	OutputPrice *pricing.Rate
	CachedPrice *pricing.Rate

	// Prompts, when set (measured with --from), are the requests grouped by
	// prompt length: each group is priced in its own long-context tier and
	// its prompt-cache share is checked against the provider's minimum
	// cacheable prefix on its own, so mixed lengths are never priced by
	// their average. InputTokens and OutputTokens stay the averages. With
	// OutputAverage every request's output is OutputTokens (a flag given
	// beside --from), not its group's measured output.
	Prompts       []PromptGroup
	OutputAverage bool
}

// PromptGroup is the measured requests whose prompts have one length.
type PromptGroup struct {
	InputTokens  int64 // the prompt length of each request
	Requests     int64 // how many requests, ≥ 1
	OutputTokens int64 // their output tokens, in total
}

// load is a share of the requests with one prompt size: the whole traffic
// at the average, or one PromptGroup.
type load struct {
	weight *big.Rat // share of requests, the loads sum to 1
	in     *big.Rat // prompt tokens per request
	out    *big.Rat // output tokens per request
	tier   int64    // the prompt size that picks a long-context tier
	groups int64    // measured requests in this load (0: the average)
}

// Figures are one row of a projection, exact in dollars.
type Figures struct {
	PerRequest *big.Rat // average cost per incoming request
	Daily      *big.Rat // Monthly / Days
	Monthly    *big.Rat // PerRequest × RequestsPerMonth (+ infra, exactly)
	Savings    *big.Rat // baseline Monthly − Monthly (negative when a step adds cost)
	SavingsPct *big.Rat // Savings / baseline Monthly × 100 (0 when the baseline is 0)
}

// Amounts are Figures rounded to the nano-dollar (half away from zero) for
// output. Each is rounded from the exact rational on its own, so Monthly
// is never "rounded PerRequest × N".
type Amounts struct {
	PerRequest, Daily, Monthly, Savings pricing.Money
	SavingsPct                          *big.Rat
}

// Amounts rounds f for output; an amount beyond ±$9.2 billion is an error.
func (f Figures) Amounts() (Amounts, error) {
	var a Amounts
	var err error
	for _, x := range []struct {
		dst *pricing.Money
		src *big.Rat
	}{{&a.PerRequest, f.PerRequest}, {&a.Daily, f.Daily}, {&a.Monthly, f.Monthly}, {&a.Savings, f.Savings}} {
		if *x.dst, err = pricing.MoneyFromRat(x.src); err != nil {
			return Amounts{}, fmt.Errorf("projected cost %s USD is beyond what costctl can represent ($9.2 billion)", DecimalString(x.src, 0))
		}
	}
	a.SavingsPct = f.SavingsPct
	return a, nil
}

// Step is one row of the waterfall: the cumulative cost once its lever
// (and every lever before it) is applied.
type Step struct {
	Name   string // StepBaseline, StepSample, …
	Detail string // what the lever is set to, in words
	Figures
}

// Projection is a waterfall: the baseline, one step per lever that is set,
// and the total (the last step).
type Projection struct {
	Steps    []Step
	Total    Figures
	Levers   Levers
	Model    *pricing.Model // the baseline model
	Prices   Prices         // the baseline model's effective prices
	Notes    []string       // assumptions worth telling the user (stderr)
	Warnings []string       // where the traffic does not fit a model (stderr)
}

// Prices are the effective per-token prices (USD per token) of one model.
type Prices struct {
	Input, CachedInput, Output             *big.Rat
	BatchInput, BatchCachedInput, BatchOut *big.Rat
	CachedKnown                            bool // false: no cached-input price is known (overridden --input-price without --cached-price)
	CachedListed                           bool // the table (or --cached-price) lists a cached-input price below Input
	Overridden                             bool // --input-price/--output-price/--cached-price applied
}

// Estimator projects costs for one set of Inputs against a price table.
type Estimator struct {
	table *pricing.Table
	in    Inputs
	loads []load // by prompt size, shortest first

	// Prefix sums over loads (index i: loads[:i]) of weight × prompt
	// tokens, weight × output tokens and measured requests, so a model's
	// cost is a few segments (one per tier and cacheability) however many
	// prompt lengths were measured: a sweep stays linear in its rows.
	cumIn, cumOut []*big.Rat
	cumN          []int64
}

// New validates in and returns an Estimator.
func New(table *pricing.Table, in Inputs) (*Estimator, error) {
	if table == nil {
		return nil, errors.New("no price table")
	}
	if in.RequestsPerMonth < 1 {
		return nil, errors.New("requests per month must be at least 1")
	}
	if in.Days < 1 {
		return nil, errors.New("days per month must be at least 1")
	}
	if in.InputTokens == nil || in.OutputTokens == nil || in.InputTokens.Sign() < 0 || in.OutputTokens.Sign() < 0 {
		return nil, errors.New("average input and output tokens must be set and not negative")
	}
	if in.Model == "" {
		return nil, errors.New("no model")
	}
	if _, err := table.Lookup(in.Model); err != nil {
		return nil, err
	}
	e := &Estimator{table: table, in: in}
	if len(in.Prompts) == 0 {
		e.loads = []load{{weight: big.NewRat(1, 1), in: in.InputTokens, out: in.OutputTokens, tier: e.promptTier()}}
		e.sums()
		return e, nil
	}
	var n int64
	for _, g := range in.Prompts {
		if g.Requests < 1 || g.InputTokens < 0 || g.OutputTokens < 0 || n > math.MaxInt64-g.Requests {
			return nil, errors.New("measured prompts: every group needs at least one request and no negative tokens")
		}
		n += g.Requests
	}
	for _, g := range in.Prompts {
		l := load{weight: big.NewRat(g.Requests, n), in: big.NewRat(g.InputTokens, 1), out: big.NewRat(g.OutputTokens, g.Requests), tier: g.InputTokens, groups: g.Requests}
		if in.OutputAverage {
			l.out = in.OutputTokens
		}
		e.loads = append(e.loads, l)
	}
	sort.SliceStable(e.loads, func(i, j int) bool { return e.loads[i].in.Cmp(e.loads[j].in) < 0 })
	e.sums()
	return e, nil
}

// sums fills the prefix sums over e.loads.
func (e *Estimator) sums() {
	e.cumIn, e.cumOut, e.cumN = []*big.Rat{new(big.Rat)}, []*big.Rat{new(big.Rat)}, []int64{0}
	for i, ld := range e.loads {
		e.cumIn = append(e.cumIn, new(big.Rat).Add(e.cumIn[i], new(big.Rat).Mul(ld.weight, ld.in)))
		e.cumOut = append(e.cumOut, new(big.Rat).Add(e.cumOut[i], new(big.Rat).Mul(ld.weight, ld.out)))
		e.cumN = append(e.cumN, e.cumN[i]+ld.groups)
	}
}

// firstLoad is the index of the first load (shortest prompt first) for
// which f, a predicate that stays true once true, holds; len(loads) if none.
func (e *Estimator) firstLoad(f func(ld load) bool) int {
	return sort.Search(len(e.loads), func(i int) bool { return f(e.loads[i]) })
}

// Inputs returns the estimator's inputs.
func (e *Estimator) Inputs() Inputs { return e.in }

// Table returns the price table.
func (e *Estimator) Table() *pricing.Table { return e.table }

func (e *Estimator) baseModelName(l Levers) string {
	if l.Model != "" {
		return l.Model
	}
	return e.in.Model
}

// promptTier is the prompt size that picks a long-context price tier: the
// average prompt, rounded up.
func (e *Estimator) promptTier() int64 {
	q := new(big.Int).Quo(e.in.InputTokens.Num(), e.in.InputTokens.Denom())
	if !e.in.InputTokens.IsInt() {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 1 << 62
	}
	return q.Int64()
}

func half(r *big.Rat) *big.Rat { return new(big.Rat).Quo(r, big.NewRat(2, 1)) }

// PricesFor returns m's effective prices: the table's (long-context tier
// chosen by the average prompt size), with the --*-price overrides when m is
// the run's --model. Batch prices come from the table, or are 50% of an
// overridden price; a cached prompt read under Batch costs half the cached
// price (as pricing.Model.Cost bills it), or the batch input price when the
// model lists no cached price.
func (e *Estimator) PricesFor(m *pricing.Model) Prices { return e.pricesAt(m, e.promptTier()) }

// pricesAt returns m's effective prices for prompts of promptTokens tokens.
func (e *Estimator) pricesAt(m *pricing.Model, promptTokens int64) Prices {
	r := m.RatesFor(promptTokens)
	p := Prices{
		Input:        r.Input.Rat(),
		CachedInput:  r.CachedInput.Rat(),
		Output:       r.Output.Rat(),
		BatchInput:   r.BatchInput.Rat(),
		BatchOut:     r.BatchOutput.Rat(),
		CachedKnown:  true,
		CachedListed: r.HasCachedInput && r.CachedInput < r.Input,
	}
	if r.HasCachedInput {
		p.BatchCachedInput = half(p.CachedInput)
	} else {
		p.BatchCachedInput = p.BatchInput
	}
	base, err := e.table.Lookup(e.in.Model)
	if err != nil || base.Name != m.Name {
		return p
	}
	if e.in.InputPrice != nil {
		p.Overridden = true
		p.Input = e.in.InputPrice.Rat()
		p.BatchInput = half(p.Input)
		p.CachedKnown = false
		p.CachedListed = false
		p.CachedInput = p.Input
		p.BatchCachedInput = p.BatchInput
	}
	if e.in.CachedPrice != nil {
		p.Overridden = true
		p.CachedInput = e.in.CachedPrice.Rat()
		p.BatchCachedInput = half(p.CachedInput)
		p.CachedKnown = true
		p.CachedListed = p.CachedInput.Cmp(p.Input) < 0
	}
	if e.in.OutputPrice != nil {
		p.Overridden = true
		p.Output = e.in.OutputPrice.Rat()
		p.BatchOut = half(p.Output)
	}
	return p
}

// modelCost is the average cost of one call to m: each load (the average
// request, or each measured prompt length) priced in its own long-context
// tier, weighted by its share of the requests. A load's prompt-cache share
// counts only when its cached prefix reaches the provider's minimum
// cacheable prefix (MinCachedPrefix); below it the provider caches nothing.
//
// callCost is linear in the token counts, so the loads that share a tier
// and a cacheability are priced at once from their weighted token sums.
func (e *Estimator) modelCost(m *pricing.Model, promptCache, batch *big.Rat) *big.Rat {
	n := len(e.loads)
	cuts := []int{0, n}
	for _, lc := range m.LongContext {
		cuts = append(cuts, e.firstLoad(func(ld load) bool { return ld.tier > lc.AboveTokens }))
	}
	if promptCache.Sign() > 0 {
		cuts = append(cuts, e.firstLoad(func(ld load) bool { return cacheable(m, promptCache, ld.in) }))
	}
	sort.Ints(cuts)
	sum := new(big.Rat)
	zero := new(big.Rat)
	for i := 0; i+1 < len(cuts); i++ {
		a, b := cuts[i], cuts[i+1]
		if a == b {
			continue
		}
		ld := e.loads[a] // every load in [a, b) has its tier and cacheability
		p := promptCache
		if p.Sign() > 0 && !cacheable(m, p, ld.in) {
			p = zero
		}
		in := new(big.Rat).Sub(e.cumIn[b], e.cumIn[a])
		out := new(big.Rat).Sub(e.cumOut[b], e.cumOut[a])
		sum.Add(sum, callCost(e.pricesAt(m, ld.tier), p, batch, in, out))
	}
	return sum
}

// callCost is the cost of one API call of I input and O output tokens, with
// promptCache of the input tokens at the cached price and batch of the calls
// at batch prices:
//
//	list  = I × ((1−p)·input + p·cached) + O × output
//	batch = I × ((1−p)·batch_input + p·batch_cached) + O × batch_output
//	cost  = (1−b)·list + b·batch
func callCost(p Prices, promptCache, batch, in, out *big.Rat) *big.Rat {
	one := big.NewRat(1, 1)
	mix := func(plain, cached *big.Rat) *big.Rat {
		x := new(big.Rat).Mul(new(big.Rat).Sub(one, promptCache), plain)
		x.Add(x, new(big.Rat).Mul(promptCache, cached))
		return x.Mul(x, in)
	}
	list := mix(p.Input, p.CachedInput)
	list.Add(list, new(big.Rat).Mul(out, p.Output))
	if batch.Sign() == 0 {
		return list
	}
	b := mix(p.BatchInput, p.BatchCachedInput)
	b.Add(b, new(big.Rat).Mul(out, p.BatchOut))
	cost := new(big.Rat).Mul(new(big.Rat).Sub(one, batch), list)
	return cost.Add(cost, b.Mul(b, batch))
}

type tier struct {
	name  string
	free  bool
	share *big.Rat
	model *pricing.Model
}

func (e *Estimator) tiers(l Levers) ([]tier, error) {
	base, err := e.table.Lookup(e.baseModelName(l))
	if err != nil {
		return nil, err
	}
	p, err := l.plan()
	if err != nil {
		return nil, err
	}
	judges, what := p.judges, p.judgesBy
	if judges == nil {
		return []tier{{name: base.Name, share: big.NewRat(1, 1), model: base}}, nil
	}
	out := make([]tier, 0, len(judges))
	for _, t := range judges {
		if strings.EqualFold(t.Name, FreeTier) {
			out = append(out, tier{name: FreeTier, free: true, share: t.Share})
			continue
		}
		m, err := e.table.Lookup(t.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, tier{name: m.Name, share: t.Share, model: m})
	}
	return out, nil
}

// perRequest is the exact average cost per incoming request with the given
// levers (nil levers are neutral), before fixed infrastructure (returned
// beside it, for figures); each lever's part comes from its apply in
// LeverList:
//
//	sample × (1 − cache_hit) × Σ tiers share × callCost(tier)
//
// where the tiers are the cascade's (shares sum to 1) or the escalation's
// stages (each share the fraction of evaluations that stage judges).
func (e *Estimator) perRequest(l Levers) (*big.Rat, *pricing.Money, error) {
	p, err := l.plan()
	if err != nil {
		return nil, nil, err
	}
	tiers, err := e.tiers(l)
	if err != nil {
		return nil, nil, err
	}
	sum := new(big.Rat)
	for _, t := range tiers {
		if t.free {
			continue
		}
		c := e.modelCost(t.model, p.promptCache, p.batch)
		sum.Add(sum, c.Mul(c, t.share))
	}
	return sum.Mul(sum, p.scale), p.infra, nil
}

func (e *Estimator) figures(perReq *big.Rat, infra *pricing.Money, baseline *big.Rat) Figures {
	n := new(big.Rat).SetInt64(e.in.RequestsPerMonth)
	monthly := new(big.Rat).Mul(perReq, n)
	per := new(big.Rat).Set(perReq)
	if infra != nil {
		monthly.Add(monthly, infra.Rat())
		per.Add(per, new(big.Rat).Quo(infra.Rat(), n))
	}
	f := Figures{
		PerRequest: per,
		Monthly:    monthly,
		Daily:      new(big.Rat).Quo(monthly, new(big.Rat).SetInt64(e.in.Days)),
		SavingsPct: new(big.Rat),
	}
	if baseline == nil {
		baseline = monthly
	}
	f.Savings = new(big.Rat).Sub(baseline, monthly)
	if baseline.Sign() != 0 {
		f.SavingsPct.Quo(f.Savings, baseline)
		f.SavingsPct.Mul(f.SavingsPct, big.NewRat(100, 1))
	}
	return f
}

// Baseline is the monthly cost of the run's --model with no lever set.
func (e *Estimator) Baseline() (Figures, error) {
	pr, _, err := e.perRequest(Levers{})
	if err != nil {
		return Figures{}, err
	}
	return e.figures(pr, nil, nil), nil
}

// Validate reports a lever combination that cannot be priced: an unknown
// model, or a prompt-cache share on a model whose cached-input price is not
// known (an overridden --input-price without --cached-price).
func (e *Estimator) Validate(l Levers) error {
	tiers, err := e.tiers(l)
	if err != nil {
		return err
	}
	if l.PromptCache != nil && l.PromptCache.Sign() > 0 {
		for _, t := range tiers {
			if !t.free && !e.PricesFor(t.model).CachedKnown {
				return fmt.Errorf("--prompt-cache needs a cached-input price for %s: --input-price overrides its list price, so add --cached-price USD (per 1M cached input tokens)", t.model.Name)
			}
		}
	}
	return nil
}

// Project computes the waterfall for l: the baseline (the baseline model at
// list price, every request one call), then each lever that is set, in the
// order sample, cascade (or escalate), cache-hit, prompt-cache, batch, infra.
// Each step's
// figures are cumulative; savings are against the baseline of the same
// projection.
func (e *Estimator) Project(l Levers) (*Projection, error) {
	if err := e.Validate(l); err != nil {
		return nil, err
	}
	base, err := e.table.Lookup(e.baseModelName(l))
	if err != nil {
		return nil, err
	}
	p := &Projection{Levers: l, Model: base, Prices: e.PricesFor(base)}
	cur := Levers{Model: l.Model}
	basePR, _, err := e.perRequest(cur)
	if err != nil {
		return nil, err
	}
	baseline := e.figures(basePR, nil, nil)
	p.Steps = append(p.Steps, Step{Name: StepBaseline, Detail: e.baselineDetail(base, p.Prices), Figures: baseline})

	add := func(name, detail string) error {
		pr, infra, err := e.perRequest(cur)
		if err != nil {
			return err
		}
		p.Steps = append(p.Steps, Step{Name: name, Detail: detail, Figures: e.figures(pr, infra, baseline.Monthly)})
		return nil
	}
	for _, lv := range leverList {
		if !lv.isSet(l) {
			continue
		}
		lv.copy(&cur, l)
		if err := add(lv.Key, lv.detail(e, cur)); err != nil {
			return nil, err
		}
	}
	p.Total = p.Steps[len(p.Steps)-1].Figures
	p.Notes = e.notes(l)
	p.Warnings = e.warnings(l)
	return p, nil
}

// notes lists the assumptions behind l worth telling the user.
func (e *Estimator) notes(l Levers) []string {
	var out []string
	if l.PromptCache == nil || l.PromptCache.Sign() == 0 {
		return nil
	}
	tiers, err := e.tiers(l)
	if err != nil {
		return nil
	}
	for _, t := range tiers {
		if !t.free && !e.PricesFor(t.model).CachedListed {
			out = append(out, fmt.Sprintf("%s lists no cached-input price below its input price, so --prompt-cache saves nothing on it", t.model.Name))
		}
	}
	return out
}

// MinCachedPrefix is the shortest prompt prefix m's provider caches, in
// tokens; 0 when costctl knows no minimum for it. From the providers'
// prompt-caching docs: OpenAI caches prompts of 1,024 tokens or more;
// Anthropic's minimum cacheable prompt is 4,096 tokens for Claude Opus
// 4.5, 4.6 and 4.7 and Haiku 4.5, 2,048 for Haiku 3.5 and 3, and 1,024 for
// Sonnet 3.7/4/4.5/4.6, Opus 4/4.1/4.8 (and, here, any other Claude model).
func MinCachedPrefix(m *pricing.Model) int64 {
	for _, x := range minCachedPrefix {
		if strings.EqualFold(m.Provider, x.provider) && (x.model == "" || strings.EqualFold(m.Name, x.model)) {
			return x.tokens
		}
	}
	return 0
}

var minCachedPrefix = []struct {
	provider, model string // model "" is the provider's default
	tokens          int64
}{
	{"anthropic", "claude-opus-4.5", 4096},
	{"anthropic", "claude-opus-4.6", 4096},
	{"anthropic", "claude-opus-4.7", 4096},
	{"anthropic", "claude-haiku-4.5", 4096},
	{"anthropic", "claude-3.5-haiku", 2048},
	{"anthropic", "claude-3-haiku", 2048},
	{"anthropic", "", 1024},
	{"openai", "", 1024},
}

// cacheable reports whether a prompt of in tokens with a share p of them
// cached has a cached prefix (p × in) that m's provider caches at all.
func cacheable(m *pricing.Model, p, in *big.Rat) bool {
	min := MinCachedPrefix(m)
	if min == 0 {
		return true
	}
	return new(big.Rat).Mul(p, in).Cmp(big.NewRat(min, 1)) >= 0
}

// models are the distinct models l prices: its baseline model and every
// judge that is not free, in order.
func (e *Estimator) models(l Levers) []*pricing.Model {
	var out []*pricing.Model
	seen := map[string]bool{}
	add := func(m *pricing.Model) {
		if m != nil && !seen[m.Name] {
			seen[m.Name] = true
			out = append(out, m)
		}
	}
	if base, err := e.table.Lookup(e.baseModelName(l)); err == nil {
		add(base)
	}
	tiers, err := e.tiers(l)
	if err != nil {
		return out
	}
	for _, t := range tiers {
		if !t.free {
			add(t.model)
		}
	}
	return out
}

// warnings are the places where the traffic does not fit a model l prices:
// prompts longer than its context window (the API rejects them; they are
// priced anyway), and a prompt-cache share whose cached prefix is shorter
// than the provider's minimum cacheable prefix (not counted as saved).
func (e *Estimator) warnings(l Levers) []string {
	var out []string
	measured := len(e.in.Prompts) > 0
	n := len(e.loads)
	records := e.cumN[n]
	for _, m := range e.models(l) {
		if w := m.ContextWindow; w > 0 {
			window := big.NewRat(w, 1)
			first := e.firstLoad(func(ld load) bool { return ld.in.Cmp(window) > 0 })
			over := records - e.cumN[first]
			var longest *big.Rat
			if first < n {
				longest = e.loads[n-1].in
			}
			switch {
			case longest == nil:
			case measured:
				out = append(out, fmt.Sprintf("%s: %s of %s sampled prompts (the longest %s tokens) are longer than its %s-token context window; the API rejects such requests, they are priced as if it did not",
					m.Name, groupRat(big.NewRat(over, 1)), groupRat(big.NewRat(records, 1)), groupRat(longest), groupRat(window)))
			default:
				out = append(out, fmt.Sprintf("%s: the %s-token prompt is longer than its %s-token context window; the API rejects such requests, they are priced as if it did not",
					m.Name, groupRat(longest), groupRat(window)))
			}
		}
		if l.PromptCache == nil || l.PromptCache.Sign() == 0 {
			continue
		}
		min := MinCachedPrefix(m)
		if min == 0 || !e.PricesFor(m).CachedListed {
			continue
		}
		first := e.firstLoad(func(ld load) bool { return cacheable(m, l.PromptCache, ld.in) })
		short := e.cumN[first]
		var shortIn *big.Rat
		if first > 0 {
			shortIn = e.loads[0].in
		}
		switch {
		case shortIn == nil:
		case measured:
			out = append(out, fmt.Sprintf("%s: --prompt-cache %s saves nothing on %s of %s sampled prompts: their cached prefix is shorter than the %s-token minimum the provider caches",
				m.Name, PercentString(l.PromptCache), groupRat(big.NewRat(short, 1)), groupRat(big.NewRat(records, 1)), groupRat(big.NewRat(min, 1))))
		default:
			out = append(out, fmt.Sprintf("%s: --prompt-cache %s saves nothing on %s-token prompts: the cached prefix (%s tokens) is shorter than the %s-token minimum the provider caches",
				m.Name, PercentString(l.PromptCache), groupRat(shortIn), groupRat(new(big.Rat).Mul(l.PromptCache, shortIn)), groupRat(big.NewRat(min, 1))))
		}
	}
	return out
}

// groupRat writes r with thousands separators and up to two decimals.
func groupRat(r *big.Rat) string {
	s := DecimalString(r, 2)
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}

// Total is the last row of l's waterfall (Project(l).Total) without the
// intermediate steps; savings are against baseline (a monthly cost; nil:
// l's own baseline model with no levers).
func (e *Estimator) Total(l Levers, baseline *big.Rat) (Figures, error) {
	if err := e.Validate(l); err != nil {
		return Figures{}, err
	}
	if baseline == nil {
		pr, _, err := e.perRequest(Levers{Model: l.Model})
		if err != nil {
			return Figures{}, err
		}
		baseline = e.figures(pr, nil, nil).Monthly
	}
	pr, infra, err := e.perRequest(l)
	if err != nil {
		return Figures{}, err
	}
	return e.figures(pr, infra, baseline), nil
}

func (e *Estimator) baselineDetail(m *pricing.Model, p Prices) string {
	s := fmt.Sprintf("%s at $%s/$%s per 1M in/out", m.Name, per1M(p.Input), per1M(p.Output))
	if p.Overridden {
		s += " (override)"
	}
	return s
}

// per1M writes a per-token price as USD per 1M tokens: "2.50", "0.075".
func per1M(perToken *big.Rat) string {
	x := new(big.Rat).Mul(perToken, big.NewRat(1_000_000, 1))
	s := DecimalString(x, 6)
	if !strings.Contains(s, ".") {
		return s + ".00"
	}
	if len(s)-strings.Index(s, ".") == 2 {
		return s + "0"
	}
	return s
}

// Per1M writes a per-token price as USD per 1M tokens ("2.50", "0.075").
func Per1M(perToken *big.Rat) string { return per1M(perToken) }
