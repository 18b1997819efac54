package commands

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
)

// cacheStatsOptions are the inputs of `costctl cache stats`.
type cacheStatsOptions struct {
	IO     *IOStreams
	Now    func() time.Time
	Loc    *time.Location
	Ledger func(context.Context) (*ledger.DB, error)

	Since  string
	Format string
}

// newCacheStatsCmd is `costctl cache stats`: what the proxy's caches did
// per tenant, the semantic cache's net savings and measured precision.
func newCacheStatsCmd(f *Factory) *cobra.Command {
	opts := &cacheStatsOptions{IO: f.IO, Now: f.Now, Loc: time.Local,
		Ledger: func(ctx context.Context) (*ledger.DB, error) { return f.OpenExistingLedger(ctx, false) }}
	cmd := &cobra.Command{
		Use:   "stats [--since 7d] [--format table|json]",
		Short: "Per tenant: cache hits, the semantic cache's net savings and measured precision",
		Long: `Per tenant, over the window: exact cache hits; semantic cache hits and what
the calls they stood in for would have cost; the embedding calls the
semantic cache paid for and their cost; the net saving (avoided less
embedding cost: negative when the cache costs more than it saves); the
sampled semantic hits the proxy verified against upstream and how many
agreed, with the measured precision and its Wilson 95% interval; and the
tenant's policy (on or off, similarity threshold, minimum precision, and
why the proxy switched it off).

A tenant is listed when it had a cache hit or an embedding call in the
window, or has a semantic cache policy. cache stats only reads the ledger.` + exitStatusSection,
		Example: `  costctl cache stats
  costctl cache stats --since 24h --format json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
				return usageError(err)
			}
			return runCacheStats(c.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Since, "since", "7d", "start: a duration back from now (24h, 7d), a date (2026-11-01) or an RFC 3339 time")
	cmd.Flags().StringVar(&opts.Format, "format", render.FormatTable, "output: table or json")
	return cmd
}

// cacheStatsRow is one tenant's line.
type cacheStatsRow struct {
	Tenant           string
	Totals           ledger.Totals
	Checked, Matched int64
	Policy           ledger.Policy
	HasPolicy        bool
}

// wilson is the Wilson score 95% interval of matched out of checked.
func wilson(matched, checked int64) (lo, hi float64) {
	if checked <= 0 {
		return 0, 0
	}
	const z = 1.959963984540054
	n := float64(checked)
	p := float64(matched) / n
	d := 1 + z*z/n
	c := (p + z*z/(2*n)) / d
	h := z * math.Sqrt(p*(1-p)/n+z*z/(4*n*n)) / d
	return max(c-h, 0), min(c+h, 1)
}

type cacheStatsPolicyJSON struct {
	SemanticCache  bool   `json:"semantic_cache"`
	SimilarityBP   int64  `json:"similarity_bp"`
	CacheTTL       string `json:"cache_ttl"`
	MinPrecisionBP int64  `json:"min_precision_bp"`
	SemanticOff    string `json:"semantic_off"`
}

type cacheStatsJSONRow struct {
	Tenant          string                `json:"tenant,omitempty"`
	ExactHits       int64                 `json:"exact_hits"`
	SemanticHits    int64                 `json:"semantic_hits"`
	SemanticAvoided pricing.Amount        `json:"semantic_avoided_usd"`
	EmbedCalls      int64                 `json:"embed_calls"`
	EmbedCost       pricing.Amount        `json:"embed_cost_usd"`
	NetSemantic     pricing.Amount        `json:"net_semantic_usd"`
	Verified        int64                 `json:"verified"`
	Matched         int64                 `json:"matched"`
	Precision       *float64              `json:"precision"`        // null: nothing verified
	PrecisionLow    *float64              `json:"precision_low"`    // Wilson 95% interval
	PrecisionHigh   *float64              `json:"precision_high"`   //
	Policy          *cacheStatsPolicyJSON `json:"policy,omitempty"` // tenants only
}

// statsRound4 keeps 4 decimals of a share (0.9712), for JSON.
func statsRound4(x float64) float64 { return math.Round(x*10_000) / 10_000 }

func (r *cacheStatsRow) json() cacheStatsJSONRow {
	t := r.Totals
	j := cacheStatsJSONRow{Tenant: r.Tenant, ExactHits: t.CacheHits - t.SemanticHits, SemanticHits: t.SemanticHits,
		SemanticAvoided: pricing.AmountFromMoney(t.SemanticAvoided), EmbedCalls: t.EmbedCalls, EmbedCost: t.EmbedCost, NetSemantic: t.NetSemantic(),
		Verified: r.Checked, Matched: r.Matched,
		Policy: &cacheStatsPolicyJSON{SemanticCache: r.Policy.SemanticCache, SimilarityBP: r.Policy.Similarity, MinPrecisionBP: r.Policy.MinPrecision,
			SemanticOff: r.Policy.SemanticOff}}
	if r.Policy.SemanticTTL != 0 {
		j.Policy.CacheTTL = r.Policy.SemanticTTL.String()
	}
	if r.Checked > 0 {
		p := statsRound4(float64(r.Matched) / float64(r.Checked))
		lo, hi := wilson(r.Matched, r.Checked)
		lo, hi = statsRound4(lo), statsRound4(hi)
		j.Precision, j.PrecisionLow, j.PrecisionHigh = &p, &lo, &hi
	}
	return j
}

// precisionCell is "97.0% (92.1–99.0%)", or "-" when nothing was verified.
func precisionCell(matched, checked int64) string {
	if checked <= 0 {
		return "-"
	}
	lo, hi := wilson(matched, checked)
	return fmt.Sprintf("%.1f%% (%.1f–%.1f%%)", float64(matched)/float64(checked)*100, lo*100, hi*100)
}

// netMoney is roundedMoney for an amount that may be negative.
func netMoney(a pricing.Amount) string {
	if a.Sign() < 0 {
		return "-" + roundedMoney(a.Neg(), 2)
	}
	return roundedMoney(a, 2)
}

func runCacheStats(ctx context.Context, opts *cacheStatsOptions) error {
	loc := opts.Loc
	if loc == nil {
		loc = time.Local
	}
	now := opts.Now()
	since, err := parseWhen("--since", opts.Since, now, loc)
	if err != nil {
		return err
	}
	until, _ := parseWhen("--until", "now", now, loc)
	since = since.Truncate(time.Minute)
	if !until.After(since) {
		return usageErrorf("--since (%s) must be before now", since.In(loc).Format(time.RFC3339))
	}
	db, err := opts.Ledger(ctx)
	if err != nil {
		return err
	}
	defer db.Close() // only read from
	groups, err := db.Grouped(ctx, "tenant", since, until)
	if err != nil {
		return err
	}
	policies, err := db.Policies(ctx)
	if err != nil {
		return err
	}
	rows := map[string]*cacheStatsRow{}
	for _, g := range groups {
		if g.CacheHits != 0 || g.EmbedCalls != 0 {
			rows[g.Key] = &cacheStatsRow{Tenant: g.Key, Totals: g.Totals}
		}
	}
	for tn, p := range policies {
		if !p.SemanticCache && p.SemanticOff == "" && p.Similarity == 0 {
			continue
		}
		if rows[tn] == nil {
			rows[tn] = &cacheStatsRow{Tenant: tn}
			for _, g := range groups {
				if g.Key == tn {
					rows[tn].Totals = g.Totals
				}
			}
		}
	}
	tenants := make([]string, 0, len(rows))
	for tn, r := range rows {
		tenants = append(tenants, tn)
		r.Policy, r.HasPolicy = policies[tn]
		if r.Checked, r.Matched, err = db.Precision(ctx, tn, since); err != nil {
			return err
		}
	}
	sort.Strings(tenants)
	var total cacheStatsRow
	total.Tenant = "TOTAL"
	for _, tn := range tenants {
		total.Totals.Add(rows[tn].Totals)
		total.Checked += rows[tn].Checked
		total.Matched += rows[tn].Matched
	}
	if opts.Format == render.FormatJSON {
		doc := struct {
			Version int                 `json:"version"`
			Since   string              `json:"since"`
			Until   string              `json:"until"`
			Tenants []cacheStatsJSONRow `json:"tenants"`
			Totals  cacheStatsJSONRow   `json:"totals"`
		}{Version: 1, Since: since.In(loc).Format(time.RFC3339), Until: until.In(loc).Format(time.RFC3339), Tenants: []cacheStatsJSONRow{}}
		for _, tn := range tenants {
			doc.Tenants = append(doc.Tenants, rows[tn].json())
		}
		doc.Totals = total.json()
		doc.Totals.Tenant = ""
		doc.Totals.Policy = nil
		return writeJSON(opts.IO.Out, doc)
	}
	if len(tenants) == 0 {
		fmt.Fprintf(opts.IO.ErrOut, "no cache hits, embedding calls or semantic cache policies since %s\n", since.In(loc).Format(time.RFC3339))
		return nil
	}
	t := &render.Table{
		Headers: []string{"TENANT", "EXACT HITS", "SEMANTIC HITS", "AVOIDED", "EMBEDS", "EMBED COST", "NET", "VERIFIED", "PRECISION (95% CI)", "SEMANTIC CACHE"},
		Align:   []render.Align{render.Left, render.Right, render.Right, render.Right, render.Right, render.Right, render.Right, render.Right, render.Right, render.Left},
	}
	cells := func(r *cacheStatsRow, policy string) []string {
		tt := r.Totals
		verified := "-"
		if r.Checked > 0 {
			verified = render.Int(r.Matched) + "/" + render.Int(r.Checked)
		}
		return []string{r.Tenant, render.Int(tt.CacheHits - tt.SemanticHits), render.Int(tt.SemanticHits),
			roundedMoney(pricing.AmountFromMoney(tt.SemanticAvoided), 2), render.Int(tt.EmbedCalls), roundedMoney(tt.EmbedCost, 2),
			netMoney(tt.NetSemantic()), verified, precisionCell(r.Matched, r.Checked), policy}
	}
	for _, tn := range tenants {
		r := rows[tn]
		t.AddRow(cells(r, semanticCell(r.Policy))...)
	}
	t.Footer = cells(&total, "")
	if err := t.WriteText(opts.IO.Out); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "%s to %s · NET = AVOIDED by semantic hits − EMBED COST · PRECISION: verified semantic hits that matched upstream's answer\n",
		since.In(loc).Format(time.RFC3339), until.In(loc).Format(time.RFC3339))
	return nil
}
