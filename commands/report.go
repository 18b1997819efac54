package commands

import (
	"errors"

	"github.com/spf13/cobra"
)

// ReportOptions is a placeholder until `costctl report` is implemented.
type ReportOptions struct{}

func newReportCmd(f *Factory, runF func(*ReportOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:    "report",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("report: not implemented yet")
		},
	}
}
