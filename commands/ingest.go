package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/ingest"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// IngestOptions are the inputs of `costctl ingest`.
type IngestOptions struct {
	IO       *IOStreams
	Now      func() time.Time
	Pricing  func() (*pricing.Table, error)
	Ledger   func(context.Context) (*ledger.DB, error)
	Ctx      context.Context
	Files    []string
	Follow   bool
	Defaults ingest.Defaults
	Batch    int
	Poll     time.Duration
}

func newIngestCmd(f *Factory, runF func(*IngestOptions) error) *cobra.Command {
	opts := &IngestOptions{IO: f.IO, Now: f.Now, Pricing: f.Pricing, Ledger: f.OpenLedger}
	cmd := &cobra.Command{
		Use:   "ingest FILE... | -",
		Short: "Bring usage logs (JSONL) into the ledger, priced",
		Long: `Read LLM usage events from JSONL files (or - for standard input) into the
ledger that top and report read. Each line is one of two shapes, detected per
line:

  a flat event    {"id","ts","tenant","user","endpoint","model","input_tokens",
                   "cached_input_tokens","output_tokens","latency_ms"}
                  (ts as RFC 3339 or Unix seconds; only model, input_tokens and
                  output_tokens are required; no ts means "now")
  an OpenAI response object with "id", "created", "model" and "usage"
                  {"prompt_tokens","completion_tokens",
                   "prompt_tokens_details":{"cached_tokens"}}

tenant, user and endpoint come from fields of those names when a line has
them, else from --tenant, --user, --endpoint. Each event is priced with the
price table (cached tokens at the cached-input price); an event for a model
the table does not price is stored flagged unpriced and listed in the summary
(never counted as $0; add its price with --pricing FILE before ingesting).

Ingest is idempotent: an event's id (or, without one, a hash of its line) is
unique in the ledger, so ingesting the same file twice adds nothing. Bad lines
are reported on stderr as FILE:LINE: reason (the first 100), skipped and
counted. Events are written in batched transactions. A missing or unreadable
FILE exits 1 before anything is ingested; a run that fails part-way prints
its summary of what was saved on stderr, nothing on stdout.

--follow keeps reading the files as they grow, like tail -F: truncation and
rotation (rename + new file) are noticed, and nothing appended before a
rotation is lost. Stop it with Ctrl-C; everything read is saved.` + exitStatusSection,
		Example: `  costctl ingest usage.jsonl
  costctl ingest --tenant acme --db /tmp/costctl.db responses.jsonl
  gunzip -c usage-2026-11-20.jsonl.gz | costctl ingest --tenant acme -
  costctl ingest --follow /var/log/llm/usage.jsonl`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("ingest: give one or more FILEs, or - for standard input")
			}
			dash := 0
			for _, a := range args {
				if a == "-" {
					dash++
				}
			}
			if dash > 1 {
				return usageErrorf("ingest: - (standard input) can be given only once")
			}
			if opts.Batch <= 0 {
				return usageErrorf("ingest: --batch-size must be positive")
			}
			if opts.Poll <= 0 {
				return usageErrorf("ingest: --poll-interval must be positive")
			}
			opts.Files = args
			opts.Ctx = cmd.Context()
			if runF != nil {
				return runF(opts)
			}
			return runIngest(opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&opts.Follow, "follow", "f", false, "keep reading the files as they grow (survives truncation and rotation)")
	fl.StringVar(&opts.Defaults.Tenant, "tenant", "", "tenant for lines without a \"tenant\" field")
	fl.StringVar(&opts.Defaults.User, "user", "", "user for lines without a \"user\" field")
	fl.StringVar(&opts.Defaults.Endpoint, "endpoint", "", "endpoint for lines without an \"endpoint\" field")
	fl.IntVar(&opts.Batch, "batch-size", 20000, "events per ledger transaction")
	fl.DurationVar(&opts.Poll, "poll-interval", 250*time.Millisecond, "with --follow, how often to check the files")
	_ = fl.MarkHidden("poll-interval")
	return cmd
}

