package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/spf13/cobra"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
	"github.com/costctl/costctl/tui"
)

// TopOptions are the inputs of `costctl top`.
type TopOptions struct {
	IO          *IOStreams
	Now         func() time.Time
	Loc         *time.Location
	Ledger      func(context.Context) (TopLedger, error)
	Color       bool
	Config      tui.Config
	Interval    time.Duration
	Once        bool
	Format      string
	FailOnAlert bool
	// Act changes a tenant's policy from the live view (b, s); nil: the
	// view only reads.
	Act tui.ActFunc
}

func newTopCmd(f *Factory, runF func(*TopOptions) error) *cobra.Command {
	opts := &TopOptions{IO: f.IO, Now: f.Now, Loc: time.Local,
		Ledger: func(ctx context.Context) (TopLedger, error) { return f.OpenExistingLedger(ctx, false) }}
	opts.Act = func(ctx context.Context, a tui.Action) (string, error) { return topAct(ctx, f, a) }
	var budget string
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live spend per tenant, model, user... (a terminal UI for on-call)",
		Long: `A full-screen live view of LLM spend from the ledger (what eval writes and
ingest brings in), refreshed every --interval.

The header shows the spend in the window (--window today|1h|24h|7d; today is
since local midnight) against --daily-budget as a bar with %, the burn rate
over the last 5 minutes in $/hour, today's projected total at that rate, a
sparkline of spend per minute over the last hour, and the share of prompt
tokens served from a prompt cache. Alerts are shown in words with a glyph:
✖ OVER BUDGET (today's spend is above the daily budget), ▲ PROJECTED OVER
BUDGET (today will end above it at the current burn), ◷ SLOW (average latency
over the last 5 minutes above --latency-alert).

The table groups spend by tenant (g cycles: tenant, model, user, endpoint,
source, metric) with calls, tokens, cost, share, burn rate, average latency
and unpriced calls (events for a model without a price: their cost is
unknown, shown as "unpriced" or "+", never as $0). Keys: < > sort column,
r reverse, / filter (esc clears), p or space pause, ? help, q quit.

By tenant, a tenant with a proxy policy (costctl policy) is marked: ⛔
blocked, ↪ routed, ~1% sampled, and "62%/d" is the share of its daily
budget used ("/m": monthly). ↑/↓ select a tenant; b blocks or unblocks it
and s sets its sample share (the runbook's 1%), each after you type a
reason: the change is the same audit row as costctl policy set (who =
$USER), and a running costctl proxy applies it within a second.

Calls and tokens are those a provider billed. Eval verdicts served from
costctl's judge cache are cache hits, not calls: a line under the header
counts them and what they avoided (JSON: cache_hits, avoided_usd). When some
row has proxy semantic cache hits or embedding calls, two more columns show
them: SEM HITS (the semantic hits among the cache hits) and NET SEM (what
the semantic cache saved after paying for its embeddings, with a minus sign
when it cost more; JSON, always: semantic_hits, net_semantic_usd). On a
terminal narrower than 100 columns the live view leaves them out.

Costs are those recorded in the ledger (priced when each event was written,
or since by costctl reprice). Queries read per-minute, per-hour and per-day
rollups only, never the events, so a refresh stays fast on a ledger of
millions of events. top only reads: it never changes the ledger file (a
read-only file or directory is fine), and it sees a writer (ingest --follow)
that starts after it.

With --once, or when stdout is not a terminal, top prints one snapshot (a
table, or --format json) and exits; with --fail-on-alert it exits 3 when an
alert is active, so cron or CI can page on it.` + exitStatusSection,
		Example: `  costctl top
  costctl top --window 1h --group-by model --daily-budget 2000
  costctl top --once --format json
  costctl top --once --fail-on-alert --daily-budget 500`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
				return usageError(err)
			}
			b, err := pricing.ParseMoney(strings.TrimPrefix(budget, "$"))
			if err != nil || b <= 0 {
				return usageErrorf("invalid --daily-budget %q: want a positive dollar amount like 500 or 1250.50", budget)
			}
			opts.Config.DailyBudget = b
			opts.Config.Loc = opts.Loc
			if err := opts.Config.Validate(); err != nil {
				return usageError(err)
			}
			if opts.Interval < 100*time.Millisecond {
				return usageErrorf("invalid --interval %s: want at least 100ms", opts.Interval)
			}
			if opts.Config.LatencyAlert < 0 {
				return usageErrorf("invalid --latency-alert %s: want 0 (off) or a positive duration", opts.Config.LatencyAlert)
			}
			if !f.IO.OutTTY {
				opts.Once = true
			}
			if opts.Format != render.FormatTable && !opts.Once {
				return usageErrorf("--format %s needs --once (the live view is a terminal UI)", opts.Format)
			}
			opts.Color = f.Color()
			if runF != nil {
				return runF(opts)
			}
			return runTop(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Config.Window, "window", "today", "spend window: today (since local midnight), 1h, 24h or 7d")
	fl.StringVar(&opts.Config.GroupBy, "group-by", "tenant", "group rows by tenant, model, user, endpoint, source or metric")
	fl.StringVar(&budget, "daily-budget", "500", "daily budget in dollars the bar and alerts compare with")
	fl.DurationVar(&opts.Interval, "interval", time.Second, "refresh interval")
	fl.DurationVar(&opts.Config.LatencyAlert, "latency-alert", 30*time.Second, "alert when average latency over the last 5 minutes is above this (0 = off)")
	fl.BoolVar(&opts.Once, "once", false, "print one snapshot and exit (automatic when stdout is not a terminal)")
	fl.StringVar(&opts.Format, "format", "table", "with --once: table or json")
	fl.BoolVar(&opts.FailOnAlert, "fail-on-alert", false, "with --once: exit 3 when an alert is active")
	return cmd
}

