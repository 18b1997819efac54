package commands

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
)

// PricingOptions are the inputs of `costctl pricing list|show`.
type PricingOptions struct {
	IO       *IOStreams
	Pricing  func() (*pricing.Table, error)
	Show     string // model to show; empty: list
	Provider string
	Format   string
}

func newPricingCmd(f *Factory, runF func(*PricingOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pricing",
		Short: "List and show the price table costctl bills by",
		Long: `The price table every costctl figure is computed from: USD per 1M tokens for
input, cached input, cache writes (Anthropic 5 min / 1 h), output and Batch API,
long-context tiers, each model's context window, max output, tokenizer encoding
and deprecation date, and the date the prices were taken ("prices as of").

The table is built in. --pricing FILE merges your own prices over it, in
costctl's format (YAML or JSON):

  as_of: "2026-01-15"            # optional: the date your prices were taken
  models:
    my-finetune:                 # a new model needs input and output prices
      input_per_1m: "3.00"
      output_per_1m: "12.00"
      cached_input_per_1m: "1.50"
      encoding: o200k_base       # tokenizer used to count its tokens
    gpt-4o:                      # an existing model keeps what you don't set
      input_per_1m: "2.00"

or LiteLLM's model_prices_and_context_window.json, or pydantic's genai-prices
data.json (detected automatically). long_context takes one tier or a list of
tiers (lowest above_tokens first); a prompt above several thresholds is
priced at the highest. costctl pricing update --from FILE|URL makes a source
the table every command uses.

A --pricing file (or COSTCTL_PRICING) that is missing or unreadable exits 1;
one that is read but wrong exits 2, naming the file, line and key.` + exitStatusSection,
		Example: `  costctl pricing list
  costctl pricing list --provider anthropic --format json
  costctl pricing show gpt-4o-2024-08-06`,
		Args: cobra.NoArgs,
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List priced models (USD per 1M tokens)",
		Long:  "List every priced model with its prices in USD per 1M tokens and the table's date." + exitStatusSection,
		Example: `  costctl pricing list
  costctl pricing list --provider openai --format json`,
		Args: cobra.NoArgs,
	}
	show := &cobra.Command{
		Use:   "show MODEL",
		Short: "Show one model's prices (aliases and dated snapshots resolve)",
		Long: `Show every price of one model — each long-context tier, batch prices (or that
the model has no Batch API) — with its context window, max output, tokenizer,
source and, for a model past its provider's deprecation date, the date (its
price is kept for past usage). Aliases, dated snapshots and provider prefixes
resolve (openai/gpt-4o-2024-08-06 → gpt-4o).` + exitStatusSection,
		Example: `  costctl pricing show gpt-4o
  costctl pricing show anthropic/claude-sonnet-4-20250514 --format json`,
		Args: cobra.ExactArgs(1),
	}
	for _, c := range []*cobra.Command{list, show} {
		c.Flags().StringP("format", "f", "table", "output format: table or json")
	}
	list.Flags().String("provider", "", "only models of this provider (openai, anthropic, google, ...)")
	run := func(c *cobra.Command, args []string) error {
		opts := &PricingOptions{IO: f.IO, Pricing: f.Pricing}
		opts.Format, _ = c.Flags().GetString("format")
		if len(args) == 1 {
			opts.Show = args[0]
		} else {
			opts.Provider, _ = c.Flags().GetString("provider")
		}
		if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
			return usageError(err)
		}
		if runF != nil {
			return runF(opts)
		}
		return runPricing(c.Context(), opts)
	}
	list.RunE = run
	show.RunE = run
	cmd.AddCommand(list, show, newPricingUpdateCmd(f), newPricingDiffCmd(f))
	return cmd
}

type tierJSON struct {
	AboveTokens       int64   `json:"above_tokens,omitempty"`
	InputPer1M        string  `json:"input_per_1m"`
	CachedInputPer1M  *string `json:"cached_input_per_1m"`
	CacheWrite5mPer1M *string `json:"cache_write_5m_per_1m"`
	CacheWrite1hPer1M *string `json:"cache_write_1h_per_1m"`
	OutputPer1M       string  `json:"output_per_1m"`
	BatchInputPer1M   *string `json:"batch_input_per_1m"`  // null: no Batch API (a batch call is unpriced)
	BatchOutputPer1M  *string `json:"batch_output_per_1m"` // null: no Batch API
}

