package commands

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/evaluator"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/records"
	"github.com/costctl/costctl/render"
)

// EvalOptions are the flags and dependencies of `costctl eval`.
type EvalOptions struct {
	IO         *IOStreams
	Pricing    func() (*pricing.Table, error)
	LedgerPath func() (string, error)
	OpenLedger func(context.Context) (*ledger.DB, error)
	// PricingFile is --pricing (read when the command runs: flags are
	// parsed after the options are built).
	PricingFile func() string
	HTTPClient  *http.Client
	Getenv      func(string) string
	Now         func() time.Time

	Files       []string
	ConfigFile  string
	Map         string
	BaseURL     string
	Concurrency int
	MaxRetries  int
	Timeout     time.Duration
	Sample      string
	Seed        uint64
	MinTokens   int64
	NoCache     bool
	Refresh     bool
	StoreText   bool
	MaxCost     string
	DryRun      bool
	Out         string
	Format      string
	JUnit       string
	MinPassRate float64
	FailOnError bool
	Strict      bool
	// --shard i/n and its shared budget (eval_shard.go).
	Shard      string
	ShardGroup string
	// --batch: through the providers' Batch APIs (eval_batch.go).
	Batch        bool
	NoWait       bool
	PollInterval time.Duration

	// Injected for tests: backoff durations and the sleep function.
	BackoffBase, BackoffMax time.Duration
	Sleep                   func(ctx context.Context, d time.Duration) error
}

const evalLong = `Score recorded model outputs in local files with free deterministic checks
and LLM judges (any OpenAI-compatible endpoint, or the Anthropic Messages API
with provider: anthropic), cheapest first, with an
exact SQLite cache, a budget cap that is never exceeded and a ledger of every
call.

INPUT
  JSON Lines (.jsonl, .ndjson, .json) or CSV (header row); other extensions
  are sniffed. Fields: id (optional; default a hash of the content), input
  (text or chat messages), output (required), expected, context (text or a
  list), metadata (object), tenant. --map output=response,input=question maps
  other names. A bad line is reported as FILE:LINE: reason on stderr, skipped
  and counted (--strict makes it fatal).

CONFIG (--config, default eval.yaml; "costctl eval init" writes a starter)
  judges name a model (priced in the price table), a provider (openai, the
  default, or anthropic), an optional base_url, api_key_env (default
  OPENAI_API_KEY, or ANTHROPIC_API_KEY for anthropic), json_mode (default true) and
  max_tokens (default 256; 4096 for reasoning models, which are gpt-5*, o1*,
  o3*, o4* or any judge with reasoning: true). Metrics: regex, keyword, json, length (free) and
  judge. Metrics run cheapest first; "when: other.pass" (or .fail, or
  .score >= N; a list = all) runs a metric only when it holds; skipped judge
  calls cost nothing and count as savings.

WHAT A JUDGE SEES
  system message: the metric's prompt (rubric), verbatim.
  user message (unless the metric has a template):
      ## Input
      <input; chat messages as "role: content" blocks>

      ## Output
      <output>

      ## Expected
      <expected>

      ## Context
      [1] <first passage>

      <the instruction to answer only with {"score": 0..1, "reason": "..."}>
  Empty sections are left out. A template may use {{id}}, {{input}},
  {{output}}, {{expected}} and {{context}}; the instruction is appended.
  Requests ask for response_format json_object (json_mode: false turns it
  off), "temperature": 0 and "max_tokens"; a reasoning model gets
  "max_completion_tokens" and no temperature. A reply that does not parse
  gets one repair retry, then the row is an error (never cached, never a
  score of 0).

CACHE
  Verdicts are cached in the ledger database (--db) under a SHA-256 of the
  endpoint, model, json mode, max_tokens, temperature, system message and
  user message. A metric's name and threshold are not in the key: renaming a
  metric or moving its threshold re-buys nothing. Editing a rubric, a
  template or a record's fields misses. --no-cache bypasses the cache,
  --refresh asks again and overwrites. Prompt and reply text are stored only
  with --store-text; API keys never.

BUDGET AND FAULTS
  --max-cost USD reserves, before each call, a bound no honest server can
  exceed: the prompt's UTF-8 bytes + 8 tokens a message + 64 at the input
  price, plus max_tokens at the output price. Spent + reserved never exceeds
  the cap. A call that does not fit waits for calls in flight; the run stops
  (exit 4) only when none is in flight and the next still does not fit, so
  it ends within one call's worst case of the cap. Rerun with a larger cap
  to continue from the cache. A usage block that is invalid or missing is
  billed from local counts and marked estimated; a call billed beyond its
  reservation is recorded as billed, stops the run at once (exit 4) and is
  explained. Each paid call is on the ledger before its worker moves on, so
  kill -9 loses only calls in flight; a call sent and then cancelled or
  timed out is recorded at its worst case (unsettled). Identical requests
  in one run are sent once. 429, 5xx and timeouts are retried with
  exponential backoff and jitter, honouring Retry-After; a 429
  insufficient_quota or a request refused before sending stops the run at
  once. Ctrl-C stops sending, writes what is done and exits 130; a rerun
  resumes from the cache. API keys are redacted from server messages.

GATES
  --min-pass-rate R exits 3 when a metric's pass rate is below R, when a
  metric has no scored row (every call errored) and when no record was
  evaluated: a gate never passes on nothing. --fail-on-error exits 3 on any
  error row; error rows are reported on stderr either way.

OUTPUT
  A summary table on stdout (--format json for a versioned report with the
  stop reason, cap, spend and records left), one JSONL row per record ×
  metric in input order with --out (not_run rows for metrics a stopped run
  did not reach), JUnit XML with --junit, progress and warnings on stderr.
  --out and --junit may not name an input, the config or the ledger. Costs
  are the usage the server reports × the price table. A run that fails
  prints nothing on stdout.` + evalBatchHelp + evalShardHelp + exitStatusSection

