package semcache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// Lexical is the check a near-duplicate must pass on top of similarity.
// Both texts are lower-cased and split into tokens: numbers, words and
// operator symbols. They pass when all three of these agree exactly:
//
//  1. Numbers: the sequence of numbers, in order. A number is a run of
//     digits with decimal points, thousands commas, date and time
//     separators between digits ("3.5", "1,000", "2024-05-01", "10:30",
//     "1/2"), an optional trailing "%", and the words zero..twenty. It is
//     normalised: thousands commas dropped, trailing decimal zeros dropped
//     ("2.0" = "2", "2.50" = "2.5"), spelled numbers as digits ("two" =
//     "2"). Operator symbols (+ * = < > ^ × ÷, and - or / between
//     spaces) are part of this sequence, so "2+2" ≠ "2*2" and "2+2" ≠ "2+3".
//  2. Negations: the multiset of negation words: not, no, never, none,
//     nobody, nothing, nowhere, neither, nor, without; "cannot" and every
//     "n't" contraction count as "not" (so "do not" = "don't").
//  3. Content words: the sequence, in order, of the words that are neither
//     stopwords (the list below: articles, pronouns, auxiliaries, a few
//     fillers like "please") nor negations nor numbers, with a possessive
//     "'s" dropped and a simple plural stem ("flights" = "flight",
//     "cities" = "city"; words ending in ss/us/is keep their s).
//     Prepositions that carry direction or comparison (from, to, before,
//     after, more, less, ...) and question words (what, where, when, who,
//     why, how, which) are content words.
//
// So "flights from Paris to Rome" ≠ "flights from Rome to Paris" and
// "What is the capital of France?" = "what's the capital of france", but
// "France's capital?" ≠ "the capital of France" (order differs): the check
// prefers a miss to a wrong answer. why says what differs, e.g.
// "numbers differ: 2 vs 3".
func Lexical(a, b string) (ok bool, why string) {
	ta, tb := analyse(a), analyse(b)
	if !equal(ta.numbers, tb.numbers) {
		return false, fmt.Sprintf("numbers differ: %s vs %s", show(ta.numbers), show(tb.numbers))
	}
	na, nb := sorted(ta.negations), sorted(tb.negations)
	if !equal(na, nb) {
		return false, fmt.Sprintf("negations differ: %s vs %s", show(na), show(nb))
	}
	if !equal(ta.content, tb.content) {
		return false, fmt.Sprintf("content words differ: %s vs %s", show(ta.content), show(tb.content))
	}
	return true, ""
}

// LexicalKey is a hash of exactly what Lexical compares (the numbers and
// operators in order, the negations as a multiset, the content words in
// order): Lexical(a, b) passes exactly when LexicalKey(a) ==
// LexicalKey(b), up to a 128-bit hash collision (and Lexical is checked
// again on every candidate). So a request can only ever hit an entry whose
// last user message has its key: Bucket puts that key in the store's
// partition.
func LexicalKey(text string) string {
	t := analyse(text)
	h := sha256.New()
	part := func(tag string, items []string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(items)))
		h.Write([]byte(tag))
		h.Write(n[:])
		for _, it := range items {
			binary.BigEndian.PutUint64(n[:], uint64(len(it)))
			h.Write(n[:])
			h.Write([]byte(it))
		}
	}
	part("numbers", t.numbers)
	part("negations", sorted(t.negations))
	part("content", t.content)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

type lexed struct{ numbers, negations, content []string }

func show(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, " ")
}

func sorted(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var spelled = map[string]string{
	"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
	"six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11",
	"twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16",
	"seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20",
}

var negationWords = map[string]bool{
	"not": true, "no": true, "never": true, "none": true, "nobody": true, "nothing": true,
	"nowhere": true, "neither": true, "nor": true, "without": true,
}

var stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an the this that these those
		i me my mine myself we us our ours you your yours he him his she her hers it its they them their theirs
		is am are was were be been being do does did doing done have has had having
		will would shall should can could may might must
		of for with at by in on as and or but if so
		please kindly just really very also tell give show explain let know
		hi hello hey thanks thank
		there here some any`) {
		m[w] = true
	}
	return m
}()

// operators are symbols that count as numbers wherever they appear.
const operators = "+*=<>^×÷"

func analyse(s string) lexed {
	var out lexed
	rs := []rune(strings.ToLower(s))
	isDigit := func(i int) bool { return i >= 0 && i < len(rs) && unicode.IsDigit(rs[i]) }
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsDigit(r):
			j := i
			for j < len(rs) && (unicode.IsDigit(rs[j]) || (strings.ContainsRune(".,-/:", rs[j]) && isDigit(j+1) && isDigit(j-1))) {
				j++
			}
			num := string(rs[i:j])
			if j < len(rs) && rs[j] == '%' {
				num += "%"
				j++
			}
			out.numbers = append(out.numbers, normNumber(num))
			i = j
		case unicode.IsLetter(r):
			j := i
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || ((rs[j] == '\'' || rs[j] == '’') && j+1 < len(rs) && unicode.IsLetter(rs[j+1]))) {
				j++
			}
			out.word(strings.ReplaceAll(string(rs[i:j]), "’", "'"))
			i = j
		case strings.ContainsRune(operators, r):
			out.numbers = append(out.numbers, string(r))
			i++
		case (r == '-' || r == '/') && i > 0 && i+1 < len(rs) && unicode.IsSpace(rs[i-1]) && unicode.IsSpace(rs[i+1]):
			out.numbers = append(out.numbers, string(r))
			i++
		default:
			i++
		}
	}
	return out
}

func (out *lexed) word(w string) {
	switch {
	case w == "cannot" || w == "can't":
		out.negations = append(out.negations, "not")
		return
	case w == "won't":
		out.negations = append(out.negations, "not")
		return
	case strings.HasSuffix(w, "n't"):
		out.negations = append(out.negations, "not")
		w = strings.TrimSuffix(w, "n't")
	}
	if base, _, ok := strings.Cut(w, "'"); ok {
		// what's, i'm, you're, it'll, we've, france's: the suffix is a
		// stopword or a possessive.
		w = base
	}
	if n, ok := spelled[w]; ok {
		out.numbers = append(out.numbers, n)
		return
	}
	if negationWords[w] {
		out.negations = append(out.negations, w)
		return
	}
	if w == "" || stopwords[w] {
		return
	}
	out.content = append(out.content, stem(w))
}

func stem(w string) string {
	switch {
	case len(w) > 4 && strings.HasSuffix(w, "ies"):
		return w[:len(w)-3] + "y"
	case len(w) > 4 && strings.HasSuffix(w, "sses"):
		return w[:len(w)-2]
	case len(w) > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") && !strings.HasSuffix(w, "is"):
		return w[:len(w)-1]
	}
	return w
}

func normNumber(s string) string {
	pct := strings.HasSuffix(s, "%")
	s = strings.TrimSuffix(s, "%")
	// Thousands commas: "1,000,000" (groups of three after the first).
	if strings.Contains(s, ",") && !strings.ContainsAny(s, "-/:") {
		groups := strings.Split(s, ",")
		ok := len(groups[0]) <= 3
		for _, g := range groups[1:] {
			ok = ok && len(strings.SplitN(g, ".", 2)[0]) == 3
		}
		if ok {
			s = strings.Join(groups, "")
		}
	}
	// Trailing decimal zeros of a plain decimal.
	if strings.Count(s, ".") == 1 && !strings.ContainsAny(s, ",-/:") {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if pct {
		s += "%"
	}
	return s
}
