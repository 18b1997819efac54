package estimator

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/costctl/costctl/pricing"
	"github.com/costctl/costctl/records"
)

// TestLeverComplete fails when a lever in LeverList lacks one of its parts:
// a flag usage with a placeholder, help text, an example that parses as a
// flag, a --sweep value and a scenario value, output text, an effect on
// cost and a waterfall row. A new lever is one entry in leverTable, and
// this test tells what that entry still misses.
func TestLeverComplete(t *testing.T) {
	// First the functions: projecting anything runs every lever's.
	for _, lv := range LeverList() {
		if lv.set == nil || lv.copy == nil || lv.isSet == nil || lv.exact == nil || lv.human == nil || lv.apply == nil || lv.detail == nil {
			t.Fatalf("lever %q lacks a function (set, copy, isSet, exact, human, apply, detail): %+v", lv.Key, lv)
		}
	}
	e, err := New(pricing.MustDefault(), longInputs(t))
	if err != nil {
		t.Fatal(err)
	}
	base, err := e.Total(Levers{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	keyRE := regexp.MustCompile(`^[a-z][a-z-]*[a-z]$`)
	seen := map[string]bool{KeyModel: true}
	for _, lv := range LeverList() {
		t.Run(lv.Key, func(t *testing.T) {
			if !keyRE.MatchString(lv.Key) || seen[lv.Key] {
				t.Fatalf("key %q: want a new lower-case flag name", lv.Key)
			}
			seen[lv.Key] = true
			if !regexp.MustCompile("`[A-Z]+`").MatchString(lv.Usage) {
				t.Errorf("usage %q: want a `PLACEHOLDER`", lv.Usage)
			}
			if lv.Help == "" || lv.Example == "" {
				t.Errorf("help %q, example %q: want both", lv.Help, lv.Example)
			}
			for _, line := range strings.Split(lv.Help, "\n") {
				if n := len([]rune(line)); n > 60 || n == 0 {
					t.Errorf("help line %q: %d columns, want 1..60 (it follows an 18-column indent)", line, n)
				}
			}
			// As a flag.
			var l Levers
			if lv.IsSet(l) || lv.Text(l, true) != None || lv.Text(l, false) != None {
				t.Errorf("unset lever reads as set")
			}
			if err := SetLever(&l, lv.Key, lv.Example); err != nil {
				t.Fatalf("SetLever(%s, %q): %v", lv.Key, lv.Example, err)
			}
			if !lv.IsSet(l) || lv.Text(l, true) == None || lv.Text(l, false) == None {
				t.Errorf("set lever reads as unset")
			}
			if got := LeverParams(l, "gpt-4o")[lv.Key]; got != lv.Text(l, false) {
				t.Errorf("LeverParams[%s] = %q, want %q", lv.Key, got, lv.Text(l, false))
			}
			// Its exact text reads back as the same lever.
			var back Levers
			if err := lv.Set(&back, lv.Text(l, false)); err != nil || !reflect.DeepEqual(back, l) {
				t.Errorf("exact text %q reads back as %+v (%v), want %+v", lv.Text(l, false), back, err, l)
			}
			// "none" unsets it, and copy carries it.
			var cp Levers
			lv.copy(&cp, l)
			if !reflect.DeepEqual(cp, l) {
				t.Errorf("copy = %+v, want %+v", cp, l)
			}
			if err := SetLever(&cp, lv.Key, "none"); err != nil || lv.IsSet(cp) || !reflect.DeepEqual(cp, Levers{}) {
				t.Errorf("none leaves %+v (%v)", cp, err)
			}

			// As a sweep: two alternatives, the example and none.
			ax, err := ParseSweep(lv.Key + "=" + lv.Example + lv.SweepSeparator() + "none")
			if err != nil || !slices.Equal(ax.Values, []string{lv.Example, "none"}) {
				t.Errorf("ParseSweep: %+v, %v", ax, err)
			}
			if !slices.Contains(LeverKeys(), lv.Key) {
				t.Errorf("LeverKeys() = %v lacks %s", LeverKeys(), lv.Key)
			}

			// As a scenario key.
			sc, err := ParseScenarios(strings.NewReader(fmt.Sprintf("- name: x\n  %s: %q\n", lv.Key, lv.Example)), "s.yaml", Levers{})
			if err != nil || !reflect.DeepEqual(sc[0].Levers, l) || !slices.Equal(sc[0].Set, []string{lv.Key}) {
				t.Errorf("scenario: %+v, %v", sc, err)
			}

			// It changes the cost, and has a waterfall row of its own.
			tot, err := e.Total(l, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tot.Monthly.Cmp(base.Monthly) == 0 {
				t.Errorf("%s=%s leaves the monthly total at %s", lv.Key, lv.Example, DecimalString(base.Monthly, 2))
			}
			p, err := e.Project(l)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Steps) != 2 || p.Steps[0].Name != StepBaseline || p.Steps[1].Name != lv.Key || p.Steps[1].Detail == "" {
				t.Errorf("waterfall steps = %+v, want baseline and %s", p.Steps, lv.Key)
			}
			if p.Total.Monthly.Cmp(tot.Monthly) != 0 {
				t.Errorf("waterfall total %s, Total %s", DecimalString(p.Total.Monthly, 6), DecimalString(tot.Monthly, 6))
			}
		})
	}
}

// TestLeverKeysFollowList checks that the keys, the step order and the
// waterfall rows all come from LeverList: model, then each lever in order.
func TestLeverKeysFollowList(t *testing.T) {
	want := []string{KeyModel}
	for _, lv := range LeverList() {
		want = append(want, lv.Key)
	}
	if got := LeverKeys(); !slices.Equal(got, want) {
		t.Errorf("LeverKeys() = %v, want %v", got, want)
	}
	// Every lever that can be set together (not cascade with escalate)
	// yields its rows in list order.
	var l Levers
	var rows []string
	for _, lv := range LeverList() {
		if lv.Key == KeyEscalate {
			continue
		}
		if err := lv.Set(&l, lv.Example); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, lv.Key)
	}
	e, err := New(pricing.MustDefault(), longInputs(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Project(l)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Steps[1:] {
		got = append(got, s.Name)
	}
	if !slices.Equal(got, rows) {
		t.Errorf("steps %v, want %v", got, rows)
	}
}

type fakeRecords struct {
	recs []records.Record
	errs []error
}

func (f *fakeRecords) Next() (records.Record, error) {
	if len(f.recs) == 0 {
		return records.Record{}, io.EOF
	}
	r, err := f.recs[0], f.errs[0]
	f.recs, f.errs = f.recs[1:], f.errs[1:]
	return r, err
}

func TestMeasure(t *testing.T) {
	c, err := NewCounterForEncoding("o200k_base")
	if err != nil {
		t.Fatal(err)
	}
	src := &fakeRecords{
		recs: []records.Record{
			{File: "f", Line: 1, Input: "hello", Output: "hi"},
			{},
			{File: "f", Line: 3, Output: "no input"},
			{File: "f", Line: 4, Messages: []records.Message{{Role: "user", Content: "hello"}}, Output: "hi"},
		},
		errs: []error{nil, &records.LineError{File: "f", Line: 2, Reason: "invalid JSON"}, nil, nil},
	}
	var skipped []string
	m, err := Measure(context.Background(), src, c, func(s string) { skipped = append(skipped, s) })
	if err != nil {
		t.Fatal(err)
	}
	// A text input is one user message: both records count alike.
	if m.Records != 2 || m.Skipped != 2 || m.InputTokens%2 != 0 || m.OutputTokens != 2*c.Text("hi") || m.Encoding != "o200k_base" {
		t.Errorf("measured %+v", m)
	}
	if want := []string{"f:2: invalid JSON", "f:3: no input; skipped"}; !slices.Equal(skipped, want) {
		t.Errorf("skipped %q, want %q", skipped, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Measure(ctx, &fakeRecords{}, c, func(string) {}); err != context.Canceled {
		t.Errorf("cancelled: %v", err)
	}
}