func newEvalCmd(f *Factory, runF func(*EvalOptions) error) *cobra.Command {
	opts := &EvalOptions{IO: f.IO, Pricing: f.Pricing, LedgerPath: f.LedgerPath, OpenLedger: f.OpenLedger,
		PricingFile: func() string { return f.PricingFile }, HTTPClient: f.HTTPClient, Getenv: f.Getenv, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "eval FILE...",
		Short: "Score model outputs with cheap checks and LLM judges, within a budget",
		Long:  evalLong,
		Example: `  costctl eval init
  costctl eval outputs.jsonl --config eval.yaml --dry-run
  costctl eval outputs.jsonl --config eval.yaml --max-cost 5 --out results.jsonl
  costctl eval logs.csv --map output=response,input=question --sample 10% --format json
  costctl eval outputs.jsonl --config eval.yaml --batch --no-wait`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			if opts.Concurrency < 1 {
				return usageErrorf("--concurrency must be at least 1")
			}
			if opts.MaxRetries < 0 {
				return usageErrorf("--max-retries must be 0 or more")
			}
			if opts.Timeout <= 0 {
				return usageErrorf("--timeout must be positive")
			}
			if opts.MinPassRate < 0 || opts.MinPassRate > 1 || opts.MinPassRate != opts.MinPassRate {
				return usageErrorf("--min-pass-rate must be between 0 and 1 (e.g. 0.9)")
			}
			if opts.NoCache && opts.Refresh {
				return usageErrorf("--no-cache and --refresh cannot be used together")
			}
			if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
				return usageError(err)
			}
			if err := checkBatchFlags(opts); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runEval(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.ConfigFile, "config", "c", "eval.yaml", "eval config `FILE` (judges and metrics)")
	fl.StringVar(&opts.Map, "map", "", "map field names, e.g. output=response,input=question")
	fl.StringVar(&opts.BaseURL, "base-url", "", "OpenAI-compatible endpoint for openai judges without base_url (default $OPENAI_BASE_URL or https://api.openai.com/v1); anthropic judges use base_url, else $ANTHROPIC_BASE_URL")
	fl.IntVar(&opts.Concurrency, "concurrency", 8, "judge calls in flight at once")
	fl.IntVar(&opts.MaxRetries, "max-retries", 4, "retries of a call after 429, 5xx or a timeout (0 = none)")
	fl.DurationVar(&opts.Timeout, "timeout", 60*time.Second, "time limit of one judge call")
	fl.StringVar(&opts.Sample, "sample", "", "evaluate a stable sample: 10%, 0.1 or a record count like 500")
	fl.Uint64Var(&opts.Seed, "seed", 0, "sampling seed (another seed, another sample)")
	fl.Int64Var(&opts.MinTokens, "min-tokens", 0, "only records whose input+output have at least `N` tokens")
	fl.BoolVar(&opts.NoCache, "no-cache", false, "neither read nor write the judge cache")
	fl.BoolVar(&opts.Refresh, "refresh", false, "ask the judges again and overwrite cached verdicts")
	fl.BoolVar(&opts.StoreText, "store-text", false, "also store prompt and reply text in the cache")
	fl.StringVar(&opts.MaxCost, "max-cost", "", "budget cap in `USD`: no call that could cross it is sent")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "project calls, tokens and a cost range; send nothing")
	fl.StringVarP(&opts.Out, "out", "o", "", "write one JSONL row per record × metric to `FILE`")
	fl.StringVar(&opts.Format, "format", "table", "summary format: table or json")
	fl.StringVar(&opts.JUnit, "junit", "", "write JUnit XML to `FILE` (one test case per record × metric)")
	fl.Float64Var(&opts.MinPassRate, "min-pass-rate", 0, "exit 3 when any metric's pass rate is below `R` (0..1)")
	fl.BoolVar(&opts.FailOnError, "fail-on-error", false, "exit 3 when any row is an error")
	fl.BoolVar(&opts.Strict, "strict", false, "a bad input line stops the run")
	addBatchFlags(cmd, opts)
	addShardFlags(cmd, opts)
	cmd.AddCommand(newEvalInitCmd(f), newEvalBatchesCmd(f))
	return cmd
}

