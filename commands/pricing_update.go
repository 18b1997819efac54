package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
)

// maxPriceSource bounds what a price source may hold (LiteLLM's JSON is ~1.5 MB).
const maxPriceSource = 64 << 20

// PricingUpdateOptions are the inputs of `costctl pricing update`.
type PricingUpdateOptions struct {
	IO         *IOStreams
	Getenv     func(string) string
	Now        func() time.Time
	HTTPClient *http.Client
	Current    func() (*pricing.Table, error) // the table commands price with now

	From   string
	DryRun bool
	Reset  bool
}

func newPricingUpdateCmd(f *Factory) *cobra.Command {
	opts := &PricingUpdateOptions{IO: f.IO, Getenv: f.Getenv, Now: f.Now, HTTPClient: f.HTTPClient, Current: f.Pricing}
	cmd := &cobra.Command{
		Use:   "update --from FILE|URL",
		Short: "Update the price table from a file or URL, without a new release",
		Long: `Read a price source — costctl's own format (YAML or JSON), LiteLLM's
model_prices_and_context_window.json or pydantic's genai-prices
prices/data.json (the format is detected) — from a file or an http(s) URL,
validate all of it, merge it over the built-in table and write the result as
a dated, checksummed snapshot ($XDG_DATA_HOME/costctl/prices.snapshot, else
~/.local/share/costctl/prices.snapshot). Every command then prices with the
snapshot, and "prices as of ..." names it. --pricing FILE still merges on top.

A source that cannot be read or parsed, prices far fewer models than the
current table, or changes most input and output prices by more than 10× (a
per-token or per-1K price where per-1M is expected) is refused and the
current table stays in place. --dry-run prints what would change and writes
nothing. --reset removes the snapshot: back to the built-in table.

From genai-prices, each model takes the price in force today (its dated
prices' latest start_date not after today), tiered prices become
long-context tiers, and a host's model (aws, groq, ...) is named
"<host>/<model>" so it never replaces the first party's price.` + exitStatusSection,
		Example: `  costctl pricing update --from https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json --dry-run
  costctl pricing update --from https://raw.githubusercontent.com/pydantic/genai-prices/main/prices/data.json
  costctl pricing update --from prices.yaml
  costctl pricing update --reset`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case opts.Reset && opts.From != "":
				return usageErrorf("--reset and --from cannot be used together")
			case !opts.Reset && opts.From == "":
				return usageErrorf("pricing update needs --from FILE|URL (or --reset)")
			}
			return runPricingUpdate(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.From, "from", "", "price source: a file or an http(s) URL (costctl format, LiteLLM JSON or genai-prices JSON)")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "print what would change; write nothing")
	cmd.Flags().BoolVar(&opts.Reset, "reset", false, "remove the snapshot and use the built-in table again")
	return cmd
}

// readPriceSource reads a file or an http(s) URL, bounded.
func readPriceSource(ctx context.Context, hc *http.Client, src string) ([]byte, error) {
	var r io.Reader
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		if hc == nil {
			hc = &http.Client{}
		}
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, usageErrorf("--from %s: %v", src, err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, &ExitErr{Code: ExitError, Err: fmt.Errorf("--from %s: %v", src, err)}
		}
		defer resp.Body.Close() // only read (or an error returned): a close error loses nothing
		if resp.StatusCode != http.StatusOK {
			return nil, &ExitErr{Code: ExitError, Err: fmt.Errorf("--from %s: HTTP %d; the current table stays in place", src, resp.StatusCode)}
		}
		r = resp.Body
	} else {
		fh, err := os.Open(src)
		if err != nil {
			return nil, &ExitErr{Code: ExitError, Err: fmt.Errorf("--from %s: %s", src, fsReason(err))}
		}
		defer fh.Close() // only read: a close error cannot lose data
		r = fh
	}
	data, err := io.ReadAll(io.LimitReader(r, maxPriceSource+1))
	if err != nil {
		return nil, &ExitErr{Code: ExitError, Err: fmt.Errorf("--from %s: %v; the current table stays in place", src, err)}
	}
	if len(data) > maxPriceSource {
		return nil, usageErrorf("--from %s: larger than %d MB; not a price table", src, maxPriceSource>>20)
	}
	return data, nil
}

