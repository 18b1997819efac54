package estimator

import (
	"math/big"
	"strings"
	"testing"

	"github.com/costctl/costctl/pricing"
)

func rat(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad rat %q", s)
	}
	return r
}

func rate(t *testing.T, s string) *pricing.Rate {
	t.Helper()
	r, err := pricing.ParseRatePer1M(s)
	if err != nil {
		t.Fatal(err)
	}
	return &r
}

func levers(t *testing.T, kv ...string) Levers {
	t.Helper()
	var l Levers
	for i := 0; i+1 < len(kv); i += 2 {
		if err := SetLever(&l, kv[i], kv[i+1]); err != nil {
			t.Fatalf("SetLever(%s, %s): %v", kv[i], kv[i+1], err)
		}
	}
	return l
}

func seedInputs(t *testing.T) Inputs {
	return Inputs{
		RequestsPerMonth: 10_000_000, Days: 30,
		InputTokens: big.NewRat(1000, 1), OutputTokens: big.NewRat(50, 1),
		Model: "gpt-4o", InputPrice: rate(t, "5"), OutputPrice: rate(t, "15"),
	}
}

func tableInputs() Inputs {
	return Inputs{
		RequestsPerMonth: 10_000_000, Days: 30,
		InputTokens: big.NewRat(1000, 1), OutputTokens: big.NewRat(50, 1),
		Model: "gpt-4o",
	}
}

// longInputs are tableInputs ten times over (10,000 input + 500 output
// tokens): long enough for a cached prefix of 4,000+ tokens, above
// OpenAI's 1,024-token minimum, so --prompt-cache counts.
func longInputs(t *testing.T) Inputs {
	in := tableInputs()
	in.InputTokens, in.OutputTokens = big.NewRat(10_000, 1), big.NewRat(500, 1)
	return in
}