func newEvalInitCmd(f *Factory) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init [FILE]",
		Short: "Write a commented starter eval config (default eval.yaml)",
		Long: `Write a commented starter config with two judges and one metric of each
type. An existing file is kept unless --force is given.` + exitStatusSection,
		Example: `  costctl eval init
  costctl eval init ci/eval.yaml --force`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "eval.yaml"
			if len(args) == 1 {
				path = args[0]
			}
			flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			fh, err := os.OpenFile(path, flag, 0o644)
			if errors.Is(err, os.ErrExist) {
				return usageErrorf("%s already exists; pass --force to overwrite it", path)
			}
			if err != nil {
				return fmt.Errorf("eval init: %w", err)
			}
			if _, err := io.WriteString(fh, evaluator.StarterConfig); err != nil {
				return errors.Join(err, fh.Close())
			}
			if err := fh.Close(); err != nil {
				return err
			}
			fmt.Fprintf(f.IO.ErrOut, "wrote %s; edit the rubrics, then: costctl eval FILE --config %s --dry-run\n", path, path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	return cmd
}

func runEval(ctx context.Context, opts *EvalOptions) error {
	table, err := opts.Pricing()
	if err != nil {
		return err
	}
	if _, err := os.Stat(opts.ConfigFile); err != nil {
		return &ExitErr{Code: ExitError, Err: fmt.Errorf("--config %s: %s; write a starter with: costctl eval init %s", opts.ConfigFile, fsReason(err), opts.ConfigFile)}
	}
	cfg, err := evaluator.LoadConfig(opts.ConfigFile, table)
	if err != nil {
		return usageError(err)
	}
	fieldMap, err := records.ParseMap(opts.Map)
	if err != nil {
		return usageError(err)
	}
	sample, err := evaluator.ParseSample(opts.Sample)
	if err != nil {
		return usageError(err)
	}
	shard, err := evaluator.ParseShard(opts.Shard)
	if err != nil {
		return usageError(err)
	}
	if opts.ShardGroup != "" && shard.N == 0 {
		return usageErrorf("--shard-group goes with --shard")
	}
	var maxCost pricing.Money
	if opts.MaxCost != "" {
		maxCost, err = pricing.ParseMoney(strings.TrimPrefix(opts.MaxCost, "$"))
		if err != nil || maxCost <= 0 {
			return usageErrorf("--max-cost %q: want a positive amount in USD, e.g. 5 or 0.50", opts.MaxCost)
		}
	}
	for _, file := range opts.Files {
		if file == "-" && sample.Count > 0 {
			return usageErrorf("--sample %s (a count) reads the input twice; give a file, not -, or use a percentage", opts.Sample)
		}
	}
	for _, file := range opts.Files {
		if file == "-" {
			continue
		}
		if st, err := os.Stat(file); err != nil {
			return &ExitErr{Code: ExitError, Err: fmt.Errorf("%s: %s", file, fsReason(err))}
		} else if st.IsDir() {
			return usageErrorf("%s is a directory; give the JSONL or CSV files in it", file)
		}
	}
	ledgerPath, err := opts.LedgerPath()
	if err != nil {
		return err
	}
	if err := checkEvalOutputs(opts, ledgerPath, opts.PricingFile()); err != nil {
		return err
	}
	db, err := opts.OpenLedger(ctx)
	if err != nil {
		return err
	}
	defer db.Close() // every write was committed and checked before this; Close only releases connections

	var badMu sync.Mutex
	eo := evaluator.Options{
		Files: opts.Files, Map: fieldMap, Config: cfg, DB: db, Table: table,
		HTTPClient: opts.HTTPClient, Getenv: opts.Getenv, BaseURL: opts.BaseURL, Stdin: opts.IO.In,
		Concurrency: opts.Concurrency, MaxRetries: opts.MaxRetries, Timeout: opts.Timeout,
		BackoffBase: opts.BackoffBase, BackoffMax: opts.BackoffMax, Sleep: opts.Sleep,
		Sample: sample, Seed: opts.Seed, MinTokens: opts.MinTokens, Shard: shard,
		NoCache: opts.NoCache, Refresh: opts.Refresh, StoreText: opts.StoreText, Strict: opts.Strict,
		MaxCost: maxCost, Now: opts.Now, KeepRows: opts.JUnit != "",
		BadLine: func(e *records.LineError) {
			badMu.Lock()
			fmt.Fprintln(opts.IO.ErrOut, e.Error())
			badMu.Unlock()
		},
	}

	if shard.N > 1 && maxCost > 0 && !opts.DryRun {
		if opts.Batch {
			return usageErrorf("--batch with --shard and --max-cost is not supported: shards' batch requests cannot share one cap yet; give each shard its own --max-cost without --shard, or drop --batch")
		}
		now := nowOr(opts.Now)
		scope, err := shardScope(opts, now())
		if err != nil {
			return &ExitErr{Code: ExitError, Err: err}
		}
		// A hold outlives the longest a call can take (every retry timing
		// out after its backoff); a shard that dies keeps its holds until
		// then, on the safe side.
		retries := time.Duration(opts.MaxRetries + 1)
		ttl := retries*opts.Timeout + retries*max(opts.BackoffMax, 30*time.Second) + time.Minute
		eo.SharedBudget = &ledgerBudget{db: db, scope: scope, cap: pricing.AmountFromMoney(maxCost), ttl: ttl, holder: "eval " + opts.Shard, now: now}
	}
	if opts.DryRun {
		dr, err := evaluator.DryRun(ctx, eo)
		if err != nil {
			return evalErr(err)
		}
		return writeDryRun(opts, table, dr)
	}

	// Every output file is opened (created or truncated) before the first
	// paid call, so a bad path fails before any money is spent.
	// A batch run empties them only once every result is in: a --no-wait
	// run that returns pending leaves an earlier run's files as they were.
	var outFile, junitFile *os.File
	outFlags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if opts.Batch {
		outFlags &^= os.O_TRUNC
	}
	if opts.Out != "" {
		outFile, err = os.OpenFile(opts.Out, outFlags, 0o644)
		if err != nil {
			return &ExitErr{Code: ExitError, Err: fmt.Errorf("--out %s: %s", opts.Out, fsReason(err))}
		}
		defer outFile.Close() // for the early returns: after the run it is closed and checked below
		eo.Out = outFile
	}
	if opts.JUnit != "" {
		junitFile, err = os.OpenFile(opts.JUnit, outFlags, 0o644)
		if err != nil {
			return &ExitErr{Code: ExitError, Err: fmt.Errorf("--junit %s: %s", opts.JUnit, fsReason(err))}
		}
		defer junitFile.Close() // for the early returns: writeJUnit closes it and checks
	}
	prog := newEvalProgress(opts.IO, opts.Now)
	eo.Progress = prog.update
	var res *evaluator.Result
	var runErr error
	if opts.Batch {
		eo.RunID = evaluator.NewRunID(nowOr(opts.Now)())
		res, runErr = runEvalBatch(ctx, opts, table, eo, func() error { return truncateAll(outFile, junitFile) })
		if res == nil && runErr == nil {
			prog.done()
			return nil // pending: the summary is written
		}
	} else {
		res, runErr = evaluator.Run(ctx, eo)
	}
	prog.done()
	if res == nil {
		return evalErr(runErr)
	}
	if outFile != nil {
		if err := outFile.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("--out: %w", err)
		}
	}
	if junitFile != nil {
		if err := writeJUnit(junitFile, res); err != nil && runErr == nil {
			runErr = fmt.Errorf("--junit %s: %w", opts.JUnit, err)
		}
	}
	warnEval(opts.IO.ErrOut, res)
	if runErr != nil {
		// A failed run prints nothing on stdout: what was saved goes to
		// stderr with the error.
		fmt.Fprintf(opts.IO.ErrOut, "saved before the error: %s record(s), %s call(s), %s spent (on the ledger; a rerun resumes from the cache)\n",
			render.Int(res.Sampled-res.LeftRecords), render.Int(res.Calls), res.Cost.Display())
		if res.Unrecorded > 0 {
			fmt.Fprintf(opts.IO.ErrOut, "%s billed call(s) could not be written to the ledger\n", render.Int(res.Unrecorded))
		}
		return evalErr(runErr)
	}
	if err := writeEvalSummary(opts, table, res); err != nil {
		return err
	}
	switch res.Stop {
	case evaluator.StopBudget:
		return &ExitErr{Code: ExitBudget, Err: fmt.Errorf("budget cap %s reached: %s spent; %s sampled record(s) not started and %s record × metric evaluation(s) not run; rerun with a larger --max-cost to continue from the cache",
			maxCost.Display(), res.Cost.Display(), render.Int(res.LeftRecords), render.Int(res.NotRun))}
	case evaluator.StopOverbill:
		over := ""
		if maxCost > 0 && res.Cost > maxCost {
			over = fmt.Sprintf(" (%s over the %s cap)", (res.Cost - maxCost).Display(), maxCost.Display())
		}
		return &ExitErr{Code: ExitBudget, Err: fmt.Errorf("stopped sending: %s; %s spent%s, every call recorded as billed; check that the judge's model and endpoint match its price",
			res.StopDetail, res.Cost.Display(), over)}
	case evaluator.StopIncomplete:
		return &ExitErr{Code: ExitError, Err: fmt.Errorf("%s request(s) never ran: their batch expired, was cancelled or failed; their rows are not_run; rerun the same command to resubmit only those",
			render.Int(res.Batch.Missing))}
	case evaluator.StopInterrupted:
		return &ExitErr{Code: ExitInterrupted, Err: fmt.Errorf("interrupted: %s record(s) finished and saved; rerun the same command to resume from the cache", render.Int(res.Sampled))}
	}
	if gates := evalGates(opts, res); len(gates) > 0 {
		return gateError("gate failed: " + strings.Join(gates, "; "))
	}
	return nil
}

