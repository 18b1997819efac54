package pricing

import (
	"errors"
	"fmt"
	"math/big"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// MergeFile merges a price file into t. The format is detected:
// costctl's own (a top-level `models:` map of USD-per-1M prices, YAML or
// JSON) or LiteLLM's model_prices_and_context_window.json (per-token
// `input_cost_per_token` etc.). A model that already exists (by name or
// alias) keeps the fields the file does not set. Warnings are dropped; use
// MergeFileWarn to show them.
func (t *Table) MergeFile(path string) error {
	_, err := t.MergeFileWarn(path)
	return err
}

// MergeFileWarn is MergeFile that also returns the file's warnings: prices
// that are merged but look wrong (a per-1K-looking price, a LiteLLM price
// below $0.001 per 1M). Each is one line,
// "FILE:LINE: models.MODEL.KEY: what and the likely fix", for stderr.
// A price that is almost surely in the wrong unit is an error instead.
func (t *Table) MergeFileWarn(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pricing file: %w", err)
	}
	return t.MergeWarn(path, data)
}

// Merge is MergeFile over bytes already read; name labels errors.
func (t *Table) Merge(name string, data []byte) error {
	_, err := t.MergeWarn(name, data)
	return err
}

// MergeWarn is MergeFileWarn over bytes already read; name labels errors
// and warnings.
func (t *Table) MergeWarn(name string, data []byte) ([]string, error) {
	return t.MergeWarnAt(name, data, time.Now())
}

// MergeWarnAt is MergeWarn for a source whose prices change over time
// (genai-prices' dated prices): now picks the prices in force.
func (t *Table) MergeWarnAt(name string, data []byte, now time.Time) ([]string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: not valid YAML or JSON: %v", name, trimYAMLErr(err))
	}
	var (
		raw      *rawFile
		err      error
		warns    []string
		lite     bool
		batchSet map[string]bool // the providers with a Batch API, for a source that lists no batch prices
	)
	if len(root.Content) > 0 && looksGenAIPrices(root.Content[0]) {
		raw, err = parseGenAIPrices(name, root.Content[0], now, &warns)
		if err != nil {
			return nil, err
		}
		return t.mergeRaw(name, raw, warns, genAIBatchProviders, true, true)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: expected a map at the top level (costctl's `models:` format, LiteLLM's JSON) or genai-prices' list of providers", name)
	}
	doc := root.Content[0]
	if mapGet(doc, "models") != nil {
		raw, err = parseOwnNode(name, doc, &warns)
	} else if looksLiteLLM(doc) {
		raw, err = parseLiteLLM(name, doc, &warns)
		lite, batchSet = true, liteLLMBatchProviders
	} else {
		return nil, fmt.Errorf("%s: unrecognised price file: expected a top-level `models:` map (costctl format), LiteLLM's model_prices_and_context_window.json or genai-prices' data.json", name)
	}
	if err != nil {
		return nil, err
	}
	return t.mergeRaw(name, raw, warns, batchSet, lite, false)
}

