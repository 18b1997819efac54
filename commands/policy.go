package commands

import (
	"context"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
)

// PolicyOptions are the inputs of `costctl policy set|list|log`.
type PolicyOptions struct {
	IO      *IOStreams
	Now     func() time.Time
	Getenv  func(string) string
	Pricing func() (*pricing.Table, error)
	// Ledger opens the ledger to write (set); ReadLedger to read (list,
	// log), nil without error when there is no ledger yet.
	Ledger     func(context.Context) (*ledger.DB, error)
	ReadLedger func(context.Context) (*ledger.DB, error)

	Action string // set, list, log
	Tenant string // set: required; log: "" = every tenant
	Reason string
	Format string

	// set: what to change; nil (or no routes) leaves that part as it is.
	Daily, Monthly *pricing.Money // 0: no budget
	Blocked        *bool
	SampleBP       *int64
	Cache          *bool
	Routes         []policyRoute // in the order given; To "" removes the route
	// The semantic cache (ledger/semantic.go): on or off, threshold and
	// minimum precision in basis points, entry lifetime.
	SemanticCache *bool
	Similarity    *int64
	CacheTTL      *time.Duration
	MinPrecision  *int64
}

type policyRoute struct{ From, To string }

func newPolicyCmd(f *Factory, runF func(*PolicyOptions) error) *cobra.Command {
	opts := &PolicyOptions{IO: f.IO, Now: f.Now, Getenv: f.Getenv, Pricing: f.Pricing, Ledger: f.OpenLedger, ReadLedger: readControlLedger(f)}
	run := func(c *cobra.Command) error {
		if runF != nil {
			return runF(opts)
		}
		return runPolicy(c.Context(), opts)
	}
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Set and show what each tenant may do through costctl proxy",
		Long: `A tenant's policy is what costctl proxy enforces on every call made with the
tenant's virtual keys: a hard daily and monthly budget (UTC days and months),
a block, the share of requests sampled to the proxy's --sample-out for eval,
the exact response cache, the semantic cache, and model routes. A tenant
without a policy has no budget, is not blocked, is not sampled, has no cache
and no routes.

Every change is an audit row — when, what, the --reason and who ($USER) —
that policy log shows; a running proxy applies a change within about a
second. Policies live in the --db ledger.` + exitStatusSection,
		Example: `  costctl policy set --tenant acme --daily-budget 50 --reason "runbook: cap after spike"
  costctl policy set --tenant acme --block --reason "cost spike, paging owner"
  costctl policy list --format json
  costctl policy log --tenant acme`,
		Args: cobra.NoArgs,
	}
	var daily, monthly, sample, cacheFlag, semFlag, simFlag, ttlFlag, precFlag string
	var block, unblock bool
	var routes []string
	var setFormat, listFormat, logFormat string
	set := &cobra.Command{
		Use:   "set --tenant T [--daily-budget USD] [--monthly-budget USD] [--block | --unblock] [--sample PCT] [--cache on|off] [--semantic-cache on|off [--similarity 0.95] [--cache-ttl 24h] [--min-precision 0.98]] [--route FROM=TO]... --reason TEXT",
		Short: "Change a tenant's policy (with a reason, kept in the audit log)",
		Long: `Change a tenant's policy. Only what a flag names changes; the rest stays.

  --daily-budget USD, --monthly-budget USD   a hard cap in dollars (exact
      decimals: 50, 12.50, 0.000001); 0 or none removes it. The proxy refuses
      (429 budget_exceeded) a call whose worst case would pass it.
  --block, --unblock   refuse every call of the tenant (403 tenant_blocked),
      or serve it again.
  --sample PCT   write this share of the tenant's requests (1% or 1, down to
      0.01%) to the proxy's --sample-out for costctl eval; 0 stops it.
  --cache on|off   the exact response cache for deterministic requests.
  --semantic-cache on|off   also answer a deterministic request from an
      earlier one that means the same thing (embedding similarity at least
      --similarity, default 0.95, never below 0.80, and a lexical check);
      entries live --cache-ttl (default 24h). The proxy verifies a sample of
      hits and switches the cache off when the measured precision falls
      below --min-precision (default 0.98); costctl cache stats shows it.
  --route FROM=TO   serve requests for model FROM with model TO (which must be
      priced); FROM= removes the route. Repeat for several.

--reason is required: it goes in the audit log with the time and $USER.` + exitStatusSection,
		Example: `  costctl policy set --tenant acme --daily-budget 50 --monthly-budget 1000 --reason "Q4 plan"
  costctl policy set --tenant acme --sample 1% --reason "runbook step 2"
  costctl policy set --tenant acme --route gpt-4o=gpt-4o-mini --route o1= --reason "cheaper default"
  costctl policy set --tenant acme --unblock --daily-budget none --reason "owner fixed the loop"`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			opts.Action, opts.Format = "set", setFormat
			fl := c.Flags()
			if err := render.CheckFormat(opts.Format, "text", render.FormatJSON); err != nil {
				return usageError(err)
			}
			if err := checkTenant(opts.Tenant); err != nil {
				return err
			}
			if fl.Changed("daily-budget") {
				m, err := parseBudget("--daily-budget", daily)
				if err != nil {
					return err
				}
				opts.Daily = &m
			}
			if fl.Changed("monthly-budget") {
				m, err := parseBudget("--monthly-budget", monthly)
				if err != nil {
					return err
				}
				opts.Monthly = &m
			}
			switch {
			case fl.Changed("block") && !block || fl.Changed("unblock") && !unblock:
				return usageErrorf("--block and --unblock take no value: give the one you mean")
			case block && unblock:
				return usageErrorf("--block and --unblock together: give one")
			case block || unblock:
				b := block
				opts.Blocked = &b
			}
			if fl.Changed("sample") {
				bp, err := parseSample(sample)
				if err != nil {
					return err
				}
				opts.SampleBP = &bp
			}
			if fl.Changed("cache") {
				switch cacheFlag {
				case "on", "off":
					on := cacheFlag == "on"
					opts.Cache = &on
				default:
					return usageErrorf("invalid --cache %q: on or off", cacheFlag)
				}
			}
			if fl.Changed("semantic-cache") {
				switch semFlag {
				case "on", "off":
					on := semFlag == "on"
					opts.SemanticCache = &on
				default:
					return usageErrorf("invalid --semantic-cache %q: on or off", semFlag)
				}
			}
			if fl.Changed("similarity") {
				bp, err := parseSimilarity(simFlag)
				if err != nil {
					return err
				}
				opts.Similarity = &bp
			}
			if fl.Changed("cache-ttl") {
				d, err := time.ParseDuration(strings.TrimSpace(ttlFlag))
				if err != nil || d <= 0 || d%time.Millisecond != 0 {
					return usageErrorf("invalid --cache-ttl %q: a positive duration like 24h or 90m", ttlFlag)
				}
				opts.CacheTTL = &d
			}
			if fl.Changed("min-precision") {
				bp, err := parseShareBP("--min-precision", precFlag)
				if err != nil {
					return err
				}
				if bp == 0 {
					return usageErrorf("invalid --min-precision %q: above 0, at most 1 (0.98: 98%% of verified hits right)", precFlag)
				}
				opts.MinPrecision = &bp
			}
			seen := map[string]bool{}
			for _, r := range routes {
				from, to, ok := strings.Cut(r, "=")
				from, to = strings.TrimSpace(from), strings.TrimSpace(to)
				switch {
				case !ok || from == "":
					return usageErrorf("invalid --route %q: FROM=TO (a model to serve another with), or FROM= to remove a route", r)
				case from == to:
					return usageErrorf("invalid --route %q: a model routed to itself", r)
				case seen[from]:
					return usageErrorf("invalid --route %q: %s is routed twice in one command", r, from)
				}
				seen[from] = true
				opts.Routes = append(opts.Routes, policyRoute{From: from, To: to})
			}
			opts.Reason = strings.TrimSpace(opts.Reason)
			switch {
			case opts.Reason == "":
				return usageErrorf("--reason is required: say why, for the audit log (policy log)")
			case hasControl(opts.Reason):
				return usageErrorf("invalid --reason: one line, without control characters")
			}
			if opts.Daily == nil && opts.Monthly == nil && opts.Blocked == nil && opts.SampleBP == nil && opts.Cache == nil && len(opts.Routes) == 0 &&
				opts.SemanticCache == nil && opts.Similarity == nil && opts.CacheTTL == nil && opts.MinPrecision == nil {
				return usageErrorf("nothing to change for %s: give --daily-budget, --monthly-budget, --block, --unblock, --sample, --cache, --semantic-cache, --similarity, --cache-ttl, --min-precision or --route", opts.Tenant)
			}
			return run(c)
		},
	}
	sf := set.Flags()
	sf.StringVar(&opts.Tenant, "tenant", "", "the tenant whose policy changes (required)")
	sf.StringVar(&daily, "daily-budget", "", "hard budget per UTC day in USD (0 or none: no budget)")
	sf.StringVar(&monthly, "monthly-budget", "", "hard budget per UTC month in USD (0 or none: no budget)")
	sf.BoolVar(&block, "block", false, "refuse every call of the tenant")
	sf.BoolVar(&unblock, "unblock", false, "serve the tenant again")
	sf.StringVar(&sample, "sample", "", "share of requests sampled for eval: 1% or 1 (0: off; finest 0.01%)")
	sf.StringVar(&cacheFlag, "cache", "", "exact response cache: on or off")
	sf.StringVar(&semFlag, "semantic-cache", "", "semantic cache: on or off")
	sf.StringVar(&simFlag, "similarity", "", "semantic cache: least similarity of a hit, 0.80 to 1 (default 0.95)")
	sf.StringVar(&ttlFlag, "cache-ttl", "", "semantic cache: how long an entry is served (default 24h)")
	sf.StringVar(&precFlag, "min-precision", "", "semantic cache: measured precision below which it switches off, (0, 1] (default 0.98)")
	sf.StringArrayVar(&routes, "route", nil, "serve model FROM with model TO (FROM=TO; FROM= removes it); repeatable")
	sf.StringVar(&opts.Reason, "reason", "", "why, for the audit log (required)")
	sf.StringVar(&setFormat, "format", "text", "output: text or json (the policy after the change)")

	list := &cobra.Command{
		Use:   "list",
		Short: "Show every tenant's policy and its last change",
		Long: `Show every tenant that has a policy: budgets (- for none), blocked, sample
share, cache, routes, and the last change (when, who, why). When a tenant
has had the semantic cache on, a SEMANTIC column shows it: on with its
similarity, TTL and minimum precision, or off and why the proxy switched it
off.` + exitStatusSection,
		Example: `  costctl policy list
  costctl policy list --format json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			opts.Action, opts.Format = "list", listFormat
			if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
				return usageError(err)
			}
			return run(c)
		},
	}
	list.Flags().StringVar(&listFormat, "format", render.FormatTable, "output: table or json")

	logCmd := &cobra.Command{
		Use:   "log [--tenant T]",
		Short: "Show the audit log of policy changes",
		Long: `Show every policy change, oldest first: when (UTC), the tenant, what changed,
who ($USER of the command) and the reason given.` + exitStatusSection,
		Example: `  costctl policy log
  costctl policy log --tenant acme --format json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			opts.Action, opts.Format = "log", logFormat
			if err := render.CheckFormat(opts.Format, render.FormatTable, render.FormatJSON); err != nil {
				return usageError(err)
			}
			return run(c)
		},
	}
	logCmd.Flags().StringVar(&opts.Tenant, "tenant", "", "only this tenant's changes")
	logCmd.Flags().StringVar(&logFormat, "format", render.FormatTable, "output: table or json")

	cmd.AddCommand(set, list, logCmd)
	return cmd
}

