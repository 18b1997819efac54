package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/evaluator"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
)

// evalBatchHelp is the BATCH section of eval's help.
const evalBatchHelp = `

BATCH (--batch)
  Judge calls go through the providers' Batch APIs at half price (OpenAI
  /v1/batches, Anthropic /v1/messages/batches; results within 24 h). Records
  are checked, sampled and cascaded as in a live run; the judge calls not in
  the cache are written as batch requests — to the ledger first, then to the
  provider — split at the providers' limits (OpenAI 50,000 requests or
  200 MB a batch; Anthropic 100,000 or 256 MB). Without --no-wait the
  command polls with backoff (--poll-interval, doubling up to 60 s) and
  shows progress on stderr; --no-wait submits, collects whatever has ended
  and returns. Rerunning the same command never submits a request twice: it
  collects the batches already submitted. A when: on a judge verdict is
  decided once that verdict is in, so a chain of k judges takes k rounds.
  Results fill the same cache as live calls (a later live run makes no
  request); the ledger rows say batch. A request's error is an error row
  (never cached); requests of a batch that expired or was cancelled are
  not_run rows and the next run resubmits only those. Costs are the price
  table's batch rates (50% of list for OpenAI and Anthropic, cache reads and
  writes included); a judge whose model has no batch price is refused, never
  guessed. --max-cost reserves each request's worst case at batch rates and
  cuts the batch to fit. --dry-run --batch shows live and batch cost side by
  side. costctl eval batches lists the batches; costctl eval batches cancel
  ID cancels one.`

// addBatchFlags registers eval's batch flags.
func addBatchFlags(cmd *cobra.Command, opts *EvalOptions) {
	fl := cmd.Flags()
	fl.BoolVar(&opts.Batch, "batch", false, "send judge calls through the providers' Batch APIs (50% off, results within 24 h)")
	fl.BoolVar(&opts.NoWait, "no-wait", false, "with --batch: submit, collect what has ended, and return without waiting")
	fl.DurationVar(&opts.PollInterval, "poll-interval", 5*time.Second, "with --batch: first wait between status polls (doubles up to 60s)")
}

// checkBatchFlags validates the batch flags' combinations.
func checkBatchFlags(opts *EvalOptions) error {
	switch {
	case opts.NoWait && !opts.Batch:
		return usageErrorf("--no-wait goes with --batch")
	case opts.Batch && (opts.NoCache || opts.Refresh):
		return usageErrorf("--batch collects verdicts into the judge cache and answers from it: it cannot be used with --no-cache or --refresh")
	case opts.PollInterval <= 0:
		return usageErrorf("--poll-interval must be positive")
	}
	return nil
}

// batchProgress prints a batch run's notes and, when its counts change,
// one progress line on stderr.
type batchProgress struct {
	mu   sync.Mutex
	w    io.Writer
	last string
}

func (p *batchProgress) update(bp evaluator.BatchProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bp.Note != "" {
		fmt.Fprintf(p.w, "batch: %s\n", bp.Note)
		return
	}
	line := fmt.Sprintf("batch: round %d · %d of %d batch(es) open · %s/%s requests done · %s spent",
		bp.Round, bp.Open, bp.Batches, render.Int(bp.Done), render.Int(bp.Requests), bp.Spent.Display())
	if line != p.last {
		fmt.Fprintln(p.w, line)
		p.last = line
	}
}

// runEvalBatch runs eo through the Batch APIs; truncate empties the output
// files once every result is in. A nil Result with a nil error means the
// run returned pending (--no-wait): its summary has been written.
func runEvalBatch(ctx context.Context, opts *EvalOptions, table *pricing.Table, eo evaluator.Options, truncate func() error) (*evaluator.Result, error) {
	bp := &batchProgress{w: opts.IO.ErrOut}
	bo := evaluator.BatchOptions{NoWait: opts.NoWait, PollBase: opts.PollInterval, PollMax: max(60*time.Second, opts.PollInterval),
		Progress: bp.update, BeforeRows: truncate}
	res, sum, err := evaluator.RunBatch(ctx, eo, bo)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, &ExitErr{Code: ExitInterrupted, Err: errors.New("interrupted: submitted batches keep running at the provider; rerun the same command to collect them (nothing is submitted twice)")}
		}
		return res, err
	}
	if res == nil && sum != nil && sum.Pending {
		if err := writeBatchPending(opts, table, eo.RunID, sum); err != nil {
			return nil, err
		}
		if opts.MinPassRate > 0 || opts.FailOnError {
			return nil, gateError("gate not decided: the batch results are not in yet; rerun the same command to collect them")
		}
		return nil, nil
	}
	return res, nil
}

