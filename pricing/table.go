// Package pricing holds costctl's price table: an embedded, dated list of
// per-model token prices, the exact Money and Rate types, model lookup with
// aliases and dated snapshots, and user overrides (costctl's own format or
// LiteLLM's model_prices_and_context_window.json).
package pricing

import (
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:embed prices.yaml
var embeddedPrices []byte

// Rates are the per-token prices of one tier of a model.
type Rates struct {
	Input        Rate
	CachedInput  Rate // prompt-cache read; equals Input when the provider lists none
	CacheWrite5m Rate // Anthropic 5-minute cache write; equals Input when none
	CacheWrite1h Rate // Anthropic 1-hour cache write; equals Input when none
	Output       Rate
	BatchInput   Rate // Batch API; 50% of Input when the provider lists none
	BatchOutput  Rate // Batch API; 50% of Output when the provider lists none

	// OpenAI's flex and priority processing (service_tier). Never derived:
	// a tier the table does not list leaves a call at it unpriced.
	Flex, Priority TierRates

	// Which of the optional prices the table lists (the rest are derived).
	HasCachedInput, HasCacheWrite5m, HasCacheWrite1h, HasBatchInput, HasBatchOutput bool
	NoBatch                                                                         bool // no Batch API (set by a LiteLLM import, overrides.go): a batch call is unpriced
}

// TierRates are the prices of one processing tier (flex or priority).
type TierRates struct {
	Input       Rate
	CachedInput Rate // equals Input when the provider lists none
	Output      Rate

	HasInput, HasCachedInput, HasOutput bool
}

// Listed reports whether the table prices this tier.
func (t TierRates) Listed() bool { return t.HasInput && t.HasOutput }

// LongContext is a tier that prices the whole request when its prompt is
// above AboveTokens tokens (Anthropic's 1M-context Sonnet, Gemini 2.5 Pro,
// GPT-5.4 above 272k).
type LongContext struct {
	AboveTokens int64
	Rates
}

// Model is one priced model.
type Model struct {
	Name           string
	Provider       string
	Encoding       string // tiktoken encoding used to count its tokens
	ExactTokenizer bool   // false: counted with a stand-in encoding (Claude, Gemini)
	ContextWindow  int64
	MaxOutput      int64  // most output tokens one call may produce; 0: not published
	Deprecated     string // the provider's deprecation (retirement) date, "2026-02-27"; "" for none. The price is kept.
	Rates
	// LongContext lists the model's long-context tiers, sorted by
	// AboveTokens, each with a higher threshold than the one before: a
	// prompt is priced at the last tier whose threshold it exceeds
	// (RatesFor), else at Rates.
	LongContext []LongContext
	Aliases     []string
	Source      string // where the prices came from
	Origin      string // "built-in" or the override file that last set it
}

// Usage is what one call consumed, as a provider reports it.
type Usage struct {
	InputTokens        int64 // all prompt tokens, cached and cache-written ones included (OpenAI's prompt_tokens)
	CachedInputTokens  int64 // of InputTokens, read from the prompt cache
	CacheWrite5mTokens int64 // of InputTokens, written to a 5-minute cache
	CacheWrite1hTokens int64 // of InputTokens, written to a 1-hour cache
	OutputTokens       int64
}

// RatesFor returns the rates that apply to a prompt of promptTokens tokens:
// those of the highest long-context tier whose threshold the prompt
// exceeds, else the base rates. It is the one place a tier is chosen.
func (m *Model) RatesFor(promptTokens int64) Rates {
	for i := len(m.LongContext) - 1; i >= 0; i-- {
		if promptTokens > m.LongContext[i].AboveTokens {
			return m.LongContext[i].Rates
		}
	}
	return m.Rates
}

// Cost prices u at this model's list prices (batch: its Batch API prices).
// Cached tokens are billed at the cached-input price, cache writes at the
// write price, the rest of the prompt at the input price.
func (m *Model) Cost(u Usage, batch bool) Money {
	r := m.RatesFor(u.InputTokens)
	plain := u.plainInput()
	in, cached, w5, w1, out := r.tokenRates(batch)
	return in.Cost(plain) + cached.Cost(u.CachedInputTokens) + w5.Cost(u.CacheWrite5mTokens) +
		w1.Cost(u.CacheWrite1hTokens) + out.Cost(u.OutputTokens)
}

// plainInput is the prompt tokens that are neither cache reads nor writes.
func (u Usage) plainInput() int64 {
	return max(u.InputTokens-u.CachedInputTokens-u.CacheWrite5mTokens-u.CacheWrite1hTokens, 0)
}

// tokenRates are the per-kind rates of r at list or Batch API prices.
func (r Rates) tokenRates(batch bool) (in, cached, w5, w1, out Rate) {
	in, out, cached = r.Input, r.Output, r.CachedInput
	w5, w1 = r.CacheWrite5m, r.CacheWrite1h
	if batch {
		in, out = r.BatchInput, r.BatchOutput
		if !r.HasCachedInput {
			cached = in
		} else {
			cached = r.CachedInput / 2
		}
		w5, w1 = w5/2, w1/2
	}
	return in, cached, w5, w1, out
}

// Table is a set of priced models with the date its prices were taken.
type Table struct {
	AsOf      string
	Overrides []string // override files merged in, in order ("FILE" or "FILE as of DATE")
	models    map[string]*Model
	index     map[string]*Model // lower-cased names and aliases

	// lazy, for a table read from a snapshot, decodes a model the first
	// time it is looked up (snapshot.go); models and index stay empty
	// until something needs every model (all).
	lazy *lazyModels
}

// find returns the model a lower-cased name or alias keys, or nil.
func (t *Table) find(key string) *Model {
	if t.lazy != nil {
		return t.lazy.find(t, key)
	}
	return t.index[key]
}

// all makes models and index complete: a snapshot table decodes every
// model. Whatever walks or changes the whole table calls it first.
func (t *Table) all() {
	if t.lazy != nil {
		t.lazy.materialize(t)
	}
}

var (
	defaultOnce sync.Once
	defaultRaw  *rawFile
	defaultErr  error
)

// Default returns a fresh copy of the built-in table (callers may merge
// overrides into it without affecting others).
func Default() (*Table, error) {
	defaultOnce.Do(func() {
		// The built-in file is read with a small line parser (a few hundred
		// microseconds, where building a YAML node tree of it costs several
		// milliseconds of every command's start); anything it does not
		// expect sends the file through the full YAML parser instead.
		// TestBuiltinFastParseMatchesYAML keeps the two in step.
		if defaultRaw, defaultErr = parseBuiltin(embeddedPrices); defaultErr != nil {
			defaultRaw, defaultErr = parseOwnFormat("built-in prices.yaml", embeddedPrices)
		}
	})
	if defaultErr != nil {
		return nil, defaultErr
	}
	t := &Table{AsOf: defaultRaw.asOf, models: map[string]*Model{}, index: map[string]*Model{}}
	for _, rm := range defaultRaw.models {
		m, err := rm.build(nil, "built-in")
		if err != nil {
			return nil, fmt.Errorf("built-in prices.yaml: %w", err)
		}
		t.add(m)
	}
	return t, nil
}

// MustDefault is Default for tests and examples; it panics on a broken build.
func MustDefault() *Table {
	t, err := Default()
	if err != nil {
		panic(err)
	}
	return t
}

func (t *Table) add(m *Model) {
	t.all()
	if old, ok := t.models[m.Name]; ok {
		for _, a := range old.Aliases {
			delete(t.index, strings.ToLower(a))
		}
	}
	t.models[m.Name] = m
	t.index[strings.ToLower(m.Name)] = m
	for _, a := range m.Aliases {
		if _, taken := t.models[a]; !taken {
			t.index[strings.ToLower(a)] = m
		}
	}
}

// AsOfLabel is the line every priced output carries.
func (t *Table) AsOfLabel() string {
	s := "prices as of " + t.AsOf
	if len(t.Overrides) > 0 {
		s += " (overrides: " + strings.Join(t.Overrides, ", ") + ")"
	}
	return s
}

// Models returns every model, sorted by provider then name.
func (t *Table) Models() []*Model {
	t.all()
	out := make([]*Model, 0, len(t.models))
	for _, m := range t.models {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Provider != out[j].Provider {
			return out[i].Provider < out[j].Provider
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// UnknownModelError is returned by Lookup for a model the table does not price.
type UnknownModelError struct {
	Name    string
	Closest []string
}

func (e *UnknownModelError) Error() string {
	s := fmt.Sprintf("unknown model %q", e.Name)
	if len(e.Closest) > 0 {
		s += " (closest known: " + strings.Join(e.Closest, ", ") + ")"
	}
	return s + `; run "costctl pricing list" to see priced models, or add its price with --pricing FILE (models: {` +
		e.Name + `: {input_per_1m: ..., output_per_1m: ...}})`
}

var (
	dateSuffix = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-latest|-v\d+(?::\d+)?|:\d+)$`)
	})
	regionPrefix  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(us|eu|apac|au|jp|global)\.`) })
	vendorPrefix  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?:anthropic|openai|google|meta|amazon)\.`) })
	dashedVersion = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(claude-(?:opus|sonnet|haiku)-\d)-(\d)$`) })
)

