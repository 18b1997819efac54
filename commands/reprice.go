package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
)

// RepriceOptions are the inputs of `costctl reprice`.
type RepriceOptions struct {
	IO      *IOStreams
	Now     func() time.Time
	Loc     *time.Location
	Pricing func() (*pricing.Table, error)
	Ledger  func(context.Context) (*ledger.DB, error)

	Since, Until string // "" = that side open
	Format       string
	DryRun       bool
	BatchSize    int
}

func newRepriceCmd(f *Factory, runF func(*RepriceOptions) error) *cobra.Command {
	opts := &RepriceOptions{IO: f.IO, Now: f.Now, Loc: time.Local, Pricing: f.Pricing, Ledger: func(ctx context.Context) (*ledger.DB, error) { return f.OpenExistingLedger(ctx, true) }}
	cmd := &cobra.Command{
		Use:   "reprice",
		Short: "Price the ledger's events again with the current price table",
		Long: `Price the events stored in the ledger again with the current price table
(the built-in one merged with --pricing FILE or COSTCTL_PRICING): to repair
events ingested with a wrong or missing price, or to apply a price change.
Unpriced events are priced when the table now has their model.

Each event is priced from the usage it stored, each kind of token at its own
rate: prompt tokens, cached (prompt-cache read) tokens, 5-minute and 1-hour
cache writes, output tokens, at Batch API prices for batch calls and at flex
or priority prices for those tiers. An event the table cannot price — its
model is not in the table, or it used a tier or a cache write the table has
no rate for — is unpriced: its cost is unknown, never list price and never
$0 (report and top say "unpriced"). An eval cache hit cost nothing and still
does; what it avoided (the cost of the call it stood in for) is priced again
instead, and kept as recorded when its model has no price. Give reprice the
--pricing file you ingested with (corrected): a model only that file priced
is unpriced without it — try --dry-run first.

--since and --until limit the events repriced by their time, as in report
(a duration back from now, a date or an RFC 3339 time); without them every
event is. Events are repriced in batches of --batch-size, one transaction
each, which also moves the rollups that top and report read by the same
amounts, so they always agree with the events; an interrupted run keeps the
batches it finished, and running it again finishes the rest. Running it
twice with the same prices changes nothing.

The summary (stdout) says how many events changed, the window's cost before
and after and the difference, with the date of the prices used; --dry-run
says the same and writes nothing. Events for unpriced models are listed.` + exitStatusSection,
		Example: `  costctl reprice
  costctl reprice --since 7d --dry-run
  costctl --pricing prices.yaml reprice --since 2026-11-01 --until 2026-12-01
  costctl reprice --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := render.CheckFormat(opts.Format, "text", render.FormatJSON); err != nil {
				return usageError(err)
			}
			if opts.BatchSize <= 0 {
				return usageErrorf("invalid --batch-size %d: want a positive number of events", opts.BatchSize)
			}
			if runF != nil {
				return runF(opts)
			}
			return runReprice(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Since, "since", "", "reprice events from this time: a duration back from now (24h, 7d), a date (2026-11-01) or an RFC 3339 time (default: the first event)")
	fl.StringVar(&opts.Until, "until", "", "reprice events before this time (exclusive): now, a duration back from now, a date or an RFC 3339 time (default: the last event)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "say what would change, write nothing")
	fl.StringVar(&opts.Format, "format", "text", "summary format: text or json")
	fl.IntVar(&opts.BatchSize, "batch-size", 5000, "events per transaction")
	return cmd
}

type repriceJSONSums struct {
	Cost     pricing.Amount `json:"cost_usd"`
	Unpriced int64          `json:"unpriced_events"`
	Avoided  pricing.Money  `json:"avoided_usd"`
}

type repriceJSONDoc struct {
	Version        int              `json:"version"`
	DryRun         bool             `json:"dry_run"`
	Since          string           `json:"since,omitempty"`
	Until          string           `json:"until,omitempty"`
	PricesAsOf     string           `json:"prices_as_of"`
	PriceOverrides []string         `json:"price_overrides"`
	Events         int64            `json:"events"`
	Changed        int64            `json:"changed"`
	Old            repriceJSONSums  `json:"old"`
	New            repriceJSONSums  `json:"new"`
	Delta          pricing.Amount   `json:"delta_usd"`
	UnpricedModels map[string]int64 `json:"unpriced_models"`
}

func runReprice(ctx context.Context, opts *RepriceOptions) error {
	loc := opts.Loc
	if loc == nil {
		loc = time.Local
	}
	now := opts.Now()
	var since, until time.Time
	var err error
	if opts.Since != "" {
		if since, err = parseWhen("--since", opts.Since, now, loc); err != nil {
			return err
		}
	}
	if opts.Until != "" {
		if until, err = parseWhen("--until", opts.Until, now, loc); err != nil {
			return err
		}
	}
	if !since.IsZero() && !until.IsZero() && !until.After(since) {
		return usageErrorf("--until (%s) must be after --since (%s)", until.In(loc).Format(time.RFC3339), since.In(loc).Format(time.RFC3339))
	}
	table, err := opts.Pricing()
	if err != nil {
		return err
	}
	db, err := opts.Ledger(ctx)
	if err != nil {
		return err
	}
	defer db.Close() // every write was committed and checked before this; Close only releases connections
	runID := "reprice:" + now.UTC().Format(time.RFC3339Nano)
	window := windowLabel(since, until, loc)
	if !opts.DryRun {
		if err := db.StartRun(ctx, runID, "reprice", now, window+"; "+table.AsOfLabel()); err != nil {
			return err
		}
	}
	res, err := db.Reprice(ctx, ledger.RepriceOptions{Table: table, Start: since, End: until, BatchSize: opts.BatchSize, DryRun: opts.DryRun})
	if err != nil {
		if !opts.DryRun {
			_ = db.FinishRun(context.WithoutCancel(ctx), runID, "error", opts.Now())
		}
		if res.Events > 0 && !opts.DryRun {
			// The batches before the failure are in: say so (stderr, as
			// stdout stays empty when a command fails).
			writeRepriceText(opts.IO.ErrOut, res, window, table, false)
			fmt.Fprintln(opts.IO.ErrOut, "reprice stopped part-way: the events above are repriced; run it again to finish")
		}
		if ctx.Err() != nil {
			return &ExitErr{Code: ExitInterrupted, Err: errors.New("interrupted")}
		}
		return err
	}
	if !opts.DryRun {
		if err := db.FinishRun(ctx, runID, "ok", opts.Now()); err != nil {
			return err
		}
	}
	if opts.Format == render.FormatJSON {
		doc := repriceJSONDoc{Version: 1, DryRun: opts.DryRun, PricesAsOf: table.AsOf, PriceOverrides: append([]string{}, table.Overrides...),
			Events: res.Events, Changed: res.Changed, Delta: res.New.Cost.Sub(res.Old.Cost), UnpricedModels: res.Unpriced,
			Old: repriceJSONSums{res.Old.Cost, res.Old.Unpriced, res.Old.Avoided}, New: repriceJSONSums{res.New.Cost, res.New.Unpriced, res.New.Avoided}}
		if !since.IsZero() {
			doc.Since = since.In(loc).Format(time.RFC3339Nano)
		}
		if !until.IsZero() {
			doc.Until = until.In(loc).Format(time.RFC3339Nano)
		}
		return writeJSON(opts.IO.Out, doc)
	}
	writeRepriceText(opts.IO.Out, res, window, table, opts.DryRun)
	return nil
}

// windowLabel names a reprice window: "all time", "since T", "T1 to T2".
func windowLabel(since, until time.Time, loc *time.Location) string {
	f := func(t time.Time) string { return t.In(loc).Format(time.RFC3339) }
	switch {
	case since.IsZero() && until.IsZero():
		return "all time"
	case until.IsZero():
		return "since " + f(since)
	case since.IsZero():
		return "before " + f(until)
	}
	return f(since) + " to " + f(until)
}

func writeRepriceText(w io.Writer, res ledger.RepriceResult, window string, table *pricing.Table, dryRun bool) {
	verb, changed := "repriced", "changed"
	if dryRun {
		verb, changed = "dry run, nothing written: would reprice", "would change"
	}
	fmt.Fprintf(w, "%s %s %s (%s) with %s: %s %s\n", verb, render.Int(res.Events), pluralS(res.Events, "event", "events"),
		window, table.AsOfLabel(), render.Int(res.Changed), changed)
	mark := func(s ledger.RepriceSums) string {
		if s.Unpriced > 0 {
			return s.Cost.Display() + "+"
		}
		return s.Cost.Display()
	}
	fmt.Fprintf(w, "cost %s → %s (delta %s) · unpriced events %s → %s\n", mark(res.Old), mark(res.New),
		signedAmount(res.New.Cost.Sub(res.Old.Cost)), render.Int(res.Old.Unpriced), render.Int(res.New.Unpriced))
	if res.Old.Avoided != 0 || res.New.Avoided != 0 {
		fmt.Fprintf(w, "avoided by cache hits %s → %s (delta %s)\n", res.Old.Avoided.Display(), res.New.Avoided.Display(), signedMoney(res.New.Avoided-res.Old.Avoided))
	}
	if len(res.Unpriced) > 0 {
		models := make([]string, 0, len(res.Unpriced))
		for m := range res.Unpriced {
			models = append(models, m)
		}
		sort.Slice(models, func(i, j int) bool {
			a, b := res.Unpriced[models[i]], res.Unpriced[models[j]]
			if a != b {
				return a > b
			}
			return models[i] < models[j]
		})
		var parts []string
		for i, m := range models {
			if i == 10 {
				parts = append(parts, fmt.Sprintf("and %d more", len(models)-i))
				break
			}
			parts = append(parts, fmt.Sprintf("%s (%s)", m, render.Int(res.Unpriced[m])))
		}
		fmt.Fprintf(w, "unpriced models: %s; their cost stays unknown, not $0 (add prices with --pricing FILE and reprice again)\n", strings.Join(parts, ", "))
	}
}

// signedMoney is "+$1.25", "-$0.50" or "$0.00".
func signedAmount(a pricing.Amount) string {
	switch a.Sign() {
	case 1:
		return "+" + a.Display()
	case -1:
		return "-" + a.Neg().Display()
	}
	return a.Display()
}

func signedMoney(m pricing.Money) string {
	switch {
	case m > 0:
		return "+" + m.Display()
	case m < 0:
		return "-" + (-m).Display()
	}
	return m.Display()
}
