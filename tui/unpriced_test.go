package tui

import "testing"

// One marking of unpriced calls for top and report.
func TestMark(t *testing.T) {
	for _, tc := range []struct {
		calls, unpriced int64
		mark, with      string
	}{
		{0, 0, MarkNone, "$1.00"},
		{5, 0, MarkNone, "$1.00"},
		{5, 2, MarkSome, "$1.00+"},
		{5, 5, MarkAll, "unpriced"},
	} {
		if got := Mark(tc.calls, tc.unpriced); got != tc.mark {
			t.Errorf("Mark(%d, %d) = %q, want %q", tc.calls, tc.unpriced, got, tc.mark)
		}
		if got := WithMark("$1.00", tc.calls, tc.unpriced); got != tc.with {
			t.Errorf("WithMark($1.00, %d, %d) = %q, want %q", tc.calls, tc.unpriced, got, tc.with)
		}
	}
}