// platformAliases maps the platform part of a provider-qualified name
// (LiteLLM's spelling and ours) to the name the table keys its
// platform-specific prices by: "vertex_ai/gemini-2.0-flash" is looked up
// as itself first, and only then as the first party's gemini-2.0-flash.
var platformAliases = map[string]string{
	"bedrock":          "bedrock",
	"bedrock_converse": "bedrock",
	"vertex_ai":        "vertex_ai",
	"vertex_ai_beta":   "vertex_ai",
	"vertex":           "vertex_ai",
}

// regionalPremium lists the models whose regional (in-geography) endpoints
// on Amazon Bedrock and Google Vertex AI cost 10% more than the global
// endpoint and the first-party API: Anthropic's "Starting with Claude 4.5
// models ... regional endpoints: guaranteed data routing through specific
// geographic regions with a 10% pricing premium" (Anthropic pricing docs,
// third-party platform pricing). A Bedrock cross-region inference profile
// (us., eu., apac., au., jp.) is a regional endpoint; global. is not.
var regionalPremium = map[string]bool{
	"claude-haiku-4.5":  true,
	"claude-sonnet-4.5": true,
	"claude-sonnet-4.6": true,
	"claude-sonnet-5":   true,
	"claude-opus-4.5":   true,
	"claude-opus-4.6":   true,
	"claude-opus-4.7":   true,
	"claude-opus-4.8":   true,
}

