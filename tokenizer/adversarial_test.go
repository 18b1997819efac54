package tokenizer

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

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
		"letters":  randomOver(r, strings.Split("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", ""), n),
	}
}

// Adversarial 1 MB inputs must count fast (the reference takes minutes to
// hours on these). The bound is generous so a loaded CI machine does not
// flake; typical times are logged (go test -v -run Adversarial). On 2
// cores the long single pre-tokens (one-char, spaces, newlines, braces,
// emoji) take 20–90 ms each with merge rounds (0.3–0.6 s with the heap
// alone); "letters" (random a-zA-Z) is one pre-token for cl100k_base and
// ends on the heap.
func TestAdversarialSpeed(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("timing test")
	}
	for _, name := range []string{"cl100k_base", "o200k_base"} {
		e := mustGet(t, name)
		for kind, s := range adversarialInputs(1 << 20) {
			start := time.Now()
			n := e.Count(s)
			d := time.Since(start)
			t.Logf("%s %-8s 1 MB: %6d tokens in %v", name, kind, n, d)
			if d > 5*time.Second {
				t.Errorf("%s %s: %v", name, kind, d)
			}
		}
	}
}

// A 20 MB string without any whitespace (letters, digits and punctuation
// like minified data) and a 20 MB single pre-token (one letter repeated;
// about 0.7 s, 9 s before merge rounds).
func TestAdversarialLarge(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("timing test")
	}
	e := mustGet(t, "o200k_base")
	big := adversarialInputs(20 << 20)
	for _, kind := range []string{"base64", "one-char"} {
		s := big[kind]
		start := time.Now()
		n := e.Count(s)
		d := time.Since(start)
		t.Logf("o200k_base %s %d MB: %d tokens in %v", kind, len(s)>>20, n, d)
		if d > 20*time.Second {
			t.Errorf("%s: %v", kind, d)
		}
	}
}
