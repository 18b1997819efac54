package pricing

import (
	"errors"
	"fmt"
	"math/big"
	"math/bits"
	"strings"
)

// PicoPerDollar is the number of pico-dollars in a dollar.
const PicoPerDollar = 1_000_000_000_000

// Amount is an exact sum of money for the ledger: whole dollars plus
// pico-dollars (0 ≤ Pico < 10^12). One event's cost is an exact number of
// pico-dollars (a token count × a Rate, never rounded); a sum of them needs
// more than 64 bits once it passes $9.2 million, so Amount carries the
// dollars apart: it cannot wrap before $9.2×10^18. Sums round once, when
// printed.
type Amount struct {
	Dollars int64
	Pico    int64
}

// AmountFromPico is p pico-dollars.
func AmountFromPico(p int64) Amount {
	d, r := p/PicoPerDollar, p%PicoPerDollar
	if r < 0 {
		d, r = d-1, r+PicoPerDollar
	}
	return Amount{Dollars: d, Pico: r}
}

// AmountFromMoney is m (nano-dollars) as an Amount.
func AmountFromMoney(m Money) Amount {
	d, r := int64(m/NanoPerDollar), int64(m%NanoPerDollar)
	return Amount{Dollars: d}.add(AmountFromPico(r * 1000))
}

func (a Amount) add(b Amount) Amount {
	p := a.Pico + b.Pico // < 2×10^12: no overflow
	d := a.Dollars + b.Dollars
	if p >= PicoPerDollar {
		p -= PicoPerDollar
		d++
	}
	return Amount{Dollars: d, Pico: p}
}

// Add returns a + b.
func (a Amount) Add(b Amount) Amount { return a.add(b) }

// AddPico returns a + p pico-dollars.
func (a Amount) AddPico(p int64) Amount { return a.add(AmountFromPico(p)) }

// Sub returns a − b.
func (a Amount) Sub(b Amount) Amount { return a.add(b.Neg()) }

// Neg returns −a.
func (a Amount) Neg() Amount {
	if a.Pico == 0 {
		return Amount{Dollars: -a.Dollars}
	}
	return Amount{Dollars: -a.Dollars - 1, Pico: PicoPerDollar - a.Pico}
}

// Cmp compares a and b: −1, 0 or +1.
func (a Amount) Cmp(b Amount) int {
	switch {
	case a.Dollars < b.Dollars:
		return -1
	case a.Dollars > b.Dollars:
		return 1
	case a.Pico < b.Pico:
		return -1
	case a.Pico > b.Pico:
		return 1
	}
	return 0
}

// IsZero reports whether a is $0.
func (a Amount) IsZero() bool { return a.Dollars == 0 && a.Pico == 0 }

// Sign is −1, 0 or +1.
func (a Amount) Sign() int { return a.Cmp(Amount{}) }

// Rat is a in dollars, exactly.
func (a Amount) Rat() *big.Rat {
	r := new(big.Rat).SetInt64(a.Dollars)
	return r.Add(r, big.NewRat(a.Pico, PicoPerDollar))
}

// Money rounds a to the nearest nano-dollar (halves away from zero); ok is
// false when it does not fit an int64 of nano-dollars (±$9.2 billion).
func (a Amount) Money() (Money, bool) {
	const maxDollars = int64((1<<63 - 1) / NanoPerDollar)
	if a.Dollars > maxDollars || a.Dollars < -maxDollars {
		return 0, false
	}
	// Pico is in [0, 10^12): round it to nano-dollars, halves away from
	// zero (for a negative amount the halves go down).
	q, r := a.Pico/1000, a.Pico%1000
	if r > 500 || (r == 500 && a.Dollars >= 0) {
		q++
	}
	return Money(a.Dollars*int64(NanoPerDollar) + q), true
}

// String is the exact decimal ("21.875" → "0.000021875"), with at least two
// decimals: the form JSON uses.
func (a Amount) String() string { return a.format(2, 12, false) }

// Display is the exact amount for a table: "$1,234.56", "$0.000021875",
// "-$1.50".
func (a Amount) Display() string {
	if a.Sign() < 0 {
		return "-$" + a.Neg().format(2, 12, true)
	}
	return "$" + a.format(2, 12, true)
}