// writeBatchPending is the summary of a --no-wait run that returned before
// every result was in.
func writeBatchPending(opts *EvalOptions, table *pricing.Table, runID string, sum *evaluator.BatchSummary) error {
	w := opts.IO.Out
	if opts.Format == render.FormatJSON {
		return render.JSON(w, struct {
			Version    int                  `json:"version"`
			RunID      string               `json:"run_id"`
			PricesAsOf string               `json:"prices_as_of"`
			Batch      *evaluator.JSONBatch `json:"batch"`
		}{1, runID, table.AsOf, sum.JSON()})
	}
	t := &render.Table{
		Headers: []string{"BATCH", "PROVIDER ID", "MODEL", "STATE", "REQUESTS"},
		Align:   []render.Align{render.Left, render.Left, render.Left, render.Left, render.Right},
	}
	for _, b := range sum.Open {
		t.AddRow(b.ID, b.RemoteID, b.Model, b.State, render.Int(b.Requests))
	}
	if err := t.WriteText(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "\npending: %s request(s) submitted in %d batch(es) by this run, %s result(s) collected; worst case still open %s at batch rates\n",
		render.Int(sum.Submitted), sum.Batches, render.Int(sum.Collected), sum.Reserved.Display())
	if sum.Cut > 0 {
		fmt.Fprintf(w, "%s request(s) not submitted: they would have crossed --max-cost\n", render.Int(sum.Cut))
	}
	fmt.Fprintf(w, "rerun the same command to collect the results (nothing is submitted twice) · %s\n", table.AsOfLabel())
	return nil
}

// batchSummaryLine is the batch line of eval's summary table.
func batchSummaryLine(w io.Writer, s *evaluator.BatchSummary) {
	fmt.Fprintf(w, "batch: %d round(s); %d batch(es) submitted with %s request(s); %s result(s) collected at batch rates",
		s.Rounds, s.Batches, render.Int(s.Submitted), render.Int(s.Collected))
	if s.Errored > 0 {
		fmt.Fprintf(w, "; %s request error(s)", render.Int(s.Errored))
	}
	if s.Cut > 0 {
		fmt.Fprintf(w, "; %s cut by --max-cost", render.Int(s.Cut))
	}
	if s.Missing > 0 {
		fmt.Fprintf(w, "; %s never ran (batch expired or cancelled): a rerun resubmits them", render.Int(s.Missing))
	}
	fmt.Fprintln(w)
}

// EvalBatchesOptions are the inputs of `costctl eval batches`.
type EvalBatchesOptions struct {
	IO     *IOStreams
	Ledger func(ctx context.Context, toWrite bool) (*ledger.DB, error)
	Format string
	Open   bool
}

