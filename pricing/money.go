package pricing

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
)

// Money is an exact amount of US dollars counted in nano-dollars (1e-9 USD).
// An int64 holds ±$9.2 billion, far beyond any bill costctl projects, and
// every per-token price that is a multiple of $0.001 per 1M tokens turns into
// a whole number of nano-dollars per token, so usage × price never rounds.
type Money int64

// Nano-dollar scale factors.
const (
	NanoPerDollar Money = 1_000_000_000
	maxMoneyScale int   = 9
)

// Dollars returns m for a whole number of dollars.
func Dollars(d int64) Money { return Money(d) * NanoPerDollar }

// ParseMoney parses a decimal dollar amount: "57500", "0.00575", "$1,234.50",
// "1e3". More than nine decimal places is an error (it cannot be exact).
func ParseMoney(s string) (Money, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(t, "$")
	t = strings.ReplaceAll(t, ",", "")
	t = strings.ReplaceAll(t, "_", "")
	if t == "" {
		return 0, fmt.Errorf("invalid amount %q: empty", s)
	}
	r, ok := new(big.Rat).SetString(t)
	if !ok {
		return 0, fmt.Errorf("invalid amount %q: not a decimal number", s)
	}
	r.Mul(r, big.NewRat(int64(NanoPerDollar), 1))
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid amount %q: more than 9 decimal places", s)
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, fmt.Errorf("invalid amount %q: out of range", s)
	}
	return Money(n.Int64()), nil
}

// MoneyFromRat rounds r (in dollars) to the nearest nano-dollar, halves away from zero.
func MoneyFromRat(r *big.Rat) (Money, error) {
	x := new(big.Rat).Mul(r, big.NewRat(int64(NanoPerDollar), 1))
	q, rem := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	// rem has the sign of the numerator; round half away from zero.
	twice := new(big.Int).Mul(new(big.Int).Abs(rem), big.NewInt(2))
	if twice.Cmp(x.Denom()) >= 0 {
		if x.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() {
		return 0, errors.New("amount out of range")
	}
	return Money(q.Int64()), nil
}

// Rat returns m in dollars as an exact rational.
func (m Money) Rat() *big.Rat { return big.NewRat(int64(m), int64(NanoPerDollar)) }

// String writes m as a plain decimal with at least two decimals and no
// trailing zeros beyond them: "57500.00", "0.00575", "-1.50". This is the
// form JSON output uses.
func (m Money) String() string { return m.decimal(2, maxMoneyScale, false) }

// Display formats m for a table: "$57,500.00", "$0.00575", "$0.00".
func (m Money) Display() string { return "$" + m.decimal(2, maxMoneyScale, true) }

// DisplayRounded formats m for a table with exactly `places` decimals
// (rounded half away from zero), with thousands separators: "$57,500.00".
func (m Money) DisplayRounded(places int) string {
	r, _ := MoneyFromRat(m.roundRat(places))
	return "$" + r.decimal(places, places, true)
}

func (m Money) roundRat(places int) *big.Rat {
	scale := int64(math.Pow10(maxMoneyScale - places))
	v := int64(m)
	q, rem := v/scale, v%scale
	if rem < 0 {
		rem = -rem
	}
	if rem*2 >= scale {
		if v < 0 {
			q--
		} else {
			q++
		}
	}
	return big.NewRat(q*scale, int64(NanoPerDollar))
}

func (m Money) decimal(minFrac, maxFrac int, group bool) string {
	neg := m < 0
	u := uint64(m)
	if neg {
		u = uint64(-m)
	}
	whole := u / uint64(NanoPerDollar)
	frac := u % uint64(NanoPerDollar)
	fs := fmt.Sprintf("%09d", frac)[:maxFrac]
	for len(fs) > minFrac && fs[len(fs)-1] == '0' {
		fs = fs[:len(fs)-1]
	}
	ws := strconv.FormatUint(whole, 10)
	if group {
		ws = groupThousands(ws)
	}
	s := ws
	if fs != "" {
		s += "." + fs
	}
	if neg && (whole != 0 || strings.Trim(fs, "0") != "") {
		s = "-" + s
	}
	return s
}

func groupThousands(s string) string {
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// GroupInt formats n with thousands separators: 5123 → "5,123".
func GroupInt(n int64) string {
	if n < 0 {
		return "-" + groupThousands(strconv.FormatInt(-n, 10))
	}
	return groupThousands(strconv.FormatInt(n, 10))
}

// MarshalJSON writes m as a decimal string ("57500.00"), as infracost does.
func (m Money) MarshalJSON() ([]byte, error) { return []byte(`"` + m.String() + `"`), nil }

// UnmarshalJSON accepts a decimal string or a JSON number.
func (m *Money) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := ParseMoney(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Rate is a price per token, counted in pico-dollars (1e-12 USD) per token,
// i.e. $0.000001 per 1M tokens. Published prices ($0.001 per 1M granularity)
// are whole multiples of 1000 pico-dollars, so the cost of any token count
// is an exact number of nano-dollars.
type Rate int64

const picoPerPer1M = 1_000_000 // pico-dollars per token for $1 per 1M tokens

// ParseRatePer1M parses a price in USD per 1M tokens ("2.50", "0.075", "1.25e-1").
func ParseRatePer1M(s string) (Rate, error) {
	return parseRate(s, big.NewRat(picoPerPer1M, 1), "per 1M tokens")
}

// ParseRatePerToken parses a price in USD per token ("2.5e-06"), as LiteLLM writes them.
func ParseRatePerToken(s string) (Rate, error) {
	return parseRate(s, big.NewRat(1_000_000_000_000, 1), "per token")
}

func parseRate(s string, scale *big.Rat, unit string) (Rate, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "$")
	r, ok := new(big.Rat).SetString(t)
	if !ok {
		return 0, fmt.Errorf("invalid price %q: not a number", s)
	}
	if r.Sign() < 0 {
		return 0, fmt.Errorf("invalid price %q: negative", s)
	}
	r.Mul(r, scale)
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid price %q %s: finer than $0.000001 per 1M tokens", s, unit)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("invalid price %q: out of range", s)
	}
	return Rate(r.Num().Int64()), nil
}

// Per1M writes the rate in USD per 1M tokens, e.g. "2.50", "0.075".
func (r Rate) Per1M() string {
	// pico per token == micro-dollars per 1M tokens
	m := Money(int64(r) * 1000) // nano-dollars per 1M tokens
	return m.String()
}

// Rat returns the rate in dollars per token.
func (r Rate) Rat() *big.Rat { return big.NewRat(int64(r), 1_000_000_000_000) }

// Cost returns tokens × r, exact when r is a multiple of $0.001 per 1M tokens,
// otherwise rounded half up to the nano-dollar.
func (r Rate) Cost(tokens int64) Money {
	if tokens == 0 || r == 0 {
		return 0
	}
	neg := tokens < 0
	t := uint64(tokens)
	if neg {
		t = uint64(-tokens)
	}
	hi, lo := bits.Mul64(t, uint64(r))
	if hi >= 1000 {
		// would overflow the quotient; saturate (never happens with real usage)
		return Money(math.MaxInt64)
	}
	q, rem := bits.Div64(hi, lo, 1000)
	if rem >= 500 {
		q++
	}
	if neg {
		return -Money(q)
	}
	return Money(q)
}
