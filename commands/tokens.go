package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
	"github.com/costctl/costctl/tokenizer"
)

// TokensOptions are the inputs of `costctl tokens`.
type TokensOptions struct {
	IO       *IOStreams
	Pricing  func() (*pricing.Table, error)
	Paths    []string // files, directories, "-" for stdin; none = stdin
	Model    string
	Encoding string // overrides the model's encoding
	Include  []string
	Chat     bool
	Max      int64 // per file; 0 = no limit
	MaxTotal int64
	Format   string
	Jobs     int // files counted at once; 0 = GOMAXPROCS

	// --count-via-api: ask Anthropic's or Gemini's free token-counting
	// endpoint for an exact count instead of the local approximation.
	CountViaAPI      bool
	APITimeout       time.Duration
	AnthropicBaseURL string // flag; else ANTHROPIC_BASE_URL
	GeminiBaseURL    string // flag; else GEMINI_BASE_URL
	Getenv           func(string) string
	HTTPClient       *http.Client
}

func newTokensCmd(f *Factory, runF func(*TokensOptions) error) *cobra.Command {
	opts := &TokensOptions{IO: f.IO, Pricing: f.Pricing, Getenv: f.Getenv, HTTPClient: f.HTTPClient}
	cmd := &cobra.Command{
		Use:   "tokens [PATH...]",
		Short: "Count tokens exactly (tiktoken-identical) in files, folders, stdin or chat requests",
		Long: `Count tokens in files, directories (recursively) or standard input ("-" or no
argument), exactly as OpenAI's tiktoken does, and show what they cost as input
at the model's price.

Directories are walked recursively. Hidden files and folders are skipped
(folders with a note on stderr); so are, with a note, binary files (a NUL
byte in the first 8 KiB), pipes, sockets, devices and broken symlinks. A symlink
to a file is followed; a symlink to a directory is not (so a walk never loops
or leaves the tree; ripgrep and fd do the same) and is named in a note - give
it on the command line to count it. One file reached under two names (a
symlink, a hard link, a path named twice) is counted once, with a note.
--include GLOB (repeatable) keeps only files whose name or relative path
matches. Files are counted in parallel and listed sorted by path.

A path named on the command line must be countable: a missing, unreadable or
binary file, a pipe or a device is an error naming the file and why (exit 1),
and nothing is printed on stdout. Pipe a stream in on standard input instead.

Text is UTF-8. A file (or stdin) that starts with a UTF-16 byte-order mark
(FF FE or FE FF) is decoded from UTF-16 as it streams and its BOM dropped; a
UTF-8 BOM is kept and counted as text, as tiktoken counts a string read with
Python's "utf-8" codec. BYTES is the size as read, before decoding. Invalid
UTF-8 (or UTF-16) is replaced by U+FFFD before counting, with a warning naming
the file; text such as <|endoftext|> counts as ordinary text.

The encoding comes from the model (--model, default gpt-4o) in the price table;
--encoding overrides it. Claude and Gemini have no public tokenizer: they are
counted with o200k_base and marked approximate, unless --count-via-api asks
the provider's free counting endpoint (Anthropic: POST /v1/messages/count_tokens
with ANTHROPIC_API_KEY; Gemini: POST /v1beta/models/MODEL:countTokens with
GEMINI_API_KEY or GOOGLE_API_KEY), whose count is exact. Base URLs:
--anthropic-base-url / ANTHROPIC_BASE_URL, --gemini-base-url / GEMINI_BASE_URL.
Keys are never printed. A plain file is sent as one user message, so the
provider's count includes that message's framing.

--chat reads each input as an OpenAI chat request ({"messages": [...],
"tools": [...]}) or message list and counts what the API bills as
prompt_tokens: 3 tokens per message plus its role, content and name (+1 for a
name), 3 to prime the reply, and tool definitions as OpenAI's cookbook counts
them. Without --model each request is counted and priced as its own "model"
(gpt-4o when it names none); a model not in the price table is an error naming
the file and model. Image parts (image_url) are billed by OpenAI's rule: low
detail 85 tokens; high/auto 85 + 170 per 512-px tile after fitting within
2048x2048 and scaling the shortest side to 768 (gpt-4o-mini: 2833 + 5667 per
tile). Inline data: URLs (PNG, JPEG, GIF, WebP) are measured from their header;
a remote URL is counted as low detail and marked approximate, as are images
for models whose image rule is not documented as this one.
A request that is not one is an error naming the file, line and field:
  costctl: req.json:7: messages[2].content: expected a string or a list of content parts, got a number

CI gate: --max N fails any file above N tokens, --max-total N the sum. Every
file is still counted and printed; each offender is named on stderr and the
exit code is 3. A gate whose paths match no file (an empty folder, an
--include that matches nothing) exits 2: a gate cannot pass on nothing.` + exitStatusSection,
		Example: `  costctl tokens README.md
  costctl tokens prompts/ --include '*.md' --max 4000
  cat request.json | costctl tokens --chat --model gpt-4o-mini
  costctl tokens docs/ --model claude-sonnet-4.5 --format json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
				return usageError(err)
			}
			if opts.APITimeout <= 0 {
				return usageErrorf("--api-timeout must be a positive duration such as 30s")
			}
			if opts.Max < 0 || opts.MaxTotal < 0 {
				return usageErrorf("--max and --max-total must be positive token counts")
			}
			for _, g := range opts.Include {
				if _, err := filepath.Match(g, ""); err != nil {
					return usageErrorf("invalid --include pattern %q: %v", g, err)
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return runTokens(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.Model, "model", "m", "", "model whose tokenizer and input price to use (default gpt-4o; with --chat, each request's own model)")
	fl.StringVar(&opts.Encoding, "encoding", "", "override the encoding: cl100k_base, o200k_base, p50k_base or r50k_base")
	fl.StringArrayVar(&opts.Include, "include", nil, "only count files matching this glob (name or relative path; repeatable)")
	fl.BoolVar(&opts.Chat, "chat", false, "inputs are OpenAI chat requests or message lists; count billed prompt_tokens")
	fl.Int64Var(&opts.Max, "max", 0, "gate: fail (exit 3) when any file has more tokens than this")
	fl.Int64Var(&opts.MaxTotal, "max-total", 0, "gate: fail (exit 3) when all files together have more tokens than this")
	fl.StringVarP(&opts.Format, "format", "f", "table", "output format: table or json")
	fl.BoolVar(&opts.CountViaAPI, "count-via-api", false, "Claude/Gemini: exact counts from the provider's free token-counting endpoint (needs ANTHROPIC_API_KEY / GEMINI_API_KEY)")
	fl.DurationVar(&opts.APITimeout, "api-timeout", 30*time.Second, "with --count-via-api: how long to wait for each answer")
	fl.StringVar(&opts.AnthropicBaseURL, "anthropic-base-url", "", "with --count-via-api: Anthropic API base URL (default $ANTHROPIC_BASE_URL or https://api.anthropic.com)")
	fl.StringVar(&opts.GeminiBaseURL, "gemini-base-url", "", "with --count-via-api: Gemini API base URL (default $GEMINI_BASE_URL or https://generativelanguage.googleapis.com)")
	return cmd
}

type tokenFile struct {
	Path      string        `json:"path"`
	Model     string        `json:"model,omitempty"` // --chat: the model this request is priced as
	Exact     *bool         `json:"exact,omitempty"` // --chat: whether this count is the provider's own
	Tokens    int64         `json:"tokens"`
	Bytes     int64         `json:"bytes"`
	Cost      pricing.Money `json:"cost_usd"`
	OverLimit bool          `json:"over_limit"`
}

type tokenInput struct {
	path     string      // as shown
	open     string      // file to open; "" = stdin
	explicit bool        // named on the command line, not found by walking a folder
	info     fs.FileInfo // the file's os.Stat, to notice one file under two names; nil for stdin
	link     bool        // reached through a symlink inside a walked folder
}

// tokensProblem is a note, warning or error about one input, printed in path order.
type tokensProblem struct {
	path string
	line int // 1-based line in the input, 0 when none applies
	msg  string
	kind string // "error", "warning" or "note"
}

func (p tokensProblem) where() string {
	w := p.path
	if w == "-" {
		w = "stdin"
	}
	if p.line > 0 {
		w = fmt.Sprintf("%s:%d", w, p.line)
	}
	return w
}

// printTokensProblems writes problems to stderr in path order and reports
// whether one of them is an error.
func printTokensProblems(w io.Writer, problems []tokensProblem) (hadErr bool) {
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].path < problems[j].path })
	for _, p := range problems {
		if p.kind == "error" {
			hadErr = true
			fmt.Fprintf(w, "costctl: %s: %s\n", p.where(), p.msg)
		} else {
			fmt.Fprintf(w, "%s: %s: %s\n", p.kind, p.where(), p.msg)
		}
	}
	return hadErr
}

// tokenModel is one model a run counts with: its prices, encoding and
// counter, and the API counter --count-via-api uses for it.
type tokenModel struct {
	m       *pricing.Model
	asGiven string // the name as the user or the request gave it
	enc     string
	exact   bool
	counter *estimator.Counter
	api     estimator.APICounter // nil: counted locally
}

// tokenModels resolves model names once per run, safely from the workers.
type tokenModels struct {
	opts  *TokensOptions
	table *pricing.Table
	mu    sync.Mutex
	byKey map[string]*tokenModel
}

func (tm *tokenModels) get(name string) (*tokenModel, error) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if m, ok := tm.byKey[name]; ok {
		return m, nil
	}
	model, err := tm.table.Lookup(name)
	if err != nil {
		return nil, err
	}
	t := &tokenModel{m: model, asGiven: name, enc: model.Encoding, exact: model.ExactTokenizer}
	if t.enc == "" {
		t.enc = "o200k_base"
	}
	if e := tm.opts.Encoding; e != "" {
		t.exact = t.exact && e == model.Encoding
		t.enc = e
	}
	c, err := estimator.NewCounterForEncoding(t.enc)
	if err != nil {
		return nil, err
	}
	t.counter = c.WithVision(model.Name)
	if tm.opts.CountViaAPI {
		if t.api, err = tm.opts.apiCounter(model); err != nil {
			return nil, err
		}
		if t.api != nil {
			t.exact = true
		}
	}
	tm.byKey[name] = t
	return t, nil
}

// apiCounter is the provider's counting endpoint for m, or nil when m is
// counted exactly here (OpenAI) or has no such endpoint.
func (opts *TokensOptions) apiCounter(m *pricing.Model) (estimator.APICounter, error) {
	getenv := opts.Getenv
	if getenv == nil { // no environment was injected: no keys
		getenv = func(string) string { return "" }
	}
	switch m.Provider {
	case "anthropic":
		key := getenv("ANTHROPIC_API_KEY")
		if key == "" {
			return nil, usageErrorf("--count-via-api for %s needs ANTHROPIC_API_KEY set to an Anthropic API key", m.Name)
		}
		base := opts.AnthropicBaseURL
		if base == "" {
			base = getenv("ANTHROPIC_BASE_URL")
		}
		return &estimator.AnthropicCounter{BaseURL: base, APIKey: key, Client: opts.HTTPClient}, nil
	case "google", "gemini":
		key := getenv("GEMINI_API_KEY")
		if key == "" {
			key = getenv("GOOGLE_API_KEY")
		}
		if key == "" {
			return nil, usageErrorf("--count-via-api for %s needs GEMINI_API_KEY (or GOOGLE_API_KEY) set to a Gemini API key", m.Name)
		}
		base := opts.GeminiBaseURL
		if base == "" {
			base = getenv("GEMINI_BASE_URL")
		}
		return &estimator.GeminiCounter{BaseURL: base, APIKey: key, Client: opts.HTTPClient}, nil
	}
	return nil, nil
}

// apiModelName is the id the provider's API knows m by: the name as given,
// unless that is costctl's dotted name (claude-sonnet-4.5), then the first
// alias without a dot (claude-sonnet-4-5).
func (t *tokenModel) apiModelName() string {
	if !strings.Contains(t.asGiven, ".") || t.m.Provider != "anthropic" {
		return t.asGiven
	}
	for _, a := range t.m.Aliases {
		if !strings.Contains(a, ".") {
			return a
		}
	}
	return t.asGiven
}

func runTokens(ctx context.Context, opts *TokensOptions) error {
	table, err := opts.Pricing()
	if err != nil {
		return err
	}
	if opts.Encoding != "" {
		if _, err := tokenizer.Get(opts.Encoding); err != nil {
			return usageErrorf("invalid --encoding %q (expected %s)", opts.Encoding, strings.Join(tokenizer.Names(), ", "))
		}
	}
	models := &tokenModels{opts: opts, table: table, byKey: map[string]*tokenModel{}}
	defName := opts.Model
	if defName == "" {
		defName = "gpt-4o"
	}
	def, err := models.get(defName)
	if err != nil {
		var ee *ExitErr
		if errors.As(err, &ee) {
			return err
		}
		return usageError(err)
	}

	inputs, problems := expandTokenInputs(opts.Paths, opts.Include)
	for _, p := range problems {
		if p.kind == "error" {
			// A named path that is missing or cannot be counted: say so
			// before counting gigabytes for a result that is not printed.
			printTokensProblems(opts.IO.ErrOut, problems)
			return &ExitErr{Code: ExitError}
		}
	}
	files := make([]tokenFile, len(inputs))
	counted := make([]bool, len(inputs))
	used := make([]tokenResult, len(inputs))
	var mu sync.Mutex
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for i, in := range inputs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res, probs, ok := countTokenInput(ctx, opts, models, def, in)
			mu.Lock()
			defer mu.Unlock()
			problems = append(problems, probs...)
			if ok {
				files[i] = tokenFile{Path: in.path, Tokens: res.tokens, Bytes: res.nbytes,
					Cost: res.model.m.Cost(pricing.Usage{InputTokens: res.tokens}, false)}
				if opts.Chat {
					exact := res.exact
					files[i].Model, files[i].Exact = res.model.m.Name, &exact
				}
				used[i] = res
				counted[i] = true
			}
		}()
	}
	wg.Wait()

	out := []tokenFile{}
	var total tokenFile
	var runModels []*tokenModel // in order of first use by path
	exact := def.exact
	approxImages := 0
	anyCounted := false
	for i, f := range files {
		if !counted[i] {
			continue
		}
		r := used[i]
		if !anyCounted {
			exact = true
			anyCounted = true
		}
		exact = exact && r.exact
		approxImages += r.approxImages
		seenModel := false
		for _, m := range runModels {
			seenModel = seenModel || m == r.model
		}
		if !seenModel {
			runModels = append(runModels, r.model)
		}
		if opts.Max > 0 && f.Tokens > opts.Max {
			f.OverLimit = true
		}
		total.Tokens += f.Tokens
		total.Bytes += f.Bytes
		total.Cost += f.Cost
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	if printTokensProblems(opts.IO.ErrOut, problems) {
		// Each error is on stderr; a partial table would read as a result.
		return &ExitErr{Code: ExitError}
	}
	if len(out) == 0 && (opts.Max > 0 || opts.MaxTotal > 0) {
		return noFileMatched(opts)
	}

	if len(runModels) == 0 {
		runModels = []*tokenModel{def}
	}
	sort.Slice(runModels, func(i, j int) bool { return runModels[i].m.Name < runModels[j].m.Name })
	modelName, encName := runModels[0].m.Name, runModels[0].enc
	if len(runModels) > 1 {
		modelName = "mixed"
		for _, m := range runModels[1:] {
			if m.enc != encName {
				encName = "mixed"
			}
		}
	}
	if opts.Format == render.FormatJSON {
		err = writeJSON(opts.IO.Out, struct {
			Version    int         `json:"version"`
			Model      string      `json:"model"`
			Encoding   string      `json:"encoding"`
			Exact      bool        `json:"exact"`
			Chat       bool        `json:"chat"`
			PricesAsOf string      `json:"prices_as_of"`
			Files      []tokenFile `json:"files"`
			Total      struct {
				Tokens int64         `json:"tokens"`
				Bytes  int64         `json:"bytes"`
				Cost   pricing.Money `json:"cost_usd"`
			} `json:"total"`
		}{Version: 1, Model: modelName, Encoding: encName, Exact: exact, Chat: opts.Chat, PricesAsOf: table.AsOf, Files: out,
			Total: struct {
				Tokens int64         `json:"tokens"`
				Bytes  int64         `json:"bytes"`
				Cost   pricing.Money `json:"cost_usd"`
			}{total.Tokens, total.Bytes, total.Cost}})
	} else {
		err = writeTokensTable(opts, runModels, exact, approxImages, table, out, total)
	}
	if err != nil {
		return err
	}

	gateFailed := false
	for _, f := range out {
		if f.OverLimit {
			gateFailed = true
			fmt.Fprintf(opts.IO.ErrOut, "%s: %s tokens > %s\n", f.Path, render.Int(f.Tokens), render.Int(opts.Max))
		}
	}
	if opts.MaxTotal > 0 && total.Tokens > opts.MaxTotal {
		gateFailed = true
		fmt.Fprintf(opts.IO.ErrOut, "total: %s tokens > %s\n", render.Int(total.Tokens), render.Int(opts.MaxTotal))
	}
	if gateFailed {
		return gateError("")
	}
	return nil
}

// noFileMatched is the usage error of a gate with nothing to gate: an empty
// folder or an --include that matches nothing must not pass CI.
func noFileMatched(opts *TokensOptions) error {
	var gates []string
	if opts.Max > 0 {
		gates = append(gates, "--max")
	}
	if opts.MaxTotal > 0 {
		gates = append(gates, "--max-total")
	}
	where := strings.Join(opts.Paths, ", ")
	if len(opts.Paths) == 0 {
		where = "standard input"
	}
	check := "the paths"
	if len(opts.Include) > 0 {
		globs := make([]string, len(opts.Include))
		for i, g := range opts.Include {
			globs[i] = strconv.Quote(g)
		}
		where += " (--include " + strings.Join(globs, ", ") + ")"
		check = "the paths and --include"
	}
	return usageErrorf("no file matched in %s: a %s gate cannot pass on nothing; check %s", where, strings.Join(gates, "/"), check)
}

func writeTokensTable(opts *TokensOptions, models []*tokenModel, exact bool, approxImages int, table *pricing.Table, files []tokenFile, total tokenFile) error {
	t := render.Table{
		Headers: []string{"PATH", "TOKENS", "BYTES", "INPUT COST"},
		Align:   []render.Align{render.Left, render.Right, render.Right, render.Right},
	}
	multi := len(models) > 1
	if multi {
		t.Headers = append(t.Headers, "MODEL")
		t.Align = append(t.Align, render.Left)
	}
	if opts.Max > 0 {
		t.Headers = append(t.Headers, "LIMIT")
	}
	for _, f := range files {
		row := []string{f.Path, render.Int(f.Tokens), render.Int(f.Bytes), f.Cost.Display()}
		if multi {
			row = append(row, f.Model)
		}
		if opts.Max > 0 {
			mark := "ok"
			if f.OverLimit {
				mark = "OVER " + render.Int(opts.Max)
			}
			row = append(row, mark)
		}
		t.AddRow(row...)
	}
	t.Footer = []string{fmt.Sprintf("total (%d files)", len(files)), render.Int(total.Tokens), render.Int(total.Bytes), total.Cost.Display()}
	if multi {
		t.Footer = append(t.Footer, "")
	}
	if len(files) == 1 {
		t.Footer[0] = "total (1 file)"
	}
	if err := t.WriteText(opts.IO.Out); err != nil {
		return err
	}
	what := "tokens"
	if opts.Chat {
		what = "billed prompt tokens (chat formula)"
	}
	note := "\n"
	for _, m := range models {
		how := what + " with " + m.enc
		if m.api != nil {
			how = what + " from the provider's token-counting API"
		}
		note += fmt.Sprintf("%s, %s; input cost at %s $%s/1M; %s\n", m.m.Name, how, m.m.Name, m.m.Input.Per1M(), table.AsOfLabel())
	}
	for _, m := range models {
		if !m.exact && m.api == nil {
			note += fmt.Sprintf("approximate: %s has no public tokenizer, counted with %s\n", m.m.Name, m.enc)
		}
	}
	if approxImages > 0 {
		note += fmt.Sprintf("approximate: %d image(s) counted without a documented size or rule (a remote URL is counted as low detail)\n", approxImages)
	}
	_, err := io.WriteString(opts.IO.Out, note)
	return err
}

// expandTokenInputs turns arguments into the list of inputs to count,
// walking directories. A named path that cannot be counted is an error;
// what a walk skips (hidden entries, symlinked directories, pipes, broken
// links) is a note. One file reached under two names is counted once.
func expandTokenInputs(paths []string, include []string) ([]tokenInput, []tokensProblem) {
	if len(paths) == 0 {
		paths = []string{"-"}
	}
	var ins []tokenInput
	var probs []tokensProblem
	seen := map[string]int{}
	add := func(in tokenInput) {
		if j, ok := seen[in.path]; ok {
			ins[j].explicit = ins[j].explicit || in.explicit
			return
		}
		seen[in.path] = len(ins)
		ins = append(ins, in)
	}
	problem := func(path, kind, msg string) {
		probs = append(probs, tokensProblem{path: path, kind: kind, msg: msg})
	}
	for _, p := range paths {
		if p == "-" {
			add(tokenInput{path: "-", explicit: true})
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			problem(p, "error", describeFSError(err))
			continue
		}
		switch {
		case st.Mode().IsRegular():
			add(tokenInput{path: p, open: p, explicit: true, info: st})
			continue
		case !st.IsDir():
			problem(p, "error", fmt.Sprintf("%s, not a regular file; to count a stream, give it on standard input (costctl tokens - < %s)", fileKind(st.Mode()), p))
			continue
		}
		// A directory named on the command line is walked even when the
		// name is a symlink to it; paths keep the name given.
		root := p
		if lst, err := os.Lstat(p); err == nil && lst.Mode()&fs.ModeSymlink != 0 {
			if root, err = filepath.EvalSymlinks(p); err != nil {
				problem(p, "error", describeFSError(err))
				continue
			}
		}
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			show := path
			if root != p {
				if rel, rerr := filepath.Rel(root, path); rerr == nil {
					show = filepath.Join(p, rel)
				}
			}
			if err != nil {
				problem(show, "error", describeFSError(err))
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if path != root && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					problem(show, "note", "hidden directory skipped")
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				// Symlinked files are followed; symlinked directories are
				// not (no loops, no walking out of the tree), as ripgrep
				// and fd do without --follow.
				st, err := os.Stat(path)
				switch {
				case errors.Is(err, fs.ErrNotExist):
					if len(include) == 0 || matchesAny(include, p, show) {
						problem(show, "note", "broken symlink skipped")
					}
					return nil
				case isLoop(err):
					problem(show, "note", "symlink loop skipped")
					return nil
				case err != nil:
					problem(show, "error", describeFSError(err))
					return nil
				case st.IsDir():
					problem(show, "note", "symlink to a directory not followed; name it on the command line to count it")
					return nil
				}
				if len(include) > 0 && !matchesAny(include, p, show) {
					return nil
				}
				if !st.Mode().IsRegular() {
					problem(show, "note", fileKind(st.Mode())+" skipped")
					return nil
				}
				add(tokenInput{path: show, open: path, info: st, link: true})
				return nil
			}
			if len(include) > 0 && !matchesAny(include, p, show) {
				return nil
			}
			if !d.Type().IsRegular() {
				problem(show, "note", fileKind(d.Type())+" skipped")
				return nil
			}
			info, err := d.Info()
			if err != nil {
				problem(show, "error", describeFSError(err))
				return nil
			}
			add(tokenInput{path: show, open: path, info: info})
			return nil
		})
		if err != nil {
			problem(p, "error", describeFSError(err))
		}
	}
	return dedupeTokenInputs(ins, &probs), probs
}

// dedupeTokenInputs keeps one input per file (a symlink or hard link to a
// file already listed, or one file named twice): the real name before a
// symlink, then the first listed. Each dropped name gets a note.
func dedupeTokenInputs(ins []tokenInput, probs *[]tokensProblem) []tokenInput {
	// Only files of the same size and modification time can be the same.
	type key struct {
		size, mod int64
	}
	groups := map[key][]int{}
	var keys []key
	for i, in := range ins {
		if in.info == nil {
			continue
		}
		k := key{in.info.Size(), in.info.ModTime().UnixNano()}
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], i)
	}
	drop := make([]bool, len(ins))
	for _, k := range keys {
		idx := groups[k]
		if len(idx) < 2 {
			continue
		}
		sort.SliceStable(idx, func(a, b int) bool { return !ins[idx[a]].link && ins[idx[b]].link })
		for a, i := range idx {
			if drop[i] {
				continue
			}
			for _, j := range idx[a+1:] {
				if !drop[j] && os.SameFile(ins[i].info, ins[j].info) {
					drop[j] = true
					*probs = append(*probs, tokensProblem{path: ins[j].path, kind: "note", msg: "same file as " + ins[i].path + "; counted once"})
				}
			}
		}
	}
	kept := ins[:0:0]
	for i, in := range ins {
		if !drop[i] {
			kept = append(kept, in)
		}
	}
	return kept
}

func matchesAny(globs []string, root, path string) bool {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		rel = path
	}
	for _, g := range globs {
		for _, cand := range []string{filepath.Base(path), rel, path} {
			if ok, _ := filepath.Match(g, cand); ok {
				return true
			}
		}
	}
	return false
}

// fileKind names a file type that is not a regular file or directory.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

func isLoop(err error) bool { return errors.Is(err, syscall.ELOOP) }

func describeFSError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or directory"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case isLoop(err):
		return "too many levels of symbolic links (a symlink loop)"
	}
	return err.Error()
}

// binaryHead is how much of a file decides whether it is text: a NUL byte
// in the first 8 KiB (after UTF-16 decoding) means binary, as git decides.
const binaryHead = 8192

// countTokenInput streams one input through the counter. A binary file
// found by walking a folder is skipped with a note; one named on the
// command line is an error.
// tokenResult is one input's count.
type tokenResult struct {
	tokens, nbytes int64
	model          *tokenModel
	exact          bool
	approxImages   int
}

func countTokenInput(ctx context.Context, opts *TokensOptions, models *tokenModels, def *tokenModel, in tokenInput) (res tokenResult, probs []tokensProblem, ok bool) {
	fail := func(line int, msg string) (tokenResult, []tokensProblem, bool) {
		return tokenResult{}, []tokensProblem{{path: in.path, line: line, msg: msg, kind: "error"}}, false
	}
	res.model, res.exact = def, def.exact
	var r io.Reader
	if in.open == "" {
		r = opts.IO.In
	} else {
		f, err := os.Open(in.open)
		if err != nil {
			return fail(0, describeFSError(err))
		}
		defer f.Close() // only read: a close error cannot lose data
		r = f
	}
	cr := &countingReader{r: r}
	text, err := estimator.NewTextReader(cr)
	if err != nil {
		return fail(0, describeFSError(err))
	}
	head := make([]byte, binaryHead)
	n, err := io.ReadFull(text, head)
	if err != nil && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fail(0, describeFSError(err))
	}
	head = head[:n]
	if bytes.IndexByte(head, 0) >= 0 {
		if in.explicit {
			return fail(0, "binary file (a NUL byte in its first 8 KiB), not counted")
		}
		return tokenResult{}, []tokensProblem{{path: in.path, msg: "binary file skipped", kind: "note"}}, false
	}
	stream := io.MultiReader(bytes.NewReader(head), text)
	var invalid bool
	if opts.Chat {
		data, err := io.ReadAll(stream)
		if err != nil {
			return fail(0, describeFSError(err))
		}
		s, replaced := tokenizer.ReplaceInvalidUTF8(data)
		invalid = replaced
		req, err := estimator.ParseChatRequest([]byte(s))
		if err != nil {
			var ce *estimator.ChatError
			if errors.As(err, &ce) {
				return fail(ce.Line, ce.Detail())
			}
			return fail(0, err.Error())
		}
		if opts.Model == "" && req.Model != "" {
			m, err := models.get(req.Model)
			if err != nil {
				var ue *pricing.UnknownModelError
				if errors.As(err, &ue) {
					return fail(req.ModelLine, fmt.Sprintf("model %q is not in the price table; give --model to count it as a known model, or add its prices with --pricing", req.Model))
				}
				return fail(req.ModelLine, oneLineErr(err))
			}
			res.model = m
		}
		if res.model.api != nil {
			if res.tokens, err = countViaAPI(ctx, opts, res.model, req); err != nil {
				return fail(0, oneLineErr(err))
			}
			res.exact = true
		} else {
			cc := res.model.counter.ChatCount(req.Messages, req.Tools)
			res.tokens, res.approxImages = cc.Tokens, cc.ApproxImages
			res.exact = res.model.exact && cc.ApproxImages == 0
		}
	} else if def.api != nil {
		data, err := io.ReadAll(stream)
		if err != nil {
			return fail(0, describeFSError(err))
		}
		s, replaced := tokenizer.ReplaceInvalidUTF8(data)
		invalid = replaced
		req := &estimator.ChatRequest{Messages: []estimator.Message{{Role: "user", Content: s}}}
		if res.tokens, err = countViaAPI(ctx, opts, def, req); err != nil {
			return fail(0, oneLineErr(err))
		}
		res.exact = true
	} else {
		res.tokens, invalid, err = def.counter.Tokenizer().CountReader(stream)
		if err != nil {
			return fail(0, describeFSError(err))
		}
	}
	if invalid {
		probs = append(probs, tokensProblem{path: in.path, msg: "invalid UTF-8 replaced by U+FFFD before counting", kind: "warning"})
	}
	if text.InvalidUTF16() {
		probs = append(probs, tokensProblem{path: in.path, msg: "invalid UTF-16 (an unpaired surrogate or odd byte) replaced by U+FFFD before counting", kind: "warning"})
	}
	res.nbytes = cr.n
	return res, probs, true
}

// countViaAPI asks the provider, within --api-timeout.
func countViaAPI(ctx context.Context, opts *TokensOptions, m *tokenModel, req *estimator.ChatRequest) (int64, error) {
	timeout := opts.APITimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return m.api.CountTokens(ctx, m.apiModelName(), req)
}

// oneLineErr is err's message on one line.
func oneLineErr(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