func runPricingUpdate(ctx context.Context, opts *PricingUpdateOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	path, err := pricing.SnapshotPath(opts.Getenv)
	if err != nil {
		return err
	}
	if opts.Reset {
		err := os.Remove(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintln(opts.IO.ErrOut, "no price snapshot; the built-in table is in use")
			return nil
		case err != nil:
			return fmt.Errorf("pricing update --reset: %w", err)
		}
		fmt.Fprintf(opts.IO.ErrOut, "removed %s; the built-in table is in use\n", path)
		return nil
	}
	data, err := readPriceSource(ctx, opts.HTTPClient, opts.From)
	if err != nil {
		return err
	}
	next, n, warns, err := pricing.FromSourceAt(opts.From, data, opts.Now())
	if err != nil {
		return usageErrorf("%v; the current table stays in place", err)
	}
	for _, w := range warns {
		fmt.Fprintf(opts.IO.ErrOut, "warning: %s\n", w)
	}
	cur, err := opts.Current()
	if err != nil {
		return err
	}
	if why := pricing.Implausible(cur, next, n); why != "" {
		return usageErrorf("%s looks wrong: %s; the current table stays in place", opts.From, why)
	}
	now := opts.Now()
	info := pricing.SnapshotInfo{AsOf: sourceAsOf(next, now), Taken: now, From: opts.From}
	next.AsOf = info.AsOf
	d := pricing.Diff(cur, next)
	writePriceDiff(opts.IO.Out, d, "current", opts.From)
	if opts.DryRun {
		fmt.Fprintf(opts.IO.ErrOut, "dry run: nothing written; %d models from %s, prices as of %s\n", n, opts.From, info.AsOf)
		return nil
	}
	b, err := pricing.EncodeSnapshot(next, info)
	if err != nil {
		return err
	}
	if err := pricing.WriteSnapshot(path, b); err != nil {
		return fmt.Errorf("pricing update: write %s: %w", path, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "wrote %s: %d models (%d from %s), prices as of %s\n", path, len(next.Models()), n, opts.From, info.AsOf)
	return nil
}

// sourceAsOf is the date an update's prices are as of: the source's own
// as_of when it gives one, else the day it was taken.
func sourceAsOf(t *pricing.Table, now time.Time) string {
	for _, o := range t.Overrides {
		if _, date, ok := strings.Cut(o, " as of "); ok {
			return date
		}
	}
	return now.UTC().Format("2006-01-02")
}

func writePriceDiff(w io.Writer, d pricing.TableDiff, a, b string) {
	fmt.Fprintf(w, "%s → %s: %d added, %d removed, %d prices changed\n", a, b, len(d.Added), len(d.Removed), len(d.Changed))
	if len(d.Changed) > 0 {
		t := &render.Table{Headers: []string{"MODEL", "PRICE", "OLD /1M", "NEW /1M", "CHANGE"},
			Align: []render.Align{render.Left, render.Left, render.Right, render.Right, render.Right}}
		price := func(p string) string {
			if p == "" {
				return "none"
			}
			return "$" + p
		}
		for _, c := range d.Changed {
			pct := fmt.Sprintf("%+.1f%%", c.Pct)
			switch {
			case c.Old == "":
				pct = "new"
			case c.New == "":
				pct = "gone"
			}
			t.AddRow(c.Model, c.Field, price(c.Old), price(c.New), pct)
		}
		_ = t.WriteText(w)
	}
	if len(d.Added) > 0 {
		fmt.Fprintf(w, "added: %s\n", nameList(d.Added))
	}
	if len(d.Removed) > 0 {
		fmt.Fprintf(w, "removed: %s\n", nameList(d.Removed))
	}
}

// maxNamesShown bounds the models a text diff names on one line: a source
// the size of LiteLLM's adds thousands.
const maxNamesShown = 20

// nameList is names joined, the first maxNamesShown of a longer list and
// how many more there are.
func nameList(names []string) string {
	if len(names) <= maxNamesShown {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, … and %d more (costctl pricing diff A B --format json lists every one)", strings.Join(names[:maxNamesShown], ", "), len(names)-maxNamesShown)
}

// PricingDiffOptions are the inputs of `costctl pricing diff`.
type PricingDiffOptions struct {
	IO           *IOStreams
	Getenv       func(string) string
	Now          func() time.Time
	HTTPClient   *http.Client
	A, B         string
	Format       string
	FailOnChange bool
}

func newPricingDiffCmd(f *Factory) *cobra.Command {
	opts := &PricingDiffOptions{IO: f.IO, Getenv: f.Getenv, Now: f.Now, HTTPClient: f.HTTPClient}
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Compare two price tables: added, removed and changed prices",
		Long: `Compare two price sources and list the models added and removed and every
list price that changed, with the change in percent. A source is "builtin"
(the table compiled in), "snapshot" (the one pricing update wrote), a file or
an http(s) URL (costctl format, LiteLLM JSON or genai-prices JSON, merged
over the built-in table). --fail-on-change exits 3 when anything differs: a CI job that
watches prices.` + exitStatusSection,
		Example: `  costctl pricing diff builtin snapshot
  costctl pricing diff builtin prices.yaml --format json
  costctl pricing diff snapshot https://example.com/prices.json --fail-on-change`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.A, opts.B = args[0], args[1]
			if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
				return usageError(err)
			}
			return runPricingDiff(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Format, "format", "f", "table", "output format: table or json")
	cmd.Flags().BoolVar(&opts.FailOnChange, "fail-on-change", false, "exit 3 when the tables differ")
	return cmd
}

func loadPriceSource(ctx context.Context, opts *PricingDiffOptions, src string) (*pricing.Table, error) {
	switch src {
	case "builtin":
		return pricing.Default()
	case "snapshot":
		path, err := pricing.SnapshotPath(opts.Getenv)
		if err != nil {
			return nil, err
		}
		t, _, ok, err := pricing.LoadSnapshot(path)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &ExitErr{Code: ExitError, Err: fmt.Errorf("no price snapshot at %s; write one with costctl pricing update --from FILE|URL", path)}
		}
		return t, nil
	}
	data, err := readPriceSource(ctx, opts.HTTPClient, src)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	t, _, warns, err := pricing.FromSourceAt(src, data, now())
	if err != nil {
		return nil, usageError(err)
	}
	for _, w := range warns {
		fmt.Fprintf(opts.IO.ErrOut, "warning: %s\n", w)
	}
	return t, nil
}

func runPricingDiff(ctx context.Context, opts *PricingDiffOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	a, err := loadPriceSource(ctx, opts, opts.A)
	if err != nil {
		return err
	}
	b, err := loadPriceSource(ctx, opts, opts.B)
	if err != nil {
		return err
	}
	d := pricing.Diff(a, b)
	if opts.Format == render.FormatJSON {
		err = writeJSON(opts.IO.Out, struct {
			Version int    `json:"version"`
			A       string `json:"a"`
			B       string `json:"b"`
			AsOfA   string `json:"a_prices_as_of"`
			AsOfB   string `json:"b_prices_as_of"`
			pricing.TableDiff
		}{1, opts.A, opts.B, a.AsOf, b.AsOf, d})
	} else {
		writePriceDiff(opts.IO.Out, d, opts.A, opts.B)
	}
	if err != nil {
		return err
	}
	if opts.FailOnChange && !d.Empty() {
		return gateError(fmt.Sprintf("prices differ: %d added, %d removed, %d changed (--fail-on-change)", len(d.Added), len(d.Removed), len(d.Changed)))
	}
	return nil
}