var (
	budgetRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\$?[0-9][0-9,_]*(\.[0-9]+)?$`) })
	sampleRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`) })
)

// parseBudget reads a budget in dollars, exactly; 0 or none is no budget.
func parseBudget(flag, s string) (pricing.Money, error) {
	t := strings.TrimSpace(s)
	if t == "none" {
		return 0, nil
	}
	if !budgetRE().MatchString(t) {
		return 0, usageErrorf("invalid %s %q: a dollar amount like 50 or 12.50 (0 or none: no budget)", flag, s)
	}
	m, err := pricing.ParseMoney(t)
	if err != nil {
		return 0, usageErrorf("invalid %s: %v", flag, err)
	}
	return m, nil
}

// parseSample reads a share in percent ("1%", "1", "0.05%") as basis points.
func parseSample(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "%")
	if !sampleRE().MatchString(t) {
		return 0, usageErrorf("invalid --sample %q: a share in percent, like 1%% or 0.5 (0: off)", s)
	}
	r, _ := new(big.Rat).SetString(t)
	r.Mul(r, big.NewRat(100, 1))
	switch {
	case !r.IsInt():
		return 0, usageErrorf("invalid --sample %q: the finest share is 0.01%%", s)
	case r.Cmp(big.NewRat(ledger.MaxSampleBP, 1)) > 0:
		return 0, usageErrorf("invalid --sample %q: a share is 0 to 100%%", s)
	}
	return r.Num().Int64(), nil
}

