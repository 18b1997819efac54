package ledger

import (
	"context"
	"time"

	"github.com/costctl/costctl/pricing"
)

// SourceProxy is the source of the calls costctl proxy served.
const SourceProxy = "proxy"

// VirtualKey is a key costctl proxy accepts in place of a provider key. Only
// a hash of the secret is stored (KeyHash); the secret is shown once, when
// the key is created.
type VirtualKey struct {
	Name      string // unique, what `keys revoke` takes
	Tenant    string
	User      string
	Hash      string // hex SHA-256 of the secret
	CreatedAt time.Time
	RevokedAt time.Time // zero: active
}

// Policy is what a tenant may do through the proxy. The zero Policy is no
// budget, not blocked, no sampling, no cache, no routes.
type Policy struct {
	Tenant        string
	DailyBudget   pricing.Money     // 0: none
	MonthlyBudget pricing.Money     // 0: none
	Blocked       bool              //
	SampleBP      int64             // share of requests sampled, in basis points (100 = 1%)
	Cache         bool              // exact response cache on
	Routes        map[string]string // requested model → model served
	UpdatedAt     time.Time
	// Semantic cache (semantic.go). Turned on, zero settings take their
	// defaults (DefaultSimilarityBP, DefaultSemanticTTL,
	// DefaultMinPrecisionBP) when stored.
	SemanticCache bool
	Similarity    int64         // threshold, basis points (9500 = 0.95); at least MinSimilarityBP
	SemanticTTL   time.Duration // how long an entry is served
	MinPrecision  int64         // measured precision below which it switches off, basis points
	SemanticOff   string        // why it was switched off automatically ("" when it was not)
}

// PolicyChange is one audit row: who changed what, when and why.
type PolicyChange struct {
	At     time.Time
	Tenant string
	What   string // e.g. "block", "daily-budget 50.00", "sample 1%"
	Reason string
	Who    string // $USER of the process that made the change
}

// Control is what costctl keys, costctl policy, costctl proxy and top's
// actions read and write: virtual keys, per-tenant policies and their
// audit trail. *DB implements it.
type Control interface {
	CreateKey(ctx context.Context, k VirtualKey) error
	KeyByHash(ctx context.Context, hash string) (VirtualKey, bool, error)
	ListKeys(ctx context.Context) ([]VirtualKey, error)
	RevokeKey(ctx context.Context, name string, at time.Time) error
	// SetPolicy stores p and its audit row in one transaction.
	SetPolicy(ctx context.Context, p Policy, change PolicyChange) error
	Policies(ctx context.Context) (map[string]Policy, error)
	PolicyChanges(ctx context.Context, tenant string) ([]PolicyChange, error)
}
