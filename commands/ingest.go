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
	"github.com/costctl/costctl/render"
)

// IngestOptions are the inputs of `costctl ingest`.
type IngestOptions struct {
	IO       *IOStreams
	Now      func() time.Time
	Pricing  func() (*pricing.Table, error)
	Ledger   func(context.Context) (*ledger.DB, error)
	Files    []string
	Follow   bool
	Defaults ingest.Defaults
	Source   string
	MaxBad   int64
	Format   string
	Batch    int
	Poll     time.Duration
}

func newIngestCmd(f *Factory, runF func(*IngestOptions) error) *cobra.Command {
	opts := &IngestOptions{IO: f.IO, Now: f.Now, Pricing: f.Pricing, Ledger: f.OpenLedger}
	cmd := &cobra.Command{
		Use:   "ingest FILE... | -",
		Short: "Bring usage logs (JSONL) into the ledger, priced",
		Long: `Read LLM usage events from JSONL files (or - for standard input) into the
ledger that top and report read. Each line's shape is detected on its own
(the README shows one example of each):

  openai_chat       an OpenAI Chat Completions object ("usage": prompt_tokens
                    with prompt_tokens_details.cached_tokens inside it,
                    completion_tokens with reasoning tokens inside it)
  openai_responses  an OpenAI Responses object ("usage": input_tokens,
                    output_tokens and their details)
  anthropic         an Anthropic Messages object or its usage: input_tokens
                    EXCLUDES cache reads and writes; 5-minute and 1-hour cache
                    writes at their own rates
  gemini            a Gemini response with usageMetadata (thoughts are output)
  openai_batch      an OpenAI Batch API output line, at batch rates (a failed
                    request is a bad line)
  flat              {"id","ts","tenant","user","endpoint","model",
                    "input_tokens","cached_input_tokens","output_tokens",
                    "cache_write_5m_tokens","cache_write_1h_tokens",
                    "reasoning_tokens","batch","service_tier","latency_ms"}
                    (only model, input_tokens and output_tokens are required)

Times may be RFC 3339 or Unix seconds, milliseconds or microseconds; no time
means "now"; a time before 2000 or more than a day ahead is a bad line, as is
a token count outside 0..10^10. tenant, user and endpoint come from fields
of those names when a line has them, else from --tenant, --user, --endpoint.
Each kind of token is priced at its own rate and stored apart, exactly (to
the pico-dollar); batch, flex and priority use those rates. An event the
table cannot price (its model, or a tier or cache write without a rate) is
stored flagged unpriced and listed in the summary — never counted as $0 or
at list price; add its price with --pricing FILE before ingesting, or run
costctl reprice after.

Ingest is idempotent: each event is stored under the key
ingest:SOURCE:TENANT:id:ID (a line without an id: ingest:SOURCE:TENANT:sha256:
HASH, a hash of the line), unique in the ledger. SOURCE is --source, else the
line's shape (flat, openai_chat, anthropic, ...): give each system whose ids
could repeat another's its own, and always the same one. TENANT is the
event's tenant (from the line, else --tenant), so two tenants' logs that both
number events 1, 2, 3 are six events. The same key with the same content
(time, tenant, user, endpoint, model, token counts, batch, tier) is a
duplicate: skipped and counted, so ingesting the same file twice adds
nothing. The same key with other content is a conflict: reported on stderr as
FILE:LINE: conflict: ..., counted, and not stored.

Bad lines are reported on stderr as FILE:LINE: reason (the first 100 bad
lines and conflicts), skipped and counted; the good lines are stored. Any bad
line or conflict makes ingest exit 1 (after storing the rest, with the
summary on stderr) unless there are no more than --max-bad of them. Events
are written in short batched transactions; a ledger locked by another writer
(another ingest, eval) is waited for and retried. A missing or unreadable
FILE exits 1 before anything is ingested; a run that fails part-way prints
its summary of what was saved on stderr, nothing on stdout.

--follow keeps reading the files as they grow, like tail -F: rotation (rename
+ new file) and truncation (copytruncate, even refilled between two polls)
are noticed. A rotated file is read to its end before the new one; a file
rotated twice before its turn is found next to the log (NAME.*, NAME-*, not
compressed) and read; lines appended just before a copytruncate are read from
logrotate's copy. Stop it with Ctrl-C; everything read is saved (exit 130,
or 1 when there were more than --max-bad bad lines and conflicts).

The summary (stdout; stderr when the command fails) counts ingested,
duplicates, bad, unpriced and conflicts; --format json gives it as
{"version":1,"ingested",...,"cost_usd","prices_as_of","ledger"}.` + exitStatusSection,
		Example: `  costctl ingest usage.jsonl
  costctl ingest --tenant acme --db /tmp/costctl.db responses.jsonl
  gunzip -c usage-2026-11-20.jsonl.gz | costctl ingest --tenant acme -
  costctl ingest --follow /var/log/llm/usage.jsonl
  costctl ingest --source billing-eu --max-bad 10 --format json eu/*.jsonl`,
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
			if opts.MaxBad < 0 {
				return usageErrorf("ingest: --max-bad must be 0 or more")
			}
			if cmd.Flags().Changed("source") {
				if err := ingest.CheckSource(opts.Source); err != nil {
					return usageErrorf("ingest: --source: %v", err)
				}
			}
			if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
				return usageError(err)
			}
			opts.Files = args
			if runF != nil {
				return runF(opts)
			}
			return runIngest(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&opts.Follow, "follow", "f", false, "keep reading the files as they grow (survives truncation and rotation)")
	fl.StringVar(&opts.Defaults.Tenant, "tenant", "", "tenant for lines without a \"tenant\" field")
	fl.StringVar(&opts.Defaults.User, "user", "", "user for lines without a \"user\" field")
	fl.StringVar(&opts.Defaults.Endpoint, "endpoint", "", "endpoint for lines without an \"endpoint\" field")
	fl.StringVar(&opts.Source, "source", "", "`NAME` of the system the logs come from, whose ids are unique within it (default: each line's shape)")
	fl.Int64Var(&opts.MaxBad, "max-bad", 0, "exit 0 with up to `N` bad lines and conflicts (default 0: any makes ingest exit 1)")
	fl.StringVar(&opts.Format, "format", "table", "summary format: table or json")
	fl.IntVar(&opts.Batch, "batch-size", 20000, "events per ledger transaction")
	fl.DurationVar(&opts.Poll, "poll-interval", 250*time.Millisecond, "with --follow, how often to check the files")
	_ = fl.MarkHidden("poll-interval")
	return cmd
}

