package estimator

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/costctl/costctl/pricing"
)

// Lever is one cost lever, defined once. Its key names the --KEY flag, the
// --sweep KEY= and scenario key, and its waterfall row; Usage and Help are
// the flag's usage and its lines in `costctl estimate --help`; the
// functions parse it, copy it between Levers, write it for output, say how
// it changes a call's cost and describe its waterfall row. LeverList holds
// every lever in waterfall order, and flags, sweep and scenario keys, help
// text, output columns and waterfall rows all come from that list.
//
// A new lever is a field in Levers (plus Clone if it is a slice) and one
// entry in leverTable; a lever that changes a call's price in a new way
// also adds a field to plan and uses it in perRequest/callCost.
type Lever struct {
	Key     string // flag name, --sweep/scenario key and waterfall step name
	Usage   string // the flag's usage; the `WORD` in backquotes is its placeholder
	Help    string // the lever under THE WATERFALL in --help: lines of at most 60 columns
	Example string // a valid value, as a flag takes it (tests set every lever with it)
	Tiers   bool   // the value is a judge spec (tier:share,…): ';' separates --sweep alternatives, a scenario may give a map

	set    func(l *Levers, v string) error // parse v (trimmed, not "none") into l
	copy   func(dst *Levers, src Levers)   // set dst's lever to src's (from Levers{}: unset it)
	isSet  func(l Levers) bool
	exact  func(l Levers) string               // the value as exact text (JSON, CSV, scenario params)
	human  func(l Levers) string               // the value for a person (table, markdown)
	apply  func(p *plan, l Levers) error       // how the lever, when set, changes the cost
	detail func(e *Estimator, l Levers) string // the waterfall row's detail; l holds the levers applied so far
}

// Set parses v (as a flag, --sweep value or scenario value gives it) into
// l; "none" unsets the lever.
func (lv Lever) Set(l *Levers, v string) error {
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, None) {
		lv.copy(l, Levers{})
		return nil
	}
	return lv.set(l, v)
}

// IsSet reports whether l sets the lever.
func (lv Lever) IsSet(l Levers) bool { return lv.isSet(l) }

// Text writes l's value of the lever: for a person (percentages, dollars to
// the cent) when human is true, else exactly; "none" when it is not set.
func (lv Lever) Text(l Levers, human bool) string {
	if !lv.isSet(l) {
		return None
	}
	if human {
		return lv.human(l)
	}
	return lv.exact(l)
}

// SweepSeparator separates the lever's alternatives in --sweep KEY=V1,V2.
func (lv Lever) SweepSeparator() string {
	if lv.Tiers {
		return ";"
	}
	return ","
}

// plan is what the levers make of one incoming request: the share of
// requests that reach a judge, the judges, and how each call is billed.
type plan struct {
	scale       *big.Rat      // share of requests that make calls (sample × (1 − cache-hit))
	judges      []CascadeTier // nil: one call to the baseline model
	judgesBy    string        // the key of the lever that chose the judges
	promptCache *big.Rat      // share of input tokens at the cached price
	batch       *big.Rat      // share of calls through the Batch API
	infra       *pricing.Money
}

// plan applies every lever that l sets, in waterfall order.
func (l Levers) plan() (plan, error) {
	p := plan{scale: big.NewRat(1, 1), promptCache: new(big.Rat), batch: new(big.Rat)}
	for _, lv := range leverList {
		if lv.isSet(l) {
			if err := lv.apply(&p, l); err != nil {
				return plan{}, err
			}
		}
	}
	return p, nil
}

// setJudges records the judges chosen by the lever key.
func (p *plan) setJudges(key string, tiers []CascadeTier) error {
	if p.judges != nil {
		return fmt.Errorf("%s and %s both choose the judges: set one of them (none unsets a lever in a sweep or scenario)", p.judgesBy, key)
	}
	p.judges, p.judgesBy = tiers, key
	return nil
}

// leverList is every lever in waterfall order (see Lever).
var leverList []Lever

// leverKeys are the --sweep and scenario keys: model, then every lever.
var leverKeys []string

func init() {
	leverList = leverTable()
	leverKeys = []string{KeyModel}
	for _, lv := range leverList {
		leverKeys = append(leverKeys, lv.Key)
	}
}

// LeverList returns every lever in waterfall order.
func LeverList() []Lever { return append([]Lever(nil), leverList...) }

// LookupLever returns the lever with key k (not KeyModel, which is the
// baseline rather than a lever).
func LookupLever(k string) (Lever, bool) {
	for _, lv := range leverList {
		if lv.Key == k {
			return lv, true
		}
	}
	return Lever{}, false
}

// ratioLever is a lever whose value is a share (0..1, "10%" or "0.1"),
// kept in the field that f returns.
func ratioLever(key, example, usage, help string, f func(l *Levers) **big.Rat, apply func(p *plan, r *big.Rat), detail string) Lever {
	get := func(l Levers) *big.Rat { return *f(&l) }
	return Lever{
		Key: key, Example: example, Usage: usage, Help: help,
		set: func(l *Levers, v string) error {
			r, err := ParseRatio(v)
			if err != nil {
				return err
			}
			*f(l) = r
			return nil
		},
		copy:   func(dst *Levers, src Levers) { *f(dst) = get(src) },
		isSet:  func(l Levers) bool { return get(l) != nil },
		exact:  func(l Levers) string { return DecimalString(get(l), 12) },
		human:  func(l Levers) string { return PercentString(get(l)) },
		apply:  func(p *plan, l Levers) error { apply(p, get(l)); return nil },
		detail: func(_ *Estimator, l Levers) string { return PercentString(get(l)) + detail },
	}
}

