package tokenizer

import (
	"slices"
	"strings"
	"testing"
)

// Known tiktoken token ids. Sources:
//   - [tt]  openai/tiktoken tests/test_encoding.py (test_simple,
//     test_simple_regex, test_basic_encode, test_encode_surrogate_pairs,
//     test_simple_repeated; "gpt2" there has the same ranks and pattern as
//     r50k_base).
//   - [rs]  zurawiki/tiktoken-rs tests ("This is a test ... spaces").
//   - [php] an o200k_base fixture set published with a PHP tiktoken port
//     (O200kBaseTest), itself taken from tiktoken.
//   - [ref] produced with the reference implementation
//     (pkoukk/tiktoken-go v0.1.8) and frozen here; these pin the corner
//     cases of the split patterns (also checked live by the differential
//     tests).
var vectors = []struct {
	enc, text string
	ids       []int
}{
	// [tt]
	{"cl100k_base", "hello world", []int{15339, 1917}},
	{"cl100k_base", "rer", []int{38149}},
	{"cl100k_base", "'rer", []int{2351, 81}},
	{"cl100k_base", "today\n ", []int{31213, 198, 220}},
	{"cl100k_base", "today\n \n", []int{31213, 27907}},
	{"cl100k_base", "today\n  \n", []int{31213, 14211}},
	{"cl100k_base", " \u00850", []int{220, 126, 227, 15}},
	{"cl100k_base", "👍", []int{9468, 239, 235}},
	{"cl100k_base", "", nil},
	{"r50k_base", "hello world", []int{31373, 995}},
	{"p50k_base", "hello world", []int{31373, 995}},
	{"r50k_base", "0", []int{15}},
	{"r50k_base", "00", []int{405}},
	{"r50k_base", "000", []int{830}},
	{"r50k_base", "0000", []int{2388}},
	{"r50k_base", "00000", []int{20483}},
	{"r50k_base", "000000", []int{10535}},
	{"r50k_base", "0000000", []int{24598}},
	{"r50k_base", "00000000", []int{8269}},
	{"r50k_base", "000000000", []int{10535, 830}},
	{"r50k_base", "0000000000", []int{8269, 405}},
	{"r50k_base", "00000000000", []int{8269, 830}},
	{"r50k_base", "000000000000", []int{8269, 2388}},
	{"r50k_base", "0000000000000", []int{8269, 20483}},
	{"r50k_base", "00000000000000", []int{8269, 10535}},
	{"r50k_base", "000000000000000", []int{8269, 24598}},
	{"r50k_base", "0000000000000000", []int{25645}},
	{"r50k_base", "00000000000000000", []int{8269, 10535, 830}},
	// [rs]
	{"cl100k_base", "This is a test         with a lot of spaces", []int{2028, 374, 264, 1296, 260, 449, 264, 2763, 315, 12908}},
	// [php]
	{"o200k_base", "hello world", []int{24912, 2375}},
	{"o200k_base", "привет мир", []int{9501, 131903, 37934}},
	{"o200k_base", ".\n", []int{558}},
	{"o200k_base", "today\n ", []int{58744, 198, 220}},
	{"o200k_base", "today\n \n", []int{58744, 47812}},
	{"o200k_base", "today\n  \n", []int{58744, 31835}},
	{"o200k_base", "🌶", []int{64364, 114}},
	{"o200k_base", "👍", []int{82514}},
	// [ref] corner cases
	{"cl100k_base", "Hello, World! It's DON'T 123456 x\n\n  y  ", []int{9906, 11, 4435, 0, 1102, 596, 45373, 17773, 220, 4513, 10961, 865, 271, 220, 379, 256}},
	{"o200k_base", "Hello, World! It's DON'T 123456 x\n\n  y  ", []int{13225, 11, 5922, 0, 7744, 153384, 220, 7633, 19354, 1215, 279, 220, 342, 256}},
	{"cl100k_base", "<|endoftext|>", []int{27, 91, 8862, 728, 428, 91, 29}},
	{"o200k_base", "<|endoftext|>", []int{27, 91, 419, 1440, 919, 91, 29}},
	{"p50k_base", "Hello, World! It's DON'T 123456 x\n\n  y  ", []int{15496, 11, 2159, 0, 632, 338, 23917, 6, 51, 17031, 29228, 2124, 628, 220, 331, 50257}},
	{"r50k_base", "Hello, World! It's DON'T 123456 x\n\n  y  ", []int{15496, 11, 2159, 0, 632, 338, 23917, 6, 51, 17031, 29228, 2124, 628, 220, 331, 220, 220}},
}

