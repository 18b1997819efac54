package commands

import (
	"errors"

	"github.com/spf13/cobra"
)

// TopOptions is a placeholder until `costctl top` is implemented.
type TopOptions struct{}

func newTopCmd(f *Factory, runF func(*TopOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:    "top",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("top: not implemented yet")
		},
	}
}
