package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// Exit codes, the same for every command (see `costctl help exit-codes`).
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitGate        = 3
	ExitBudget      = 4
	ExitInterrupted = 130
)

// ExitErr carries an exit code. A nil Err means the reason was already
// written to stderr (e.g. a gate listing each offender).
type ExitErr struct {
	Code int
	Err  error
	// hint: after the message, point at the command's --help (cobra's own
	// usage errors: a wrong number of arguments, an unknown command).
	hint bool
}

func (e *ExitErr) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitErr) Unwrap() error { return e.Err }

// usageErrorf is a usage error (exit 2): a bad flag, argument or input value.
func usageErrorf(format string, a ...any) error {
	return &ExitErr{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

// usageError wraps err as a usage error (exit 2).
func usageError(err error) error {
	if err == nil {
		return nil
	}
	return &ExitErr{Code: ExitUsage, Err: err}
}

// gateError is a failed threshold (exit 3); msg may be empty when the
// offenders were already listed on stderr.
func gateError(msg string) error {
	if msg == "" {
		return &ExitErr{Code: ExitGate}
	}
	return &ExitErr{Code: ExitGate, Err: errors.New(msg)}
}

// exitCode maps an error from a command to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *ExitErr
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.Canceled) {
		return ExitInterrupted
	}
	return ExitError
}

// typeUsageErrors makes the usage errors cobra raises itself typed where
// they arise, so no exit code is read off an error's text: a bad flag
// (FlagErrorFunc, set on the root) and a wrong number of arguments (each
// command's Args, wrapped here) are ExitErr{Code: ExitUsage}; an unknown
// command is typed by Run, which looks the command up first.
func typeUsageErrors(c *cobra.Command) {
	if a := c.Args; a != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := a(cmd, args); err != nil {
				return &ExitErr{Code: ExitUsage, Err: err, hint: true}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		typeUsageErrors(sub)
	}
}

const exitCodesHelp = `Every costctl command exits with one of these codes:

  0    ok
  1    error: a run failed (missing or unreadable file, database error, network error,
       ingest lines that were bad or conflicting beyond --max-bad)
  2    usage: a bad flag, argument, config or input value (or a tokens gate whose
       paths match no file); nothing was done
  3    a gate failed: --max/--max-total (tokens), --max-monthly (estimate),
       --min-pass-rate/--fail-on-error (eval), --fail-on-alert (top)
  4    a budget cap stopped the run (eval --max-cost), or a judge billed a call
       beyond its reservation; results so far are saved
  130  interrupted (Ctrl-C); work done so far is saved and a rerun resumes

Errors and gate reasons are written to stderr as one line each; data goes to stdout.
A command that fails prints nothing on stdout; a failed gate (3) prints its
whole result first.`

const exitStatusSection = `

EXIT STATUS
  0 ok · 1 error · 2 usage · 3 gate failed · 4 budget cap · 130 interrupted
  (see "costctl help exit-codes")`
