package tui

// The "unpriced" marking, for top (live and --once) and report alike.
//
// An unpriced call is an event for a model without a price: its cost is
// unknown, not $0. A priced figure (cost, burn, projection) leaves those
// calls out, so it says so: "$1.00+" when some calls are unpriced (the
// figure is a lower bound), "unpriced" when all are (the figure is
// unknown).

// Marks Mark returns.
const (
	MarkNone = ""         // no unpriced calls: the figure is whole
	MarkSome = "+"        // some unpriced: the figure is a lower bound
	MarkAll  = "unpriced" // all unpriced: the figure is unknown
)

// Mark says how a priced figure over calls relates to the unpriced ones
// among them: MarkNone, MarkSome or MarkAll.
func Mark(calls, unpriced int64) string {
	switch {
	case unpriced <= 0:
		return MarkNone
	case unpriced >= calls:
		return MarkAll
	}
	return MarkSome
}

// WithMark renders a money figure s with its Mark: "$1.00", "$1.00+",
// "unpriced".
func WithMark(s string, calls, unpriced int64) string {
	switch Mark(calls, unpriced) {
	case MarkAll:
		return MarkAll
	case MarkSome:
		return s + MarkSome
	}
	return s
}