// parseShareBP reads a share written as a fraction of 1 ("0.98", "1") as
// basis points, exactly.
func parseShareBP(flag, s string) (int64, error) {
	t := strings.TrimSpace(s)
	if !sampleRE().MatchString(t) {
		return 0, usageErrorf("invalid %s %q: a number from 0 to 1, like 0.98", flag, s)
	}
	r, _ := new(big.Rat).SetString(t)
	r.Mul(r, big.NewRat(10_000, 1))
	switch {
	case r.Cmp(big.NewRat(10_000, 1)) > 0:
		return 0, usageErrorf("invalid %s %q: at most 1", flag, s)
	case !r.IsInt():
		return 0, usageErrorf("invalid %s %q: the finest step is 0.0001", flag, s)
	}
	return r.Num().Int64(), nil
}

// parseSimilarity reads --similarity as basis points, 0.80 to 1.
func parseSimilarity(s string) (int64, error) {
	bp, err := parseShareBP("--similarity", s)
	if err != nil {
		return 0, err
	}
	if bp < ledger.MinSimilarityBP {
		return 0, usageErrorf("invalid --similarity %s: at least 0.80; lower thresholds serve wrong answers (GPTCache's 0.8 default matches a question with its reversal and 2+2 with 2+3)", strings.TrimSpace(s))
	}
	return bp, nil
}

