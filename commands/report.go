package commands

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
	"github.com/costctl/costctl/tui"
)

// ReportOptions are the inputs of `costctl report`.
type ReportOptions struct {
	IO     *IOStreams
	Now    func() time.Time
	Loc    *time.Location
	Ledger func(context.Context) (*ledger.DB, error)

	By           []string
	Since, Until string
	Format       string
	Precision    int // decimals of money in table and Markdown output (JSON and CSV are exact)
}

func newReportCmd(f *Factory, runF func(*ReportOptions) error) *cobra.Command {
	opts := &ReportOptions{IO: f.IO, Now: f.Now, Ledger: func(ctx context.Context) (*ledger.DB, error) { return f.OpenExistingLedger(ctx, false) }, Loc: time.Local}
	var by string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Spend per tenant, model, user, endpoint, day... from the ledger",
		Long: `Sum the ledger's events in a window, grouped by any of tenant, model, user,
endpoint, source, metric, and day or hour (local time): calls, tokens, cost,
share of the cost, and a totals row.

CALLS counts the requests a provider billed, and the token columns are their
tokens, so a report reconciles with the provider's invoice. JSON and CSV
also give the prompt tokens written to a 5-minute or 1-hour cache (inside
the input tokens, billed at their own rates) and the reasoning tokens
(inside the output tokens). An eval verdict
served from costctl's judge cache is a cache hit, not a call: CACHE HITS
counts them, and what the calls they stood in for would have cost is
AVOIDED (JSON also has their tokens, avoided_*_tokens).

--since and --until take a duration back from now (30m, 24h, 7d, 2w), a date
(2026-11-01, local midnight) or an RFC 3339 time; --until defaults to now.
Both are rounded down to the minute (--until now: the end of this minute).
A report by at most one of tenant/model/user/endpoint/source/metric (with or
without day/hour) is read from the ledger's rollups and is fast on any size
of ledger; grouping by several reads the events in the window.

Money is exact in the ledger (each event to the pico-dollar, sums that
cannot wrap) and rounded once, when printed: tables and Markdown show cents
(--precision N for up to 12 decimals); JSON and CSV write the exact sum.

Costs are those recorded in the ledger: priced when each event was written
(ingest and eval say "prices as of DATE" then), or since by costctl reprice.
Events for models without a price are counted in UNPRICED: their cost is
unknown, so a row's cost is marked + (some unpriced) or "unpriced" (all),
never shown as $0.

report only reads the ledger: it never changes the file (a read-only file or
directory is fine) and warns when the file is open to other users.` + exitStatusSection,
		Example: `  costctl report
  costctl report --by tenant,model,day --since 7d
  costctl report --by user --since 2026-11-01 --until 2026-11-08 --format csv > november.csv
  costctl report --by endpoint --since 24h --format md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatCSV, render.FormatJSON, render.FormatMD); err != nil {
				return usageError(err)
			}
			if opts.Precision < 0 || opts.Precision > 12 {
				return usageErrorf("--precision %d: want 0 to 12 decimals (2 shows cents)", opts.Precision)
			}
			opts.By = nil
			seen := map[string]bool{}
			for _, c := range strings.Split(by, ",") {
				c = strings.ToLower(strings.TrimSpace(c))
				if c == "" {
					continue
				}
				ok := false
				for _, r := range ledger.ReportColumns {
					ok = ok || r == c
				}
				if !ok {
					return usageErrorf("invalid --by column %q (expected a comma-separated list of %s)", c, strings.Join(ledger.ReportColumns, ", "))
				}
				if seen[c] {
					return usageErrorf("--by lists %q twice", c)
				}
				seen[c] = true
				opts.By = append(opts.By, c)
			}
			if len(opts.By) == 0 {
				return usageErrorf("--by needs at least one of %s", strings.Join(ledger.ReportColumns, ", "))
			}
			if seen[ledger.ByDay] && seen[ledger.ByHour] {
				return usageErrorf("--by can have day or hour, not both")
			}
			if runF != nil {
				return runF(opts)
			}
			return runReport(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&by, "by", "tenant", "group by these columns, comma-separated: "+strings.Join(ledger.ReportColumns, ", "))
	fl.StringVar(&opts.Since, "since", "7d", "start: a duration back from now (24h, 7d), a date (2026-11-01) or an RFC 3339 time")
	fl.StringVar(&opts.Until, "until", "now", "end (exclusive): now, a duration back from now, a date or an RFC 3339 time")
	fl.StringVar(&opts.Format, "format", "table", "output format: table, csv, json or md")
	fl.IntVar(&opts.Precision, "precision", 2, "decimals of money in table and md output, 0 to 12 (JSON and CSV are exact)")
	return cmd
}

var durationRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(\d+)(w|d|h|m|s)$`) })

