package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Alphabet for random strings: every class the split patterns
// distinguish, in ASCII and beyond (upper/title/modifier/other letters,
// marks, numbers of all kinds, Unicode whitespace, contractions' letters,
// slashes, CJK, emoji, ZWJ, replacement char).
var fuzzAtoms = []string{
	" ", " ", " ", "  ", "\t", "\n", "\n", "\r\n", "\r", "\v", "\f", "\u0085", "\u00a0", "\u2003", "\u3000", "\u2028",
	"a", "e", "s", "t", "r", "v", "m", "l", "d", "S", "T", "R", "E", "V", "M", "L", "D", "x", "Q", "Z",
	"'", "'", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re",
	"the", " the", "The", "HTTP", "Server", "hello", "world", "don't", "I'M",
	"0", "1", "7", "42", "123", "2024", "١", "٣", "Ⅻ", "½", "²",
	".", ",", "!", "?", "-", "_", "/", "//", "\\", "{", "}", "(", ")", "[", "]", "<", ">", "=", ";", ":", "\"", "#", "$", "%", "&", "*", "+", "|", "~", "`", "^", "@",
	"<|endoftext|>", "<|fim_prefix|>",
	"é", "É", "ß", "ǅ", "ʰ", "ǈ", "ᾈ", "\u0301", "\u0302", "\u093f", "ñ", "Ω", "ω", "Я", "я",
	"中", "文", "日本", "の", "カ", "한", "ก", "ا", "ש",
	"😀", "👍", "🌶", "\u200d", "\ufe0f", "🇺", "\ufffd", "\u200b", "\ufeff",
}

func randomText(r *rand.Rand, atoms int) string {
	var b strings.Builder
	for i := 0; i < atoms; i++ {
		b.WriteString(fuzzAtoms[r.IntN(len(fuzzAtoms))])
	}
	return b.String()
}

// randomRuns produces long runs of a few atoms (repetitive input stresses
// the merge and the whitespace backtracking).
func randomRuns(r *rand.Rand, runs int) string {
	var b strings.Builder
	for i := 0; i < runs; i++ {
		a := fuzzAtoms[r.IntN(len(fuzzAtoms))]
		b.WriteString(strings.Repeat(a, 1+r.IntN(12)))
	}
	return b.String()
}

func checkAgainstReference(t *testing.T, e *Encoding, s string) bool {
	t.Helper()
	want := reference(t, e.Name()).EncodeOrdinary(s)
	got := e.Encode(s)
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("%s Encode(%q)\n got  %v\n want %v", e.Name(), s, got, want)
		return false
	}
	if n := e.Count(s); n != len(want) {
		t.Errorf("%s Count(%q) = %d, want %d", e.Name(), s, n, len(want))
		return false
	}
	return true
}

func TestDifferentialRandom(t *testing.T) {
	iters := 3000
	if testing.Short() || raceEnabled {
		iters = 400
	}
	for _, name := range Names() {
		e := mustGet(t, name)
		r := rand.New(rand.NewPCG(1, uint64(len(name))))
		fails := 0
		for i := 0; i < iters && fails < 5; i++ {
			var s string
			if i%3 == 2 {
				s = randomRuns(r, 1+r.IntN(8))
			} else {
				s = randomText(r, 1+r.IntN(40))
			}
			if !checkAgainstReference(t, e, s) {
				fails++
			}
		}
	}
}

// Adversarial shapes at sizes the (quadratic) reference can still do.
func TestDifferentialAdversarial(t *testing.T) {
	n := 3000
	if testing.Short() || raceEnabled {
		n = 600
	}
	inputs := []string{
		strings.Repeat("a", n), strings.Repeat(" ", n), strings.Repeat("{}", n/2), strings.Repeat("😀", n/4),
		strings.Repeat("\n", n), strings.Repeat(" \n", n/2), strings.Repeat("1", n), strings.Repeat("'s", n/2),
		strings.Repeat("ab", n/2), strings.Repeat("Ab", n/2), strings.Repeat("é", n/2), strings.Repeat("\u0301", n/2),
		"x" + strings.Repeat(" ", n) + "x", strings.Repeat("^", n), strings.Repeat("中", n/3),
	}
	r := rand.New(rand.NewPCG(7, 7))
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var sb strings.Builder
	for i := 0; i < n; i++ {
		sb.WriteByte(b64[r.IntN(64)])
	}
	inputs = append(inputs, sb.String())
	for _, name := range Names() {
		e := mustGet(t, name)
		for _, s := range inputs {
			checkAgainstReference(t, e, s)
		}
	}
}