type modelJSON struct {
	Name           string `json:"name"`
	Provider       string `json:"provider"`
	Encoding       string `json:"encoding"`
	ExactTokenizer bool   `json:"exact_tokenizer"`
	ContextWindow  int64  `json:"context_window"`
	MaxOutput      int64  `json:"max_output_tokens,omitempty"`
	Deprecated     string `json:"deprecated_on,omitempty"`
	tierJSON
	NoBatch     bool       `json:"no_batch_api,omitempty"`
	LongContext []tierJSON `json:"long_context,omitempty"` // lowest threshold first; a prompt is priced at the last tier it is above
	Aliases     []string   `json:"aliases"`
	Source      string     `json:"source"`
}

func listed(r pricing.Rate, has bool) *string {
	if !has {
		return nil
	}
	s := r.Per1M()
	return &s
}

func tierOf(r pricing.Rates) tierJSON {
	return tierJSON{
		InputPer1M:        r.Input.Per1M(),
		CachedInputPer1M:  listed(r.CachedInput, r.HasCachedInput),
		CacheWrite5mPer1M: listed(r.CacheWrite5m, r.HasCacheWrite5m),
		CacheWrite1hPer1M: listed(r.CacheWrite1h, r.HasCacheWrite1h),
		OutputPer1M:       r.Output.Per1M(),
		BatchInputPer1M:   listed(r.BatchInput, !r.NoBatch),
		BatchOutputPer1M:  listed(r.BatchOutput, !r.NoBatch),
	}
}

func modelToJSON(m *pricing.Model) modelJSON {
	j := modelJSON{Name: m.Name, Provider: m.Provider, Encoding: m.Encoding, ExactTokenizer: m.ExactTokenizer,
		ContextWindow: m.ContextWindow, MaxOutput: m.MaxOutput, Deprecated: m.Deprecated, tierJSON: tierOf(m.Rates),
		NoBatch: m.NoBatch, Aliases: m.Aliases, Source: m.Source}
	if j.Aliases == nil {
		j.Aliases = []string{}
	}
	for _, lc := range m.LongContext {
		tj := tierOf(lc.Rates)
		tj.AboveTokens = lc.AboveTokens
		j.LongContext = append(j.LongContext, tj)
	}
	return j
}

func runPricing(_ context.Context, opts *PricingOptions) error {
	table, err := opts.Pricing()
	if err != nil {
		return err
	}
	if opts.Show != "" {
		m, err := table.Lookup(opts.Show)
		if err != nil {
			return usageError(err)
		}
		if opts.Format == render.FormatJSON {
			return writeJSON(opts.IO.Out, struct {
				Version    int       `json:"version"`
				PricesAsOf string    `json:"prices_as_of"`
				Query      string    `json:"query"`
				Model      modelJSON `json:"model"`
			}{1, table.AsOf, opts.Show, modelToJSON(m)})
		}
		return showModel(opts.IO.Out, table, opts.Show, m)
	}
	var models []*pricing.Model
	for _, m := range table.Models() {
		if opts.Provider == "" || strings.EqualFold(m.Provider, opts.Provider) {
			models = append(models, m)
		}
	}
	if len(models) == 0 {
		return usageErrorf("no priced models for provider %q (providers: %s)", opts.Provider, strings.Join(providers(table), ", "))
	}
	if opts.Format == render.FormatJSON {
		out := struct {
			Version    int         `json:"version"`
			PricesAsOf string      `json:"prices_as_of"`
			Overrides  []string    `json:"overrides"`
			Models     []modelJSON `json:"models"`
		}{Version: 1, PricesAsOf: table.AsOf, Overrides: table.Overrides, Models: []modelJSON{}}
		if out.Overrides == nil {
			out.Overrides = []string{}
		}
		for _, m := range models {
			out.Models = append(out.Models, modelToJSON(m))
		}
		return writeJSON(opts.IO.Out, out)
	}
	t := render.Table{
		Headers: []string{"MODEL", "PROVIDER", "INPUT", "CACHED", "OUTPUT", "BATCH IN", "BATCH OUT", "CONTEXT", "ENCODING"},
		Align:   []render.Align{render.Left, render.Left, render.Right, render.Right, render.Right, render.Right, render.Right, render.Right, render.Left},
	}
	for _, m := range models {
		cached := "-"
		if m.HasCachedInput {
			cached = "$" + m.CachedInput.Per1M()
		}
		enc := m.Encoding
		if !m.ExactTokenizer {
			enc += " (approx.)"
		}
		name := m.Name
		if len(m.LongContext) > 0 {
			name += " *"
		}
		bin, bout := "$"+m.BatchInput.Per1M(), "$"+m.BatchOutput.Per1M()
		if m.NoBatch {
			bin, bout = "none", "none"
		}
		t.AddRow(name, m.Provider, "$"+m.Input.Per1M(), cached, "$"+m.Output.Per1M(),
			bin, bout, render.Int(m.ContextWindow), enc)
	}
	if err := t.WriteText(opts.IO.Out); err != nil {
		return err
	}
	_, err = fmt.Fprintf(opts.IO.Out, "\nUSD per 1M tokens; * has long-context tiers (costctl pricing show MODEL); batch none: no Batch API; %s\n", table.AsOfLabel())
	return err
}