// RegionalUplift is the regional-endpoint premium: prices times 11/10.
const regionalUpliftNum, regionalUpliftDen = 11, 10

// Lookup resolves a model name: exact names and aliases, then provider
// prefixes (openai/gpt-4o, anthropic/claude-…, bedrock's anthropic.…),
// dated snapshots (gpt-4o-2024-08-06, claude-sonnet-4-20250514) and
// "-latest" suffixes.
//
// A provider-qualified name (vertex_ai/…, bedrock/…) gets the platform's
// own entry (a model named "vertex_ai/<model>") when the table lists one,
// else the first party's price. A Bedrock or Vertex regional prefix (us.,
// eu., apac., au., jp.) resolves to the same model, 10% dearer for the
// models whose provider charges a regional premium; global. is list price.
// An unknown model is an *UnknownModelError naming the closest known
// models.
func (t *Table) Lookup(name string) (*Model, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" {
		return nil, errors.New("empty model name")
	}
	if m := t.find(n); m != nil {
		return m, nil
	}
	platform, rest := "", n
	if i := strings.LastIndex(n, "/"); i >= 0 {
		first := n[:i]
		if j := strings.Index(first, "/"); j >= 0 {
			first = first[:j]
		}
		platform, rest = platformAliases[first], n[i+1:]
	}
	region := ""
	if sm := regionPrefix().FindStringSubmatch(rest); sm != nil {
		region, rest = sm[1], rest[len(sm[0]):]
		if platform == "" {
			platform = "bedrock" // us.anthropic.… is a Bedrock inference profile
		}
	}
	m := t.resolve(n, rest)
	if err := t.lazyErr(); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, &UnknownModelError{Name: name, Closest: t.closest(n, 3)}
	}
	if platform != "" {
		if pm := t.find(platform + "/" + m.Name); pm != nil {
			m = pm
		}
	}
	if region != "" && region != "global" && (platform == "bedrock" || platform == "vertex_ai") &&
		regionalPremium[strings.TrimPrefix(m.Name, platform+"/")] {
		return m.regional(platform, region), nil
	}
	return m, nil
}

// resolve finds the model for a lower-cased name n (rest: n without its
// platform and region prefixes), or nil.
func (t *Table) resolve(n, rest string) *Model {
	cands := []string{rest, n}
	for k := 0; k < len(cands); k++ {
		c := cands[k]
		if m := t.find(c); m != nil {
			return m
		}
		if i := strings.LastIndex(c, "/"); i >= 0 && len(cands) < 16 {
			cands = append(cands, c[i+1:])
		}
		for _, next := range []string{
			regionPrefix().ReplaceAllString(c, ""),
			vendorPrefix().ReplaceAllString(c, ""),
			dateSuffix().ReplaceAllString(c, ""),
			dashedVersion().ReplaceAllString(c, "$1.$2"),
		} {
			if next == c || next == "" {
				continue
			}
			if m := t.find(next); m != nil {
				return m
			}
			if len(cands) < 16 {
				cands = append(cands, next)
			}
		}
	}
	return nil
}

