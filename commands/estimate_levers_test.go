package commands

import (
	"bytes"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/costctl/costctl/estimator"
)

// TestEstimateLeverFlagsFollowList checks that adding a lever is one entry
// in estimator.LeverList: the command's flags are its input flags plus
// exactly one flag per lever, with the lever's usage, and each flag's text
// reaches EstimateOptions.Levers.
func TestEstimateLeverFlagsFollowList(t *testing.T) {
	f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, Getenv: func(string) string { return "" }}
	var got *EstimateOptions
	cmd := newEstimateCmd(f, func(o *EstimateOptions) error { got = o; return nil })
	inputs := []string{"requests", "per-day", "days", "input-tokens", "output-tokens", "from", "map", "model",
		"input-price", "output-price", "cached-price", "sweep", "scenarios", "format", "max-monthly"}
	var levers []string
	args := []string{"--requests", "1"}
	for _, lv := range estimator.LeverList() {
		levers = append(levers, lv.Key)
		args = append(args, "--"+lv.Key, lv.Example)
		fl := cmd.Flags().Lookup(lv.Key)
		if fl == nil {
			t.Errorf("no --%s flag", lv.Key)
			continue
		}
		if fl.Usage != lv.Usage || fl.DefValue != "" {
			t.Errorf("--%s: usage %q, default %q; want %q and none", lv.Key, fl.Usage, fl.DefValue, lv.Usage)
		}
	}
	var flags []string
	cmd.Flags().VisitAll(func(fl *pflag.Flag) {
		if !slices.Contains(inputs, fl.Name) && fl.Name != "help" {
			flags = append(flags, fl.Name)
		}
	})
	want := append([]string(nil), levers...)
	sort.Strings(want)
	sort.Strings(flags)
	if !slices.Equal(flags, want) {
		t.Errorf("lever flags %v, want the list's %v", flags, want)
	}
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, lv := range estimator.LeverList() {
		if got.Levers[lv.Key] != lv.Example {
			t.Errorf("Levers[%s] = %q, want %q", lv.Key, got.Levers[lv.Key], lv.Example)
		}
	}
}

// TestEstimateEachLeverEndToEnd sets each lever by its flag and checks
// its waterfall row in every format, its help, and that --sweep and the
// comparison columns take its key.
func TestEstimateEachLeverEndToEnd(t *testing.T) {
	help, _, _ := estimateRunIn(t, "estimate", "--help")
	_, comparing, _ := strings.Cut(help, "COMPARING")
	base := []string{"estimate", "--requests", "10M", "--input-tokens", "5000", "--output-tokens", "50"}
	for _, lv := range estimator.LeverList() {
		t.Run(lv.Key, func(t *testing.T) {
			if !strings.Contains(help, "\n    "+lv.Key+strings.Repeat(" ", 14-len(lv.Key))+strings.Split(lv.Help, "\n")[0]+"\n") {
				t.Errorf("THE WATERFALL lacks %s", lv.Key)
			}
			if !strings.Contains(comparing, " "+lv.Key+",") && !strings.Contains(comparing, " "+lv.Key+")") {
				t.Errorf("COMPARING does not name the key %s", lv.Key)
			}
			if !strings.Contains(help, "--"+lv.Key+" ") {
				t.Errorf("flags lack --%s", lv.Key)
			}
			args := append(append([]string(nil), base...), "--"+lv.Key, lv.Example)
			for format, row := range map[string]string{"csv": "\n" + lv.Key + ",", "json": `"name": "` + lv.Key + `"`, "table": "\n" + lv.Key + " ", "md": "| " + lv.Key + " "} {
				out, errOut, code := estimateRunIn(t, append(args, "--format", format)...)
				if code != 0 {
					t.Fatalf("%s: exit %d, %s", format, code, errOut)
				}
				if !strings.Contains(out, row) {
					t.Errorf("%s: no %s row:\n%s", format, lv.Key, out)
				}
			}
			out, errOut, code := estimateRunIn(t, append(append([]string(nil), base...), "--sweep", lv.Key+"="+lv.Example+lv.SweepSeparator()+"none", "--format", "csv")...)
			if code != 0 || !strings.HasPrefix(out, "scenario,"+lv.Key+",") || strings.Count(out, "\n") != 3 {
				t.Errorf("sweep: exit %d, %s\n%s", code, errOut, out)
			}
		})
	}
}