// DisplayRounded is a rounded to places decimals (halves away from zero),
// with thousands separators: "$1,234.57".
func (a Amount) DisplayRounded(places int) string {
	if places < 0 {
		places = 0
	}
	if places >= 12 {
		places = 12
	}
	unit := int64(1)
	for i := places; i < 12; i++ {
		unit *= 10
	}
	neg := a.Sign() < 0
	x := a
	if neg {
		x = a.Neg()
	}
	q, r := x.Pico/unit, x.Pico%unit
	if 2*r >= unit {
		q++
	}
	d := x.Dollars
	scale := PicoPerDollar / unit
	if q >= scale {
		q -= scale
		d++
	}
	s := groupThousands(fmt.Sprint(d))
	if places > 0 {
		s += "." + fmt.Sprintf("%0*d", places, q)
	}
	if neg && (d != 0 || q != 0) {
		return "-$" + s
	}
	return "$" + s
}

func (a Amount) format(minFrac, maxFrac int, group bool) string {
	neg := a.Sign() < 0
	x := a
	if neg {
		x = a.Neg()
	}
	frac := fmt.Sprintf("%012d", x.Pico)[:maxFrac]
	frac = strings.TrimRight(frac, "0")
	for len(frac) < minFrac {
		frac += "0"
	}
	whole := fmt.Sprint(x.Dollars)
	if group {
		whole = groupThousands(whole)
	}
	s := whole
	if frac != "" {
		s += "." + frac
	}
	if neg {
		s = "-" + s
	}
	return s
}

// MarshalJSON writes the exact decimal as a string.
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(`"` + a.String() + `"`), nil }

// ErrCostOverflow is a cost that does not fit the bounds costctl keeps
// (a token count or price far beyond any real bill).
var ErrCostOverflow = errors.New("cost out of range")

// CostAmount is tokens × r exactly, as an Amount: 128-bit arithmetic, so
// any token count costctl accepts (≤ 10^10) at any rate fits; it fails
// only beyond 9.2×10^18 dollars.
func (r Rate) CostAmount(tokens int64) (Amount, error) {
	if tokens < 0 || r < 0 {
		return Amount{}, fmt.Errorf("%w: %d tokens at $%s/1M", ErrCostOverflow, tokens, r.Per1M())
	}
	hi, lo := bits.Mul64(uint64(tokens), uint64(r))
	if hi >= PicoPerDollar {
		return Amount{}, fmt.Errorf("%w: %d tokens at $%s/1M", ErrCostOverflow, tokens, r.Per1M())
	}
	q, rem := bits.Div64(hi, lo, PicoPerDollar)
	if q > 1<<62 {
		return Amount{}, fmt.Errorf("%w: %d tokens at $%s/1M", ErrCostOverflow, tokens, r.Per1M())
	}
	return Amount{Dollars: int64(q), Pico: int64(rem)}, nil
}

// CostPico is tokens × r in pico-dollars, exact; it fails instead of
// wrapping when the product does not fit an int64 (about $9.2 million for
// one token kind of one event).
func (r Rate) CostPico(tokens int64) (int64, error) {
	if tokens < 0 || r < 0 {
		return 0, fmt.Errorf("%w: %d tokens at %s/1M", ErrCostOverflow, tokens, r.Per1M())
	}
	hi, lo := bits.Mul64(uint64(tokens), uint64(r))
	if hi != 0 || lo > 1<<63-1 {
		return 0, fmt.Errorf("%w: %d tokens at $%s/1M", ErrCostOverflow, tokens, r.Per1M())
	}
	return int64(lo), nil
}

// MulInt64 returns a × k (k ≥ 0 small, e.g. a per-5-minute spend × 12).
func (a Amount) MulInt64(k int64) Amount {
	hi, lo := bits.Mul64(uint64(a.Pico), uint64(k))
	q, r := bits.Div64(hi%PicoPerDollar, lo, PicoPerDollar) // a.Pico×k < 10^12×k: hi is tiny
	return Amount{Dollars: a.Dollars*k + int64(q), Pico: int64(r)}
}

// Float64 is a in dollars as a float, for ratios and bars only.
func (a Amount) Float64() float64 {
	return float64(a.Dollars) + float64(a.Pico)/PicoPerDollar
}

// AmountFromRat rounds r (dollars) to the nearest pico-dollar, halves away
// from zero.
func AmountFromRat(r *big.Rat) (Amount, error) {
	p := new(big.Rat).Mul(r, new(big.Rat).SetInt64(PicoPerDollar))
	num, den := p.Num(), p.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	d, pico := new(big.Int).DivMod(q, big.NewInt(PicoPerDollar), new(big.Int))
	if !d.IsInt64() {
		return Amount{}, ErrCostOverflow
	}
	return Amount{Dollars: d.Int64(), Pico: pico.Int64()}, nil
}