// regional is m at a regional endpoint of platform: every price times
// 11/10 (exact for any price with up to five decimals per 1M tokens;
// finer ones round to the nearest pico-dollar), named
// "<platform>/<region>.<model>" so it never passes for the list price.
func (m *Model) regional(platform, region string) *Model {
	cp := *m
	cp.Name = platform + "/" + region + "." + strings.TrimPrefix(m.Name, platform+"/")
	cp.Provider = platform
	cp.Rates = cp.Rates.uplift()
	cp.LongContext = make([]LongContext, len(m.LongContext))
	for i, lc := range m.LongContext {
		lc.Rates = lc.Rates.uplift()
		cp.LongContext[i] = lc
	}
	cp.Aliases = nil
	cp.Source = m.Source + "; " + platform + " regional endpoint (" + region + ".): +10% (Anthropic: regional endpoints carry a 10% premium from Claude 4.5 on)"
	return &cp
}

func (r Rates) uplift() Rates {
	up := func(x Rate) Rate {
		return (x*regionalUpliftNum + regionalUpliftDen/2) / regionalUpliftDen
	}
	for _, p := range []*Rate{&r.Input, &r.CachedInput, &r.CacheWrite5m, &r.CacheWrite1h, &r.Output, &r.BatchInput, &r.BatchOutput} {
		*p = up(*p)
	}
	for _, tr := range []*TierRates{&r.Flex, &r.Priority} {
		tr.Input, tr.CachedInput, tr.Output = up(tr.Input), up(tr.CachedInput), up(tr.Output)
	}
	return r
}

func (t *Table) closest(n string, k int) []string {
	if i := strings.LastIndex(n, "/"); i >= 0 {
		n = n[i+1:]
	}
	type cand struct {
		name string
		d    int
	}
	t.all()
	best := map[string]int{}
	for key, m := range t.index {
		d := levenshtein(n, key)
		if strings.HasPrefix(key, n) || strings.HasPrefix(n, key) {
			d -= 2
		}
		if old, ok := best[m.Name]; !ok || d < old {
			best[m.Name] = d
		}
	}
	var cs []cand
	for name, d := range best {
		cs = append(cs, cand{name, d})
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].d != cs[j].d {
			return cs[i].d < cs[j].d
		}
		return cs[i].name < cs[j].name
	})
	limit := len(n)/2 + 2
	var out []string
	for _, c := range cs {
		if len(out) == k || c.d > limit {
			break
		}
		out = append(out, c.name)
	}
	return out
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ---------------------------------------------------------------- parsing

type rawRates struct {
	input, cached, w5, w1, output, bin, bout *Rate
	flex, priority                           rawTier
}

type rawTier struct{ input, cached, output *Rate }

type rawModel struct {
	name           string
	provider       *string
	encoding       *string
	exactTokenizer *bool
	contextWindow  *int64
	maxOutput      *int64
	deprecated     *string
	rates          rawRates
	long           []*rawLong // nil: the file says nothing about long context
	aliases        []string
	source         *string
}

type rawLong struct {
	above int64
	rates rawRates
}

type rawFile struct {
	asOf   string
	models []*rawModel
}