// parseWhen turns a --since/--until value into a time.
func parseWhen(flag, s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" || s == "" && flag == "--until" {
		// Reports are minute-grained and end before --until: "now" is the
		// end of the current minute, so everything so far is in.
		return now.Truncate(time.Minute).Add(time.Minute), nil
	}
	if m := durationRE().FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err == nil && n <= 100*365*24*3600 {
			unit := map[string]time.Duration{"w": 7 * 24 * time.Hour, "d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second}[m[2]]
			if n <= int64(math.MaxInt64/int64(unit)) {
				return now.Add(-time.Duration(n) * unit), nil
			}
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, usageErrorf("invalid %s %q: want a duration back from now (24h, 7d), a date (2026-11-01) or an RFC 3339 time", flag, s)
}

type reportJSONRow struct {
	Group map[string]string `json:"group,omitempty"`
	reportJSONTotals
}

type reportJSONTotals struct {
	Calls               int64          `json:"calls"`
	InputTokens         int64          `json:"input_tokens"`
	CachedTokens        int64          `json:"cached_input_tokens"`
	OutputTokens        int64          `json:"output_tokens"`
	Cost                pricing.Amount `json:"cost_usd"`
	Share               float64        `json:"share_pct"`
	UnpricedCalls       int64          `json:"unpriced_calls"`
	CacheHits           int64          `json:"cache_hits"`
	AvoidedInputTokens  int64          `json:"avoided_input_tokens"`
	AvoidedCachedTokens int64          `json:"avoided_cached_input_tokens"`
	AvoidedOutputTokens int64          `json:"avoided_output_tokens"`
	Avoided             pricing.Amount `json:"avoided_usd"`
	CacheWrite5mTokens  int64          `json:"cache_write_5m_tokens"`
	CacheWrite1hTokens  int64          `json:"cache_write_1h_tokens"`
	ReasoningTokens     int64          `json:"reasoning_tokens"`
	// The semantic cache (ledger/semantic.go): of cache_hits, those served
	// by similarity and what they avoided; the embedding calls it made (of
	// calls and cost_usd); avoided by semantic hits less embedding cost.
	SemanticHits    int64          `json:"semantic_hits"`
	SemanticAvoided pricing.Amount `json:"semantic_avoided_usd"`
	EmbedCalls      int64          `json:"embed_calls"`
	EmbedCost       pricing.Amount `json:"embed_cost_usd"`
	NetSemantic     pricing.Amount `json:"net_semantic_usd"`
}

type reportJSONDoc struct {
	Version int              `json:"version"`
	Since   string           `json:"since"`
	Until   string           `json:"until"`
	By      []string         `json:"by"`
	Rows    []reportJSONRow  `json:"rows"`
	Totals  reportJSONTotals `json:"totals"`
	Note    string           `json:"note"`
}

const reportNote = "calls and tokens are what providers billed; cache_hits were answered from costctl's cache (their tokens and cost are avoided_*); " +
	"semantic_hits are the cache hits served by similarity, embed_calls the embedding calls the semantic cache paid for (in calls and cost_usd), net_semantic_usd = semantic_avoided_usd - embed_cost_usd; " +
	"costs as recorded in the ledger (when each event was written, or by costctl reprice); unpriced calls have no cost and are not counted in cost_usd"

func runReport(ctx context.Context, opts *ReportOptions) error {
	loc := opts.Loc
	if loc == nil {
		loc = time.Local
	}
	now := opts.Now()
	since, err := parseWhen("--since", opts.Since, now, loc)
	if err != nil {
		return err
	}
	until, err := parseWhen("--until", opts.Until, now, loc)
	if err != nil {
		return err
	}
	// The ledger answers in whole minutes; say which.
	since, until = since.Truncate(time.Minute), until.Truncate(time.Minute)
	if !until.After(since) {
		return usageErrorf("--until (%s) must be after --since (%s)", until.In(loc).Format(time.RFC3339), since.In(loc).Format(time.RFC3339))
	}
	db, err := opts.Ledger(ctx)
	if err != nil {
		return err
	}
	defer db.Close() // only read from
	rows, err := db.Report(ctx, ledger.ReportQuery{By: opts.By, Start: since, End: until, Loc: loc})
	if err != nil {
		return err
	}
	var total ledger.Totals
	for _, r := range rows {
		total.Add(r.Totals)
	}
	share := func(c pricing.Amount) float64 {
		if total.Cost.Sign() <= 0 {
			return 0
		}
		return round1(c.Float64() / total.Cost.Float64() * 100)
	}
	precision := opts.Precision
	if opts.Format == render.FormatJSON {
		doc := reportJSONDoc{Version: 1, Since: since.In(loc).Format(time.RFC3339Nano), Until: until.In(loc).Format(time.RFC3339Nano),
			By: opts.By, Rows: []reportJSONRow{}, Note: reportNote}
		jt := func(t ledger.Totals) reportJSONTotals {
			return reportJSONTotals{Calls: t.Calls, InputTokens: t.InputTokens, CachedTokens: t.CachedTokens, OutputTokens: t.OutputTokens,
				Cost: t.Cost, Share: share(t.Cost), UnpricedCalls: t.UnpricedCalls, CacheHits: t.CacheHits,
				AvoidedInputTokens: t.AvoidedInputTokens, AvoidedCachedTokens: t.AvoidedCachedTokens, AvoidedOutputTokens: t.AvoidedOutputTokens,
				Avoided: t.Avoided, CacheWrite5mTokens: t.CacheWrite5mTokens, CacheWrite1hTokens: t.CacheWrite1hTokens, ReasoningTokens: t.ReasoningTokens,
				SemanticHits: t.SemanticHits, SemanticAvoided: pricing.AmountFromMoney(t.SemanticAvoided), EmbedCalls: t.EmbedCalls, EmbedCost: t.EmbedCost,
				NetSemantic: t.NetSemantic()}
		}
		for _, r := range rows {
			g := map[string]string{}
			for i, c := range opts.By {
				g[c] = r.Keys[i]
			}
			doc.Rows = append(doc.Rows, reportJSONRow{Group: g, reportJSONTotals: jt(r.Totals)})
		}
		doc.Totals = jt(total)
		return writeJSON(opts.IO.Out, doc)
	}
	csv := opts.Format == render.FormatCSV
	// The table shows the semantic cache only where it was used: a ledger
	// without it prints as before.
	semantic := csv || total.SemanticHits != 0 || total.EmbedCalls != 0
	t := &render.Table{}
	for _, c := range opts.By {
		t.Headers = append(t.Headers, strings.ToUpper(c))
		t.Align = append(t.Align, render.Left)
	}
	if csv {
		t.Headers = append(t.Headers, "CALLS", "CACHE HITS", "INPUT TOKENS", "CACHED", "OUTPUT TOKENS", "COST USD", "SHARE PCT", "UNPRICED", "AVOIDED USD",
			"CACHE WRITE 5M TOKENS", "CACHE WRITE 1H TOKENS", "REASONING TOKENS",
			"SEMANTIC HITS", "SEMANTIC AVOIDED USD", "EMBED CALLS", "EMBED COST USD", "NET SEMANTIC USD")
	} else {
		t.Headers = append(t.Headers, "CALLS", "CACHE HITS", "INPUT TOKENS", "CACHED", "OUTPUT TOKENS", "COST", "SHARE", "UNPRICED", "AVOIDED")
		if semantic {
			t.Headers = append(t.Headers, "SEMANTIC")
		}
	}
	for range len(t.Headers) - len(opts.By) {
		t.Align = append(t.Align, render.Right)
	}
	num := func(n int64) string {
		if csv {
			return strconv.FormatInt(n, 10) // spreadsheets want plain numbers
		}
		return render.Int(n)
	}
	cells := func(tt ledger.Totals) []string {
		mark := tui.Mark(tt.Calls, tt.UnpricedCalls)
		cost := tui.WithMark(roundedMoney(tt.Cost, precision), tt.Calls, tt.UnpricedCalls)
		switch {
		case csv && mark == tui.MarkAll:
			cost = "" // unknown; the UNPRICED column says why
		case csv:
			cost = tt.Cost.String()
		}
		unp := ""
		if tt.UnpricedCalls > 0 {
			unp = num(tt.UnpricedCalls)
		}
		hits, avoided := "", ""
		if tt.CacheHits > 0 {
			hits, avoided = num(tt.CacheHits), roundedMoney(tt.Avoided, precision)
			if csv {
				avoided = tt.Avoided.String()
			}
		}
		pct := render.Pct(share(tt.Cost))
		switch {
		case tt.Calls == 0 && tt.CacheHits > 0:
			// Only cache hits: nothing billed, no share (cost $0 is exact).
			pct = "-"
			if csv {
				pct = ""
			}
		case mark == tui.MarkAll:
			pct = "-" // no known cost, no share
			if csv {
				pct = ""
			}
		case csv:
			pct = strconv.FormatFloat(share(tt.Cost), 'f', 1, 64)
		}
		out := []string{num(tt.Calls), hits, num(tt.InputTokens), num(tt.CachedTokens), num(tt.OutputTokens), cost, pct, unp, avoided}
		switch {
		case csv:
			out = append(out, num(tt.CacheWrite5mTokens), num(tt.CacheWrite1hTokens), num(tt.ReasoningTokens),
				num(tt.SemanticHits), pricing.AmountFromMoney(tt.SemanticAvoided).String(), num(tt.EmbedCalls), tt.EmbedCost.String(), tt.NetSemantic().String())
		case semantic:
			out = append(out, reportSemanticCell(tt, precision))
		}
		return out
	}
	for _, r := range rows {
		keys := make([]string, len(r.Keys))
		for i, k := range r.Keys {
			keys[i] = k
			if k == "" {
				keys[i] = "(none)"
			}
		}
		t.AddRow(append(keys, cells(r.Totals)...)...)
	}
	foot := make([]string, len(opts.By))
	foot[0] = "TOTAL"
	t.Footer = append(foot, cells(total)...)
	if err := t.Write(opts.IO.Out, opts.Format); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "%s to %s · %s", since.In(loc).Format(time.RFC3339), until.In(loc).Format(time.RFC3339),
		"costs as recorded in the ledger (when each event was written, or by costctl reprice)")
	if total.CacheHits > 0 {
		fmt.Fprintf(opts.IO.ErrOut, " · %s cache %s, not calls: %s avoided", render.Int(total.CacheHits), pluralS(total.CacheHits, "hit", "hits"), roundedMoney(total.Avoided, precision))
	}
	if len(rows) == 0 {
		fmt.Fprintf(opts.IO.ErrOut, " · no events in this window")
	}
	if total.UnpricedCalls > 0 {
		fmt.Fprintf(opts.IO.ErrOut, " · %s unpriced %s with no known cost (+ marks rows with some)", render.Int(total.UnpricedCalls), pluralS(total.UnpricedCalls, "call", "calls"))
	}
	fmt.Fprintln(opts.IO.ErrOut)
	return nil
}

// reportSemanticCell is a row's semantic cache in the table: its hits and the
// net saving after embeddings ("3 hits, net $0.42"; empty without any).
func reportSemanticCell(t ledger.Totals, precision int) string {
	if t.SemanticHits == 0 && t.EmbedCalls == 0 {
		return ""
	}
	net := t.NetSemantic()
	cell := roundedMoney(net, precision)
	if net.Sign() < 0 {
		cell = "-" + roundedMoney(net.Neg(), precision)
	}
	return fmt.Sprintf("%s %s, net %s", render.Int(t.SemanticHits), pluralS(t.SemanticHits, "hit", "hits"), cell)
}

// roundedMoney is a rounded to places decimals for a table, and "<$0.01"
// (at two places) for a positive amount that would round to $0.00: never a
// $0 that is not.
func roundedMoney(a pricing.Amount, places int) string {
	s := a.DisplayRounded(places)
	if a.Sign() > 0 && strings.Trim(s, "$0.,") == "" {
		unit := "1"
		if places > 0 {
			unit = "0." + strings.Repeat("0", places-1) + "1"
		}
		return "<$" + unit
	}
	return s
}
