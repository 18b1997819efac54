package commands

import (
	"fmt"
	"io"
	"math/big"

	"github.com/costctl/costctl/render"
)

// writeEstimateCSV writes the view as CSV: every amount to the nano-dollar,
// every lever exactly, the prices' date on each row.
func writeEstimateCSV(w io.Writer, v *estimateView) error {
	if c := v.Compare; c != nil {
		t := &render.Table{Headers: append(append([]string{"scenario"}, c.Keys...), "cost_per_request_usd", "daily_usd", "monthly_usd", "savings_usd", "savings_pct", "cheapest", "prices_as_of")}
		for _, r := range c.Rows {
			row := append([]string{r.Name}, r.Exact...)
			row = append(row, r.PerRequest.String(), r.Daily.String(), r.Monthly.String(), r.Savings.String(), pctPlain(r.SavingsPct), fmt.Sprint(r.Cheapest), v.AsOf)
			t.AddRow(row...)
		}
		return t.WriteCSV(w)
	}
	wf := v.Waterfall
	t := &render.Table{Headers: []string{"step", "detail", "cost_per_request_usd", "daily_usd", "monthly_usd", "savings_usd", "savings_pct", "prices_as_of"}}
	for _, r := range wf.Steps {
		t.AddRow(r.Name, r.Detail, r.PerRequest.String(), r.Daily.String(), r.Monthly.String(), r.Savings.String(), pctPlain(r.SavingsPct), v.AsOf)
	}
	total := wf.Total
	t.AddRow("total", "", total.PerRequest.String(), total.Daily.String(), total.Monthly.String(), total.Savings.String(), pctPlain(total.SavingsPct), v.AsOf)
	return t.WriteCSV(w)
}

func pctPlain(r *big.Rat) string { return r.FloatString(2) }