// build resolves r on top of base (nil for a new model).
func (r *rawModel) build(base *Model, origin string) (*Model, error) {
	m := &Model{Name: r.name, Encoding: "o200k_base", Origin: origin}
	if base != nil {
		cp := *base
		m = &cp
		m.Origin = origin
		m.LongContext = append([]LongContext(nil), base.LongContext...)
	}
	if r.provider != nil {
		m.Provider = *r.provider
	}
	if r.encoding != nil {
		m.Encoding = *r.encoding
	}
	if r.exactTokenizer != nil {
		m.ExactTokenizer = *r.exactTokenizer
	} else if base == nil {
		m.ExactTokenizer = r.encoding != nil && (m.Provider == "openai" || m.Provider == "azure")
	}
	if r.contextWindow != nil {
		m.ContextWindow = *r.contextWindow
	}
	if r.maxOutput != nil {
		m.MaxOutput = *r.maxOutput
	}
	if r.deprecated != nil {
		m.Deprecated = *r.deprecated
	}
	if r.aliases != nil {
		m.Aliases = append(append([]string(nil), m.Aliases...), r.aliases...)
	}
	if r.source != nil {
		m.Source = *r.source
	}
	var err error
	if m.Rates, err = r.rates.apply(m.Rates, base != nil); err != nil {
		return nil, fmt.Errorf("models.%s.%w", r.name, err)
	}
	if r.long != nil {
		// The file's tiers replace the model's: a tier at a threshold the
		// model already has keeps the prices the file does not set; one at
		// a new threshold starts afresh; a tier the file leaves out is gone.
		old := m.LongContext
		m.LongContext = make([]LongContext, 0, len(r.long))
		for i, rl := range r.long {
			prev, had := Rates{}, false
			for _, o := range old {
				if o.AboveTokens == rl.above {
					prev, had = o.Rates, true
				}
			}
			lr, err := rl.rates.apply(prev, had)
			if err != nil {
				return nil, fmt.Errorf("models.%s.long_context%s.%w", r.name, tierIndex(len(r.long), i), err)
			}
			if i > 0 && rl.above <= r.long[i-1].above {
				return nil, fmt.Errorf("models.%s.long_context%s.above_tokens: %d is not above the previous tier's %d (list tiers from the lowest threshold up)",
					r.name, tierIndex(len(r.long), i), rl.above, r.long[i-1].above)
			}
			m.LongContext = append(m.LongContext, LongContext{AboveTokens: rl.above, Rates: lr})
		}
	}
	if m.Provider == "" {
		m.Provider = "custom"
	}
	return m, nil
}

// tierIndex names tier i of n in an error: "[1]" when there are several.
func tierIndex(n, i int) string {
	if n < 2 {
		return ""
	}
	return "[" + strconv.Itoa(i) + "]"
}

func (rr rawRates) apply(r Rates, haveBase bool) (Rates, error) {
	if !haveBase && (rr.input == nil || rr.output == nil) {
		if rr.input == nil {
			return r, errors.New("input_per_1m: missing (a new model needs input_per_1m and output_per_1m)")
		}
		return r, errors.New("output_per_1m: missing (a new model needs input_per_1m and output_per_1m)")
	}
	set := func(dst *Rate, v *Rate, has *bool) {
		if v != nil {
			*dst = *v
			if has != nil {
				*has = true
			}
		}
	}
	set(&r.Input, rr.input, nil)
	set(&r.Output, rr.output, nil)
	set(&r.CachedInput, rr.cached, &r.HasCachedInput)
	set(&r.CacheWrite5m, rr.w5, &r.HasCacheWrite5m)
	set(&r.CacheWrite1h, rr.w1, &r.HasCacheWrite1h)
	set(&r.BatchInput, rr.bin, &r.HasBatchInput)
	set(&r.BatchOutput, rr.bout, &r.HasBatchOutput)
	for _, t := range []struct {
		name string
		raw  rawTier
		dst  *TierRates
	}{{"flex", rr.flex, &r.Flex}, {"priority", rr.priority, &r.Priority}} {
		set(&t.dst.Input, t.raw.input, &t.dst.HasInput)
		set(&t.dst.CachedInput, t.raw.cached, &t.dst.HasCachedInput)
		set(&t.dst.Output, t.raw.output, &t.dst.HasOutput)
		if t.dst.HasInput != t.dst.HasOutput || (t.dst.HasCachedInput && !t.dst.HasInput) {
			missing := t.name + "_input_per_1m"
			if t.dst.HasInput {
				missing = t.name + "_output_per_1m"
			}
			return r, fmt.Errorf("%s: missing (%s prices need %s_input_per_1m and %s_output_per_1m)", missing, t.name, t.name, t.name)
		}
		if !t.dst.HasCachedInput {
			t.dst.CachedInput = t.dst.Input
		}
	}
	if !r.HasCachedInput {
		r.CachedInput = r.Input
	}
	if !r.HasCacheWrite5m {
		r.CacheWrite5m = r.Input
	}
	if !r.HasCacheWrite1h {
		r.CacheWrite1h = r.Input
	}
	if !r.HasBatchInput {
		r.BatchInput = r.Input / 2
	}
	if !r.HasBatchOutput {
		r.BatchOutput = r.Output / 2
	}
	return r, nil
}

