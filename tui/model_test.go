package tui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// updating reports -update (the flag is registered by teatest's golden
// package, which this test binary links).
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// now is 14:30:20 UTC; the fixture spends across the day.
var now = time.Date(2026, 11, 20, 14, 30, 20, 0, time.UTC)

func fixture(t testing.TB, heavy bool) *ledger.DB {
	t.Helper()
	db, err := ledger.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var evs []ledger.Event
	add := func(key string, ago time.Duration, tenant, model, user string, cost pricing.Money, lat int64) {
		evs = append(evs, ledger.Event{Key: key, Time: now.Add(-ago), Source: ledger.SourceIngest, Tenant: tenant,
			Model: model, User: user, Endpoint: "/v1/chat", InputTokens: 12000, CachedTokens: 3000, OutputTokens: 800,
			Cost: cost, LatencyMS: lat, Unpriced: model == "mystery-llm"})
	}
	for i := 0; i < 30; i++ {
		add(fmt.Sprintf("a%d", i), time.Duration(i)*2*time.Minute, "acme", "gpt-4o", "alice", pricing.Dollars(2), 1200)
		add(fmt.Sprintf("g%d", i), time.Duration(i)*7*time.Minute, "globex", "gpt-4o-mini", "bob", pricing.Dollars(1)/4, 800)
	}
	add("i1", 3*time.Hour, "initech", "claude-sonnet-4", "carol", pricing.Dollars(40), 2500)
	add("u1", 1*time.Minute, "umbrella", "mystery-llm", "dave", 0, 0)
	add("y1", 26*time.Hour, "acme", "gpt-4o", "alice", pricing.Dollars(1000), 900) // yesterday
	if heavy {
		// A spike in the last 5 minutes: over budget and slow.
		for i := 0; i < 5; i++ {
			add(fmt.Sprintf("s%d", i), time.Duration(i)*time.Minute, "globex", "gpt-4o", "eve", pricing.Dollars(100), 90000)
		}
	}
	if _, err := db.Insert(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return db
}

func cfg() Config {
	return Config{Window: "today", GroupBy: "tenant", DailyBudget: pricing.Dollars(500), LatencyAlert: 30 * time.Second, Loc: time.UTC}
}

func newModel(t *testing.T, db *ledger.DB, w, h int) Model {
	t.Helper()
	m := New(Options{Config: cfg(), Fetch: DBFetch(db), Now: func() time.Time { return now }, Color: true})
	m = step(t, m, tea.WindowSizeMsg{Width: w, Height: h})
	// Run the fetch command the way the program would, outside Update.
	return step(t, m, m.fetchCmd(m.seq)())
}

func step(t *testing.T, m Model, msg tea.Msg) Model {
	t.Helper()
	nm, _ := m.Update(msg)
	return nm.(Model)
}

func keys(t *testing.T, m Model, ks ...string) Model {
	t.Helper()
	for _, k := range ks {
		var msg tea.KeyPressMsg
		switch k {
		case "esc":
			msg = tea.KeyPressMsg{Code: tea.KeyEscape}
		case "enter":
			msg = tea.KeyPressMsg{Code: tea.KeyEnter}
		case "space":
			msg = tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
		default:
			r := []rune(k)[0]
			msg = tea.KeyPressMsg{Code: r, Text: k}
		}
		m = step(t, m, msg)
	}
	return m
}

func golden(t *testing.T, name string, m Model) {
	t.Helper()
	v := m.View()
	if !v.AltScreen {
		t.Error("the view must use the alternate screen")
	}
	got := ansi.Strip(v.Content)
	for i, l := range strings.Split(got, "\n") {
		if w := ansi.StringWidth(l); w > m.width {
			t.Errorf("%s: line %d is %d wide, terminal is %d: %q", name, i+1, w, m.width, l)
		}
	}
	if n := strings.Count(got, "\n") + 1; n > m.height {
		t.Errorf("%s: %d lines, terminal has %d", name, n, m.height)
	}
	p := filepath.Join("testdata", name+".golden")
	if updating() {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./tui -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./tui -update to accept):\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func TestViews(t *testing.T) {
	db := fixture(t, false)
	m := newModel(t, db, 100, 24)
	golden(t, "normal", m)

	golden(t, "filtered", keys(t, m, "/", "G", "L", "O"))
	golden(t, "filter_accepted_sorted_by_calls_reversed", keys(t, m, "/", "a", "enter", "<", "<", "<", "r"))
	if got := keys(t, m, "/", "x", "esc"); got.filter != "" || got.filtering {
		t.Fatalf("esc must clear the filter: %q %v", got.filter, got.filtering)
	}

	paused := keys(t, m, "p")
	golden(t, "paused", paused)
	// A tick while paused does not fetch; space resumes and fetches.
	if _, cmd := paused.Update(tickMsg{}); cmd == nil {
		t.Fatal("a paused tick must re-arm the tick")
	}
	if nm := step(t, paused, tickMsg{}); nm.loading {
		t.Fatal("a paused model must not fetch on a tick")
	}
	if resumed := keys(t, paused, "space"); resumed.paused || !resumed.loading {
		t.Fatalf("space must resume and refresh (paused=%v loading=%v)", resumed.paused, resumed.loading)
	}

	golden(t, "too_small", step(t, m, tea.WindowSizeMsg{Width: 60, Height: 12}))
	// And back: a resize re-renders at the new size.
	golden(t, "resized_80x16", step(t, step(t, m, tea.WindowSizeMsg{Width: 60, Height: 12}), tea.WindowSizeMsg{Width: 80, Height: 16}))

	golden(t, "help", keys(t, m, "?"))
	// Sorting by the last column keeps the header within its width.
	golden(t, "sorted_by_unpriced", keys(t, m, ">", ">", ">", ">"))

	// g cycles the grouping and asks for a new snapshot.
	g := keys(t, m, "g")
	if g.cfg.GroupBy != "model" || !g.loading {
		t.Fatalf("g: group %q loading %v", g.cfg.GroupBy, g.loading)
	}
	golden(t, "by_model", step(t, g, g.fetchCmd(g.seq)()))
	// A stale snapshot (from before the switch) is dropped.
	if st := step(t, g, snapshotMsg{seq: g.seq - 1}); st.snap.Config.GroupBy != "tenant" || !st.loading {
		t.Fatal("a stale snapshot must be ignored")
	}

	if _, cmd := m.Update(tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}); cmd == nil {
		t.Fatal("ctrl+c must quit")
	} else if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Fatal("ctrl+c must quit")
	}
}