func amounts(t *testing.T, f Figures) Amounts {
	t.Helper()
	a, err := f.Amounts()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestProjectTotals checks every lever alone and combined against figures
// worked out by hand (gpt-4o: $2.50 in, $1.25 cached, $10 out, batch
// $1.25/$5; gpt-4o-mini: $0.15/$0.075/$0.60, batch $0.075/$0.30).
func TestProjectTotals(t *testing.T) {
	tests := []struct {
		name       string
		in         func(t *testing.T) Inputs
		levers     []string
		perRequest string
		daily      string
		monthly    string
		savings    string
		pct        string
		steps      []string
	}{
		{"seed baseline", seedInputs, nil, "0.00575", "1916.666666667", "57500.00", "0.00", "0.00", []string{"baseline"}},
		{"seed sample 10%", seedInputs, []string{"sample", "10%"}, "0.000575", "191.666666667", "5750.00", "51750.00", "90.00", []string{"baseline", "sample"}},
		{"seed sample 0.1", seedInputs, []string{"sample", "0.1"}, "0.000575", "191.666666667", "5750.00", "51750.00", "90.00", nil},
		{"table baseline", func(*testing.T) Inputs { return tableInputs() }, nil, "0.003", "1000.00", "30000.00", "0.00", "0.00", nil},
		{"cascade", func(*testing.T) Inputs { return tableInputs() }, []string{"cascade", "free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2"}, "0.000654", "218.00", "6540.00", "23460.00", "78.20", []string{"baseline", "cascade"}},
		{"cascade all free", func(*testing.T) Inputs { return tableInputs() }, []string{"cascade", "free:100%"}, "0.00", "0.00", "0.00", "30000.00", "100.00", nil},
		{"cache-hit", func(*testing.T) Inputs { return tableInputs() }, []string{"cache-hit", "25%"}, "0.00225", "750.00", "22500.00", "7500.00", "25.00", nil},
		// 10,000 × $2.50/1M + 500 × $10/1M = $0.03; 4,000 cached tokens save
		// 4,000 × $1.25/1M = $0.005.
		{"prompt-cache", longInputs, []string{"prompt-cache", "40%"}, "0.025", "8333.333333333", "250000.00", "50000.00", "16.67", nil},
		// A 1,000-token prompt is below OpenAI's 1,024-token minimum
		// cacheable prefix: nothing is cached, nothing saved.
		{"prompt-cache below the minimum prefix", func(*testing.T) Inputs { return tableInputs() }, []string{"prompt-cache", "40%"}, "0.003", "1000.00", "30000.00", "0.00", "0.00", nil},
		{"batch half", func(*testing.T) Inputs { return tableInputs() }, []string{"batch", "0.5"}, "0.00225", "750.00", "22500.00", "7500.00", "25.00", nil},
		{"prompt-cache + full batch", longInputs, []string{"prompt-cache", "0.4", "batch", "1"}, "0.0125", "4166.666666667", "125000.00", "175000.00", "58.33", []string{"baseline", "prompt-cache", "batch"}},
		{"infra", func(*testing.T) Inputs { return tableInputs() }, []string{"infra", "100"}, "0.00301", "1003.333333333", "30100.00", "-100.00", "-0.33", []string{"baseline", "infra"}},
		{"override batch is 50%", seedInputs, []string{"batch", "100%"}, "0.002875", "958.333333333", "28750.00", "28750.00", "50.00", nil},
		// 10,000 × $5/1M + 500 × $15/1M = $0.0575; 5,000 cached tokens save
		// 5,000 × $2.50/1M = $0.0125.
		{"override prompt-cache with --cached-price", func(t *testing.T) Inputs {
			in := seedInputs(t)
			in.InputTokens, in.OutputTokens = big.NewRat(10_000, 1), big.NewRat(500, 1)
			in.CachedPrice = rate(t, "2.5")
			return in
		}, []string{"prompt-cache", "50%"}, "0.045", "15000.00", "450000.00", "125000.00", "21.74", nil},
		{"all levers", func(*testing.T) Inputs { return tableInputs() }, []string{
			"sample", "10%", "cascade", "free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2", "cache-hit", "20%",
			"prompt-cache", "50%", "batch", "50%", "infra", "100",
		}, "0.00004924", "16.413333333", "492.40", "29507.60", "98.36",
			[]string{"baseline", "sample", "cascade", "cache-hit", "prompt-cache", "batch", "infra"}},
		{"model lever", func(*testing.T) Inputs { return tableInputs() }, []string{"model", "gpt-4o-mini"}, "0.00018", "60.00", "1800.00", "0.00", "0.00", []string{"baseline"}},
		{"per-day volume", func(*testing.T) Inputs {
			in := tableInputs()
			in.RequestsPerMonth, in.Days = 1000*31, 31
			return in
		}, nil, "0.003", "3.00", "93.00", "0.00", "0.00", nil},
		// 1 token × $0.15/1M × 1% = 1.5 nano-dollars per request: the column
		// rounds half away from zero to 2, monthly is exact (not 2 × 1M).
		{"fractional nano rounding", func(*testing.T) Inputs {
			return Inputs{RequestsPerMonth: 1_000_000, Days: 30, InputTokens: big.NewRat(1, 1), OutputTokens: new(big.Rat), Model: "gpt-4o-mini"}
		}, []string{"sample", "1%"}, "0.000000002", "0.00005", "0.0015", "0.1485", "99.00", nil},
		{"fractional tokens", func(*testing.T) Inputs {
			in := tableInputs()
			in.InputTokens, in.OutputTokens = big.NewRat(22, 3), big.NewRat(3, 1)
			in.RequestsPerMonth = 1_000_000
			return in
		}, nil, "0.000048333", "1.611111111", "48.333333333", "0.00", "0.00", nil},
	}
	table := pricing.MustDefault()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(table, tc.in(t))
			if err != nil {
				t.Fatal(err)
			}
			p, err := e.Project(levers(t, tc.levers...))
			if err != nil {
				t.Fatal(err)
			}
			a := amounts(t, p.Total)
			got := []string{a.PerRequest.String(), a.Daily.String(), a.Monthly.String(), a.Savings.String(), a.SavingsPct.FloatString(2)}
			want := []string{tc.perRequest, tc.daily, tc.monthly, tc.savings, tc.pct}
			for i, field := range []string{"per request", "daily", "monthly", "savings", "savings %"} {
				if got[i] != want[i] {
					t.Errorf("%s = %s, want %s", field, got[i], want[i])
				}
			}
			if tc.steps != nil {
				var names []string
				for _, s := range p.Steps {
					names = append(names, s.Name)
				}
				if strings.Join(names, ",") != strings.Join(tc.steps, ",") {
					t.Errorf("steps = %v, want %v", names, tc.steps)
				}
			}
		})
	}
}