func TestConformanceVectors(t *testing.T) {
	for _, v := range vectors {
		e := mustGet(t, v.enc)
		got := e.Encode(v.text)
		if !slices.Equal(got, v.ids) && !(len(got) == 0 && len(v.ids) == 0) {
			t.Errorf("%s Encode(%q) = %v, want %v", v.enc, v.text, got, v.ids)
		}
		if n := e.Count(v.text); n != len(v.ids) {
			t.Errorf("%s Count(%q) = %d, want %d", v.enc, v.text, n, len(v.ids))
		}
	}
}

// Frozen corner cases: ids recorded from the reference implementation,
// re-checked against it live so a mistake in the table cannot hide.
var cornerCases = []string{
	"   leading spaces", "trailing spaces   ", "a  b   c\t\td", "\n\n\nx\n \n  \n", "x \n  y", "\r\n\r\n  \t\r\n",
	"1 12 123 1234 12345 1234567 ١٢٣٤ ⅣⅫ", "3.14159e-10, 0x1F", "'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'VE 'M 'LL 'D",
	"I'M you'RE he'Ll they'VE it'S don'T we'D", "x'sy 'sa ''s", "!!!\n\n", "foo///\n\n/x", "{}{}{}\n", "  ){\n\t\treturn",
	"中文字符测试，日本語のテキスト。한국어 텍스트", "😀😃😄 👨‍👩‍👧‍👦 🇺🇸", "CamelCaseWordsAndHTTPServer getHTTPResponseCode",
	"ǅungla ǈ Ǉ ʰʱ ᾈᾉ", "é\u0301 e\u0301\u0302 \u0301x \u0301\u0302", "ÀÉÎõü ΑΒΓαβγ", "<|endoftext|><|fim_prefix|><|endofprompt|>",
	"\u00a0\u2003\u3000x\u00a0 \u2028\u2029\u0085", "\ufffd\ufffd", "a\u200db\u200cc\ufeffd",
}

func TestCornerCasesAgainstReference(t *testing.T) {
	for _, name := range Names() {
		e := mustGet(t, name)
		ref := reference(t, name)
		for _, s := range cornerCases {
			want := ref.EncodeOrdinary(s)
			if got := e.Encode(s); !slices.Equal(got, want) {
				t.Errorf("%s Encode(%q) = %v, want %v", name, s, got, want)
			}
			if got := e.Count(s); got != len(want) {
				t.Errorf("%s Count(%q) = %d, want %d", name, s, got, len(want))
			}
		}
	}
}

func TestGetNames(t *testing.T) {
	if got := strings.Join(Names(), ","); got != "cl100k_base,o200k_base,p50k_base,r50k_base" {
		t.Fatalf("Names() = %s", got)
	}
	_, err := Get("gpt2")
	if err == nil || !strings.Contains(err.Error(), "cl100k_base, o200k_base, p50k_base, r50k_base") {
		t.Fatalf("Get(gpt2) error = %v", err)
	}
	e1, _ := Get("o200k_base")
	e2, _ := Get("o200k_base")
	if e1 != e2 || e1.Name() != "o200k_base" {
		t.Fatal("Get must return the process-wide encoding")
	}
}