// tiersHuman writes judge tiers with percentages: "free:50%,gpt-4o:50%".
func tiersHuman(tiers []CascadeTier) string {
	parts := make([]string, len(tiers))
	for i, t := range tiers {
		parts[i] = t.Name + ":" + PercentString(t.Share)
	}
	return strings.Join(parts, ",")
}

// tiersDetail writes the resolved judges of l with their shares, joined by sep.
func tiersDetail(e *Estimator, l Levers, sep string) string {
	tiers, _ := e.tiers(l)
	parts := make([]string, len(tiers))
	for i, t := range tiers {
		parts[i] = t.name + " " + PercentString(t.share)
	}
	return strings.Join(parts, sep)
}

func leverTable() []Lever {
	return []Lever{
		ratioLever(KeySample, "10%", "share `R` of requests evaluated: 10% or 0.1",
			"the share of requests evaluated at all (10% or 0.1)",
			func(l *Levers) **big.Rat { return &l.Sample },
			func(p *plan, r *big.Rat) { p.scale.Mul(p.scale, r) },
			" of requests evaluated"),
		{
			Key:     KeyCascade,
			Example: "free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2",
			Usage:   "judge tiers and their shares, a `SPEC` like free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2",
			Help: `which judge tier handles each evaluation, e.g.
free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2 — "free" (regex/keyword
checks) costs nothing, other tiers are priced by their own
model; shares must sum to 1`,
			Tiers: true,
			set: func(l *Levers, v string) error {
				c, err := ParseCascade(v)
				if err != nil {
					return err
				}
				l.Cascade = c
				return nil
			},
			copy:   func(dst *Levers, src Levers) { dst.Cascade = src.Cascade },
			isSet:  func(l Levers) bool { return l.Cascade != nil },
			exact:  func(l Levers) string { return l.Cascade.String() },
			human:  func(l Levers) string { return tiersHuman(l.Cascade) },
			apply:  func(p *plan, l Levers) error { return p.setJudges(KeyCascade, l.Cascade) },
			detail: func(e *Estimator, l Levers) string { return tiersDetail(e, l, ", ") },
		},
		{
			Key:     KeyEscalate,
			Example: "gpt-4o-mini:1,gpt-4o:0.2",
			Usage:   "judge stages and the share of evaluations each sees, a `SPEC` like gpt-4o-mini:1,gpt-4o:0.2",
			Help: `a judge hierarchy in which each stage sees its own share
of the evaluations, e.g. gpt-4o-mini:1,gpt-4o:0.2 (the
cheap model judges everything, the expensive one
re-judges 20%); shares need not sum to 1, "free" is a
stage that costs nothing; instead of cascade, not with it`,
			Tiers: true,
			set: func(l *Levers, v string) error {
				x, err := ParseEscalate(v)
				if err != nil {
					return err
				}
				l.Escalate = x
				return nil
			},
			copy:   func(dst *Levers, src Levers) { dst.Escalate = src.Escalate },
			isSet:  func(l Levers) bool { return l.Escalate != nil },
			exact:  func(l Levers) string { return l.Escalate.String() },
			human:  func(l Levers) string { return tiersHuman(l.Escalate) },
			apply:  func(p *plan, l Levers) error { return p.setJudges(KeyEscalate, l.Escalate) },
			detail: func(e *Estimator, l Levers) string { return tiersDetail(e, l, " → ") + " of evaluations" },
		},
		ratioLever(KeyCacheHit, "20%", "share `R` of calls answered by a response cache",
			"the share of calls answered by a response cache (no call)",
			func(l *Levers) **big.Rat { return &l.CacheHit },
			func(p *plan, r *big.Rat) { p.scale.Mul(p.scale, new(big.Rat).Sub(big.NewRat(1, 1), r)) },
			" of calls answered from cache"),
		ratioLever(KeyPromptCache, "50%", "share `R` of input tokens billed at the cached-input price",
			`the share of the remaining calls' input tokens billed at
each model's cached-input price (cache-write premiums, such
as Anthropic's, are not modelled; a model that lists no
cached price saves nothing, and a note on stderr says so).
A provider caches no prefix shorter than its minimum
(OpenAI 1,024 tokens; Anthropic 1,024, 2,048 for Haiku 3
and 3.5, 4,096 for Opus 4.5-4.7 and Haiku 4.5): where the
cached share of a prompt is shorter, it is not counted as
saved and a warning on stderr says so`,
			func(l *Levers) **big.Rat { return &l.PromptCache },
			func(p *plan, r *big.Rat) { p.promptCache = r },
			" of input tokens at cached price"),
		ratioLever(KeyBatch, "50%", "share `R` of calls sent through the Batch API",
			`the share of the remaining calls sent through the Batch API
at batch prices (a cached prompt read in a batch costs half
the cached price)`,
			func(l *Levers) **big.Rat { return &l.Batch },
			func(p *plan, r *big.Rat) { p.batch = r },
			" of calls via Batch API"),
		{
			Key:     KeyInfra,
			Example: "100",
			Usage:   "fixed infrastructure, `USD` per month",
			Help:    "fixed USD per month, added last",
			set: func(l *Levers, v string) error {
				m, err := ParseUSD(v)
				if err != nil {
					return err
				}
				l.Infra = &m
				return nil
			},
			copy:   func(dst *Levers, src Levers) { dst.Infra = src.Infra },
			isSet:  func(l Levers) bool { return l.Infra != nil },
			exact:  func(l Levers) string { return l.Infra.String() },
			human:  func(l Levers) string { return l.Infra.DisplayRounded(2) },
			apply:  func(p *plan, l Levers) error { p.infra = l.Infra; return nil },
			detail: func(_ *Estimator, l Levers) string { return "+" + l.Infra.Display() + "/month fixed" },
		},
	}
}
