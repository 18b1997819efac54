package pricing

import (
	"errors"
	"math"
	"math/big"
	"testing"
)

// Ten 1-token events at $2.1875 per 1M tokens sum to exactly $0.000021875
// (Money, in whole nano-dollars, would round each to $0.0000021875 → 2188
// nano and sum to $0.00002188).
func TestAmountSumsExactly(t *testing.T) {
	r, err := ParseRatePer1M("2.1875")
	if err != nil {
		t.Fatal(err)
	}
	var sum Amount
	for i := 0; i < 10; i++ {
		p, err := r.CostPico(1)
		if err != nil {
			t.Fatal(err)
		}
		sum = sum.AddPico(p)
	}
	if sum.String() != "0.000021875" || sum.Display() != "$0.000021875" || sum.DisplayRounded(2) != "$0.00" || sum.DisplayRounded(8) != "$0.00002188" {
		t.Errorf("sum = %s / %s / %s / %s", sum.String(), sum.Display(), sum.DisplayRounded(2), sum.DisplayRounded(8))
	}
}

func TestAmountArithmetic(t *testing.T) {
	for _, tc := range []struct {
		a    Amount
		want string
	}{
		{AmountFromPico(1), "0.000000000001"},
		{AmountFromPico(-1), "-0.000000000001"},
		{AmountFromPico(-1_500_000_000_000), "-1.50"},
		{AmountFromPico(123_456_789_012_345), "123.456789012345"},
		{AmountFromMoney(Money(-2_500_000_001)), "-2.500000001"},
		{AmountFromMoney(Dollars(57500)), "57500.00"},
		{AmountFromPico(999_999_999_999).AddPico(1), "1.00"},
		{AmountFromPico(5).Sub(AmountFromPico(7)), "-0.000000000002"},
		{Amount{Dollars: 1 << 62}.Add(Amount{Dollars: 1 << 61}), "6917529027641081856.00"},
	} {
		if got := tc.a.String(); got != tc.want {
			t.Errorf("%+v = %s, want %s", tc.a, got, tc.want)
		}
		if back := tc.a.Neg().Neg(); back != tc.a {
			t.Errorf("neg neg %+v = %+v", tc.a, back)
		}
		if tc.a.Pico < 0 || tc.a.Pico >= PicoPerDollar {
			t.Errorf("not normalized: %+v", tc.a)
		}
	}
	// $10^12 of sums: a million events of $1,000,000 each, no wrap.
	var big Amount
	for i := 0; i < 1_000_000; i++ {
		big = big.AddPico(1_000_000 * PicoPerDollar)
	}
	if big.DisplayRounded(2) != "$1,000,000,000,000.00" {
		t.Errorf("10^12 = %s", big.DisplayRounded(2))
	}
	if got := AmountFromPico(-4_995_000_000).DisplayRounded(2); got != "$0.00" {
		t.Errorf("tiny negative rounds to %s", got)
	}
	if got := AmountFromPico(-1_005_000_000_000).DisplayRounded(2); got != "-$1.01" {
		t.Errorf("-1.005 = %s", got)
	}
	if got := AmountFromPico(1_999_995_000_000).DisplayRounded(2); got != "$2.00" {
		t.Errorf("1.999995 = %s", got)
	}
}

func TestCostPicoNeverWraps(t *testing.T) {
	r, _ := ParseRatePer1M("600")
	if p, err := r.CostPico(10_000_000_000); err != nil || p != 6_000_000_000_000_000_000 {
		t.Errorf("10^10 tokens at $600/1M = %d %v", p, err)
	}
	if _, err := r.CostPico(math.MaxInt64 / 2); !errors.Is(err, ErrCostOverflow) {
		t.Errorf("overflow not caught: %v", err)
	}
	if _, err := r.CostPico(-1); !errors.Is(err, ErrCostOverflow) {
		t.Errorf("negative tokens not caught: %v", err)
	}
}

func TestAmountDisplayRoundedTwelve(t *testing.T) {
	a := AmountFromPico(1_234_567_890_123)
	if got := a.DisplayRounded(12); got != "$1.234567890123" {
		t.Errorf("12 places: %s", got)
	}
	if got := a.Neg().Display(); got != "-$1.234567890123" {
		t.Errorf("negative display: %s", got)
	}
}

func TestCostAmountWideAndExact(t *testing.T) {
	r, _ := ParseRatePer1M("1000")
	a, err := r.CostAmount(10_000_000_000) // 10^10 tokens at $1,000/1M = $10,000,000
	if err != nil || a.String() != "10000000.00" {
		t.Errorf("%s %v", a, err)
	}
	r2, _ := ParseRatePer1M("2.1875")
	b, _ := r2.CostAmount(3)
	if b.String() != "0.0000065625" {
		t.Errorf("3 × $2.1875/1M = %s", b)
	}
	m := &Model{Name: "x", Rates: Rates{Input: r2, Output: r2}}
	e, err := m.CostAtExact(Usage{InputTokens: 1}, false, "")
	if err != nil || e.String() != "0.0000021875" {
		t.Errorf("CostAtExact = %s %v", e, err)
	}
	if c, _ := m.CostAt(Usage{InputTokens: 1}, false, ""); c != 2188 {
		t.Errorf("CostAt rounds to %d nano, want 2188", c)
	}
}

func TestAmountHelpers(t *testing.T) {
	a := AmountFromPico(700_000_000_001) // $0.700000000001
	if got := a.MulInt64(12).String(); got != "8.400000000012" {
		t.Errorf("×12 = %s", got)
	}
	if f := AmountFromPico(1_500_000_000_000).Float64(); f != 1.5 {
		t.Errorf("float %v", f)
	}
	r := new(big.Rat).SetFrac64(-1, 3) // -$0.333…
	if got, err := AmountFromRat(r); err != nil || got.String() != "-0.333333333333" {
		t.Errorf("-1/3 = %s %v", got, err)
	}
	if got, _ := AmountFromRat(big.NewRat(2, 3)); got.String() != "0.666666666667" {
		t.Errorf("2/3 = %s", got)
	}
}

// Money rounds like MoneyFromRat (halves away from zero), without big.Rat.
func TestAmountMoneyMatchesRat(t *testing.T) {
	for _, p := range []int64{0, 1, 499, 500, 501, 999, 1000, 1500, 2_187_500, -1, -499, -500, -501, -1500, -2_187_500,
		123_456_789_012_345, -123_456_789_012_345, 1 << 62} {
		a := AmountFromPico(p)
		got, ok := a.Money()
		want, err := MoneyFromRat(a.Rat())
		if !ok || err != nil || got != want {
			t.Errorf("%d pico: Money %d %v, MoneyFromRat %d %v", p, got, ok, want, err)
		}
	}
	if _, ok := (Amount{Dollars: 1 << 40}).Money(); ok {
		t.Error("$2^40 fits Money?")
	}
}
