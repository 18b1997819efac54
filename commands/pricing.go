package commands

import (
	"errors"

	"github.com/spf13/cobra"
)

// PricingOptions is a placeholder until `costctl pricing` is implemented.
type PricingOptions struct{}

func newPricingCmd(f *Factory, runF func(*PricingOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:    "pricing",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("pricing: not implemented yet")
		},
	}
}
