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
	"strconv"
	"strings"
	"sync"
	"syscall"

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
counted with o200k_base and marked approximate.

--chat reads each input as an OpenAI chat request ({"messages": [...],
"tools": [...]}) or message list and counts what the API bills as
prompt_tokens: 3 tokens per message plus its role, content and name (+1 for a
name), 3 to prime the reply, and tool definitions as OpenAI's cookbook counts
them. A request that is not one is an error naming the file, line and field:
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

	out := []tokenFile{}
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
	if printTokensProblems(opts.IO.ErrOut, problems) {
		// Each error is on stderr; a partial table would read as a result.
		return &ExitErr{Code: ExitError}
	}
	if len(out) == 0 && (opts.Max > 0 || opts.MaxTotal > 0) {
		return noFileMatched(opts)
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
func countTokenInput(opts *TokensOptions, c *estimator.Counter, in tokenInput) (tokens, nbytes int64, probs []tokensProblem, ok bool) {
	fail := func(line int, msg string) (int64, int64, []tokensProblem, bool) {
		return 0, 0, []tokensProblem{{path: in.path, line: line, msg: msg, kind: "error"}}, false
	}
	var r io.Reader
	if in.open == "" {
		r = opts.IO.In
	} else {
		f, err := os.Open(in.open)
		if err != nil {
			return fail(0, describeFSError(err))
		}
		defer f.Close()
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
		return 0, 0, []tokensProblem{{path: in.path, msg: "binary file skipped", kind: "note"}}, false
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
		msgs, tools, err := estimator.ParseChat([]byte(s))
		if err != nil {
			var ce *estimator.ChatError
			if errors.As(err, &ce) {
				return fail(ce.Line, ce.Detail())
			}
			return fail(0, err.Error())
		}
		tokens = c.Chat(msgs, tools)
	} else {
		tokens, invalid, err = c.Tokenizer().CountReader(stream)
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
