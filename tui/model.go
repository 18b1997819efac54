package tui

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// FetchFunc takes a snapshot; the Model calls it only inside tea.Cmds.
type FetchFunc func(ctx context.Context, cfg Config, now time.Time) (Snapshot, error)

// Options configure a Model.
type Options struct {
	Config   Config
	Fetch    FetchFunc // usually DBFetch(db)
	Now      func() time.Time
	Interval time.Duration
	Color    bool
	Ctx      context.Context
	// Act, when set, lets on-call change the selected tenant's policy
	// (b block/unblock, s sample share), each after a reason is typed.
	Act ActFunc
}

// DBFetch is the FetchFunc that reads db, keeping the sums of past days
// between refreshes when db offers such a cache (the SQLite ledger does).
func DBFetch(db Source) FetchFunc {
	var cache Grouper
	if c, ok := db.(interface{ NewLiveCache() *ledger.LiveCache }); ok {
		cache = c.NewLiveCache()
	}
	return func(ctx context.Context, cfg Config, now time.Time) (Snapshot, error) {
		return FetchCached(ctx, db, cache, cfg, now)
	}
}

// Messages.
type (
	tickMsg     struct{}
	snapshotMsg struct {
		snap Snapshot
		err  error
		seq  int
	}
)

// Model is the root model of `costctl top`.
type Model struct {
	opts   Options
	cfg    Config
	keys   keyMap
	styles styles

	snap    Snapshot
	have    bool
	err     error
	loading bool
	seq     int // of the latest fetch asked for; older answers are dropped

	width, height int
	sortCol       int // index in Columns
	reverse       bool
	filter        string
	filtering     bool
	paused        bool
	showHelp      bool

	selKey string  // the selected tenant (with Act): it stays selected as rows reorder
	prompt *prompt // an action being typed
	flash  string  // what the last action did
}

// New returns the model; run it with tea.NewProgram.
func New(o Options) Model {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Ctx == nil {
		o.Ctx = context.Background()
	}
	return Model{opts: o, cfg: o.Config, keys: defaultKeys(), styles: newStyles(o.Color), sortCol: defaultSort}
}

// Init fetches the first snapshot and starts the refresh tick.
func (m Model) Init() tea.Cmd {
	return tea.Batch(m.fetchCmd(m.seq), m.tick())
}

func (m Model) tick() tea.Cmd {
	return tea.Tick(m.opts.Interval, func(time.Time) tea.Msg { return tickMsg{} })
}

func (m Model) fetchCmd(seq int) tea.Cmd {
	cfg, fetch, now, ctx := m.cfg, m.opts.Fetch, m.opts.Now, m.opts.Ctx
	return func() tea.Msg {
		s, err := fetch(ctx, cfg, now())
		return snapshotMsg{snap: s, err: err, seq: seq}
	}
}

func (m *Model) refetch() tea.Cmd {
	m.seq++
	m.loading = true
	return m.fetchCmd(m.seq)
}

// Update handles messages; it never reads the database.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		return m, nil
	case tickMsg:
		if m.paused || m.loading {
			return m, m.tick()
		}
		return m, tea.Batch(m.refetch(), m.tick())
	case snapshotMsg:
		if msg.seq != m.seq {
			return m, nil
		}
		m.loading = false
		if msg.err != nil {
			m.err = msg.err
			return m, nil
		}
		m.err = nil
		m.snap, m.have = msg.snap, true
		return m, nil
	case tea.KeyPressMsg:
		return m.key(msg)
	case actionMsg:
		if msg.err != nil {
			m.flash = fmt.Sprintf("✖ %s: %v", msg.tenant, msg.err)
			return m, nil
		}
		m.flash = fmt.Sprintf("✔ %s: %s", msg.tenant, msg.what)
		return m, m.refetch()
	}
	return m, nil
}

