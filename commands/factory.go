// Package commands holds costctl's cobra commands. Each command is thin:
// flags fill an XOptions struct, runX calls a domain package and renders.
package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// IOStreams are a command's standard streams and whether they are terminals.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	InTTY  bool
	OutTTY bool
	ErrTTY bool
}

// Factory carries what commands share: streams, environment, clock, the
// global flags (--pricing, --db, --no-color) and lazily-built dependencies.
type Factory struct {
	IO     *IOStreams
	Getenv func(string) string
	// LookupEnv tells a variable set to "" from an unset one (NO_COLOR);
	// nil: only Getenv is asked.
	LookupEnv  func(string) (string, bool)
	Now        func() time.Time
	HTTPClient *http.Client

	// Global flags.
	PricingFile string
	DBPath      string
	NoColor     bool

	pricingOnce sync.Once
	table       *pricing.Table
	tableErr    error
}

// NewFactory returns the factory for the real process.
func NewFactory() *Factory {
	isTTY := func(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
	return &Factory{
		IO: &IOStreams{
			In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
			InTTY: isTTY(os.Stdin), OutTTY: isTTY(os.Stdout), ErrTTY: isTTY(os.Stderr),
		},
		Getenv:     os.Getenv,
		LookupEnv:  os.LookupEnv,
		Now:        time.Now,
		HTTPClient: &http.Client{},
	}
}

// Pricing returns the price table: the built-in one merged with --pricing
// (or COSTCTL_PRICING) when given. Loaded once per process.
func (f *Factory) Pricing() (*pricing.Table, error) {
	f.pricingOnce.Do(func() {
		f.table, f.tableErr = f.baseTable()
		if f.tableErr != nil {
			return
		}
		file, src, off := f.PricingFile, "--pricing "+f.PricingFile, "leave out --pricing"
		if file == "" {
			file = f.Getenv("COSTCTL_PRICING")
			src, off = "COSTCTL_PRICING="+file, "unset COSTCTL_PRICING"
		}
		if file != "" {
			warns, err := f.table.MergeFileWarn(file)
			if err != nil {
				f.tableErr = pricingFileError(src, off, err)
				return
			}
			for _, w := range warns {
				fmt.Fprintf(f.IO.ErrOut, "warning: %s\n", w)
			}
		}
	})
	return f.table, f.tableErr
}

// baseTable is the price snapshot `pricing update` wrote, else the
// built-in table. A damaged snapshot is named on stderr and the built-in
// table used: never silently wrong prices.
func (f *Factory) baseTable() (*pricing.Table, error) {
	path, err := pricing.SnapshotPath(f.Getenv)
	if err != nil {
		return pricing.Default()
	}
	t, _, ok, err := pricing.LoadSnapshot(path)
	if err != nil {
		fmt.Fprintf(f.IO.ErrOut, "warning: %v; using the built-in prices (costctl pricing update --reset removes it)\n", err)
		return pricing.Default()
	}
	if !ok {
		return pricing.Default()
	}
	return t, nil
}

// pricingFileError: a price file that cannot be read is an error (exit 1,
// like any missing input); one that can be read but is wrong is a usage
// error (exit 2) whose message names the file, line and key.
func pricingFileError(src, off string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &ExitErr{Code: ExitError, Err: fmt.Errorf("%s: %s (fix the path, or %s to use the built-in prices)", src, describeFSError(err), off)}
	}
	return usageError(err)
}

// LedgerPath is --db, else COSTCTL_DB, else the user's state directory.
func (f *Factory) LedgerPath() (string, error) {
	if f.DBPath != "" {
		return f.DBPath, nil
	}
	return ledger.DefaultPath(f.Getenv)
}

// OpenLedger opens the ledger database the global flags name.
func (f *Factory) OpenLedger(ctx context.Context) (*ledger.DB, error) {
	p, err := f.LedgerPath()
	if err != nil {
		return nil, err
	}
	return ledger.Open(ctx, p)
}

// Color reports whether colour may be used on stdout: a terminal, no
// --no-color, and NO_COLOR unset (any value disables it).
func (f *Factory) Color() bool {
	if f.NoColor || !f.IO.OutTTY {
		return false
	}
	if f.LookupEnv != nil {
		_, set := f.LookupEnv("NO_COLOR") // set, even to "", disables it
		return !set
	}
	return f.Getenv("NO_COLOR") == ""
}

// OpenExistingLedger opens the ledger the global flags name for a command
// that reads it (report, top: toWrite false) or changes what it holds
// (reprice: toWrite true, migrating an older schema). Read-only never
// changes the file, creates tables or leaves -wal/-shm files behind. A
// missing ledger is an error, not a new empty one at a mistyped path. This
// is where the kind of store is decided, so the checks that only a file has
// (it exists; its mode is not open to others, else a warning on stderr)
// live here, not in the commands.
func (f *Factory) OpenExistingLedger(ctx context.Context, toWrite bool) (*ledger.DB, error) {
	p, err := f.LedgerPath()
	if err != nil {
		return nil, err
	}
	isURL := ledger.IsPostgresURL(p) // a database, not a file: no file checks
	if _, err := os.Stat(p); !isURL && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no ledger at %s yet: bring usage in with costctl ingest FILE (or costctl eval), or point --db at an existing ledger", p)
	}
	open := ledger.OpenReadOnly
	if toWrite {
		open = ledger.Open
	}
	db, err := open(ctx, p)
	if err != nil {
		return nil, err
	}
	if !isURL {
		warnLooseMode(f.IO.ErrOut, p)
	}
	return db, nil
}

// warnLooseMode warns, on one line, when the ledger at p may be read (or
// written) by others: costctl creates it 0600, and it holds who spent what.
func warnLooseMode(w io.Writer, p string) {
	if runtime.GOOS == "windows" {
		return // no Unix modes
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return
	}
	fmt.Fprintf(w, "costctl: warning: ledger %s has mode %04o, open to other users: chmod 600 %s\n", p, st.Mode().Perm(), shellQuote(p))
}
