package commands

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// evalShardHelp is the SHARDS section of eval's help.
const evalShardHelp = `

SHARDS (--shard i/n)
  Several processes split one dataset: --shard 2/4 evaluates the records
  whose stable hash (of the record id) falls in part 2 of 4, so every record
  is judged by exactly one shard, whatever the file order. Sampling picks
  the same records in every shard before they are split. Shards that share
  one ledger (--db, e.g. one PostgreSQL URL) share its judge cache; with
  --max-cost they share one budget, held in the ledger: each call's worst
  case is held against every shard's spend and holds together, so the cap
  holds across them. The budget is that of the same command (config, files,
  sample, seed and cap) on the same UTC day; --shard-group NAME gives
  another (e.g. a CI pipeline id).`

// addShardFlags registers --shard and --shard-group.
func addShardFlags(cmd *cobra.Command, opts *EvalOptions) {
	cmd.Flags().StringVar(&opts.Shard, "shard", "", "evaluate part `i/n` of the records (by stable record hash); shards share the cache and --max-cost through the ledger")
	cmd.Flags().StringVar(&opts.ShardGroup, "shard-group", "", "with --shard and --max-cost: the shared budget's `name` (default: the command and the UTC date)")
}

// ledgerBudget is the budget eval shards share through the ledger's
// budget holds.
type ledgerBudget struct {
	db     *ledger.DB
	scope  string
	cap    pricing.Amount
	ttl    time.Duration
	holder string
	now    func() time.Time
}

func (b *ledgerBudget) Reserve(ctx context.Context, amount pricing.Money) (string, bool, error) {
	id, st, err := b.db.Reserve(ctx, ledger.HoldRequest{Scope: b.scope, Cap: b.cap, Amount: pricing.AmountFromMoney(amount), TTL: b.ttl, Holder: b.holder, Now: b.now()})
	return id, !st.Held.IsZero(), err
}

func (b *ledgerBudget) Release(ctx context.Context, id string, spent pricing.Money) error {
	return b.db.Release(ctx, b.scope, id, pricing.AmountFromMoney(spent), b.now())
}

// shardScope names the budget the shards of one command share: a hash of
// what makes the command the same job (the config's content, the inputs,
// the sample, the cap), and the group (default: today's UTC date).
func shardScope(opts *EvalOptions, now time.Time) (string, error) {
	cfg, err := os.ReadFile(opts.ConfigFile)
	if err != nil {
		return "", fmt.Errorf("--config %s: %w", opts.ConfigFile, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "config=%d:%s\nfiles=%s\nmap=%s\nsample=%s\nseed=%d\nmin-tokens=%d\nmax-cost=%s\n",
		len(cfg), cfg, strings.Join(opts.Files, "\x00"), opts.Map, opts.Sample, opts.Seed, opts.MinTokens, opts.MaxCost)
	group := opts.ShardGroup
	if group == "" {
		group = now.UTC().Format("2006-01-02")
	}
	return "eval:" + hex.EncodeToString(h.Sum(nil)[:12]) + ":" + group, nil
}
