package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
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
	Ctx     context.Context

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

	Sample      string
	Cascade     string
	Escalate    string
	CacheHit    string
	PromptCache string
	Batch       string
	Infra       string

	Sweep     []string
	Scenarios string

	Format     string
	MaxMonthly string

	// set reports whether a flag was given on the command line.
	set func(name string) bool
}

func newEstimateCmd(f *Factory, runF func(*EstimateOptions) error) *cobra.Command {
	opts := &EstimateOptions{IO: f.IO, Pricing: f.Pricing}
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
    sample        the share of requests evaluated at all (10% or 0.1)
    cascade       which judge tier handles each evaluation, e.g.
                  free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2 — "free" (regex/keyword
                  checks) costs nothing, other tiers are priced by their own
                  model; shares must sum to 1
    escalate      a judge hierarchy in which each stage sees its own share
                  of the evaluations, e.g. gpt-4o-mini:1,gpt-4o:0.2 (the
                  cheap model judges everything, the expensive one
                  re-judges 20%); shares need not sum to 1, "free" is a
                  stage that costs nothing; instead of cascade, not with it
    cache-hit     the share of calls answered by a response cache (no call)
    prompt-cache  the share of the remaining calls' input tokens billed at
                  each model's cached-input price (cache-write premiums, such
                  as Anthropic's, are not modelled; a model that lists no
                  cached price saves nothing, and a note on stderr says so).
                  A provider caches no prefix shorter than its minimum
                  (OpenAI 1,024 tokens; Anthropic 1,024, 2,048 for Haiku 3
                  and 3.5, 4,096 for Opus 4.5-4.7 and Haiku 4.5): where the
                  cached share of a prompt is shorter, it is not counted as
                  saved and a warning on stderr says so
    batch         the share of the remaining calls sent through the Batch API
                  at batch prices (a cached prompt read in a batch costs half
                  the cached price)
    infra         fixed USD per month, added last
  Per call: (1-b)·[I·((1-p)·in + p·cached) + O·out]
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
  --sweep KEY=V1,V2 (repeatable; keys model, sample, cascade, escalate,
  cache-hit, prompt-cache, batch, infra) projects every combination, levers
  given as flags staying fixed, and marks the cheapest; savings are against
  --model with no levers. Cascade and escalate alternatives are separated by
  ';' because they use ',' between tiers:
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
			opts.Ctx = cmd.Context()
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
			return runEstimate(opts)
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
	fl.StringVar(&opts.Sample, "sample", "", "share `R` of requests evaluated: 10% or 0.1")
	fl.StringVar(&opts.Cascade, "cascade", "", "judge tiers and their shares, a `SPEC` like free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2")
	fl.StringVar(&opts.Escalate, "escalate", "", "judge stages and the share of evaluations each sees, a `SPEC` like gpt-4o-mini:1,gpt-4o:0.2")
	fl.StringVar(&opts.CacheHit, "cache-hit", "", "share `R` of calls answered by a response cache")
	fl.StringVar(&opts.PromptCache, "prompt-cache", "", "share `R` of input tokens billed at the cached-input price")
	fl.StringVar(&opts.Batch, "batch", "", "share `R` of calls sent through the Batch API")
	fl.StringVar(&opts.Infra, "infra", "", "fixed infrastructure, `USD` per month")
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