// formatShare writes basis points as a fraction of 1: 9500 → "0.95",
// 10000 → "1".
func formatShare(bp int64) string {
	s := fmt.Sprintf("%d", bp/10_000)
	if f := bp % 10_000; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%04d", f), "0")
	}
	return s
}

// formatSample writes basis points as a percentage: 100 → "1%", 5 → "0.05%".
func formatSample(bp int64) string {
	s := fmt.Sprintf("%d", bp/100)
	if f := bp % 100; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%02d", f), "0")
	}
	return s + "%"
}

func budgetWhat(name string, m pricing.Money) string {
	if m == 0 {
		return name + " none"
	}
	return name + " " + m.String()
}

// who is the person making a change: $USER (else $LOGNAME).
func (opts *PolicyOptions) who() string {
	for _, k := range []string{"USER", "LOGNAME"} {
		if v := strings.TrimSpace(opts.Getenv(k)); v != "" {
			return v
		}
	}
	return "unknown"
}

func runPolicy(ctx context.Context, opts *PolicyOptions) error {
	switch opts.Action {
	case "set":
		return policySet(ctx, opts)
	case "log":
		return policyLog(ctx, opts)
	default:
		return policyList(ctx, opts)
	}
}

// edit applies opts to p and says what it did, in the order of the flags'
// help.
func (opts *PolicyOptions) edit(p *ledger.Policy) []string {
	var what []string
	if opts.Daily != nil {
		p.DailyBudget = *opts.Daily
		what = append(what, budgetWhat("daily-budget", p.DailyBudget))
	}
	if opts.Monthly != nil {
		p.MonthlyBudget = *opts.Monthly
		what = append(what, budgetWhat("monthly-budget", p.MonthlyBudget))
	}
	if opts.Blocked != nil {
		p.Blocked = *opts.Blocked
		what = append(what, map[bool]string{true: "block", false: "unblock"}[p.Blocked])
	}
	if opts.SampleBP != nil {
		p.SampleBP = *opts.SampleBP
		what = append(what, "sample "+formatSample(p.SampleBP))
	}
	if opts.Cache != nil {
		p.Cache = *opts.Cache
		what = append(what, "cache "+map[bool]string{true: "on", false: "off"}[p.Cache])
	}
	if opts.SemanticCache != nil {
		p.SemanticCache = *opts.SemanticCache
		p.SemanticOff = "" // switched by hand: no automatic reason stands
		what = append(what, "semantic-cache "+map[bool]string{true: "on", false: "off"}[p.SemanticCache])
	}
	if opts.Similarity != nil {
		p.Similarity = *opts.Similarity
		what = append(what, "similarity "+formatShare(p.Similarity))
	}
	if opts.CacheTTL != nil {
		p.SemanticTTL = *opts.CacheTTL
		what = append(what, "cache-ttl "+p.SemanticTTL.String())
	}
	if opts.MinPrecision != nil {
		p.MinPrecision = *opts.MinPrecision
		what = append(what, "min-precision "+formatShare(p.MinPrecision))
	}
	for _, r := range opts.Routes {
		if r.To == "" {
			delete(p.Routes, r.From)
			what = append(what, "route "+r.From+" removed")
			continue
		}
		if p.Routes == nil {
			p.Routes = map[string]string{}
		}
		p.Routes[r.From] = r.To
		what = append(what, "route "+r.From+"="+r.To)
	}
	return what
}

