package pricing

import (
	"errors"
	"fmt"
	"math/big"
	"os"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MergeFile merges a price file into t. The format is detected:
// costctl's own (a top-level `models:` map of USD-per-1M prices, YAML or
// JSON) or LiteLLM's model_prices_and_context_window.json (per-token
// `input_cost_per_token` etc.). A model that already exists (by name or
// alias) keeps the fields the file does not set.
func (t *Table) MergeFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pricing file: %w", err)
	}
	return t.Merge(path, data)
}

// Merge is MergeFile over bytes already read; name labels errors.
func (t *Table) Merge(name string, data []byte) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("%s: not valid YAML or JSON: %v", name, trimYAMLErr(err))
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("%s: expected a map at the top level (costctl's `models:` format or LiteLLM's JSON)", name)
	}
	doc := root.Content[0]
	var raw *rawFile
	var err error
	if mapGet(doc, "models") != nil {
		raw, err = parseOwnNode(name, doc)
	} else if looksLiteLLM(doc) {
		raw, err = parseLiteLLM(name, doc)
	} else {
		return fmt.Errorf("%s: unrecognised price file: expected a top-level `models:` map (costctl format) or LiteLLM's model_prices_and_context_window.json", name)
	}
	if err != nil {
		return err
	}
	for _, rm := range raw.models {
		base := t.index[strings.ToLower(rm.name)]
		if base != nil {
			rm.name = base.Name
		}
		m, err := rm.build(base, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
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
	return nil
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

func parseOwnFormat(name string, data []byte) (*rawFile, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %v", name, trimYAMLErr(err))
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: empty", name)
	}
	return parseOwnNode(name, root.Content[0])
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

var modelKeys = []string{"provider", "encoding", "exact_tokenizer", "context_window", "long_context", "aliases", "source"}

func knownModelKeys() string {
	ks := append([]string(nil), modelKeys...)
	for k := range rateKeys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func parseOwnNode(name string, doc *yaml.Node) (*rawFile, error) {
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
				rm, err := parseOwnModel(name, mk.Value, mv)
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

func parseOwnModel(file, model string, n *yaml.Node) (*rawModel, error) {
	path := "models." + model
	fail := func(at *yaml.Node, key, msg string) error {
		return fmt.Errorf("%s:%d: %s.%s: %s", file, at.Line, path, key, msg)
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
			r, err := scalarRate(v)
			if err != nil {
				return nil, fail(v, k.Value, err.Error())
			}
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
		case "context_window":
			c, err := strconv.ParseInt(v.Value, 10, 64)
			if err != nil || c < 0 {
				return nil, fail(v, k.Value, "expected a whole number of tokens")
			}
			rm.contextWindow = &c
		case "aliases":
			if v.Kind != yaml.SequenceNode {
				return nil, fail(v, k.Value, "expected a list of names")
			}
			rm.aliases = []string{}
			for _, a := range v.Content {
				rm.aliases = append(rm.aliases, strings.ToLower(a.Value))
			}
		case "long_context":
			lc, err := parseLong(v, func(at *yaml.Node, key, msg string) error {
				return fail(at, "long_context."+key, msg)
			})
			if err != nil {
				return nil, err
			}
			rm.long = lc
		default:
			return nil, fail(k, k.Value, "unknown key (known: "+knownModelKeys()+")")
		}
	}
	return rm, nil
}

func parseLong(n *yaml.Node, fail func(*yaml.Node, string, string) error) (*rawLong, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fail(n, "", "expected a map with above_tokens and prices")
	}
	lc := &rawLong{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if f, ok := rateKeys[k.Value]; ok {
			r, err := scalarRate(v)
			if err != nil {
				return nil, fail(v, k.Value, err.Error())
			}
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

func scalarRate(v *yaml.Node) (Rate, error) {
	if v.Kind != yaml.ScalarNode || v.Value == "" {
		return 0, errors.New("expected a price in USD per 1M tokens, such as \"2.50\"")
	}
	return ParseRatePer1M(v.Value)
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

var liteLLMLong = map[string]func(*rawRates) **Rate{
	"input_cost_per_token_above_200k_tokens":        func(r *rawRates) **Rate { return &r.input },
	"output_cost_per_token_above_200k_tokens":       func(r *rawRates) **Rate { return &r.output },
	"cache_read_input_token_cost_above_200k_tokens": func(r *rawRates) **Rate { return &r.cached },
}

// parseLiteLLM reads LiteLLM's per-token JSON. Entries without a token
// price (images, audio, "sample_spec") are skipped. LiteLLM writes floats,
// so each price is rounded to the nearest $0.000001 per 1M tokens.
func parseLiteLLM(name string, doc *yaml.Node) (*rawFile, error) {
	out := &rawFile{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if v.Kind != yaml.MappingNode || mapGet(v, "input_cost_per_token") == nil || mapGet(v, "output_cost_per_token") == nil {
			continue
		}
		rm := &rawModel{name: strings.ToLower(k.Value)}
		var long rawRates
		hasLong := false
		for j := 0; j+1 < len(v.Content); j += 2 {
			fk, fv := v.Content[j], v.Content[j+1]
			f, ok := liteLLMRates[fk.Value]
			lf, lok := liteLLMLong[fk.Value]
			if !ok && !lok {
				switch fk.Value {
				case "litellm_provider":
					p := fv.Value
					rm.provider = &p
				case "max_input_tokens":
					if c, err := strconv.ParseInt(fv.Value, 10, 64); err == nil {
						rm.contextWindow = &c
					}
				}
				continue
			}
			r, err := liteLLMRate(fv.Value)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s.%s: %v", name, fv.Line, k.Value, fk.Value, err)
			}
			if ok {
				*f(&rm.rates) = &r
			} else {
				*lf(&long) = &r
				hasLong = true
			}
		}
		// LiteLLM lists some tiers in part (a flex input price alone); a
		// tier without both prices is left out rather than failing the file.
		for _, t := range []*rawTier{&rm.rates.flex, &rm.rates.priority} {
			if t.input == nil || t.output == nil {
				*t = rawTier{}
			}
		}
		if hasLong {
			if long.input == nil {
				long.input = rm.rates.input
			}
			if long.output == nil {
				long.output = rm.rates.output
			}
			rm.long = &rawLong{above: 200_000, rates: long}
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

func liteLLMRate(s string) (Rate, error) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return 0, fmt.Errorf("invalid price %q: not a number", s)
	}
	if r.Sign() < 0 {
		return 0, fmt.Errorf("invalid price %q: negative", s)
	}
	r.Mul(r, big.NewRat(1_000_000_000_000, 1))
	m, err := MoneyFromRat(new(big.Rat).Quo(r, big.NewRat(int64(NanoPerDollar), 1)))
	if err != nil {
		return 0, fmt.Errorf("invalid price %q: %v", s, err)
	}
	return Rate(m), nil
}