// mergeRaw merges a parsed source into t. derived: the source lists batch
// prices only where they differ (LiteLLM, genai-prices), so a model of a
// provider outside batchSet that lists none has no Batch API. resolve: a
// first party's name the table does not key (claude-sonnet-4-5 for
// claude-sonnet-4.5) merges into the model Lookup resolves it to.
func (t *Table) mergeRaw(name string, raw *rawFile, warns []string, batchSet map[string]bool, derived, resolve bool) ([]string, error) {
	t.all()
	for _, rm := range raw.models {
		base := t.index[strings.ToLower(rm.name)]
		if base == nil && resolve && rm.provider != nil && !strings.Contains(rm.name, "/") {
			// A first party's spelling of a model the table knows
			// (claude-sonnet-4-5, a dated or -latest name) merges into it.
			if b := t.resolve(rm.name, rm.name); b != nil && b.Provider == *rm.provider {
				base = b
			}
		}
		if base != nil {
			rm.name = base.Name
		}
		m, err := rm.build(base, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		listsBatch := rm.rates.bin != nil || rm.rates.bout != nil
		switch {
		case derived && !listsBatch && !batchSet[m.Provider]:
			m.NoBatch = true
		case listsBatch:
			m.NoBatch = false
		}
		if m.NoBatch {
			// Again after any merge: build derives 50% batch prices from
			// new list prices, and a new long-context tier has its own.
			noBatch(&m.Rates)
			for i := range m.LongContext {
				noBatch(&m.LongContext[i].Rates)
			}
		}
		t.add(m)
	}
	// The built-in date stays the table's date: most prices still come from
	// it. The override file (and its own date, if it gives one) is named.
	label := name
	if raw.asOf != "" {
		label += " as of " + raw.asOf
	}
	t.Overrides = append(t.Overrides, label)
	return warns, nil
}

// noBatch marks r as having no Batch API: CostAtExact leaves a batch call
// unpriced, and Cost (which cannot fail) bills one at list prices rather
// than at an invented discount.
func noBatch(r *Rates) {
	r.NoBatch = true
	r.BatchInput, r.BatchOutput = r.Input, r.Output
	r.HasBatchInput, r.HasBatchOutput = false, false
}

func trimYAMLErr(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

func mapGet(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// parseOwnFormat parses a file in costctl's format; its warnings are
// dropped (the built-in table is tested to have none).
func parseOwnFormat(name string, data []byte) (*rawFile, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %v", name, trimYAMLErr(err))
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: empty", name)
	}
	return parseOwnNode(name, root.Content[0], nil)
}

var rateKeys = map[string]func(*rawRates) **Rate{
	"input_per_1m":          func(r *rawRates) **Rate { return &r.input },
	"cached_input_per_1m":   func(r *rawRates) **Rate { return &r.cached },
	"cache_write_5m_per_1m": func(r *rawRates) **Rate { return &r.w5 },
	"cache_write_1h_per_1m": func(r *rawRates) **Rate { return &r.w1 },
	"output_per_1m":         func(r *rawRates) **Rate { return &r.output },
	"batch_input_per_1m":    func(r *rawRates) **Rate { return &r.bin },
	"batch_output_per_1m":   func(r *rawRates) **Rate { return &r.bout },

	"flex_input_per_1m":            func(r *rawRates) **Rate { return &r.flex.input },
	"flex_cached_input_per_1m":     func(r *rawRates) **Rate { return &r.flex.cached },
	"flex_output_per_1m":           func(r *rawRates) **Rate { return &r.flex.output },
	"priority_input_per_1m":        func(r *rawRates) **Rate { return &r.priority.input },
	"priority_cached_input_per_1m": func(r *rawRates) **Rate { return &r.priority.cached },
	"priority_output_per_1m":       func(r *rawRates) **Rate { return &r.priority.output },
}

var modelKeys = []string{"provider", "encoding", "exact_tokenizer", "context_window", "max_output", "deprecated", "long_context", "aliases", "source"}

func knownModelKeys() string {
	ks := append([]string(nil), modelKeys...)
	for k := range rateKeys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// parseOwnNode parses costctl's format; warnings, if not nil, collects
// one line per suspicious price.
func parseOwnNode(name string, doc *yaml.Node, warns *[]string) (*rawFile, error) {
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: expected a map at the top level", name)
	}
	out := &rawFile{}
	fail := func(n *yaml.Node, key, msg string) error {
		return fmt.Errorf("%s:%d: %s: %s", name, n.Line, key, msg)
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch k.Value {
		case "as_of":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return nil, fail(v, "as_of", "expected a date such as 2025-12-01")
			}
			out.asOf = v.Value
		case "models":
			if v.Kind != yaml.MappingNode {
				return nil, fail(v, "models", "expected a map of model name to prices")
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				mk, mv := v.Content[j], v.Content[j+1]
				rm, err := parseOwnModel(name, mk.Value, mv, warns)
				if err != nil {
					return nil, err
				}
				out.models = append(out.models, rm)
			}
		default:
			return nil, fail(k, k.Value, "unknown top-level key (expected as_of, models)")
		}
	}
	return out, nil
}

func parseOwnModel(file, model string, n *yaml.Node, warns *[]string) (*rawModel, error) {
	path := "models." + model
	fail := func(at *yaml.Node, key, msg string) error {
		return fmt.Errorf("%s:%d: %s.%s: %s", file, at.Line, path, key, msg)
	}
	warn := func(at *yaml.Node, key, msg string) {
		if warns != nil && msg != "" {
			*warns = append(*warns, fmt.Sprintf("%s:%d: %s.%s: %s", file, at.Line, path, key, msg))
		}
	}
	if strings.TrimSpace(model) == "" {
		return nil, fmt.Errorf("%s:%d: models: empty model name", file, n.Line)
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: %s: expected a map of prices", file, n.Line, path)
	}
	rm := &rawModel{name: strings.ToLower(strings.TrimSpace(model))}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if f, ok := rateKeys[k.Value]; ok {
			r, w, err := scalarRate(v, k.Value)
			if err != nil {
				return nil, fail(v, k.Value, err.Error())
			}
			warn(v, k.Value, w)
			*f(&rm.rates) = &r
			continue
		}
		switch k.Value {
		case "provider", "encoding", "source":
			if v.Kind != yaml.ScalarNode {
				return nil, fail(v, k.Value, "expected a string")
			}
			s := v.Value
			switch k.Value {
			case "provider":
				rm.provider = &s
			case "encoding":
				if !validEncoding(s) {
					return nil, fail(v, k.Value, fmt.Sprintf("unknown encoding %q (expected cl100k_base, o200k_base, p50k_base or r50k_base)", s))
				}
				rm.encoding = &s
			case "source":
				rm.source = &s
			}
		case "exact_tokenizer":
			b, err := strconv.ParseBool(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode {
				return nil, fail(v, k.Value, "expected true or false")
			}
			rm.exactTokenizer = &b
		case "context_window", "max_output":
			c, err := strconv.ParseInt(v.Value, 10, 64)
			if err != nil || c < 0 || v.Kind != yaml.ScalarNode {
				return nil, fail(v, k.Value, "expected a whole number of tokens")
			}
			if k.Value == "max_output" {
				rm.maxOutput = &c
			} else {
				rm.contextWindow = &c
			}
		case "deprecated":
			if v.Kind != yaml.ScalarNode || !validDate(v.Value) {
				return nil, fail(v, k.Value, "expected the deprecation date as YYYY-MM-DD, such as 2026-02-27")
			}
			d := v.Value
			rm.deprecated = &d
		case "aliases":
			if v.Kind != yaml.SequenceNode {
				return nil, fail(v, k.Value, "expected a list of names")
			}
			rm.aliases = []string{}
			for _, a := range v.Content {
				rm.aliases = append(rm.aliases, strings.ToLower(a.Value))
			}
		case "long_context":
			// One tier (a map) or several (a list of maps, lowest
			// threshold first).
			tiers := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				tiers = v.Content
			}
			rm.long = []*rawLong{}
			for ti, tn := range tiers {
				at := "long_context"
				if v.Kind == yaml.SequenceNode {
					at += "[" + strconv.Itoa(ti) + "]"
				}
				lc, err := parseLong(tn, func(n *yaml.Node, key, msg string) error {
					return fail(n, strings.TrimSuffix(at+"."+key, "."), msg)
				}, func(n *yaml.Node, key, msg string) {
					warn(n, at+"."+key, msg)
				})
				if err != nil {
					return nil, err
				}
				if ti > 0 && lc.above <= rm.long[ti-1].above {
					return nil, fail(tn, at+".above_tokens", fmt.Sprintf("%d is not above the previous tier's %d (list tiers from the lowest threshold up)", lc.above, rm.long[ti-1].above))
				}
				rm.long = append(rm.long, lc)
			}
		default:
			return nil, fail(k, k.Value, "unknown key (known: "+knownModelKeys()+")")
		}
	}
	return rm, nil
}

