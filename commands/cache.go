package commands

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/records"
	"github.com/costctl/costctl/render"
	"github.com/costctl/costctl/semcache"
)

// newCacheCmd is `costctl cache`: what a semantic cache would do before it
// is turned on.
func newCacheCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Measure how often a cache would answer your traffic",
		Long: `Before turning a cache on, measure on recorded traffic how often it would
answer: costctl cache analyze RECORDS.jsonl.` + exitStatusSection,
	}
	cmd.AddCommand(newCacheAnalyzeCmd(f))
	cmd.AddCommand(newCacheStatsCmd(f))
	return cmd
}

// cacheThresholds are the similarities cache analyze reports; the estimate
// line uses cacheEstimateThreshold.
var cacheThresholds = []float64{0.90, 0.95, 0.98}

const cacheEstimateThreshold = 1 // index of 0.95 in cacheThresholds

// cacheAnalyzeOptions are cache analyze's inputs.
type cacheAnalyzeOptions struct {
	IO         *IOStreams
	Getenv     func(string) string
	HTTPClient *http.Client
	Pricing    func() (*pricing.Table, error)

	Path            string
	Semantic        bool
	EmbedModel      string
	BaseURL         string
	MaxCost         string
	Format          string
	Examples        int
	BatchSize       int
	MaxPerPartition int
}