func newEvalBatchesCmd(f *Factory) *cobra.Command {
	opts := &EvalBatchesOptions{IO: f.IO, Ledger: f.OpenExistingLedger}
	cmd := &cobra.Command{
		Use:   "batches",
		Short: "List the Batch API batches eval --batch submitted, and their state",
		Long: `List the batches eval --batch submitted, newest first: costctl's id, the
provider's id, model, state as last seen (preparing, validating,
in_progress, finalizing, completed, expired, cancelled, failed, or
collected once its results are in the ledger), requests, results by
outcome, the worst case reserved at batch rates and what its collected
results cost. It reads the ledger only; a run of the eval polls the
provider.` + exitStatusSection,
		Example: `  costctl eval batches
  costctl eval batches --open --format json
  costctl eval batches cancel 20261202T063000Z-ab12cd-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
				return usageError(err)
			}
			return runEvalBatches(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Format, "format", "table", "table or json")
	cmd.Flags().BoolVar(&opts.Open, "open", false, "only batches not yet collected")
	cmd.AddCommand(newEvalBatchCancelCmd(f))
	return cmd
}

// batchJSON is one batch in `eval batches --format json`.
type batchJSON struct {
	ID        string        `json:"id"`
	RemoteID  string        `json:"provider_id"`
	Provider  string        `json:"provider"`
	Endpoint  string        `json:"endpoint"`
	Judge     string        `json:"judge"`
	Model     string        `json:"model"`
	RunID     string        `json:"run_id"`
	Round     int           `json:"round"`
	State     string        `json:"state"`
	Requests  int64         `json:"requests"`
	Succeeded int64         `json:"succeeded"`
	Errored   int64         `json:"errored"`
	Missing   int64         `json:"missing"`
	Reserved  pricing.Money `json:"reserved_usd"`
	Cost      pricing.Money `json:"cost_usd"`
	Created   string        `json:"created"`
	Updated   string        `json:"updated"`
	Error     string        `json:"error,omitempty"`
}

func runEvalBatches(ctx context.Context, opts *EvalBatchesOptions) error {
	db, err := opts.Ledger(ctx, false)
	if err != nil {
		return err
	}
	defer db.Close() // read only
	bs, err := db.Batches(ctx, opts.Open)
	if err != nil {
		return err
	}
	if opts.Format == render.FormatJSON {
		out := struct {
			Version int         `json:"version"`
			Batches []batchJSON `json:"batches"`
		}{Version: 1, Batches: []batchJSON{}}
		for _, b := range bs {
			out.Batches = append(out.Batches, batchJSON{b.ID, b.RemoteID, b.Provider, b.Endpoint, b.Judge, b.Model, b.RunID, b.Round, b.State,
				b.Requests, b.Succeeded, b.Errored, b.Missing, b.Reserved, b.Cost, b.Created.Format(time.RFC3339), b.Updated.Format(time.RFC3339), b.Error})
		}
		return render.JSON(opts.IO.Out, out)
	}
	if len(bs) == 0 {
		fmt.Fprintln(opts.IO.Out, "no batches in the ledger: costctl eval FILE --batch submits some")
		return nil
	}
	t := &render.Table{
		Headers: []string{"BATCH", "PROVIDER ID", "MODEL", "ROUND", "STATE", "REQUESTS", "OK", "ERR", "MISSING", "RESERVED", "COST", "CREATED"},
		Align: []render.Align{render.Left, render.Left, render.Left, render.Right, render.Left, render.Right, render.Right, render.Right, render.Right,
			render.Right, render.Right, render.Left},
	}
	for _, b := range bs {
		t.AddRow(b.ID, b.RemoteID, b.Provider+"/"+b.Model, fmt.Sprint(b.Round), b.State, render.Int(b.Requests), render.Int(b.Succeeded),
			render.Int(b.Errored), render.Int(b.Missing), b.Reserved.Display(), b.Cost.Display(), b.Created.Local().Format("2006-01-02 15:04"))
	}
	return t.WriteText(opts.IO.Out)
}

func newEvalBatchCancelCmd(f *Factory) *cobra.Command {
	var configFile, baseURL string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a submitted batch (its finished results are kept)",
		Long: `Ask the provider to cancel a batch (costctl's id or the provider's). The
batch ends shortly after with its finished results kept: the next run of
the same eval collects them and resubmits only the requests that did not
run. The API key comes from the provider's variable (OPENAI_API_KEY,
ANTHROPIC_API_KEY), or from the judge's api_key_env with --config.` + exitStatusSection,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			db, err := f.OpenExistingLedger(ctx, true)
			if err != nil {
				return err
			}
			defer db.Close() // the update below is checked
			bt, ok, err := db.FindBatch(ctx, args[0])
			if err != nil {
				return err
			}
			if !ok {
				return usageErrorf("no batch %q in the ledger; costctl eval batches lists them", args[0])
			}
			if !bt.Open() {
				return usageErrorf("batch %s has ended and its results are collected: nothing to cancel", bt.ID)
			}
			table, err := f.Pricing()
			if err != nil {
				return err
			}
			bc := evaluator.BatchControl{Table: table, Getenv: f.Getenv, HTTPClient: f.HTTPClient, BaseURL: baseURL, Now: f.Now}
			if configFile != "" {
				if _, err := os.Stat(configFile); err != nil {
					return &ExitErr{Code: ExitError, Err: fmt.Errorf("--config %s: %s", configFile, fsReason(err))}
				}
				if bc.Config, err = evaluator.LoadConfig(configFile, table); err != nil {
					return usageError(err)
				}
			}
			info, err := evaluator.CancelBatch(ctx, bc, bt)
			if err != nil {
				return evalErr(err)
			}
			bt.State, bt.Updated = info.State, f.Now()
			if err := db.UpdateBatch(ctx, bt); err != nil {
				return err
			}
			fmt.Fprintf(f.IO.Out, "batch %s (%s): %s; rerun its eval to collect the finished results and resubmit the rest\n", bt.ID, info.RemoteID, info.State)
			return nil
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "the eval config whose judge submitted the batch (for its api_key_env and base_url)")
	cmd.Flags().StringVar(&baseURL, "base-url", "", "the OpenAI-compatible endpoint, as given to eval --base-url")
	return cmd
}

// truncateAll empties the output files a batch run opened without
// truncating, before its rows are written.
func truncateAll(files ...*os.File) error {
	for _, f := range files {
		if f == nil {
			continue
		}
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
	}
	return nil
}

// nowOr is now, or time.Now when nil.
func nowOr(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}
