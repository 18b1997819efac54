package estimator

import (
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/costctl/costctl/pricing"
)

// Every number the estimator reads is parsed from its decimal text into an
// exact rational (math/big.Rat): "10%", "0.1", "2.5e6" and "1.25" never pass
// through float64, so 10M × $0.00575 is exactly $57,500.00.

// MaxRequests bounds a monthly volume (a quadrillion requests).
const MaxRequests = 1_000_000_000_000_000

// parseDecimal parses s as an exact decimal ("2500000", "2.5e6", "1_000",
// "2,500,000"). NaN, infinities, fractions ("1/3") and hex are rejected.
func parseDecimal(s string) (*big.Rat, bool) {
	t := strings.TrimSpace(s)
	t = strings.ReplaceAll(t, "_", "")
	t = strings.ReplaceAll(t, ",", "")
	if t == "" || strings.ContainsAny(t, "/xXpP") {
		return nil, false
	}
	// big.Rat accepts a leading '+'; so do we. It rejects NaN and Inf.
	r, ok := new(big.Rat).SetString(t)
	if !ok {
		return nil, false
	}
	return r, true
}

// suffixMultiplier splits a k/M/B suffix (case-insensitive) off s.
func suffixMultiplier(s string) (string, int64) {
	t := strings.TrimSpace(s)
	if t == "" {
		return t, 1
	}
	switch t[len(t)-1] {
	case 'k', 'K':
		return t[:len(t)-1], 1_000
	case 'm', 'M':
		return t[:len(t)-1], 1_000_000
	case 'b', 'B', 'g', 'G':
		return t[:len(t)-1], 1_000_000_000
	}
	return t, 1
}

// ParseCount parses a positive whole number of requests: "10M", "2.5k",
// "2500000", "2.5e6", "1B". The result must be a whole number ≥ 1.
func ParseCount(s string) (int64, error) {
	num, mult := suffixMultiplier(s)
	r, ok := parseDecimal(num)
	if !ok {
		return 0, fmt.Errorf("invalid count %q (want a whole number like 10M, 2500000 or 2.5e6)", s)
	}
	r.Mul(r, big.NewRat(mult, 1))
	if r.Sign() <= 0 {
		return 0, fmt.Errorf("invalid count %q: must be at least 1", s)
	}
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid count %q: not a whole number", s)
	}
	if r.Num().Cmp(big.NewInt(MaxRequests)) > 0 {
		return 0, fmt.Errorf("invalid count %q: above 1e15", s)
	}
	return r.Num().Int64(), nil
}

// ParseTokens parses an average token count: a non-negative decimal,
// optionally with a k/M suffix ("1000", "1.5k", "812.25").
func ParseTokens(s string) (*big.Rat, error) {
	num, mult := suffixMultiplier(s)
	r, ok := parseDecimal(num)
	if !ok {
		return nil, fmt.Errorf("invalid token count %q (want a number like 1000 or 1.5k)", s)
	}
	r.Mul(r, big.NewRat(mult, 1))
	if r.Sign() < 0 {
		return nil, fmt.Errorf("invalid token count %q: negative", s)
	}
	if r.Cmp(big.NewRat(10_000_000_000, 1)) > 0 {
		return nil, fmt.Errorf("invalid token count %q: above 10 billion", s)
	}
	return r, nil
}

// ParseRatio parses a share between 0 and 1 inclusive: "10%", "0.1", "1",
// "100%", "12.5%". Negative values, values above 100%, NaN and anything that
// is not a decimal number are errors.
func ParseRatio(s string) (*big.Rat, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	if pct {
		t = strings.TrimSpace(strings.TrimSuffix(t, "%"))
	}
	r, ok := parseDecimal(t)
	if !ok {
		return nil, fmt.Errorf("invalid share %q (want a percentage like 10%% or a fraction like 0.1)", s)
	}
	if pct {
		r.Quo(r, big.NewRat(100, 1))
	}
	if r.Sign() < 0 {
		return nil, fmt.Errorf("invalid share %q: negative", s)
	}
	if r.Cmp(big.NewRat(1, 1)) > 0 {
		return nil, fmt.Errorf("invalid share %q: above 100%%", s)
	}
	return r, nil
}

// ParseUSD parses a non-negative dollar amount ("100", "$1,250.50") exactly
// to the nano-dollar.
func ParseUSD(s string) (pricing.Money, error) {
	m, err := pricing.ParseMoney(s)
	if err != nil {
		return 0, err
	}
	if m < 0 {
		return 0, fmt.Errorf("invalid amount %q: negative", s)
	}
	return m, nil
}