func parseLong(n *yaml.Node, fail func(*yaml.Node, string, string) error, warn func(*yaml.Node, string, string)) (*rawLong, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fail(n, "", "expected a map with above_tokens and prices")
	}
	lc := &rawLong{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if f, ok := rateKeys[k.Value]; ok {
			r, w, err := scalarRate(v, k.Value)
			if err != nil {
				return nil, fail(v, k.Value, err.Error())
			}
			warn(v, k.Value, w)
			*f(&lc.rates) = &r
			continue
		}
		if k.Value == "above_tokens" {
			a, err := strconv.ParseInt(v.Value, 10, 64)
			if err != nil || a <= 0 {
				return nil, fail(v, k.Value, "expected a positive whole number of tokens")
			}
			lc.above = a
			continue
		}
		return nil, fail(k, k.Value, "unknown key")
	}
	if lc.above == 0 {
		return nil, fail(n, "above_tokens", "missing")
	}
	return lc, nil
}

// scalarRate parses a price in USD per 1M tokens under key. A price almost
// surely in another unit is an error naming the likely fix; one that may be
// (a per-1K-looking list price) comes back as a warning.
func scalarRate(v *yaml.Node, key string) (Rate, string, error) {
	if v.Kind != yaml.ScalarNode || v.Value == "" {
		return 0, "", errors.New("expected a price in USD per 1M tokens, such as \"2.50\"")
	}
	warn := ""
	if p, ok := new(big.Rat).SetString(strings.TrimPrefix(strings.TrimSpace(v.Value), "$")); ok && p.Sign() > 0 {
		switch {
		case p.Cmp(maxPlausiblePer1M) > 0:
			return 0, "", fmt.Errorf("%q is %s per 1M tokens, above the $1,000 no real price reaches: prices here are USD per 1M tokens%s",
				v.Value, usd(p), didYouMean(p, `"%s"`, false, []guess{{big.NewRat(1, 1_000_000), "if it is in millionths of a dollar"}, {big.NewRat(1, 1000), "if it is per 1B tokens"}}))
		case p.Cmp(minPlausiblePer1M) < 0:
			return 0, "", fmt.Errorf("%q is below $0.001 per 1M tokens, so it looks like a price per token: prices here are USD per 1M tokens%s",
				v.Value, didYouMean(p, `"%s"`, false, []guess{{big.NewRat(1_000_000, 1), "if it is per token"}, {big.NewRat(1000, 1), "if it is per 1K tokens"}}))
		case listPriceKeys[key] && p.Cmp(lowListPer1M) < 0:
			warn = fmt.Sprintf("%q per 1M tokens is unusually low for a list price: if it is a price per 1K tokens, write %q (prices here are USD per 1M tokens)",
				v.Value, per1MString(new(big.Rat).Mul(p, big.NewRat(1000, 1))))
		}
	}
	r, err := ParseRatePer1M(v.Value)
	return r, warn, err
}

