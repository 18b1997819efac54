package commands

import (
	"errors"

	"github.com/spf13/cobra"
)

// EvalOptions is a placeholder until `costctl eval` is implemented.
type EvalOptions struct{}

func newEvalCmd(f *Factory, runF func(*EvalOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:    "eval",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("eval: not implemented yet")
		},
	}
}
