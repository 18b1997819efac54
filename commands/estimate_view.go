package commands

import (
	"fmt"
	"math/big"
	"os"
	"strings"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
)

// estimateView is what `costctl estimate` prints, computed once and
// rendered by one file per --format (estimate_table.go,
// estimate_markdown.go, estimate_json.go, estimate_csv.go). Exactly one of
// Waterfall and Compare is set.
type estimateView struct {
	AsOf      string   // the price table's date
	AsOfLabel string   // "prices as of DATE"
	Overrides []string // price files merged over the table
	Summary   string   // volume and tokens in one line (summaryLine)
	Inputs    estimateInputs

	Waterfall *waterfallRows
	Compare   *compareRows

	Notes    []string // assumptions worth telling the user (stderr)
	Warnings []string // where the traffic does not fit a model (stderr)
	Gate     string   // why --max-monthly fails; "" when it passes
}

// waterfallRows are one projection's steps and total.
type waterfallRows struct {
	Steps []stepRow
	Total estimator.Amounts
}

type stepRow struct {
	Name, Detail string
	estimator.Amounts
}

// compareRows are a sweep's or scenario file's totals.
type compareRows struct {
	FromFile bool     // scenarios from --scenarios (named, with a SCENARIO column)
	Keys     []string // the lever columns
	Fixed    string   // the flag levers a sweep does not vary, in words
	Baseline string   // what savings are against
	Rows     []compareRow
}

type compareRow struct {
	Name         string            // the scenario's name; "flags" for an unnamed one
	Label        string            // the scenario's own name ("" for a sweep row)
	Params       map[string]string // every lever set, exactly
	Exact, Human []string          // the values of Keys, exactly and for a person
	Cheapest     bool
	estimator.Amounts
}

// newEstimateView fills what every view shares.
func newEstimateView(run *estimateRun, model *pricing.Model) *estimateView {
	return &estimateView{
		AsOf:      run.table.AsOf,
		AsOfLabel: run.table.AsOfLabel(),
		Overrides: run.table.Overrides,
		Summary:   summaryLine(run, model),
		Inputs:    inputsJSON(run, run.levers),
	}
}

// waterfallView projects the flags' levers as a waterfall.
func waterfallView(run *estimateRun) (*estimateView, error) {
	p, err := run.est.Project(run.levers)
	if err != nil {
		return nil, usageError(err)
	}
	wf := &waterfallRows{Steps: make([]stepRow, 0, len(p.Steps))}
	for _, s := range p.Steps {
		a, err := s.Amounts()
		if err != nil {
			return nil, usageError(err)
		}
		wf.Steps = append(wf.Steps, stepRow{Name: s.Name, Detail: s.Detail, Amounts: a})
	}
	if wf.Total, err = p.Total.Amounts(); err != nil {
		return nil, usageError(err)
	}
	v := newEstimateView(run, p.Model)
	v.Waterfall, v.Notes, v.Warnings = wf, p.Notes, p.Warnings
	if run.maxMonth != nil && p.Total.Monthly.Cmp(run.maxMonth.Rat()) > 0 {
		v.Gate = fmt.Sprintf("projected monthly total %s is above --max-monthly %s (%s)", wf.Total.Monthly.DisplayRounded(2), run.maxMonth.Display(), v.AsOfLabel)
	}
	return v, nil
}