func TestAlertView(t *testing.T) {
	db := fixture(t, true)
	m := newModel(t, db, 100, 24)
	golden(t, "alert", m)
	var kinds []string
	for _, a := range m.snap.Alerts {
		kinds = append(kinds, a.Kind)
	}
	if got := strings.Join(kinds, ","); got != "over_budget,latency" {
		t.Fatalf("alerts %s", got)
	}
}

func TestFetchFigures(t *testing.T) {
	db := fixture(t, false)
	s, err := Fetch(context.Background(), db, cfg(), now)
	if err != nil {
		t.Fatal(err)
	}
	// today: acme 30×$2 + globex 30×$0.25 + initech $40 = $107.50
	if s.Spend.Cost != usd(pricing.Dollars(107)+pricing.Dollars(1)/2) || s.Spend.Calls != 62 || s.Spend.UnpricedCalls != 1 {
		t.Fatalf("spend %+v", s.Spend)
	}
	// last 5 minutes (14:26–14:30): acme at 0,2,4 min ago = $6, globex at 0 = $0.25 → ×12 = $75/h
	if s.Burn != usd(pricing.Dollars(75)) {
		t.Fatalf("burn %s", s.Burn)
	}
	// $107.50 + $75/h × 9h29m40s (to midnight) = $107.50 + $712.083333333 (a projection: to the nano-dollar)
	if s.Projected.String() != "819.583333333" {
		t.Fatalf("projected %s", s.Projected)
	}
	if len(s.Series) != SeriesMinutes || s.Series[SeriesMinutes-1].Cost != usd(pricing.Dollars(2)+pricing.Dollars(1)/4) {
		t.Fatalf("series last %+v", s.Series[SeriesMinutes-1])
	}
	if len(s.Alerts) != 1 || s.Alerts[0].Kind != "projected_over_budget" {
		t.Fatalf("alerts %+v", s.Alerts)
	}
	w1h := cfg()
	w1h.Window = "1h"
	s, err = Fetch(context.Background(), db, w1h, now)
	if err != nil {
		t.Fatal(err)
	}
	// 1h: minutes 13:30..14:30 → acme i=0..30 step 2min within 60 min: i=0..29 all ≤58 min → 30 × $2; globex i·7 ≤ 60 → i=0..8 → 9 × $0.25
	if s.Spend.Cost != usd(pricing.Dollars(60)+pricing.Dollars(9)/4) {
		t.Fatalf("1h spend %s", s.Spend.Cost)
	}
}

// Cache hits are not calls: the view counts them on a line of their own
// and leaves them out of CALLS, tokens and spend.
func TestCacheHitsView(t *testing.T) {
	db := fixture(t, false)
	var evs []ledger.Event
	for i := 0; i < 4; i++ {
		evs = append(evs, ledger.Event{Key: fmt.Sprintf("eval:r:%d:q:cache", i), Time: now.Add(-20 * time.Minute), Source: ledger.SourceEval,
			Tenant: "hooli", Metric: "q", Model: "gpt-4o-mini", InputTokens: 5000, OutputTokens: 100, CacheHit: true, Avoided: pricing.Dollars(3)})
	}
	if _, err := db.Insert(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	m := newModel(t, db, 100, 24)
	golden(t, "cache_hits", m)
	if s := m.snap.Spend; s.Calls != 62 || s.CacheHits != 4 || s.Avoided != usd(pricing.Dollars(12)) || s.AvoidedInputTokens != 20000 {
		t.Fatalf("spend %+v", s)
	}
}

// usd is m as an exact Amount.
func usd(m pricing.Money) pricing.Amount { return pricing.AmountFromMoney(m) }