func runTop(ctx context.Context, opts *TopOptions) error {
	db, err := opts.Ledger(ctx)
	if err != nil {
		return err
	}
	defer db.Close() // only read from
	if opts.Once {
		snap, err := tui.Fetch(ctx, db, opts.Config, opts.Now())
		if err != nil {
			return err
		}
		if opts.Format == render.FormatJSON {
			err = writeJSON(opts.IO.Out, topJSON(snap))
		} else {
			err = writeTopTable(opts, snap, db.Name())
		}
		if err != nil {
			return err
		}
		if opts.FailOnAlert && len(snap.Alerts) > 0 {
			kinds := make([]string, len(snap.Alerts))
			for i, a := range snap.Alerts {
				kinds[i] = a.Kind
			}
			return gateError("top: alert active: " + strings.Join(kinds, ", "))
		}
		return nil
	}
	m := tui.New(tui.Options{Config: opts.Config, Fetch: tui.DBFetch(db), Now: opts.Now,
		Interval: opts.Interval, Color: opts.Color, Ctx: ctx, Act: opts.Act})
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(opts.IO.In), tea.WithOutput(opts.IO.Out))
	if _, err := p.Run(); err != nil {
		if errors.Is(err, tea.ErrProgramKilled) || errors.Is(err, context.Canceled) {
			return &ExitErr{Code: ExitInterrupted}
		}
		return fmt.Errorf("top: %w", err)
	}
	return nil
}

// topJSONRow is one row of top's JSON: the fields of tui.Columns, in
// their order.
type topJSONRow struct{ r tui.Row }

func (j topJSONRow) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for _, c := range tui.Columns {
		for _, f := range c.JSON {
			name, err := jsonValue(f.Name)
			if err != nil {
				return nil, err
			}
			v, err := jsonValue(f.Value(j.r))
			if err != nil {
				return nil, err
			}
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = append(append(append(b, name...), ':'), v...)
		}
	}
	return append(b, '}'), nil
}

// jsonValue is v in JSON as render.JSON writes it (no HTML escaping).
func jsonValue(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

type topJSONDoc struct {
	Version     int            `json:"version"`
	At          string         `json:"at"`
	Window      string         `json:"window"`
	GroupBy     string         `json:"group_by"`
	Spend       pricing.Amount `json:"spend_usd"`
	DailyBudget pricing.Money  `json:"daily_budget_usd"`
	Burn        pricing.Amount `json:"burn_usd_per_hour"`
	Projected   pricing.Amount `json:"projected_day_usd"`
	CacheHitPct float64        `json:"cache_hit_pct"`
	CacheHits   int64          `json:"cache_hits"`
	Avoided     pricing.Amount `json:"avoided_usd"`
	Rows        []topJSONRow   `json:"rows"`
	Alerts      []tui.Alert    `json:"alerts"`
}

func round1(p float64) float64 {
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return 0
	}
	return math.Round(p*10) / 10
}

func topJSON(s tui.Snapshot) topJSONDoc {
	d := topJSONDoc{Version: 1, At: s.At.Format(time.RFC3339), Window: s.Config.Window, GroupBy: s.Config.GroupBy,
		Spend: s.Spend.Cost, DailyBudget: s.Config.DailyBudget, Burn: s.Burn, Projected: s.Projected,
		CacheHitPct: round1(s.Spend.CachedShare() * 100), CacheHits: s.Spend.CacheHits, Avoided: s.Spend.Avoided,
		Rows: []topJSONRow{}, Alerts: []tui.Alert{}}
	for _, r := range s.Rows {
		d.Rows = append(d.Rows, topJSONRow{r})
	}
	d.Alerts = append(d.Alerts, s.Alerts...)
	return d
}

