package commands

import (
	"fmt"
	"io"
)

// writeEstimateMarkdown writes the view for a pull request: a bold title
// with the summary, (for a comparison) what is fixed and what savings are
// against, the table as markdown and the prices' date in italics.
func writeEstimateMarkdown(w io.Writer, v *estimateView) error {
	fmt.Fprintf(w, "**costctl estimate** — %s\n\n", v.Summary)
	if c := v.Compare; c != nil {
		if c.Fixed != "" {
			fmt.Fprintf(w, "Fixed levers: %s. ", c.Fixed)
		}
		fmt.Fprintf(w, "Savings against %s.\n\n", c.Baseline)
		if err := compareTable(c, "**cheapest**").WriteMarkdown(w); err != nil {
			return err
		}
	} else if err := waterfallTable(v.Waterfall).WriteMarkdown(w); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n_%s_\n", v.AsOfLabel)
	return err
}