// parseBuiltin reads the built-in price file, which keeps to a fixed
// subset of YAML: two-space indentation, one "key: value" per line, values
// plain, double-quoted without escapes, or a flow list of plain names, and
// whole-line comments. It returns an error for anything else, and the
// caller falls back to the full YAML parser.
func parseBuiltin(data []byte) (*rawFile, error) {
	out := &rawFile{}
	var m *rawModel
	var long *rawLong
	inModels := false
	for n, line := range strings.Split(string(data), "\n") {
		fail := func(msg string) error { return fmt.Errorf("prices.yaml:%d: %s", n+1, msg) }
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		indent := len(line) - len(trimmed)
		key, val, ok := strings.Cut(trimmed, ":")
		if !ok || strings.ContainsAny(key, " \t\"'") {
			return nil, fail("not a key: value line")
		}
		val = strings.TrimSpace(val)
		if val != "" {
			switch {
			case val[0] == '"':
				if len(val) < 2 || val[len(val)-1] != '"' || strings.ContainsAny(val[1:len(val)-1], "\"\\") {
					return nil, fail("quoted value")
				}
				val = val[1 : len(val)-1]
			case val[0] == '[':
			case strings.ContainsAny(val, "'{&*!|>%@`") || strings.Contains(val, " #"):
				return nil, fail("value needs the YAML parser")
			}
		}
		switch {
		case indent == 0 && key == "as_of" && val != "":
			out.asOf = val
		case indent == 0 && key == "models" && val == "":
			inModels = true
		case indent == 2 && inModels && val == "":
			m = &rawModel{name: strings.ToLower(key)}
			long = nil
			out.models = append(out.models, m)
		case indent == 4 && m != nil && key == "long_context" && val == "":
			long = &rawLong{}
			m.long = []*rawLong{long}
		case indent == 4 && m != nil:
			long = nil
			if err := m.setBuiltin(key, val); err != nil {
				return nil, fail(err.Error())
			}
		case indent == 6 && long != nil:
			if key == "above_tokens" {
				a, err := strconv.ParseInt(val, 10, 64)
				if err != nil || a <= 0 {
					return nil, fail("above_tokens")
				}
				long.above = a
				continue
			}
			f, ok := rateKeys[key]
			if !ok {
				return nil, fail("unknown long_context key " + key)
			}
			r, err := ParseRatePer1M(val)
			if err != nil {
				return nil, fail(err.Error())
			}
			*f(&long.rates) = &r
		default:
			return nil, fail("unexpected line")
		}
	}
	for _, rm := range out.models {
		if len(rm.long) == 1 && rm.long[0].above == 0 {
			return nil, fmt.Errorf("prices.yaml: %s: long_context without above_tokens", rm.name)
		}
	}
	if out.asOf == "" || len(out.models) == 0 {
		return nil, errors.New("prices.yaml: no as_of or no models")
	}
	return out, nil
}

// setBuiltin sets one model-level key read by parseBuiltin.
func (m *rawModel) setBuiltin(key, val string) error {
	if f, ok := rateKeys[key]; ok {
		r, err := ParseRatePer1M(val)
		if err != nil {
			return err
		}
		*f(&m.rates) = &r
		return nil
	}
	switch key {
	case "provider":
		m.provider = &val
	case "source":
		m.source = &val
	case "encoding":
		if !validEncoding(val) {
			return fmt.Errorf("unknown encoding %q", val)
		}
		m.encoding = &val
	case "exact_tokenizer":
		b, err := strconv.ParseBool(val)
		if err != nil {
			return err
		}
		m.exactTokenizer = &b
	case "context_window", "max_output":
		c, err := strconv.ParseInt(val, 10, 64)
		if err != nil || c < 0 {
			return errors.New(key)
		}
		if key == "max_output" {
			m.maxOutput = &c
		} else {
			m.contextWindow = &c
		}
	case "deprecated":
		if !validDate(val) {
			return errors.New("deprecated: expected a date such as 2026-02-27")
		}
		m.deprecated = &val
	case "aliases":
		if len(val) < 2 || val[0] != '[' || val[len(val)-1] != ']' {
			return errors.New("aliases: expected [a, b]")
		}
		m.aliases = []string{}
		for _, a := range strings.Split(val[1:len(val)-1], ",") {
			if a = strings.TrimSpace(a); a != "" {
				m.aliases = append(m.aliases, strings.ToLower(a))
			}
		}
	default:
		return fmt.Errorf("unknown key %s", key)
	}
	return nil
}
