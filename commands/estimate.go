package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/records"
	"github.com/costctl/costctl/render"
)

// EstimateOptions are the flags and dependencies of `costctl estimate`.
type EstimateOptions struct {
	IO      *IOStreams
	Pricing func() (*pricing.Table, error)

	Requests     string // monthly volume: 10M, 2500000, 2.5e6
	PerDay       string // daily volume instead of --requests
	Days         int64
	InputTokens  string
	OutputTokens string
	From         string // measure averages from a records file
	Map          string // --map for --from
	Model        string
	InputPrice   string
	OutputPrice  string
	CachedPrice  string

	// Levers holds each lever flag's text by key (estimator.LeverList):
	// sample, cascade, escalate, cache-hit, prompt-cache, batch, infra.
	Levers map[string]string

	Sweep     []string
	Scenarios string

	Format     string
	MaxMonthly string

	// set reports whether a flag was given on the command line.
	set func(name string) bool
}

func newEstimateCmd(f *Factory, runF func(*EstimateOptions) error) *cobra.Command {
	opts := &EstimateOptions{IO: f.IO, Pricing: f.Pricing, Levers: map[string]string{}}
	cmd := &cobra.Command{
		Use:   "estimate",
		Short: "Project monthly LLM cost and what each cost lever saves",
		Long: `Project what LLM traffic (or an evaluation of it) costs per request, per day
and per month, and how much each cost lever saves. Every figure is exact
rational arithmetic on the dated price table; nothing is rounded until it is
printed.

VOLUME AND TOKENS
  --requests N (per month; 10M, 2.5k, 1B, 2500000 and 2.5e6 all work) or
  --per-day N × --days (default 30). Average tokens per request come from
  --input-tokens/--output-tokens, or are measured with --from FILE: a JSONL or
  CSV sample of real records (the format eval reads: "input" as text or chat
  messages, "output" as text; rename fields with --map output=response).
  Inputs are counted with --model's tokenizer as the API bills them: OpenAI's
  chat formula over the messages (a text input is one user message), and the
  averages are exact (total ÷ records). A flag
  given alongside --from wins for its side. Bad lines are reported on stderr as
  FILE:LINE: reason and skipped; records without an input are skipped too.

PRICES
  --model (default gpt-4o) is priced from the table ("costctl pricing list";
  add models with --pricing FILE). --input-price/--output-price (USD per 1M
  tokens) override it for what-if numbers; the Batch API price of an
  overridden price is 50% of it. An overridden --input-price has no known
  cached-input price, so --prompt-cache then requires --cached-price. A
  cascade tier that names --model uses the same overrides. A long-context
  price tier is chosen by the prompt size: with --from each measured prompt
  length is priced in its own tier (one 100k- and one 300k-token Sonnet
  request cost $0.30 + $1.80, not twice the 200k average's $0.60); with
  --input-tokens, by the average rounded up.

THE WATERFALL
  The baseline is every request making one --model call at list price. The
  levers that are set are applied in this order, each row cumulative:
` + leverHelp() + `  Per call: (1-b)·[I·((1-p)·in + p·cached) + O·out]
            + b·[I·((1-p)·batch_in + p·batch_cached) + O·batch_out];
  per request: sample × (1 − cache-hit) × Σ tier (or stage) share × per-call
  cost
  (+ infra ÷ requests). Monthly = per request × requests (+ infra), daily =
  monthly ÷ days, each computed exactly and rounded once to the nano-dollar,
  so a monthly figure is never a rounded per-request cost × N. The table
  shows per-request cost to the nano-dollar and daily/monthly to the cent;
  JSON and CSV carry every amount to the nano-dollar as decimal strings.
  Savings are against the baseline; percentages are of the baseline.
  A prompt longer than a priced model's context window is priced anyway,
  with a warning on stderr (the API would reject it).

COMPARING
` + sweepHelp() + `
  --sweep 'cascade=free:0.5,gpt-4o:0.5;gpt-4o-mini:1'.
  The value none unsets a lever. --scenarios FILE.yaml compares named
  scenarios (a list of maps with name and the same keys; each starts from
  the flags); savings are against the first scenario.

GATE
  --max-monthly USD exits 3 when the projected monthly total (for a sweep or
  scenarios: the cheapest one) is above it; the output is still printed.
  Bad input prints one line on stderr, exits 2 and prints nothing on stdout
  (a missing or unreadable --from/--scenarios file exits 1).` + exitStatusSection,
		Example: `  # the seed figures: $0.00575 per request, $57,500.00 per month
  costctl estimate --requests 10M --input-tokens 1000 --output-tokens 50 --input-price 5 --output-price 15

  # evaluate 10% of traffic: $5,750.00 per month
  costctl estimate --requests 10M --input-tokens 1000 --output-tokens 50 --input-price 5 --output-price 15 --sample 10%

  # an evaluation with a judge cascade, caching and batch, gated in CI
  costctl estimate --per-day 300k --input-tokens 1200 --output-tokens 80 --sample 0.2 \
    --cascade free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2 --cache-hit 15% --prompt-cache 40% --batch 50% \
    --infra 250 --max-monthly 5000

  # the cheap judge sees every evaluation, the expensive one re-judges 20%: $780.00 per month
  costctl estimate --requests 10M --input-tokens 1000 --output-tokens 50 --sample 10% \
    --escalate gpt-4o-mini:1,gpt-4o:0.2

  # which combination gets under budget?
  costctl estimate --requests 10M --input-tokens 1000 --output-tokens 50 \
    --sweep sample=5%,10%,20% --sweep model=gpt-4o,gpt-4o-mini --format md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.set = func(name string) bool { return cmd.Flags().Changed(name) }
			if opts.set("requests") && opts.set("per-day") {
				return usageErrorf("give either --requests (per month) or --per-day, not both")
			}
			if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON, render.FormatCSV, render.FormatMD); err != nil {
				return usageError(err)
			}
			if len(opts.Sweep) > 0 && opts.Scenarios != "" {
				return usageErrorf("give either --sweep or --scenarios, not both")
			}
			if opts.Map != "" && opts.From == "" {
				return usageErrorf("--map applies to --from FILE")
			}
			if runF != nil {
				return runF(opts)
			}
			return runEstimate(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Requests, "requests", "", "`N` requests per month: 10M, 2.5k, 1B, 2500000 or 2.5e6")
	fl.StringVar(&opts.PerDay, "per-day", "", "`N` requests per day (instead of --requests)")
	fl.Int64Var(&opts.Days, "days", 30, "days per month")
	fl.StringVar(&opts.InputTokens, "input-tokens", "", "`N` average input (prompt) tokens per request")
	fl.StringVar(&opts.OutputTokens, "output-tokens", "", "`N` average output tokens per request")
	fl.StringVar(&opts.From, "from", "", "measure average tokens from a JSONL/CSV records `FILE` (- for stdin)")
	fl.StringVar(&opts.Map, "map", "", "field names for --from as `FIELD=NAME,...`, e.g. output=response,input=question")
	fl.StringVar(&opts.Model, "model", "gpt-4o", "baseline `MODEL`, priced from the table")
	fl.StringVar(&opts.InputPrice, "input-price", "", "override the input price, `USD` per 1M tokens")
	fl.StringVar(&opts.OutputPrice, "output-price", "", "override the output price, `USD` per 1M tokens")
	fl.StringVar(&opts.CachedPrice, "cached-price", "", "override the cached-input price, `USD` per 1M tokens")
	for _, lv := range estimator.LeverList() {
		fl.Var(leverFlag{opts.Levers, lv.Key}, lv.Key, lv.Usage)
	}
	fl.StringArrayVar(&opts.Sweep, "sweep", nil, "compare every combination: `KEY=V1,V2` (repeatable; cascade alternatives separated by ;)")
	fl.StringVar(&opts.Scenarios, "scenarios", "", "compare named scenarios from a YAML `FILE`")
	fl.StringVar(&opts.Format, "format", "table", "output `FORMAT`: table, json, csv or md")
	fl.StringVar(&opts.MaxMonthly, "max-monthly", "", "exit 3 when the monthly total is above this many `USD`")
	return cmd
}

// estimateRun is everything parsed from the options, before any output.
type estimateRun struct {
	table    *pricing.Table
	est      *estimator.Estimator
	levers   estimator.Levers
	axes     []estimator.SweepAxis
	maxMonth *pricing.Money
	sample   *fromSample
}

// fromSample is the --from sample as measured, and which of its averages
// a flag replaced.
type fromSample struct {
	File string
	*estimator.Measured
	WithInputFlag, WithOutputFlag bool
}

// leverFlag is the pflag.Value of one lever's flag: its text in
// EstimateOptions.Levers.
type leverFlag struct {
	m   map[string]string
	key string
}

func (f leverFlag) String() string     { return f.m[f.key] }
func (f leverFlag) Set(v string) error { f.m[f.key] = v; return nil }
func (f leverFlag) Type() string       { return "string" }

// leverHelp lays out every lever's help under THE WATERFALL, in waterfall
// order: the key in a 14-column field after 4 spaces, then its lines.
func leverHelp() string {
	var b strings.Builder
	for _, lv := range estimator.LeverList() {
		for i, line := range strings.Split(lv.Help, "\n") {
			if i == 0 {
				fmt.Fprintf(&b, "    %-14s%s\n", lv.Key, line)
			} else {
				fmt.Fprintf(&b, "%18s%s\n", "", line)
			}
		}
	}
	return b.String()
}

// sweepHelp is the start of COMPARING, naming every --sweep key.
func sweepHelp() string {
	return wrapHelp("--sweep KEY=V1,V2 (repeatable; keys "+strings.Join(estimator.LeverKeys(), ", ")+
		") projects every combination, levers given as flags staying fixed, and marks the cheapest; "+
		"savings are against --model with no levers. Cascade and escalate alternatives are separated by "+
		"';' because they use ',' between tiers:", "  ", 78)
}

// wrapHelp fills text into lines of at most width columns, each starting
// with indent.
func wrapHelp(text, indent string, width int) string {
	var lines []string
	line := indent
	for _, w := range strings.Fields(text) {
		if line != indent && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\n")
}

func (o *EstimateOptions) isSet(name string, val string) bool {
	if o.set != nil {
		return o.set(name)
	}
	return val != ""
}

func flagErr(flag string, err error) error {
	return usageErrorf("--%s: %v", flag, err)
}

// runEstimate parses the options, computes the view once (notes and
// warnings to stderr), renders it in --format and applies --max-monthly.
func runEstimate(ctx context.Context, opts *EstimateOptions) error {
	run, err := prepareEstimate(ctx, opts)
	if err != nil {
		return err
	}
	var v *estimateView
	if len(run.axes) > 0 || opts.Scenarios != "" {
		v, err = compareView(opts, run)
	} else {
		v, err = waterfallView(run)
	}
	if err != nil {
		return err
	}
	for _, n := range v.Notes {
		fmt.Fprintf(opts.IO.ErrOut, "costctl: note: %s\n", n)
	}
	for _, n := range v.Warnings {
		fmt.Fprintf(opts.IO.ErrOut, "costctl: warning: %s\n", n)
	}
	var out bytes.Buffer
	if err := estimateRenderers[opts.Format](&out, v); err != nil {
		return err
	}
	if _, err := opts.IO.Out.Write(out.Bytes()); err != nil {
		return err
	}
	if v.Gate != "" {
		return gateError(v.Gate)
	}
	return nil
}

// estimateRenderers writes a view in each --format, one file each:
// estimate_table.go, estimate_markdown.go, estimate_json.go, estimate_csv.go.
var estimateRenderers = map[string]func(io.Writer, *estimateView) error{
	render.FormatTable: writeEstimateTable,
	render.FormatMD:    writeEstimateMarkdown,
	render.FormatJSON:  writeEstimateJSON,
	render.FormatCSV:   writeEstimateCSV,
}

// prepareEstimate parses and validates every flag and measures --from.
func prepareEstimate(ctx context.Context, o *EstimateOptions) (*estimateRun, error) {
	table, err := o.Pricing()
	if err != nil {
		return nil, err
	}
	run := &estimateRun{table: table}
	in := estimator.Inputs{Model: o.Model, Days: o.Days}
	if o.Days < 1 {
		return nil, usageErrorf("--days: must be at least 1, got %d", o.Days)
	}
	switch {
	case o.Requests != "":
		n, err := estimator.ParseCount(o.Requests)
		if err != nil {
			return nil, flagErr("requests", err)
		}
		in.RequestsPerMonth = n
	case o.PerDay != "":
		n, err := estimator.ParseCount(o.PerDay)
		if err != nil {
			return nil, flagErr("per-day", err)
		}
		if n > estimator.MaxRequests/o.Days {
			return nil, usageErrorf("--per-day %s × --days %d is above 1e15 requests a month", o.PerDay, o.Days)
		}
		in.RequestsPerMonth = n * o.Days
	case o.isSet("requests", o.Requests) || o.isSet("per-day", o.PerDay):
		return nil, usageErrorf("--requests/--per-day: empty value; give a volume of at least 1 (e.g. --requests 10M)")
	default:
		return nil, usageErrorf("no volume: give --requests N (per month, e.g. 10M) or --per-day N")
	}
	model, err := table.Lookup(o.Model)
	if err != nil {
		return nil, flagErr("model", err)
	}
	for _, p := range []struct {
		flag, val string
		dst       **pricing.Rate
	}{{"input-price", o.InputPrice, &in.InputPrice}, {"output-price", o.OutputPrice, &in.OutputPrice}, {"cached-price", o.CachedPrice, &in.CachedPrice}} {
		if p.val == "" {
			continue
		}
		r, err := pricing.ParseRatePer1M(p.val)
		if err != nil {
			return nil, flagErr(p.flag, err)
		}
		*p.dst = &r
	}
	if o.InputTokens != "" {
		if in.InputTokens, err = estimator.ParseTokens(o.InputTokens); err != nil {
			return nil, flagErr("input-tokens", err)
		}
	}
	if o.OutputTokens != "" {
		if in.OutputTokens, err = estimator.ParseTokens(o.OutputTokens); err != nil {
			return nil, flagErr("output-tokens", err)
		}
	}
	// Every lever flag, in waterfall order.
	for _, lv := range estimator.LeverList() {
		val := o.Levers[lv.Key]
		if val == "" {
			if o.isSet(lv.Key, val) {
				return nil, usageErrorf("--%s: empty value", lv.Key)
			}
			continue
		}
		if strings.EqualFold(strings.TrimSpace(val), estimator.None) {
			return nil, usageErrorf("--%s: none is for --sweep and scenarios; leave the flag out instead", lv.Key)
		}
		if err := lv.Set(&run.levers, val); err != nil {
			return nil, flagErr(lv.Key, err)
		}
	}
	for _, s := range o.Sweep {
		ax, err := estimator.ParseSweep(s)
		if err != nil {
			return nil, usageError(err)
		}
		run.axes = append(run.axes, ax)
	}
	if o.MaxMonthly != "" {
		m, err := estimator.ParseUSD(o.MaxMonthly)
		if err != nil {
			return nil, flagErr("max-monthly", err)
		}
		run.maxMonth = &m
	}
	if o.From != "" {
		s, err := measureFrom(ctx, o, model)
		if err != nil {
			return nil, err
		}
		run.sample = s
		avgIn, avgOut, _ := s.Averages()
		if in.InputTokens == nil {
			in.InputTokens = avgIn
		} else {
			s.WithInputFlag = true
		}
		if in.OutputTokens == nil {
			in.OutputTokens = avgOut
		} else {
			s.WithOutputFlag = true
		}
		// Each measured prompt length is priced in its own tier (and
		// checked against context windows and cache minimums on its own),
		// unless --input-tokens replaces the measured prompts.
		if !s.WithInputFlag {
			in.Prompts = s.Prompts()
			in.OutputAverage = s.WithOutputFlag
		}
	}
	if in.InputTokens == nil || in.OutputTokens == nil {
		missing := "--input-tokens"
		if in.InputTokens != nil {
			missing = "--output-tokens"
		} else if in.OutputTokens == nil {
			missing = "--input-tokens and --output-tokens"
		}
		return nil, usageErrorf("no token counts: give %s (average per request) or measure them with --from FILE", missing)
	}
	run.est, err = estimator.New(table, in)
	if err != nil {
		return nil, usageError(err)
	}
	if err := run.est.Validate(run.levers); err != nil {
		return nil, usageError(err)
	}
	return run, nil
}

// measureFrom streams a records file and counts each record's tokens with
// model's tokenizer.
func measureFrom(ctx context.Context, o *EstimateOptions, model *pricing.Model) (*fromSample, error) {
	// With --output-tokens the sample only needs prompts.
	ropts := records.Options{OptionalOutput: o.OutputTokens != "", Stdin: o.IO.In}
	if o.Map != "" {
		m, err := records.ParseMap(o.Map)
		if err != nil {
			return nil, usageError(err)
		}
		ropts.Map = m
	}
	counter, err := estimator.NewCounter(model)
	if err != nil {
		return nil, err
	}
	r, err := records.Open(o.From, ropts)
	if err != nil {
		// A missing or unreadable file is an error (exit 1); a file that
		// is not records (no output column, …) is bad input (exit 2).
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("--from %v", err)
		}
		return nil, usageErrorf("--from %v", err)
	}
	defer r.Close() // only read: a close error cannot lose data
	m, err := estimator.Measure(ctx, r, counter, func(line string) { fmt.Fprintln(o.IO.ErrOut, line) })
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return nil, err
		}
		return nil, fmt.Errorf("--from %v", err)
	}
	if m.Records == 0 {
		return nil, usageErrorf("--from %s: no usable records (%d skipped); each needs an input and an output", o.From, m.Skipped)
	}
	return &fromSample{File: o.From, Measured: m}, nil
}
