package commands

import (
	"errors"

	"github.com/spf13/cobra"
)

// IngestOptions is a placeholder until `costctl ingest` is implemented.
type IngestOptions struct{}

func newIngestCmd(f *Factory, runF func(*IngestOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:    "ingest",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("ingest: not implemented yet")
		},
	}
}