func (m Model) key(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	if m.prompt != nil {
		return m.promptKey(msg)
	}
	if m.opts.Act != nil {
		switch msg.String() {
		case "up", "k", "down", "j":
			rows := m.visibleRows()
			if len(rows) == 0 {
				return m, nil
			}
			i := m.selectedIndex(rows)
			if k := msg.String(); k == "up" || k == "k" {
				i = max(i-1, 0)
			} else {
				i = min(i+1, len(rows)-1)
			}
			m.selKey = rows[i].Key
			return m, nil
		case "b":
			return m.startAction(false)
		case "s":
			return m.startAction(true)
		}
	}
	if m.filtering {
		switch msg.String() {
		case "ctrl+c":
			return m, tea.Quit
		case "esc":
			m.filtering, m.filter = false, ""
		case "enter":
			m.filtering = false
		case "backspace":
			if m.filter != "" {
				_, n := utf8.DecodeLastRuneInString(m.filter)
				m.filter = m.filter[:len(m.filter)-n]
			}
		default:
			if msg.Text != "" && utf8.RuneCountInString(m.filter) < 40 {
				m.filter += msg.Text
			}
		}
		return m, nil
	}
	switch {
	case m.keys.Quit.matches(msg):
		return m, tea.Quit
	case m.keys.Help.matches(msg):
		m.showHelp = !m.showHelp
	case m.keys.Clear.matches(msg):
		m.filter, m.showHelp = "", false
	case m.keys.Filter.matches(msg):
		m.filtering = true
	case m.keys.Pause.matches(msg):
		m.paused = !m.paused
		if !m.paused && !m.loading {
			return m, m.refetch()
		}
	case m.keys.Reverse.matches(msg):
		m.reverse = !m.reverse
	case m.keys.SortLeft.matches(msg):
		m.sortCol = m.nextSort(-1)
	case m.keys.SortRight.matches(msg):
		m.sortCol = m.nextSort(+1)
	case m.keys.Group.matches(msg):
		dims := ledger.Dimensions
		for i, d := range dims {
			if d == m.cfg.GroupBy {
				m.cfg.GroupBy = dims[(i+1)%len(dims)]
				break
			}
		}
		// Show the new grouping as soon as it is read (even when paused:
		// the user asked for it).
		return m, m.refetch()
	}
	return m, nil
}

// Minimum terminal size.
const (
	MinWidth  = 80
	MinHeight = 16
)

// View renders the screen.
func (m Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "costctl top"
	return v
}

