package estimator

import (
	"fmt"
	"strings"
	"testing"

	"github.com/costctl/costctl/pricing"
)

func TestParseSweep(t *testing.T) {
	ax, err := ParseSweep("sample=5%,10%, 20%")
	if err != nil || ax.Key != "sample" || strings.Join(ax.Values, "|") != "5%|10%|20%" {
		t.Errorf("sample sweep = %+v, %v", ax, err)
	}
	ax, err = ParseSweep("cascade=free:0.5,gpt-4o:0.5;gpt-4o-mini:1;none")
	if err != nil || strings.Join(ax.Values, "|") != "free:0.5,gpt-4o:0.5|gpt-4o-mini:1|none" {
		t.Errorf("cascade sweep = %+v, %v", ax, err)
	}
	ax, err = ParseSweep("escalate=gpt-4o-mini:1,gpt-4o:0.2;free:1,gpt-4o:10%;none")
	if err != nil || strings.Join(ax.Values, "|") != "gpt-4o-mini:1,gpt-4o:0.2|free:1,gpt-4o:10%|none" {
		t.Errorf("escalate sweep = %+v, %v", ax, err)
	}
	for in, want := range map[string]string{
		"escalate=gpt-4o:1;gpt-4o:2": `--sweep escalate=gpt-4o:2: escalation stage "gpt-4o": invalid share "2": above 100%`,
		"sample":                     "want KEY=V1,V2",
		"=1":                         "want KEY=V1,V2",
		"colour=red":                 `unknown key "colour"`,
		"sample=10%,,20%":            "empty value",
		"sample=10%,150%":            "--sweep sample=150%: invalid share \"150%\": above 100%",
		"sample=10%,10%":             "given twice",
		"cascade=free:0.5,gpt-4o:1":  "--sweep cascade=free:0.5,gpt-4o:1: cascade shares sum to 1.5",
		"infra=-3":                   "negative",
	} {
		if _, err := ParseSweep(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSweep(%q) err = %v, want %q", in, err, want)
		}
	}
}