// ParseCascade parses a judge hierarchy "free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2"
// (shares may be percentages). The model name is everything before the last
// ':' so names with colons (bedrock's "…-v1:0") work. Shares must sum to
// exactly 1; models are resolved later, against the price table.
func ParseCascade(s string) (Cascade, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, fmt.Errorf("empty cascade (want e.g. free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2)")
	}
	var c Cascade
	sum := new(big.Rat)
	seen := map[string]bool{}
	for _, part := range strings.Split(t, ",") {
		part = strings.TrimSpace(part)
		i := strings.LastIndex(part, ":")
		if i <= 0 || i == len(part)-1 {
			return nil, fmt.Errorf("invalid cascade tier %q (want MODEL:SHARE, e.g. gpt-4o-mini:0.3 or free:50%%)", part)
		}
		name := strings.TrimSpace(part[:i])
		share, err := ParseRatio(part[i+1:])
		if err != nil {
			return nil, fmt.Errorf("cascade tier %q: %v", name, err)
		}
		key := strings.ToLower(name)
		if seen[key] {
			return nil, fmt.Errorf("cascade tier %q appears twice", name)
		}
		seen[key] = true
		sum.Add(sum, share)
		c = append(c, CascadeTier{Name: name, Share: share})
	}
	if sum.Cmp(big.NewRat(1, 1)) != 0 {
		return nil, fmt.Errorf("cascade shares sum to %s, not 1 (100%%)", DecimalString(sum, 6))
	}
	return c, nil
}

// ParseEscalate parses a judge hierarchy in which each stage sees a share
// of the evaluations: "gpt-4o-mini:1,gpt-4o:0.2" (the cheap model judges
// every evaluation, the expensive one re-judges 20%). Shares are each
// between 0 and 1 (percentages work) and need not sum to 1; "free" is a
// stage that makes no API call. Models are resolved later.
func ParseEscalate(s string) (Escalation, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, fmt.Errorf("empty escalation (want e.g. gpt-4o-mini:1,gpt-4o:0.2)")
	}
	var x Escalation
	seen := map[string]bool{}
	for _, part := range strings.Split(t, ",") {
		part = strings.TrimSpace(part)
		i := strings.LastIndex(part, ":")
		if i <= 0 || i == len(part)-1 {
			return nil, fmt.Errorf("invalid escalation stage %q (want MODEL:SHARE, the share of evaluations it judges, e.g. gpt-4o:0.2 or free:100%%)", part)
		}
		name := strings.TrimSpace(part[:i])
		share, err := ParseRatio(part[i+1:])
		if err != nil {
			return nil, fmt.Errorf("escalation stage %q: %v", name, err)
		}
		key := strings.ToLower(name)
		if seen[key] {
			return nil, fmt.Errorf("escalation stage %q appears twice", name)
		}
		seen[key] = true
		x = append(x, CascadeTier{Name: name, Share: share})
	}
	return x, nil
}

// DecimalString writes r as a decimal with at most maxPlaces places,
// trailing zeros dropped: 1/10 → "0.1", 57500 → "57500", 1/3 (4) → "0.3333".
// It is exact whenever r has a terminating expansion within maxPlaces.
func DecimalString(r *big.Rat, maxPlaces int) string {
	s := r.FloatString(maxPlaces)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// PercentString writes a share as a percentage: 1/10 → "10%", 1/3 → "33.33%".
func PercentString(r *big.Rat) string {
	return DecimalString(new(big.Rat).Mul(r, big.NewRat(100, 1)), 2) + "%"
}

// Sample accumulates exact token totals over measured records (--from) so
// the averages are exact rationals: total ÷ records.
type Sample struct {
	Records      int64
	InputTokens  int64
	OutputTokens int64

	// byPrompt groups the records by prompt length: [records, output tokens].
	byPrompt map[int64]*[2]int64
}

// Add counts one record: the prompt as the API bills it (the chat formula
// over msgs, or over one user message holding input when the record's input
// is text) and the output text.
func (s *Sample) Add(c *Counter, input string, msgs []Message, output string) {
	if msgs == nil {
		msgs = []Message{{Role: "user", Content: input}}
	}
	in, out := c.Chat(msgs, nil), c.Text(output)
	s.AddCounts(in, out)
}

// AddCounts counts one record of in prompt and out output tokens.
func (s *Sample) AddCounts(in, out int64) {
	s.InputTokens += in
	s.OutputTokens += out
	s.Records++
	if s.byPrompt == nil {
		s.byPrompt = map[int64]*[2]int64{}
	}
	g := s.byPrompt[in]
	if g == nil {
		g = new([2]int64)
		s.byPrompt[in] = g
	}
	g[0]++
	g[1] += out
}

// Prompts returns the records grouped by prompt length, shortest first, for
// Inputs.Prompts: each length is then priced in its own tier.
func (s Sample) Prompts() []PromptGroup {
	out := make([]PromptGroup, 0, len(s.byPrompt))
	for in, g := range s.byPrompt {
		out = append(out, PromptGroup{InputTokens: in, Requests: g[0], OutputTokens: g[1]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InputTokens < out[j].InputTokens })
	return out
}

// Averages returns the exact average input and output tokens per record;
// ok is false when no record was added.
func (s Sample) Averages() (in, out *big.Rat, ok bool) {
	if s.Records == 0 {
		return nil, nil, false
	}
	return big.NewRat(s.InputTokens, s.Records), big.NewRat(s.OutputTokens, s.Records), true
}