func runIngest(opts *IngestOptions) error {
	ctx := opts.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	// Check every file first: a typo in the third name must not leave the
	// first two half-ingested.
	for _, p := range opts.Files {
		if p == "-" {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("ingest: %s: %s", p, describeFSError(err))
		}
		if st.IsDir() {
			return usageErrorf("ingest: %s is a directory; give the log files in it", p)
		}
		// An unreadable file fails here too, not after the others are in.
		// (Not a pipe: opening one waits for its writer.)
		if st.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return fmt.Errorf("ingest: %s: %s", p, describeFSError(err))
			}
			f.Close()
		}
	}
	table, err := opts.Pricing()
	if err != nil {
		return err
	}
	db, err := opts.Ledger(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	var errMu sync.Mutex
	in := ingest.New(db, ingest.Config{
		Table: table, Defaults: opts.Defaults, Now: opts.Now, BatchSize: opts.Batch, PollInterval: opts.Poll,
		BadLine: func(s string) {
			errMu.Lock()
			fmt.Fprintln(opts.IO.ErrOut, s)
			errMu.Unlock()
		},
	})
	var runErr error
	if opts.Follow {
		// One follower per file; the first to fail stops the others
		// (nothing keeps running unseen).
		fctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var once sync.Once
		for _, p := range opts.Files {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if p == "-" {
					err = in.Reader(fctx, "stdin", opts.IO.In)
				} else {
					err = in.Follow(fctx, p)
				}
				if err != nil && fctx.Err() == nil {
					once.Do(func() { runErr = err })
					stop()
				}
			}()
		}
		wg.Wait()
		stop()
		if runErr == nil && ctx.Err() != nil {
			runErr = ctx.Err()
		}
	} else {
		for _, p := range opts.Files {
			if p == "-" {
				runErr = in.Reader(ctx, "stdin", opts.IO.In)
			} else {
				runErr = in.File(ctx, p)
			}
			if runErr != nil {
				break
			}
		}
	}
	st := in.Stats()
	interrupted := runErr != nil && (errors.Is(runErr, context.Canceled) || ctx.Err() != nil)
	if runErr != nil && !interrupted {
		// A failed run prints nothing on stdout; what was saved before
		// the failure is still worth knowing, so the summary goes to stderr.
		writeIngestSummary(opts.IO.ErrOut, st, table, db.Path())
		return fmt.Errorf("ingest: %w", runErr)
	}
	// Interrupted is how --follow ends: the summary is its output.
	writeIngestSummary(opts.IO.Out, st, table, db.Path())
	if interrupted {
		return &ExitErr{Code: ExitInterrupted, Err: errors.New("ingest: interrupted; everything read so far is saved")}
	}
	return nil
}

func writeIngestSummary(w io.Writer, st ingest.Stats, table *pricing.Table, path string) {
	bad := pricing.GroupInt(st.Bad)
	if st.Bad > ingest.MaxBadReports {
		bad += fmt.Sprintf(" (the first %d listed on stderr)", ingest.MaxBadReports)
	}
	fmt.Fprintf(w, "ingested %s · duplicates %s · bad %s · unpriced %s\n",
		pricing.GroupInt(st.Ingested), pricing.GroupInt(st.Duplicates), bad, pricing.GroupInt(st.Unpriced))
	fmt.Fprintf(w, "cost of ingested events %s (%s) · ledger %s\n", st.Cost.Display(), table.AsOfLabel(), path)
	if list := st.UnpricedList(); len(list) > 0 {
		parts := make([]string, len(list))
		for i, m := range list {
			parts[i] = fmt.Sprintf("%s (%s)", m, pricing.GroupInt(st.UnpricedModels[m]))
		}
		fmt.Fprintf(w, "unpriced models: %s; their spend is shown as unpriced, not $0 (add prices with --pricing FILE before ingesting)\n",
			strings.Join(parts, ", "))
	}
}