func TestSweepCompare(t *testing.T) {
	e, err := New(pricing.MustDefault(), tableInputs())
	if err != nil {
		t.Fatal(err)
	}
	var axes []SweepAxis
	for _, s := range []string{"sample=10%,50%", "model=gpt-4o,gpt-4o-mini"} {
		ax, err := ParseSweep(s)
		if err != nil {
			t.Fatal(err)
		}
		axes = append(axes, ax)
	}
	base := levers(t, "batch", "50%")
	sc, err := SweepScenarios(base, axes)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Baseline()
	if err != nil {
		t.Fatal(err)
	}
	cmp, err := e.Compare(sc, b.Monthly)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cmp {
		a := amounts(t, c.Total)
		got = append(got, fmt.Sprintf("%s|%s|%s|%s|%v|%v", c.Name, a.Monthly, a.Savings, a.SavingsPct.FloatString(2), c.Cheapest, c.Set))
	}
	// gpt-4o: 0.003 list, 0.0015 batch → 0.00225 at 50% batch; gpt-4o-mini:
	// 0.00018 list, 0.00009 batch → 0.000135.
	want := []string{
		"sample=10% model=gpt-4o|2250.00|27750.00|92.50|false|[model sample]",
		"sample=10% model=gpt-4o-mini|135.00|29865.00|99.55|true|[model sample]",
		"sample=50% model=gpt-4o|11250.00|18750.00|62.50|false|[model sample]",
		"sample=50% model=gpt-4o-mini|675.00|29325.00|97.75|false|[model sample]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sweep:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The flag lever stays fixed in every combination.
	for _, c := range cmp {
		if c.Levers.Batch == nil || c.Levers.Batch.RatString() != "1/2" {
			t.Errorf("%s: batch = %v", c.Name, c.Levers.Batch)
		}
	}
	if _, err := SweepScenarios(base, []SweepAxis{axes[0], axes[0]}); err == nil || !strings.Contains(err.Error(), "--sweep sample given twice") {
		t.Errorf("duplicate axis: %v", err)
	}
	big := SweepAxis{Key: "sample"}
	for i := 0; i < 101; i++ {
		big.Values = append(big.Values, fmt.Sprintf("0.%03d", i))
	}
	if _, err := SweepScenarios(Levers{}, []SweepAxis{big, {Key: "batch", Values: big.Values}}); err == nil || !strings.Contains(err.Error(), "more than 10000 combinations") {
		t.Errorf("huge sweep: %v", err)
	}
}

func TestCompareNamesFailingScenario(t *testing.T) {
	e, err := New(pricing.MustDefault(), tableInputs())
	if err != nil {
		t.Fatal(err)
	}
	ax, _ := ParseSweep("model=gpt-4o,gpt-4o-turbo-nope")
	sc, err := SweepScenarios(Levers{}, []SweepAxis{ax})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Compare(sc, nil)
	if err == nil || !strings.HasPrefix(err.Error(), `model=gpt-4o-turbo-nope: unknown model "gpt-4o-turbo-nope"`) {
		t.Errorf("err = %v", err)
	}
}

func TestParseScenarios(t *testing.T) {
	const file = `
scenarios:
  - name: today
  - name: sampled
    sample: 10%
  - name: cascade+cache
    sample: 0.1
    cascade: {free: 0.5, gpt-4o-mini: 0.3, gpt-4o: 0.2}
    cache-hit: 20%
  - name: no-batch
    batch: none
    model: gpt-4o-mini
`
	base := levers(t, "batch", "50%")
	sc, err := ParseScenarios(strings.NewReader(file), "s.yaml", base)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(pricing.MustDefault(), tableInputs())
	if err != nil {
		t.Fatal(err)
	}
	cmp, err := e.Compare(sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cmp {
		a := amounts(t, c.Total)
		got = append(got, fmt.Sprintf("%s|%s|%s|%v|%v", c.Name, a.Monthly, a.Savings, c.Cheapest, c.Set))
	}
	// today: gpt-4o at 50% batch 0.00225 → 22,500. sampled 2,250.
	// cascade+cache: gpt-4o 0.00225, mini 0.000135 → 0.3×0.000135 + 0.2×0.00225
	// = 0.0004905 × 0.1 × 0.8 = 0.00003924 → 392.40. no-batch: mini 0.00018 → 1,800.
	want := []string{
		"today|22500.00|0.00|false|[]",
		"sampled|2250.00|20250.00|false|[sample]",
		"cascade+cache|392.40|22107.60|true|[sample cascade cache-hit]",
		"no-batch|1800.00|20700.00|false|[model batch]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("scenarios:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Escalation in a scenario file: a spec or a map of stage → share.
	// today: gpt-4o at 50% batch 0.00225 → 22,500. Stages at 50% batch:
	// mini 0.000135, gpt-4o 0.00225 → (1 × 0.000135 + 0.2 × 0.00225) × 0.1
	// = 0.0000585 → 585.00; the spec form with free first and gpt-4o at 10%:
	// 0.1 × 0.00225 = 0.000225 → 2,250.00.
	sc, err = ParseScenarios(strings.NewReader("- name: today\n- name: tiered\n  sample: 10%\n  escalate: {gpt-4o-mini: 1, gpt-4o: 20%}\n- name: spec\n  escalate: free:1,gpt-4o:0.1\n"), "x.yaml", base)
	if err != nil {
		t.Fatal(err)
	}
	cmp, err = e.Compare(sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, c := range cmp {
		got = append(got, fmt.Sprintf("%s|%s|%v|%s", c.Name, amounts(t, c.Total).Monthly, c.Set, LeverParams(c.Levers, "gpt-4o")[KeyEscalate]))
	}
	want = []string{"today|22500.00|[]|", "tiered|585.00|[sample escalate]|gpt-4o-mini:1,gpt-4o:0.2", "spec|2250.00|[escalate]|free:1,gpt-4o:0.1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("escalate scenarios:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A bare list works too.
	if sc, err := ParseScenarios(strings.NewReader("- name: a\n  sample: 1\n"), "l.yaml", Levers{}); err != nil || len(sc) != 1 {
		t.Errorf("bare list: %v %v", sc, err)
	}
}

func TestParseScenariosErrors(t *testing.T) {
	tests := map[string]string{
		"- name: a\n  sampel: 10%\n":                        `s.yaml:2: scenario "a", key "sampel": unknown key "sampel" (want one of model, sample, cascade`,
		"- name: a\n- name: b\n  sample: 150%\n":            `s.yaml:3: scenario "b", key "sample": invalid share "150%": above 100%`,
		"- name: a\n  cascade: free:0.5,gpt-4o:0.4\n":       `s.yaml:2: scenario "a", key "cascade": cascade shares sum to 0.9, not 1`,
		"- name: a\n  sample: [1, 2]\n":                     `scenario "a", key "sample": want a single value, not a list`,
		"- name: a\n  sample:\n":                            `scenario "a", key "sample": no value`,
		"- name: a\n  sample: 1\n  sample: 2\n":             `set twice`,
		"- sample: 1\n":                                     `s.yaml:1: scenario 1 has no name`,
		"- name: a\n- name: a\n":                            `scenario "a" appears twice`,
		"scenarios: []\n":                                   `s.yaml: no scenarios`,
		"":                                                  `s.yaml: no scenarios`,
		"other: 1\n":                                        `s.yaml:1: unknown top-level key "other"`,
		"- name: a\n  sample: 10%\n bad indent: [\n":        `s.yaml:`,
		"- just a string\n":                                 `s.yaml:1: scenario 1: want a map`,
		"- name: a\n  infra: lots\n":                        `scenario "a", key "infra": invalid amount "lots"`,
		"- name: a\n  cascade: {free: 0.5, gpt-4o: half}\n": `scenario "a", key "cascade": cascade tier "gpt-4o": invalid share "half"`,
		"- name: a\n  escalate: {gpt-4o: 2}\n":              `s.yaml:2: scenario "a", key "escalate": escalation stage "gpt-4o": invalid share "2": above 100%`,
		"- name: a\n  escalate: {}\n":                       `s.yaml:2: scenario "a", key "escalate": empty escalate`,
		"- name: a\n  sample: {x: 1}\n":                     `scenario "a", key "sample": want a single value, not a map`,
	}
	for in, want := range tests {
		_, err := ParseScenarios(strings.NewReader(in), "s.yaml", Levers{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseScenarios(%q) err = %v, want %q", in, err, want)
		}
	}
}
