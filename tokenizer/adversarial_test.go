package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// adversarialInputs returns inputs of about n bytes that are hard for a
// BPE tokenizer: single pre-tokens of one repeated character or unit
// (one-char, spaces, braces, emoji, newlines, cjk), random text without
// whitespace (base64; letters, which is one pre-token for cl100k_base,
// p50k_base and r50k_base; lower, random a-z, one pre-token for all four
// and long stretches that no byte pair of the vocabulary cuts, so it is
// merged by rounds and the heap) and digits.
func adversarialInputs(n int) map[string]string {
	r := rand.New(rand.NewPCG(5, 5))
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var sb strings.Builder
	for i := 0; i < n; i++ {
		sb.WriteByte(b64[r.IntN(64)])
	}
	return map[string]string{
		"one-char": strings.Repeat("a", n),
		"spaces":   strings.Repeat(" ", n),
		"braces":   strings.Repeat("{}", n/2),
		"base64":   sb.String(),
		"emoji":    strings.Repeat("😀", n/4),
		"newlines": strings.Repeat("\n", n),
		"digits":   strings.Repeat("7", n),
		"cjk":      strings.Repeat("中", n/3),
		"letters":  randomOver(r, strings.Split(b64[:52], ""), n),
		"lower":    randomOver(r, strings.Split(b64[26:52], ""), n),
	}
}

// maxWorkPerByte bounds work.total() per input byte on any input. The
// adversarial inputs need 1–18 (prose about 1.2); a quadratic step on a
// 1 MB input would need hundreds of thousands.
const maxWorkPerByte = 32

// checkLinear reports whether the work counted for the same kind of input
// at n and 4n bytes is linear: non-zero, growing, at most 4.5 times as
// much for 4 times the input (quadratic work grows 16 times), and at most
// maxWorkPerByte per byte.
func checkLinear(w1, w4 int64, n int) error {
	switch {
	case w1 <= 0 || w4 <= w1:
		return fmt.Errorf("work does not grow with the input: %d at %d bytes, %d at %d", w1, n, w4, 4*n)
	case 2*w4 > 9*w1:
		return fmt.Errorf("superlinear work: %d at %d bytes, %d (%.1f×) at %d", w1, n, w4, float64(w4)/float64(w1), 4*n)
	case w4 > maxWorkPerByte*int64(4*n):
		return fmt.Errorf("%.1f work per byte at %d bytes (bound %d)", float64(w4)/float64(4*n), 4*n, maxWorkPerByte)
	}
	return nil
}

// countWork counts s with a fresh scratch and returns the work done.
func countWork(e *Encoding, s string) (int, work) {
	sc := new(scratch)
	n := e.countValid(s, sc)
	return n, sc.work
}

// Adversarial inputs cost linear work: the same input at n and 4n bytes
// (256 KB and 1 MB; 16 and 64 KB with -short or -race) is counted with
// the work counters of the merge, the cutting of long pieces and the
// pre-tokenizer, and the counts must scale linearly (checkLinear). Nothing
// is timed: BenchmarkAdversarial measures the speed of the same inputs.
func TestAdversarialWork(t *testing.T) {
	n := 256 << 10
	if testing.Short() || raceEnabled {
		n = 16 << 10
	}
	small, big := adversarialInputs(n), adversarialInputs(4*n)
	for _, name := range Names() {
		e := mustGet(t, name)
		for kind := range small {
			c1, w1 := countWork(e, small[kind])
			c4, w4 := countWork(e, big[kind])
			if err := checkLinear(w1.total(), w4.total(), n); err != nil {
				t.Errorf("%s %s: %v\n  %d bytes: %+v\n  %d bytes: %+v", name, kind, err, n, w1, 4*n, w4)
			}
			if c4 < c1 {
				t.Errorf("%s %s: %d tokens for %d bytes, %d for %d", name, kind, c1, n, c4, 4*n)
			}
			t.Logf("%s %-8s %d bytes: %7d tokens, work %.2f/byte %+v", name, kind, 4*n, c4, float64(w4.total())/float64(4*n), w4)
		}
	}
}