type fromSample struct {
	File     string
	Encoding string
	Exact    bool
	Skipped  int64
	estimator.Sample
	WithInputFlag, WithOutputFlag bool
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

func runEstimate(opts *EstimateOptions) error {
	ctx := opts.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	run, err := prepareEstimate(ctx, opts)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	var gateMsg string
	if len(run.axes) > 0 || opts.Scenarios != "" {
		gateMsg, err = compareEstimate(opts, run, &out)
	} else {
		gateMsg, err = waterfallEstimate(opts, run, &out)
	}
	if err != nil {
		return err
	}
	if _, err := opts.IO.Out.Write(out.Bytes()); err != nil {
		return err
	}
	if gateMsg != "" {
		return gateError(gateMsg)
	}
	return nil
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
	for _, lf := range []struct{ key, val string }{
		{estimator.KeySample, o.Sample}, {estimator.KeyCascade, o.Cascade}, {estimator.KeyEscalate, o.Escalate}, {estimator.KeyCacheHit, o.CacheHit},
		{estimator.KeyPromptCache, o.PromptCache}, {estimator.KeyBatch, o.Batch}, {estimator.KeyInfra, o.Infra},
	} {
		if lf.val == "" {
			if o.isSet(lf.key, lf.val) {
				return nil, usageErrorf("--%s: empty value", lf.key)
			}
			continue
		}
		if strings.EqualFold(strings.TrimSpace(lf.val), estimator.None) {
			return nil, usageErrorf("--%s: none is for --sweep and scenarios; leave the flag out instead", lf.key)
		}
		if err := estimator.SetLever(&run.levers, lf.key, lf.val); err != nil {
			return nil, flagErr(lf.key, err)
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
	ropts := records.Options{OptionalOutput: o.OutputTokens != ""}
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
	defer r.Close()
	s := &fromSample{File: o.From, Encoding: counter.Encoding(), Exact: counter.Exact()}
	var msgs []estimator.Message
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		var le *records.LineError
		if errors.As(err, &le) {
			fmt.Fprintln(o.IO.ErrOut, le.Error())
			s.Skipped++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("--from %v", err)
		}
		if rec.Messages == nil && rec.Input == "" {
			fmt.Fprintf(o.IO.ErrOut, "%s:%d: no input; skipped\n", rec.File, rec.Line)
			s.Skipped++
			continue
		}
		msgs = msgs[:0]
		if rec.Messages != nil {
			if msgs == nil {
				msgs = []estimator.Message{}
			}
			for _, m := range rec.Messages {
				msgs = append(msgs, estimator.Message{Role: m.Role, Content: m.Content, Name: m.Name})
			}
			s.Add(counter, "", msgs, rec.Output)
		} else {
			s.Add(counter, rec.Input, nil, rec.Output)
		}
	}
	if s.Records == 0 {
		return nil, usageErrorf("--from %s: no usable records (%d skipped); each needs an input and an output", o.From, s.Skipped)
	}
	return s, nil
}

// ---------------------------------------------------------------- waterfall

func waterfallEstimate(o *EstimateOptions, run *estimateRun, w io.Writer) (string, error) {
	p, err := run.est.Project(run.levers)
	if err != nil {
		return "", usageError(err)
	}
	type row struct {
		step estimator.Step
		amt  estimator.Amounts
	}
	rows := make([]row, 0, len(p.Steps))
	for _, s := range p.Steps {
		a, err := s.Amounts()
		if err != nil {
			return "", usageError(err)
		}
		rows = append(rows, row{s, a})
	}
	total, err := p.Total.Amounts()
	if err != nil {
		return "", usageError(err)
	}
	for _, n := range p.Notes {
		fmt.Fprintf(o.IO.ErrOut, "costctl: note: %s\n", n)
	}
	for _, n := range p.Warnings {
		fmt.Fprintf(o.IO.ErrOut, "costctl: warning: %s\n", n)
	}
	asOf := run.table.AsOfLabel()
	switch o.Format {
	case render.FormatJSON:
		doc := estimateJSON{Version: 1, Inputs: inputsJSON(run, p.Levers), PricesAsOf: run.table.AsOf, PriceOverrides: run.table.Overrides, Notes: p.Notes, Warnings: p.Warnings}
		for _, r := range rows {
			doc.Steps = append(doc.Steps, stepJSON{Name: r.step.Name, Detail: r.step.Detail, amountsJSON: toAmountsJSON(r.amt)})
		}
		doc.Total = totalJSON{CostPerRequest: total.PerRequest, Daily: total.Daily, Monthly: total.Monthly, SavingsPct: pctJSON(total.SavingsPct)}
		if err := render.JSON(w, doc); err != nil {
			return "", err
		}
	case render.FormatCSV:
		t := &render.Table{Headers: []string{"step", "detail", "cost_per_request_usd", "daily_usd", "monthly_usd", "savings_usd", "savings_pct", "prices_as_of"}}
		for _, r := range rows {
			t.AddRow(r.step.Name, r.step.Detail, r.amt.PerRequest.String(), r.amt.Daily.String(), r.amt.Monthly.String(), r.amt.Savings.String(), pctPlain(r.amt.SavingsPct), run.table.AsOf)
		}
		t.AddRow("total", "", total.PerRequest.String(), total.Daily.String(), total.Monthly.String(), total.Savings.String(), pctPlain(total.SavingsPct), run.table.AsOf)
		if err := t.WriteCSV(w); err != nil {
			return "", err
		}
	default:
		t := &render.Table{
			Headers: []string{"STEP", "LEVER", "PER REQUEST", "PER DAY", "PER MONTH", "SAVING", "SAVING %"},
			Align:   []render.Align{render.Left, render.Left, render.Right, render.Right, render.Right, render.Right, render.Right},
		}
		for _, r := range rows {
			t.AddRow(r.step.Name, r.step.Detail, r.amt.PerRequest.Display(), r.amt.Daily.DisplayRounded(2), r.amt.Monthly.DisplayRounded(2), signedDollars(r.amt.Savings), pctDisplay(r.amt.SavingsPct))
		}
		t.Footer = []string{"total", "", total.PerRequest.Display(), total.Daily.DisplayRounded(2), total.Monthly.DisplayRounded(2), signedDollars(total.Savings), pctDisplay(total.SavingsPct)}
		if o.Format == render.FormatMD {
			fmt.Fprintf(w, "**costctl estimate** — %s\n\n", summaryLine(run, p.Model))
			if err := t.WriteMarkdown(w); err != nil {
				return "", err
			}
			fmt.Fprintf(w, "\n_%s_\n", asOf)
		} else {
			fmt.Fprintln(w, summaryLine(run, p.Model))
			fmt.Fprintln(w)
			if err := t.WriteText(w); err != nil {
				return "", err
			}
			fmt.Fprintln(w, asOf)
		}
	}
	if run.maxMonth != nil && p.Total.Monthly.Cmp(run.maxMonth.Rat()) > 0 {
		return fmt.Sprintf("projected monthly total %s is above --max-monthly %s (%s)", total.Monthly.DisplayRounded(2), run.maxMonth.Display(), asOf), nil
	}
	return "", nil
}

// summaryLine describes volume and tokens: "gpt-4o · 10,000,000 requests/month
// (333,333.33/day over 30 days) · 1,000 input + 50 output tokens per request".
func summaryLine(run *estimateRun, model *pricing.Model) string {
	in := run.est.Inputs()
	perDay := new(big.Rat).SetFrac64(in.RequestsPerMonth, in.Days)
	s := fmt.Sprintf("%s · %s requests/month (%s/day over %d days) · %s input + %s output tokens per request",
		model.Name, render.Int(in.RequestsPerMonth), groupDecimal(perDay, 2), in.Days, groupDecimal(in.InputTokens, 2), groupDecimal(in.OutputTokens, 2))
	if fs := run.sample; fs != nil {
		s += fmt.Sprintf(" (measured from %s: %s records, %s", fs.File, render.Int(fs.Records), fs.Encoding)
		if !fs.Exact {
			s += ", approximate tokenizer"
		}
		s += ")"
	}
	return s
}

// groupDecimal writes r with thousands separators and up to places decimals.
func groupDecimal(r *big.Rat, places int) string {
	s := estimator.DecimalString(r, places)
	whole, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(whole, "-")
	whole = strings.TrimPrefix(whole, "-")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if neg {
		out = "-" + out
	}
	if frac != "" {
		out += "." + frac
	}
	return out
}

func signedDollars(m pricing.Money) string {
	if m < 0 {
		return "-" + (-m).DisplayRounded(2)
	}
	return m.DisplayRounded(2)
}

func pctDisplay(r *big.Rat) string { return r.FloatString(1) + "%" }
func pctPlain(r *big.Rat) string   { return r.FloatString(2) }
func pctJSON(r *big.Rat) json.Number {
	return json.Number(r.FloatString(2))
}

// ---------------------------------------------------------------- JSON

type estimateJSON struct {
	Version        int            `json:"version"`
	Inputs         estimateInputs `json:"inputs"`
	PricesAsOf     string         `json:"prices_as_of"`
	PriceOverrides []string       `json:"price_overrides,omitempty"`
	Steps          []stepJSON     `json:"steps"`
	Total          totalJSON      `json:"total"`
	Notes          []string       `json:"notes,omitempty"`
	Warnings       []string       `json:"warnings,omitempty"`
}

type estimateInputs struct {
	Model            string            `json:"model"`
	RequestsPerMonth int64             `json:"requests_per_month"`
	RequestsPerDay   json.Number       `json:"requests_per_day"`
	DaysPerMonth     int64             `json:"days_per_month"`
	InputTokens      json.Number       `json:"input_tokens"`
	OutputTokens     json.Number       `json:"output_tokens"`
	Prices           pricesJSON        `json:"prices"`
	Levers           map[string]string `json:"levers"`
	From             *fromJSON         `json:"from,omitempty"`
}

type pricesJSON struct {
	Input       string `json:"input_per_1m_usd"`
	CachedInput string `json:"cached_input_per_1m_usd,omitempty"`
	Output      string `json:"output_per_1m_usd"`
	BatchInput  string `json:"batch_input_per_1m_usd"`
	BatchOutput string `json:"batch_output_per_1m_usd"`
	Source      string `json:"source"` // "table" or "override"
}

type fromJSON struct {
	File         string `json:"file"`
	Records      int64  `json:"records"`
	Skipped      int64  `json:"skipped"`
	InputTokens  int64  `json:"input_tokens_total"`
	OutputTokens int64  `json:"output_tokens_total"`
	Encoding     string `json:"encoding"`
	Exact        bool   `json:"exact_tokenizer"`
}

type amountsJSON struct {
	CostPerRequest pricing.Money `json:"cost_per_request_usd"`
	Daily          pricing.Money `json:"daily_usd"`
	Monthly        pricing.Money `json:"monthly_usd"`
	Savings        pricing.Money `json:"savings_usd"`
	SavingsPct     json.Number   `json:"savings_pct"`
}

func toAmountsJSON(a estimator.Amounts) amountsJSON {
	return amountsJSON{CostPerRequest: a.PerRequest, Daily: a.Daily, Monthly: a.Monthly, Savings: a.Savings, SavingsPct: pctJSON(a.SavingsPct)}
}

type stepJSON struct {
	Name   string `json:"name"`
	Detail string `json:"detail"`
	amountsJSON
}

type totalJSON struct {
	CostPerRequest pricing.Money `json:"cost_per_request_usd"`
	Daily          pricing.Money `json:"daily_usd"`
	Monthly        pricing.Money `json:"monthly_usd"`
	SavingsPct     json.Number   `json:"savings_pct"`
}

// inputsJSON describes the run's inputs with levers l (the flags' levers
// for a comparison) and the baseline model's effective prices.
func inputsJSON(run *estimateRun, l estimator.Levers) estimateInputs {
	in := run.est.Inputs()
	model, _ := run.table.Lookup(in.Model)
	if l.Model != "" {
		model, _ = run.table.Lookup(l.Model)
	}
	pr := run.est.PricesFor(model)
	pj := pricesJSON{
		Input: estimator.Per1M(pr.Input), Output: estimator.Per1M(pr.Output),
		BatchInput: estimator.Per1M(pr.BatchInput), BatchOutput: estimator.Per1M(pr.BatchOut), Source: "table",
	}
	if pr.CachedKnown {
		pj.CachedInput = estimator.Per1M(pr.CachedInput)
	}
	if pr.Overridden {
		pj.Source = "override"
	}
	levers := estimator.LeverParams(l, in.Model)
	delete(levers, estimator.KeyModel)
	ij := estimateInputs{
		Model:            model.Name,
		RequestsPerMonth: in.RequestsPerMonth,
		RequestsPerDay:   json.Number(estimator.DecimalString(new(big.Rat).SetFrac64(in.RequestsPerMonth, in.Days), 6)),
		DaysPerMonth:     in.Days,
		InputTokens:      json.Number(estimator.DecimalString(in.InputTokens, 6)),
		OutputTokens:     json.Number(estimator.DecimalString(in.OutputTokens, 6)),
		Prices:           pj,
		Levers:           levers,
	}
	if fs := run.sample; fs != nil {
		ij.From = &fromJSON{File: fs.File, Records: fs.Records, Skipped: fs.Skipped, InputTokens: fs.InputTokens, OutputTokens: fs.OutputTokens, Encoding: fs.Encoding, Exact: fs.Exact}
	}
	return ij
}

// ---------------------------------------------------------------- sweep / scenarios

type compareJSON struct {
	Version        int            `json:"version"`
	Inputs         estimateInputs `json:"inputs"`
	PricesAsOf     string         `json:"prices_as_of"`
	PriceOverrides []string       `json:"price_overrides,omitempty"`
	Baseline       string         `json:"baseline"`
	Scenarios      []scenarioJSON `json:"scenarios"`
	Warnings       []string       `json:"warnings,omitempty"`
}

type scenarioJSON struct {
	Name     string            `json:"name"`
	Params   map[string]string `json:"params"`
	Total    amountsJSON       `json:"total"`
	Cheapest bool              `json:"cheapest"`
}

func compareEstimate(o *EstimateOptions, run *estimateRun, w io.Writer) (string, error) {
	var scenarios []estimator.Scenario
	var baseline *big.Rat
	var baselineLabel string
	if o.Scenarios != "" {
		f, err := os.Open(o.Scenarios)
		if err != nil {
			return "", &ExitErr{Code: ExitError, Err: fmt.Errorf("--scenarios %s: %s", o.Scenarios, describeFSError(err))}
		}
		scenarios, err = estimator.ParseScenarios(f, o.Scenarios, run.levers)
		f.Close()
		if err != nil {
			return "", usageError(err)
		}
		baselineLabel = "scenario " + scenarios[0].Name
	} else {
		var err error
		scenarios, err = estimator.SweepScenarios(run.levers, run.axes)
		if err != nil {
			return "", usageError(err)
		}
		b, err := run.est.Baseline()
		if err != nil {
			return "", usageError(err)
		}
		baseline = b.Monthly
		bm, err := pricing.MoneyFromRat(b.Monthly)
		if err != nil {
			return "", usageError(err)
		}
		baselineLabel = fmt.Sprintf("%s with no levers (%s/month)", run.est.Inputs().Model, bm.DisplayRounded(2))
	}
	cmp, err := run.est.Compare(scenarios, baseline)
	if err != nil {
		return "", usageError(err)
	}
	// Columns: every key some scenario sets, in waterfall order.
	used := map[string]bool{}
	for _, c := range cmp {
		for _, k := range c.Set {
			used[k] = true
		}
	}
	// Sweep columns follow the --sweep flags' order (the first varies
	// slowest); scenario columns follow the waterfall.
	var keys []string
	if o.Scenarios == "" {
		for _, ax := range run.axes {
			keys = append(keys, ax.Key)
		}
	} else {
		for _, k := range estimator.LeverKeys() {
			if used[k] {
				keys = append(keys, k)
			}
		}
	}
	amts := make([]estimator.Amounts, len(cmp))
	cheapest := 0
	for i, c := range cmp {
		if amts[i], err = c.Total.Amounts(); err != nil {
			return "", usageError(err)
		}
		if c.Cheapest {
			cheapest = i
		}
	}
	notes := map[string]bool{}
	for _, c := range cmp {
		for _, n := range c.Notes {
			if !notes[n] {
				notes[n] = true
				fmt.Fprintf(o.IO.ErrOut, "costctl: note: %s\n", n)
			}
		}
	}
	var warnings []string
	for _, c := range cmp {
		for _, n := range c.Warnings {
			if !notes[n] {
				notes[n] = true
				warnings = append(warnings, n)
				fmt.Fprintf(o.IO.ErrOut, "costctl: warning: %s\n", n)
			}
		}
	}
	asOf := run.table.AsOfLabel()
	baseModel := run.est.Inputs().Model
	switch o.Format {
	case render.FormatJSON:
		doc := compareJSON{Version: 1, Inputs: inputsJSON(run, run.levers), PricesAsOf: run.table.AsOf, PriceOverrides: run.table.Overrides, Baseline: baselineLabel, Warnings: warnings}
		for i, c := range cmp {
			doc.Scenarios = append(doc.Scenarios, scenarioJSON{Name: scenarioName(c), Params: estimator.LeverParams(c.Levers, baseModel), Total: toAmountsJSON(amts[i]), Cheapest: c.Cheapest})
		}
		if err := render.JSON(w, doc); err != nil {
			return "", err
		}
	case render.FormatCSV:
		t := &render.Table{Headers: append(append([]string{"scenario"}, keys...), "cost_per_request_usd", "daily_usd", "monthly_usd", "savings_usd", "savings_pct", "cheapest", "prices_as_of")}
		for i, c := range cmp {
			row := []string{scenarioName(c)}
			for _, k := range keys {
				row = append(row, leverText(c.Levers, k, baseModel, false))
			}
			a := amts[i]
			row = append(row, a.PerRequest.String(), a.Daily.String(), a.Monthly.String(), a.Savings.String(), pctPlain(a.SavingsPct), fmt.Sprint(c.Cheapest), run.table.AsOf)
			t.AddRow(row...)
		}
		if err := t.WriteCSV(w); err != nil {
			return "", err
		}
	default:
		headers := []string{"#"}
		align := []render.Align{render.Right}
		if o.Scenarios != "" {
			headers = append(headers, "SCENARIO")
			align = append(align, render.Left)
		}
		for _, k := range keys {
			headers = append(headers, strings.ToUpper(k))
			align = append(align, render.Left)
		}
		headers = append(headers, "PER REQUEST", "PER DAY", "PER MONTH", "SAVING", "SAVING %", "")
		align = append(align, render.Right, render.Right, render.Right, render.Right, render.Right, render.Left)
		t := &render.Table{Headers: headers, Align: align}
		for i, c := range cmp {
			row := []string{fmt.Sprint(i + 1)}
			if o.Scenarios != "" {
				row = append(row, c.Name)
			}
			for _, k := range keys {
				row = append(row, leverText(c.Levers, k, baseModel, true))
			}
			a := amts[i]
			mark := ""
			if c.Cheapest {
				mark = "cheapest"
				if o.Format == render.FormatMD {
					mark = "**cheapest**"
				}
			}
			row = append(row, a.PerRequest.Display(), a.Daily.DisplayRounded(2), a.Monthly.DisplayRounded(2), signedDollars(a.Savings), pctDisplay(a.SavingsPct), mark)
			t.AddRow(row...)
		}
		fixed := fixedLevers(run.levers, keys)
		baseM, err := run.table.Lookup(baseModel)
		if err != nil {
			return "", usageError(err)
		}
		head := summaryLine(run, baseM)
		if o.Format == render.FormatMD {
			fmt.Fprintf(w, "**costctl estimate** — %s\n\n", head)
			if fixed != "" {
				fmt.Fprintf(w, "Fixed levers: %s. ", fixed)
			}
			fmt.Fprintf(w, "Savings against %s.\n\n", baselineLabel)
			if err := t.WriteMarkdown(w); err != nil {
				return "", err
			}
			fmt.Fprintf(w, "\n_%s_\n", asOf)
		} else {
			fmt.Fprintln(w, head)
			if fixed != "" {
				fmt.Fprintf(w, "fixed levers: %s\n", fixed)
			}
			fmt.Fprintf(w, "savings against %s\n\n", baselineLabel)
			if err := t.WriteText(w); err != nil {
				return "", err
			}
			fmt.Fprintln(w, asOf)
		}
	}
	best := cmp[cheapest]
	if run.maxMonth != nil && best.Total.Monthly.Cmp(run.maxMonth.Rat()) > 0 {
		return fmt.Sprintf("cheapest of %d scenarios (%s) is %s/month, above --max-monthly %s (%s)",
			len(cmp), scenarioName(best), amts[cheapest].Monthly.DisplayRounded(2), run.maxMonth.Display(), asOf), nil
	}
	return "", nil
}

func scenarioName(c estimator.Compared) string {
	if c.Name == "" {
		return "flags"
	}
	return c.Name
}

// fixedLevers describes the flag levers that the sweep does not vary.
func fixedLevers(l estimator.Levers, swept []string) string {
	skip := map[string]bool{}
	for _, k := range swept {
		skip[k] = true
	}
	var parts []string
	for _, k := range estimator.LeverKeys() {
		if k == estimator.KeyModel || skip[k] {
			continue
		}
		if v := leverText(l, k, "", true); v != "none" {
			parts = append(parts, k+" "+v)
		}
	}
	return strings.Join(parts, ", ")
}

// leverText writes one lever of l: percentages for shares when human is
// true, else exact decimals; "none" when unset.
func leverText(l estimator.Levers, key, baseModel string, human bool) string {
	ratio := func(r *big.Rat) string {
		if r == nil {
			return "none"
		}
		if human {
			return estimator.PercentString(r)
		}
		return estimator.DecimalString(r, 12)
	}
	switch key {
	case estimator.KeyModel:
		if l.Model != "" {
			return l.Model
		}
		return baseModel
	case estimator.KeySample:
		return ratio(l.Sample)
	case estimator.KeyCacheHit:
		return ratio(l.CacheHit)
	case estimator.KeyPromptCache:
		return ratio(l.PromptCache)
	case estimator.KeyBatch:
		return ratio(l.Batch)
	case estimator.KeyCascade, estimator.KeyEscalate:
		tiers := []estimator.CascadeTier(l.Cascade)
		if key == estimator.KeyEscalate {
			tiers = l.Escalate
		}
		if tiers == nil {
			return "none"
		}
		if !human {
			return estimator.Cascade(tiers).String()
		}
		parts := make([]string, len(tiers))
		for i, t := range tiers {
			parts[i] = t.Name + ":" + estimator.PercentString(t.Share)
		}
		return strings.Join(parts, ",")
	case estimator.KeyInfra:
		if l.Infra == nil {
			return "none"
		}
		if human {
			return l.Infra.DisplayRounded(2)
		}
		return l.Infra.String()
	}
	return ""
}