// evalGates are the gates a finished run fails. A gate cannot pass on
// nothing: no records, or a metric with no scored row (every call errored),
// fails it. A metric whose every row was skipped by its when is not gated.
func evalGates(opts *EvalOptions, res *evaluator.Result) []string {
	var gates []string
	if opts.FailOnError && res.Errors > 0 {
		gates = append(gates, fmt.Sprintf("%d error row(s) (--fail-on-error)", res.Errors))
	}
	if opts.MinPassRate <= 0 {
		return gates
	}
	if res.Sampled == 0 {
		return append(gates, fmt.Sprintf("no record was evaluated (%s read, %s bad line(s)); --min-pass-rate needs scored rows", render.Int(res.Records), render.Int(res.BadLines)))
	}
	for _, m := range res.Metrics {
		pr, ok := m.PassRate()
		switch {
		case ok && pr < opts.MinPassRate:
			gates = append(gates, fmt.Sprintf("%s pass rate %s < %s (--min-pass-rate)", m.Name, render.Pct(pr*100), render.Pct(opts.MinPassRate*100)))
		case !ok && m.Errors > 0:
			gates = append(gates, fmt.Sprintf("%s has no scored row: all %s evaluation(s) were errors (--min-pass-rate)", m.Name, render.Int(m.Errors)))
		case !ok && m.Skipped == 0:
			gates = append(gates, fmt.Sprintf("%s has no scored row (--min-pass-rate)", m.Name))
		}
	}
	return gates
}