// Plausible prices in USD per 1M tokens. The dearest list price is o1-pro's
// $600 output and the cheapest non-zero ones are around $0.0025 (cached
// input on a flex tier), so a price above $1,000 or below $0.001 is almost
// surely in another unit (per token, per 1K tokens); a list input or output
// price below $0.01 may be one (a per-1K price such as 0.0025 for $2.50).
var (
	maxPlausiblePer1M = big.NewRat(1000, 1)
	minPlausiblePer1M = big.NewRat(1, 1000)
	lowListPer1M      = big.NewRat(1, 100)
	typicalLowPer1M   = big.NewRat(1, 100) // a guessed fix must land in [$0.01, $1,000]
)

// listPriceKeys are the list prices the per-1K warning looks at; cached,
// batch and flex prices are legitimately lower.
var listPriceKeys = map[string]bool{"input_per_1m": true, "output_per_1m": true}

// guess is one likely misreading: the price times factor, when that lands
// in the typical range, is what the user probably meant.
type guess struct {
	factor *big.Rat
	why    string
}

// didYouMean suggests the fixes among gs that land in the typical range
// ("; did you mean "2.50"?"), labelled with why when there are several.
// format writes one suggestion; perToken writes it as LiteLLM's per-token
// number followed by its per-1M price.
func didYouMean(p *big.Rat, format string, perToken bool, gs []guess) string {
	var out, why []string
	for _, g := range gs {
		c := new(big.Rat).Mul(p, g.factor)
		per1M := c
		if perToken {
			per1M = new(big.Rat).Mul(c, big.NewRat(1_000_000, 1))
		}
		if per1M.Cmp(typicalLowPer1M) < 0 || per1M.Cmp(maxPlausiblePer1M) > 0 {
			continue
		}
		s := fmt.Sprintf(format, per1MString(per1M))
		if perToken {
			f, _ := c.Float64()
			s = fmt.Sprintf(format, strconv.FormatFloat(f, 'g', -1, 64)) + " ($" + per1MString(per1M) + " per 1M)"
		}
		out, why = append(out, s), append(why, g.why)
	}
	switch len(out) {
	case 0:
		return ""
	case 1:
		return "; did you mean " + out[0] + "?"
	}
	for i := range out {
		out[i] += " (" + why[i] + ")"
	}
	return "; did you mean " + strings.Join(out, " or ") + "?"
}