func runIngest(ctx context.Context, opts *IngestOptions) error {
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
			f.Close() // opened only to check it can be read
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
	defer db.Close() // every write was committed and checked before this; Close only releases connections
	var errMu sync.Mutex
	in := ingest.New(db, ingest.Config{
		Table: table, Defaults: opts.Defaults, Source: opts.Source, Now: opts.Now, BatchSize: opts.Batch, PollInterval: opts.Poll,
		BadLine: func(s string) {
			errMu.Lock()
			fmt.Fprintln(opts.IO.ErrOut, s)
			errMu.Unlock()
		},
	})
	defer in.Close()
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
	failed := runErr != nil && !interrupted
	tooBad := st.Bad+st.Conflicts > opts.MaxBad
	sum := ingestSummary{st: st, table: table, path: db.Name()}
	if failed || tooBad {
		// A failed run prints nothing on stdout; what was saved before
		// the failure is still worth knowing, so the summary goes to stderr.
		if err := sum.write(opts.IO.ErrOut, opts.Format); err != nil {
			return err
		}
		if failed {
			return fmt.Errorf("ingest: %w", runErr)
		}
		return fmt.Errorf("ingest: %s, more than --max-bad %d; the rest is saved: fix the lines listed above and ingest again (what is in is skipped as a duplicate), or pass --max-bad %d to accept them",
			notStored(st), opts.MaxBad, st.Bad+st.Conflicts)
	}
	// Interrupted is how --follow ends: the summary is its output.
	if err := sum.write(opts.IO.Out, opts.Format); err != nil {
		return err
	}
	if interrupted {
		return &ExitErr{Code: ExitInterrupted, Err: errors.New("ingest: interrupted; everything read so far is saved")}
	}
	return nil
}

