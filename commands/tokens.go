package commands

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

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
}

func newTokensCmd(f *Factory, runF func(*TokensOptions) error) *cobra.Command {
	opts := &TokensOptions{IO: f.IO, Pricing: f.Pricing}
	if runF == nil {
		runF = runTokens
	}
	cmd := &cobra.Command{
		Use:   "tokens [PATH...]",
		Short: "Count tokens exactly (tiktoken-identical) in files, folders, stdin or chat requests",
		Long: `Count tokens in files, directories (recursively) or standard input ("-" or no
argument), exactly as OpenAI's tiktoken does, and show what they cost as input
at the model's price.

Directories are walked recursively; hidden files and folders and binary files
are skipped with a note on stderr. --include GLOB (repeatable) keeps only files
whose name or relative path matches. Files are counted in parallel and listed
sorted by path. Invalid UTF-8 is replaced by U+FFFD before counting (with a
warning naming the file); text such as <|endoftext|> counts as ordinary text.

The encoding comes from the model (--model, default gpt-4o) in the price table;
--encoding overrides it. Claude and Gemini have no public tokenizer: they are
counted with o200k_base and marked approximate.

--chat reads each input as an OpenAI chat request ({"messages": [...],
"tools": [...]}) or message list and counts what the API bills as
prompt_tokens: 3 tokens per message plus its role, content and name (+1 for a
name), 3 to prime the reply, and tool definitions as OpenAI's cookbook counts
them.

CI gate: --max N fails any file above N tokens, --max-total N the sum. Every
file is still counted and printed; each offender is named on stderr and the
exit code is 3.` + exitStatusSection,
		Example: `  costctl tokens README.md
  costctl tokens prompts/ --include '*.md' --max 4000
  cat request.json | costctl tokens --chat --model gpt-4o-mini
  costctl tokens docs/ --model claude-sonnet-4.5 --format json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
				return usageError(err)
			}
			if opts.Max < 0 || opts.MaxTotal < 0 {
				return usageErrorf("--max and --max-total must be positive token counts")
			}
			for _, g := range opts.Include {
				if _, err := filepath.Match(g, ""); err != nil {
					return usageErrorf("invalid --include pattern %q: %v", g, err)
				}
			}
			return runF(opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.Model, "model", "m", "gpt-4o", "model whose tokenizer and input price to use")
	fl.StringVar(&opts.Encoding, "encoding", "", "override the encoding: cl100k_base, o200k_base, p50k_base or r50k_base")
	fl.StringArrayVar(&opts.Include, "include", nil, "only count files matching this glob (name or relative path; repeatable)")
	fl.BoolVar(&opts.Chat, "chat", false, "inputs are OpenAI chat requests or message lists; count billed prompt_tokens")
	fl.Int64Var(&opts.Max, "max", 0, "gate: fail (exit 3) when any file has more tokens than this")
	fl.Int64Var(&opts.MaxTotal, "max-total", 0, "gate: fail (exit 3) when all files together have more tokens than this")
	fl.StringVarP(&opts.Format, "format", "f", "table", "output format: table or json")
	return cmd
}

type tokenFile struct {
	Path      string        `json:"path"`
	Tokens    int64         `json:"tokens"`
	Bytes     int64         `json:"bytes"`
	Cost      pricing.Money `json:"cost_usd"`
	OverLimit bool          `json:"over_limit"`
}

type tokenInput struct {
	path string // as shown
	open string // file to open; "" = stdin
}

// tokensProblem is a note, warning or error about one input, printed in path order.
type tokensProblem struct {
	path, msg string
	kind      string // "error", "warning" or "note"
}

func runTokens(opts *TokensOptions) error {
	table, err := opts.Pricing()
	if err != nil {
		return err
	}
	model, err := table.Lookup(opts.Model)
	if err != nil {
		return usageError(err)
	}
	encName, exact := model.Encoding, model.ExactTokenizer
	if opts.Encoding != "" {
		if _, err := tokenizer.Get(opts.Encoding); err != nil {
			return usageErrorf("invalid --encoding %q (expected %s)", opts.Encoding, strings.Join(tokenizer.Names(), ", "))
		}
		exact = exact && opts.Encoding == model.Encoding
		encName = opts.Encoding
	}
	counter, err := estimator.NewCounterForEncoding(encName)
	if err != nil {
		return err
	}

	inputs, problems := expandTokenInputs(opts.Paths, opts.Include)
	files := make([]tokenFile, len(inputs))
	counted := make([]bool, len(inputs))
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
			tokens, nbytes, probs, ok := countTokenInput(opts, counter, in)
			mu.Lock()
			defer mu.Unlock()
			problems = append(problems, probs...)
			if ok {
				files[i] = tokenFile{Path: in.path, Tokens: tokens, Bytes: nbytes,
					Cost: model.Cost(pricing.Usage{InputTokens: tokens}, false)}
				counted[i] = true
			}
		}()
	}
	wg.Wait()

	var out []tokenFile
	var total tokenFile
	for i, f := range files {
		if !counted[i] {
			continue
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
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].path < problems[j].path })
	hadErr := false
	for _, p := range problems {
		if p.kind == "error" {
			hadErr = true
			fmt.Fprintf(opts.IO.ErrOut, "costctl: %s: %s\n", p.path, p.msg)
		} else {
			fmt.Fprintf(opts.IO.ErrOut, "%s: %s: %s\n", p.kind, p.path, p.msg)
		}
	}

	if opts.Format == render.FormatJSON {
		if out == nil {
			out = []tokenFile{}
		}
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
		}{Version: 1, Model: model.Name, Encoding: encName, Exact: exact, Chat: opts.Chat, PricesAsOf: table.AsOf, Files: out,
			Total: struct {
				Tokens int64         `json:"tokens"`
				Bytes  int64         `json:"bytes"`
				Cost   pricing.Money `json:"cost_usd"`
			}{total.Tokens, total.Bytes, total.Cost}})
	} else {
		err = writeTokensTable(opts, model, encName, exact, table, out, total)
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
	if hadErr {
		return &ExitErr{Code: ExitError}
	}
	if gateFailed {
		return gateError("")
	}
	return nil
}

func writeTokensTable(opts *TokensOptions, model *pricing.Model, enc string, exact bool, table *pricing.Table, files []tokenFile, total tokenFile) error {
	t := render.Table{
		Headers: []string{"PATH", "TOKENS", "BYTES", "INPUT COST"},
		Align:   []render.Align{render.Left, render.Right, render.Right, render.Right},
	}
	if opts.Max > 0 {
		t.Headers = append(t.Headers, "LIMIT")
	}
	for _, f := range files {
		row := []string{f.Path, render.Int(f.Tokens), render.Int(f.Bytes), f.Cost.Display()}
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
	note := fmt.Sprintf("\n%s, %s with %s; input cost at %s $%s/1M; %s\n", model.Name, what, enc, model.Name, model.Input.Per1M(), table.AsOfLabel())
	if !exact {
		note += fmt.Sprintf("approximate: %s has no public tokenizer, counted with %s\n", model.Name, enc)
	}
	_, err := io.WriteString(opts.IO.Out, note)
	return err
}

// expandTokenInputs turns arguments into the list of inputs to count,
// walking directories. Problems (missing paths, skipped entries) come back
// to be printed in order.
func expandTokenInputs(paths []string, include []string) ([]tokenInput, []tokensProblem) {
	if len(paths) == 0 {
		paths = []string{"-"}
	}
	var ins []tokenInput
	var probs []tokensProblem
	seen := map[string]bool{}
	add := func(in tokenInput) {
		if !seen[in.path] {
			seen[in.path] = true
			ins = append(ins, in)
		}
	}
	for _, p := range paths {
		if p == "-" {
			add(tokenInput{path: "-"})
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			probs = append(probs, tokensProblem{p, describeFSError(err), "error"})
			continue
		}
		if !st.IsDir() {
			add(tokenInput{path: p, open: p})
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				probs = append(probs, tokensProblem{path, describeFSError(err), "error"})
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if path != p && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					probs = append(probs, tokensProblem{path, "hidden directory skipped", "note"})
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			if len(include) > 0 && !matchesAny(include, p, path) {
				return nil
			}
			add(tokenInput{path: path, open: path})
			return nil
		})
		if err != nil {
			probs = append(probs, tokensProblem{p, describeFSError(err), "error"})
		}
	}
	return ins, probs
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
	}
	return err.Error()
}

// countTokenInput streams one input through the counter. Binary files
// (a NUL byte in the first 8 KiB, as git decides) are skipped with a note.
func countTokenInput(opts *TokensOptions, c *estimator.Counter, in tokenInput) (tokens, nbytes int64, probs []tokensProblem, ok bool) {
	var r io.Reader
	if in.open == "" {
		r = opts.IO.In
	} else {
		f, err := os.Open(in.open)
		if err != nil {
			return 0, 0, []tokensProblem{{in.path, describeFSError(err), "error"}}, false
		}
		defer f.Close()
		r = f
	}
	head := make([]byte, 8192)
	n, err := io.ReadFull(r, head)
	if err != nil && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, 0, []tokensProblem{{in.path, describeFSError(err), "error"}}, false
	}
	head = head[:n]
	if bytes.IndexByte(head, 0) >= 0 {
		return 0, 0, []tokensProblem{{in.path, "binary file skipped", "note"}}, false
	}
	cr := &countingReader{r: io.MultiReader(bytes.NewReader(head), r)}
	var invalid bool
	if opts.Chat {
		data, err := io.ReadAll(cr)
		if err != nil {
			return 0, 0, []tokensProblem{{in.path, describeFSError(err), "error"}}, false
		}
		s, replaced := tokenizer.ReplaceInvalidUTF8(data)
		invalid = replaced
		msgs, tools, err := estimator.ParseChat([]byte(s))
		if err != nil {
			return 0, 0, []tokensProblem{{in.path, err.Error(), "error"}}, false
		}
		tokens = c.Chat(msgs, tools)
	} else {
		tokens, invalid, err = c.Tokenizer().CountReader(cr)
		if err != nil {
			return 0, 0, []tokensProblem{{in.path, describeFSError(err), "error"}}, false
		}
	}
	if invalid {
		probs = append(probs, tokensProblem{in.path, "invalid UTF-8 replaced by U+FFFD before counting", "warning"})
	}
	return tokens, cr.n, probs, true
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