// per1MString writes a USD-per-1M price as the table does ("2.50", "0.0375"),
// rounded to $0.000001.
func per1MString(r *big.Rat) string {
	m, err := MoneyFromRat(new(big.Rat).Quo(r, big.NewRat(1000, 1))) // micro-dollars per 1M = Rate
	if err != nil {
		return r.FloatString(6)
	}
	return Rate(m).Per1M()
}

// usd writes an amount of dollars with thousands separators: "$2,500,000",
// "$1,234.5".
func usd(r *big.Rat) string {
	s := strings.TrimRight(strings.TrimRight(r.FloatString(6), "0"), ".")
	whole, frac, _ := strings.Cut(s, ".")
	if frac != "" {
		frac = "." + frac
	}
	return "$" + groupThousands(whole) + frac
}

// validDate reports whether s is a calendar date written YYYY-MM-DD.
func validDate(s string) bool {
	_, err := time.Parse("2006-01-02", s)
	return err == nil
}

func validEncoding(s string) bool {
	switch s {
	case "cl100k_base", "o200k_base", "p50k_base", "r50k_base":
		return true
	}
	return false
}

// --------------------------------------------------------------- LiteLLM

func looksLiteLLM(doc *yaml.Node) bool {
	for i := 0; i+1 < len(doc.Content); i += 2 {
		v := doc.Content[i+1]
		if mapGet(v, "input_cost_per_token") != nil || mapGet(v, "litellm_provider") != nil {
			return true
		}
	}
	return false
}

var liteLLMRates = map[string]func(*rawRates) **Rate{
	"input_cost_per_token":                      func(r *rawRates) **Rate { return &r.input },
	"output_cost_per_token":                     func(r *rawRates) **Rate { return &r.output },
	"cache_read_input_token_cost":               func(r *rawRates) **Rate { return &r.cached },
	"cache_creation_input_token_cost":           func(r *rawRates) **Rate { return &r.w5 },
	"cache_creation_input_token_cost_above_1hr": func(r *rawRates) **Rate { return &r.w1 },
	"input_cost_per_token_batches":              func(r *rawRates) **Rate { return &r.bin },
	"output_cost_per_token_batches":             func(r *rawRates) **Rate { return &r.bout },
	"input_cost_per_token_flex":                 func(r *rawRates) **Rate { return &r.flex.input },
	"cache_read_input_token_cost_flex":          func(r *rawRates) **Rate { return &r.flex.cached },
	"output_cost_per_token_flex":                func(r *rawRates) **Rate { return &r.flex.output },
	"input_cost_per_token_priority":             func(r *rawRates) **Rate { return &r.priority.input },
	"cache_read_input_token_cost_priority":      func(r *rawRates) **Rate { return &r.priority.cached },
	"output_cost_per_token_priority":            func(r *rawRates) **Rate { return &r.priority.output },
}

