package commands

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/render"
)

// newDBCmd is `costctl db`: the ledger's schema and moving it between
// stores.
func newDBCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Migrate the ledger's schema, or copy a ledger to another store",
		Long: `The ledger is an SQLite file (the default) or a PostgreSQL database
(--db postgres://USER@HOST:5432/DB, or COSTCTL_DB). Both hold the same
tables and answer the same way.

  costctl db migrate                        bring --db's schema to this build's version
  costctl db copy --from FILE --to URL      move a ledger to another store

An SQLite ledger is migrated by any command that writes to it. A
PostgreSQL ledger is created by the first command that writes to an empty
database, but an existing one is migrated only by costctl db migrate, so a
fleet upgrades when its operator says so; a command meeting a schema newer
than it knows refuses to run.` + exitStatusSection,
	}
	cmd.AddCommand(newDBMigrateCmd(f), newDBCopyCmd(f))
	return cmd
}

func newDBMigrateCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Bring the ledger (--db) to this build's schema version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dsn, err := f.LedgerPath()
			if err != nil {
				return err
			}
			from, to, err := ledger.Migrate(cmd.Context(), dsn)
			if err != nil {
				return err
			}
			name := ledger.RedactURL(dsn)
			if from == to {
				fmt.Fprintf(f.IO.Out, "ledger %s is at schema version %d: nothing to do\n", name, to)
				return nil
			}
			fmt.Fprintf(f.IO.Out, "ledger %s migrated from schema version %d to %d\n", name, from, to)
			return nil
		},
	}
}

func newDBCopyCmd(f *Factory) *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "copy --from SRC --to DST",
		Short: "Copy a ledger into another store (idempotent: rerun to resume)",
		Long: `Copy everything a ledger holds — events (with their rollups rebuilt in the
destination), the judge cache, runs, batches, virtual keys, policies and
their audit trail, shared budget spend — from SRC to DST, each an SQLite
file or a PostgreSQL URL. An event already in DST (by its idempotency key)
and any row DST already has are skipped, so a copy that stopped part way is
resumed by running it again, and a second copy adds nothing. SRC is only
read. Passwords in URLs are never printed.` + exitStatusSection,
		Example: `  costctl db copy --from ~/.local/state/costctl/costctl.db --to postgres://costctl@db:5432/costctl
  costctl db copy --from postgres://costctl@db:5432/costctl --to backup.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return usageErrorf("db copy needs --from and --to (an SQLite file or a postgres:// URL each)")
			}
			if from == to {
				return usageErrorf("--from and --to name the same ledger")
			}
			ctx := cmd.Context()
			src, err := ledger.OpenReadOnly(ctx, from)
			if err != nil {
				return err
			}
			defer src.Close() // read only
			dst, err := ledger.Open(ctx, to)
			if err != nil {
				return err
			}
			st, err := ledger.Copy(ctx, src, dst, func(st ledger.CopyStats) {
				fmt.Fprintf(f.IO.ErrOut, "db copy: %s events read, %s added\n", render.Int(st.Events), render.Int(st.EventsAdded))
			})
			if cerr := dst.Close(); cerr != nil && err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("db copy stopped (rerun it to resume; nothing is copied twice): %w", err)
			}
			fmt.Fprintf(f.IO.Out, "copied %s → %s: %s events read, %s added; %s other rows read, %s added\n",
				ledger.RedactURL(from), ledger.RedactURL(to), render.Int(st.Events), render.Int(st.EventsAdded), render.Int(st.Rows), render.Int(st.RowsAdded))
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the ledger to copy: an SQLite file or a postgres:// URL")
	cmd.Flags().StringVar(&to, "to", "", "the ledger to copy into (created if new)")
	return cmd
}