func policySet(ctx context.Context, opts *PolicyOptions) error {
	// A route must lead to a model the proxy can price, or a budget could
	// not bound its calls.
	var table *pricing.Table
	for _, r := range opts.Routes {
		if r.To == "" {
			continue
		}
		if table == nil {
			t, err := opts.Pricing()
			if err != nil {
				return err
			}
			table = t
		}
		if _, err := table.Lookup(r.To); err != nil {
			return usageErrorf("invalid --route %s=%s: a route must lead to a priced model: %v", r.From, r.To, err)
		}
	}
	db, err := opts.Ledger(ctx)
	if err != nil {
		return err
	}
	defer db.Close() // every write went through a transaction whose Commit was checked; Close only releases connections
	change := ledger.PolicyChange{At: opts.Now().UTC().Truncate(time.Millisecond), Tenant: opts.Tenant, Reason: opts.Reason, Who: opts.who()}
	p, err := db.UpdatePolicy(ctx, opts.Tenant, func(p *ledger.Policy) (ledger.PolicyChange, error) {
		change.What = strings.Join(opts.edit(p), ", ")
		return change, nil
	})
	if err != nil {
		return err
	}
	if opts.Format == render.FormatJSON {
		return writeJSON(opts.IO.Out, struct {
			Version int        `json:"version"`
			Policy  policyJSON `json:"policy"`
		}{1, toPolicyJSON(p, &change)})
	}
	_, err = fmt.Fprintf(opts.IO.Out, "%s: %s (by %s at %s: %s)\n", p.Tenant, change.What, change.Who, change.At.Format(time.RFC3339), change.Reason)
	return err
}

