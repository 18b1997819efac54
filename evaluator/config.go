package evaluator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/costctl/costctl/pricing"
)

// DefaultMaxTokens bounds a judge's reply when the config gives no max_tokens.
const DefaultMaxTokens = 256

// DefaultReasoningMaxTokens is the default for a reasoning judge, whose
// max_completion_tokens must also hold its hidden reasoning tokens.
const DefaultReasoningMaxTokens = 4096

// DefaultThreshold is the pass mark of a judge metric without a threshold.
const DefaultThreshold = 0.5

// Config is an eval config file: named judges and an ordered list of metrics.
type Config struct {
	Judges  map[string]*Judge `yaml:"judges"`
	Metrics []*Metric         `yaml:"metrics"`

	// Order is Metrics in evaluation order (cheapest first, respecting when).
	Order []*Metric `yaml:"-"`
	file  string
}

// Judge is an LLM judge: a model behind a provider's API (default openai:
// any OpenAI-compatible endpoint).
type Judge struct {
	Name string `yaml:"-"`
	// Provider names the API the judge speaks, a key of the providers
	// registry (provider.go); empty means ProviderOpenAI.
	Provider  string `yaml:"provider"`
	Model     string `yaml:"model"`
	BaseURL   string `yaml:"base_url"`
	APIKeyEnv string `yaml:"api_key_env"`
	JSONMode  *bool  `yaml:"json_mode"`  // default true: response_format json_object
	MaxTokens int    `yaml:"max_tokens"` // default DefaultMaxTokens (DefaultReasoningMaxTokens for reasoning models)
	// Reasoning says the model is a reasoning model (sent
	// max_completion_tokens and no temperature). Default: IsReasoningModel.
	Reasoning *bool `yaml:"reasoning"`

	Price *pricing.Model `yaml:"-"`
}

// ProviderName is the judge's provider (ProviderOpenAI when not set).
func (j *Judge) ProviderName() string {
	if j.Provider == "" {
		return ProviderOpenAI
	}
	return j.Provider
}

// JSON reports whether the judge is asked for response_format json_object.
func (j *Judge) JSON() bool { return j.JSONMode == nil || *j.JSONMode }

// IsReasoning reports whether the judge is a reasoning model.
func (j *Judge) IsReasoning() bool {
	if j.Reasoning != nil {
		return *j.Reasoning
	}
	return IsReasoningModel(j.Model)
}

// IsReasoningModel reports whether an OpenAI model name is a reasoning model
// (gpt-5*, o1*, o3*, o4*, after any provider prefix such as "openai/"):
// those take max_completion_tokens, which also bounds their hidden
// reasoning tokens, and refuse any temperature but the default.
func IsReasoningModel(model string) bool {
	m := strings.ToLower(model)
	if i := strings.LastIndex(m, "/"); i >= 0 {
		m = m[i+1:]
	}
	for _, p := range []string{"gpt-5", "o1", "o3", "o4"} {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}

// Metric types.
const (
	TypeRegex   = "regex"
	TypeKeyword = "keyword"
	TypeJSON    = "json"
	TypeLength  = "length"
	TypeJudge   = "judge"
)

// Metric is one check. Free checks (regex, keyword, json, length) are
// deterministic and local; judge metrics call an LLM.
type Metric struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// Field checked by free metrics: output (default), input, expected or context.
	Field string `yaml:"field"`

	// regex
	Pattern string `yaml:"pattern"`
	Expect  string `yaml:"expect"` // present (default) | absent

	// keyword (case-insensitive unless case_sensitive)
	Any           []string `yaml:"any"`
	All           []string `yaml:"all"`
	None          []string `yaml:"none"`
	CaseSensitive bool     `yaml:"case_sensitive"`

	// length
	MaxTokens int64  `yaml:"max_tokens"`
	MinTokens int64  `yaml:"min_tokens"`
	MaxChars  int64  `yaml:"max_chars"`
	MinChars  int64  `yaml:"min_chars"`
	Encoding  string `yaml:"encoding"` // tokenizer for max_tokens; default o200k_base

	// judge
	Judge     string   `yaml:"judge"`
	Threshold *float64 `yaml:"threshold"`
	Prompt    string   `yaml:"prompt"`
	Template  string   `yaml:"template"`

	When WhenList `yaml:"when"`

	re        *regexp.Regexp
	conds     []Cond
	judge     *Judge
	index     int
	rank      pricing.Money // cost of a typical call; 0 for free checks
	deps      []*Metric
	dependent bool // has a when, or depends (transitively) on one
}

