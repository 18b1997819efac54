package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// columnRows are two rows where hi sorts before lo in every column's
// natural order (more of everything, and the name first A→Z), and both
// have something to show in every cell (some calls unpriced, semantic
// cache hits and embeddings, lo's at a net loss).
func columnRows() (hi, lo Row) {
	hi = Row{Key: "alpha", Totals: ledger.Totals{Calls: 40, InputTokens: 9000, OutputTokens: 700, Cost: usd(pricing.Dollars(30)),
		UnpricedCalls: 3, CacheHits: 2, LatencyMSSum: 40 * 2500, LatencyCalls: 40,
		SemanticHits: 2, SemanticAvoided: pricing.Dollars(4), EmbedCalls: 6, EmbedCost: usd(pricing.Dollars(1) / 50)},
		Burn: usd(pricing.Dollars(12)), RecentCalls: 4, RecentUnpriced: 1, Share: 75}
	lo = Row{Key: "beta", Totals: ledger.Totals{Calls: 10, InputTokens: 1000, OutputTokens: 100, Cost: usd(pricing.Dollars(10)),
		UnpricedCalls: 1, CacheHits: 1, LatencyMSSum: 10 * 800, LatencyCalls: 10,
		SemanticHits: 1, SemanticAvoided: pricing.Dollars(1) / 1000, EmbedCalls: 9, EmbedCost: usd(pricing.Dollars(1) / 20)}, // a net loss
		Burn: usd(pricing.Dollars(2)), RecentCalls: 2, RecentUnpriced: 0, Share: 25}
	return hi, lo
}

// Every column renders a header and a cell in the live view and the
// --once table, and sorts: adding a column is one entry in Columns, and
// this test checks the entry is whole.
func TestColumns(t *testing.T) {
	if len(Columns) == 0 || !Columns[0].IsKey() {
		t.Fatal("the first column must be the key (Width 0)")
	}
	hi, lo := columnRows()
	ids, jsonNames := map[string]bool{}, map[string]bool{}
	for i, c := range Columns {
		t.Run(c.ID, func(t *testing.T) {
			if c.ID == "" || ids[c.ID] {
				t.Fatalf("column %d: ID %q is empty or not unique", i, c.ID)
			}
			ids[c.ID] = true
			if ColumnIndex(c.ID) != i {
				t.Fatalf("ColumnIndex(%q) = %d, want %d", c.ID, ColumnIndex(c.ID), i)
			}
			if i > 0 && c.IsKey() {
				t.Fatal("only the first column may be the key (Width 0)")
			}
			if c.Cell == nil || c.Text == nil || c.Compare == nil {
				t.Fatal("Cell, Text and Compare are all needed")
			}
			// Headers: the live one fits the width with room for the sort arrow
			// only when shortened (headerLine keeps the arrow), the wide one is
			// the table's.
			if h := c.Title("tenant"); h == "" || !c.IsKey() && ansi.StringWidth(h) > c.Width {
				t.Errorf("live header %q: empty or wider than %d", h, c.Width)
			}
			if c.WideTitle("tenant") == "" {
				t.Error("no --once table header")
			}
			// Cells: something to show for a row, within the width in the
			// live view.
			for _, r := range []Row{hi, lo} {
				cell, text := c.Cell(r), c.Text(r)
				if c.ID == "unpriced" && r.UnpricedCalls == 0 {
					continue
				}
				if cell == "" || text == "" {
					t.Errorf("row %s: live cell %q, table cell %q: want both", r.Key, cell, text)
				}
				if !c.IsKey() && ansi.StringWidth(cell) > c.Width {
					t.Errorf("row %s: live cell %q wider than %d", r.Key, cell, c.Width)
				}
			}
			// Sorting: hi first, lo first reversed, equal rows tie.
			if c.Compare(hi, lo) >= 0 || c.Compare(lo, hi) <= 0 || c.Compare(hi, hi) != 0 {
				t.Errorf("Compare(hi, lo) = %d, Compare(lo, hi) = %d, Compare(hi, hi) = %d; want <0, >0, 0",
					c.Compare(hi, lo), c.Compare(lo, hi), c.Compare(hi, hi))
			}
			rows := []Row{lo, hi}
			if SortRows(rows, i, false); rows[0].Key != hi.Key {
				t.Errorf("sorted by %s: %s first, want %s", c.ID, rows[0].Key, hi.Key)
			}
			if SortRows(rows, i, true); rows[0].Key != lo.Key {
				t.Errorf("sorted by %s reversed: %s first, want %s", c.ID, rows[0].Key, lo.Key)
			}
			for _, f := range c.JSON {
				if f.Name == "" || jsonNames[f.Name] || f.Value == nil {
					t.Errorf("JSON field %q: empty, not unique or without a value", f.Name)
				}
				jsonNames[f.Name] = true
			}
		})
	}
}

// The < > keys reach every column, and the live view shows each one's
// header (the sorted column marked ▼) and cells, rows in its order.
func TestColumnsInView(t *testing.T) {
	hi, lo := columnRows()
	snap := Snapshot{At: now, Config: cfg(), Rows: []Row{lo, hi}}
	fetch := func(context.Context, Config, time.Time) (Snapshot, error) { return snap, nil }
	m := New(Options{Config: cfg(), Fetch: fetch, Now: func() time.Time { return now }})
	m = step(t, m, tea.WindowSizeMsg{Width: 120, Height: 24})
	m = step(t, m, m.fetchCmd(m.seq)())
	for range Columns {
		c := Columns[m.sortCol]
		view := ansi.Strip(m.View().Content)
		var header string
		for _, l := range strings.Split(view, "\n") {
			if strings.HasPrefix(l, "TENANT") {
				header = l
			}
		}
		want := []rune(c.Title("tenant") + "▼")
		if !c.IsKey() && len(want) > c.Width {
			want = append(want[:c.Width-1], '▼') // shortened, the arrow kept
		}
		if !strings.Contains(header, string(want)) {
			t.Errorf("sorted by %s: header %q lacks %q", c.ID, header, string(want))
		}
		for _, r := range []Row{hi, lo} {
			if cell := c.Cell(r); !strings.Contains(view, cell) {
				t.Errorf("sorted by %s: view lacks the cell %q of %s", c.ID, cell, r.Key)
			}
		}
		if strings.Index(view, hi.Key) > strings.Index(view, lo.Key) {
			t.Errorf("sorted by %s: %s shown before %s", c.ID, lo.Key, hi.Key)
		}
		m = keys(t, m, ">")
	}
	if m.sortCol != defaultSort {
		t.Errorf("after one turn of > the sort is on %s, want %s", Columns[m.sortCol].ID, Columns[defaultSort].ID)
	}
}
