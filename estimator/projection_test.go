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
		{"prompt-cache", func(*testing.T) Inputs { return tableInputs() }, []string{"prompt-cache", "40%"}, "0.0025", "833.333333333", "25000.00", "5000.00", "16.67", nil},
		{"batch half", func(*testing.T) Inputs { return tableInputs() }, []string{"batch", "0.5"}, "0.00225", "750.00", "22500.00", "7500.00", "25.00", nil},
		{"prompt-cache + full batch", func(*testing.T) Inputs { return tableInputs() }, []string{"prompt-cache", "0.4", "batch", "1"}, "0.00125", "416.666666667", "12500.00", "17500.00", "58.33", []string{"baseline", "prompt-cache", "batch"}},
		{"infra", func(*testing.T) Inputs { return tableInputs() }, []string{"infra", "100"}, "0.00301", "1003.333333333", "30100.00", "-100.00", "-0.33", []string{"baseline", "infra"}},
		{"override batch is 50%", seedInputs, []string{"batch", "100%"}, "0.002875", "958.333333333", "28750.00", "28750.00", "50.00", nil},
		{"override prompt-cache with --cached-price", func(t *testing.T) Inputs {
			in := seedInputs(t)
			in.CachedPrice = rate(t, "2.5")
			return in
		}, []string{"prompt-cache", "50%"}, "0.0045", "1500.00", "45000.00", "12500.00", "21.74", nil},
		{"all levers", func(*testing.T) Inputs { return tableInputs() }, []string{
			"sample", "10%", "cascade", "free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2", "cache-hit", "20%",
			"prompt-cache", "50%", "batch", "50%", "infra", "100",
		}, "0.000041065", "13.688333333", "410.65", "29589.35", "98.63",
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
		// gpt-4o 0.002375, mini 0.0001425 → 0.3×0.0001425+0.2×0.002375 = 0.00051775 × 0.1 × 0.8
		{"prompt-cache", "0.00004142", "414.20", "50% of input tokens at cached price"},
		{"batch", "0.000031065", "310.65", "50% of calls via Batch API"},
		{"infra", "0.000041065", "410.65", "+$100.00/month fixed"},
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