// warnEval says on stderr what a person must know even when the run
// succeeded: error rows, estimated or unsettled costs, flagged usage.
func warnEval(w io.Writer, res *evaluator.Result) {
	if res.Errors > 0 {
		var parts []string
		for _, m := range res.Metrics {
			if m.Errors > 0 {
				parts = append(parts, fmt.Sprintf("%s %s", m.Name, render.Int(m.Errors)))
			}
		}
		fmt.Fprintf(w, "warning: %s error row(s) (%s); first: %s; a rerun asks again (--fail-on-error makes them fail the run)\n", render.Int(res.Errors), strings.Join(parts, ", "), res.FirstError)
	}
	if res.Estimated > 0 {
		fmt.Fprintf(w, "warning: %s call(s) came back without a usable usage block: billed from local counts (the prompt's bound and the reply's tokens) and marked estimated\n", render.Int(res.Estimated))
	}
	if res.Unsettled > 0 {
		fmt.Fprintf(w, "warning: %s call(s) were sent and then cancelled or timed out: the provider may bill them, so they are recorded at their worst case (%s) and marked unsettled\n", render.Int(res.Unsettled), res.UnsettledCost.Display())
	}
	if res.Flagged > 0 {
		fmt.Fprintf(w, "warning: %s usage block(s) were impossible for their request; first: %s\n", render.Int(res.Flagged), res.FlaggedWhy)
	}
}

