package commands

import (
	"encoding/json"
	"io"
	"math/big"

	"github.com/costctl/costctl/estimator"
	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
)

// writeEstimateJSON writes the view as one JSON document ("version": 1,
// money as decimal strings to the nano-dollar): the waterfall's steps and
// total, or a comparison's scenarios.
func writeEstimateJSON(w io.Writer, v *estimateView) error {
	if c := v.Compare; c != nil {
		doc := compareJSON{Version: 1, Inputs: v.Inputs, PricesAsOf: v.AsOf, PriceOverrides: v.Overrides, Baseline: c.Baseline, Warnings: v.Warnings}
		for _, r := range c.Rows {
			doc.Scenarios = append(doc.Scenarios, scenarioJSON{Name: r.Name, Params: r.Params, Total: toAmountsJSON(r.Amounts), Cheapest: r.Cheapest})
		}
		return render.JSON(w, doc)
	}
	wf := v.Waterfall
	doc := estimateJSON{Version: 1, Inputs: v.Inputs, PricesAsOf: v.AsOf, PriceOverrides: v.Overrides, Notes: v.Notes, Warnings: v.Warnings}
	for _, r := range wf.Steps {
		doc.Steps = append(doc.Steps, stepJSON{Name: r.Name, Detail: r.Detail, amountsJSON: toAmountsJSON(r.Amounts)})
	}
	doc.Total = totalJSON{CostPerRequest: wf.Total.PerRequest, Daily: wf.Total.Daily, Monthly: wf.Total.Monthly, SavingsPct: pctJSON(wf.Total.SavingsPct)}
	return render.JSON(w, doc)
}

func pctJSON(r *big.Rat) json.Number {
	return json.Number(r.FloatString(2))
}

type estimateJSON struct {
	Version        int            `json:"version"`
	Inputs         estimateInputs `json:"inputs"`
	PricesAsOf     string         `json:"prices_as_of"`
	PriceOverrides []string       `json:"price_overrides,omitempty"`
	Steps          []stepJSON     `json:"steps"`
	Total          totalJSON      `json:"total"`
	Notes          []string       `json:"notes,omitempty"`
	Warnings       []string       `json:"warnings,omitempty"`
}

type estimateInputs struct {
	Model            string            `json:"model"`
	RequestsPerMonth int64             `json:"requests_per_month"`
	RequestsPerDay   json.Number       `json:"requests_per_day"`
	DaysPerMonth     int64             `json:"days_per_month"`
	InputTokens      json.Number       `json:"input_tokens"`
	OutputTokens     json.Number       `json:"output_tokens"`
	Prices           pricesJSON        `json:"prices"`
	Levers           map[string]string `json:"levers"`
	From             *fromJSON         `json:"from,omitempty"`
}

type pricesJSON struct {
	Input       string `json:"input_per_1m_usd"`
	CachedInput string `json:"cached_input_per_1m_usd,omitempty"`
	Output      string `json:"output_per_1m_usd"`
	BatchInput  string `json:"batch_input_per_1m_usd"`
	BatchOutput string `json:"batch_output_per_1m_usd"`
	Source      string `json:"source"` // "table" or "override"
}

type fromJSON struct {
	File         string `json:"file"`
	Records      int64  `json:"records"`
	Skipped      int64  `json:"skipped"`
	InputTokens  int64  `json:"input_tokens_total"`
	OutputTokens int64  `json:"output_tokens_total"`
	Encoding     string `json:"encoding"`
	Exact        bool   `json:"exact_tokenizer"`
}

type amountsJSON struct {
	CostPerRequest pricing.Money `json:"cost_per_request_usd"`
	Daily          pricing.Money `json:"daily_usd"`
	Monthly        pricing.Money `json:"monthly_usd"`
	Savings        pricing.Money `json:"savings_usd"`
	SavingsPct     json.Number   `json:"savings_pct"`
}

func toAmountsJSON(a estimator.Amounts) amountsJSON {
	return amountsJSON{CostPerRequest: a.PerRequest, Daily: a.Daily, Monthly: a.Monthly, Savings: a.Savings, SavingsPct: pctJSON(a.SavingsPct)}
}

type stepJSON struct {
	Name   string `json:"name"`
	Detail string `json:"detail"`
	amountsJSON
}

type totalJSON struct {
	CostPerRequest pricing.Money `json:"cost_per_request_usd"`
	Daily          pricing.Money `json:"daily_usd"`
	Monthly        pricing.Money `json:"monthly_usd"`
	SavingsPct     json.Number   `json:"savings_pct"`
}

// inputsJSON describes the run's inputs with levers l (the flags' levers
// for a comparison) and the baseline model's effective prices.
func inputsJSON(run *estimateRun, l estimator.Levers) estimateInputs {
	in := run.est.Inputs()
	model, _ := run.table.Lookup(in.Model)
	if l.Model != "" {
		model, _ = run.table.Lookup(l.Model)
	}
	pr := run.est.PricesFor(model)
	pj := pricesJSON{
		Input: estimator.Per1M(pr.Input), Output: estimator.Per1M(pr.Output),
		BatchInput: estimator.Per1M(pr.BatchInput), BatchOutput: estimator.Per1M(pr.BatchOut), Source: "table",
	}
	if pr.CachedKnown {
		pj.CachedInput = estimator.Per1M(pr.CachedInput)
	}
	if pr.Overridden {
		pj.Source = "override"
	}
	levers := estimator.LeverParams(l, in.Model)
	delete(levers, estimator.KeyModel)
	ij := estimateInputs{
		Model:            model.Name,
		RequestsPerMonth: in.RequestsPerMonth,
		RequestsPerDay:   json.Number(estimator.DecimalString(new(big.Rat).SetFrac64(in.RequestsPerMonth, in.Days), 6)),
		DaysPerMonth:     in.Days,
		InputTokens:      json.Number(estimator.DecimalString(in.InputTokens, 6)),
		OutputTokens:     json.Number(estimator.DecimalString(in.OutputTokens, 6)),
		Prices:           pj,
		Levers:           levers,
	}
	if fs := run.sample; fs != nil {
		ij.From = &fromJSON{File: fs.File, Records: fs.Records, Skipped: fs.Skipped, InputTokens: fs.InputTokens, OutputTokens: fs.OutputTokens, Encoding: fs.Encoding, Exact: fs.Exact}
	}
	return ij
}

type compareJSON struct {
	Version        int            `json:"version"`
	Inputs         estimateInputs `json:"inputs"`
	PricesAsOf     string         `json:"prices_as_of"`
	PriceOverrides []string       `json:"price_overrides,omitempty"`
	Baseline       string         `json:"baseline"`
	Scenarios      []scenarioJSON `json:"scenarios"`
	Warnings       []string       `json:"warnings,omitempty"`
}

type scenarioJSON struct {
	Name     string            `json:"name"`
	Params   map[string]string `json:"params"`
	Total    amountsJSON       `json:"total"`
	Cheapest bool              `json:"cheapest"`
}