func (m Model) render() string {
	if m.width == 0 || m.height == 0 {
		return "costctl top: starting…"
	}
	if m.width < MinWidth || m.height < MinHeight {
		msg := fmt.Sprintf("terminal too small: %d×%d (costctl top needs at least %d×%d; resize, or use costctl top --once)",
			m.width, m.height, MinWidth, MinHeight)
		return fitLines(lipgloss.NewStyle().Width(m.width).Render(msg), m.width, m.height)
	}
	var lines []string
	add := func(s string) { lines = append(lines, s) }
	st := m.styles

	// Title line.
	title := st.title.Render("costctl top") + " · " + windowLabel(m.cfg, m.snap) + " · by " + st.bold.Render(m.cfg.GroupBy)
	right := ""
	if m.have {
		right = "at " + m.snap.At.In(loc(m.cfg)).Format("15:04:05")
	}
	if m.paused {
		right = st.paused.Render("⏸ PAUSED") + " " + right
	}
	add(joinLR(title, right, m.width))

	if !m.have {
		if m.err != nil {
			add(st.alert.Render("✖ error: ") + m.err.Error())
		} else {
			add("reading the ledger…")
		}
		return fitLines(strings.Join(lines, "\n"), m.width, m.height)
	}
	s := m.snap
	budget := m.cfg.DailyBudget
	pct := 0.0
	if budget > 0 {
		pct = s.Spend.Cost.Float64() / pricing.AmountFromMoney(budget).Float64() * 100
	}
	spend := fmt.Sprintf("Spend   %s of %s daily budget ", st.bold.Render(WithMark(money(s.Spend.Cost), s.Spend.Calls, s.Spend.UnpricedCalls)), budget.DisplayRounded(2))
	pctS := " " + render1(pct) + "%"
	barW := min(max(m.width-lipgloss.Width(spend)-lipgloss.Width(pctS)-2, 10), 30)
	add(spend + m.bar(pct, barW) + pctS)
	add(fmt.Sprintf("Burn    %s/h (last 5 min) · projected today %s · prompt cache %s",
		st.bold.Render(WithMark(money(s.Burn), s.Recent.Calls, s.Recent.UnpricedCalls)),
		WithMark(money(s.Projected), s.Today.Calls+s.Recent.Calls, s.Today.UnpricedCalls+s.Recent.UnpricedCalls),
		render1(s.Spend.CachedShare()*100)+"%"))
	var peak pricing.Amount
	for _, t := range s.Series {
		if t.Cost.Cmp(peak) > 0 {
			peak = t.Cost
		}
	}
	peakS := " peak " + money(peak) + "/min"
	n := min(len(s.Series), m.width-lipgloss.Width("Last 60m ")-lipgloss.Width(peakS))
	series := s.Series[len(s.Series)-max(n, 0):]
	add(fmt.Sprintf("Last %dm %s%s", len(series), st.spark.Render(sparkline(series)), peakS))
	if s.Spend.CacheHits > 0 {
		add("Cache   " + CacheHitsLine(s.Spend))
	}
	if s.Spend.UnpricedCalls > 0 {
		add(st.warn.Render("⚠ UNPRICED") + fmt.Sprintf(": %s %s for models without a price (cost unknown, not $0)", compact(s.Spend.UnpricedCalls), plural(s.Spend.UnpricedCalls, "call", "calls")))
	}
	if len(s.Alerts) == 0 {
		add(st.ok.Render("✔ no alerts"))
	}
	for _, a := range s.Alerts {
		add(st.alert.Render(alertGlyph(a.Kind)+" "+alertWord(a.Kind)) + ": " + a.Message)
	}
	if m.err != nil {
		add(st.alert.Render("✖ refresh failed: ") + m.err.Error())
	}
	if m.prompt != nil {
		add(st.bold.Render(m.prompt.label()) + m.prompt.input + "█  (enter confirms, esc cancels)")
	} else if m.flash != "" {
		add(m.flash)
	} else if m.filtering || m.filter != "" {
		cursor := ""
		if m.filtering {
			cursor = "█"
		}
		add(fmt.Sprintf("Filter: %s%s  (esc clears)", m.filter, cursor))
	} else {
		add("")
	}

	// Table.
	rows := m.visibleRows()
	cols := m.columns()
	keyW := m.width - fixedWidth(cols)
	add(st.header.Render(m.headerLine(cols, keyW)))
	footer := m.footer()
	room := m.height - len(lines) - 1 - strings.Count(footer, "\n")
	if len(rows) == 0 {
		if m.filter != "" {
			add(fmt.Sprintf("no %s matches %q", m.cfg.GroupBy, m.filter))
		} else {
			add("no spend in this window")
		}
		room--
	}
	for i, r := range rows {
		if i >= room {
			break
		}
		if i == room-1 && len(rows) > room {
			add(fmt.Sprintf("… %d more (filter with /)", len(rows)-i))
			break
		}
		if m.opts.Act != nil && i == m.selectedIndex(rows) {
			add(m.styles.selected.Render(m.rowLineSel(r, cols, keyW, true)))
			continue
		}
		add(m.rowLine(r, cols, keyW))
	}
	for len(lines) < m.height-1-strings.Count(footer, "\n") {
		add("")
	}
	add(footer)
	return fitLines(strings.Join(lines, "\n"), m.width, m.height)
}