// IsJudge reports whether the metric calls an LLM.
func (m *Metric) IsJudge() bool { return m.Type == TypeJudge }

// JudgeDef is the metric's judge (nil for free checks).
func (m *Metric) JudgeDef() *Judge { return m.judge }

// ThresholdValue is the pass mark (score >= threshold passes).
func (m *Metric) ThresholdValue() float64 {
	if m.Threshold == nil {
		return DefaultThreshold
	}
	return *m.Threshold
}

// Conditional reports whether the metric runs only when a condition holds.
func (m *Metric) Conditional() bool { return len(m.conds) > 0 }

// WhenList is one condition or a list of them (all must hold).
type WhenList []string

// UnmarshalYAML accepts a string or a list of strings.
func (w *WhenList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*w = WhenList{n.Value}
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*w = l
		return nil
	}
	return fmt.Errorf("line %d: when must be a condition or a list of conditions", n.Line)
}

// Cond is a parsed when condition: <metric>.pass, <metric>.fail or
// <metric>.score <op> N.
type Cond struct {
	Text   string
	Metric string
	Kind   string // pass | fail | score
	Op     string
	Value  float64
}

var condRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\s*([A-Za-z0-9_\-]+)\.(pass|fail|score)\s*(?:(>=|<=|==|!=|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?))?\s*$`)
})

func parseCond(s string) (Cond, error) {
	m := condRe().FindStringSubmatch(s)
	if m == nil {
		return Cond{}, fmt.Errorf("cannot parse %q (want <metric>.pass, <metric>.fail or <metric>.score >= N)", s)
	}
	c := Cond{Text: strings.TrimSpace(s), Metric: m[1], Kind: m[2], Op: m[3]}
	if c.Kind == "score" {
		if c.Op == "" {
			return Cond{}, fmt.Errorf("%q: score needs a comparison, e.g. %s.score >= 0.5", s, c.Metric)
		}
		c.Value, _ = strconv.ParseFloat(m[4], 64)
	} else if c.Op != "" {
		return Cond{}, fmt.Errorf("%q: .%s takes no comparison", s, c.Kind)
	}
	return c, nil
}

// ConfigError is a problem in the config file; nothing was sent.
type ConfigError struct {
	Msg string
	Err error // the cause, if any (a file or YAML error)
}

func (e *ConfigError) Error() string { return e.Msg }

func (e *ConfigError) Unwrap() error { return e.Err }

// LoadConfig reads and validates a config file against the price table.
func LoadConfig(path string, table *pricing.Table) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &ConfigError{Msg: fmt.Sprintf("config %s: %v", path, err), Err: err}
	}
	return ParseConfig(path, data, table)
}

// ParseConfig parses and validates config data; name is used in errors.
func ParseConfig(name string, data []byte, table *pricing.Table) (*Config, error) {
	cfg := &Config{file: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{Msg: fmt.Sprintf("config %s: empty; run costctl eval init to write a starter config", name)}
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
		msg = strings.ReplaceAll(msg, "\n  ", "; ")
		msg = strings.ReplaceAll(msg, "in type evaluator.Metric", "in a metric")
		msg = strings.ReplaceAll(msg, "in type evaluator.Judge", "in a judge")
		msg = strings.ReplaceAll(msg, "in type evaluator.Config", "at the top level (want judges, metrics)")
		return nil, &ConfigError{Msg: fmt.Sprintf("config %s: %s", name, msg)}
	}
	if err := cfg.validate(table); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) errf(format string, a ...any) error {
	return &ConfigError{Msg: fmt.Sprintf("config %s: ", c.file) + fmt.Sprintf(format, a...)}
}

func (c *Config) validate(table *pricing.Table) error {
	if len(c.Metrics) == 0 {
		return c.errf("no metrics; add at least one under metrics:")
	}
	judgeNames := make([]string, 0, len(c.Judges))
	for name, j := range c.Judges {
		judgeNames = append(judgeNames, name)
		if j == nil {
			return c.errf("judge %q: empty; give it a model", name)
		}
		j.Name = name
		if _, ok := providers[j.ProviderName()]; !ok {
			return c.errf("judge %q: provider %q is not known (want one of: %s)", name, j.Provider, providerNames())
		}
		if j.Model == "" {
			return c.errf("judge %q: missing model", name)
		}
		if j.MaxTokens < 0 {
			return c.errf("judge %q: max_tokens must be positive", name)
		}
		if j.MaxTokens == 0 {
			j.MaxTokens = DefaultMaxTokens
			if j.IsReasoning() {
				j.MaxTokens = DefaultReasoningMaxTokens
			}
		}
		m, err := table.Lookup(j.Model)
		if err != nil {
			return c.errf("judge %q: model %q is not priced (%v); add its price with --pricing FILE", name, j.Model, err)
		}
		j.Price = m
	}
	sort.Strings(judgeNames)
	byName := map[string]*Metric{}
	for i, m := range c.Metrics {
		if m == nil {
			return c.errf("metric %d: empty", i+1)
		}
		m.index = i
		if m.Name == "" {
			return c.errf("metric %d: missing name", i+1)
		}
		if !validName(m.Name) {
			return c.errf("metric %q: name may only hold letters, digits, _ and -", m.Name)
		}
		if _, dup := byName[m.Name]; dup {
			return c.errf("metric %q: defined twice", m.Name)
		}
		byName[m.Name] = m
		if err := c.validateMetric(m, judgeNames); err != nil {
			return err
		}
	}
	for _, m := range c.Metrics {
		for _, w := range m.When {
			cond, err := parseCond(w)
			if err != nil {
				return c.errf("metric %q: when: %v", m.Name, err)
			}
			dep, ok := byName[cond.Metric]
			if !ok {
				return c.errf("metric %q: when %q names unknown metric %q", m.Name, w, cond.Metric)
			}
			if dep == m {
				return c.errf("metric %q: when %q names the metric itself", m.Name, w)
			}
			m.conds = append(m.conds, cond)
			m.deps = append(m.deps, dep)
		}
	}
	if cyc := findCycle(c.Metrics); cyc != nil {
		return c.errf("metric %q: when conditions make a cycle: %s", cyc[0], strings.Join(cyc, " → "))
	}
	c.order()
	return nil
}

func validName(s string) bool {
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

var placeholderRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{\{\s*([^}]*?)\s*\}\}`) })

