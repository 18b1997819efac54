package estimator

import (
	"fmt"
	"strings"
	"testing"

	"github.com/costctl/costctl/pricing"
)

func TestParseCount(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"10M", 10_000_000, ""},
		{"10m", 10_000_000, ""},
		{"2.5k", 2500, ""},
		{"1B", 1_000_000_000, ""},
		{"2500000", 2_500_000, ""},
		{"2,500,000", 2_500_000, ""},
		{"2_500_000", 2_500_000, ""},
		{"2.5e6", 2_500_000, ""},
		{"1e15", 1e15, ""},
		{"1", 1, ""},
		{"0", 0, "must be at least 1"},
		{"-5", 0, "must be at least 1"},
		{"2.5", 0, "not a whole number"},
		{"1.0001k", 0, "not a whole number"},
		{"2.5e-6", 0, "not a whole number"},
		{"NaN", 0, "want a whole number"},
		{"Inf", 0, "want a whole number"},
		{"1/3", 0, "want a whole number"},
		{"0x10", 0, "want a whole number"},
		{"", 0, "want a whole number"},
		{"ten", 0, "want a whole number"},
		{"2e15", 0, "above 1e15"},
	}
	for _, tc := range tests {
		got, err := ParseCount(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCount(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseCount(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRatio(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"10%", "1/10", ""},
		{"0.1", "1/10", ""},
		{"12.5%", "1/8", ""},
		{"0.3", "3/10", ""},
		{"100%", "1", ""},
		{"1", "1", ""},
		{"0", "0", ""},
		{"0%", "0", ""},
		{" 25 % ", "1/4", ""},
		{"1e-1", "1/10", ""},
		{"120%", "", "above 100%"},
		{"1.01", "", "above 100%"},
		{"-0.1", "", "negative"},
		{"-5%", "", "negative"},
		{"NaN", "", "want a percentage"},
		{"nan%", "", "want a percentage"},
		{"Inf", "", "want a percentage"},
		{"", "", "want a percentage"},
		{"half", "", "want a percentage"},
	}
	for _, tc := range tests {
		got, err := ParseRatio(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRatio(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got.RatString() != tc.want {
			t.Errorf("ParseRatio(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestParseTokens(t *testing.T) {
	for in, want := range map[string]string{"1000": "1000", "1.5k": "1500", "812.25": "3249/4", "0": "0"} {
		got, err := ParseTokens(in)
		if err != nil || got.RatString() != want {
			t.Errorf("ParseTokens(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for in, want := range map[string]string{"-1": "negative", "abc": "want a number", "NaN": "want a number", "2e10": "above 10 billion"} {
		if _, err := ParseTokens(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTokens(%q) err = %v, want %q", in, err, want)
		}
	}
}

func TestParseUSD(t *testing.T) {
	m, err := ParseUSD("$1,250.50")
	if err != nil || m != pricing.Money(1_250_500_000_000) {
		t.Errorf("ParseUSD = %d, %v", m, err)
	}
	if _, err := ParseUSD("-1"); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("negative: %v", err)
	}
	if _, err := ParseUSD("0.0000000001"); err == nil {
		t.Error("sub-nano amount accepted")
	}
}

func TestParseCascade(t *testing.T) {
	c, err := ParseCascade("free:0.5, gpt-4o-mini:30%,gpt-4o:0.2")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.String(); got != "free:0.5,gpt-4o-mini:0.3,gpt-4o:0.2" {
		t.Errorf("String() = %q", got)
	}
	c, err = ParseCascade("anthropic.claude-3-5-sonnet-20240620-v1:0:1")
	if err != nil || len(c) != 1 || c[0].Name != "anthropic.claude-3-5-sonnet-20240620-v1:0" {
		t.Errorf("colon model: %v %v", c, err)
	}
	for in, want := range map[string]string{
		"free:0.5,gpt-4o:0.3":            "cascade shares sum to 0.8, not 1 (100%)",
		"free:0.5,gpt-4o:0.3,gpt-4o:0.2": `cascade tier "gpt-4o" appears twice`,
		"free:0.6,gpt-4o:0.6":            "cascade shares sum to 1.2, not 1",
		"free":                           `invalid cascade tier "free" (want MODEL:SHARE`,
		"free:":                          "invalid cascade tier",
		":0.5":                           "invalid cascade tier",
		"free:abc,gpt-4o:1":              `cascade tier "free": invalid share "abc"`,
		"free:-0.5,gpt-4o:1.5":           `cascade tier "free": invalid share "-0.5": negative`,
		"":                               "empty cascade",
	} {
		if _, err := ParseCascade(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCascade(%q) err = %v, want %q", in, err, want)
		}
	}
}

func TestDecimalAndPercentString(t *testing.T) {
	for _, tc := range []struct{ r, dec, pct string }{
		{"1/10", "0.1", "10%"},
		{"57500", "57500", "5750000%"},
		{"1/3", "0.3333", "33.33%"},
		{"1/8", "0.125", "12.5%"},
		{"0", "0", "0%"},
	} {
		if got := DecimalString(rat(t, tc.r), 4); got != tc.dec {
			t.Errorf("DecimalString(%s) = %s, want %s", tc.r, got, tc.dec)
		}
		if got := PercentString(rat(t, tc.r)); got != tc.pct {
			t.Errorf("PercentString(%s) = %s, want %s", tc.r, got, tc.pct)
		}
	}
}

// TestSampleAverages counts a small sample with the real o200k_base
// tokenizer and the chat formula. By hand: text input is one user message,
// so "hello world" = 3 (reply priming) + 3 + user(1) + hello| world(2) = 9;
// the chat [system "Be brief.", user "hello world"] = 3 + (3 + system(1) +
// Be| brief|.(3)) + (3 + user(1) + 2) = 16; "The quick brown fox" = 7 + 4 =
// 11. Outputs: "Paris" 1, "hi there" 2, "jumps over the lazy dog" =
// j|umps| over| the| lazy| dog (6). Totals 36 and 9 over 3 records.
func TestSampleAverages(t *testing.T) {
	m, err := pricing.MustDefault().Lookup("gpt-4o")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCounter(m)
	if err != nil {
		t.Fatal(err)
	}
	var s Sample
	if _, _, ok := s.Averages(); ok {
		t.Error("empty sample has averages")
	}
	s.Add(c, "hello world", nil, "Paris")
	s.Add(c, "", []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "hello world"}}, "hi there")
	s.Add(c, "The quick brown fox", nil, "jumps over the lazy dog")
	if s.Records != 3 || s.InputTokens != 36 || s.OutputTokens != 9 {
		t.Fatalf("sample = %+v, want 3 records, 36 input, 9 output", s)
	}
	in, out, ok := s.Averages()
	if !ok || in.RatString() != "12" || out.RatString() != "3" {
		t.Errorf("averages = %v, %v", in, out)
	}
}

// BenchmarkSampleAdd measures counting --from records (prompt + output).
func BenchmarkSampleAdd(b *testing.B) {
	m, _ := pricing.MustDefault().Lookup("gpt-4o")
	c, err := NewCounter(m)
	if err != nil {
		b.Fatal(err)
	}
	input := strings.Repeat("Summarise the following support ticket in two sentences. ", 20)
	output := strings.Repeat("The customer cannot log in after the update. ", 4)
	var s Sample
	b.SetBytes(int64(len(input) + len(output)))
	for b.Loop() {
		s.Add(c, input, nil, output)
	}
	b.ReportMetric(float64(s.InputTokens+s.OutputTokens)/float64(s.Records), "tokens/record")
}

func TestParseEscalate(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"gpt-4o-mini:1,gpt-4o:0.2", "gpt-4o-mini:1,gpt-4o:0.2"},
		{" free:100%, gpt-4o-mini:30% ,gpt-4o:5%", "free:1,gpt-4o-mini:0.3,gpt-4o:0.05"},
		{"gpt-4o:1,gpt-4o-mini:1", "gpt-4o:1,gpt-4o-mini:1"}, // shares need not sum to 1
		{"anthropic.claude-3-5-sonnet-20240620-v1:0:0.2", "anthropic.claude-3-5-sonnet-20240620-v1:0:0.2"},
	} {
		x, err := ParseEscalate(tc.in)
		if err != nil || x.String() != tc.want {
			t.Errorf("ParseEscalate(%q) = %q, %v; want %q", tc.in, x.String(), err, tc.want)
		}
	}
	for in, want := range map[string]string{
		"":                          "empty escalation (want e.g. gpt-4o-mini:1,gpt-4o:0.2)",
		"gpt-4o":                    `invalid escalation stage "gpt-4o" (want MODEL:SHARE, the share of evaluations it judges, e.g. gpt-4o:0.2 or free:100%)`,
		"gpt-4o-mini:1,gpt-4o:1.5":  `escalation stage "gpt-4o": invalid share "1.5": above 100%`,
		"gpt-4o:1,GPT-4o:0.2":       `escalation stage "GPT-4o" appears twice`,
		"gpt-4o-mini:1,gpt-4o:-0.2": `escalation stage "gpt-4o": invalid share "-0.2": negative`,
	} {
		if _, err := ParseEscalate(in); err == nil || err.Error() != want {
			t.Errorf("ParseEscalate(%q) err = %v, want %q", in, err, want)
		}
	}
}

// TestSamplePrompts: records are grouped by prompt length with their
// outputs, shortest first.
func TestSamplePrompts(t *testing.T) {
	var s Sample
	for _, r := range [][2]int64{{300_000, 7}, {100_000, 1}, {300_000, 3}, {5, 0}} {
		s.AddCounts(r[0], r[1])
	}
	got := fmt.Sprint(s.Prompts())
	if want := "[{5 1 0} {100000 1 1} {300000 2 10}]"; got != want {
		t.Errorf("Prompts() = %s, want %s", got, want)
	}
	if s.Records != 4 || s.InputTokens != 700_005 || s.OutputTokens != 11 {
		t.Errorf("sample = %d records, %d in, %d out", s.Records, s.InputTokens, s.OutputTokens)
	}
}
