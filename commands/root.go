package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/render"
)

// Main runs costctl with the process's arguments and returns the exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, NewFactory(), os.Args[1:])
}

// Run executes the command line args with f and returns the exit code;
// errors are printed to f.IO.ErrOut as one line.
func Run(ctx context.Context, f *Factory, args []string) int {
	root := NewRootCmd(f)
	root.SetArgs(args)
	// An unknown command is found before anything runs (help and
	// completion are added first, as Execute would).
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	_, _, err := root.Find(args)
	if err != nil {
		err = &ExitErr{Code: ExitUsage, Err: err, hint: true}
	} else {
		err = root.ExecuteContext(ctx)
	}
	if err == nil {
		return ExitOK
	}
	if ctx.Err() != nil && !isExitErr(err) {
		err = &ExitErr{Code: ExitInterrupted, Err: errors.New("interrupted")}
	}
	code := exitCode(err)
	var e *ExitErr
	if !errors.As(err, &e) || e.Err != nil {
		msg := strings.TrimSpace(err.Error())
		fmt.Fprintf(f.IO.ErrOut, "costctl: %s\n", msg)
		if e != nil && e.hint {
			fmt.Fprintf(f.IO.ErrOut, "Run '%s --help' for usage.\n", strings.TrimSpace("costctl "+commandPath(root, args)))
		}
	}
	return code
}

func isExitErr(err error) bool {
	var e *ExitErr
	return errors.As(err, &e)
}

func commandPath(root *cobra.Command, args []string) string {
	c, _, err := root.Find(args)
	if err != nil || c == root {
		return ""
	}
	return strings.TrimPrefix(c.CommandPath(), "costctl ")
}

// NewRootCmd builds the command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "costctl",
		Short: "See and cut what your LLM calls cost",
		Long: `costctl counts tokens exactly, projects what LLM traffic and evaluations will
cost, runs LLM-judge evaluations with a cache and a hard budget cap, and shows
live spend per tenant from a local ledger. One static binary; nothing leaves
your machine except the judge calls you configure.` + exitStatusSection,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError(err)
	})
	pf := root.PersistentFlags()
	pf.StringVar(&f.PricingFile, "pricing", "", "merge a price file over the built-in table (costctl YAML/JSON or LiteLLM JSON; env COSTCTL_PRICING)")
	pf.StringVar(&f.DBPath, "db", "", "ledger/cache database (env COSTCTL_DB; default $XDG_STATE_HOME/costctl/costctl.db)")
	pf.BoolVar(&f.NoColor, "no-color", false, "disable colour (also NO_COLOR)")

	root.AddCommand(
		newVersionCmd(f),
		newPricingCmd(f, nil),
		newTokensCmd(f, nil),
		newEstimateCmd(f, nil),
		newEvalCmd(f, nil),
		newIngestCmd(f, nil),
		newTopCmd(f, nil),
		newReportCmd(f, nil),
		newRepriceCmd(f, nil),
		newProxyCmd(f, nil),
		newKeysCmd(f, nil),
		newPolicyCmd(f, nil),
		newDBCmd(f),
		newCacheCmd(f),
		&cobra.Command{
			Use:   "exit-codes",
			Short: "What costctl's exit codes mean",
			Long:  exitCodesHelp,
		},
	)
	typeUsageErrors(root)
	return root
}

func writeJSON(w io.Writer, v any) error { return render.JSON(w, v) }