// fsReason is a file error in a person's words.
func fsReason(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// checkEvalOutputs refuses --out or --junit when it names an input (a
// records file, the config, the price file), the ledger or its -wal/-shm
// files, or the other output: opening it for writing would empty it.
func checkEvalOutputs(opts *EvalOptions, ledgerPath, pricingFile string) error {
	type named struct{ path, what string }
	var protected []named
	for _, f := range opts.Files {
		if f != "-" {
			protected = append(protected, named{f, "an input file"})
		}
	}
	protected = append(protected, named{opts.ConfigFile, "the eval config"})
	if pricingFile != "" {
		protected = append(protected, named{pricingFile, "the --pricing file"})
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		protected = append(protected, named{ledgerPath + suffix, "the ledger (--db)"})
	}
	outs := []named{{opts.Out, "--out"}, {opts.JUnit, "--junit"}}
	for i, o := range outs {
		if o.path == "" {
			continue
		}
		for _, p := range protected {
			if samePath(o.path, p.path) {
				return usageErrorf("%s %s is %s; writing results there would destroy it — choose another file", o.what, o.path, p.what)
			}
		}
		if i == 1 && samePath(outs[0].path, o.path) {
			return usageErrorf("--out and --junit name the same file %s; give each its own", o.path)
		}
	}
	return nil
}

// samePath reports whether a and b name the same file: the same inode when
// both exist (hard links, symlinks), else the same cleaned absolute path.
func samePath(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(sa, sb)
	}
	absA, err1 := filepath.Abs(a)
	absB, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && absA == absB
}

// evalErr maps evaluator errors to exit codes.
func evalErr(err error) error {
	var ce *evaluator.ConfigError
	var ie *evaluator.InputError
	switch {
	case errors.As(err, &ie) && ie.Unreadable:
		return &ExitErr{Code: ExitError, Err: err}
	case errors.As(err, &ce), errors.As(err, &ie):
		return usageError(err)
	case errors.Is(err, context.Canceled):
		return &ExitErr{Code: ExitInterrupted, Err: errors.New("interrupted")}
	}
	return err
}

func fmtRate(m *evaluator.MetricStats) string {
	pr, ok := m.PassRate()
	if !ok {
		return "-"
	}
	lo, hi, _ := m.CI95()
	return fmt.Sprintf("%.1f%% [%.1f–%.1f]", pr*100, lo*100, hi*100)
}

func writeEvalSummary(opts *EvalOptions, table *pricing.Table, res *evaluator.Result) error {
	w := opts.IO.Out
	if opts.Format == render.FormatJSON {
		return render.JSON(w, res.JSON())
	}
	t := &render.Table{
		Headers: []string{"METRIC", "EVALUATED", "PASS", "FAIL", "SKIP", "ERR", "PASS RATE (95% CI)", "MEAN", "CALLS", "CACHED", "TOKENS", "COST"},
		Align:   []render.Align{render.Left, render.Right, render.Right, render.Right, render.Right, render.Right, render.Right, render.Right, render.Right, render.Right, render.Right, render.Right},
	}
	var tokens int64
	for _, m := range res.Metrics {
		mean := "-"
		if v, ok := m.MeanScore(); ok {
			mean = fmt.Sprintf("%.3f", v)
		}
		mt := m.InputTokens + m.OutputTokens
		tokens += mt
		cost, calls, cached, tok := m.Cost.Display(), render.Int(m.Calls), render.Int(m.CacheHits), render.Int(mt)
		if !m.Judge {
			cost, calls, cached, tok = "free", "-", "-", "-"
		}
		t.AddRow(m.Name, render.Int(m.Evaluated), render.Int(m.Passed), render.Int(m.Failed), render.Int(m.Skipped), render.Int(m.Errors),
			fmtRate(m), mean, calls, cached, tok, cost)
	}
	t.Footer = []string{"total", "", "", "", "", render.Int(res.Errors), "", "", render.Int(res.Calls), render.Int(res.CacheHits), render.Int(tokens), res.Cost.Display()}
	if err := t.WriteText(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nrecords %s, sampled %s, bad lines %s; %s passed every metric\n", render.Int(res.Records), render.Int(res.Sampled), render.Int(res.BadLines), render.Int(res.RecordsPassed))
	if len(res.Retries) > 0 {
		var parts []string
		for _, c := range []string{evaluator.Retry429, evaluator.Retry5xx, evaluator.RetryTimeout, evaluator.RetryNetwork, evaluator.RetryRepair} {
			if n := res.Retries[c]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %s", c, render.Int(n)))
			}
		}
		fmt.Fprintf(w, "retries: %s\n", strings.Join(parts, ", "))
	}
	if res.Stop != evaluator.StopNone {
		cap := "no cap"
		if res.MaxCost > 0 {
			cap = "cap " + res.MaxCost.Display()
		}
		fmt.Fprintf(w, "stopped (%s): %s spent, %s; %s sampled record(s) not started, %s evaluation(s) not run\n",
			res.Stop, res.Cost.Display(), cap, render.Int(res.LeftRecords), render.Int(res.NotRun))
	}
	if res.Batch != nil {
		batchSummaryLine(w, res.Batch)
	}
	fmt.Fprintf(w, "cost %s; avoided %s (cache %s, cascade skips %s, sampling ≈%s); baseline %s\n",
		res.Cost.Display(), res.Avoided().Display(), res.AvoidedCache.Display(), res.AvoidedSkip.Display(), res.AvoidedSamp.Display(), res.Baseline.Display())
	fmt.Fprintf(w, "run %s · %s\n", res.RunID, table.AsOfLabel())
	return nil
}