// Encode does the same work as Count (it shares the pre-tokenizer and the
// merge) and so is linear on the same inputs.
func TestAdversarialEncodeWork(t *testing.T) {
	n := 64 << 10
	if testing.Short() || raceEnabled {
		n = 8 << 10
	}
	small, big := adversarialInputs(n), adversarialInputs(4*n)
	e := mustGet(t, "cl100k_base")
	for kind := range small {
		var w [2]int64
		for k, s := range []string{small[kind], big[kind]} {
			sc := new(scratch)
			var out []int
			for i := 0; i < len(s); {
				j, far := e.split(s, i)
				sc.work.pretok += int64(far - i)
				out = e.encodePiece(out, s[i:j], sc)
				i = j
			}
			if want := e.Count(s); len(out) != want {
				t.Fatalf("%s: %d ids, Count %d", kind, len(out), want)
			}
			w[k] = sc.work.total()
		}
		if err := checkLinear(w[0], w[1], n); err != nil {
			t.Errorf("encode %s: %v", kind, err)
		}
	}
}

// The bound can fail: tiktoken's own merge loop (mergeSmall, quadratic on
// a run of one character) and a pre-tokenizer that looks ahead to the end
// of the text on every call are both caught by checkLinear.
func TestWorkCountCatchesQuadratic(t *testing.T) {
	v := mustGet(t, "cl100k_base").v
	const n = 2048
	var w1, w4 work
	v.mergeSmall(strings.Repeat("a", n), nil, &w1)
	v.mergeSmall(strings.Repeat("a", 4*n), nil, &w4)
	if err := checkLinear(w1.total(), w4.total(), n); err == nil {
		t.Errorf("quadratic merge not caught: %d at %d bytes, %d at %d", w1.total(), n, w4.total(), 4*n)
	}

	e := mustGet(t, "cl100k_base")
	greedy := &Encoding{name: "greedy", v: e.v, split: func(s string, i int) (int, int) {
		end, _ := splitCL100K(s, i)
		return end, len(s) // as if every call scanned to the end
	}}
	text := strings.Repeat("hello world ", n/12)
	_, g1 := countWork(greedy, text)
	_, g4 := countWork(greedy, strings.Repeat(text, 4))
	if err := checkLinear(g1.total(), g4.total(), len(text)); err == nil {
		t.Errorf("quadratic pre-tokenizer not caught: %d, %d", g1.total(), g4.total())
	}
	_, l1 := countWork(e, text)
	_, l4 := countWork(e, strings.Repeat(text, 4))
	if err := checkLinear(l1.total(), l4.total(), len(text)); err != nil {
		t.Errorf("the real pre-tokenizer: %v", err)
	}
}

// The pre-tokenizer reports the look-ahead it rescans: a whitespace run
// that backtracks to its last newline, or leaves its last space to the
// next word, was scanned to its end; so was o200k's [U]* run that
// backtracks to its last letter that is also in [Lw].
func TestSplitFar(t *testing.T) {
	run := strings.Repeat(" ", 1000)
	cases := []struct {
		split     splitFunc
		s         string
		end, far  int
		splitName string
	}{
		{splitCL100K, "\n" + run + "x", 1, 1001, "cl100k"},
		{splitCL100K, run + "x", 999, 1000, "cl100k"},
		{splitO200K, "\n" + run + "x", 1, 1001, "o200k"},
		{splitR50K, run + "x", 999, 1000, "r50k"},
		{splitCL100K, "hello world", 5, 5, "cl100k"},
		{splitO200K, "HTTPServer", 10, 10, "o200k"},
		{splitO200K, "中文AB x", 6, 8, "o200k"}, // [U]* backtracks to the last Lo
	}
	for _, c := range cases {
		end, far := c.split(c.s, 0)
		if end != c.end || far != c.far {
			t.Errorf("%s(%.12q...) = %d, %d; want %d, %d", c.splitName, c.s, end, far, c.end, c.far)
		}
	}
}