func (m Model) footer() string {
	if m.showHelp {
		full := m.keys.fullHelp()
		if m.opts.Act != nil {
			full = append(full, m.keys.actions())
		}
		return fullHelpView(full)
	}
	short := m.keys.shortHelp()
	if m.opts.Act != nil {
		short = append(m.keys.actions(), short...)
	}
	return shortHelpView(short, m.width)
}

func (m Model) visibleRows() []Row {
	var rows []Row
	f := strings.ToLower(m.filter)
	for _, r := range m.snap.Rows {
		if f == "" || strings.Contains(strings.ToLower(r.Key), f) {
			rows = append(rows, r)
		}
	}
	SortRows(rows, m.sortIndex(m.columns()), m.reverse)
	return rows
}

// fixedWidth is what the columns cols (indexes in Columns) other than the
// key take: each its width and one space before it.
func fixedWidth(cols []int) int {
	n := 0
	for _, i := range cols {
		if c := Columns[i]; !c.IsKey() {
			n += c.Width + 1
		}
	}
	return n
}

// requiredColumns are the indexes in Columns of the columns always shown
// (all but the optional ones).
var requiredColumns = ShownColumns(nil)

// columns are the indexes in Columns shown on screen: the optional ones
// only when some row of the snapshot has something for them and the
// terminal leaves the key column at least the width it has at MinWidth
// without them (else the screen reads as if they did not exist; top
// --once shows them).
func (m Model) columns() []int {
	shown := ShownColumns(m.snap.Rows)
	if len(shown) > len(requiredColumns) && m.width-fixedWidth(shown) < MinWidth-fixedWidth(requiredColumns) {
		return requiredColumns
	}
	return shown
}

// sortIndex is the column rows are sorted by: the one chosen with < >,
// or the default while that one is not shown (cols).
func (m Model) sortIndex(cols []int) int {
	for _, i := range cols {
		if i == m.sortCol {
			return i
		}
	}
	return defaultSort
}

// nextSort is the shown column step (±1) away from the sorted one,
// around the ends.
func (m Model) nextSort(step int) int {
	cols := m.columns()
	cur := m.sortIndex(cols)
	for p, i := range cols {
		if i == cur {
			return cols[(p+step+len(cols))%len(cols)]
		}
	}
	return defaultSort
}

func (m Model) headerLine(cols []int, keyW int) string {
	var b strings.Builder
	sortCol := m.sortIndex(cols)
	for _, i := range cols {
		c := Columns[i]
		name := c.Title(m.cfg.GroupBy)
		if i == sortCol {
			if m.reverse {
				name += "▲"
			} else {
				name += "▼"
			}
		}
		if c.IsKey() {
			b.WriteString(padRight(truncate(name, keyW), keyW))
			continue
		}
		if r := []rune(name); len(r) > c.Width {
			// Keep the sort arrow; shorten the name.
			name = string(r[:c.Width-1]) + string(r[len(r)-1])
		}
		b.WriteString(" " + padLeft(name, c.Width))
	}
	return b.String()
}

func (m Model) rowLine(r Row, cols []int, keyW int) string { return m.rowLineSel(r, cols, keyW, false) }

// rowLineSel renders a row; the selected one starts with "▸ " (visible
// without colour too).
func (m Model) rowLineSel(r Row, cols []int, keyW int, sel bool) string {
	var b strings.Builder
	for _, i := range cols {
		c := Columns[i]
		if c.IsKey() {
			cell := c.Cell(r)
			if sel {
				cell = "▸ " + cell
			}
			b.WriteString(padRight(truncate(cell, keyW), keyW))
			continue
		}
		b.WriteString(" " + padLeft(truncate(c.Cell(r), c.Width), c.Width))
	}
	line := b.String()
	if Mark(r.Calls, r.UnpricedCalls) != MarkNone {
		return m.styles.warn.Render(line)
	}
	return line
}