// notStored says "3 bad lines", "1 conflict" or "2 bad lines and 1 conflict".
func notStored(st ingest.Stats) string {
	plural := func(n int64, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return pricing.GroupInt(n) + " " + many
	}
	var parts []string
	if st.Bad > 0 {
		parts = append(parts, plural(st.Bad, "bad line", "bad lines"))
	}
	if st.Conflicts > 0 {
		parts = append(parts, plural(st.Conflicts, "conflict", "conflicts"))
	}
	return strings.Join(parts, " and ")
}

// ingestSummary is what an ingest did, written as text or JSON.
type ingestSummary struct {
	st    ingest.Stats
	table *pricing.Table
	path  string
}

func (s ingestSummary) write(w io.Writer, format string) error {
	if format == render.FormatJSON {
		return s.writeJSON(w)
	}
	s.writeText(w)
	return nil
}

func (s ingestSummary) writeText(w io.Writer) {
	st := s.st
	bad := pricing.GroupInt(st.Bad)
	if st.Bad+st.Conflicts > ingest.MaxBadReports {
		bad += fmt.Sprintf(" (the first %d bad lines and conflicts listed on stderr)", ingest.MaxBadReports)
	}
	fmt.Fprintf(w, "ingested %s · duplicates %s · bad %s · unpriced %s · conflicts %s\n",
		pricing.GroupInt(st.Ingested), pricing.GroupInt(st.Duplicates), bad, pricing.GroupInt(st.Unpriced), pricing.GroupInt(st.Conflicts))
	fmt.Fprintf(w, "cost of ingested events %s (%s) · ledger %s\n", st.Cost.Display(), s.table.AsOfLabel(), s.path)
	if list := st.UnpricedList(); len(list) > 0 {
		parts := make([]string, len(list))
		for i, m := range list {
			parts[i] = fmt.Sprintf("%s (%s)", m, pricing.GroupInt(st.UnpricedModels[m]))
		}
		fmt.Fprintf(w, "unpriced models: %s; their spend is shown as unpriced, not $0 (add prices with --pricing FILE before ingesting)\n",
			strings.Join(parts, ", "))
	}
}

func (s ingestSummary) writeJSON(w io.Writer) error {
	type model struct {
		Model  string `json:"model"`
		Events int64  `json:"events"`
	}
	st := s.st
	out := struct {
		Version        int            `json:"version"`
		Lines          int64          `json:"lines"`
		Ingested       int64          `json:"ingested"`
		Duplicates     int64          `json:"duplicates"`
		Conflicts      int64          `json:"conflicts"`
		Bad            int64          `json:"bad"`
		Unpriced       int64          `json:"unpriced"`
		UnpricedModels []model        `json:"unpriced_models"`
		Cost           pricing.Amount `json:"cost_usd"`
		PricesAsOf     string         `json:"prices_as_of"`
		Ledger         string         `json:"ledger"`
	}{Version: 1, Lines: st.Lines, Ingested: st.Ingested, Duplicates: st.Duplicates, Conflicts: st.Conflicts, Bad: st.Bad,
		Unpriced: st.Unpriced, UnpricedModels: []model{}, Cost: st.Cost, PricesAsOf: s.table.AsOf, Ledger: s.path}
	for _, m := range st.UnpricedList() {
		out.UnpricedModels = append(out.UnpricedModels, model{m, st.UnpricedModels[m]})
	}
	return render.JSON(w, out)
}
