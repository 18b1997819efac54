package commands

import (
	"errors"

	"github.com/spf13/cobra"
)

// EstimateOptions is a placeholder until `costctl estimate` is implemented.
type EstimateOptions struct{}

func newEstimateCmd(f *Factory, runF func(*EstimateOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:    "estimate",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("estimate: not implemented yet")
		},
	}
}
