package estimator

import (
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/costctl/costctl/pricing"
)

// Lever keys, as --sweep and scenario files spell them.
const (
	KeyModel       = "model"
	KeySample      = "sample"
	KeyCascade     = "cascade"
	KeyEscalate    = "escalate"
	KeyCacheHit    = "cache-hit"
	KeyPromptCache = "prompt-cache"
	KeyBatch       = "batch"
	KeyInfra       = "infra"
)

// LeverKeys returns the lever keys in waterfall order.
func LeverKeys() []string { return append([]string(nil), leverKeys...) }

// None is the value that unsets a lever in a sweep or scenario.
const None = "none"

// SetLever sets one lever (or the model) from its text, as a flag, --sweep
// value or scenario value gives it (see LeverList for each lever's form).
// "none" unsets the lever.
func SetLever(l *Levers, key, value string) error {
	if key == KeyModel {
		v := strings.TrimSpace(value)
		switch {
		case strings.EqualFold(v, None):
			l.Model = ""
		case v == "":
			return errors.New("empty model name")
		default:
			l.Model = v
		}
		return nil
	}
	lv, ok := LookupLever(key)
	if !ok {
		return unknownKey(key)
	}
	return lv.Set(l, value)
}

func unknownKey(key string) error {
	return fmt.Errorf("unknown key %q (want one of %s)", key, strings.Join(leverKeys, ", "))
}

// LeverParams returns the levers that are set as key → text, for output.
// The model is always present (base is the run's --model).
func LeverParams(l Levers, base string) map[string]string {
	p := map[string]string{KeyModel: base}
	if l.Model != "" {
		p[KeyModel] = l.Model
	}
	for _, lv := range leverList {
		if lv.isSet(l) {
			p[lv.Key] = lv.exact(l)
		}
	}
	return p
}

// SweepAxis is one --sweep KEY=V1,V2: the key and its alternatives as text.
type SweepAxis struct {
	Key    string
	Values []string
}

// ParseSweep parses one --sweep KEY=V1,V2,… Alternatives are separated by
// ',' — except for cascade and escalate, whose specs themselves use commas
// between tiers: there alternatives are separated by ';'
// (cascade=free:0.5,gpt-4o:0.5;gpt-4o-mini:1). Each value is validated.
func ParseSweep(spec string) (SweepAxis, error) {
	i := strings.Index(spec, "=")
	if i <= 0 {
		return SweepAxis{}, fmt.Errorf("invalid --sweep %q (want KEY=V1,V2,… with KEY one of %s)", spec, strings.Join(leverKeys, ", "))
	}
	key := strings.ToLower(strings.TrimSpace(spec[:i]))
	if !isLeverKey(key) {
		return SweepAxis{}, fmt.Errorf("--sweep %q: %v", spec, unknownKey(key))
	}
	sep := ","
	if lv, ok := LookupLever(key); ok {
		sep = lv.SweepSeparator()
	}
	ax := SweepAxis{Key: key}
	seen := map[string]bool{}
	for _, v := range strings.Split(spec[i+1:], sep) {
		v = strings.TrimSpace(v)
		if v == "" {
			return SweepAxis{}, fmt.Errorf("--sweep %s: empty value in %q", key, spec[i+1:])
		}
		var l Levers
		if err := SetLever(&l, key, v); err != nil {
			return SweepAxis{}, fmt.Errorf("--sweep %s=%s: %v", key, v, err)
		}
		if seen[v] {
			return SweepAxis{}, fmt.Errorf("--sweep %s: value %q given twice", key, v)
		}
		seen[v] = true
		ax.Values = append(ax.Values, v)
	}
	return ax, nil
}

func isLeverKey(k string) bool {
	for _, x := range leverKeys {
		if x == k {
			return true
		}
	}
	return false
}

// Scenario is one named set of levers.
type Scenario struct {
	Name   string
	Levers Levers
	Set    []string // keys this scenario (or sweep row) sets, in waterfall order
}

// SweepScenarios expands axes into their cartesian product over base (the
// levers given as flags): the first axis varies slowest. Each scenario is
// named "key=value key=value" in the axes' order.
func SweepScenarios(base Levers, axes []SweepAxis) ([]Scenario, error) {
	seen := map[string]bool{}
	total := 1
	for _, ax := range axes {
		if seen[ax.Key] {
			return nil, fmt.Errorf("--sweep %s given twice; list every value in one --sweep %s=V1,V2", ax.Key, ax.Key)
		}
		seen[ax.Key] = true
		total *= len(ax.Values)
		if total > MaxCombinations {
			return nil, fmt.Errorf("--sweep: more than %d combinations; sweep fewer values", MaxCombinations)
		}
	}
	out := []Scenario{{Levers: base.Clone()}}
	for _, ax := range axes {
		next := make([]Scenario, 0, len(out)*len(ax.Values))
		for _, s := range out {
			for _, v := range ax.Values {
				l := s.Levers.Clone()
				if err := SetLever(&l, ax.Key, v); err != nil {
					return nil, fmt.Errorf("--sweep %s=%s: %v", ax.Key, v, err)
				}
				name := ax.Key + "=" + v
				if s.Name != "" {
					name = s.Name + " " + name
				}
				next = append(next, Scenario{Name: name, Levers: l, Set: append(append([]string(nil), s.Set...), ax.Key)})
			}
		}
		out = next
	}
	for i := range out {
		sortKeys(out[i].Set)
	}
	return out, nil
}

func sortKeys(keys []string) {
	pos := map[string]int{}
	for i, k := range leverKeys {
		pos[k] = i
	}
	sort.SliceStable(keys, func(i, j int) bool { return pos[keys[i]] < pos[keys[j]] })
}

// Compared is one scenario's total within a comparison.
type Compared struct {
	Scenario
	Model    *pricing.Model // the scenario's baseline model
	Notes    []string       // assumptions worth telling the user
	Warnings []string       // where the traffic does not fit a model
	Total    Figures        // savings against the comparison's baseline
	Cheapest bool
}

// MaxCombinations bounds a sweep's cartesian product: a decision table of
// more rows is not one a person reads.
const MaxCombinations = 10_000

// Compare computes every scenario's monthly total and its savings against
// baseline (a monthly cost in USD; nil: the first scenario's monthly
// total). The first scenario with the lowest monthly total is marked
// cheapest. An error names the scenario.
func (e *Estimator) Compare(scenarios []Scenario, baseline *big.Rat) ([]Compared, error) {
	out := make([]Compared, 0, len(scenarios))
	cheapest := -1
	for i, s := range scenarios {
		fail := func(err error) error {
			if s.Name != "" {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			return err
		}
		if baseline == nil {
			t, err := e.Total(s.Levers, nil)
			if err != nil {
				return nil, fail(err)
			}
			baseline = t.Monthly
		}
		t, err := e.Total(s.Levers, baseline)
		if err != nil {
			return nil, fail(err)
		}
		m, err := e.table.Lookup(e.baseModelName(s.Levers))
		if err != nil {
			return nil, fail(err)
		}
		out = append(out, Compared{Scenario: s, Model: m, Notes: e.notes(s.Levers), Warnings: e.warnings(s.Levers), Total: t})
		if cheapest < 0 || t.Monthly.Cmp(out[cheapest].Total.Monthly) < 0 {
			cheapest = i
		}
	}
	if cheapest >= 0 {
		out[cheapest].Cheapest = true
	}
	return out, nil
}