// TestWaterfallCumulative checks each step of the full waterfall.
func TestWaterfallCumulative(t *testing.T) {
	e, err := New(pricing.MustDefault(), tableInputs())
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Project(levers(t, "sample", "10%", "cascade", "free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2", "cache-hit", "20%",
		"prompt-cache", "50%", "batch", "50%", "infra", "100"))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, perReq, monthly, detail string }{
		{"baseline", "0.003", "30000.00", "gpt-4o at $2.50/$10.00 per 1M in/out"},
		{"sample", "0.0003", "3000.00", "10% of requests evaluated"},
		{"cascade", "0.0000654", "654.00", "free 50%, gpt-4o-mini 30%, gpt-4o 20%"},
		{"cache-hit", "0.00005232", "523.20", "20% of calls answered from cache"},
		// A 500-token cached prefix (50% of 1,000) is below OpenAI's 1,024-token
		// minimum: the step saves nothing (and a warning says so).
		{"prompt-cache", "0.00005232", "523.20", "50% of input tokens at cached price"},
		// batch: gpt-4o 0.5×0.003+0.5×0.0015 = 0.00225, mini 0.5×0.00018+0.5×0.00009
		// = 0.000135 → (0.3×0.000135 + 0.2×0.00225) × 0.1 × 0.8 = 0.00003924
		{"batch", "0.00003924", "392.40", "50% of calls via Batch API"},
		{"infra", "0.00004924", "492.40", "+$100.00/month fixed"},
	}
	if len(p.Steps) != len(want) {
		t.Fatalf("%d steps, want %d", len(p.Steps), len(want))
	}
	for i, w := range want {
		a := amounts(t, p.Steps[i].Figures)
		if p.Steps[i].Name != w.name || a.PerRequest.String() != w.perReq || a.Monthly.String() != w.monthly || p.Steps[i].Detail != w.detail {
			t.Errorf("step %d = %s %s %s %q, want %s %s %s %q", i, p.Steps[i].Name, a.PerRequest, a.Monthly, p.Steps[i].Detail, w.name, w.perReq, w.monthly, w.detail)
		}
	}
	if len(p.Notes) != 0 {
		t.Errorf("notes = %v", p.Notes)
	}
	wantWarn := []string{
		"gpt-4o: --prompt-cache 50% saves nothing on 1,000-token prompts: the cached prefix (500 tokens) is shorter than the 1,024-token minimum the provider caches",
		"gpt-4o-mini: --prompt-cache 50% saves nothing on 1,000-token prompts: the cached prefix (500 tokens) is shorter than the 1,024-token minimum the provider caches",
	}
	if strings.Join(p.Warnings, "\n") != strings.Join(wantWarn, "\n") {
		t.Errorf("warnings = %q, want %q", p.Warnings, wantWarn)
	}
}