func newCacheAnalyzeCmd(f *Factory) *cobra.Command {
	opts := &cacheAnalyzeOptions{}
	cmd := &cobra.Command{
		Use:   "analyze RECORDS.jsonl",
		Short: "Report exact and near-duplicate rates per tenant, and the --cache-hit to project with",
		Long: `Read recorded requests (eval's record format, e.g. the proxy's --sample-out)
and report per tenant how many an exact cache and, with --semantic, a
semantic cache would have answered.

Each record is a request: its tenant, its model (metadata.model, when
given) and its input (text = one user message, or chat messages). Its
partition is the hash of the tenant, the model and every message but the
last user message (the system prompt and earlier turns, with roles).
Records carry no request parameters, so temperature, tools and the like
are not compared (the proxy's cache also keeps those apart), and every
record is treated as eligible: the rates are what the cache could answer
if all this traffic were deterministic. A record whose last message is not
a user message is counted but never a duplicate.

  exact duplicate   an earlier record has the same partition and the same
                    last user message, byte for byte: what the exact cache
                    would serve. Rate = exact duplicates / records.
  near duplicate    (--semantic) not an exact duplicate, and an earlier
  at S              distinct last user message of the same partition has an
                    embedding cosine similarity ≥ S AND passes the lexical
                    check (same numbers, negations and content-word order:
                    see below). Rate = near duplicates / records.
  lexical rejected  records with an earlier message at similarity ≥ S of
                    which none passed the lexical check: the wrong answers
                    the check keeps out.

Only the 8 most similar earlier messages are checked (as the cache does),
and each partition keeps at most --max-per-partition vectors (least
recently stored out): memory is bounded by that × partitions × the
embedding's size (6 KiB for text-embedding-3-small) plus 32 bytes per
distinct message. The file is read twice, streaming: first to count what
to embed, then to embed and compare.

The lexical check: both messages are lower-cased and must agree on (1) the
sequence of numbers (digits with decimals, thousands commas, dates, times,
a trailing %, the words zero..twenty; "2.0" = "2" = "two") and operator
symbols (+ * = < > ^), (2) the multiset of negations (not, no, never,
none, nobody, nothing, nowhere, neither, nor, without; cannot and n't =
not) and (3) the sequence of content words (not stopwords such as
articles, pronouns and auxiliaries; plurals folded). "flights from Paris
to Rome" and "flights from Rome to Paris" do not pass.

Before it sends anything, --semantic prints on stderr how many texts it
will embed, their tokens counted locally with the embedding model's
tokenizer, and the projected cost at the price table's rate. --max-cost
refuses to start (exit 4) when the projection is above it, and stops
before a batch (256 texts) whose cost could cross it, reporting what it
measured (exit 4). The key is OPENAI_API_KEY; the endpoint --base-url,
else OPENAI_BASE_URL, else OpenAI. Without --semantic nothing is sent.

The last line is the --cache-hit to give costctl estimate: exact
duplicates plus near duplicates at 0.95.` + exitStatusSection,
		Example: `  costctl cache analyze samples.jsonl
  costctl cache analyze samples.jsonl --semantic --max-cost 0.50 --examples 5
  costctl cache analyze samples.jsonl --semantic --base-url http://localhost:8080/v1 --format json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("cache analyze needs one records file (JSON Lines or CSV, - for standard input)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Getenv, opts.HTTPClient, opts.Pricing = f.IO, f.Getenv, f.HTTPClient, f.Pricing
			opts.Path = args[0]
			return runCacheAnalyze(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.Semantic, "semantic", false, "also embed the messages and report near duplicates (sends them to the embeddings endpoint)")
	fl.StringVar(&opts.EmbedModel, "embed-model", semcache.DefaultEmbedModel, "embedding `model` (priced from the table)")
	fl.StringVar(&opts.BaseURL, "base-url", "", "OpenAI-compatible embeddings endpoint (default $OPENAI_BASE_URL or https://api.openai.com/v1)")
	fl.StringVar(&opts.MaxCost, "max-cost", "", "embedding budget in `USD`: refuse to start above it, never spend past it")
	fl.StringVarP(&opts.Format, "format", "o", "table", "output format: table or json")
	fl.IntVar(&opts.Examples, "examples", 3, "example pairs per tenant and similarity (0: none)")
	fl.IntVar(&opts.MaxPerPartition, "max-per-partition", 20000, "vectors kept per partition to compare with (memory bound)")
	fl.IntVar(&opts.BatchSize, "batch-size", 256, "texts per embeddings request")
	return cmd
}

// cacheExample is a pair of messages one of which a cache would have
// answered with the other's answer (or that the lexical check kept apart).
type cacheExample struct {
	Text       string  `json:"text"`
	Cached     string  `json:"cached"`
	Similarity float64 `json:"similarity"`
	Why        string  `json:"why,omitempty"`
}

type cacheNear struct {
	Similarity       float64        `json:"similarity"`
	Duplicates       int64          `json:"duplicates"`
	Rate             float64        `json:"rate"`
	LexicalRejected  int64          `json:"lexical_rejected"`
	Examples         []cacheExample `json:"examples,omitempty"`
	RejectedExamples []cacheExample `json:"rejected_examples,omitempty"`
}

type cacheTenant struct {
	Tenant          string      `json:"tenant"`
	Records         int64       `json:"records"`
	NotEligible     int64       `json:"not_eligible"`
	ExactDuplicates int64       `json:"exact_duplicates"`
	ExactRate       float64     `json:"exact_rate"`
	Near            []cacheNear `json:"near,omitempty"`
	CacheHit        float64     `json:"cache_hit"`
}

type cacheEmbedding struct {
	Model         string         `json:"model"`
	Texts         int64          `json:"texts"`
	TokensCounted int64          `json:"tokens_counted"`
	Projected     pricing.Money  `json:"projected_cost"`
	Embedded      int64          `json:"embedded"`
	TokensBilled  int64          `json:"tokens_billed"`
	Spent         pricing.Amount `json:"spent"`
	Requests      int64          `json:"requests"`
	Partial       bool           `json:"partial"`
}

type cacheReport struct {
	Version    int             `json:"version"`
	File       string          `json:"file"`
	Records    int64           `json:"records"`
	BadLines   int64           `json:"bad_lines"`
	Semantic   bool            `json:"semantic"`
	Thresholds []float64       `json:"thresholds,omitempty"`
	Embedding  *cacheEmbedding `json:"embedding,omitempty"`
	Tenants    []*cacheTenant  `json:"tenants"`
	Total      *cacheTenant    `json:"total"`
	CacheHit   string          `json:"cache_hit"`
	Estimate   string          `json:"estimate"`
}

// cacheItem is one record as cache analyze sees it.
type cacheItem struct {
	tenant, partition, text string
	key                     [32]byte
	ok                      bool // ends with a user message with text
}

func cacheItemOf(rec records.Record) cacheItem {
	r := &semcache.Request{Tenant: rec.Tenant, Force: true}
	if m, ok := rec.Metadata["model"].(string); ok {
		r.Model = m
	}
	if rec.Messages != nil {
		for _, m := range rec.Messages {
			r.Messages = append(r.Messages, semcache.Message{Role: m.Role, Text: m.Content})
		}
	} else {
		r.Messages = []semcache.Message{{Role: "user", Text: rec.Input}}
	}
	it := cacheItem{tenant: rec.Tenant, partition: semcache.Partition(r)}
	ok, _ := semcache.Eligible(r)
	if !ok {
		return it
	}
	it.text, _ = semcache.LastUser(r)
	it.ok = true
	it.key = sha256.Sum256([]byte(it.partition + "\x00" + it.text))
	return it
}

// cacheScan reads the records file once, calling fn with each usable
// record's item and whether it is the first of its key; bad lines go to bad.
func cacheScan(opts *cacheAnalyzeOptions, bad func(*records.LineError), fn func(it cacheItem, first bool) error) error {
	rd, err := records.Open(opts.Path, records.Options{OptionalOutput: true, Stdin: opts.IO.In})
	if err != nil {
		return err
	}
	defer rd.Close() // only read
	seen := map[[32]byte]struct{}{}
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var le *records.LineError
		if errors.As(err, &le) {
			bad(le)
			continue
		}
		if err != nil {
			return err
		}
		it := cacheItemOf(rec)
		first := false
		if it.ok {
			if _, dup := seen[it.key]; !dup {
				seen[it.key] = struct{}{}
				first = true
			}
		}
		if err := fn(it, first); err != nil {
			return err
		}
	}
}

func runCacheAnalyze(ctx context.Context, opts *cacheAnalyzeOptions) error {
	if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
		return usageError(err)
	}
	if opts.Examples < 0 || opts.BatchSize < 1 || opts.MaxPerPartition < 1 {
		return usageErrorf("--examples must be ≥ 0, --batch-size and --max-per-partition ≥ 1")
	}
	var maxCost pricing.Money
	if opts.MaxCost != "" {
		m, err := pricing.ParseMoney(strings.TrimPrefix(opts.MaxCost, "$"))
		if err != nil || m <= 0 {
			return usageErrorf("--max-cost %q: want a positive amount in USD, e.g. 5 or 0.50", opts.MaxCost)
		}
		if !opts.Semantic {
			return usageErrorf("--max-cost bounds the embedding cost of --semantic; without --semantic nothing is sent")
		}
		maxCost = m
	}
	if opts.Semantic && opts.Path == "-" {
		return usageErrorf("--semantic reads the records file twice; give a file, not -")
	}

	rep := &cacheReport{Version: 1, File: opts.Path, Semantic: opts.Semantic}
	tenants := map[string]*cacheTenant{}
	tenant := func(name string) *cacheTenant {
		t := tenants[name]
		if t == nil {
			t = &cacheTenant{Tenant: name}
			if opts.Semantic {
				for _, th := range cacheThresholds {
					t.Near = append(t.Near, cacheNear{Similarity: th})
				}
			}
			tenants[name] = t
		}
		return t
	}

	// Pass 1: records, exact duplicates, what to embed.
	var model *pricing.Model
	var counter *estimator.Counter
	var embedder *semcache.OpenAIEmbedder
	emb := &cacheEmbedding{}
	if opts.Semantic {
		base := opts.BaseURL
		if base == "" {
			base = opts.Getenv("OPENAI_BASE_URL")
		}
		key := opts.Getenv("OPENAI_API_KEY")
		if key == "" && base == "" {
			return usageErrorf("--semantic sends the messages to OpenAI's embeddings endpoint and needs OPENAI_API_KEY (or --base-url for another endpoint)")
		}
		embedder = &semcache.OpenAIEmbedder{BaseURL: base, APIKey: key, Client: opts.HTTPClient}
		table, err := opts.Pricing()
		if err != nil {
			return err
		}
		model, err = table.Lookup(opts.EmbedModel)
		if err != nil {
			return usageErrorf("--embed-model %s has no price in the table (%v): give one with --pricing FILE", opts.EmbedModel, err)
		}
		if counter, err = estimator.NewCounter(model); err != nil {
			return err
		}
		emb.Model = model.Name
		embedder.Model = model.Name
		rep.Thresholds = cacheThresholds
	}
	err := cacheScan(opts, func(e *records.LineError) {
		rep.BadLines++
		fmt.Fprintln(opts.IO.ErrOut, e.Error())
	}, func(it cacheItem, first bool) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := tenant(it.tenant)
		t.Records++
		rep.Records++
		switch {
		case !it.ok:
			t.NotEligible++
		case !first:
			t.ExactDuplicates++
		case opts.Semantic:
			emb.Texts++
			emb.TokensCounted += counter.Text(it.text)
		}
		return nil
	})
	if err != nil {
		return err
	}

	var budgetErr error
	if opts.Semantic {
		rep.Embedding = emb
		emb.Projected = model.Input.Cost(emb.TokensCounted)
		fmt.Fprintf(opts.IO.ErrOut, "cache analyze: %s texts to embed with %s, %s tokens (counted locally, %s), projected cost %s\n",
			render.Int(emb.Texts), model.Name, render.Int(emb.TokensCounted), counter.Encoding(), emb.Projected.Display())
		if maxCost > 0 && emb.Projected > maxCost {
			return &ExitErr{Code: ExitBudget, Err: fmt.Errorf("projected embedding cost %s is above --max-cost %s: nothing sent", emb.Projected.Display(), maxCost.Display())}
		}
		budgetErr = cacheSemantic(ctx, opts, embedder, model, counter, maxCost, emb, tenant)
		if budgetErr != nil && !isExitErr(budgetErr) {
			return budgetErr
		}
	}

	// Rates.
	names := make([]string, 0, len(tenants))
	for n := range tenants {
		names = append(names, n)
	}
	sort.Strings(names)
	total := &cacheTenant{Tenant: "total"}
	for _, th := range cacheThresholds {
		if opts.Semantic {
			total.Near = append(total.Near, cacheNear{Similarity: th})
		}
	}
	for _, n := range names {
		t := tenants[n]
		rep.Tenants = append(rep.Tenants, t)
		total.Records += t.Records
		total.NotEligible += t.NotEligible
		total.ExactDuplicates += t.ExactDuplicates
		for i := range t.Near {
			total.Near[i].Duplicates += t.Near[i].Duplicates
			total.Near[i].LexicalRejected += t.Near[i].LexicalRejected
		}
	}
	for _, t := range append(rep.Tenants, total) {
		t.ExactRate = cacheRate(t.ExactDuplicates, t.Records)
		hits := t.ExactDuplicates
		for i := range t.Near {
			t.Near[i].Rate = cacheRate(t.Near[i].Duplicates, t.Records)
		}
		if len(t.Near) > 0 {
			hits += t.Near[cacheEstimateThreshold].Duplicates
		}
		t.CacheHit = cacheRate(hits, t.Records)
	}
	rep.Total = total
	if rep.Tenants == nil {
		rep.Tenants = []*cacheTenant{}
	}
	rep.CacheHit = strconv.FormatFloat(total.CacheHit*100, 'f', 1, 64) + "%"
	rep.Estimate = "costctl estimate ... --cache-hit " + rep.CacheHit

	if opts.Format == render.FormatJSON {
		if err := writeJSON(opts.IO.Out, rep); err != nil {
			return err
		}
	} else {
		writeCacheTable(opts.IO.Out, rep)
	}
	return budgetErr
}

func cacheRate(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// cacheSemantic is pass 2: embed every first occurrence in batches and
// compare it with the earlier ones of its partition.
func cacheSemantic(ctx context.Context, opts *cacheAnalyzeOptions, embedder semcache.Embedder, model *pricing.Model, counter *estimator.Counter,
	maxCost pricing.Money, emb *cacheEmbedding, tenant func(string) *cacheTenant) error {
	store := semcache.NewMemStore()
	now := time.Unix(0, 0)
	lowest := cacheThresholds[0]

	type pending struct {
		it     cacheItem
		tokens int64
	}
	var batch []pending
	var batchTokens int64
	var stopped bool
	flush := func() error {
		if len(batch) == 0 || stopped {
			return nil
		}
		// The worst case of this batch: the local count with an exact
		// tokenizer, half as much again with a stand-in one.
		worst := batchTokens
		if !counter.Exact() {
			worst += batchTokens/2 + int64(len(batch))
		}
		if maxCost > 0 {
			worstCost := pricing.AmountFromMoney(model.Input.Cost(worst))
			if emb.Spent.Add(worstCost).Cmp(pricing.AmountFromMoney(maxCost)) > 0 {
				stopped = true
				emb.Partial = true
				return nil
			}
		}
		texts := make([]string, len(batch))
		for i, p := range batch {
			texts[i] = p.it.text
		}
		vecs, u, err := embedder.Embed(ctx, texts)
		if err != nil {
			return err
		}
		emb.Requests++
		emb.Embedded += int64(len(batch))
		emb.TokensBilled += u.PromptTokens
		emb.Spent = emb.Spent.Add(pricing.AmountFromMoney(model.Input.Cost(u.PromptTokens)))
		for i, p := range batch {
			t := tenant(p.it.tenant)
			cands, err := store.Lookup(ctx, p.it.partition, vecs[i], lowest, now)
			if err != nil {
				return err
			}
			for j := range t.Near {
				n := &t.Near[j]
				var best *semcache.Candidate
				var why string
				passed := false
				for k := range cands {
					c := &cands[k]
					if c.Similarity < n.Similarity {
						break
					}
					ok, w := semcache.Lexical(p.it.text, c.Text)
					if ok {
						passed = true
						best = c
						break
					}
					if best == nil {
						best, why = c, w
					}
				}
				switch {
				case passed:
					n.Duplicates++
					if len(n.Examples) < opts.Examples {
						n.Examples = append(n.Examples, cacheExample{Text: p.it.text, Cached: best.Text, Similarity: round4(best.Similarity)})
					}
				case best != nil:
					n.LexicalRejected++
					if len(n.RejectedExamples) < opts.Examples {
						n.RejectedExamples = append(n.RejectedExamples, cacheExample{Text: p.it.text, Cached: best.Text, Similarity: round4(best.Similarity), Why: why})
					}
				}
			}
			if err := store.Put(ctx, semcache.Entry{Partition: p.it.partition, Tenant: p.it.tenant, Text: p.it.text, Vector: vecs[i], Created: now}, opts.MaxPerPartition, 0); err != nil {
				return err
			}
		}
		batch, batchTokens = batch[:0], 0
		return nil
	}
	err := cacheScan(opts, func(*records.LineError) {}, func(it cacheItem, first bool) error {
		if !first || stopped {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n := counter.Text(it.text)
		batch = append(batch, pending{it, n})
		batchTokens += n
		if len(batch) >= opts.BatchSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	if emb.Partial {
		return &ExitErr{Code: ExitBudget, Err: fmt.Errorf("budget cap %s reached: %s spent; %s of %s texts embedded, the near-duplicate rates cover only those",
			maxCost.Display(), emb.Spent.Display(), render.Int(emb.Embedded), render.Int(emb.Texts))}
	}
	return nil
}

func round4(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 4, 64), 64)
	return v
}

func cacheCell(n, of int64) string {
	return fmt.Sprintf("%s (%s)", render.Int(n), render.Pct(cacheRate(n, of)*100))
}

func writeCacheTable(w io.Writer, rep *cacheReport) {
	tb := &render.Table{Headers: []string{"TENANT", "RECORDS", "EXACT DUP"}, Align: []render.Align{render.Left, render.Right, render.Right}}
	if rep.Semantic {
		for _, th := range cacheThresholds {
			tb.Headers = append(tb.Headers, fmt.Sprintf("NEAR ≥%.2f", th))
			tb.Align = append(tb.Align, render.Right)
		}
		tb.Headers = append(tb.Headers, "LEXICAL REJECTED")
		tb.Align = append(tb.Align, render.Right)
	}
	tb.Headers = append(tb.Headers, "CACHE HIT")
	tb.Align = append(tb.Align, render.Right)
	row := func(t *cacheTenant) []string {
		name := t.Tenant
		if name == "" {
			name = "(none)"
		}
		cells := []string{name, render.Int(t.Records), cacheCell(t.ExactDuplicates, t.Records)}
		if rep.Semantic {
			var rej []string
			for _, n := range t.Near {
				cells = append(cells, cacheCell(n.Duplicates, t.Records))
				rej = append(rej, render.Int(n.LexicalRejected))
			}
			cells = append(cells, strings.Join(rej, "/"))
		}
		return append(cells, render.Pct(t.CacheHit*100))
	}
	for _, t := range rep.Tenants {
		tb.AddRow(row(t)...)
	}
	tb.Footer = row(rep.Total)
	if err := tb.WriteText(w); err != nil {
		return
	}
	for _, t := range rep.Tenants {
		for _, n := range t.Near {
			for _, e := range n.Examples {
				fmt.Fprintf(w, "\n%s ≥%.2f  %.4f  %q\n                     ~ %q", tenantLabel(t.Tenant), n.Similarity, e.Similarity, e.Text, e.Cached)
			}
			for _, e := range n.RejectedExamples {
				fmt.Fprintf(w, "\n%s ≥%.2f  %.4f  %q\n     lexical rejected: %q (%s)", tenantLabel(t.Tenant), n.Similarity, e.Similarity, e.Text, e.Cached, e.Why)
			}
		}
	}
	fmt.Fprintf(w, "\n\nrecords %s, bad lines %s", render.Int(rep.Records), render.Int(rep.BadLines))
	if e := rep.Embedding; e != nil {
		partial := ""
		if e.Partial {
			partial = " (partial: budget cap reached)"
		}
		fmt.Fprintf(w, "; embedded %s of %s texts with %s in %s request(s), %s tokens billed, spent %s (projected %s)%s",
			render.Int(e.Embedded), render.Int(e.Texts), e.Model, render.Int(e.Requests), render.Int(e.TokensBilled), e.Spent.Display(), e.Projected.Display(), partial)
	}
	basis := "exact duplicates only; --semantic adds near duplicates"
	if rep.Semantic {
		basis = "exact duplicates + near duplicates at 0.95 that pass the lexical check"
	}
	fmt.Fprintf(w, "\nfor estimate (%s):\n  %s\n", basis, rep.Estimate)
}

func tenantLabel(t string) string {
	if t == "" {
		return "(none)"
	}
	return t
}