func writeDryRun(opts *EvalOptions, table *pricing.Table, dr *evaluator.DryResult) error {
	w := opts.IO.Out
	if opts.Format == render.FormatJSON {
		type jm struct {
			Name         string        `json:"name"`
			Model        string        `json:"model,omitempty"`
			ToEvaluate   int64         `json:"to_evaluate"`
			CacheHits    int64         `json:"cache_hits"`
			CallsMin     int64         `json:"calls_min"`
			CallsMax     int64         `json:"calls_max"`
			PromptTokens int64         `json:"prompt_tokens"`
			OutputMax    int64         `json:"output_tokens_max"`
			CostLow      pricing.Money `json:"cost_low_usd"`
			CostHigh     pricing.Money `json:"cost_high_usd"`
			// With --batch: the same calls at Batch API prices (null: the
			// price table has no batch price for the model).
			BatchLow  *pricing.Money `json:"batch_cost_low_usd,omitempty"`
			BatchHigh *pricing.Money `json:"batch_cost_high_usd,omitempty"`
			NoBatch   bool           `json:"no_batch_price,omitempty"`
		}
		out := struct {
			Version    int            `json:"version"`
			DryRun     bool           `json:"dry_run"`
			PricesAsOf string         `json:"prices_as_of"`
			Records    int64          `json:"records"`
			Sampled    int64          `json:"sampled"`
			BadLines   int64          `json:"bad_lines"`
			Metrics    []jm           `json:"metrics"`
			CostLow    pricing.Money  `json:"cost_low_usd"`
			CostHigh   pricing.Money  `json:"cost_high_usd"`
			BatchLow   *pricing.Money `json:"batch_cost_low_usd,omitempty"`
			BatchHigh  *pricing.Money `json:"batch_cost_high_usd,omitempty"`
			NoBatch    bool           `json:"no_batch_price,omitempty"`
		}{Version: 1, DryRun: true, PricesAsOf: table.AsOf, Records: dr.Records, Sampled: dr.Sampled, BadLines: dr.BadLines, CostLow: dr.CostLow, CostHigh: dr.CostHigh}
		if opts.Batch {
			out.BatchLow, out.BatchHigh, out.NoBatch = &dr.BatchLow, &dr.BatchHigh, dr.NoBatch
		}
		for _, m := range dr.Metrics {
			j := jm{Name: m.Name, Model: m.Model, ToEvaluate: m.ToEvaluate, CacheHits: m.CacheHits, CallsMin: m.CallsMin, CallsMax: m.CallsMax,
				PromptTokens: m.PromptTokens, OutputMax: m.OutputMax, CostLow: m.CostLow, CostHigh: m.CostHigh}
			if opts.Batch && m.Judge {
				if m.NoBatch {
					j.NoBatch = true
				} else {
					j.BatchLow, j.BatchHigh = &m.BatchLow, &m.BatchHigh
				}
			}
			out.Metrics = append(out.Metrics, j)
		}
		return render.JSON(w, out)
	}
	t := &render.Table{
		Headers: []string{"METRIC", "MODEL", "TO EVALUATE", "CACHED", "CALLS", "PROMPT TOKENS", "OUTPUT ≤", "COST RANGE"},
		Align:   []render.Align{render.Left, render.Left, render.Right, render.Right, render.Right, render.Right, render.Right, render.Right},
	}
	if opts.Batch {
		t.Headers[7] = "LIVE COST RANGE"
		t.Headers = append(t.Headers, "BATCH COST RANGE")
		t.Align = append(t.Align, render.Right)
	}
	for _, m := range dr.Metrics {
		if !m.Judge {
			row := []string{m.Name, "(free)", render.Int(m.ToEvaluate), "-", "-", "-", "-", "free"}
			if opts.Batch {
				row = append(row, "free")
			}
			t.AddRow(row...)
			continue
		}
		calls := render.Int(m.CallsMax)
		if m.CallsMin != m.CallsMax {
			calls = render.Int(m.CallsMin) + "–" + render.Int(m.CallsMax)
		}
		row := []string{m.Name, m.Model, render.Int(m.ToEvaluate), render.Int(m.CacheHits), calls, render.Int(m.PromptTokens), render.Int(m.OutputMax),
			m.CostLow.Display() + " – " + m.CostHigh.Display()}
		if opts.Batch {
			if m.NoBatch {
				row = append(row, "no batch price")
			} else {
				row = append(row, m.BatchLow.Display()+" – "+m.BatchHigh.Display())
			}
		}
		t.AddRow(row...)
	}
	t.Footer = []string{"total", "", "", "", "", "", "", dr.CostLow.Display() + " – " + dr.CostHigh.Display()}
	if opts.Batch {
		foot := dr.BatchLow.Display() + " – " + dr.BatchHigh.Display()
		if dr.NoBatch {
			foot = "(a judge has no batch price)"
		}
		t.Footer = append(t.Footer, foot)
	}
	if err := t.WriteText(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "\ndry run: nothing sent. records %s, sampled %s, bad lines %s\n", render.Int(dr.Records), render.Int(dr.Sampled), render.Int(dr.BadLines))
	fmt.Fprintf(w, "low: calls certainly needed, prompt tokens only; high: every possible call (when-chained included) with a full max_tokens reply\n")
	fmt.Fprintln(w, table.AsOfLabel())
	return nil
}

