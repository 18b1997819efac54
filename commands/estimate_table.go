package commands

import (
	"fmt"
	"io"
	"math/big"
	"strings"

	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/render"
)

// writeEstimateTable writes the view as a text table for a terminal: the
// summary line, (for a comparison) what is fixed and what savings are
// against, the table and the prices' date.
func writeEstimateTable(w io.Writer, v *estimateView) error {
	fmt.Fprintln(w, v.Summary)
	var t *render.Table
	if c := v.Compare; c != nil {
		if c.Fixed != "" {
			fmt.Fprintf(w, "fixed levers: %s\n", c.Fixed)
		}
		fmt.Fprintf(w, "savings against %s\n\n", c.Baseline)
		t = compareTable(c, "cheapest")
	} else {
		fmt.Fprintln(w)
		t = waterfallTable(v.Waterfall)
	}
	if err := t.WriteText(w); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, v.AsOfLabel)
	return err
}

// waterfallTable is the waterfall's rows and total for a person (text and
// markdown): per request to the nano-dollar, daily and monthly to the cent.
func waterfallTable(wf *waterfallRows) *render.Table {
	t := &render.Table{
		Headers: []string{"STEP", "LEVER", "PER REQUEST", "PER DAY", "PER MONTH", "SAVING", "SAVING %"},
		Align:   []render.Align{render.Left, render.Left, render.Right, render.Right, render.Right, render.Right, render.Right},
	}
	for _, r := range wf.Steps {
		t.AddRow(r.Name, r.Detail, r.PerRequest.Display(), r.Daily.DisplayRounded(2), r.Monthly.DisplayRounded(2), signedDollars(r.Savings), pctDisplay(r.SavingsPct))
	}
	total := wf.Total
	t.Footer = []string{"total", "", total.PerRequest.Display(), total.Daily.DisplayRounded(2), total.Monthly.DisplayRounded(2), signedDollars(total.Savings), pctDisplay(total.SavingsPct)}
	return t
}

// compareTable is a comparison's rows for a person (text and markdown);
// the cheapest row is marked with mark.
func compareTable(c *compareRows, mark string) *render.Table {
	headers := []string{"#"}
	align := []render.Align{render.Right}
	if c.FromFile {
		headers = append(headers, "SCENARIO")
		align = append(align, render.Left)
	}
	for _, k := range c.Keys {
		headers = append(headers, strings.ToUpper(k))
		align = append(align, render.Left)
	}
	headers = append(headers, "PER REQUEST", "PER DAY", "PER MONTH", "SAVING", "SAVING %", "")
	align = append(align, render.Right, render.Right, render.Right, render.Right, render.Right, render.Left)
	t := &render.Table{Headers: headers, Align: align}
	for i, r := range c.Rows {
		row := []string{fmt.Sprint(i + 1)}
		if c.FromFile {
			row = append(row, r.Label)
		}
		row = append(row, r.Human...)
		m := ""
		if r.Cheapest {
			m = mark
		}
		row = append(row, r.PerRequest.Display(), r.Daily.DisplayRounded(2), r.Monthly.DisplayRounded(2), signedDollars(r.Savings), pctDisplay(r.SavingsPct), m)
		t.AddRow(row...)
	}
	return t
}

func signedDollars(m pricing.Money) string {
	if m < 0 {
		return "-" + (-m).DisplayRounded(2)
	}
	return m.DisplayRounded(2)
}

func pctDisplay(r *big.Rat) string { return r.FloatString(1) + "%" }