// Template placeholders a metric's template may use.
var templateFields = []string{"id", "input", "output", "expected", "context"}

func (c *Config) validateMetric(m *Metric, judgeNames []string) error {
	bad := func(key, format string, a ...any) error {
		return c.errf("metric %q: %s: %s", m.Name, key, fmt.Sprintf(format, a...))
	}
	switch m.Field {
	case "", "output", "input", "expected", "context":
	default:
		return bad("field", "%q is not output, input, expected or context", m.Field)
	}
	notFor := func(keys map[string]bool) error {
		for k, set := range keys {
			if set {
				return bad(k, "not used by a %s metric", m.Type)
			}
		}
		return nil
	}
	switch m.Type {
	case TypeRegex:
		if m.Pattern == "" {
			return bad("pattern", "missing (a regular expression)")
		}
		re, err := regexp.Compile(m.Pattern)
		if err != nil {
			return bad("pattern", "%v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		m.re = re
		switch m.Expect {
		case "", "present", "absent":
		default:
			return bad("expect", "%q is not present or absent", m.Expect)
		}
		return notFor(map[string]bool{"judge": m.Judge != "", "prompt": m.Prompt != "", "any": m.Any != nil, "all": m.All != nil, "none": m.None != nil})
	case TypeKeyword:
		if len(m.Any)+len(m.All)+len(m.None) == 0 {
			return bad("any", "a keyword metric needs any, all or none")
		}
		for _, l := range [][]string{m.Any, m.All, m.None} {
			for _, k := range l {
				if k == "" {
					return bad("any", "empty keyword")
				}
			}
		}
		return notFor(map[string]bool{"judge": m.Judge != "", "prompt": m.Prompt != "", "pattern": m.Pattern != ""})
	case TypeJSON:
		return notFor(map[string]bool{"judge": m.Judge != "", "prompt": m.Prompt != "", "pattern": m.Pattern != ""})
	case TypeLength:
		if m.MaxTokens < 0 || m.MinTokens < 0 || m.MaxChars < 0 || m.MinChars < 0 {
			return bad("max_tokens", "limits must be positive")
		}
		if m.MaxTokens == 0 && m.MinTokens == 0 && m.MaxChars == 0 && m.MinChars == 0 {
			return bad("max_tokens", "a length metric needs max_tokens, min_tokens, max_chars or min_chars")
		}
		if m.Encoding == "" {
			m.Encoding = "o200k_base"
		}
		return notFor(map[string]bool{"judge": m.Judge != "", "prompt": m.Prompt != "", "pattern": m.Pattern != ""})
	case TypeJudge:
		if m.Judge == "" {
			return bad("judge", "missing (one of: %s)", strings.Join(judgeNames, ", "))
		}
		j, ok := c.Judges[m.Judge]
		if !ok {
			if len(judgeNames) == 0 {
				return bad("judge", "%q is not defined; add it under judges:", m.Judge)
			}
			return bad("judge", "%q is not defined (judges: %s)", m.Judge, strings.Join(judgeNames, ", "))
		}
		m.judge = j
		if strings.TrimSpace(m.Prompt) == "" {
			return bad("prompt", "missing (the rubric sent as the system message)")
		}
		if m.Threshold != nil && (*m.Threshold < 0 || *m.Threshold > 1) {
			return bad("threshold", "%v is outside 0..1", *m.Threshold)
		}
		for _, ph := range placeholderRe().FindAllStringSubmatch(m.Template, -1) {
			if !contains(templateFields, ph[1]) {
				return bad("template", "unknown placeholder {{%s}} (want one of {{%s}})", ph[1], strings.Join(templateFields, "}}, {{"))
			}
		}
		// Rank judges by a typical call: 500 prompt tokens and a full reply.
		m.rank = j.Price.Cost(pricing.Usage{InputTokens: 500, OutputTokens: int64(j.MaxTokens)}, false)
		if m.rank == 0 {
			m.rank = 1
		}
		return notFor(map[string]bool{"pattern": m.Pattern != "", "any": m.Any != nil, "max_chars": m.MaxChars != 0})
	case "":
		return bad("type", "missing (regex, keyword, json, length or judge)")
	default:
		return bad("type", "%q is not regex, keyword, json, length or judge", m.Type)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// findCycle returns the metric names of a when-cycle, first repeated last.
func findCycle(ms []*Metric) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[*Metric]int{}
	var stack []*Metric
	var cycle []string
	var visit func(m *Metric) bool
	visit = func(m *Metric) bool {
		color[m] = grey
		stack = append(stack, m)
		for _, d := range m.deps {
			if color[d] == grey {
				start := 0
				for i, s := range stack {
					if s == d {
						start = i
					}
				}
				for _, s := range stack[start:] {
					cycle = append(cycle, s.Name)
				}
				cycle = append(cycle, d.Name)
				return true
			}
			if color[d] == white && visit(d) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		color[m] = black
		return false
	}
	for _, m := range ms {
		if color[m] == white && visit(m) {
			return cycle
		}
	}
	return nil
}

// order sorts metrics cheapest first: free checks, then judges by the cost
// of a typical call; a metric always comes after the metrics its when names;
// ties keep config order.
func (c *Config) order() {
	done := map[*Metric]bool{}
	for len(c.Order) < len(c.Metrics) {
		var best *Metric
		for _, m := range c.Metrics {
			if done[m] {
				continue
			}
			ready := true
			for _, d := range m.deps {
				if !done[d] {
					ready = false
				}
			}
			if !ready {
				continue
			}
			if best == nil || m.rank < best.rank || m.rank == best.rank && m.index < best.index {
				best = m
			}
		}
		done[best] = true
		c.Order = append(c.Order, best)
	}
	for _, m := range c.Order {
		for _, d := range m.deps {
			if d.Conditional() || d.dependent {
				m.dependent = true
			}
		}
		if m.Conditional() {
			m.dependent = true
		}
	}
}

// JudgesUsed returns the judges that some metric uses, sorted by name.
func (c *Config) JudgesUsed() []*Judge {
	seen := map[*Judge]bool{}
	var out []*Judge
	for _, m := range c.Metrics {
		if m.judge != nil && !seen[m.judge] {
			seen[m.judge] = true
			out = append(out, m.judge)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Name < out[k].Name })
	return out
}