// compareView computes a sweep's (or a scenario file's) totals.
func compareView(o *EstimateOptions, run *estimateRun) (*estimateView, error) {
	var scenarios []estimator.Scenario
	var baseline *big.Rat
	var baselineLabel string
	if o.Scenarios != "" {
		f, err := os.Open(o.Scenarios)
		if err != nil {
			return nil, &ExitErr{Code: ExitError, Err: fmt.Errorf("--scenarios %s: %s", o.Scenarios, describeFSError(err))}
		}
		scenarios, err = estimator.ParseScenarios(f, o.Scenarios, run.levers)
		f.Close() // only read: a close error cannot lose data
		if err != nil {
			return nil, usageError(err)
		}
		baselineLabel = "scenario " + scenarios[0].Name
	} else {
		var err error
		scenarios, err = estimator.SweepScenarios(run.levers, run.axes)
		if err != nil {
			return nil, usageError(err)
		}
		b, err := run.est.Baseline()
		if err != nil {
			return nil, usageError(err)
		}
		baseline = b.Monthly
		bm, err := pricing.MoneyFromRat(b.Monthly)
		if err != nil {
			return nil, usageError(err)
		}
		baselineLabel = fmt.Sprintf("%s with no levers (%s/month)", run.est.Inputs().Model, bm.DisplayRounded(2))
	}
	cmp, err := run.est.Compare(scenarios, baseline)
	if err != nil {
		return nil, usageError(err)
	}
	// Sweep columns follow the --sweep flags' order (the first varies
	// slowest); scenario columns are every key some scenario sets, in
	// waterfall order.
	var keys []string
	if o.Scenarios == "" {
		for _, ax := range run.axes {
			keys = append(keys, ax.Key)
		}
	} else {
		used := map[string]bool{}
		for _, c := range cmp {
			for _, k := range c.Set {
				used[k] = true
			}
		}
		for _, k := range estimator.LeverKeys() {
			if used[k] {
				keys = append(keys, k)
			}
		}
	}
	baseModel := run.est.Inputs().Model
	cr := &compareRows{FromFile: o.Scenarios != "", Keys: keys, Fixed: fixedLevers(run.levers, keys), Baseline: baselineLabel}
	cheapest := 0
	for i, c := range cmp {
		a, err := c.Total.Amounts()
		if err != nil {
			return nil, usageError(err)
		}
		if c.Cheapest {
			cheapest = i
		}
		row := compareRow{Name: scenarioName(c), Label: c.Name, Params: estimator.LeverParams(c.Levers, baseModel), Cheapest: c.Cheapest, Amounts: a}
		for _, k := range keys {
			row.Exact = append(row.Exact, leverText(c.Levers, k, baseModel, false))
			row.Human = append(row.Human, leverText(c.Levers, k, baseModel, true))
		}
		cr.Rows = append(cr.Rows, row)
	}
	baseM, err := run.table.Lookup(baseModel)
	if err != nil {
		return nil, usageError(err)
	}
	v := newEstimateView(run, baseM)
	v.Compare = cr
	// Notes and warnings once each, notes first; a warning that is also a
	// note is said once.
	seen := map[string]bool{}
	for _, c := range cmp {
		for _, n := range c.Notes {
			if !seen[n] {
				seen[n] = true
				v.Notes = append(v.Notes, n)
			}
		}
	}
	for _, c := range cmp {
		for _, n := range c.Warnings {
			if !seen[n] {
				seen[n] = true
				v.Warnings = append(v.Warnings, n)
			}
		}
	}
	best := cr.Rows[cheapest]
	if run.maxMonth != nil && cmp[cheapest].Total.Monthly.Cmp(run.maxMonth.Rat()) > 0 {
		v.Gate = fmt.Sprintf("cheapest of %d scenarios (%s) is %s/month, above --max-monthly %s (%s)",
			len(cmp), best.Name, best.Monthly.DisplayRounded(2), run.maxMonth.Display(), v.AsOfLabel)
	}
	return v, nil
}

// summaryLine describes volume and tokens: "gpt-4o · 10,000,000 requests/month
// (333,333.33/day over 30 days) · 1,000 input + 50 output tokens per request".
func summaryLine(run *estimateRun, model *pricing.Model) string {
	in := run.est.Inputs()
	perDay := new(big.Rat).SetFrac64(in.RequestsPerMonth, in.Days)
	s := fmt.Sprintf("%s · %s requests/month (%s/day over %d days) · %s input + %s output tokens per request",
		model.Name, render.Int(in.RequestsPerMonth), groupDecimal(perDay, 2), in.Days, groupDecimal(in.InputTokens, 2), groupDecimal(in.OutputTokens, 2))
	if fs := run.sample; fs != nil {
		s += fmt.Sprintf(" (measured from %s: %s records, %s", fs.File, render.Int(fs.Records), fs.Encoding)
		if !fs.Exact {
			s += ", approximate tokenizer"
		}
		s += ")"
	}
	return s
}

// groupDecimal writes r with thousands separators and up to places decimals.
func groupDecimal(r *big.Rat, places int) string {
	s := estimator.DecimalString(r, places)
	whole, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(whole, "-")
	whole = strings.TrimPrefix(whole, "-")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if neg {
		out = "-" + out
	}
	if frac != "" {
		out += "." + frac
	}
	return out
}

func scenarioName(c estimator.Compared) string {
	if c.Name == "" {
		return "flags"
	}
	return c.Name
}

// fixedLevers describes the flag levers that the sweep does not vary.
func fixedLevers(l estimator.Levers, swept []string) string {
	skip := map[string]bool{}
	for _, k := range swept {
		skip[k] = true
	}
	var parts []string
	for _, lv := range estimator.LeverList() {
		if !skip[lv.Key] && lv.IsSet(l) {
			parts = append(parts, lv.Key+" "+lv.Text(l, true))
		}
	}
	return strings.Join(parts, ", ")
}

// leverText writes one lever (or the model) of l: percentages for shares
// when human is true, else exact decimals; "none" when unset.
func leverText(l estimator.Levers, key, baseModel string, human bool) string {
	if key == estimator.KeyModel {
		if l.Model != "" {
			return l.Model
		}
		return baseModel
	}
	lv, ok := estimator.LookupLever(key)
	if !ok {
		return ""
	}
	return lv.Text(l, human)
}