// liteLLMLongKey is a long-context price: LiteLLM's
// <price>_above_<N>k_tokens[_flex|_priority], for any N (200k for Claude
// and Gemini, 272k for GPT-5.4, 128k for older Gemini), including the cache
// writes (5-minute and, as _above_1hr_above_<N>k_tokens, 1-hour).
var liteLLMLongKey = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr)_above_([0-9]+)(k?)_tokens(?:_(flex|priority))?$`)
})

// liteLLMLongRate maps a long-context key's price and tier to its field;
// nil for a pair costctl has no field for (a flex cache write).
func liteLLMLongRate(price, tier string) func(*rawRates) **Rate {
	var t func(*rawRates) *rawTier
	switch tier {
	case "flex":
		t = func(r *rawRates) *rawTier { return &r.flex }
	case "priority":
		t = func(r *rawRates) *rawTier { return &r.priority }
	}
	switch price {
	case "input_cost_per_token":
		if t != nil {
			return func(r *rawRates) **Rate { return &t(r).input }
		}
		return func(r *rawRates) **Rate { return &r.input }
	case "output_cost_per_token":
		if t != nil {
			return func(r *rawRates) **Rate { return &t(r).output }
		}
		return func(r *rawRates) **Rate { return &r.output }
	case "cache_read_input_token_cost":
		if t != nil {
			return func(r *rawRates) **Rate { return &t(r).cached }
		}
		return func(r *rawRates) **Rate { return &r.cached }
	case "cache_creation_input_token_cost":
		if t == nil {
			return func(r *rawRates) **Rate { return &r.w5 }
		}
	case "cache_creation_input_token_cost_above_1hr":
		if t == nil {
			return func(r *rawRates) **Rate { return &r.w1 }
		}
	}
	return nil
}

// liteLLMBatchProviders are LiteLLM's names for the providers with a Batch
// API billed at 50% of list (OpenAI, Azure OpenAI, Anthropic, Gemini and
// Vertex AI, Bedrock), for which a batch price LiteLLM leaves out is
// derived. A model from any other provider (together_ai, mistral, groq,
// …) gets a batch price only if the file lists one (*_batches); without
// one, a batch call to it is unpriced rather than billed at an invented
// discount.
var liteLLMBatchProviders = map[string]bool{
	"openai": true, "text-completion-openai": true, "azure": true, "anthropic": true,
	"gemini": true, "vertex_ai": true, "vertex_ai-language-models": true, "vertex_ai-anthropic_models": true,
	"bedrock": true, "bedrock_converse": true,
}

// parseLiteLLM reads LiteLLM's per-token JSON. Entries without a token
// price (images, audio) and LiteLLM's "sample_spec" are skipped. LiteLLM
// writes floats, so each price is rounded to the nearest $0.000001 per 1M
// tokens; one that does not survive that (to within 1%) is an error.
//
// Long-context tiers: every `*_above_<N>k_tokens` threshold becomes a tier
// (Model.LongContext, lowest first); a prompt is billed at the highest
// tier it exceeds. A price the tier does not list is the base price for
// input and output (as LiteLLM bills it); a cache write it does not list
// leaves such a write unpriced.
func parseLiteLLM(name string, doc *yaml.Node, warns *[]string) (*rawFile, error) {
	out := &rawFile{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if k.Value == "sample_spec" || v.Kind != yaml.MappingNode || mapGet(v, "input_cost_per_token") == nil || mapGet(v, "output_cost_per_token") == nil {
			continue
		}
		rm := &rawModel{name: strings.ToLower(k.Value)}
		long := map[int64]*rawRates{}
		for j := 0; j+1 < len(v.Content); j += 2 {
			fk, fv := v.Content[j], v.Content[j+1]
			f, ok := liteLLMRates[fk.Value]
			var above int64
			if !ok && strings.Contains(fk.Value, "_above_") {
				if sm := liteLLMLongKey().FindStringSubmatch(fk.Value); sm != nil {
					n, err := strconv.ParseInt(sm[2], 10, 64)
					if sm[3] == "k" {
						n *= 1000
					}
					if f = liteLLMLongRate(sm[1], sm[4]); err == nil && n > 0 && f != nil {
						ok, above = true, n
					}
				}
			}
			if !ok {
				switch fk.Value {
				case "litellm_provider":
					p := fv.Value
					rm.provider = &p
				case "max_input_tokens":
					if c, err := strconv.ParseInt(fv.Value, 10, 64); err == nil && c >= 0 {
						rm.contextWindow = &c
					}
				case "max_output_tokens":
					if c, err := strconv.ParseInt(fv.Value, 10, 64); err == nil && c >= 0 {
						rm.maxOutput = &c
					}
				case "deprecation_date":
					if d := fv.Value; validDate(d) {
						rm.deprecated = &d
					}
				}
				continue
			}
			r, w, err := liteLLMRate(fv.Value)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s.%s: %v", name, fv.Line, k.Value, fk.Value, err)
			}
			if w != "" && warns != nil {
				*warns = append(*warns, fmt.Sprintf("%s:%d: %s.%s: %s", name, fv.Line, k.Value, fk.Value, w))
			}
			if above == 0 {
				*f(&rm.rates) = &r
				continue
			}
			if long[above] == nil {
				long[above] = &rawRates{}
			}
			*f(long[above]) = &r
		}
		// LiteLLM lists some tiers in part (a flex input price alone); a
		// tier without both prices is left out rather than failing the file.
		dropPartialTiers(&rm.rates)
		if len(long) > 0 {
			aboves := make([]int64, 0, len(long))
			for a := range long {
				aboves = append(aboves, a)
			}
			sort.Slice(aboves, func(i, j int) bool { return aboves[i] < aboves[j] })
			rm.long = make([]*rawLong, 0, len(aboves))
			for _, a := range aboves {
				// A price a tier leaves out is the base one for input and
				// output, as LiteLLM bills it.
				lr := long[a]
				if lr.input == nil {
					lr.input = rm.rates.input
				}
				if lr.output == nil {
					lr.output = rm.rates.output
				}
				dropPartialTiers(lr)
				rm.long = append(rm.long, &rawLong{above: a, rates: *lr})
			}
		}
		src := "LiteLLM " + name
		rm.source = &src
		out.models = append(out.models, rm)
	}
	if len(out.models) == 0 {
		return nil, fmt.Errorf("%s: no model in this LiteLLM file has input_cost_per_token and output_cost_per_token", name)
	}
	return out, nil
}

func dropPartialTiers(r *rawRates) {
	for _, t := range []*rawTier{&r.flex, &r.priority} {
		if t.input == nil || t.output == nil {
			*t = rawTier{}
		}
	}
}

// liteLLMRate parses a LiteLLM price in USD per token, rounded to the
// nearest pico-dollar ($0.000001 per 1M tokens). A price above $1,000 per
// 1M tokens is almost surely not per token (an error with the likely fix);
// one that rounds to zero or moves by more than 1% is too small to
// represent (an error, never a silent $0); one below $0.001 per 1M is
// representable but suspicious (a warning).
func liteLLMRate(s string) (Rate, string, error) {
	p, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return 0, "", fmt.Errorf("invalid price %q: not a number", s)
	}
	if p.Sign() < 0 {
		return 0, "", fmt.Errorf("invalid price %q: negative", s)
	}
	if p.Sign() == 0 {
		return 0, "", nil
	}
	per1M := new(big.Rat).Mul(p, big.NewRat(1_000_000, 1))
	if per1M.Cmp(maxPlausiblePer1M) > 0 {
		return 0, "", fmt.Errorf("%s per token is %s per 1M tokens, above the $1,000 no real price reaches: LiteLLM prices are USD per token%s",
			s, usd(per1M), didYouMean(p, "%s", true, []guess{{big.NewRat(1, 1_000_000), "if it is per 1M tokens"}, {big.NewRat(1, 1000), "if it is per 1K tokens"}}))
	}
	pico := new(big.Rat).Mul(per1M, big.NewRat(picoPerPer1M, 1))
	m, err := MoneyFromRat(new(big.Rat).Quo(pico, big.NewRat(int64(NanoPerDollar), 1))) // rounds half away from zero
	if err != nil {
		return 0, "", fmt.Errorf("invalid price %q: %v", s, err)
	}
	diff := new(big.Rat).Sub(pico, new(big.Rat).SetInt64(int64(m)))
	if m == 0 || new(big.Rat).Abs(diff).Cmp(new(big.Rat).Quo(pico, big.NewRat(100, 1))) > 0 {
		return 0, "", fmt.Errorf("%s per token is too small to represent: costctl keeps prices to $0.000001 per 1M tokens (1e-12 per token) and it would round to $%s per 1M; check the unit, or write 0 if the model is free",
			s, Rate(m).Per1M())
	}
	warn := ""
	if per1M.Cmp(minPlausiblePer1M) < 0 {
		warn = fmt.Sprintf("%s per token is %s per 1M tokens, below the $0.001 of the cheapest real prices: check the unit (LiteLLM prices are USD per token: $2.50 per 1M is 2.5e-06)",
			s, "$"+Rate(m).Per1M())
	}
	return Rate(m), warn, nil
}