func providers(t *pricing.Table) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range t.Models() {
		if !seen[m.Provider] {
			seen[m.Provider] = true
			out = append(out, m.Provider)
		}
	}
	return out
}

func showModel(w io.Writer, table *pricing.Table, query string, m *pricing.Model) error {
	t := render.Table{Headers: []string{"FIELD", "VALUE"}}
	if !strings.EqualFold(query, m.Name) {
		t.AddRow("query", query+" → "+m.Name)
	}
	t.AddRow("model", m.Name)
	t.AddRow("provider", m.Provider)
	enc := m.Encoding + " (exact)"
	if !m.ExactTokenizer {
		enc = m.Encoding + " (approximate: no public tokenizer)"
	}
	t.AddRow("tokenizer", enc)
	tokens := func(n int64) string {
		if n <= 0 {
			return "not published"
		}
		return render.Int(n) + " tokens"
	}
	t.AddRow("context window", tokens(m.ContextWindow))
	t.AddRow("max output", tokens(m.MaxOutput))
	if m.Deprecated != "" {
		t.AddRow("deprecated", "deprecated on "+m.Deprecated+" (the price is kept for past usage)")
	}
	tier := func(prefix string, r pricing.Rates) {
		rate := func(label string, v pricing.Rate, has bool, derived string) {
			if has {
				t.AddRow(prefix+label, "$"+v.Per1M()+" / 1M")
			} else if derived != "" {
				t.AddRow(prefix+label, "$"+v.Per1M()+" / 1M ("+derived+")")
			}
		}
		rate("input", r.Input, true, "")
		rate("cached input", r.CachedInput, r.HasCachedInput, "")
		rate("cache write 5m", r.CacheWrite5m, r.HasCacheWrite5m, "")
		rate("cache write 1h", r.CacheWrite1h, r.HasCacheWrite1h, "")
		rate("output", r.Output, true, "")
		if r.NoBatch {
			t.AddRow(prefix+"batch", "none: no Batch API (a batch call is unpriced)")
			return
		}
		rate("batch input", r.BatchInput, r.HasBatchInput, "50% of list")
		rate("batch output", r.BatchOutput, r.HasBatchOutput, "50% of list")
	}
	tier("", m.Rates)
	for _, lc := range m.LongContext {
		tier(fmt.Sprintf("> %s tokens: ", render.Int(lc.AboveTokens)), lc.Rates)
	}
	if len(m.Aliases) > 0 {
		t.AddRow("aliases", strings.Join(m.Aliases, ", "))
	}
	src := m.Source
	if src == "" {
		src = "not given"
	}
	t.AddRow("source", src)
	if m.Origin != "" && m.Origin != "built-in" {
		t.AddRow("overridden by", m.Origin)
	}
	if err := t.WriteText(w); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s\n", table.AsOfLabel())
	return err
}