// evalProgress draws a bar on a terminal and plain lines every 10 s otherwise.
type evalProgress struct {
	mu    sync.Mutex
	io    *IOStreams
	now   func() time.Time
	last  time.Time
	start time.Time
	drew  bool
}

func newEvalProgress(s *IOStreams, now func() time.Time) *evalProgress {
	return &evalProgress{io: s, now: now, start: now(), last: now()}
}

func (p *evalProgress) update(pr evaluator.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	eta := ""
	frac := 0.0
	if pr.BytesTotal > 0 {
		frac = float64(pr.BytesRead) / float64(pr.BytesTotal)
		if frac > 0.01 && pr.Elapsed > 0 {
			rem := time.Duration(float64(pr.Elapsed) * (1 - frac) / frac).Round(time.Second)
			eta = " · ETA " + rem.String()
		}
	}
	if p.io.ErrTTY {
		if t.Sub(p.last) < 100*time.Millisecond && p.drew {
			return
		}
		const width = 24
		n := int(frac * width)
		bar := strings.Repeat("█", n) + strings.Repeat("░", width-n)
		fmt.Fprintf(p.io.ErrOut, "\r\x1b[K%s %s records · %s spent · %s calls · %s cached%s", bar, render.Int(pr.Records), pr.Spent.Display(), render.Int(pr.Calls), render.Int(pr.CacheHits), eta)
		p.drew, p.last = true, t
		return
	}
	if t.Sub(p.last) >= 10*time.Second {
		fmt.Fprintf(p.io.ErrOut, "eval: %s records, %s spent, %s calls, %s cached%s\n", render.Int(pr.Records), pr.Spent.Display(), render.Int(pr.Calls), render.Int(pr.CacheHits), eta)
		p.last = t
	}
}

func (p *evalProgress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drew {
		fmt.Fprint(p.io.ErrOut, "\r\x1b[K")
	}
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Name    string       `xml:"name,attr"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string    `xml:"name,attr"`
	Classname string    `xml:"classname,attr"`
	Failure   *junitMsg `xml:"failure,omitempty"`
	Error     *junitMsg `xml:"error,omitempty"`
	Skipped   *junitMsg `xml:"skipped,omitempty"`
	Output    string    `xml:"system-out,omitempty"`
}

type junitMsg struct {
	Message string `xml:"message,attr"`
}

func writeJUnit(w *os.File, res *evaluator.Result) error {
	suites := map[string]*junitSuite{}
	var order []string
	for _, m := range res.Metrics {
		suites[m.Name] = &junitSuite{Name: m.Name}
		order = append(order, m.Name)
	}
	for _, r := range res.Rows {
		s := suites[r.Metric]
		c := junitCase{Name: r.ID, Classname: "costctl.eval." + r.Metric}
		if r.Score != nil {
			c.Output = fmt.Sprintf("score %.4g: %s", *r.Score, r.Reason)
		}
		switch r.Status {
		case evaluator.StatusFail:
			c.Failure = &junitMsg{r.Reason}
			s.Failures++
		case evaluator.StatusError:
			c.Error = &junitMsg{r.Error}
			s.Errors++
		case evaluator.StatusSkipped, evaluator.StatusNotRun:
			c.Skipped = &junitMsg{r.Reason}
			s.Skipped++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	out := junitSuites{Name: "costctl eval " + res.RunID}
	for _, n := range order {
		out.Suites = append(out.Suites, *suites[n])
	}
	b, err := xml.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	b = append([]byte(xml.Header), append(b, '\n')...)
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Close()
}