type changeJSON struct {
	At     string `json:"at"`
	Tenant string `json:"tenant,omitempty"`
	What   string `json:"what"`
	Reason string `json:"reason"`
	Who    string `json:"who"`
}

type policyJSON struct {
	Tenant   string            `json:"tenant"`
	Daily    *pricing.Money    `json:"daily_budget_usd"`   // null: none
	Monthly  *pricing.Money    `json:"monthly_budget_usd"` // null: none
	Blocked  bool              `json:"blocked"`
	SampleBP int64             `json:"sample_bp"`
	Sample   string            `json:"sample"`
	Cache    bool              `json:"cache"`
	Routes   map[string]string `json:"routes"`
	// The semantic cache: settings 0 / "" until it was first turned on.
	SemanticCache  bool        `json:"semantic_cache"`
	SimilarityBP   int64       `json:"similarity_bp"`
	CacheTTL       string      `json:"cache_ttl"`
	MinPrecisionBP int64       `json:"min_precision_bp"`
	SemanticOff    string      `json:"semantic_off"` // why the proxy switched it off ("" when it did not)
	Updated        string      `json:"updated"`
	LastChange     *changeJSON `json:"last_change"`
}

func toPolicyJSON(p ledger.Policy, last *ledger.PolicyChange) policyJSON {
	j := policyJSON{Tenant: p.Tenant, Blocked: p.Blocked, SampleBP: p.SampleBP, Sample: formatSample(p.SampleBP), Cache: p.Cache,
		Routes: p.Routes, Updated: p.UpdatedAt.UTC().Format(time.RFC3339),
		SemanticCache: p.SemanticCache, SimilarityBP: p.Similarity, MinPrecisionBP: p.MinPrecision, SemanticOff: p.SemanticOff}
	if p.SemanticTTL != 0 {
		j.CacheTTL = p.SemanticTTL.String()
	}
	if p.DailyBudget != 0 {
		j.Daily = &p.DailyBudget
	}
	if p.MonthlyBudget != 0 {
		j.Monthly = &p.MonthlyBudget
	}
	if j.Routes == nil {
		j.Routes = map[string]string{}
	}
	if last != nil {
		j.LastChange = &changeJSON{At: last.At.UTC().Format(time.RFC3339), What: last.What, Reason: last.Reason, Who: last.Who}
	}
	return j
}

// readControl opens the ledger to read and runs fn on it (nothing when
// there is no ledger yet).
func readControl(ctx context.Context, open func(context.Context) (*ledger.DB, error), fn func(*ledger.DB) error) error {
	db, err := open(ctx)
	if err != nil || db == nil {
		return err
	}
	defer db.Close() // only read from (or written through a checked Commit); Close only releases connections
	return fn(db)
}

func budgetCell(m pricing.Money) string {
	if m == 0 {
		return "-"
	}
	return m.Display()
}

func routesCell(routes map[string]string) string {
	froms := make([]string, 0, len(routes))
	for f := range routes {
		froms = append(froms, f)
	}
	sort.Strings(froms)
	for i, f := range froms {
		froms[i] = f + "=" + routes[f]
	}
	return dash(strings.Join(froms, ","))
}