func writeTopTable(opts *TopOptions, s tui.Snapshot, path string) error {
	w := opts.IO.Out
	window := "today since " + s.Start.In(opts.Loc).Format(time.RFC3339)
	if s.Config.Window != "today" {
		window = "last " + s.Config.Window
	}
	pct := s.Spend.Cost.Float64() / pricing.AmountFromMoney(s.Config.DailyBudget).Float64() * 100
	spend := tui.WithMark(tui.Cents(s.Spend.Cost), s.Spend.Calls, s.Spend.UnpricedCalls)
	if s.Spend.UnpricedCalls > 0 {
		spend += fmt.Sprintf(" (%s unpriced %s not counted: cost unknown)", render.Int(s.Spend.UnpricedCalls), pluralS(s.Spend.UnpricedCalls, "call", "calls"))
	}
	fmt.Fprintf(w, "costctl top · %s · by %s · at %s\n", window, s.Config.GroupBy, s.At.In(opts.Loc).Format(time.RFC3339))
	fmt.Fprintf(w, "spend %s of daily budget %s (%s)\n", spend, s.Config.DailyBudget.Display(), render.Pct(pct))
	fmt.Fprintf(w, "burn %s/h (last 5 min) · projected today %s · cached %s of prompt tokens\n",
		tui.WithMark(tui.Cents(s.Burn), s.Recent.Calls, s.Recent.UnpricedCalls),
		tui.WithMark(tui.Cents(s.Projected), s.Today.Calls+s.Recent.Calls, s.Today.UnpricedCalls+s.Recent.UnpricedCalls),
		render.Pct(s.Spend.CachedShare()*100))
	if s.Spend.CacheHits > 0 {
		fmt.Fprintln(w, "cache: "+tui.CacheHitsLine(s.Spend))
	}
	if len(s.Alerts) == 0 {
		fmt.Fprintln(w, "alerts: none")
	}
	for _, a := range s.Alerts {
		fmt.Fprintf(w, "ALERT %s: %s\n", a.Kind, a.Message)
	}
	fmt.Fprintln(w)
	t := &render.Table{}
	cols := tui.ShownColumns(s.Rows) // the optional ones only with something to show
	for _, i := range cols {
		c := tui.Columns[i]
		t.Headers = append(t.Headers, c.WideTitle(s.Config.GroupBy))
		if c.IsKey() {
			t.Align = append(t.Align, render.Left)
		} else {
			t.Align = append(t.Align, render.Right)
		}
	}
	for _, r := range s.Rows {
		cells := make([]string, len(cols))
		for j, i := range cols {
			cells[j] = tui.Columns[i].Text(r)
		}
		t.AddRow(cells...)
	}
	if len(s.Rows) == 0 {
		fmt.Fprintf(w, "no spend in this window (ledger %s)\n", path)
		return nil
	}
	if err := t.WriteText(w); err != nil {
		return err
	}
	fmt.Fprintln(w, "costs as recorded in the ledger (priced when each event was written, or by costctl reprice); + marks figures that leave out unpriced calls")
	return nil
}

func pluralS(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// shellQuote quotes p for a command line a user may paste.
func shellQuote(p string) string {
	if p != "" && strings.IndexFunc(p, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,@", r))
	}) < 0 {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}

// TopLedger is what top needs from a ledger: the live view's sums, a name
// to show, and Close. *ledger.DB implements it.
type TopLedger interface {
	tui.Source
	Name() string
	Close() error
}

// topAct applies an action typed in the live view as `costctl policy set`
// would: the ledger opened to write only for that change, the policy and
// its audit row in one transaction.
func topAct(ctx context.Context, f *Factory, a tui.Action) (string, error) {
	po := &PolicyOptions{Getenv: f.Getenv, Tenant: a.Tenant, Reason: a.Reason}
	if a.Block != nil {
		po.Blocked = a.Block
	}
	if a.Sample != "" {
		bp, err := parseSample(a.Sample)
		if err != nil {
			return "", err
		}
		po.SampleBP = &bp
	}
	db, err := f.OpenExistingLedger(ctx, true)
	if err != nil {
		return "", err
	}
	defer db.Close() // the change went through a transaction whose Commit was checked; Close only releases connections
	change := ledger.PolicyChange{At: f.Now().UTC().Truncate(time.Millisecond), Tenant: a.Tenant, Reason: a.Reason, Who: po.who()}
	_, err = db.UpdatePolicy(ctx, a.Tenant, func(p *ledger.Policy) (ledger.PolicyChange, error) {
		change.What = strings.Join(po.edit(p), ", ")
		return change, nil
	})
	return change.What, err
}
