package commands

import (
	"errors"

	"github.com/spf13/cobra"
)

// TokensOptions is a placeholder until `costctl tokens` is implemented.
type TokensOptions struct{}

func newTokensCmd(f *Factory, runF func(*TokensOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:    "tokens",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("tokens: not implemented yet")
		},
	}
}