func policyList(ctx context.Context, opts *PolicyOptions) error {
	var policies map[string]ledger.Policy
	last := map[string]*ledger.PolicyChange{}
	err := readControl(ctx, opts.ReadLedger, func(db *ledger.DB) error {
		var err error
		if policies, err = db.Policies(ctx); err != nil {
			return err
		}
		changes, err := db.PolicyChanges(ctx, "")
		for i := range changes {
			last[changes[i].Tenant] = &changes[i]
		}
		return err
	})
	if err != nil {
		return err
	}
	tenants := make([]string, 0, len(policies))
	for t := range policies {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	if opts.Format == render.FormatJSON {
		rows := make([]policyJSON, len(tenants))
		for i, t := range tenants {
			rows[i] = toPolicyJSON(policies[t], last[t])
		}
		return writeJSON(opts.IO.Out, struct {
			Version  int          `json:"version"`
			Policies []policyJSON `json:"policies"`
		}{1, rows})
	}
	if len(tenants) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "no policies yet: costctl policy set --tenant T ... --reason TEXT sets one")
		return nil
	}
	t := &render.Table{
		Headers: []string{"TENANT", "DAILY", "MONTHLY", "BLOCKED", "SAMPLE", "CACHE", "ROUTES", "CHANGED", "BY", "REASON"},
		Align:   []render.Align{render.Left, render.Right, render.Right},
	}
	// The SEMANTIC column only once some tenant has used the semantic
	// cache: a fleet without it reads as before.
	semantic := false
	for _, p := range policies {
		semantic = semantic || p.SemanticCache || p.SemanticOff != "" || p.Similarity != 0
	}
	if semantic {
		t.Headers = slices.Insert(t.Headers, 6, "SEMANTIC")
	}
	for _, tn := range tenants {
		p := policies[tn]
		changed, by, reason := p.UpdatedAt.UTC().Format(time.RFC3339), "-", "-"
		if c := last[tn]; c != nil {
			changed, by, reason = c.At.UTC().Format(time.RFC3339), dash(c.Who), c.Reason
		}
		sample := "-"
		if p.SampleBP != 0 {
			sample = formatSample(p.SampleBP)
		}
		cells := []string{tn, budgetCell(p.DailyBudget), budgetCell(p.MonthlyBudget), map[bool]string{true: "yes", false: "no"}[p.Blocked],
			sample, map[bool]string{true: "on", false: "off"}[p.Cache], routesCell(p.Routes), changed, by, reason}
		if semantic {
			cells = slices.Insert(cells, 6, semanticCell(p))
		}
		t.AddRow(cells...)
	}
	return t.WriteText(opts.IO.Out)
}

// semanticCell is a policy's semantic cache in a word or a few: "on
// 0.95 24h0m0s ≥0.98", "off", or "off: why" when the proxy switched it off.
func semanticCell(p ledger.Policy) string {
	switch {
	case p.SemanticCache:
		return fmt.Sprintf("on %s %s ≥%s", formatShare(p.Similarity), p.SemanticTTL, formatShare(p.MinPrecision))
	case p.SemanticOff != "":
		return "off: " + p.SemanticOff
	}
	return "off"
}

func policyLog(ctx context.Context, opts *PolicyOptions) error {
	var changes []ledger.PolicyChange
	err := readControl(ctx, opts.ReadLedger, func(db *ledger.DB) error {
		var err error
		changes, err = db.PolicyChanges(ctx, opts.Tenant)
		return err
	})
	if err != nil {
		return err
	}
	if opts.Format == render.FormatJSON {
		rows := make([]changeJSON, len(changes))
		for i, c := range changes {
			rows[i] = changeJSON{At: c.At.UTC().Format(time.RFC3339), Tenant: c.Tenant, What: c.What, Reason: c.Reason, Who: c.Who}
		}
		return writeJSON(opts.IO.Out, struct {
			Version int          `json:"version"`
			Changes []changeJSON `json:"changes"`
		}{1, rows})
	}
	if len(changes) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "no policy changes yet")
		return nil
	}
	t := &render.Table{Headers: []string{"AT", "TENANT", "WHAT", "WHO", "REASON"}}
	for _, c := range changes {
		t.AddRow(c.At.UTC().Format(time.RFC3339), c.Tenant, c.What, dash(c.Who), c.Reason)
	}
	return t.WriteText(opts.IO.Out)
}