func (m Model) bar(pct float64, width int) string {
	filled := int(pct / 100 * float64(width))
	filled = min(max(filled, 0), width)
	st := m.styles.barOK
	if pct >= 100 {
		st = m.styles.barOver
	} else if pct >= 80 {
		st = m.styles.barWarn
	}
	return "[" + st.Render(strings.Repeat("█", filled)) + strings.Repeat("░", width-filled) + "]"
}

func windowLabel(cfg Config, s Snapshot) string {
	if cfg.Window == "today" {
		return "today (since 00:00 " + s.At.In(loc(cfg)).Format("MST") + ")"
	}
	return "last " + cfg.Window
}

func loc(cfg Config) *time.Location {
	if cfg.Loc == nil {
		return time.Local
	}
	return cfg.Loc
}

func alertGlyph(kind string) string {
	switch kind {
	case "over_budget":
		return "✖"
	case "projected_over_budget":
		return "▲"
	case "latency":
		return "◷"
	}
	return "!"
}

func alertWord(kind string) string {
	switch kind {
	case "over_budget":
		return "OVER BUDGET"
	case "projected_over_budget":
		return "PROJECTED OVER BUDGET"
	case "latency":
		return "SLOW"
	}
	return strings.ToUpper(kind)
}

var sparkLevels = []rune("▁▂▃▄▅▆▇█")

func sparkline(series []ledger.Totals) string {
	var peak pricing.Amount
	for _, t := range series {
		if t.Cost.Cmp(peak) > 0 {
			peak = t.Cost
		}
	}
	var b strings.Builder
	for _, t := range series {
		switch {
		case t.Cost.Sign() <= 0 && t.UnpricedCalls > 0:
			b.WriteRune('?')
		case t.Cost.Sign() <= 0 || peak.Sign() <= 0:
			b.WriteRune('·')
		default:
			i := int(t.Cost.Float64() / peak.Float64() * float64(len(sparkLevels)-1))
			b.WriteRune(sparkLevels[min(max(i, 0), len(sparkLevels)-1)])
		}
	}
	return b.String()
}

// money is a dollar amount for the screen: cents, "<$0.01" for dust.
func money(m pricing.Amount) string {
	if m.Sign() > 0 && m.Cmp(pricing.AmountFromPico(pricing.PicoPerDollar/200)) < 0 {
		return "<$0.01"
	}
	if m.Dollars >= 1_000_000 {
		return fmt.Sprintf("$%.2fM", m.Float64()/1e6)
	}
	return m.DisplayRounded(2)
}

// compact is a count for a 7-wide column: 999,999 then 1.2M, 3.4B.
func compact(n int64) string {
	switch {
	case n < 1_000_000:
		return pricing.GroupInt(n)
	case n < 1_000_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1fB", float64(n)/1e9)
}

func render1(p float64) string { return fmt.Sprintf("%.1f", round1(p)) }

func padLeft(s string, w int) string {
	if n := lipgloss.Width(s); n < w {
		return strings.Repeat(" ", w-n) + s
	}
	return s
}

func padRight(s string, w int) string {
	if n := lipgloss.Width(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return s
}

func truncate(s string, w int) string {
	if lipgloss.Width(s) <= w {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && lipgloss.Width(string(r))+1 > w {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

func joinLR(l, r string, width int) string {
	gap := width - lipgloss.Width(l) - lipgloss.Width(r)
	if gap < 1 {
		return l
	}
	return l + strings.Repeat(" ", gap) + r
}

// fitLines cuts every line to width and the whole to height, so a resize
// never wraps or scrolls.
func fitLines(s string, width, height int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > height {
		lines = lines[:height]
	}
	for i, l := range lines {
		if lipgloss.Width(l) > width {
			lines[i] = ansiTruncate(l, width)
		}
	}
	return strings.Join(lines, "\n")
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