func TestProjectErrors(t *testing.T) {
	table := pricing.MustDefault()
	tests := []struct {
		name   string
		in     func(t *testing.T) Inputs
		levers []string
		want   string
	}{
		{"unknown cascade model", func(*testing.T) Inputs { return tableInputs() }, []string{"cascade", "free:0.5,gpt-4o-mni:0.5"}, `cascade: unknown model "gpt-4o-mni" (closest known: gpt-4o-mini`},
		{"unknown model lever", func(*testing.T) Inputs { return tableInputs() }, []string{"model", "nope-model"}, `unknown model "nope-model"`},
		{"prompt-cache needs cached price", seedInputs, []string{"prompt-cache", "10%"}, "--prompt-cache needs a cached-input price for gpt-4o: --input-price overrides its list price, so add --cached-price USD"},
		{"cascade tier naming overridden model", seedInputs, []string{"cascade", "free:0.5,gpt-4o:0.5", "prompt-cache", "10%"}, "needs a cached-input price for gpt-4o"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(table, tc.in(t))
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.Project(levers(t, tc.levers...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// A prompt-cache of 0 needs no cached price.
	e, _ := New(table, seedInputs(t))
	if _, err := e.Project(levers(t, "prompt-cache", "0")); err != nil {
		t.Errorf("prompt-cache 0 with override: %v", err)
	}
	if _, err := New(table, Inputs{RequestsPerMonth: 0, Days: 30, InputTokens: new(big.Rat), OutputTokens: new(big.Rat), Model: "gpt-4o"}); err == nil {
		t.Error("zero requests accepted")
	}
	if _, err := New(table, Inputs{RequestsPerMonth: 1, Days: 30, InputTokens: new(big.Rat), OutputTokens: new(big.Rat), Model: "gpt-9000"}); err == nil {
		t.Error("unknown model accepted")
	}
}

func TestPromptCacheNoteWhenNoCachedPrice(t *testing.T) {
	in := tableInputs()
	in.Model = "gpt-4o-2024-05-13" // lists no cached-input price
	e, err := New(pricing.MustDefault(), in)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Project(levers(t, "prompt-cache", "50%"))
	if err != nil {
		t.Fatal(err)
	}
	if a := amounts(t, p.Total); a.Savings != 0 {
		t.Errorf("savings = %s, want 0", a.Savings)
	}
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "gpt-4o-2024-05-13 lists no cached-input price") {
		t.Errorf("notes = %q", p.Notes)
	}
}

// TestCascadeUsesOverrides: a cascade tier naming --model uses its
// overridden prices; another model uses the table.
func TestCascadeUsesOverrides(t *testing.T) {
	e, err := New(pricing.MustDefault(), seedInputs(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Project(levers(t, "cascade", "gpt-4o:0.5,gpt-4o-mini:0.5"))
	if err != nil {
		t.Fatal(err)
	}
	// 0.5 × 0.00575 + 0.5 × 0.00018 = 0.002965
	if a := amounts(t, p.Total); a.PerRequest.String() != "0.002965" || a.Monthly.String() != "29650.00" {
		t.Errorf("got %s / %s", a.PerRequest, a.Monthly)
	}
}

func TestAmountsOverflow(t *testing.T) {
	in := tableInputs()
	in.RequestsPerMonth = MaxRequests
	e, err := New(pricing.MustDefault(), in)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Project(Levers{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Total.Amounts(); err == nil || !strings.Contains(err.Error(), "beyond what costctl can represent") {
		t.Errorf("err = %v", err)
	}
}

// TestLongContextTier: the average prompt, rounded up, picks the tier.
func TestLongContextTier(t *testing.T) {
	for _, tc := range []struct {
		in, perRequest string
	}{
		// 200,000 × $3/1M + 100 × $15/1M
		{"200000", "0.6015"},
		// 200,000.5 rounds up to 200,001 > 200,000: 200,000.5 × $6/1M + 100 × $22.50/1M
		{"200000.5", "1.202253"},
	} {
		in := tableInputs()
		in.Model = "claude-sonnet-4.5"
		in.InputTokens, in.OutputTokens = rat(t, tc.in), big.NewRat(100, 1)
		e, err := New(pricing.MustDefault(), in)
		if err != nil {
			t.Fatal(err)
		}
		p, err := e.Project(Levers{})
		if err != nil {
			t.Fatal(err)
		}
		if a := amounts(t, p.Total); a.PerRequest.String() != tc.perRequest {
			t.Errorf("%s input tokens: per request %s, want %s", tc.in, a.PerRequest, tc.perRequest)
		}
	}
}

func BenchmarkProjectAllLevers(b *testing.B) {
	e, err := New(pricing.MustDefault(), tableInputs())
	if err != nil {
		b.Fatal(err)
	}
	var l Levers
	for _, kv := range [][2]string{{"sample", "10%"}, {"cascade", "free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2"}, {"cache-hit", "20%"}, {"prompt-cache", "50%"}, {"batch", "50%"}, {"infra", "100"}} {
		if err := SetLever(&l, kv[0], kv[1]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Project(l); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLongContextPerPrompt: measured prompts are priced each in its own
// long-context tier. One 100,000-token and one 300,000-token Sonnet request
// (no output) cost 100,000 × $3/1M + 300,000 × $6/1M (above 200,000 tokens
// the whole request is at the long-context price) = $0.30 + $1.80 = $2.10;
// priced by their 200,000-token average (not above the threshold) they
// would be 400,000 × $3/1M = $1.20.
func TestLongContextPerPrompt(t *testing.T) {
	for _, model := range []string{"claude-sonnet-4", "claude-sonnet-4.5"} {
		for _, tc := range []struct {
			name            string
			prompts         []PromptGroup
			monthly, perReq string
		}{
			{"measured", []PromptGroup{{InputTokens: 100_000, Requests: 1}, {InputTokens: 300_000, Requests: 1}}, "2.10", "1.05"},
			{"average only", nil, "1.20", "0.60"},
		} {
			t.Run(model+"/"+tc.name, func(t *testing.T) {
				in := Inputs{RequestsPerMonth: 2, Days: 30, InputTokens: big.NewRat(200_000, 1), OutputTokens: new(big.Rat), Model: model, Prompts: tc.prompts}
				e, err := New(pricing.MustDefault(), in)
				if err != nil {
					t.Fatal(err)
				}
				p, err := e.Project(Levers{})
				if err != nil {
					t.Fatal(err)
				}
				if a := amounts(t, p.Total); a.Monthly.String() != tc.monthly || a.PerRequest.String() != tc.perReq {
					t.Errorf("monthly %s, per request %s; want %s, %s", a.Monthly, a.PerRequest, tc.monthly, tc.perReq)
				}
				if len(p.Warnings) != 0 {
					t.Errorf("warnings = %q", p.Warnings)
				}
			})
		}
	}
}

// TestMeasuredOutputsByTier: each measured prompt length carries its own
// outputs into its tier. 100,000 in + 1,000 out at $3/$15 = $0.315;
// 300,000 in + 3,000 out at $6/$22.50 = $1.8675; total $2.1825. With
// OutputAverage (--output-tokens 2000 beside --from) both output 2,000:
// $0.33 + $1.845 = $2.175.
func TestMeasuredOutputsByTier(t *testing.T) {
	prompts := []PromptGroup{{InputTokens: 100_000, Requests: 1, OutputTokens: 1000}, {InputTokens: 300_000, Requests: 1, OutputTokens: 3000}}
	for _, tc := range []struct {
		avg  bool
		want string
	}{{false, "2.1825"}, {true, "2.175"}} {
		in := Inputs{RequestsPerMonth: 2, Days: 30, InputTokens: big.NewRat(200_000, 1), OutputTokens: big.NewRat(2000, 1), Model: "claude-sonnet-4", Prompts: prompts, OutputAverage: tc.avg}
		e, err := New(pricing.MustDefault(), in)
		if err != nil {
			t.Fatal(err)
		}
		f, err := e.Total(Levers{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if a := amounts(t, f); a.Monthly.String() != tc.want {
			t.Errorf("output average %v: monthly %s, want %s", tc.avg, a.Monthly, tc.want)
		}
	}
}

// TestEscalate: each stage judges its own share of the evaluations.
// gpt-4o-mini per call 1,000 × $0.15/1M + 50 × $0.60/1M = $0.00018;
// gpt-4o 1,000 × $2.50/1M + 50 × $10/1M = $0.003.
func TestEscalate(t *testing.T) {
	tests := []struct {
		name                               string
		levers                             []string
		perReq, monthly, savings, pct, det string
	}{
		// (1 × 0.00018 + 0.2 × 0.003) × 10% = 0.000078 → $780.00 a month
		{"cheap judges all, expensive re-judges 20%", []string{"sample", "10%", "escalate", "gpt-4o-mini:1,gpt-4o:0.2"},
			"0.000078", "780.00", "29220.00", "97.40", "gpt-4o-mini 100% → gpt-4o 20% of evaluations"},
		// free check on everything, 0.3 × 0.00018 + 0.05 × 0.003 = 0.000204
		{"free first", []string{"escalate", "free:1,gpt-4o-mini:30%,gpt-4o:0.05"},
			"0.000204", "2040.00", "27960.00", "93.20", "free 100% → gpt-4o-mini 30% → gpt-4o 5% of evaluations"},
		// shares above 1 in total: 1 × 0.003 + 1 × 0.00018 = 0.00318, costs more
		{"two full passes", []string{"escalate", "gpt-4o:1,gpt-4o-mini:1"},
			"0.00318", "31800.00", "-1800.00", "-6.00", "gpt-4o 100% → gpt-4o-mini 100% of evaluations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(pricing.MustDefault(), tableInputs())
			if err != nil {
				t.Fatal(err)
			}
			p, err := e.Project(levers(t, tc.levers...))
			if err != nil {
				t.Fatal(err)
			}
			last := p.Steps[len(p.Steps)-1]
			a := amounts(t, p.Total)
			got := []string{last.Name, last.Detail, a.PerRequest.String(), a.Monthly.String(), a.Savings.String(), a.SavingsPct.FloatString(2)}
			want := []string{StepEscalate, tc.det, tc.perReq, tc.monthly, tc.savings, tc.pct}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
	e, _ := New(pricing.MustDefault(), tableInputs())
	_, err := e.Project(levers(t, "cascade", "gpt-4o:1", "escalate", "gpt-4o-mini:1"))
	if err == nil || err.Error() != "cascade and escalate both choose the judges: set one of them (none unsets a lever in a sweep or scenario)" {
		t.Errorf("cascade with escalate: err = %v", err)
	}
	_, err = e.Project(levers(t, "escalate", "gpt-4o-mini:1,gpt-9:0.2"))
	if err == nil || !strings.HasPrefix(err.Error(), "escalate: ") {
		t.Errorf("unknown stage model: err = %v", err)
	}
}

// TestWarnings: prompts longer than a model's context window, and a
// prompt-cache share whose cached prefix is below the provider's minimum
// cacheable prefix (OpenAI 1,024 tokens; Anthropic 1,024 for Sonnet 4/4.5
// and Opus 4/4.1/4.8, 2,048 for Haiku 3.5, 4,096 for Opus 4.5–4.7 and
// Haiku 4.5),
// each with its exact text and the money it leaves uncounted.
func TestWarnings(t *testing.T) {
	tests := []struct {
		name    string
		model   string
		in      string
		prompts []PromptGroup
		levers  []string
		monthly string // for 2 requests a month, no output
		warn    []string
	}{
		{"gpt-4o prompt over its window", "gpt-4o", "150000", nil, nil, "0.75", []string{
			"gpt-4o: the 150,000-token prompt is longer than its 128,000-token context window; the API rejects such requests, they are priced as if it did not"}},
		{"gpt-4o sampled prompts over its window", "gpt-4o", "200000", []PromptGroup{{InputTokens: 100_000, Requests: 1}, {InputTokens: 300_000, Requests: 1}}, nil, "1.00", []string{
			"gpt-4o: 1 of 2 sampled prompts (the longest 300,000 tokens) are longer than its 128,000-token context window; the API rejects such requests, they are priced as if it did not"}},
		{"judge window checked too", "claude-sonnet-4", "150000", nil, []string{"cascade", "gpt-4o-mini:1"}, "0.045", []string{
			"gpt-4o-mini: the 150,000-token prompt is longer than its 128,000-token context window; the API rejects such requests, they are priced as if it did not"}},
		// 1,000 × $2.50/1M × 2: the 500-token prefix is not cached
		{"gpt-4o prefix below 1,024", "gpt-4o", "1000", nil, []string{"prompt-cache", "50%"}, "0.005", []string{
			"gpt-4o: --prompt-cache 50% saves nothing on 1,000-token prompts: the cached prefix (500 tokens) is shorter than the 1,024-token minimum the provider caches"}},
		// 2,048 × 50% = 1,024 cached: 1,024 × ($2.50 + $1.25)/1M × 2 = $0.00768
		{"gpt-4o prefix at 1,024", "gpt-4o", "2048", nil, []string{"prompt-cache", "50%"}, "0.00768", nil},
		// one 1,000-token prompt at full price ($0.0025), one 4,000-token
		// prompt half cached (2,000 × $2.50/1M + 2,000 × $1.25/1M = $0.0075);
		// by the 2,500-token average both would be half cached: $0.009375
		{"gpt-4o sampled prompts below 1,024", "gpt-4o", "2500", []PromptGroup{{InputTokens: 1000, Requests: 1}, {InputTokens: 4000, Requests: 1}}, []string{"prompt-cache", "50%"}, "0.01", []string{
			"gpt-4o: --prompt-cache 50% saves nothing on 1 of 2 sampled prompts: their cached prefix is shorter than the 1,024-token minimum the provider caches"}},
		// 3,000 × 100% cached on Sonnet 4.5 (min 1,024): 3,000 × $0.30/1M × 2
		{"sonnet 4.5 caches 3,000", "claude-sonnet-4.5", "3000", nil, []string{"prompt-cache", "100%"}, "0.0018", nil},
		// Haiku 4.5 needs 4,096: 3,000 × $1/1M × 2
		{"haiku 4.5 needs 4,096", "claude-haiku-4.5", "3000", nil, []string{"prompt-cache", "100%"}, "0.006", []string{
			"claude-haiku-4.5: --prompt-cache 100% saves nothing on 3,000-token prompts: the cached prefix (3,000 tokens) is shorter than the 4,096-token minimum the provider caches"}},
		{"opus 4.5 needs 4,096", "claude-opus-4.5", "4095.5", nil, []string{"prompt-cache", "100%"}, "0.040955", []string{
			"claude-opus-4.5: --prompt-cache 100% saves nothing on 4,095.5-token prompts: the cached prefix (4,095.5 tokens) is shorter than the 4,096-token minimum the provider caches"}},
		{"opus 4.7 needs 4,096", "claude-opus-4.7", "4000", nil, []string{"prompt-cache", "100%"}, "0.04", []string{
			"claude-opus-4.7: --prompt-cache 100% saves nothing on 4,000-token prompts: the cached prefix (4,000 tokens) is shorter than the 4,096-token minimum the provider caches"}},
		// Opus 4.8 caches from 1,024: 4,000 × $0.50/1M × 2
		{"opus 4.8 caches 4,000", "claude-opus-4.8", "4000", nil, []string{"prompt-cache", "100%"}, "0.004", nil},
		// Haiku 3.5 needs 2,048: 2,000 × $0.80/1M × 2
		{"haiku 3.5 needs 2,048", "claude-3.5-haiku", "2000", nil, []string{"prompt-cache", "100%"}, "0.0032", []string{
			"claude-3.5-haiku: --prompt-cache 100% saves nothing on 2,000-token prompts: the cached prefix (2,000 tokens) is shorter than the 2,048-token minimum the provider caches"}},
		// no minimum known for Gemini here: 500 × $0.025/1M × 2, no warning
		{"no minimum known", "gemini-2.0-flash", "500", nil, []string{"prompt-cache", "100%"}, "0.000025", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Inputs{RequestsPerMonth: 2, Days: 30, InputTokens: rat(t, tc.in), OutputTokens: new(big.Rat), Model: tc.model, Prompts: tc.prompts}
			e, err := New(pricing.MustDefault(), in)
			if err != nil {
				t.Fatal(err)
			}
			p, err := e.Project(levers(t, tc.levers...))
			if err != nil {
				t.Fatal(err)
			}
			if a := amounts(t, p.Total); a.Monthly.String() != tc.monthly {
				t.Errorf("monthly %s, want %s", a.Monthly, tc.monthly)
			}
			if strings.Join(p.Warnings, "\n") != strings.Join(tc.warn, "\n") {
				t.Errorf("warnings = %q\nwant       %q", p.Warnings, tc.warn)
			}
			cmp, err := e.Compare([]Scenario{{Levers: levers(t, tc.levers...)}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(cmp[0].Warnings, "\n") != strings.Join(tc.warn, "\n") {
				t.Errorf("compare warnings = %q", cmp[0].Warnings)
			}
		})
	}
}

// TestSegmentsMatchPerPrompt: pricing the measured prompt lengths a segment
// at a time (one per tier and cacheability, from prefix sums) is exactly
// the sum of pricing each length on its own, across the long-context
// threshold and the minimum cacheable prefix, for groups given unsorted.
func TestSegmentsMatchPerPrompt(t *testing.T) {
	groups := []PromptGroup{
		{300_000, 2, 900}, {500, 3, 30}, {200_001, 1, 7}, {2048, 1, 0}, {1024, 5, 50},
		{200_000, 1, 11}, {2047, 2, 3}, {150_000, 4, 400}, {1023, 1, 1},
	}
	var n, inSum, outSum int64
	for _, g := range groups {
		n += g.Requests
		inSum += g.InputTokens * g.Requests
		outSum += g.OutputTokens
	}
	for _, model := range []string{"claude-sonnet-4", "gpt-4o", "claude-haiku-4.5"} {
		for _, lv := range [][]string{nil, {"prompt-cache", "50%"}, {"prompt-cache", "100%", "batch", "30%"}} {
			in := Inputs{RequestsPerMonth: n, Days: 30, InputTokens: big.NewRat(inSum, n), OutputTokens: big.NewRat(outSum, n), Model: model, Prompts: groups}
			e, err := New(pricing.MustDefault(), in)
			if err != nil {
				t.Fatal(err)
			}
			l := levers(t, lv...)
			f, err := e.Total(l, nil)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := pricing.MustDefault().Lookup(model)
			pc, b := new(big.Rat), new(big.Rat)
			if l.PromptCache != nil {
				pc = l.PromptCache
			}
			if l.Batch != nil {
				b = l.Batch
			}
			want := new(big.Rat)
			for _, g := range groups {
				gin := big.NewRat(g.InputTokens, 1)
				p := pc
				if !cacheable(m, p, gin) {
					p = new(big.Rat)
				}
				c := callCost(e.pricesAt(m, g.InputTokens), p, b, new(big.Rat).Mul(gin, big.NewRat(g.Requests, 1)), big.NewRat(g.OutputTokens, 1))
				want.Add(want, c)
			}
			if f.Monthly.Cmp(want) != 0 {
				t.Errorf("%s %v: monthly %s, per-prompt sum %s", model, lv, f.Monthly.FloatString(12), want.FloatString(12))
			}
		}
	}
}
