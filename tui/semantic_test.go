package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// semanticFixture is fixture plus the proxy's semantic cache: acme has 3
// semantic hits (each avoiding a $0.045 call) and 4 embedding calls,
// globex 5 embedding calls and no hit (a net loss under a cent).
func semanticFixture(t *testing.T) *ledger.DB {
	t.Helper()
	db := fixture(t, false)
	at := now.Add(-20 * time.Minute)
	var evs []ledger.Event
	for i := 0; i < 3; i++ {
		evs = append(evs, ledger.Event{Key: fmt.Sprintf("proxy:sem%d", i), Time: at, Source: ledger.SourceProxy, Tenant: "acme", Model: "gpt-4o",
			InputTokens: 10000, OutputTokens: 2000, CacheHit: true, Semantic: true, Avoided: pricing.Dollars(45) / 1000, Status: 200})
	}
	for i, tenant := range []string{"acme", "acme", "acme", "acme", "globex", "globex", "globex", "globex", "globex"} {
		evs = append(evs, ledger.Event{Key: fmt.Sprintf("proxy:embed%d", i), Time: at, Source: ledger.SourceProxy, Tenant: tenant,
			Metric: ledger.MetricEmbed, Model: "text-embedding-3-small", InputTokens: 200, CostExact: pricing.AmountFromPico(4_000_000), Status: 200})
	}
	if _, err := db.Insert(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return db
}

// header is the table's header line of the view.
func header(m Model) string {
	for _, l := range strings.Split(ansi.Strip(m.View().Content), "\n") {
		if strings.HasPrefix(l, strings.ToUpper(m.cfg.GroupBy)) {
			return l
		}
	}
	return ""
}

// The semantic columns show when some row has semantic hits or embedding
// calls and the terminal has room (100 columns); net savings may be
// negative. Without them, or on a narrower terminal, the table is as it
// was (the other goldens).
func TestSemanticColumnsView(t *testing.T) {
	db := semanticFixture(t)
	m := newModel(t, db, 100, 24)
	golden(t, "semantic", m)
	view := ansi.Strip(m.View().Content)
	for _, want := range []string{"SEM HITS", "NET SEM", "$0.13", "-<$0.01"} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q:\n%s", want, view)
		}
	}
	var acme, globex Row
	for _, r := range m.snap.Rows {
		switch r.Key {
		case "acme":
			acme = r
		case "globex":
			globex = r
		}
	}
	// 3 × $0.045 avoided − 4 × $0.000004 of embeddings; globex: − 5 × $0.000004.
	if acme.SemanticHits != 3 || acme.EmbedCalls != 4 || acme.NetSemantic() != usd(pricing.Dollars(135)/1000).Sub(pricing.AmountFromPico(16_000_000)) ||
		globex.SemanticHits != 0 || globex.EmbedCalls != 5 || globex.NetSemantic() != pricing.AmountFromPico(20_000_000).Neg() {
		t.Fatalf("acme %+v\nglobex %+v", acme.Totals, globex.Totals)
	}
	// A tenant with neither shows none.
	for _, l := range strings.Split(view, "\n") {
		if strings.HasPrefix(l, "initech") && strings.Count(l, "–") < 2 {
			t.Errorf("initech has no semantic data, want – twice: %q", l)
		}
	}

	// 99 columns: no room; the sort keys skip them.
	narrow := step(t, m, tea.WindowSizeMsg{Width: 99, Height: 24})
	if h := header(narrow); strings.Contains(h, "SEM") {
		t.Errorf("at 99 columns the header shows the semantic columns: %q", h)
	}

	// Sorted by net savings: acme first, globex (a loss) last, after the
	// tenants without semantic data.
	m = keys(t, m, ">", ">", ">") // cost → share → sem hits → net sem
	if Columns[m.sortCol].ID != "netsem" || !strings.Contains(header(m), "NET SEM▼") {
		t.Fatalf("sorted by %s, header %q", Columns[m.sortCol].ID, header(m))
	}
	rows := m.visibleRows()
	if rows[0].Key != "acme" || rows[len(rows)-1].Key != "globex" {
		t.Errorf("by net savings: %s first, %s last; want acme, globex", rows[0].Key, rows[len(rows)-1].Key)
	}
	// Too narrow for the column it sorts by: the default sort, marked.
	narrow = step(t, m, tea.WindowSizeMsg{Width: 99, Height: 24})
	if h := header(narrow); !strings.Contains(h, "COST▼") {
		t.Errorf("sort column hidden: header %q, want COST▼", h)
	}
	if narrow = keys(t, narrow, ">", ">"); Columns[narrow.sortCol].ID != "burn" {
		t.Errorf(">> from the default sort with the semantic columns hidden: %s, want burn (past share)", Columns[narrow.sortCol].ID)
	}
}

// Without semantic data the columns are not there and < > go round the
// others only.
func TestSemanticColumnsHidden(t *testing.T) {
	m := newModel(t, fixture(t, false), 160, 24)
	if h := header(m); strings.Contains(h, "SEM") {
		t.Fatalf("no semantic data, header %q", h)
	}
	if n := len(ShownColumns(m.snap.Rows)); n != len(Columns)-2 {
		t.Fatalf("%d columns shown, want %d", n, len(Columns)-2)
	}
	for range len(Columns) - 2 {
		m = keys(t, m, ">")
		if id := Columns[m.sortCol].ID; id == "semhits" || id == "netsem" {
			t.Fatalf("> reached the hidden column %s", id)
		}
	}
	if m.sortCol != defaultSort {
		t.Errorf("after one turn of > the sort is on %s, want cost", Columns[m.sortCol].ID)
	}
}

// Net savings may be negative: a minus sign, never a $0.00 that is not.
func TestSigned(t *testing.T) {
	for _, tc := range []struct {
		a           pricing.Amount
		cents, live string
	}{
		{usd(pricing.Dollars(5) / 4), "$1.25", "$1.25"},
		{usd(pricing.Dollars(5) / 4).Neg(), "-$1.25", "-$1.25"},
		{pricing.AmountFromPico(20_000_000).Neg(), "-<$0.01", "-<$0.01"},
		{usd(pricing.Dollars(2_500_000)).Neg(), "-$2,500,000.00", "-$2.50M"},
		{pricing.Amount{}, "$0.00", "$0.00"},
	} {
		if got := signed(Cents, tc.a); got != tc.cents {
			t.Errorf("signed(Cents, %s) = %q, want %q", tc.a, got, tc.cents)
		}
		if got := signed(money, tc.a); got != tc.live {
			t.Errorf("signed(money, %s) = %q, want %q", tc.a, got, tc.live)
		}
	}
}
